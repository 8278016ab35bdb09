//! The times this service accepts: from 1900-01-01T00:00:00Z to the end of 2299 (UTC).
//!
//! A time outside that window is a data error (a year 0001 default, a 9999 "open end", a typo),
//! never an instant to reason with: the FHIR reader treats it as unreadable (the resource is
//! reported and left out), input files and the CLI refuse it naming the field. Issue 8 asked for
//! 1900 to 2200; the upper bound is 2299 because the MIMIC-IV demo data that the project replays
//! is date-shifted into the 22nd century (its blood gases reach 2201), and a window that refused
//! the project's own reference data would be refused by its users.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

/// The first year accepted.
pub const FIRST_YEAR: i32 = 1900;
/// The last year accepted.
pub const LAST_YEAR: i32 = 2299;

/// Whether `t` lies in the accepted window.
pub fn plausible(t: DateTime<Utc>) -> bool {
    (FIRST_YEAR..=LAST_YEAR).contains(&t.year())
}

/// Whether a calendar day lies in the accepted window.
pub fn plausible_date(d: NaiveDate) -> bool {
    (FIRST_YEAR..=LAST_YEAR).contains(&d.year())
}

/// `t`, or a message saying why it is refused.
pub fn check(t: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if plausible(t) {
        Ok(t)
    } else {
        Err(format!(
            "{} is outside the years {FIRST_YEAR} to {LAST_YEAR} that this service accepts",
            t.to_rfc3339()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_holds_the_mimic_demo_and_refuses_defaults_and_open_ends() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert!(plausible(at("1900-01-01T00:00:00Z")));
        assert!(plausible(at("2026-12-03T06:00:00Z")));
        assert!(plausible(at("2201-05-07T10:00:00Z")));
        assert!(plausible(at("2299-12-31T23:59:59Z")));
        assert!(!plausible(at("1899-12-31T23:59:59Z")));
        assert!(!plausible(at("2300-01-01T00:00:00Z")));
        assert!(!plausible(at("0001-01-01T00:00:00Z")));
        assert!(!plausible(at("9999-12-31T23:59:59Z")));
        let e = check(at("9999-12-31T00:00:00Z")).unwrap_err();
        assert!(e.contains("1900 to 2299"), "{e}");
    }
}
