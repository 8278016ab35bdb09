//! The dispatcher: claims due deliveries, delivers them concurrently, records each attempt.
//!
//! The outbox is a leased queue run by [`crate::service::queue`]: any number of dispatchers (one
//! per `lrt serve` replica) share it; between polls an idle dispatcher sleeps
//! `poll_interval_ms`, or less when this process has just written a page; on shutdown it stops
//! claiming and finishes the deliveries in flight; a delivery cut short by a crash is claimed
//! again when its lease runs out. This module is the one step: [`deliver_one`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use super::outbox::{self, AttemptOutcome, Claimed, Recorded};
use super::{Channel, Pager};
use crate::service::queue::{self, LeasedQueue, Polling};

pub struct Dispatcher {
    pool: PgPool,
    pager: Pager,
    worker: Arc<str>,
}

impl Dispatcher {
    pub fn new(pool: PgPool, pager: Pager) -> Dispatcher {
        let worker = pager
            .config
            .worker_id
            .clone()
            .unwrap_or_else(queue::default_worker_id);
        Dispatcher {
            pool,
            pager,
            worker: Arc::from(worker),
        }
    }

    /// Runs until `stop` becomes true, then drains the deliveries in flight.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let worker = self.worker.clone();
        queue::run(self, worker, stop).await
    }
}

impl LeasedQueue for Dispatcher {
    type Item = Claimed;
    const NAME: &'static str = "page dispatcher";

    fn polling(&self) -> Polling {
        let c = &self.pager.config;
        Polling::from_config(c.poll_interval_ms, c.lease_ms, c.batch)
    }

    fn wake(&self) -> Arc<Notify> {
        self.pager.wake.clone()
    }

    async fn claim(
        &self,
        worker: &str,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        outbox::claim(&self.pool, worker, limit, lease).await
    }

    fn step(
        &self,
        worker: &Arc<str>,
        claimed: Claimed,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (pool, pager, worker) = (self.pool.clone(), self.pager.clone(), worker.clone());
        let span = delivery_span(&claimed);
        async move { deliver_one(&pool, &pager, &worker, claimed).await }.instrument(span)
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
    // The outcome must be recorded (else the lease runs out and the delivery is attempted
    // again, which the idempotency key makes harmless).
    let recorded = queue::record_with_retries(Dispatcher::NAME, || {
        outbox::record(pool, &claimed, worker, &outcome, retry_at)
    })
    .await;
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
