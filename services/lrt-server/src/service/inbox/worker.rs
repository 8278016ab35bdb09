//! The inbox worker: claims due notifications, evaluates them concurrently, records each
//! outcome, and keeps the backlog gauges current. The inbox is a leased queue run by
//! [`crate::service::queue`], as the page outbox is: any number of workers share the table; on
//! shutdown a worker stops claiming and finishes what it holds. This module is the one step:
//! [`process`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{Notify, watch};

use super::store::{self, Attempt, Claimed, Recorded};
use super::{StoredFocus, evaluate_notification, is_permanent};
use crate::service::error::ApiError;
use crate::service::queue::{self, LeasedQueue, Polling};
use crate::service::state::AppState;

/// How often the backlog gauges are refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(5);

pub struct Worker {
    state: AppState,
    name: Arc<str>,
    gauges_at: Option<Instant>,
}

impl Worker {
    pub fn new(state: AppState) -> Worker {
        let name = state
            .config
            .paging
            .worker_id
            .clone()
            .unwrap_or_else(queue::default_worker_id);
        Worker {
            state,
            name: Arc::from(name),
            gauges_at: None,
        }
    }

    /// Runs until `stop` becomes true, then finishes the evaluations in flight.
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let name = self.name.clone();
        queue::run(self, name, stop).await
    }
}

impl LeasedQueue for Worker {
    type Item = Claimed;
    const NAME: &'static str = "subscription inbox worker";

    fn polling(&self) -> Polling {
        let c = &self.state.config.ehr.inbox;
        Polling::from_config(c.poll_interval_ms, c.lease_ms, c.batch)
    }

    fn wake(&self) -> Arc<Notify> {
        self.state.inbox_wake.clone()
    }

    async fn claim(
        &self,
        worker: &str,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        store::claim(&self.state.pool, worker, limit, lease).await
    }

    fn step(
        &self,
        _worker: &Arc<str>,
        claimed: Claimed,
    ) -> impl Future<Output = ()> + Send + 'static {
        let state = self.state.clone();
        async move { process(&state, claimed).await }
    }

    /// Keeps the backlog gauges current.
    async fn tick(&mut self) {
        if self.gauges_at.is_none_or(|at| at.elapsed() >= GAUGE_EVERY) {
            self.gauges_at = Some(Instant::now());
            refresh_gauges(&self.state).await;
        }
    }
}

/// One step: evaluate a claimed notification and record how it went.
#[tracing::instrument(name = "subscription_inbox.process", skip_all, fields(notification = %claimed.id, attempt = claimed.attempts))]
pub async fn process(state: &AppState, claimed: Claimed) {
    let attempt = match serde_json::from_value::<Vec<StoredFocus>>(claimed.focus.clone()) {
        Err(e) => Attempt::Failed {
            error: format!("the stored focus is unreadable: {e}"),
            kind: "unreadable_focus",
            permanent: true,
            retry_at: Utc::now(),
        },
        Ok(focus) => match evaluate_notification(state, &focus).await {
            Ok(outcomes) => Attempt::Done(outcomes.iter().map(|o| o.evaluation_id).collect()),
            Err(e) => {
                let wait = state.config.ehr.inbox.backoff(claimed.attempts);
                Attempt::Failed {
                    error: match &e {
                        ApiError::Internal(cause) => format!("internal: {cause}"),
                        e => e.to_string(),
                    },
                    kind: e.code(),
                    permanent: is_permanent(&e),
                    retry_at: Utc::now()
                        + chrono::Duration::from_std(wait).unwrap_or(chrono::TimeDelta::MAX),
                }
            }
        },
    };
    // The outcome must be recorded (else the lease runs out and the notification is evaluated
    // again, which its idempotency key makes harmless).
    let recorded = queue::record_with_retries(Worker::NAME, || {
        store::record(&state.pool, &claimed, &attempt)
    })
    .await;
    let label = match recorded {
        Some(Recorded::Done) => "done",
        Some(Recorded::Retry) => "retry",
        Some(Recorded::Dead) => "dead",
        Some(Recorded::ClaimLost) => "claim_lost",
        None => "unrecorded",
    };
    metrics::counter!("lrt_subscription_evaluations_total", "outcome" => label).increment(1);
    // The error text may name a patient: it is stored with the row, the log has its kind.
    let reason = match &attempt {
        Attempt::Failed { kind, .. } => kind,
        Attempt::Done(_) => "",
    };
    match recorded {
        Some(Recorded::Dead) => tracing::error!(
            reason,
            "subscription notification dead-lettered: it could not be evaluated"
        ),
        Some(Recorded::Retry) => {
            tracing::warn!(
                reason,
                "subscription notification not evaluated; will retry"
            )
        }
        _ => tracing::info!(outcome = label, "subscription notification"),
    }
}

async fn refresh_gauges(state: &AppState) {
    match store::backlog(&state.pool).await {
        Ok((pending, dead)) => {
            metrics::gauge!("lrt_subscription_inbox", "state" => "pending").set(pending as f64);
            metrics::gauge!("lrt_subscription_inbox", "state" => "dead").set(dead as f64);
        }
        Err(e) => tracing::warn!(error = %e, "subscription inbox: cannot count the backlog"),
    }
}
