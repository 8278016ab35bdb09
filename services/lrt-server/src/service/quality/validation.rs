//! Silent-mode validation (issue 10, item 3): the system's calls compared with the Lung Rescue
//! Team's adjudications, as a clinical lead needs them before sign-off (`lrt validate`,
//! `POST /api/v1/quality/validation`).
//!
//! # Method
//!
//! **Input.** An adjudication file ([`adjudication`]): for each row, a patient, the time the LRT
//! judged, the LRT's ECMO category and whether an LRT consult was warranted.
//!
//! **The system's calls** ([`load`]) are either the stored active evaluations (the `evaluation`
//! table, role `active`, at the time the service answered, `created_at`: the moment a clinician
//! could have seen the card), or the outcomes of one `lrt replay` run (`replay_outcome`, at the
//! replayed stored evaluation's `created_at`, or, for a FHIR-bundle replay or a purged source,
//! the outcome's `evaluated_at`: the blood gas's time). Only the patient's calls in the
//! **look-back window** `[t − window, t]` before the adjudicated time `t` count (default 24 h).
//!
//! * **The system's call at that moment** is the most recent call in the window (at or before
//!   `t`; of calls at the same instant, the last in database order).
//! * **Not evaluated**: no call in the window. Such a row enters no table; it is counted and
//!   listed (with how many were adjudicated positive), never taken as a negative.
//! * **`insufficient_data`**: the system could not decide. It raises no ECMO screen, so it is a
//!   **system negative** in the ECMO-screen table (an FN when the LRT judged the patient
//!   eligible or borderline, a TN otherwise), and its consult triggers count as they are. This
//!   is the conservative choice: an undecided screen alerts no one, so counting it as negative
//!   lowers sensitivity rather than hiding the miss by leaving the row out. These rows are also
//!   counted and listed, so the reader can see how much of the FN and TN cells they make.
//!
//! **Measures.** Two 2×2 tables, each with TP, FP, FN, TN, sensitivity TP/(TP+FN), specificity
//! TN/(TN+FP), PPV TP/(TP+FP), NPV TN/(TN+FN), each with its 95 % Wilson score interval
//! ([`stats`]); a proportion over 0 rows is undefined (`null`):
//! * **ECMO screen**: system positive = the call's category is `eligible` or `borderline`;
//!   adjudicated positive = the LRT's category is `eligible` or `borderline`.
//! * **Consult trigger**: system positive = the call has at least one consult trigger (it would
//!   have paged the LRT); adjudicated positive = `consult_warranted`.
//!
//! **Lead time** (true positives only): `t` minus the time of the *first* positive call in the
//! window (first screen-positive call for the screen, first call with a consult trigger for
//! consults), in hours: how long before the LRT's judgement the system would have alerted, at
//! most the window. Summarised by median, quartiles (from 4 values) and range.
//!
//! **Exact-category agreement**: the confusion matrix of adjudicated × system category over the
//! evaluated rows, and the share of rows with the same category (Wilson interval). A call
//! without a category counts as `none`.
//!
//! Pure computation here and in [`stats`] and [`report`]; the SQL is in [`load`].

pub mod adjudication;
pub mod load;
pub mod report;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

pub use adjudication::{Adjudication, AdjudicationError, EcmoCategory};
use stats::{Cell, Proportion, Summary, TwoByTwo};

/// The look-back window before an adjudicated time: `<n>m`, `<n>h` or `<n>d`, 1 minute to 30
/// days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookBack {
    minutes: i64,
}

impl LookBack {
    pub const DEFAULT: LookBack = LookBack { minutes: 24 * 60 };
    const MAX_MINUTES: i64 = 30 * 24 * 60;

    pub fn parse(text: &str) -> Result<LookBack, String> {
        let bad = || {
            format!(
                "{text:?} is not a look-back window: a whole number of minutes, hours or days, e.g. 90m, 24h, 2d (1 minute to 30 days)"
            )
        };
        let unit = text.chars().last().ok_or_else(bad)?;
        let number = &text[..text.len() - unit.len_utf8()];
        // As the API document's pattern `^[1-9][0-9]{0,5}[mhd]$`: no sign, no leading zero.
        if number.is_empty()
            || number.len() > 6
            || number.starts_with('0')
            || !number.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let n: i64 = number.parse().map_err(|_| bad())?;
        let minutes = match unit {
            'm' => n,
            'h' => n * 60,
            'd' => n * 24 * 60,
            _ => return Err(bad()),
        };
        if !(1..=Self::MAX_MINUTES).contains(&minutes) {
            return Err(bad());
        }
        Ok(LookBack { minutes })
    }

