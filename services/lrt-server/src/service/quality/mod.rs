//! The quality team's aggregates (issue 10, item 1): `/api/v1/quality/…` answers counts, shares,
//! percentiles and lists computed in PostgreSQL over the stored calls, evaluations, feedback and
//! pages, never row by row in Rust.
//!
//! Every aggregate reads the same parameters ([`QualityQuery`], parsed from the query string into
//! validated types: a bad value is a 400 naming the parameter):
//! * the window `[from, to)` (RFC 3339; `to` defaults to now, `from` to 30 days before `to`) and
//!   the `interval` of its time series (`day`, `week` starting Monday, or `month`, in UTC);
//! * filters: `service`, `hook`, `tenant`, `ruleset_version`, `category` (the ECMO category);
//! * the caller's [`Tenancy`]: a caller counts its own issuer and tenant's rows, a quality issuer
//!   every tenant's.
//!
//! One module per aggregate: [`alerts`] (hook calls and cards), [`feedback`] (accepted and
//! overridden cards), [`consults`] (pages and their timeliness), [`shadow`] (active and shadow
//! evaluations of the same call compared), [`patients`] (distinct patients per ECMO category) and
//! [`data_quality`] (what the EHR fails to chart); [`measure`] publishes two of them as FHIR
//! `Measure`s and reports them as `MeasureReport`s, [`csv`] writes any of them as CSV.
//! [`validation`] compares the system's calls with the Lung Rescue Team's adjudications
//! (silent-mode validation: sensitivity, PPV, NPV, lead time).

pub mod alerts;
pub mod consults;
pub mod csv;
pub mod data_quality;
pub mod feedback;
pub mod measure;
pub mod patients;
pub mod shadow;
pub mod validation;

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::Serialize;
use sqlx::Postgres;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;

use super::auth::Tenancy;
use super::error::ApiError;

/// A query parameter with a bad value: 400, naming the parameter.
#[derive(Debug, thiserror::Error)]
#[error("query parameter `{param}`: {message}")]
pub struct ParamError {
    pub param: &'static str,
    pub message: String,
}

impl ParamError {
    fn new(param: &'static str, message: impl Into<String>) -> ParamError {
        ParamError {
            param,
            message: message.into(),
        }
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

/// The length of a time-series bucket (UTC; a week starts on Monday, as in ISO 8601).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Day,
    Week,
    Month,
}

impl Interval {
    /// The most buckets a window may span.
    pub const MAX_BUCKETS: i64 = 1000;

    pub fn parse(text: &str) -> Option<Interval> {
        match text {
            "day" => Some(Interval::Day),
            "week" => Some(Interval::Week),
            "month" => Some(Interval::Month),
            _ => None,
        }
    }

    /// The field name of PostgreSQL's `date_trunc` (and of the series step, `1 <name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }

    /// The longest a bucket can be, in days (a month counts 31).
    fn max_days(self) -> i64 {
        match self {
            Interval::Day => 1,
            Interval::Week => 7,
            Interval::Month => 31,
        }
    }
}

/// The time window `[from, to)` and the series interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub interval: Interval,
}

/// Which rows an aggregate counts (all given filters must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filters {
    /// A CDS service id (`lrt-patient-view`, …).
    pub service: Option<&'static str>,
    /// A hook name (`patient-view`, `order-select`, `order-sign`).
    pub hook: Option<&'static str>,
    /// The `tenant` claim of the calling EHR.
    pub tenant: Option<String>,
    /// The rule-set version of the evaluation (e.g. `0.2.0`).
    pub ruleset_version: Option<String>,
    /// The ECMO category of the evaluation (e.g. `eligible`).
    pub category: Option<String>,
}

/// Cursor pagination of a listing: where to go on from, and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// A position in a listing ordered by (time, id): opaque to the caller, `<micros>.<uuid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: uuid::Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.at.timestamp_micros(), self.id.simple())
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let (micros, id) = text.split_once('.')?;
        let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
        let id = uuid::Uuid::try_parse(id).ok()?;
        Some(Cursor { at, id })
    }
}

/// The query string of every aggregate, as received (each value checked by [`QualityQuery::parse`]).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub interval: Option<String>,
    pub service: Option<String>,
    pub hook: Option<String>,
    pub tenant: Option<String>,
    pub ruleset_version: Option<String>,
    pub category: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

