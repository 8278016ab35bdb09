//! The dispatcher: claims due deliveries, delivers them concurrently, records each attempt.
//!
//! Any number of dispatchers (one per `lrt serve` replica) share the outbox: a claim is a row
//! lock skipped by the others plus a lease. Between polls an idle dispatcher sleeps
//! `poll_interval_ms`, or less when this process has just written a page. On shutdown it stops
//! claiming and finishes the deliveries in flight; a delivery cut short by a crash is claimed
//! again when its lease runs out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::outbox::{self, AttemptOutcome, Claimed, Recorded};
use super::{Channel, Pager};

pub struct Dispatcher {
    pool: PgPool,
    pager: Pager,
    worker: Arc<str>,
}

/// This process's default dispatcher name: host name and process id.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "lrt".into());
    format!("{host}-{}", std::process::id())
}

impl Dispatcher {
    pub fn new(pool: PgPool, pager: Pager) -> Dispatcher {
        let worker = pager
            .config
            .worker_id
            .clone()
            .unwrap_or_else(default_worker_id);
        Dispatcher {
            pool,
            pager,
            worker: Arc::from(worker),
        }
    }

    /// Runs until `stop` becomes true, then drains the deliveries in flight.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let config = self.pager.config.clone();
        let poll = Duration::from_millis(config.poll_interval_ms);
        let lease = Duration::from_millis(config.lease_ms);
        let mut in_flight: JoinSet<()> = JoinSet::new();
        tracing::info!(worker = %self.worker, "page dispatcher started");
        loop {
            if *stop.borrow() {
                break;
            }
            while in_flight.try_join_next().is_some() {}
            // Keep at most `batch` deliveries in flight.
            let room = config.batch - in_flight.len() as i64;
            let claimed = if room > 0 {
                match outbox::claim(&self.pool, &self.worker, room, lease).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "page dispatcher: cannot claim");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            let got = claimed.len();
            for c in claimed {
                let (pool, pager, worker) =
                    (self.pool.clone(), self.pager.clone(), self.worker.clone());
                let span = delivery_span(&c);
                in_flight.spawn(
                    async move { deliver_one(&pool, &pager, &worker, c).await }.instrument(span),
                );
            }
            if got > 0 {
                continue;
            }
            tokio::select! {
                _ = self.pager.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                changed = stop.changed() => if changed.is_err() { break },
            }
        }
        while in_flight.join_next().await.is_some() {}
        tracing::info!(worker = %self.worker, "page dispatcher stopped");
    }
}

/// The span of one delivery attempt: in the trace of the request that wrote the page.
fn delivery_span(claimed: &Claimed) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::info_span!(
        "page.deliver",
        page = %claimed.page_id,
        channel = %claimed.channel,
        attempt = claimed.attempts,
    );
    if let Some(traceparent) = &claimed.trace_context {
        let _ = span.set_parent(crate::service::telemetry::context_from_traceparent(
            traceparent,
        ));
    }
    span
}

/// One step: deliver a claimed page on its channel and record the attempt (in the span
/// [`delivery_span`] made).
async fn deliver_one(pool: &PgPool, pager: &Pager, worker: &str, claimed: Claimed) {
    let started_at = Utc::now();
    let clock = Instant::now();
    let result = match Channel::parse(&claimed.channel) {
        Some(channel) => pager.channels.deliver(channel, &claimed.payload).await,
        None => Err(super::channel::DeliveryError::NotConfigured(
            claimed.channel.clone(),
        )),
    };
    let outcome = AttemptOutcome {
        started_at,
        duration: clock.elapsed(),
        http_status: match &result {
            Ok(s) => Some(*s),
            Err(e) => e.http_status(),
        },
        error: result.as_ref().err().map(|e| e.to_string()),
    };
    let wait = pager.config.backoff(claimed.attempts);
    let retry_at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::TimeDelta::MAX);
    // The outcome must be recorded: retry a database failure a few times (else the lease runs
    // out and the delivery is attempted again, which the idempotency key makes harmless).
    let mut tries = 0;
    let recorded = loop {
        match outbox::record(pool, &claimed, worker, &outcome, retry_at).await {
            Ok(r) => break Some(r),
            Err(e) if tries < 3 => {
                tries += 1;
                tracing::warn!(error = %e, "page dispatcher: cannot record an attempt; retrying");
                tokio::time::sleep(Duration::from_millis(200 * tries)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "page dispatcher: attempt not recorded");
                break None;
            }
        }
    };
    let label = match recorded {
        Some(Recorded::Delivered) => "delivered",
        Some(Recorded::Retry) => "retry",
        Some(Recorded::Dead) => "dead",
        Some(Recorded::ClaimLost) => "claim_lost",
        None => "unrecorded",
    };
    metrics::counter!("lrt_page_deliveries_total", "channel" => claimed.channel.clone(), "outcome" => label)
        .increment(1);
    match recorded {
        Some(Recorded::Dead) => tracing::error!(
            page = %claimed.page_id, channel = %claimed.channel, attempts = claimed.attempts,
            "page dead-lettered: not delivered within the horizon"
        ),
        Some(Recorded::Retry) => tracing::warn!(
            page = %claimed.page_id, channel = %claimed.channel, attempts = claimed.attempts,
            error = outcome.error.as_deref().unwrap_or(""), "page delivery failed; will retry"
        ),
        _ => {
            tracing::info!(page = %claimed.page_id, channel = %claimed.channel, outcome = label, "page delivery")
        }
    }
}
