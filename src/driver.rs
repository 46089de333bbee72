//! The production driver: runs the [`Persister`] on tokio against an
//! [`ObjectStore`], and gives the application its API, [`Log`].
//!
//! One task owns the state machine and follows the driving rule. Each
//! request runs in its own task and reports back on a channel. Appenders
//! take permits from a semaphore sized to the byte budget, get their sequence
//! number at once, and wait for durability on the durable watermark, which
//! the driver moves when the machine reports commits durable (no allocation
//! or wake-up per commit: an append's future looks at the watermark when it
//! is awaited). Appends wait in an [`inbox`] the driver empties in one go,
//! and it feeds them to the machine in bursts: one wake-up per take, one
//! clock read and one release of queue places per burst, not per commit
//! (`cargo bench --bench driver`).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch, Semaphore, TryAcquireError};
use tokio::time::Instant;
use tracing::{debug, info_span, Instrument};

use crate::config::{budget_cost, Config, ConfigErrors, COMMIT_BOOKKEEPING_BYTES};
use crate::machine::{Identity, Persister, Stats};
use crate::protocol::{Action, Failure, Input, ListOutcome, PutRequest, Refused};
use crate::store::ObjectStore;
use crate::types::{CommitRange, CommitSeq, Epoch, LeaderId, Time, BATCH_PREFIX};

mod inbox;
// planted-bugs: the driver's deliberate bugs (madsim simulator tests only).
mod planted;
use inbox::{Inbox, ShutdownReply, Taken};
pub use planted::DriverBug;
use planted::Planted;

/// How to open a log.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Batching, pipelining and retry settings.
    pub config: Config,
    /// Seeds this instance's leader id, epoch nonce and retry jitter. `None`
    /// draws them from the operating system; tests pass a seed to replay.
    pub seed: Option<u64>,
    /// Keep each commit's bytes until it is durable and hand them, in
    /// order, to [`Log::durable_commits`]. Each commit keeps its share of
    /// the byte budget until the stream's reader has taken it, so a stream
    /// nobody reads stops appends once the budget is full. (Until a commit
    /// is durable its bytes are held twice, in its batch and for the
    /// stream; the budget counts them once.)
    pub stream_durable_commits: bool,
}

/// Why a log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigErrors),
    /// Recovery or fencing failed.
    #[error("recovery failed: {0}")]
    Recovery(Failure),
    /// The driver stopped before recovery finished.
    #[error("the log's driver stopped during recovery")]
    Closed,
}

/// Why an append was not made durable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// Another instance took over the log; this one will never ack again.
    #[error("{0}")]
    Fenced(Failure),
    /// The log failed (retries exhausted, store refused, protocol violation).
    #[error("the log failed: {0}")]
    Failed(Failure),
    /// A shutdown was requested before this commit arrived.
    #[error("the log is shutting down")]
    ShuttingDown,
    /// The commit alone is larger than allowed.
    #[error("commit of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The driver is gone (the log was dropped or crashed).
    #[error("the log's driver has stopped")]
    Closed,
}

impl From<Failure> for AppendError {
    fn from(f: Failure) -> AppendError {
        match f {
            Failure::Fenced { .. } => AppendError::Fenced(f),
            _ => AppendError::Failed(f),
        }
    }
}

impl From<Refused> for AppendError {
    fn from(r: Refused) -> AppendError {
        match r {
            Refused::Failed(f) => f.into(),
            Refused::Recovering | Refused::ShuttingDown => AppendError::ShuttingDown,
            Refused::TooLarge { len, max } => AppendError::TooLarge { len, max },
        }
    }
}

/// Most commit bytes waiting in the inbox for the writer task to copy them
/// into a batch. A commit larger than this takes all of it.
const QUEUE_BYTES: u32 = 8 << 20;

/// Most commits the writer task feeds the machine between two looks at
/// finished requests.
const FEED_BURST: usize = 256;

/// State the appenders and the driver share.
#[derive(Debug)]
struct Shared {
    /// Where appends and shutdowns wait for the writer; it numbers commits.
    inbox: Arc<Inbox>,
    /// The byte budget: each commit holds [`budget_cost`] permits until it
    /// is durable or refused (or, streamed, until it is read).
    budget: Arc<Semaphore>,
    /// The cost of commits handed over but not yet copied into a batch, at
    /// most [`QUEUE_BYTES`]. Each waiting payload is an allocation of its own
    /// until the writer task copies it; when producers outran the writer,
    /// up to a whole budget of them queued and, once copied and freed, the
    /// allocator kept their memory next to the batches holding the same
    /// bytes. Measured: peak RSS 353 MiB at a 256 MiB budget.
    queued: Semaphore,
    max_commit: usize,
    failure: Mutex<Option<Failure>>,
    durable: watch::Receiver<CommitSeq>,
    acks: Arc<Acks>,
    stats: Mutex<Stats>,
    epoch: Epoch,
    leader: LeaderId,
    store: String,
}

impl Shared {
    /// Wakes every appender waiting for budget or a queue place, and turns
    /// later ones away at once: nothing will give permits back any more.
    fn close_gates(&self) {
        self.budget.close();
        self.queued.close();
    }
}

