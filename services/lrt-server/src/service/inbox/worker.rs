//! The inbox worker: claims due notifications, evaluates them concurrently, records each
//! outcome, and keeps the backlog gauges current. Shaped like the page dispatcher
//! ([`crate::service::paging::dispatch`]): any number of workers share the table; on shutdown
//! a worker stops claiming and finishes what it holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::store::{self, Attempt, Claimed, Recorded};
use super::{StoredFocus, evaluate_notification, is_permanent};
use crate::service::error::ApiError;
use crate::service::state::AppState;

/// How often the backlog gauges are refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(5);

pub struct Worker {
    state: AppState,
    name: Arc<str>,
}

impl Worker {
    pub fn new(state: AppState) -> Worker {
        let name = state
            .config
            .paging
            .worker_id
            .clone()
            .unwrap_or_else(crate::service::paging::dispatch::default_worker_id);
        Worker {
            state,
            name: Arc::from(name),
        }
    }

    /// Runs until `stop` becomes true, then finishes the evaluations in flight.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let config = self.state.config.ehr.inbox.clone();
        let poll = Duration::from_millis(config.poll_interval_ms);
        let lease = Duration::from_millis(config.lease_ms);
        let mut in_flight: JoinSet<()> = JoinSet::new();
        let mut gauges_at = Instant::now() - GAUGE_EVERY;
        tracing::info!(worker = %self.name, "subscription inbox worker started");
        loop {
            if *stop.borrow() {
                break;
            }
            while in_flight.try_join_next().is_some() {}
            if gauges_at.elapsed() >= GAUGE_EVERY {
                gauges_at = Instant::now();
                refresh_gauges(&self.state).await;
            }
            let room = config.batch - in_flight.len() as i64;
            let claimed = if room > 0 {
                match store::claim(&self.state.pool, &self.name, room, lease).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "subscription inbox: cannot claim");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            let got = claimed.len();
            for c in claimed {
                let state = self.state.clone();
                in_flight.spawn(async move { process(&state, c).await });
            }
            if got > 0 {
                continue;
            }
            tokio::select! {
                _ = self.state.inbox_wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                changed = stop.changed() => if changed.is_err() { break },
            }
        }
        while in_flight.join_next().await.is_some() {}
        tracing::info!(worker = %self.name, "subscription inbox worker stopped");
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
    // The outcome must be recorded: retry a database failure a few times (else the lease runs
    // out and the notification is evaluated again, which its idempotency key makes harmless).
    let mut tries = 0;
    let recorded = loop {
        match store::record(&state.pool, &claimed, &attempt).await {
            Ok(r) => break Some(r),
            Err(e) if tries < 3 => {
                tries += 1;
                tracing::warn!(error = %e, "subscription inbox: cannot record an attempt; retrying");
                tokio::time::sleep(Duration::from_millis(200 * tries)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "subscription inbox: attempt not recorded");
                break None;
            }
        }
    };
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