/// What an aggregate counts: its window, its filters and the caller's tenancy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualityQuery {
    pub window: Window,
    pub filters: Filters,
    pub tenancy: Tenancy,
}

/// The earliest and latest years a window may touch (as elsewhere in the service).
const YEARS: std::ops::RangeInclusive<i32> = 1900..=2299;

/// The default window: the 30 days before `to`.
const DEFAULT_DAYS: i64 = 30;

impl QualityQuery {
    /// Parses the common parameters; `now` is the default `to`. A listing's `cursor` and
    /// `limit` are refused here (see [`QualityQuery::parse_listing`]).
    pub fn parse(
        raw: &RawQuery,
        tenancy: Tenancy,
        now: DateTime<Utc>,
    ) -> Result<QualityQuery, ParamError> {
        if raw.cursor.is_some() {
            return Err(ParamError::new("cursor", "this aggregate is not a listing"));
        }
        if raw.limit.is_some() {
            return Err(ParamError::new("limit", "this aggregate is not a listing"));
        }
        Self::common(raw, tenancy, now)
    }

    /// Parses the common parameters and a listing's `cursor` (from the previous answer's
    /// `next_cursor`) and `limit` (1 to 1000, default 100).
    pub fn parse_listing(
        raw: &RawQuery,
        tenancy: Tenancy,
        now: DateTime<Utc>,
    ) -> Result<(QualityQuery, Paging), ParamError> {
        let query = Self::common(raw, tenancy, now)?;
        let after = match raw.cursor.as_deref() {
            None => None,
            Some(text) => Some(Cursor::decode(text).ok_or_else(|| {
                ParamError::new("cursor", "not a cursor given by this API (`next_cursor`)")
            })?),
        };
        let limit = match raw.limit.as_deref() {
            None => 100,
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|l| (1..=1000).contains(l))
                .ok_or_else(|| ParamError::new("limit", "must be an integer from 1 to 1000"))?,
        };
        Ok((query, Paging { after, limit }))
    }

    fn common(
        raw: &RawQuery,
        tenancy: Tenancy,
        now: DateTime<Utc>,
    ) -> Result<QualityQuery, ParamError> {
        let to = match raw.to.as_deref() {
            Some(text) => instant("to", text)?,
            None => now,
        };
        let from = match raw.from.as_deref() {
            Some(text) => instant("from", text)?,
            None => to - Duration::days(DEFAULT_DAYS),
        };
        if from >= to {
            return Err(ParamError::new("from", "must be before `to`"));
        }
        if !YEARS.contains(&from.year()) {
            return Err(ParamError::new(
                "from",
                "must fall in the years 1900 to 2299",
            ));
        }
        let interval = match raw.interval.as_deref() {
            None => Interval::Day,
            Some(text) => Interval::parse(text)
                .ok_or_else(|| ParamError::new("interval", "must be one of day, week, month"))?,
        };
        if to - from > Duration::days(Interval::MAX_BUCKETS * interval.max_days()) {
            return Err(ParamError::new(
                "interval",
                format!(
                    "the window spans more than {} {}s: choose a longer interval or a shorter window",
                    Interval::MAX_BUCKETS,
                    interval.as_str()
                ),
            ));
        }
        let service = match raw.service.as_deref() {
            None => None,
            Some(id) => Some(
                lrt_hooks::services::find(id)
                    .ok_or_else(|| {
                        ParamError::new("service", format!("must be one of {}", service_ids()))
                    })?
                    .id,
            ),
        };
        let hook = match raw.hook.as_deref() {
            None => None,
            Some(name) => Some(
                lrt_hooks::services::Hook::from_name(name)
                    .ok_or_else(|| {
                        ParamError::new(
                            "hook",
                            "must be one of patient-view, order-select, order-sign",
                        )
                    })?
                    .name(),
            ),
        };
        Ok(QualityQuery {
            window: Window { from, to, interval },
            filters: Filters {
                service,
                hook,
                tenant: token("tenant", raw.tenant.as_deref(), 200, |c| {
                    c.is_ascii_graphic()
                })?,
                ruleset_version: token(
                    "ruleset_version",
                    raw.ruleset_version.as_deref(),
                    64,
                    |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'),
                )?,
                category: token("category", raw.category.as_deref(), 64, |c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
                })?,
            },
            tenancy,
        })
    }

    /// Binds `$1`…`$9`, in the order every aggregate's SQL reads them: `from`, `to`, `service`,
    /// `hook`, `tenant`, `ruleset_version`, `category`, then the caller's issuer and tenant
    /// (the issuer `NULL` for a caller who reads every tenant).
    pub fn bind<'q, T>(
        &'q self,
        query: QueryAs<'q, Postgres, T, PgArguments>,
    ) -> QueryAs<'q, Postgres, T, PgArguments> {
        let (iss, tenant) = self.tenancy.binds();
        let f = &self.filters;
        query
            .bind(self.window.from)
            .bind(self.window.to)
            .bind(f.service)
            .bind(f.hook)
            .bind(f.tenant.as_deref())
            .bind(f.ruleset_version.as_deref())
            .bind(f.category.as_deref())
            .bind(iss)
            .bind(tenant)
    }
}

