//! Data-quality warnings: `code:detail` strings (§6.1), e.g. `stale:pao2`,
//! `conflict:pao2@2025-03-01T11:30:00Z`, `missing_or_unpaired:fio2`,
//! `fio2_fraction_with_percent_unit:o17`.
//!
//! The part before `:` is the stable, machine-readable code; the detail names the concept,
//! time or observation id. The list keeps insertion order and drops exact duplicates.
//!
//! # Codes from the FHIR mapping
//!
//! [`CODES`] lists what the engine itself emits (through [`DataQuality::push`], which checks the
//! list in debug builds). The FHIR mapping (`lrt-fhir`) builds the snapshot before evaluation and
//! writes its own warnings into `PatientSnapshot::data_quality`; [`DataQuality::push_raw`] copies
//! them into the assessment as written, unchecked. They never occur with case-file input.
//! Besides `missing:patient` (no Patient resource with the requested id) and
//! `invalid_value:Patient.birthDate <text>` (a birth date that is no date or lies after `now`),
//! whose codes are in [`CODES`], the mapping emits:
//!
//! | code | example | meaning |
//! |---|---|---|
//! | `unreadable` | `unreadable:Observation/o1` | the resource breaks the FHIR R4 model (or an Observation's status is not an R4 status); it is skipped, the rest of the Bundle is kept |
//! | `imprecise_time` | `imprecise_time:Observation/d1` | a mapped observation's time is only a date, month or year, not an instant; not used |
//! | `no_time` | `no_time:Observation/o2` | a mapped observation has no usable time (none, `effectiveTiming`, a period without start and end, a time without a zone); not used |
//! | `ambiguous_code` | `ambiguous_code:Observation/amb (pao2, paco2)` | the codings belong to several concepts and none `supersedes` the others; not used |
//! | `unsupported_value` | `unsupported_value:peep/o3 (valueString)` | a value type the engine cannot use (string, range, ratio, a coded value for a numeric concept, a coded answer other than yes/no); not used |
//! | `imprecise_birth_date` | `imprecise_birth_date:1970 (age read as 54, the lowest it can be)` | a partial birth date; the age is the lowest it allows (versions with `age_imprecise_as_range`, §9 D4: `imprecise_birth_date:1958 (age 66 to 67: a threshold between them is unknown)`) |
//! | `unmapped` | `unmapped:http://hl7.org/fhir/sid/icd-10-cm\|E11.9` | versions with `report_unmapped_context_codes` (§9 D4): an active Flag or Condition coding that no code set of its kind maps and `unmapped_codes` does not list |
//! | `other_patient` | `other_patient:3 resources of other patients ignored` | a search or prefetch returned resources of other patients; never used (not reported for multi-patient Bundle files) |
//! | `operation_outcome` | `operation_outcome:warning too-costly: result truncated` | an OperationOutcome came with the data; its issues, joined by `; ` |
//! | `truncated` | `truncated:Observation (the first 20000 of 100000; no further page read)` | a search reached the client's `max_resources`; the newest resources are kept (searches ask for newest first) |
//! | `fetch_failed` | `fetch_failed:Condition (HTTP 500)` | a Condition, Procedure, MedicationAdministration/Request or Flag search failed (`HTTP <status>` or `no answer`); that kind counts as not searched, so its context flags stay unknown |
//!
//! The same codes are listed for rule authors in `rules/README.md` (section 7.2).

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataQuality {
    items: Vec<String>,
}

impl DataQuality {
    pub fn push(&mut self, code: &str, detail: &str) {
        debug_assert!(
            CODES.iter().any(|(c, _)| *c == code),
            "data-quality code {code} is not documented in quality::CODES"
        );
        let item = format!("{code}:{detail}");
        if !self.items.contains(&item) {
            self.items.push(item);
        }
    }

    /// Adds a warning raised before evaluation (by the FHIR mapping), as it was written. Its code
    /// need not be in [`CODES`]: the mapping's codes are listed in the module documentation.
    pub fn push_raw(&mut self, item: &str) {
        if !self.items.iter().any(|i| i == item) {
            self.items.push(item.to_string());
        }
    }

    pub fn items(&self) -> &[String] {
        &self.items
    }

    pub fn into_items(self) -> Vec<String> {
        self.items
    }
}

/// Every warning code the engine can emit, with its meaning (for documentation and tests).
pub const CODES: &[(&str, &str)] = &[
    (
        "pbw_female_for_unknown_sex",
        "sex is not documented: the predicted body weight is the female one, the conservative bound (§9 D4)",
    ),
    (
        "suspected_kpa_as_mmhg",
        "PaO2 and PaCO2 of one blood gas both below the rule set's kPa bound (§9 D8): kPa sent as mmHg; both refused, no older value used",
    ),
    (
        "stale",
        "the latest value of a concept is older than its validity window; treated as missing",
    ),
    (
        "conflict",
        "different values for the same code and time remain after status and issued ranking; the slot is unusable",
    ),
    (
        "missing_or_unpaired",
        "no FiO2 at or before the PaO2 within the pairing window (fio2), or no PaCO2/pH within ±5 min of the PaO2",
    ),
    (
        "missing",
        "an input needed for a figure is absent (e.g. sex for predicted body weight)",
    ),
    (
        "fio2_fraction_with_percent_unit",
        "FiO2 <= 1 carried the unit %, read as a fraction (§1.1)",
    ),
    (
        "fio2_percent_with_fraction_unit",
        "FiO2 in [21, 100] carried a fraction unit, read as a percentage",
    ),
    (
        "unknown_unit",
        "an observation's unit is not accepted for its concept; the observation is not used",
    ),
    (
        "implausible",
        "an observation's value is outside the plausible range (or FiO2 outside 0.21-1.0 / 21-100); not used",
    ),
    (
        "invalid_value",
        "an observation's value has the wrong type (number vs boolean) or is not finite; not used",
    ),
    (
        "unknown_hard_stop",
        "a documented hard stop whose code the rule set does not know; it is not applied, review it",
    ),
    (
        "future",
        "an observation is dated after the evaluation time; not used",
    ),
    (
        "mechanics_not_assessable",
        "plateau pressure does not exceed PEEP: driving pressure and compliance are not computed",
    ),
    (
        "ri_not_assessable",
        "the recruitment-to-inflation manoeuvre cannot be assessed (AOP >= high PEEP or Pplat <= PEEP)",
    ),
];
