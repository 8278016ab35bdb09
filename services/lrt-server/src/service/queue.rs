//! The runner of a leased work queue in PostgreSQL, shared by the page dispatcher
//! ([`crate::service::paging::dispatch`]) and the subscription inbox worker
//! ([`crate::service::inbox::worker`]).
//!
//! A queue is a table whose due rows a worker claims with `FOR UPDATE SKIP LOCKED` and a lease:
//! any number of workers (one per `lrt serve` replica) share it, and a row whose worker died is
//! claimed again when its lease runs out. The runner keeps at most `batch` items in flight,
//! hands each to the queue's one-step function on its own task, and between polls sleeps
//! `poll`, or less when this process has just written a row (the queue's wake-up) or an item
//! finishes. On shutdown it stops claiming and finishes what it holds.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

/// How a queue is polled.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// The idle wait between two claims.
    pub poll: Duration,
    /// How long a claim is held before another worker may take the row.
    pub lease: Duration,
    /// The most items in flight at once.
    pub batch: i64,
}

impl Polling {
    /// From a configuration's `poll_interval_ms`, `lease_ms` and `batch`.
    pub fn from_config(poll_interval_ms: u64, lease_ms: u64, batch: i64) -> Polling {
        Polling {
            poll: Duration::from_millis(poll_interval_ms),
            lease: Duration::from_millis(lease_ms),
            batch,
        }
    }
}

/// A leased queue: how its rows are claimed and what one step does with a claimed row.
pub trait LeasedQueue: Send + 'static {
    /// A claimed row.
    type Item: Send + 'static;

    /// What the log calls this worker ("page dispatcher").
    const NAME: &'static str;

    fn polling(&self) -> Polling;

    /// Set when this process writes a row, so that the runner claims it at once.
    fn wake(&self) -> Arc<Notify>;

    /// Claims up to `limit` due rows for `worker`, each for `lease`.
    fn claim(
        &self,
        worker: &str,
        limit: i64,
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<Self::Item>, sqlx::Error>> + Send;

    /// One step: handle a claimed row and record how it went (run on a task of its own).
    fn step(
        &self,
        worker: &Arc<str>,
        item: Self::Item,
    ) -> impl Future<Output = ()> + Send + 'static;

    /// Called before each claim (the inbox refreshes its backlog gauges); nothing by default.
    fn tick(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Runs `queue` as `worker` until `stop` becomes true, then finishes the items in flight.
pub async fn run<Q: LeasedQueue>(mut queue: Q, worker: Arc<str>, mut stop: watch::Receiver<bool>) {
    let polling = queue.polling();
    let wake = queue.wake();
    let mut in_flight: JoinSet<()> = JoinSet::new();
    tracing::info!(worker = %worker, "{} started", Q::NAME);
    loop {
        if *stop.borrow() {
            break;
        }
        while in_flight.try_join_next().is_some() {}
        queue.tick().await;
        let room = polling.batch - in_flight.len() as i64;
        let claimed = if room > 0 {
            match queue.claim(&worker, room, polling.lease).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "{}: cannot claim", Q::NAME);
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let got = claimed.len();
        for item in claimed {
            in_flight.spawn(queue.step(&worker, item));
        }
        if got > 0 {
            continue;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(polling.poll) => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            changed = stop.changed() => if changed.is_err() { break },
        }
    }
    while in_flight.join_next().await.is_some() {}
    tracing::info!(worker = %worker, "{} stopped", Q::NAME);
}

/// Records the outcome of a step with `record`, retrying a database failure three times
/// (after 200, 400 and 600 ms). `None`: not recorded; the lease then runs out and the row is
/// handled again, which its idempotency key makes harmless.
pub async fn record_with_retries<R, F, Fut>(queue: &str, mut record: F) -> Option<R>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<R, sqlx::Error>>,
{
    let mut tries = 0;
    loop {
        match record().await {
            Ok(r) => return Some(r),
            Err(e) if tries < 3 => {
                tries += 1;
                tracing::warn!(error = %e, "{queue}: cannot record an attempt; retrying");
                tokio::time::sleep(Duration::from_millis(200 * tries)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "{queue}: attempt not recorded");
                return None;
            }
        }
    }
}

/// This process's default worker name: host name and process id.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "lrt".into());
    format!("{host}-{}", std::process::id())
}