impl Drop for Shared {
    /// The last `Log` is gone: the writer stops.
    fn drop(&mut self) {
        self.inbox.abandon();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The ordered stream of durable commits, for the next pipeline stage.
///
/// A commit gives its share of the byte budget back when it is received
/// here, not when it becomes durable: a stage that falls behind holds the
/// producers back instead of the stream growing without bound.
///
/// Take it when opening the log and read it in a task of its own: a task
/// that appends more than a budget's worth before it reads waits for ever.
#[derive(Debug)]
pub struct DurableCommits {
    commits: mpsc::UnboundedReceiver<Streamed>,
    unread: Arc<Mutex<Unread>>,
    budget: Arc<Semaphore>,
}

impl DurableCommits {
    /// The next durable commit, in order; `None` once the log has stopped
    /// and every commit it made durable was received.
    pub async fn recv(&mut self) -> Option<(CommitSeq, Bytes)> {
        let Streamed { seq, bytes, permits } = self.commits.recv().await?;
        lock(&self.unread).permits -= u64::from(permits);
        self.budget.add_permits(permits as usize);
        Some((seq, bytes))
    }
}

impl Drop for DurableCommits {
    /// Gives back the budget of the commits sent and never read; the
    /// driver gives back that of later ones itself.
    fn drop(&mut self) {
        let permits = {
            let mut unread = lock(&self.unread);
            unread.reader_gone = true;
            std::mem::take(&mut unread.permits)
        };
        self.budget.add_permits(usize::try_from(permits).unwrap_or(usize::MAX));
    }
}

/// The budget of the commits in the durable stream, which the driver and
/// the stream's reader share. Counted here, not taken from the channel
/// when the reader goes: a commit still being sent then would be lost.
#[derive(Debug, Default)]
struct Unread {
    /// Sent and not yet read.
    permits: u64,
    reader_gone: bool,
}

/// A commit on its way to the durable stream, with its budget permits.
#[derive(Debug)]
struct Streamed {
    seq: CommitSeq,
    bytes: Bytes,
    permits: u32,
}

/// The driver's end of the durable stream.
#[derive(Debug)]
struct StreamSender {
    commits: mpsc::UnboundedSender<Streamed>,
    unread: Arc<Mutex<Unread>>,
}

/// An open log. Clones share it; appends from many tasks are fine.
#[derive(Clone, Debug)]
pub struct Log {
    shared: Arc<Shared>,
    durable_commits: Arc<Mutex<Option<DurableCommits>>>,
}

/// What appends wait on. Separate from [`Shared`], whose last reference
/// stops the driver: a pending [`Appended`] must not keep it running.
///
/// An append that is awaited leaves its waker under its sequence number, and
/// a moving watermark wakes exactly the appends it passes, in order. One
/// waiting slot per awaited commit, none for a commit nobody awaits (a bulk
/// load); not a `watch` channel, whose every change wakes every waiter and
/// whose waiters sit in shards picked at random (two runs of a simulator
/// seed would wake them in different orders).
#[derive(Debug, Default)]
struct Acks {
    state: Mutex<AckState>,
}

#[derive(Debug, Default)]
struct AckState {
    /// Every commit below it is durable.
    durable: CommitSeq,
    /// The first commit this instance will never acknowledge, and why. Set
    /// once, by a failure or a refusal; every later commit shares the fate.
    refused: Option<(CommitSeq, AppendError)>,
    /// The driver has stopped: nothing changes any more.
    closed: bool,
    /// The appends being awaited, by sequence number.
    waiting: BTreeMap<CommitSeq, Waker>,
}

impl AckState {
    /// What became of `seq`, if it is settled.
    fn outcome(&self, seq: CommitSeq) -> Option<Result<CommitSeq, AppendError>> {
        if seq < self.durable {
            return Some(Ok(seq));
        }
        match &self.refused {
            Some((from, error)) if *from <= seq => Some(Err(error.clone())),
            _ if self.closed => Some(Err(AppendError::Closed)),
            _ => None,
        }
    }
}

impl Acks {
    /// Ready with `seq`'s outcome, or leaves `cx`'s waker for it.
    fn poll(&self, seq: CommitSeq, cx: &mut Context<'_>) -> Poll<Result<CommitSeq, AppendError>> {
        let mut state = lock(&self.state);
        if let Some(outcome) = state.outcome(seq) {
            state.waiting.remove(&seq);
            return Poll::Ready(outcome);
        }
        match state.waiting.entry(seq) {
            // `clone_from` keeps the waker it has if that one wakes the same task.
            Entry::Occupied(mut e) => e.get_mut().clone_from(cx.waker()),
            Entry::Vacant(e) => {
                e.insert(cx.waker().clone());
            }
        }
        Poll::Pending
    }

    /// `seq`'s wait was given up before it resolved: its waker goes.
    fn abandon(&self, seq: CommitSeq) {
        lock(&self.state).waiting.remove(&seq);
    }

    /// Changes the state, then wakes the appends waiting below `wake_below`
    /// (every one for `None`).
    fn update(&self, wake_below: Option<CommitSeq>, change: impl FnOnce(&mut AckState)) {
        let woken = {
            let mut state = lock(&self.state);
            change(&mut state);
            match wake_below {
                Some(end) => {
                    let later = state.waiting.split_off(&end);
                    std::mem::replace(&mut state.waiting, later)
                }
                None => std::mem::take(&mut state.waiting),
            }
        };
        woken.into_values().for_each(Waker::wake);
    }
}

/// The driver's handle on [`Acks`]: when the driver stops, however it stops
/// (shutdown, every `Log` dropped, its task dropped by a crash), the appends
/// still waiting learn it.
#[derive(Debug)]
struct AckPublisher(Arc<Acks>);

impl AckPublisher {
    /// Moves the watermark up to `end`, never down.
    fn durable(&self, end: CommitSeq) {
        self.0.update(Some(end), |s| s.durable = s.durable.max(end));
    }

    /// From `from` on, no commit will be acknowledged by this instance. The
    /// first refusal stands.
    fn refuse_from(&self, from: CommitSeq, error: AppendError) {
        self.0.update(None, |s| {
            s.refused.get_or_insert((from, error));
        });
    }
}

impl Drop for AckPublisher {
    fn drop(&mut self) {
        self.0.update(None, |s| s.closed = true);
    }
}

/// An accepted commit: its sequence number now, its durability later.
#[derive(Debug)]
pub struct Appended {
    /// The commit's sequence number.
    pub seq: CommitSeq,
    acks: Arc<Acks>,
}

impl Appended {
    /// Resolves when the commit is durable (and every earlier one), or with
    /// the reason it never will be acknowledged by this instance.
    pub fn durable(self) -> Durable {
        Durable { seq: self.seq, acks: self.acks, settled: false }
    }
}

/// The future of [`Appended::durable`]. Dropped before it resolves (a
/// timeout around it, say), it takes its waker back out of the waiting
/// appends, instead of leaving it there until the watermark passes.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Durable {
    seq: CommitSeq,
    acks: Arc<Acks>,
    settled: bool,
}

impl Future for Durable {
    type Output = Result<CommitSeq, AppendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let outcome = self.acks.poll(self.seq, cx);
        self.settled = outcome.is_ready();
        outcome
    }
}

impl Drop for Durable {
    fn drop(&mut self) {
        if !self.settled {
            self.acks.abandon(self.seq);
        }
    }
}

