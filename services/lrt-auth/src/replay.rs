//! Replay protection: each `jti` is accepted once per issuer.
//!
//! [`ReplayStore`] is the seam: the in-memory [`MemoryReplayStore`] here serves tests and a
//! single-node dev server; a shared store (Postgres) implements the same trait for several
//! replicas. A store must remember `(iss, jti)` at least until the `keep_until` it is given
//! (the token's `exp` plus the clock skew, after which the verifier refuses the token anyway)
//! and may forget it after that.
//!
//! The trait returns a boxed future so it can be used as `dyn ReplayStore` (e.g.
//! `Arc<dyn ReplayStore>` in the server's state, switching between memory and Postgres); the
//! allocation is negligible next to a database round trip.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// A replay store could not answer (database down, store full, ...). The verifier turns it
/// into [`crate::Rejection::ReplayStoreUnavailable`].
#[derive(Debug, thiserror::Error)]
#[error("replay store: {message}")]
pub struct StoreError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> StoreError {
        StoreError {
            message: message.into(),
            source: None,
        }
    }

    /// An error caused by `source` (e.g. a database error).
    pub fn from_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// The future returned by [`ReplayStore::first_use`].
pub type FirstUse<'a> = Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + 'a>>;

/// Remembers which `(iss, jti)` pairs were used.
pub trait ReplayStore: Send + Sync {
    /// Records `(iss, jti)` and returns `true` if it was not already recorded (and still
    /// remembered), `false` if it was: a replay. The check and the insert must be one atomic
    /// step (e.g. `INSERT ... ON CONFLICT DO NOTHING` and look at the row count), so two
    /// concurrent uses of one `jti` cannot both get `true`. `keep_until` is the earliest time
    /// the record may be forgotten.
    fn first_use<'a>(
        &'a self,
        iss: &'a str,
        jti: &'a str,
        keep_until: DateTime<Utc>,
    ) -> FirstUse<'a>;
}

impl<T: ReplayStore + ?Sized> ReplayStore for Arc<T> {
    fn first_use<'a>(
        &'a self,
        iss: &'a str,
        jti: &'a str,
        keep_until: DateTime<Utc>,
    ) -> FirstUse<'a> {
        (**self).first_use(iss, jti, keep_until)
    }
}

/// An in-memory [`ReplayStore`] for tests and a single-node dev server: entries live until
/// their `keep_until` and are purged as later calls pass it. It holds at most `capacity`
/// entries; when full of unexpired entries it fails (the token is refused) rather than forget
/// a `jti` early. Not shared between processes: with several replicas use a shared store.
#[derive(Debug)]
pub struct MemoryReplayStore {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// `(iss, jti)` to `keep_until`.
    seen: HashMap<(String, String), DateTime<Utc>>,
    /// The same entries ordered by `keep_until`, for purging.
    by_expiry: BTreeSet<(DateTime<Utc>, String, String)>,
}

impl Default for MemoryReplayStore {
    /// A store of at most 100,000 entries.
    fn default() -> MemoryReplayStore {
        MemoryReplayStore::new(100_000)
    }
}

impl MemoryReplayStore {
    /// A store of at most `capacity` unexpired entries.
    pub fn new(capacity: usize) -> MemoryReplayStore {
        MemoryReplayStore {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The number of entries currently remembered (expired ones included until purged).
    pub fn len(&self) -> usize {
        self.lock().seen.len()
    }

    /// Whether no entry is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`ReplayStore::first_use`] at the time `now`.
    fn first_use_at(
        &self,
        iss: &str,
        jti: &str,
        keep_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        while let Some(first) = inner.by_expiry.first() {
            if first.0 > now {
                break;
            }
            if let Some((_, iss, jti)) = inner.by_expiry.pop_first() {
                inner.seen.remove(&(iss, jti));
            }
        }
        let key = (iss.to_owned(), jti.to_owned());
        if inner.seen.contains_key(&key) {
            return Ok(false);
        }
        if inner.seen.len() >= self.capacity {
            return Err(StoreError::new("in-memory replay store is full"));
        }
        inner.seen.insert(key, keep_until);
        inner
            .by_expiry
            .insert((keep_until, iss.to_owned(), jti.to_owned()));
        Ok(true)
    }
}

impl ReplayStore for MemoryReplayStore {
    fn first_use<'a>(
        &'a self,
        iss: &'a str,
        jti: &'a str,
        keep_until: DateTime<Utc>,
    ) -> FirstUse<'a> {
        let result = self.first_use_at(iss, jti, keep_until, crate::now());
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn remembers_until_keep_until_then_forgets() {
        let store = MemoryReplayStore::new(10);
        let t0 = crate::now();
        let until = t0 + Duration::seconds(300);
        assert!(store.first_use_at("iss", "j1", until, t0).unwrap());
        assert!(!store.first_use_at("iss", "j1", until, t0).unwrap());
        // Same jti, other issuer: a different token.
        assert!(store.first_use_at("other", "j1", until, t0).unwrap());
        assert!(
            !store
                .first_use_at("iss", "j1", until, t0 + Duration::seconds(299))
                .unwrap()
        );
        // Past keep_until it is purged (the verifier refuses such a token as expired anyway).
        assert!(
            store
                .first_use_at("iss", "j2", until, t0 + Duration::seconds(301))
                .unwrap()
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn full_store_fails_instead_of_forgetting() {
        let store = MemoryReplayStore::new(2);
        let t0 = crate::now();
        let until = t0 + Duration::seconds(60);
        assert!(store.first_use_at("i", "a", until, t0).unwrap());
        assert!(store.first_use_at("i", "b", until, t0).unwrap());
        assert!(store.first_use_at("i", "c", until, t0).is_err());
        assert!(!store.first_use_at("i", "a", until, t0).unwrap());
        // Once the entries expire there is room again.
        assert!(
            store
                .first_use_at("i", "c", until, t0 + Duration::seconds(61))
                .unwrap()
        );
    }
}
