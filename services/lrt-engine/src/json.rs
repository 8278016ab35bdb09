//! Small helpers for hand-written (de)serialisers.
//!
//! The service is built with serde_json's `arbitrary_precision` feature (fhirbolt needs it for
//! FHIR decimals, and Cargo unifies features across the workspace). Under that feature
//! `#[serde(untagged)]` enums see numbers as maps, so every enum that mixes numbers with other
//! shapes is read through [`serde_json::Value`] instead. The engine's own tests run with the
//! feature on (see `Cargo.toml`), so they exercise the configuration the service ships.

use serde_json::Value;

/// Instants written as chrono writes them, without chrono's formatting machinery (`Display`
/// through `collect_str`, character by character): through chrono, the observation times were
/// nearly half of what serialising a snapshot costs (the `snapshot/50_observations/json`
/// bench: 18.2 µs through chrono, 10.3 µs with this; issue 9), and each hook call stores two.
///
/// The text is RFC 3339 in UTC with `Z`, and fractional seconds only when there are any, with
/// 3, 6 or 9 digits, exactly as `DateTime<Utc>`'s `Serialize` writes it (chrono's
/// `SecondsFormat::AutoSi`). Years outside 0 to 9999 and leap seconds are handed to chrono.
/// Reading is chrono's own (`#[serde(serialize_with = ...)]` only).
pub mod instant {
    use chrono::{DateTime, Datelike, Timelike, Utc};
    use serde::{Serialize, Serializer};

    /// `#[serde(serialize_with = "crate::json::instant::serialize")]`
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 30];
        let text = write(t, &mut buf).and_then(|len| std::str::from_utf8(&buf[..len]).ok());
        match text {
            Some(text) => s.serialize_str(text),
            None => t.serialize(s),
        }
    }

    /// For `Option<DateTime<Utc>>` fields: `None` is `null`, as chrono writes it.
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::Serializer;

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&super::Instant(t)),
                None => s.serialize_none(),
            }
        }
    }

    struct Instant<'a>(&'a DateTime<Utc>);

    impl Serialize for Instant<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize(self.0, s)
        }
    }

    /// Writes `t` into `buf` and gives its length; `None` for what chrono writes otherwise (a
    /// year outside 0 to 9999, a leap second).
    fn write(t: &DateTime<Utc>, buf: &mut [u8; 30]) -> Option<usize> {
        // Once: each accessor of a `DateTime` works out its local time again.
        let t = t.naive_utc();
        let year = t.year();
        let nanos = t.nanosecond();
        if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
            return None;
        }
        let mut out = Out { buf, len: 0 };
        out.digits(year as u32, 4);
        for (separator, value) in [
            (b'-', t.month()),
            (b'-', t.day()),
            (b'T', t.hour()),
            (b':', t.minute()),
            (b':', t.second()),
        ] {
            out.byte(separator);
            out.digits(value, 2);
        }
        if nanos != 0 {
            out.byte(b'.');
            if nanos.is_multiple_of(1_000_000) {
                out.digits(nanos / 1_000_000, 3);
            } else if nanos.is_multiple_of(1_000) {
                out.digits(nanos / 1_000, 6);
            } else {
                out.digits(nanos, 9);
            }
        }
        out.byte(b'Z');
        Some(out.len)
    }

    /// At most 4 + 5 × 3 + 10 + 1 = 30 bytes are written.
    struct Out<'a> {
        buf: &'a mut [u8; 30],
        len: usize,
    }

    impl Out<'_> {
        fn byte(&mut self, b: u8) {
            self.buf[self.len] = b;
            self.len += 1;
        }

        /// `value` in exactly `width` digits, zero-padded (`value` < 10^`width`).
        fn digits(&mut self, mut value: u32, width: usize) {
            for i in (0..width).rev() {
                self.buf[self.len + i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
            self.len += width;
        }
    }
}

