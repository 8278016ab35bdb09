//! Group commit: calls that finish while another commit is under way wait for it, then are
//! committed together, in one transaction ([`super::batch`]).
//!
//! A call hands its [`Commit`] over and waits for its result. If fewer than [`MAX_WRITERS`] groups
//! are being written, a writer task is started; it takes every waiting call (at most
//! [`MAX_GROUP`]), writes them, sends each its result, and goes on while calls wait. A call alone
//! is written at once (a batch of one); under load the calls that arrive during one commit share
//! the next, and PostgreSQL's statements and commits per call fall with the load (issue 9: 7
//! statements and a commit per call were half of PostgreSQL's CPU).
//!
//! The writer is its own task: a caller that goes away (the client disconnected) does not cancel
//! the commit of its call or of the others in its group. A call is answered only after its group
//! has committed, so an answer still means its evaluation is stored.
//!
//! The writer runs on a thread of its own (a current-thread runtime) with its own connections
//! ([`MAX_WRITERS`] of them, beside the service's pool). On the service's workers, each of the
//! writer's round trips to PostgreSQL waited until a worker was done with the request it was
//! reading; the writer's PostgreSQL backend idled meanwhile, and every call waits for the writer
//! (`make load`, 4 December 2026, 16 connections: 88 % of the 2 cores busy on its own thread
//! against 80 % on the workers, and 13 % more calls per second at the same CPU per call).

use std::sync::{Arc, Mutex, MutexGuard};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::{Notify, oneshot};
use tracing::Instrument;

use super::{Commit, Stored, batch};

/// The most calls in one transaction.
pub const MAX_GROUP: usize = 64;

/// The most groups being written at once. One: with two (`make load`, 4 December 2026, 16
/// connections), the machine idled less (88 % busy against 82 %) but groups were smaller
/// (1.26 transactions per call, lookups included, against 1.14) and PostgreSQL's CPU per call
/// higher (1.29 and 1.41 ms against 0.94 to 1.22), with no gain in calls per second. Again
/// after the typed read and with the batch as one statement (4 December 2026, 3 interleaved
/// pairs): 93 % busy against 84 to 87 %, 3.3 calls per transaction against 6.5, PostgreSQL 0.84
/// to 0.99 ms per call against 0.69 to 0.84, and 765, 857, 738 calls/s against 788, 839, 857.
pub const MAX_WRITERS: usize = 1;

/// Why a call's commit has no result.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The database could not be reached for the call's group: every call of it gets this
    /// error at once (none is tried again alone, each waiting for the pool's timeout).
    #[error("the database is unavailable: {0}")]
    Unavailable(Arc<sqlx::Error>),
    /// The writer stopped before writing the call (it panicked): nothing of the call is stored.
    #[error("the group commit writer stopped before storing the call")]
    WriterStopped,
}

type Reply = oneshot::Sender<Result<Stored, GroupError>>;

/// A call waiting: its commit, where its result goes, and its `store.commit` span (the group's
/// span follows from it, so a trace of the call leads to the group that stored it).
struct Waiting {
    commit: Commit,
    reply: Reply,
    span: tracing::Span,
}

/// The calls waiting for a commit. Cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Inner>,
}

struct Inner {
    /// The writer's runtime (on its own thread, which ends when this is dropped).
    runtime: WriterThread,
    /// The writer's own connections.
    pool: PgPool,
    /// This process's page dispatcher, woken when a group wrote a page.
    page_written: Option<Arc<Notify>>,
    queue: Mutex<Queue>,
    /// Told when the writer stops with nothing waiting.
    idle: Notify,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    /// Writer tasks running.
    writers: usize,
}

impl GroupCommit {
    /// Commits to the database of `pool` (over connections of its own, with the same options);
    /// a page written wakes `page_written` (the dispatcher). Fails if the writer's thread cannot
    /// be started.
    pub fn new(pool: &PgPool, page_written: Option<Arc<Notify>>) -> std::io::Result<GroupCommit> {
        let runtime = WriterThread::start()?;
        let pool = {
            // Its connections are opened by the writer, on its own runtime.
            let _writer = runtime.handle.enter();
            PgPoolOptions::new()
                .max_connections(MAX_WRITERS as u32)
                .acquire_timeout(pool.options().get_acquire_timeout())
                .connect_lazy_with((*pool.connect_options()).clone())
        };
        Ok(GroupCommit {
            inner: Arc::new(Inner {
                runtime,
                pool,
                page_written,
                queue: Mutex::new(Queue::default()),
                idle: Notify::new(),
            }),
        })
    }