    pub fn duration(self) -> Duration {
        Duration::minutes(self.minutes)
    }

    pub fn hours(self) -> f64 {
        self.minutes as f64 / 60.0
    }
}

impl fmt::Display for LookBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // In hours when whole (`24h`, `48h`), else in minutes.
        let m = self.minutes;
        if m % 60 == 0 {
            write!(f, "{}h", m / 60)
        } else {
            write!(f, "{m}m")
        }
    }
}

impl Serialize for LookBack {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One call of the system for a patient: a stored active evaluation or a replay outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemCall {
    /// When the call was made (see the module documentation).
    pub at: DateTime<Utc>,
    /// Its ECMO category (None: the evaluation gave none).
    pub category: Option<String>,
    /// Its consult triggers' codes (empty: it would not have paged the LRT).
    pub consult_triggers: Vec<String>,
    /// The rule-set version that made it.
    pub ruleset_version: String,
    /// The stored evaluation: the call itself, or, for a replay outcome, the stored evaluation
    /// it replayed (None: a bundle replay, or a source since purged). The dashboard links it.
    pub evaluation_id: Option<uuid::Uuid>,
}

impl SystemCall {
    pub fn screens_positive(&self) -> bool {
        self.category
            .as_deref()
            .and_then(EcmoCategory::parse)
            .is_some_and(EcmoCategory::screens_positive)
    }

    pub fn triggers_consult(&self) -> bool {
        !self.consult_triggers.is_empty()
    }
}

/// Where the system's calls came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    /// The stored active evaluations.
    Stored,
    /// The outcomes of one replay run.
    Replay {
        run: uuid::Uuid,
        /// `stored` or `bundle`.
        replayed: String,
        /// `running`, `finished` or `failed` (a run not finished holds only part of its outcomes).
        state: String,
        ruleset_id: String,
        ruleset_version: String,
    },
}

/// One adjudication and how the system's calls compare with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub patient: String,
    pub time: DateTime<Utc>,
    pub adjudicated_category: EcmoCategory,
    pub consult_warranted: bool,
    /// The system's calls of the patient in the window.
    pub calls_in_window: usize,
    /// The system's call at that moment: the most recent in the window (None: not evaluated).
    pub system: Option<SystemCall>,
    /// The row's cell in the ECMO-screen table (None: not evaluated).
    pub screen: Option<Cell>,
    /// The row's cell in the consult-trigger table (None: not evaluated).
    pub consult: Option<Cell>,
    /// For a screen TP: hours from the first screen-positive call in the window to `time`.
    pub screen_lead_time_hours: Option<f64>,
    /// For a consult TP: hours from the first call with a consult trigger in the window.
    pub consult_lead_time_hours: Option<f64>,
}

/// One of the two 2×2 comparisons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measure {
    /// What "positive" means on each side.
    pub definition: &'static str,
    #[serde(flatten)]
    pub table: TwoByTwo,
    pub sensitivity: Proportion,
    pub specificity: Proportion,
    pub ppv: Proportion,
    pub npv: Proportion,
    /// Lead time of the true positives, in hours.
    pub lead_time_hours: Summary,
}

impl Measure {
    fn of(definition: &'static str, table: TwoByTwo, lead_times: &[f64]) -> Measure {
        Measure {
            definition,
            table,
            sensitivity: table.sensitivity(),
            specificity: table.specificity(),
            ppv: table.ppv(),
            npv: table.npv(),
            lead_time_hours: Summary::of(lead_times),
        }
    }
}

/// Adjudicated × system category over the evaluated rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    /// Rows whose system category is the adjudicated one, of the evaluated rows.
    pub exact: Proportion,
    /// The non-empty cells, by adjudicated category (rule-set order) then system category.
    pub matrix: Vec<MatrixCell>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatrixCell {
    pub adjudicated: EcmoCategory,
    /// The system's category (`none`: the call gave none).
    pub system: String,
    pub rows: u64,
}