/// The filters on an evaluation `e` bound by [`QualityQuery::bind`] (`$5`…`$9`): tenant, rule-set
/// version, ECMO category, and the caller's tenancy. The tenancy is written as equalities (not
/// `IS NOT DISTINCT FROM`) so that PostgreSQL can use the `(client_iss, tenant, created_at)`
/// index (`migrations/20261204000000_quality.sql`).
pub const EVALUATION_FILTERS: &str = "($5::text IS NULL OR e.tenant = $5) \
    AND ($6::text IS NULL OR e.ruleset_version = $6) \
    AND ($7::text IS NULL OR e.ecmo_category = $7) \
    AND ($8::text IS NULL OR (e.client_iss = $8 \
         AND (e.tenant = $9 OR ($9::text IS NULL AND e.tenant IS NULL))))";

/// The filters of [`EVALUATION_FILTERS`] for a call `c` of `hook_call` and its active evaluation
/// `e`: tenancy and `tenant` are the call's own (an error answer has them too); the rule-set
/// version and the category are the evaluation's (an error answer has none).
pub const CALL_FILTERS: &str = "($5::text IS NULL OR c.tenant = $5) \
    AND ($6::text IS NULL OR e.ruleset_version = $6) \
    AND ($7::text IS NULL OR e.ecmo_category = $7) \
    AND ($8::text IS NULL OR (c.client_iss = $8 \
         AND (c.tenant = $9 OR ($9::text IS NULL AND c.tenant IS NULL))))";

/// The `cards` of an evaluation `e`'s response as a JSON array (`[]` when the response has none:
/// a Subscription or API evaluation answers a summary).
pub const CARDS: &str = "CASE WHEN jsonb_typeof(e.response->'cards') = 'array' \
    THEN e.response->'cards' ELSE '[]'::jsonb END";

/// The time-series buckets of the window as SQL rows `b(start)` (UTC `timestamp`s), with the
/// interval's name bound at `$10`: from the bucket holding `from` to the one holding the last
/// instant before `to`.
pub const BUCKETS: &str = "generate_series(date_trunc($10, $1::timestamptz AT TIME ZONE 'UTC'), \
    ($2::timestamptz - interval '1 microsecond') AT TIME ZONE 'UTC', ('1 ' || $10)::interval) AS b(start)";

fn service_ids() -> String {
    lrt_hooks::services::SERVICES
        .iter()
        .map(|s| s.id)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An RFC 3339 instant.
fn instant(param: &'static str, text: &str) -> Result<DateTime<Utc>, ParamError> {
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|_| {
            ParamError::new(
                param,
                "must be an RFC 3339 date-time, e.g. 2026-12-01T00:00:00Z",
            )
        })?
        .with_timezone(&Utc);
    if !YEARS.contains(&at.year()) {
        return Err(ParamError::new(
            param,
            "must fall in the years 1900 to 2299",
        ));
    }
    Ok(at)
}