    /// Stores `commit` with the calls committing at the same time: what
    /// [`super::store_evaluations`] would have done with it alone.
    #[tracing::instrument(name = "store.commit", skip_all, fields(evaluation = %commit.active.id))]
    pub async fn commit(&self, commit: Commit) -> Result<Stored, GroupError> {
        let (reply, result) = oneshot::channel();
        let start = {
            let mut queue = self.inner.lock();
            queue.waiting.push(Waiting {
                commit,
                reply,
                span: tracing::Span::current(),
            });
            let start = queue.writers < MAX_WRITERS;
            if start {
                queue.writers += 1;
            }
            start
        };
        if start {
            self.inner
                .runtime
                .handle
                .spawn(Writer::new(self.inner.clone()).run());
        }
        match result.await {
            Ok(stored) => stored,
            Err(_) => Err(GroupError::WriterStopped),
        }
    }

    /// Waits until no call waits and nothing is being written (at shutdown, after the last
    /// request: the commits of callers that went away are finished).
    pub async fn flushed(&self) {
        loop {
            let idle = self.inner.idle.notified();
            let mut idle = std::pin::pin!(idle);
            idle.as_mut().enable();
            if self.inner.lock().writers == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// The writer's thread and its runtime. Dropped, it ends the thread (the tasks still on it are
/// dropped: [`GroupCommit::flushed`] first, at shutdown).
struct WriterThread {
    handle: tokio::runtime::Handle,
    _stop: oneshot::Sender<()>,
}

impl WriterThread {
    fn start() -> std::io::Result<WriterThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("lrt-group-commit".into())
            .spawn(move || {
                let _ = runtime.block_on(stopped);
            })?;
        Ok(WriterThread {
            handle,
            _stop: stop,
        })
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue holds no invariant a panic could break half-way.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The writer task. If it stops abnormally (a panic), the calls it had taken get
/// [`GroupError::WriterStopped`] and a new writer takes the ones still waiting.
struct Writer {
    inner: Arc<Inner>,
    /// Stopped because nothing waits (else it stopped abnormally).
    done: bool,
}

impl Writer {
    fn new(inner: Arc<Inner>) -> Writer {
        Writer { inner, done: false }
    }

    async fn run(mut self) {
        loop {
            let group: Vec<Waiting> = {
                let mut queue = self.inner.lock();
                if queue.waiting.is_empty() {
                    queue.writers -= 1;
                    self.done = true;
                    drop(queue);
                    self.inner.idle.notify_waiters();
                    return;
                }
                let n = queue.waiting.len().min(MAX_GROUP);
                queue.waiting.drain(..n).collect()
            };
            let span = tracing::info_span!("store.group", calls = group.len());
            let mut commits = Vec::with_capacity(group.len());
            let mut replies = Vec::with_capacity(group.len());
            for w in group {
                span.follows_from(&w.span);
                commits.push(w.commit);
                replies.push(w.reply);
            }
            metrics::histogram!("lrt_group_commit_calls").record(commits.len() as f64);
            let results = batch::store_batch(&self.inner.pool, &commits)
                .instrument(span)
                .await;
            let paged = results
                .iter()
                .any(|r| matches!(r, Ok(Stored::New { page: Some(_) })));
            if let (true, Some(dispatcher)) = (paged, &self.inner.page_written) {
                dispatcher.notify_one();
            }
            for (reply, result) in replies.into_iter().zip(results) {
                // A caller that went away no longer waits: its call is stored all the same.
                let _ = reply.send(result);
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Stopped abnormally (a panic, or the runtime shutting down): another writer takes over
        // (its count is this one's).
        let mut queue = self.inner.lock();
        if queue.waiting.is_empty() || tokio::runtime::Handle::try_current().is_err() {
            queue.writers -= 1;
            drop(queue);
            self.inner.idle.notify_waiters();
        } else {
            drop(queue);
            self.inner
                .runtime
                .handle
                .spawn(Writer::new(self.inner.clone()).run());
        }
    }
}
