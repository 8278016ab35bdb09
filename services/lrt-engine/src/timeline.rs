//! Normalise and clean observations into one time series per concept (knowledge base §6.1).
//!
//! * `entered-in-error`, `cancelled` (and `registered`, which has no result) are ignored.
//! * Same concept code and same effective time: the highest status rank wins
//!   (amended = corrected > final > preliminary), then the latest `issued`; if different
//!   values remain, the slot is a **conflict** and unusable.
//! * Several codes of one concept at the same time: the rule set's code order decides
//!   (measured before setting); the preferred code's slot is used even if it is a conflict.
//! * The *latest* slot of a concept is the only candidate for its current value: a conflict
//!   or a stale latest slot makes the concept unavailable (no fallback to older values).

use chrono::{DateTime, Utc};
use smallvec::SmallVec;

use crate::concept::{Concept, Normalised, UnitError, normalise};
use crate::quality::DataQuality;
use crate::ruleset::RuleSet;
use crate::snapshot::PatientSnapshot;

/// Appends `v` (non-negative) as exactly `width` decimal digits.
fn push_digits(out: &mut String, v: i64, width: u32) {
    let mut div = 10i64.pow(width - 1);
    while div > 0 {
        out.push(char::from(b'0' + (v / div % 10) as u8));
        div /= 10;
    }
}

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

pub const MS_PER_MINUTE: f64 = 60_000.0;
pub const MS_PER_HOUR: f64 = 3_600_000.0;

pub fn to_millis(t: DateTime<Utc>) -> Millis {
    t.timestamp_millis()
}

/// Observation indices (into the snapshot) behind a value; almost always one or two.
pub type Evidence = SmallVec<[u32; 4]>;

/// RFC 3339 UTC text of a time (`2025-03-01T11:30:00Z`, milliseconds only when present).
/// Hand-rolled because explanations format many times per evaluation; equal to chrono's
/// `to_rfc3339_opts(SecondsFormat::AutoSi, true)` for whole milliseconds (tested).
pub fn format_millis(t: Millis) -> String {
    let days = t.div_euclid(86_400_000);
    let ms_of_day = t.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, sec, ms) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    let mut out = String::with_capacity(24);
    if !(0..=9999).contains(&year) {
        use std::fmt::Write;
        let _ = write!(out, "{year:+05}");
    } else {
        push_digits(&mut out, year, 4);
    }
    for (sep, v) in [('-', month), ('-', day), ('T', h), (':', m), (':', sec)] {
        out.push(sep);
        push_digits(&mut out, v, 2);
    }
    if ms != 0 {
        out.push('.');
        push_digits(&mut out, ms, 3);
    }
    out.push('Z');
    out
}

/// The value of one concept at one instant after duplicate resolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SlotValue {
    Value(Normalised),
    Conflict,
    /// A value refused as impossible physiology (§9 D8): unusable like a conflict, and no older
    /// value stands in for it.
    Refused,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub time: Millis,
    pub value: SlotValue,
    /// Indices (into the snapshot's observations) of the observations behind this slot.
    pub evidence: Evidence,
}

impl Slot {
    pub fn number(&self) -> Option<f64> {
        match self.value {
            SlotValue::Value(v) => v.as_number(),
            SlotValue::Conflict | SlotValue::Refused => None,
        }
    }
    pub fn boolean(&self) -> Option<bool> {
        match self.value {
            SlotValue::Value(v) => v.as_bool(),
            SlotValue::Conflict | SlotValue::Refused => None,
        }
    }
}