impl Log {
    /// Opens the log in `store`: recovers, fences off older writers, and
    /// returns once commits are accepted.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use bytes::Bytes;
    /// use s3wal::driver::{Log, OpenOptions};
    /// use s3wal::store::MemStore;
    ///
    /// let log = Log::open(MemStore::new(), OpenOptions::default()).await?;
    /// let appended = log.append(Bytes::from_static(b"hello")).await?;
    /// let seq = appended.seq;
    /// assert_eq!(appended.durable().await?, seq);
    /// log.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub async fn open<S: ObjectStore>(store: S, options: OpenOptions) -> Result<Log, OpenError> {
        Log::open_inner(store, options, None).await
    }

    /// planted-bugs: [`Log::open`] with a deliberate bug, for the madsim
    /// simulator's tests. Only with the `planted-bugs` feature.
    #[cfg(feature = "planted-bugs")]
    pub async fn open_planted<S: ObjectStore>(
        store: S,
        options: OpenOptions,
        bug: DriverBug,
    ) -> Result<Log, OpenError> {
        Log::open_inner(store, options, Some(bug)).await
    }

    async fn open_inner<S: ObjectStore>(
        store: S,
        options: OpenOptions,
        bug: Option<DriverBug>,
    ) -> Result<Log, OpenError> {
        let config = options.config.clone().validate()?;
        let seed = options.seed.unwrap_or_else(rand::random);
        let identity = identity_from(seed);
        let mut machine = Persister::recover(config.clone(), identity);
        let planted = Planted::new(bug);
        planted.prepare(&mut machine);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (durable_tx, durable_rx) = watch::channel(CommitSeq(0));
        let acks = Arc::new(Acks::default());
        let (stream_tx, stream_rx) = mpsc::unbounded_channel();
        let unread = Arc::new(Mutex::new(Unread::default()));
        let describe = store.describe();
        let budget_permits = usize::try_from(config.byte_budget).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS);
        // A commit's cost must fit the semaphore too (capped on 32-bit targets).
        let max_commit = config.max_commit_len().min(budget_permits - COMMIT_BOOKKEEPING_BYTES as usize);
        let driver = Driver {
            machine,
            store: Arc::new(store),
            origin: Instant::now(),
            timer: None,
            waiters: VecDeque::new(),
            streamed: VecDeque::new(),
            ready: Some(ready_tx),
            shutdown: Vec::new(),
            inbox: None,
            taken: Taken::default(),
            fed: 0,
            durable: durable_tx,
            acks: AckPublisher(Arc::clone(&acks)),
            stream: options
                .stream_durable_commits
                .then(|| StreamSender { commits: stream_tx, unread: Arc::clone(&unread) }),
            shared: None,
            planted,
        };
        let span = info_span!("s3wal", store = %describe, leader = %identity.leader);
        tokio::spawn(driver.run().instrument(span));
        let (inbox, epoch, stats, shared_tx) = match ready_rx.await {
            Ok(Ok(ready)) => ready,
            Ok(Err(failure)) => return Err(OpenError::Recovery(failure)),
            Err(_) => return Err(OpenError::Closed),
        };
        let shared = Arc::new(Shared {
            inbox,
            budget: Arc::new(Semaphore::new(budget_permits)),
            queued: Semaphore::new(QUEUE_BYTES as usize),
            max_commit,
            failure: Mutex::new(None),
            durable: durable_rx,
            acks,
            stats: Mutex::new(stats),
            epoch,
            leader: identity.leader,
            store: describe,
        });
        if shared_tx.send(Arc::clone(&shared)).is_err() {
            return Err(OpenError::Closed);
        }
        let stream = options.stream_durable_commits.then(|| DurableCommits {
            commits: stream_rx,
            unread,
            budget: Arc::clone(&shared.budget),
        });
        Ok(Log { shared, durable_commits: Arc::new(Mutex::new(stream)) })
    }

    /// Hands over one commit. Waits while the byte budget is used up, then
    /// returns its sequence number at once; await [`Appended::durable`] for
    /// durability.
    pub async fn append(&self, payload: Bytes) -> Result<Appended, AppendError> {
        self.append_with(payload.len(), |_| payload).await
    }

    /// Like [`Log::append`], for commits whose bytes depend on their own
    /// sequence number: `make` gets the number and must return `len` bytes.
    /// It runs while appends are serialised, so keep it quick.
    pub async fn append_with(
        &self,
        len: usize,
        make: impl FnOnce(CommitSeq) -> Bytes,
    ) -> Result<Appended, AppendError> {
        let s = &self.shared;
        if len > s.max_commit {
            return Err(AppendError::TooLarge { len, max: s.max_commit });
        }
        // Fits: `max_commit_len` leaves room for the bookkeeping in a `u32`.
        let permits = budget_cost(1, len as u64) as u32;
        if !acquire(&s.budget, permits).await {
            return Err(self.closed_reason());
        }
        let queued = permits.min(QUEUE_BYTES);
        if !acquire(&s.queued, queued).await {
            s.budget.add_permits(permits as usize);
            return Err(self.closed_reason());
        }
        let made = |seq| {
            let payload = make(seq);
            debug_assert_eq!(payload.len(), len, "append_with: the commit has the announced length");
            payload
        };
        match s.inbox.push(permits, queued, made) {
            Ok(seq) => Ok(Appended { seq, acks: Arc::clone(&s.acks) }),
            // Which way it is closed, `closed_reason` says, a failure first.
            Err(_closed) => {
                s.budget.add_permits(permits as usize);
                s.queued.add_permits(queued as usize);
                Err(self.closed_reason())
            }
        }
    }

    /// The sequence number the next append will get.
    pub fn next_seq(&self) -> CommitSeq {
        self.shared.inbox.next_seq()
    }

    /// Why the log takes no more commits.
    fn closed_reason(&self) -> AppendError {
        match lock(&self.shared.failure).clone() {
            Some(failure) => failure.into(),
            None if self.shared.inbox.shutting_down() => AppendError::ShuttingDown,
            None => AppendError::Closed,
        }
    }

    /// Seals what is collecting, drains everything in flight, and stops.
    /// Every commit appended before it is durable when it returns `Ok`.
    /// Appends from then on are refused with [`AppendError::ShuttingDown`];
    /// every call, during the shutdown or after it, returns its outcome.
    pub async fn shutdown(&self) -> Result<(), AppendError> {
        let (done, rx) = oneshot::channel();
        if self.shared.inbox.request_shutdown(done).is_err() {
            return Err(self.closed_reason());
        }
        rx.await.unwrap_or(Err(AppendError::Closed))
    }

    /// Watches the durable watermark: every commit below it is durable.
    pub fn watch_durable(&self) -> watch::Receiver<CommitSeq> {
        self.shared.durable.clone()
    }

    /// The ordered stream of durable commits, if the log was opened with
    /// [`OpenOptions::stream_durable_commits`]. Only the first call gets it;
    /// see [`DurableCommits`] for how to read it.
    pub fn durable_commits(&self) -> Option<DurableCommits> {
        lock(&self.durable_commits).take()
    }

    /// Counters of the state machine, as of its last step.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.stats).clone()
    }

    /// This instance's epoch.
    pub fn epoch(&self) -> Epoch {
        self.shared.epoch
    }

    /// This instance's leader id.
    pub fn leader(&self) -> LeaderId {
        self.shared.leader
    }

    /// Why the log failed, if it did.
    pub fn failure(&self) -> Option<Failure> {
        lock(&self.shared.failure).clone()
    }

    /// The store, as `describe` names it.
    pub fn store(&self) -> &str {
        &self.shared.store
    }
}