/// Rows set apart and listed: not evaluated, or an `insufficient_data` call.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SetApart {
    pub count: u64,
    /// Of them, adjudicated `eligible` or `borderline`.
    pub adjudicated_screen_positive: u64,
    /// Of them, adjudicated `consult_warranted`.
    pub consult_warranted: u64,
    pub rows: Vec<Listed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub patient: String,
    pub time: DateTime<Utc>,
    pub adjudicated_category: EcmoCategory,
    pub consult_warranted: bool,
}

impl SetApart {
    fn add(&mut self, a: &Adjudication) {
        self.count += 1;
        self.adjudicated_screen_positive += u64::from(a.category.screens_positive());
        self.consult_warranted += u64::from(a.consult_warranted);
        self.rows.push(Listed {
            patient: a.patient.clone(),
            time: a.at,
            adjudicated_category: a.category,
            consult_warranted: a.consult_warranted,
        });
    }
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Validation {
    pub source: Source,
    /// The look-back window (`24h`).
    pub window: LookBack,
    pub window_hours: f64,
    /// Rows of the adjudication file.
    pub adjudications: u64,
    /// Rows with a system call in the window (the tables' total).
    pub evaluated: u64,
    /// The rule-set versions of the system calls compared.
    pub ruleset_versions: Vec<String>,
    /// Rows without a call in the window: in no table.
    pub not_evaluated: SetApart,
    /// Rows whose call is `insufficient_data`: system negatives of the screen, listed.
    pub insufficient_data: SetApart,
    pub screen: Measure,
    pub consult: Measure,
    pub agreement: Agreement,
    pub rows: Vec<Row>,
}

pub const SCREEN_DEFINITION: &str =
    "system category eligible or borderline vs adjudicated category eligible or borderline";
pub const CONSULT_DEFINITION: &str =
    "system call with at least one consult trigger vs adjudicated consult_warranted";

/// Hours from `from` to `to`.
fn hours(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 3_600_000.0
}

/// Compares each adjudication with the system's calls of its patient: `calls[i]` are the calls
/// for `adjudications[i]` in time order (calls outside the window are ignored here too).
pub fn validate(
    adjudications: &[Adjudication],
    calls: &[Vec<SystemCall>],
    window: LookBack,
    source: Source,
) -> Validation {
    let mut screen = TwoByTwo::default();
    let mut consult = TwoByTwo::default();
    let (mut screen_leads, mut consult_leads) = (Vec::new(), Vec::new());
    let mut not_evaluated = SetApart::default();
    let mut insufficient_data = SetApart::default();
    let mut matrix: BTreeMap<(EcmoCategory, String), u64> = BTreeMap::new();
    let mut agreeing = 0;
    let mut versions = BTreeSet::new();
    let mut rows = Vec::with_capacity(adjudications.len());
    let none: Vec<SystemCall> = Vec::new();
    for (i, a) in adjudications.iter().enumerate() {
        let start = a.at - window.duration();
        let in_window: Vec<&SystemCall> = calls
            .get(i)
            .unwrap_or(&none)
            .iter()
            .filter(|c| c.at >= start && c.at <= a.at)
            .collect();
        // The most recent; of calls at the same instant, the last given.
        let latest = in_window
            .iter()
            .copied()
            .enumerate()
            .max_by_key(|(k, c)| (c.at, *k))
            .map(|(_, c)| c);
        let first_at = |positive: fn(&SystemCall) -> bool| {
            in_window.iter().filter(|c| positive(c)).map(|c| c.at).min()
        };
        let mut row = Row {
            patient: a.patient.clone(),
            time: a.at,
            adjudicated_category: a.category,
            consult_warranted: a.consult_warranted,
            calls_in_window: in_window.len(),
            system: latest.cloned(),
            screen: None,
            consult: None,
            screen_lead_time_hours: None,
            consult_lead_time_hours: None,
        };
        let Some(call) = latest else {
            not_evaluated.add(a);
            rows.push(row);
            continue;
        };
        versions.insert(call.ruleset_version.clone());
        if call.category.as_deref() == Some(EcmoCategory::InsufficientData.code()) {
            insufficient_data.add(a);
        }
        let screen_cell = Cell::of(call.screens_positive(), a.category.screens_positive());
        screen.add(screen_cell);
        if screen_cell == Cell::Tp
            && let Some(first) = first_at(SystemCall::screens_positive)
        {
            let lead = hours(first, a.at);
            screen_leads.push(lead);
            row.screen_lead_time_hours = Some(lead);
        }
        let consult_cell = Cell::of(call.triggers_consult(), a.consult_warranted);
        consult.add(consult_cell);
        if consult_cell == Cell::Tp
            && let Some(first) = first_at(SystemCall::triggers_consult)
        {
            let lead = hours(first, a.at);
            consult_leads.push(lead);
            row.consult_lead_time_hours = Some(lead);
        }
        let system_category = call.category.clone().unwrap_or_else(|| "none".into());
        agreeing += u64::from(system_category == a.category.code());
        *matrix.entry((a.category, system_category)).or_default() += 1;
        row.screen = Some(screen_cell);
        row.consult = Some(consult_cell);
        rows.push(row);
    }
    let evaluated = adjudications.len() as u64 - not_evaluated.count;
    let order = |c: EcmoCategory| EcmoCategory::ALL.iter().position(|x| *x == c);
    let mut matrix: Vec<MatrixCell> = matrix
        .into_iter()
        .map(|((adjudicated, system), rows)| MatrixCell {
            adjudicated,
            system,
            rows,
        })
        .collect();
    matrix.sort_by(|x, y| {
        let rank = |s: &str| EcmoCategory::parse(s).and_then(order).unwrap_or(usize::MAX);
        (order(x.adjudicated), rank(&x.system), &x.system).cmp(&(
            order(y.adjudicated),
            rank(&y.system),
            &y.system,
        ))
    });
    Validation {
        source,
        window,
        window_hours: window.hours(),
        adjudications: adjudications.len() as u64,
        evaluated,
        ruleset_versions: versions.into_iter().collect(),
        not_evaluated,
        insufficient_data,
        screen: Measure::of(SCREEN_DEFINITION, screen, &screen_leads),
        consult: Measure::of(CONSULT_DEFINITION, consult, &consult_leads),
        agreement: Agreement {
            exact: Proportion::of(agreeing, evaluated),
            matrix,
        },
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn adjudication(
        patient: &str,
        time: &str,
        category: EcmoCategory,
        warranted: bool,
    ) -> Adjudication {
        Adjudication {
            patient: patient.into(),
            at: at(time),
            category,
            consult_warranted: warranted,
        }
    }

    fn call(time: &str, category: &str, triggers: &[&str]) -> SystemCall {
        SystemCall {
            at: at(time),
            category: Some(category.into()),
            consult_triggers: triggers.iter().map(|t| t.to_string()).collect(),
            ruleset_version: "0.2.0".into(),
            evaluation_id: None,
        }
    }

    #[test]
    fn look_back_windows_parse_and_print() {
        assert_eq!(LookBack::parse("24h").unwrap(), LookBack::DEFAULT);
        assert_eq!(LookBack::parse("1d").unwrap(), LookBack::DEFAULT);
        assert_eq!(LookBack::parse("90m").unwrap().hours(), 1.5);
        assert_eq!(LookBack::parse("90m").unwrap().to_string(), "90m");
        assert_eq!(LookBack::parse("2d").unwrap().to_string(), "48h");
        for bad in [
            "", "h", "24", "0h", "-1h", "1.5h", "31d", "24 h", "9999999m", "24H",
        ] {
            assert!(LookBack::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// Hand-worked: five adjudications, 24 h window.
    /// * p1 eligible, consult warranted; calls 02:00 not_indicated, 04:00 borderline (trigger),
    ///   07:00 eligible (trigger), adjudicated 10:00 → latest eligible: screen TP, lead 10−4 = 6 h;
    ///   consult TP, lead 6 h.
    /// * p2 not_indicated, no consult; call 09:00 borderline without a trigger → screen FP,
    ///   consult TN.
    /// * p3 borderline, consult warranted; call 08:00 insufficient_data → screen FN (listed as
    ///   insufficient_data), consult FN.
    /// * p4 eligible, warranted; only a call 30 h before → not evaluated.
    /// * p5 ineligible, no consult; calls 05:00 eligible (trigger), 09:00 ineligible → screen TN
    ///   (the latest call counts), consult TN.
    #[test]
    fn each_row_falls_in_one_cell_and_lead_time_runs_from_the_first_positive_call() {
        use EcmoCategory::*;
        let adjudications = [
            adjudication("p1", "2026-11-02T10:00:00Z", Eligible, true),
            adjudication("p2", "2026-11-02T10:00:00Z", NotIndicated, false),
            adjudication("p3", "2026-11-02T10:00:00Z", Borderline, true),
            adjudication("p4", "2026-11-02T10:00:00Z", Eligible, true),
            adjudication("p5", "2026-11-02T10:00:00Z", Ineligible, false),
        ];
        let calls = vec![
            vec![
                call("2026-11-02T02:00:00Z", "not_indicated", &[]),
                call(
                    "2026-11-02T04:00:00Z",
                    "borderline",
                    &["ECMO_CENTER_CONSULT"],
                ),
                call("2026-11-02T07:00:00Z", "eligible", &["ECMO_CENTER_CONSULT"]),
                // After the adjudication: ignored.
                call("2026-11-02T11:00:00Z", "not_indicated", &[]),
            ],
            vec![call("2026-11-02T09:00:00Z", "borderline", &[])],
            vec![call("2026-11-02T08:00:00Z", "insufficient_data", &[])],
            vec![call(
                "2026-11-01T04:00:00Z",
                "eligible",
                &["ECMO_CENTER_CONSULT"],
            )],
            vec![
                call("2026-11-02T05:00:00Z", "eligible", &["ECMO_CENTER_CONSULT"]),
                call("2026-11-02T09:00:00Z", "ineligible", &[]),
            ],
        ];
        let v = validate(&adjudications, &calls, LookBack::DEFAULT, Source::Stored);
        assert_eq!((v.adjudications, v.evaluated), (5, 4));
        let s = v.screen.table;
        assert_eq!((s.tp, s.fp, s.r#fn, s.tn), (1, 1, 1, 1));
        let c = v.consult.table;
        assert_eq!((c.tp, c.fp, c.r#fn, c.tn), (1, 0, 1, 2));
        assert_eq!(v.screen.lead_time_hours.median, Some(6.0));
        assert_eq!(v.consult.lead_time_hours.median, Some(6.0));
        assert_eq!(v.rows[0].calls_in_window, 3);
        assert_eq!(v.not_evaluated.count, 1);
        assert_eq!(v.not_evaluated.rows[0].patient, "p4");
        assert_eq!(v.not_evaluated.adjudicated_screen_positive, 1);
        assert_eq!(v.insufficient_data.count, 1);
        assert_eq!(v.insufficient_data.rows[0].patient, "p3");
        assert_eq!(v.rows[2].screen, Some(Cell::Fn));
        assert_eq!(v.rows[3].screen, None);
        // Agreement: p1 eligible=eligible, p5 ineligible=ineligible; p2, p3 differ → 2/4.
        assert_eq!(
            (v.agreement.exact.numerator, v.agreement.exact.denominator),
            (2, 4)
        );
        assert_eq!(v.agreement.matrix.len(), 4);
        assert_eq!(v.agreement.matrix[0].adjudicated, Ineligible);
        assert_eq!(v.ruleset_versions, vec!["0.2.0".to_string()]);
    }

    #[test]
    fn nothing_evaluated_leaves_every_proportion_undefined() {
        let adjudications = [adjudication(
            "p1",
            "2026-11-02T10:00:00Z",
            EcmoCategory::Eligible,
            true,
        )];
        let v = validate(&adjudications, &[vec![]], LookBack::DEFAULT, Source::Stored);
        assert_eq!(v.evaluated, 0);
        for p in [
            v.screen.sensitivity,
            v.screen.ppv,
            v.consult.npv,
            v.agreement.exact,
        ] {
            assert_eq!((p.value, p.ci95), (None, None));
        }
        assert_eq!(v.screen.lead_time_hours.n, 0);
    }

    #[test]
    fn the_window_bounds_are_inclusive() {
        let adjudications = [adjudication(
            "p1",
            "2026-11-02T10:00:00Z",
            EcmoCategory::Eligible,
            false,
        )];
        let calls = vec![vec![
            call("2026-11-01T10:00:00Z", "eligible", &[]),
            call("2026-11-02T10:00:00Z", "borderline", &[]),
        ]];
        let v = validate(&adjudications, &calls, LookBack::DEFAULT, Source::Stored);
        assert_eq!(v.rows[0].calls_in_window, 2);
        assert_eq!(
            v.rows[0].system.as_ref().unwrap().category.as_deref(),
            Some("borderline")
        );
        assert_eq!(v.rows[0].screen_lead_time_hours, Some(24.0));
        let v = validate(
            &adjudications,
            &calls,
            LookBack::parse("23h").unwrap(),
            Source::Stored,
        );
        assert_eq!(v.rows[0].screen_lead_time_hours, Some(0.0));
    }
}
