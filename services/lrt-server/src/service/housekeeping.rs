//! Housekeeping that every replica runs on a timer, beside the request path:
//!
//! * the backlog gauges of the page outbox (`lrt_page_outbox_pending`,
//!   `lrt_page_outbox_oldest_pending_seconds`, `lrt_page_outbox_dead_letter`), refreshed every
//!   [`GAUGE_PERIOD`], so that an alert sees a page stuck before a clinician misses it;
//! * the purge of expired `jti` replay entries every [`PURGE_PERIOD`] (a token past its `exp`
//!   is refused whatever the table holds, so an expired entry protects nothing), and of expired
//!   dashboard sessions (they name the person) and unfinished logins. One replica at a time:
//!   the purge runs under a transaction-scoped advisory lock that the others skip;
//! * the retention purge ([`super::retention`]) every [`RETENTION_PERIOD`] when `[retention]`
//!   sets a horizon, also one replica at a time.
//!
//! One step ([`tick`]) does the work due; [`run`] calls it until shutdown. A failing step is
//! logged and retried at the next tick; it never stops the service.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::watch;

use super::retention::RetentionConfig;

/// How often the outbox gauges are refreshed.
pub const GAUGE_PERIOD: Duration = Duration::from_secs(15);
/// How often expired replay entries are purged.
pub const PURGE_PERIOD: Duration = Duration::from_secs(600);
/// How often the retention purge runs (when configured).
pub const RETENTION_PERIOD: Duration = Duration::from_secs(3600);
/// The advisory lock key of the purge (any fixed number unique to this service).
const PURGE_LOCK: i64 = 0x4c52_545f_5055_5247; // "LRT_PURG"

/// The page outbox as the gauges show it.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct OutboxBacklog {
    /// Deliveries still to make.
    pub pending: i64,
    /// Age of the oldest pending delivery's page, in seconds (0 when none is pending).
    pub oldest_pending_seconds: f64,
    /// Deliveries given up (dead letter), awaiting a person.
    pub dead: i64,
}

/// Counts the outbox backlog.
pub async fn outbox_backlog(pool: &PgPool) -> Result<OutboxBacklog, sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'pending') AS pending, \
           COALESCE(EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE state = 'pending')), 0)::float8 \
             AS oldest_pending_seconds, \
           count(*) FILTER (WHERE state = 'dead') AS dead \
         FROM page_delivery WHERE state <> 'delivered'",
    )
    .fetch_one(pool)
    .await
}

/// What one purge of expired rows removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExpiredPurged {
    /// `jwt_replay` entries.
    pub jti: u64,
    /// `dashboard_session` rows.
    pub dashboard_sessions: u64,
    /// `dashboard_login` rows (logins never finished).
    pub dashboard_logins: u64,
}

/// Purges expired replay entries, dashboard sessions and logins unless another replica is doing
/// it; what was removed (None: another replica holds the lock).
pub async fn purge_expired(pool: &PgPool) -> Result<Option<ExpiredPurged>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(PURGE_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(None);
    }
    let jti = super::store::purge_expired_jti(&mut *tx).await?;
    let dashboard = super::dashboard::sessions::purge_expired(&mut tx).await?;
    tx.commit().await?;
    Ok(Some(ExpiredPurged {
        jti,
        dashboard_sessions: dashboard.sessions,
        dashboard_logins: dashboard.logins,
    }))
}

/// What is due at a tick.
#[derive(Debug, Default)]
pub struct Schedule {
    last_purge: Option<Instant>,
    last_retention: Option<Instant>,
}

/// One step: the gauges, and the purges when their period has passed since the last one (the
/// first step does them).
#[tracing::instrument(name = "housekeeping.tick", skip_all)]
pub async fn tick(pool: &PgPool, retention: &RetentionConfig, schedule: &mut Schedule) {
    match outbox_backlog(pool).await {
        Ok(b) => {
            metrics::gauge!("lrt_page_outbox_pending").set(b.pending as f64);
            metrics::gauge!("lrt_page_outbox_oldest_pending_seconds").set(b.oldest_pending_seconds);
            metrics::gauge!("lrt_page_outbox_dead_letter").set(b.dead as f64);
        }
        Err(e) => tracing::warn!(error = %e, "housekeeping: cannot count the page outbox"),
    }
    let due = schedule
        .last_purge
        .is_none_or(|t| t.elapsed() >= PURGE_PERIOD);
    if due {
        match purge_expired(pool).await {
            Ok(purged) => {
                schedule.last_purge = Some(Instant::now());
                if let Some(p) = purged {
                    metrics::counter!("lrt_jwt_replay_purged_total").increment(p.jti);
                    metrics::counter!("lrt_dashboard_sessions_purged_total")
                        .increment(p.dashboard_sessions);
                    tracing::debug!(
                        jti = p.jti,
                        dashboard_sessions = p.dashboard_sessions,
                        dashboard_logins = p.dashboard_logins,
                        "expired rows purged"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "housekeeping: expiry purge failed; will retry"),
        }
    }
    let due = retention.enabled()
        && schedule
            .last_retention
            .is_none_or(|t| t.elapsed() >= RETENTION_PERIOD);
    if due {
        match super::retention::purge(pool, retention).await {
            Ok(done) => {
                schedule.last_retention = Some(Instant::now());
                if let Some(p) = done {
                    tracing::info!(
                        evaluations_anonymised = p.evaluations_anonymised,
                        pages_anonymised = p.pages_anonymised,
                        notifications_anonymised = p.notifications_anonymised,
                        rows_deleted = p.rows_deleted,
                        "retention purge"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "housekeeping: retention purge failed; will retry")
            }
        }
    }
}

/// Runs [`tick`] every [`GAUGE_PERIOD`] until `stop` turns true.
pub async fn run(pool: PgPool, retention: RetentionConfig, mut stop: watch::Receiver<bool>) {
    let mut schedule = Schedule::default();
    loop {
        tick(&pool, &retention, &mut schedule).await;
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(GAUGE_PERIOD) => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}