/// Takes `n` permits, without building a future when they are there;
/// `false` if the semaphore was closed.
async fn acquire(semaphore: &Semaphore, n: u32) -> bool {
    match semaphore.try_acquire_many(n) {
        Ok(permit) => permit.forget(),
        Err(TryAcquireError::Closed) => return false,
        Err(TryAcquireError::NoPermits) => match semaphore.acquire_many(n).await {
            Ok(permit) => permit.forget(),
            Err(_) => return false,
        },
    }
    true
}

fn identity_from(seed: u64) -> Identity {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Identity { leader: LeaderId(rng.random()), nonce: rng.random(), jitter_seed: rng.random() }
}

/// An accepted commit that is not durable yet. One per commit, counted in
/// the byte budget only as part of [`crate::config::COMMIT_BOOKKEEPING_BYTES`]:
/// kept small (24 bytes; a bulk load of 100-byte commits has a million of
/// them waiting).
struct Waiter {
    seq: CommitSeq,
    /// When the writer fed it to the machine.
    appended_at: Time,
    /// Budget permits it gives back when durable; none if it is streamed
    /// (the stream's reader gives them back).
    permits: u32,
}

type ReadyReply = (Arc<Inbox>, Epoch, Stats, oneshot::Sender<Arc<Shared>>);

struct Driver<S> {
    machine: Persister,
    store: Arc<S>,
    origin: Instant,
    timer: Option<Time>,
    waiters: VecDeque<Waiter>,
    /// The accepted commits, for the durable stream (only if one was asked
    /// for); they hold their budget permits, their waiters none.
    streamed: VecDeque<Streamed>,
    ready: Option<oneshot::Sender<Result<ReadyReply, Failure>>>,
    /// Whoever asked for the shutdown under way.
    shutdown: Vec<ShutdownReply>,
    /// The appenders' inbox, once recovery has handed out the first number.
    inbox: Option<Arc<Inbox>>,
    /// The inbox's last take, fed to the machine [`FEED_BURST`] at a time.
    taken: Taken,
    /// How many of `taken.appends` the machine has had.
    fed: usize,
    durable: watch::Sender<CommitSeq>,
    acks: AckPublisher,
    stream: Option<StreamSender>,
    /// Weak: the last `Log` dropping the shared state is what stops the
    /// driver, and a strong reference here would keep it alive.
    shared: Option<Weak<Shared>>,
    /// planted-bugs: nothing unless a bug was planted.
    planted: Planted,
}

enum Step {
    Continue,
    Stop,
}

impl<S: ObjectStore> Driver<S> {
    /// The machine's time: nanoseconds since the driver started.
    fn now(&self) -> Time {
        let since = Instant::now().saturating_duration_since(self.origin);
        Time::from_nanos(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }

    async fn run(mut self) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Input>();
        let mut shared_rx: Option<oneshot::Receiver<Arc<Shared>>> = None;
        if let Step::Stop = self.perform_actions(&done_tx, &mut shared_rx) {
            return;
        }
        loop {
            let deadline = self.timer.map(|t| self.origin + Duration::from_nanos(t.as_nanos()));
            let inbox = self.inbox.clone();
            let feeding = self.fed < self.taken.appends.len() || !self.taken.shutdowns.is_empty();
            let input = tokio::select! {
                biased;
                Some(input) = done_rx.recv() => Some(input),
                // `Log::open` was dropped during recovery (a timeout around
                // it, say): stop, before this instance fences anyone. A
                // request already sent still reaches the store.
                () = async { self.ready.as_mut().expect("guarded").closed().await }, if self.ready.is_some() => return,
                shared = async { shared_rx.as_mut().expect("guarded").await }, if shared_rx.is_some() => {
                    shared_rx = None;
                    // Without it, `Log::open` was dropped after recovery: stop.
                    let Ok(shared) = shared else { return };
                    self.shared = Some(Arc::downgrade(&shared));
                    self.publish_stats();
                    None
                }
                () = std::future::ready(()), if feeding => self.feed(),
                () = async { inbox.as_ref().expect("guarded").filled().await }, if inbox.is_some() && !feeding => {
                    // Every handle dropped: the application is gone. Stop at
                    // once, as a crash would; recovery sorts out what is in flight.
                    if let Step::Stop = self.take() {
                        return;
                    }
                    self.feed()
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    self.timer = None;
                    Some(Input::TimerFired)
                }
            };
            // Given up while its input was on the way: stop before acting on
            // it (the branch above only wakes a driver with nothing else to do).
            if self.ready.as_ref().is_some_and(oneshot::Sender::is_closed) {
                return;
            }
            if let Some(input) = input {
                // planted-bugs: DriverBug::AckOnPutReturn.
                if let Some(commits) = self.planted.acked_early(&input) {
                    let permits = planted::ack_early(&mut self.waiters, commits);
                    self.release(permits);
                    self.publish_durable(commits.end);
                }
                let now = self.now();
                if let Err(refused) = self.machine.handle(now, input) {
                    debug!(%refused, "input refused");
                }
            }
            if let Step::Stop = self.perform_actions(&done_tx, &mut shared_rx) {
                return;
            }
        }
    }

    /// Takes what waits in the inbox; `Stop` if every `Log` is gone.
    fn take(&mut self) -> Step {
        let Some(inbox) = &self.inbox else { return Step::Continue };
        let mut spare = std::mem::take(&mut self.taken.appends);
        spare.clear();
        self.taken = inbox.take(spare);
        self.fed = 0;
        if self.taken.abandoned {
            Step::Stop
        } else {
            Step::Continue
        }
    }

    /// Feeds the machine the next [`FEED_BURST`] taken commits with one
    /// clock read and one release of queue places, so the per-commit path
    /// has no syscall and no lock; once all are fed, the shutdown requested
    /// after them, which it returns as an input.
    fn feed(&mut self) -> Option<Input> {
        let now = self.now();
        let end = self.taken.appends.len().min(self.fed + FEED_BURST);
        let mut dequeued = 0u64;
        for i in self.fed..end {
            let queued = &mut self.taken.appends[i];
            dequeued += u64::from(queued.queued);
            let (permits, payload) = (queued.permits, std::mem::take(&mut queued.payload));
            let seq = self.taken.first.plus(i as u64);
            self.append(now, Waiter { seq, appended_at: now, permits }, payload);
        }
        self.fed = end;
        self.dequeued(dequeued);
        if self.fed < self.taken.appends.len() || self.taken.shutdowns.is_empty() {
            return None;
        }
        self.shutdown.append(&mut self.taken.shutdowns);
        Some(Input::ShutdownRequested)
    }