/// The current value of a concept, as far as §6.1 allows one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latest<'a> {
    Absent,
    Valid(&'a Slot),
    Stale(&'a Slot),
    Conflict(&'a Slot),
}

impl<'a> Latest<'a> {
    pub fn valid(self) -> Option<&'a Slot> {
        match self {
            Latest::Valid(s) => Some(s),
            _ => None,
        }
    }
}

/// Cleaned series for every concept, each sorted by time (ascending, one slot per instant).
#[derive(Debug, Default)]
pub struct Timelines {
    series: Vec<Vec<Slot>>,
}

struct Entry {
    concept: Concept,
    preference: u16,
    time: Millis,
    rank: u8,
    issued: Option<Millis>,
    value: Normalised,
    obs: u32,
}

impl Timelines {
    /// Builds the series, recording every ignored or unusable observation in `quality`.
    pub fn build(
        snapshot: &PatientSnapshot,
        rules: &RuleSet,
        now: Millis,
        quality: &mut DataQuality,
    ) -> Timelines {
        let mut entries = Vec::with_capacity(snapshot.observations.len());
        for (i, obs) in snapshot.observations.iter().enumerate() {
            let Some(rank) = obs.status.rank() else {
                continue;
            };
            let Some(mapped) = rules.concept_of(&obs.system, &obs.code) else {
                continue;
            };
            let concept = mapped.concept;
            let value = match obs.value.raw(concept, rules).and_then(|raw| {
                normalise(concept, raw, obs.unit.as_deref(), rules.plausible(concept))
            }) {
                Ok((v, note)) => {
                    if let Some(note) = note {
                        quality.push(note.code(), &obs.id);
                    }
                    v
                }
                Err(e) => {
                    let code = match e {
                        UnitError::UnknownUnit { .. } => "unknown_unit",
                        UnitError::Fio2OutOfRange { .. } | UnitError::Implausible { .. } => {
                            "implausible"
                        }
                        UnitError::WrongValueType { .. } | UnitError::NotFinite { .. } => {
                            "invalid_value"
                        }
                    };
                    quality.push(code, &format!("{concept}/{}", obs.id));
                    continue;
                }
            };
            let time = to_millis(obs.effective);
            if time > now {
                quality.push("future", &format!("{concept}/{}", obs.id));
                continue;
            }
            entries.push(Entry {
                concept,
                preference: mapped.preference,
                time,
                rank,
                issued: obs.issued.map(to_millis),
                value,
                obs: i as u32,
            });
        }
        // Group order: concept, time, code preference; inside a group best status first, then latest issued.
        // A total order (the observation index breaks ties), so the unstable sort is deterministic.
        entries.sort_unstable_by(|a, b| {
            (a.concept, a.time, a.preference)
                .cmp(&(b.concept, b.time, b.preference))
                .then(b.rank.cmp(&a.rank))
                .then(b.issued.cmp(&a.issued))
                .then(a.obs.cmp(&b.obs))
        });

        let mut series: Vec<Vec<Slot>> = vec![Vec::new(); Concept::ALL.len()];
        let mut i = 0;
        while i < entries.len() {
            let head = &entries[i];
            let mut j = i + 1;
            while j < entries.len()
                && entries[j].concept == head.concept
                && entries[j].time == head.time
                && entries[j].preference == head.preference
            {
                j += 1;
            }
            let slot = resolve(&entries[i..j]);
            let list = &mut series[head.concept.index()];
            // Only the most preferred code at an instant is kept (entries arrive in preference order).
            if list.last().is_none_or(|s: &Slot| s.time != head.time) {
                if slot.value == SlotValue::Conflict {
                    quality.push(
                        "conflict",
                        &format!("{}@{}", head.concept, format_millis(head.time)),
                    );
                }
                list.push(slot);
            }
            i = j;
        }
        Timelines { series }
    }

    pub fn slots(&self, concept: Concept) -> &[Slot] {
        &self.series[concept.index()]
    }

    /// Marks slot `index` of `concept` as refused (§9 D8).
    pub(crate) fn refuse(&mut self, concept: Concept, index: usize) {
        if let Some(s) = self.series[concept.index()].get_mut(index) {
            s.value = SlotValue::Refused;
        }
    }

    /// The latest slot, judged against the validity window (`None` = unlimited).
    pub fn latest(&self, concept: Concept, now: Millis, window_ms: Option<f64>) -> Latest<'_> {
        match self.slots(concept).last() {
            None => Latest::Absent,
            Some(s) if matches!(s.value, SlotValue::Conflict | SlotValue::Refused) => {
                Latest::Conflict(s)
            }
            Some(s) if window_ms.is_some_and(|w| (now - s.time) as f64 > w) => Latest::Stale(s),
            Some(s) => Latest::Valid(s),
        }
    }

    /// The latest slot at or before `at` and not earlier than `at - window_ms`.
    pub fn at_or_before(&self, concept: Concept, at: Millis, window_ms: f64) -> Option<&Slot> {
        let slots = self.slots(concept);
        let end = slots.partition_point(|s| s.time <= at);
        let s = slots[..end].last()?;
        ((at - s.time) as f64 <= window_ms).then_some(s)
    }

    /// The slot closest in time to `at` within ±`window_ms` (earlier wins a tie).
    pub fn nearest(&self, concept: Concept, at: Millis, window_ms: f64) -> Option<&Slot> {
        self.slots(concept)
            .iter()
            .filter(|s| ((s.time - at).abs() as f64) <= window_ms)
            .min_by_key(|s| ((s.time - at).abs(), s.time))
    }
}

/// Resolves one group (same concept, code and instant) into a slot.
fn resolve(group: &[Entry]) -> Slot {
    let best_rank = group[0].rank;
    let mut kept: Vec<&Entry> = group.iter().filter(|e| e.rank == best_rank).collect();
    // "then the latest issued": only decidable when every candidate states `issued`.
    if kept.len() > 1 && kept.iter().all(|e| e.issued.is_some()) {
        let latest = kept[0].issued;
        kept.retain(|e| e.issued == latest);
    }
    let first = kept[0].value;
    let agree = kept.iter().all(|e| e.value.same_as(first));
    Slot {
        time: group[0].time,
        value: if agree {
            SlotValue::Value(first)
        } else {
            SlotValue::Conflict
        },
        evidence: kept.iter().map(|e| e.obs).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SecondsFormat;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn formats_like_chrono(t in -62_000_000_000_000i64..253_000_000_000_000i64) {
            let chrono = DateTime::<Utc>::from_timestamp_millis(t)
                .unwrap()
                .to_rfc3339_opts(SecondsFormat::AutoSi, true);
            prop_assert_eq!(format_millis(t), chrono);
        }
    }

    #[test]
    fn formats_known_times() {
        assert_eq!(format_millis(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_millis(1_740_828_600_000), "2025-03-01T11:30:00Z");
        assert_eq!(format_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }
}
