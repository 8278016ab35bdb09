//! A real local pager webhook receiver: an HTTP server on a loopback port that verifies each
//! page's HMAC signature, keeps every delivery, and dedupes by `Idempotency-Key` as a real
//! receiver must (delivery is at least once). It can fail on purpose (HTTP 500 for the next N
//! deliveries, or always), answer slowly, and be down (its port reserved, nothing listening).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::port::ReservedPort;

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: String,
    pub body: Value,
    pub signature_ok: bool,
    pub at: Instant,
    /// The answer given (200, or 500 when failing on purpose).
    pub status: u16,
    /// The W3C `traceparent` the page came with (None without one).
    pub traceparent: Option<String>,
}

#[derive(Default)]
struct State {
    received: Mutex<Vec<Received>>,
    fail_next: AtomicUsize,
    always_fail: AtomicBool,
    delay_ms: AtomicU64,
}

pub struct PagerReceiver {
    pub addr: SocketAddr,
    pub url: String,
    pub secret: String,
    state: Arc<State>,
    /// The port while the receiver is down.
    reserved: Option<ReservedPort>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl PagerReceiver {
    /// A receiver listening now.
    pub async fn start(secret: &str) -> PagerReceiver {
        let mut r = PagerReceiver::down(secret).await;
        r.up().await;
        r
    }

    /// A receiver whose port is chosen but that does not listen yet (a pager system that is
    /// down): connections are refused until [`PagerReceiver::up`].
    pub async fn down(secret: &str) -> PagerReceiver {
        let reserved = ReservedPort::new();
        let addr = reserved.addr();
        PagerReceiver {
            addr,
            url: format!("http://{addr}/pages"),
            secret: secret.to_string(),
            state: Arc::new(State::default()),
            reserved: Some(reserved),
            task: None,
        }
    }

    /// Starts listening on the reserved port.
    pub async fn up(&mut self) {
        let listener = self
            .reserved
            .take()
            .expect("the receiver is down (its port held)")
            .listen();
        let state = self.state.clone();
        let secret = self.secret.clone();
        let router = axum::Router::new().route(
            "/pages",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (state, secret) = (state.clone(), secret.clone());
                async move { receive(&state, &secret, &headers, &body).await }
            }),
        );
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        }));
    }

    /// Stops listening (connections are refused again).
    pub async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
            // Held again at once, for the next `up`.
            self.reserved =
                Some(ReservedPort::at(self.addr).expect("the receiver's port can be held again"));
        }
    }

    /// Answer 500 to the next `n` deliveries.
    pub fn fail_next(&self, n: usize) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    pub fn always_fail(&self, on: bool) {
        self.state.always_fail.store(on, Ordering::SeqCst);
    }

    /// Answer after this long (deliveries are then in flight for a while).
    pub fn delay(&self, d: Duration) {
        self.state
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// The deliveries accepted (200), by idempotency key: how many times each key came.
    pub fn accepted_by_key(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in self.received().iter().filter(|r| r.status == 200) {
            *out.entry(r.key.clone()).or_insert(0) += 1;
        }
        out
    }
}

async fn receive(state: &State, secret: &str, headers: &HeaderMap, body: &[u8]) -> StatusCode {
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let timestamp: i64 = header("x-lrt-timestamp").parse().unwrap_or(0);
    let signature_ok = lrt_server::service::paging::channel::verify_signature(
        secret.as_bytes(),
        timestamp,
        body,
        &header("x-lrt-signature"),
    ) && (chrono::Utc::now().timestamp() - timestamp).abs() < 300;
    let failing = state.always_fail.load(Ordering::SeqCst)
        || state
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let status = if !signature_ok {
        StatusCode::UNAUTHORIZED
    } else if failing {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    state.received.lock().unwrap().push(Received {
        key: header("idempotency-key"),
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        signature_ok,
        at: Instant::now(),
        status: status.as_u16(),
        traceparent: Some(header("traceparent")).filter(|t| !t.is_empty()),
    });
    status
}

/// Polls `check` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