    /// One commit into the machine; its appender waits for the ack unless
    /// the machine refused it.
    fn append(&mut self, now: Time, mut waiter: Waiter, payload: Bytes) {
        match self.machine.commit(now, &payload) {
            Ok(()) => {
                // Once the machine refuses a commit it refuses every later
                // one, so accepted numbers never skip.
                debug_assert_eq!(
                    waiter.seq.next(),
                    self.machine.next_commit_seq(),
                    "the inbox numbers commits in the order it hands them over"
                );
                if self.stream.is_some() {
                    // The stream's reader gives the budget back.
                    let permits = std::mem::take(&mut waiter.permits);
                    self.streamed.push_back(Streamed { seq: waiter.seq, bytes: payload, permits });
                }
                self.waiters.push_back(waiter);
            }
            Err(refused) => {
                self.release(u64::from(waiter.permits));
                self.acks.refuse_from(waiter.seq, refused.into());
            }
        }
    }

    /// The machine copied (or refused) a payload: its queue place is free.
    fn dequeued(&self, queued: u64) {
        if let Some(shared) = self.shared() {
            shared.queued.add_permits(usize::try_from(queued).unwrap_or(usize::MAX));
        }
    }

    fn perform_actions(
        &mut self,
        done: &mpsc::UnboundedSender<Input>,
        shared_rx: &mut Option<oneshot::Receiver<Arc<Shared>>>,
    ) -> Step {
        let mut step = Step::Continue;
        let mut acted = false;
        while let Some(action) = self.machine.poll_action() {
            acted = true;
            match action {
                Action::Put(put) => {
                    self.planted.on_put(&put); // planted-bugs
                    metrics::histogram!("s3wal_object_bytes").record(put.body.len() as f64);
                    self.spawn_put(put, done.clone());
                }
                Action::Head { request, key, .. } => {
                    let (store, done) = (Arc::clone(&self.store), done.clone());
                    tokio::spawn(async move {
                        let outcome = store.head(&key).await;
                        let _ = done.send(Input::HeadFinished { request, outcome });
                    });
                }
                Action::List { request, prefix, max_keys } => {
                    let (store, done) = (Arc::clone(&self.store), done.clone());
                    tokio::spawn(async move {
                        let outcome = match store.list(&prefix, max_keys, None).await {
                            Ok(page) => ListOutcome::Listed { keys: page.keys(), truncated: page.truncated },
                            Err(fault) => ListOutcome::Failed(fault),
                        };
                        let _ = done.send(Input::ListFinished { request, outcome });
                    });
                }
                Action::Probe { request } => {
                    let (store, done) = (Arc::clone(&self.store), done.clone());
                    tokio::spawn(async move {
                        let outcome = store.list(BATCH_PREFIX, 1, None).await.map(|_| ());
                        let _ = done.send(Input::ProbeFinished { request, outcome });
                    });
                }
                Action::SetTimer { at } => self.timer = Some(at),
                Action::CancelTimer => self.timer = None,
                Action::Accepted { commits } => {
                    metrics::histogram!("s3wal_batch_commits").record(commits.len() as f64);
                }
                Action::ProducersMustWait | Action::ProducersMayContinue => {}
                Action::Durable { commits } => self.durable(commits),
                Action::Ready { next_commit, epoch } => {
                    let (tx, rx) = oneshot::channel();
                    *shared_rx = Some(rx);
                    let inbox = Arc::new(Inbox::new(next_commit));
                    self.inbox = Some(Arc::clone(&inbox));
                    if let Some(ready) = self.ready.take() {
                        if ready.send(Ok((inbox, epoch, self.machine.stats().clone(), tx))).is_err() {
                            step = Step::Stop; // `Log::open` is gone.
                        }
                    }
                }
                Action::Failed { commits, failure } => {
                    if let Step::Stop = self.failed(commits, failure) {
                        step = Step::Stop;
                    }
                }
                Action::ShutdownComplete => {
                    // A failed machine that then shut down no longer reports its failure.
                    let failed = self.shared().and_then(|s| lock(&s.failure).clone());
                    let result = match self.machine.failure().cloned().or(failed) {
                        Some(f) => Err(f.into()),
                        None => Ok(()),
                    };
                    // Shutdowns asked for since the last take hear it too.
                    let late = self.inbox.as_ref().map(|inbox| inbox.close(Some(result.clone())));
                    let taken = self.taken.shutdowns.drain(..);
                    for done in self.shutdown.drain(..).chain(taken).chain(late.into_iter().flatten()) {
                        let _ = done.send(result.clone());
                    }
                    step = Step::Stop;
                }
            }
        }
        // Most commits cause no action: keep the per-commit path free of metrics work.
        if acted {
            self.publish_stats();
        }
        step
    }

    fn publish_stats(&self) {
        let stats = self.machine.stats();
        publish_metrics(stats, self.machine.window_len());
        if let Some(shared) = self.shared() {
            *lock(&shared.stats) = stats.clone();
        }
    }

    fn spawn_put(&self, put: PutRequest, done: mpsc::UnboundedSender<Input>) {
        let store = Arc::clone(&self.store);
        let span = info_span!("put", position = %put.position, request = %put.request, bytes = put.body.len());
        tokio::spawn(
            async move {
                let outcome = store.put_if_absent(&put.key, put.body, &put.metadata).await;
                debug!(?outcome, "put finished");
                let _ = done.send(Input::PutFinished { request: put.request, outcome });
            }
            .instrument(span),
        );
    }

    fn durable(&mut self, commits: CommitRange) {
        self.publish_durable(commits.end);
        let permits = self.settle_waiters(commits.end);
        self.stream_durable(commits.end);
        self.release(permits);
    }