/// The JSON type of a value, for error messages ("found a string").
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDate, TimeZone, Utc};

    use crate::assessment::{BloodGasValues, CriterionValue};
    use crate::snapshot::ObservationValue;

    #[derive(serde::Serialize)]
    struct Fast {
        #[serde(serialize_with = "super::instant::serialize")]
        at: DateTime<Utc>,
        #[serde(serialize_with = "super::instant::option::serialize")]
        maybe: Option<DateTime<Utc>>,
    }

    #[derive(serde::Serialize)]
    struct Chrono {
        at: DateTime<Utc>,
        maybe: Option<DateTime<Utc>>,
    }

    fn both(at: DateTime<Utc>, maybe: Option<DateTime<Utc>>) -> (String, String) {
        (
            serde_json::to_string(&Fast { at, maybe }).unwrap(),
            serde_json::to_string(&Chrono { at, maybe }).unwrap(),
        )
    }

    #[test]
    fn instants_are_written_as_chrono_writes_them() {
        let mut instants = Vec::new();
        for (y, mo, d) in [
            (0, 1, 1),
            (1, 2, 3),
            (999, 12, 31),
            (1970, 1, 1),
            (2024, 2, 29),
        ] {
            instants.push(NaiveDate::from_ymd_opt(y, mo, d).unwrap());
        }
        for (y, mo, d) in [(2156, 5, 20), (9999, 12, 31), (-1, 6, 1), (10_000, 1, 1)] {
            instants.push(NaiveDate::from_ymd_opt(y, mo, d).unwrap());
        }
        let nanos = [
            0,
            1,
            9,
            1_000,
            120_000,
            999_999,
            1_000_000,
            500_000_000,
            123_456_789,
            999_999_999,
            1_500_000_000, // a leap second: chrono writes second 60
        ];
        let mut seen = 0;
        for date in &instants {
            for (h, mi, s) in [(0, 0, 0), (9, 5, 7), (23, 59, 59), (10, 24, 0)] {
                for &nano in &nanos {
                    let Some(naive) = date.and_hms_nano_opt(h, mi, s, nano) else {
                        continue;
                    };
                    let at = Utc.from_utc_datetime(&naive);
                    for maybe in [None, Some(at)] {
                        let (fast, chrono) = both(at, maybe);
                        assert_eq!(fast, chrono);
                        seen += 1;
                    }
                }
            }
        }
        // A pseudo-random sweep over the years the service meets (MIMIC's are shifted to 2110
        // to 2210).
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = (x % (300 * 365 * 86_400)) as i64 + 1_000_000_000;
            let nano = match x % 4 {
                0 => 0,
                1 => (x >> 20) as u32 % 1_000 * 1_000_000,
                2 => (x >> 20) as u32 % 1_000_000 * 1_000,
                _ => (x >> 20) as u32 % 1_000_000_000,
            };
            let at = Utc.timestamp_opt(secs * 4, nano).unwrap();
            let (fast, chrono) = both(at, Some(at));
            assert_eq!(fast, chrono);
            seen += 1;
        }
        assert!(seen > 20_000, "{seen}");
    }

    fn round_trip(v: &CriterionValue) -> CriterionValue {
        serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
    }

    #[test]
    fn criterion_values_read_back_as_written() {
        let values = [
            CriterionValue::Null,
            CriterionValue::Boolean(true),
            CriterionValue::Number(20.0),
            CriterionValue::Number(0.1 + 0.2),
            CriterionValue::Range {
                at_least: 1.0,
                at_most: 2.5,
            },
            // A partial score's lower bound: no upper bound (written as null).
            CriterionValue::Range {
                at_least: 2.0,
                at_most: f64::INFINITY,
            },
            CriterionValue::Text("moderate".into()),
            CriterionValue::Codes(vec!["PRONE_POSITIONING".into()]),
            CriterionValue::BloodGas(BloodGasValues {
                pao2: Some(60.0),
                fio2: Some(0.8),
                pf_ratio: Some(75.0),
                paco2: None,
                ph: Some(7.31),
            }),
        ];
        for v in &values {
            assert_eq!(&round_trip(v), v);
        }
    }

    #[test]
    fn malformed_criterion_values_are_refused() {
        for bad in [
            r#"{"at_least": 1}"#,
            r#"{"pao2": 1, "extra": 2}"#,
            r#"[1, 2]"#,
        ] {
            assert!(
                serde_json::from_str::<CriterionValue>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn observation_values_are_numbers_or_booleans() {
        assert_eq!(
            serde_json::from_str::<ObservationValue>("42").unwrap(),
            ObservationValue::Number(42.0)
        );
        assert_eq!(
            serde_json::from_str::<ObservationValue>("7.35").unwrap(),
            ObservationValue::Number(7.35)
        );
        assert_eq!(
            serde_json::from_str::<ObservationValue>("false").unwrap(),
            ObservationValue::Boolean(false)
        );
        let err = serde_json::from_str::<ObservationValue>(r#""42""#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("found a string"), "{err}");
    }
}