/// A free-text filter value: 1 to `max` characters, each allowed by `ok`.
fn token(
    param: &'static str,
    value: Option<&str>,
    max: usize,
    ok: impl Fn(char) -> bool,
) -> Result<Option<String>, ParamError> {
    match value {
        None => Ok(None),
        Some(v) if !v.is_empty() && v.len() <= max && v.chars().all(ok) => Ok(Some(v.to_string())),
        Some(_) => Err(ParamError::new(
            param,
            format!("must be 1 to {max} characters of the allowed set (see the API document)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query string read as the handlers read it (axum's `Query`).
    fn raw(pairs: &[(&str, &str)]) -> RawQuery {
        let query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let uri: axum::http::Uri = format!("/api/v1/quality/alerts?{query}")
            .parse()
            .expect("a URI");
        axum::extract::Query::<RawQuery>::try_from_uri(&uri)
            .expect("a query string")
            .0
    }

    fn now() -> DateTime<Utc> {
        "2026-12-03T10:00:00Z".parse().unwrap()
    }

    fn param_of(pairs: &[(&str, &str)]) -> &'static str {
        QualityQuery::parse(&raw(pairs), Tenancy::All, now())
            .unwrap_err()
            .param
    }

    #[test]
    fn defaults_are_the_30_days_before_now_by_day() {
        let q = QualityQuery::parse(&raw(&[]), Tenancy::All, now()).unwrap();
        assert_eq!(q.window.to, now());
        assert_eq!(q.window.from, now() - Duration::days(30));
        assert_eq!(q.window.interval, Interval::Day);
        assert_eq!(q.filters, Filters::default());
    }

    #[test]
    fn each_bad_value_names_its_parameter() {
        assert_eq!(param_of(&[("from", "yesterday")]), "from");
        assert_eq!(param_of(&[("to", "2026-13-01T00:00:00Z")]), "to");
        assert_eq!(
            param_of(&[
                ("from", "2026-12-02T00:00:00Z"),
                ("to", "2026-12-01T00:00:00Z")
            ]),
            "from"
        );
        assert_eq!(param_of(&[("from", "1800-01-01T00:00:00Z")]), "from");
        assert_eq!(param_of(&[("interval", "hour")]), "interval");
        assert_eq!(
            param_of(&[("from", "2000-01-01T00:00:00Z"), ("interval", "day")]),
            "interval"
        );
        assert_eq!(param_of(&[("service", "lrt-nope")]), "service");
        assert_eq!(param_of(&[("hook", "encounter-start")]), "hook");
        assert_eq!(param_of(&[("tenant", "")]), "tenant");
        assert_eq!(
            param_of(&[("ruleset_version", "0.2.0;drop")]),
            "ruleset_version"
        );
        assert_eq!(param_of(&[("category", "Eligible")]), "category");
        assert_eq!(param_of(&[("cursor", "x")]), "cursor");
        assert_eq!(param_of(&[("limit", "5")]), "limit");
    }

    #[test]
    fn good_values_become_typed_filters() {
        let q = QualityQuery::parse(
            &raw(&[
                ("from", "2026-11-01T00:00:00Z"),
                ("to", "2026-12-01T00:00:00%2B01:00"),
                ("interval", "week"),
                ("service", "lrt-order-sign"),
                ("hook", "order-sign"),
                ("tenant", "hospital-a"),
                ("ruleset_version", "0.2.0"),
                ("category", "eligible"),
            ]),
            Tenancy::All,
            now(),
        )
        .unwrap();
        assert_eq!(
            q.window.to,
            "2026-11-30T23:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(q.window.interval, Interval::Week);
        assert_eq!(q.filters.service, Some("lrt-order-sign"));
        assert_eq!(q.filters.hook, Some("order-sign"));
        assert_eq!(q.filters.category.as_deref(), Some("eligible"));
    }

    #[test]
    fn a_cursor_reads_back_and_a_listing_checks_its_limit() {
        let c = Cursor {
            at: "2026-12-01T10:00:00.123456Z".parse().unwrap(),
            id: uuid::Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("12.not-a-uuid"), None);
        let (_, paging) = QualityQuery::parse_listing(
            &raw(&[("cursor", &c.encode()), ("limit", "7")]),
            Tenancy::All,
            now(),
        )
        .unwrap();
        assert_eq!(
            paging,
            Paging {
                after: Some(c),
                limit: 7
            }
        );
        let e =
            QualityQuery::parse_listing(&raw(&[("limit", "0")]), Tenancy::All, now()).unwrap_err();
        assert_eq!(e.param, "limit");
    }
}