    /// Forgets the waiters below `end`, records their ack latencies, and
    /// returns their budget permits.
    fn settle_waiters(&mut self, end: CommitSeq) -> u64 {
        let now = self.now();
        // The commits of one burst were fed at the same time: their
        // latencies go to the histogram together.
        let histogram = metrics::histogram!("s3wal_ack_latency_seconds");
        let record = |(at, n): (Time, usize)| {
            histogram.record_many(now.as_nanos().saturating_sub(at.as_nanos()) as f64 * 1e-9, n);
        };
        let mut burst: Option<(Time, usize)> = None;
        let mut permits = 0u64;
        let mut first = true;
        while self.waiters.front().is_some_and(|w| w.seq < end) {
            let Some(w) = self.waiters.pop_front() else { break };
            match &mut burst {
                Some((at, n)) if *at == w.appended_at => *n += 1,
                _ => {
                    if let Some(done) = burst.replace((w.appended_at, 1)) {
                        record(done);
                    }
                }
            }
            // planted-bugs: DriverBug::LeakBudgetOnAckWaves.
            if first || !self.planted.has(DriverBug::LeakBudgetOnAckWaves) {
                permits += u64::from(w.permits);
            }
            first = false;
        }
        if let Some(done) = burst {
            record(done);
        }
        permits
    }

    /// Hands the durable stream, if there is one, the commits below `end`;
    /// gives back the budget of those its dropped reader will never take.
    fn stream_durable(&mut self, end: CommitSeq) {
        let Some(stream) = &self.stream else { return };
        let mut unread = lock(&stream.unread);
        let mut not_sent = 0u64;
        let mut first = true;
        while self.streamed.front().is_some_and(|s| s.seq < end) {
            let Some(mut durable) = self.streamed.pop_front() else { break };
            // planted-bugs: DriverBug::LeakBudgetOnAckWaves, for streamed commits.
            if !first && self.planted.has(DriverBug::LeakBudgetOnAckWaves) {
                durable.permits = 0;
            }
            first = false;
            let permits = u64::from(durable.permits);
            if unread.reader_gone || stream.commits.send(durable).is_err() {
                not_sent += permits;
            } else {
                unread.permits += permits;
            }
        }
        drop(unread);
        self.release(not_sent);
    }

    /// Moves the watermark (for [`Log::watch_durable`] and for the waiting
    /// appends) up to `end`, never down.
    fn publish_durable(&self, end: CommitSeq) {
        self.durable.send_if_modified(|durable| {
            let moved = end > *durable;
            *durable = (*durable).max(end);
            moved
        });
        self.acks.durable(end);
    }

    /// Gives byte budget back to the appenders.
    fn release(&self, permits: u64) {
        if let Some(shared) = self.shared() {
            shared.budget.add_permits(usize::try_from(permits).unwrap_or(usize::MAX));
        }
    }

    /// `Stop` if the log never opened: `Log::open` returns the failure, and
    /// nothing is left to serve.
    fn failed(&mut self, _commits: CommitRange, failure: Failure) -> Step {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(failure));
            return Step::Stop;
        }
        if let Some(shared) = self.shared() {
            *lock(&shared.failure) = Some(failure.clone());
            // The appenders woken see the failure.
            shared.close_gates();
        }
        // planted-bugs: DriverBug::AbandonWaitersOnFailure.
        if self.planted.has(DriverBug::AbandonWaitersOnFailure) {
            return Step::Continue;
        }
        self.waiters.clear();
        self.streamed.clear();
        let durable = *self.durable.borrow();
        self.acks.refuse_from(durable, failure.into());
        Step::Continue
    }
}

impl<S> Driver<S> {
    /// The state shared with the appenders, while a `Log` still holds it.
    fn shared(&self) -> Option<Arc<Shared>> {
        self.shared.as_ref().and_then(Weak::upgrade)
    }
}

impl<S> Drop for Driver<S> {
    /// However the driver stops (shutdown, failure, every `Log` dropped, its
    /// task dropped by a crash), appenders waiting for budget or a queue
    /// place, and later appends and shutdowns, learn it at once.
    fn drop(&mut self) {
        if let Some(inbox) = &self.inbox {
            // Shutdowns still waiting are dropped: they hear `Closed`.
            inbox.close(None);
        }
        if let Some(shared) = self.shared() {
            shared.close_gates();
        }
    }
}

