//! FHIR `date`, `dateTime` and `instant` values.
//!
//! FHIR allows partial precision (`2026`, `2026-10`, `2026-10-01`): such a value is a range, not
//! an instant, and is never read as midnight of its first day. A measurement needs an instant;
//! a birth date may be partial (the age is then the lowest it can be, and flagged).

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Utc};

/// A `dateTime` with a time and a zone is an instant; anything coarser is partial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FhirTime {
    Instant(DateTime<Utc>),
    /// A date, month or year: the first and last day it may mean.
    Partial {
        first: NaiveDate,
        last: NaiveDate,
    },
}

impl FhirTime {
    pub fn instant(self) -> Option<DateTime<Utc>> {
        match self {
            FhirTime::Instant(t) => Some(t),
            FhirTime::Partial { .. } => None,
        }
    }
}

/// Parses a FHIR `date` / `dateTime` / `instant`. `None` for text that is none of them, and
/// for a time outside the years this service accepts ([`lrt_engine::time_window`]).
pub fn parse(text: &str) -> Option<FhirTime> {
    let t = text.trim();
    if t.contains('T') {
        return parse_instant(t).map(FhirTime::Instant);
    }
    let (first, last) = date_range(t)?;
    Some(FhirTime::Partial { first, last })
}

/// An RFC 3339 instant; minutes without seconds (`2025-03-01T11:30Z`) are accepted too, as EHRs
/// send them. A time without a zone is refused: its instant is unknown.
pub fn parse_instant(t: &str) -> Option<DateTime<Utc>> {
    parse_any_instant(t).filter(|t| lrt_engine::time_window::plausible(*t))
}

fn parse_any_instant(t: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M%#z", "%Y-%m-%dT%H:%MZ"] {
        if let Ok(d) = DateTime::<FixedOffset>::parse_from_str(t, fmt) {
            return Some(d.with_timezone(&Utc));
        }
        if fmt.ends_with('Z')
            && let Ok(n) = NaiveDateTime::parse_from_str(t, fmt)
        {
            return Some(n.and_utc());
        }
    }
    None
}

/// The days a FHIR `date` (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`) may mean; `None` outside the years
/// this service accepts.
pub fn date_range(t: &str) -> Option<(NaiveDate, NaiveDate)> {
    date_range_any(t).filter(|(first, last)| {
        lrt_engine::time_window::plausible_date(*first)
            && lrt_engine::time_window::plausible_date(*last)
    })
}

fn date_range_any(t: &str) -> Option<(NaiveDate, NaiveDate)> {
    let parts: Vec<&str> = t.split('-').collect();
    let num = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    match parts.as_slice() {
        [y] => {
            let y = num(y, 4)? as i32;
            Some((
                NaiveDate::from_ymd_opt(y, 1, 1)?,
                NaiveDate::from_ymd_opt(y, 12, 31)?,
            ))
        }
        [y, m] => {
            let (y, m) = (num(y, 4)? as i32, num(m, 2)?);
            let first = NaiveDate::from_ymd_opt(y, m, 1)?;
            let next = if m == 12 {
                NaiveDate::from_ymd_opt(y + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(y, m + 1, 1)?
            };
            Some((first, next.pred_opt()?))
        }
        [y, m, d] => {
            let day = NaiveDate::from_ymd_opt(num(y, 4)? as i32, num(m, 2)?, num(d, 2)?)?;
            Some((day, day))
        }
        _ => None,
    }
}

/// Completed years between `born` and `at` (0 if `at` is before the birthday).
pub fn completed_years(born: NaiveDate, at: NaiveDate) -> Option<u32> {
    if at < born {
        return None;
    }
    let mut years = at.year() - born.year();
    if (at.month(), at.day()) < (born.month(), born.day()) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

/// Age in completed years at `now` from a FHIR birth date. With a partial birth date the age is
/// the lowest it can be (born on the last possible day); the flag says it was partial.
pub fn age_at(birth_date: &str, now: DateTime<Utc>) -> Option<(u32, bool)> {
    let (first, last) = date_range(birth_date.trim())?;
    completed_years(last, now.date_naive()).map(|age| (age, first != last))
}

/// The lowest and highest completed ages at `now` that a FHIR birth date allows (equal for a
/// full date), or `None` when it is no date or lies after `now`.
pub fn age_range_at(birth_date: &str, now: DateTime<Utc>) -> Option<(u32, u32)> {
    let (first, last) = date_range(birth_date.trim())?;
    let lowest = completed_years(last, now.date_naive())?;
    let highest = completed_years(first, now.date_naive()).unwrap_or(lowest);
    Some((lowest, highest.max(lowest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn instants_and_partial_dates() {
        assert_eq!(
            parse("2025-03-01T11:30:00Z"),
            Some(FhirTime::Instant(utc("2025-03-01T11:30:00Z")))
        );
        assert_eq!(
            parse("2025-03-01T12:30:00+01:00").unwrap().instant(),
            Some(utc("2025-03-01T11:30:00Z"))
        );
        assert_eq!(
            parse("2025-03-01T11:30Z").unwrap().instant(),
            Some(utc("2025-03-01T11:30:00Z"))
        );
        assert_eq!(
            parse("2025-03-01T11:30:00"),
            None,
            "a time without a zone is not an instant"
        );
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(
            parse("2025"),
            Some(FhirTime::Partial {
                first: d(2025, 1, 1),
                last: d(2025, 12, 31)
            })
        );
        assert_eq!(
            parse("2024-02"),
            Some(FhirTime::Partial {
                first: d(2024, 2, 1),
                last: d(2024, 2, 29)
            })
        );
        assert_eq!(
            parse("2025-03-01"),
            Some(FhirTime::Partial {
                first: d(2025, 3, 1),
                last: d(2025, 3, 1)
            })
        );
        assert_eq!(parse("March 2025"), None);
        assert_eq!(parse("2025-13"), None);
    }

    /// Issue 8: a time outside the accepted years is not a time (a `0001` default, a `9999`
    /// open end); the MIMIC demo's 22nd-century dates are.
    #[test]
    fn times_outside_the_accepted_years_are_unreadable() {
        for t in [
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "1899-12-31T23:59Z",
            "2300-01-01T02:00:00+01:00",
            "9999",
            "0001-01",
            "1899-12-31",
        ] {
            assert_eq!(parse(t), None, "{t}");
        }
        assert!(parse("2201-05-07T10:00:00Z").is_some());
        assert!(parse("1900").is_some());
        // A birth date outside the window gives no age (unknown, never a guess).
        assert_eq!(age_at("1890-01-01", utc("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn ages() {
        let now = utc("2156-05-20T10:24:00Z");
        assert_eq!(age_at("2075", now), Some((80, true)));
        assert_eq!(age_at("2075-05-20", now), Some((81, false)));
        assert_eq!(age_at("2075-05-21", now), Some((80, false)));
        assert_eq!(age_at("2157", now), None);
        assert_eq!(age_at("not a date", now), None);
        // §9 D4: the ages a partial birth date allows.
        assert_eq!(age_range_at("2075", now), Some((80, 81)));
        assert_eq!(age_range_at("2075-05", now), Some((80, 81)));
        assert_eq!(age_range_at("2075-04", now), Some((81, 81)));
        assert_eq!(age_range_at("2075-05-20", now), Some((81, 81)));
        assert_eq!(age_range_at("2157", now), None);
    }
}