/// Exports the machine's counters through the `metrics` facade (a no-op
/// unless the application installs a recorder).
fn publish_metrics(stats: &Stats, window: usize) {
    metrics::gauge!("s3wal_window_positions").set(window as f64);
    metrics::counter!("s3wal_requests_total", "kind" => "put").absolute(stats.puts);
    metrics::counter!("s3wal_requests_total", "kind" => "head").absolute(stats.heads);
    metrics::counter!("s3wal_requests_total", "kind" => "list").absolute(stats.lists);
    metrics::counter!("s3wal_batches_total").absolute(stats.batches);
    for (cause, n) in stats.retries.by_cause() {
        metrics::counter!("s3wal_retries_total", "cause" => cause).absolute(n);
    }
    let c = &stats.recovery;
    metrics::counter!("s3wal_recovery_requests_total", "kind" => "list").absolute(c.lists);
    metrics::counter!("s3wal_recovery_requests_total", "kind" => "head").absolute(c.heads);
    metrics::counter!("s3wal_recovery_requests_total", "kind" => "put").absolute(c.puts);
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waiting(acks: &Acks, seqs: &[u64]) -> Vec<Arc<Counter>> {
        seqs.iter()
            .map(|&seq| {
                let counter = Arc::new(Counter::default());
                let waker = Waker::from(Arc::clone(&counter));
                assert!(acks.poll(CommitSeq(seq), &mut Context::from_waker(&waker)).is_pending());
                counter
            })
            .collect()
    }

    fn wakes(counters: &[Arc<Counter>]) -> Vec<usize> {
        counters.iter().map(|c| c.0.load(Ordering::SeqCst)).collect()
    }

    fn poll(acks: &Acks, seq: u64) -> Poll<Result<CommitSeq, AppendError>> {
        acks.poll(CommitSeq(seq), &mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_moving_watermark_wakes_only_the_appends_it_passes() {
        let acks = Arc::new(Acks::default());
        let publisher = AckPublisher(Arc::clone(&acks));
        let counters = waiting(&acks, &[0, 1, 2, 3]);
        publisher.durable(CommitSeq(2));
        assert_eq!(wakes(&counters), [1, 1, 0, 0]);
        assert_eq!(poll(&acks, 1), Poll::Ready(Ok(CommitSeq(1))));
        assert!(poll(&acks, 2).is_pending());
        publisher.durable(CommitSeq(1));
        assert_eq!(wakes(&counters), [1, 1, 0, 0], "the watermark never moves down");
        assert!(poll(&acks, 2).is_pending());
    }

    #[test]
    fn a_refusal_settles_every_later_commit_and_a_stopped_driver_every_other() {
        let acks = Arc::new(Acks::default());
        let publisher = AckPublisher(Arc::clone(&acks));
        let counters = waiting(&acks, &[4, 5, 6]);
        publisher.refuse_from(CommitSeq(5), AppendError::ShuttingDown);
        assert_eq!(wakes(&counters), [1, 1, 1]);
        assert!(poll(&acks, 4).is_pending(), "a commit before the refusal may still become durable");
        assert_eq!(poll(&acks, 6), Poll::Ready(Err(AppendError::ShuttingDown)));
        publisher.refuse_from(CommitSeq(4), AppendError::Closed);
        assert_eq!(poll(&acks, 5), Poll::Ready(Err(AppendError::ShuttingDown)), "the first refusal stands");
        drop(publisher);
        assert_eq!(poll(&acks, 4), Poll::Ready(Err(AppendError::Closed)));
    }

    #[test]
    fn a_wait_dropped_before_it_resolves_leaves_no_waker_behind() {
        let acks = Arc::new(Acks::default());
        let publisher = AckPublisher(Arc::clone(&acks));
        let appended = |seq| Appended { seq: CommitSeq(seq), acks: Arc::clone(&acks) };
        let mut cx = Context::from_waker(Waker::noop());
        let mut abandoned = Box::pin(appended(7).durable());
        assert!(abandoned.as_mut().poll(&mut cx).is_pending());
        let mut kept = Box::pin(appended(8).durable());
        assert!(kept.as_mut().poll(&mut cx).is_pending());
        assert_eq!(lock(&acks.state).waiting.len(), 2);
        drop(abandoned);
        let waiting: Vec<CommitSeq> = lock(&acks.state).waiting.keys().copied().collect();
        assert_eq!(waiting, [CommitSeq(8)], "only the dropped wait's waker is gone");
        publisher.durable(CommitSeq(9));
        assert_eq!(kept.as_mut().poll(&mut cx), Poll::Ready(Ok(CommitSeq(8))));
    }

    /// Counts the values recorded into `s3wal_ack_latency_seconds`.
    #[derive(Default)]
    struct AckLatencies(Arc<Recorded>);

    #[derive(Default)]
    struct Recorded(AtomicUsize);

    impl metrics::HistogramFn for Recorded {
        fn record(&self, _: f64) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl metrics::Recorder for AckLatencies {
        fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
            metrics::Counter::noop()
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
            if key.name() == "s3wal_ack_latency_seconds" {
                metrics::Histogram::from_arc(Arc::clone(&self.0))
            } else {
                metrics::Histogram::noop()
            }
        }
    }

    #[test]
    fn a_waiting_commit_costs_24_bytes_beside_its_own() {
        assert_eq!(std::mem::size_of::<Waiter>(), 24);
    }

    #[test]
    fn every_acknowledged_commit_has_its_latency_recorded_once() {
        let recorder = AckLatencies::default();
        let commits = 3 * FEED_BURST as u64 + 7;
        metrics::with_local_recorder(&recorder, || {
            // One thread: the driver's task records on the thread that holds the recorder.
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async {
                let log = Log::open(crate::store::MemStore::new(), OpenOptions { seed: Some(3), ..Default::default() })
                    .await
                    .expect("opens");
                let mut last = None;
                for _ in 0..commits {
                    last = Some(log.append(Bytes::from_static(b"commit")).await.expect("accepted"));
                }
                let last = last.expect("appended");
                assert_eq!(last.durable().await, Ok(CommitSeq(commits - 1)));
                log.shutdown().await.expect("clean shutdown");
            });
        });
        assert_eq!(recorder.0 .0.load(Ordering::SeqCst), commits as usize);
    }

    /// A [`MemStore`](crate::store::MemStore) whose LIST answers at once,
    /// when the test says so, or refuses for good; whose PUTs wait for the
    /// test once it closes the gate; and which counts the PUTs it takes.
    struct GatedStore {
        inner: crate::store::MemStore,
        list: ListAnswer,
        put_gate: Mutex<Option<Arc<tokio::sync::Notify>>>,
        puts: AtomicUsize,
    }

    enum ListAnswer {
        AtOnce,
        When(Arc<tokio::sync::Notify>),
        Rejected,
    }

    #[async_trait::async_trait]
    impl ObjectStore for GatedStore {
        async fn put_if_absent(&self, key: &str, body: Bytes, metadata: &[(String, String)]) -> crate::PutOutcome {
            self.puts.fetch_add(1, Ordering::SeqCst);
            let gate = lock(&self.put_gate).clone();
            if let Some(gate) = gate {
                gate.notified().await;
            }
            self.inner.put_if_absent(key, body, metadata).await
        }

        async fn head(&self, key: &str) -> crate::HeadOutcome {
            self.inner.head(key).await
        }

        async fn get(&self, key: &str) -> crate::store::GetOutcome {
            self.inner.get(key).await
        }

        async fn list(
            &self,
            prefix: &str,
            max_keys: u32,
            start_after: Option<&str>,
        ) -> Result<crate::store::ListPage, crate::Fault> {
            match &self.list {
                ListAnswer::AtOnce => {}
                ListAnswer::When(go) => go.notified().await,
                ListAnswer::Rejected => return Err(crate::Fault::Rejected { reason: "AccessDenied".into() }),
            }
            self.inner.list(prefix, max_keys, start_after).await
        }

        fn describe(&self) -> String {
            "recovery test store".into()
        }
    }

    fn gated_store(list: ListAnswer) -> Arc<GatedStore> {
        let inner = crate::store::MemStore::new();
        Arc::new(GatedStore { inner, list, put_gate: Mutex::new(None), puts: AtomicUsize::new(0) })
    }

    /// Waits (boundedly) until the test holds the only reference to `store`:
    /// the driver and its requests are gone.
    async fn driver_let_go_of(store: &Arc<GatedStore>) -> bool {
        for _ in 0..500 {
            if Arc::strong_count(store) == 1 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_log_that_fails_to_open_leaves_no_driver_behind() {
        let store = gated_store(ListAnswer::Rejected);
        let opened = Log::open(Arc::clone(&store), OpenOptions::default()).await;
        assert!(matches!(opened, Err(OpenError::Recovery(_))), "{opened:?}");
        assert!(driver_let_go_of(&store).await, "the driver still holds the store");
    }

    /// One thread, so the order is the test's: the LIST's answer reaches
    /// the driver before it notices that the open was given up.
    #[tokio::test(flavor = "current_thread")]
    async fn an_open_given_up_during_recovery_stops_before_it_fences() {
        let list_answers = Arc::new(tokio::sync::Notify::new());
        let store = gated_store(ListAnswer::When(Arc::clone(&list_answers)));
        let mut opening = Box::pin(Log::open(Arc::clone(&store), OpenOptions::default()));
        assert!(futures::poll!(opening.as_mut()).is_pending(), "the LIST has not answered");
        for _ in 0..10 {
            tokio::task::yield_now().await; // The driver sends the LIST and waits.
        }
        list_answers.notify_one();
        drop(opening);
        assert!(driver_let_go_of(&store).await, "the driver still holds the store");
        assert_eq!(store.puts.load(Ordering::SeqCst), 0, "no fence was written for an open nobody waits for");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_shutdown_hears_how_the_shutdown_ended() {
        let log = Log::open(crate::store::MemStore::new(), OpenOptions::default()).await.expect("opens");
        let appended = log.append(Bytes::from_static(b"last")).await.expect("accepted");
        let (first, second) = tokio::join!(log.shutdown(), log.shutdown());
        assert_eq!((first, second), (Ok(()), Ok(())));
        assert_eq!(log.shutdown().await, Ok(()), "asked again after it ended");
        assert_eq!(appended.durable().await, Ok(CommitSeq(0)));
        assert_eq!(log.append(Bytes::from_static(b"late")).await.err(), Some(AppendError::ShuttingDown));
    }

    /// Empty commits cost their bookkeeping: with nothing durable, a
    /// budget of four commits' bookkeeping takes four and holds the fifth,
    /// which goes on once the first four are durable.
    #[tokio::test(flavor = "current_thread")]
    async fn empty_commits_wait_for_the_budget_too() {
        let store = gated_store(ListAnswer::AtOnce);
        let config = Config { byte_budget: budget_cost(4, 0), batch_size_threshold: 1, ..Config::default() };
        let log = Log::open(Arc::clone(&store), OpenOptions { config, ..Default::default() }).await.expect("opens");
        let put_answers = Arc::new(tokio::sync::Notify::new());
        *lock(&store.put_gate) = Some(Arc::clone(&put_answers));
        let mut first_four = Vec::new();
        for seq in 0..4 {
            let appended = log.append(Bytes::new()).await.expect("within the budget");
            assert_eq!(appended.seq, CommitSeq(seq));
            first_four.push(appended);
        }
        let mut fifth = Box::pin(log.append(Bytes::new()));
        // The driver sends what it has; no PUT answers.
        stays_pending(&mut fifth, "a fifth empty commit is over the budget").await;
        *lock(&store.put_gate) = None;
        put_answers.notify_waiters();
        for appended in first_four {
            appended.durable().await.expect("durable once the PUTs answer");
        }
        let fifth = fifth.await.expect("the budget came back");
        assert_eq!(fifth.durable().await, Ok(CommitSeq(4)));
        log.shutdown().await.expect("clean shutdown");
    }

    /// Polls `future` while the driver gets ten turns; it must stay pending.
    async fn stays_pending<F: std::future::Future + Unpin>(future: &mut F, why: &str) {
        for _ in 0..10 {
            assert!(futures::poll!(&mut *future).is_pending(), "{why}");
            tokio::task::yield_now().await;
        }
    }

    /// A streamed commit keeps its budget until the stream's reader takes
    /// it, not just until it is durable. Dropping the stream gives back
    /// the budget of the commits it held and of every later one.
    #[tokio::test(flavor = "current_thread")]
    async fn streamed_commits_hold_the_budget_until_read() {
        let config = Config { byte_budget: budget_cost(2, 2), batch_size_threshold: 1, ..Config::default() };
        let options = OpenOptions { config, stream_durable_commits: true, ..Default::default() };
        let log = Log::open(crate::store::MemStore::new(), options).await.expect("opens");
        let mut stream = log.durable_commits().expect("asked for");
        let commit = |byte: &'static [u8]| log.append(Bytes::from_static(byte));
        commit(b"a").await.expect("within the budget");
        let second = commit(b"b").await.expect("within the budget");
        assert_eq!(second.durable().await, Ok(CommitSeq(1)), "both durable, neither read");
        let mut third = Box::pin(commit(b"c"));
        stays_pending(&mut third, "over the budget").await;
        assert_eq!(stream.recv().await, Some((CommitSeq(0), Bytes::from_static(b"a"))));
        let std::task::Poll::Ready(third) = futures::poll!(third.as_mut()) else {
            panic!("reading a commit did not give its budget back");
        };
        let third = third.expect("appended");
        assert_eq!(third.durable().await, Ok(CommitSeq(2)));
        let mut fourth = Box::pin(commit(b"d"));
        stays_pending(&mut fourth, "over the budget").await;
        drop(stream);
        let std::task::Poll::Ready(fourth) = futures::poll!(fourth.as_mut()) else {
            panic!("the dropped stream did not give back the budget of the commits it held");
        };
        fourth.expect("appended");
        let later_commits = async {
            for _ in 0..5 {
                let later = commit(b"e").await.expect("nobody reads the stream: the driver gives the budget back");
                later.durable().await.expect("durable");
            }
        };
        tokio::time::timeout(Duration::from_secs(60), later_commits).await.expect("no hang");
        log.shutdown().await.expect("clean shutdown");
    }

    /// One thread, so the order is the test's: the last PUT of a shutdown
    /// answers, then a second shutdown is asked for before the driver
    /// looks at its inbox again; the driver stops at once, and the second
    /// request must still hear the outcome.
    #[tokio::test(flavor = "current_thread")]
    async fn a_shutdown_asked_for_as_the_drain_completes_hears_the_outcome() {
        let store = gated_store(ListAnswer::AtOnce);
        let log = Log::open(Arc::clone(&store), OpenOptions::default()).await.expect("opens");
        let put_answers = Arc::new(tokio::sync::Notify::new());
        *lock(&store.put_gate) = Some(Arc::clone(&put_answers));
        let appended = log.append(Bytes::from_static(b"last")).await.expect("accepted");
        let mut first = Box::pin(log.shutdown());
        assert!(futures::poll!(first.as_mut()).is_pending(), "the batch is not written yet");
        for _ in 0..10 {
            tokio::task::yield_now().await; // The driver drains: the batch's PUT waits at the gate.
        }
        put_answers.notify_one();
        let mut late = Box::pin(log.shutdown());
        assert!(futures::poll!(late.as_mut()).is_pending(), "asked for before the PUT's answer is handled");
        assert_eq!(first.await, Ok(()));
        assert_eq!(late.await, Ok(()), "the late request heard the outcome");
        assert_eq!(appended.durable().await, Ok(CommitSeq(0)));
    }
}
