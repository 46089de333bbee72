//! `SimStore`: the simulator's S3 model behind the library's
//! [`ObjectStore`] trait, so the real tokio driver can run against it under
//! madsim (`RUSTFLAGS="--cfg madsim"`).
//!
//! It shares everything with the pure world: the bucket is an [`S3Model`],
//! faults come from a [`FaultInjector`] with the run's [`FaultKnobs`],
//! latencies from a [`LatencyModel`], each on its own seeded stream of
//! [`crate::sampling`]. Only time differs: a request *waits* with
//! `tokio::time::sleep` (madsim's virtual clock) instead of scheduling an
//! event.
//!
//! A request is applied when it reaches the store and answered later, so
//! answers reorder and a request may land although its answer is lost.
//! Under madsim the landing runs on a node of its own, the "S3" node: a
//! request in the network still lands after the client node is killed or
//! while it is paused, as it would against the real service. Clones share
//! one bucket: give one to every node.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use s3wal::format::{ObjectKind, ObjectTag, TAG_METADATA_KEY};
use s3wal::store::{metadata_value, GetOutcome, ListEntry, ListPage, ObjectStore};
use s3wal::{BatchNumber, Fault, HeadOutcome, PutOutcome, Time};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::faults::{FaultCounts, FaultInjector, FaultKnobs, PhaseChange, RequestKind, RequestPlan};
use crate::latency::{LatencyKnobs, LatencyModel};
use crate::report::StoreCounts;
use crate::s3_model::{PutResult, S3Model, StoredObject};
use crate::sampling::{stream, Stream};
use crate::trace::TraceTime;

/// What a `SimStore` is made of: the same knobs the pure world draws.
#[derive(Clone, Debug)]
pub struct SimStoreKnobs {
    /// How slow the store is.
    pub latency: LatencyKnobs,
    /// What goes wrong.
    pub faults: FaultKnobs,
    /// How long a client waits for an answer before it reports a timeout.
    pub request_timeout: Duration,
}

/// What reached the store, whatever the client heard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStoreCounts {
    /// PUTs, 412s, 409s, HEADs, LISTs and slow timeouts, as the pure world
    /// counts them (`objects` is filled in by [`SimStore::counts`]).
    pub store: StoreCounts,
    /// GETs that reached the store (the reader's; the writer never GETs).
    pub gets: u64,
    /// Requests sent, answered or not.
    pub requests: u64,
}

/// The in-memory S3 model with faults and latency, as an [`ObjectStore`].
#[derive(Clone)]
pub struct SimStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SimStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimStore").field("objects", &self.state().model.len()).finish_non_exhaustive()
    }
}

struct Inner {
    state: Mutex<State>,
    origin: Instant,
    #[cfg(madsim)]
    server: madsim::runtime::NodeHandle,
}

struct State {
    model: S3Model,
    latency: LatencyModel,
    latency_rng: ChaCha8Rng,
    faults: FaultInjector,
    fault_rng: ChaCha8Rng,
    request_timeout: Duration,
    counts: SimStoreCounts,
    /// One line per request, when asked for (`SimStore::log_requests`).
    log: Option<Vec<String>>,
}

/// One request, as it travels to the store.
#[derive(Clone, Debug)]
enum Op {
    Put { key: String, object: StoredObject },
    Head { key: String },
    Get { key: String },
    List { prefix: String, max_keys: u32, start_after: Option<String> },
}

impl Op {
    /// The fault layer knows PUT, HEAD and LIST; a GET is a read like a HEAD.
    fn kind(&self) -> RequestKind {
        match self {
            Op::Put { .. } => RequestKind::Put,
            Op::Head { .. } | Op::Get { .. } => RequestKind::Head,
            Op::List { .. } => RequestKind::List,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            Op::Put { object, .. } => object.body.len(),
            Op::Head { .. } | Op::Get { .. } | Op::List { .. } => 0,
        }
    }

    /// What the client hears instead of the store's answer when `fault` strikes.
    fn failed(&self, fault: Fault) -> Answer {
        match self {
            Op::Put { .. } => Answer::Put(PutOutcome::Failed(fault)),
            Op::Head { .. } => Answer::Head(HeadOutcome::Failed(fault)),
            Op::Get { .. } => Answer::Get(GetOutcome::Failed(fault)),
            Op::List { .. } => Answer::List(Err(fault)),
        }
    }
}

/// The store's answer to one request.
#[derive(Debug)]
enum Answer {
    Put(PutOutcome),
    Head(HeadOutcome),
    Get(GetOutcome),
    List(Result<ListPage, Fault>),
}

impl SimStore {
    /// An empty bucket whose latencies and faults are drawn from `seed`'s
    /// streams. Under madsim it must be called inside the runtime: it
    /// creates the node the store's side of each request runs on.
    pub fn new(seed: u64, knobs: SimStoreKnobs) -> SimStore {
        let state = State {
            model: S3Model::new(),
            latency: LatencyModel::new(knobs.latency),
            latency_rng: stream(seed, Stream::Latency),
            faults: FaultInjector::new(knobs.faults),
            fault_rng: stream(seed, Stream::Faults),
            request_timeout: knobs.request_timeout,
            counts: SimStoreCounts::default(),
            log: None,
        };
        SimStore {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                origin: Instant::now(),
                #[cfg(madsim)]
                server: madsim::runtime::Handle::current().create_node().name("s3").build(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Virtual time since the store was made (the model's clock).
    pub fn now(&self) -> Time {
        Time::from_nanos(u64::try_from(self.inner.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// The application issued commit `index` (0-based, over the whole run):
    /// bursts may start, faults may stop, as in the pure world.
    pub fn on_commit_issued(&self, index: u64) -> Option<PhaseChange> {
        let now = self.now();
        self.state().faults.on_commit_issued(index, now)
    }

    /// No more faults from now on: the liveness phase.
    pub fn stop_faults(&self) -> Option<PhaseChange> {
        self.state().faults.stop()
    }

    /// Whether faults are still injected.
    pub fn faults_active(&self) -> bool {
        self.state().faults.is_active()
    }

    /// Faults injected so far, per class.
    pub fn fault_counts(&self) -> FaultCounts {
        self.state().faults.counts().clone()
    }

    /// What reached the store so far.
    pub fn counts(&self) -> SimStoreCounts {
        let s = self.state();
        let mut counts = s.counts.clone();
        counts.store.objects = s.model.len() as u64;
        counts
    }

    /// Keeps one line per request from now on: who asked what, when it was
    /// sent and answered, and what the client heard. For reading a failing
    /// seed; off by default.
    pub fn log_requests(&self) {
        self.state().log.get_or_insert_with(Vec::new);
    }

    /// The request lines kept so far (emptied).
    pub fn take_request_log(&self) -> Vec<String> {
        self.state().log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Looks at the bucket as it is right now, without faults or latency.
    pub fn with_model<R>(&self, f: impl FnOnce(&S3Model) -> R) -> R {
        f(&self.state().model)
    }

    /// Changes the bucket directly, without faults or latency (a test
    /// writes the log it then opens).
    pub fn with_model_mut<R>(&self, f: impl FnOnce(&mut S3Model) -> R) -> R {
        f(&mut self.state().model)
    }

    /// Sends one request: draws its fault and timing, lands it (on the S3
    /// node) when it reaches the store, and answers when the client hears.
    async fn call(&self, op: Op) -> Answer {
        let sent = Instant::now();
        let sent_at = self.now();
        let described = self.state().log.is_some().then(|| describe(&op));
        let (plan, processing, class) = {
            let now = sent_at;
            let mut guard = self.state();
            let s = &mut *guard;
            let effect = s.faults.inject(now, op.kind(), &mut s.fault_rng);
            let timing = s.latency.timing(&mut s.latency_rng, op.body_len());
            let plan = RequestPlan::new(timing, effect, s.request_timeout);
            let class = plan.class;
            s.counts.requests += 1;
            s.counts.store.slow_timeouts += u64::from(plan.slow_timeout);
            (plan, timing.processing, class)
        };
        let failed = plan.fault.map(|fault| op.failed(fault));
        let mut answer = None;
        if !plan.arrivals.is_empty() {
            let (tx, rx) = oneshot::channel();
            let (inner, arrivals) = (Arc::clone(&self.inner), plan.arrivals.clone());
            // The store's side: lands at each arrival, whoever still waits.
            // The client hears the last landing's answer (an SDK retry's).
            self.spawn_server(async move {
                let mut last = None;
                for at in arrivals {
                    tokio::time::sleep_until(sent + at).await;
                    last = Some(inner.apply(op.clone(), processing));
                }
                let _ = tx.send(last);
            });
            answer = Some(rx);
        }
        tokio::time::sleep_until(sent + plan.answer_after).await;
        let answer = match (failed, answer) {
            (Some(failed), _) => failed,
            (None, Some(rx)) => match rx.await {
                Ok(Some(answer)) => answer,
                _ => unreachable!("a request without a fault lands"),
            },
            (None, None) => unreachable!("a request without a fault lands"),
        };
        let mut state = self.state();
        if let (Some(log), Some(described)) = (state.log.as_mut(), described) {
            let fault = class.map(|c| format!(" [{c}, lands {}x]", plan.arrivals.len())).unwrap_or_default();
            let (from, to) = (TraceTime(sent_at), TraceTime(self.now()));
            log.push(format!("{from} ..{} {described} -> {}{fault}", to.to_string().trim(), heard(&answer)));
        }
        drop(state);
        answer
    }

    fn spawn_server(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        #[cfg(madsim)]
        {
            self.inner.server.spawn(task);
        }
        #[cfg(not(madsim))]
        {
            tokio::spawn(task);
        }
    }
}

impl Inner {
    /// The request reaches the store and is applied.
    fn apply(&self, op: Op, processing: Duration) -> Answer {
        let now = Time::from_nanos(
            u64::try_from(Instant::now().saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX),
        );
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let s = &mut *guard;
        match op {
            Op::Put { key, object } => {
                s.counts.store.puts += 1;
                Answer::Put(match s.model.put_if_absent(&key, object, now, processing) {
                    PutResult::Created => PutOutcome::Created,
                    PutResult::AlreadyExists => {
                        s.counts.store.already_exists += 1;
                        PutOutcome::AlreadyExists
                    }
                    PutResult::Conflict => {
                        s.counts.store.conflicts += 1;
                        PutOutcome::Failed(Fault::Conflict)
                    }
                })
            }
            Op::Head { key } => {
                s.counts.store.heads += 1;
                Answer::Head(match s.model.head(&key) {
                    Some(metadata) => {
                        HeadOutcome::Found { tag: metadata_value(metadata, TAG_METADATA_KEY).map(str::to_owned) }
                    }
                    None => HeadOutcome::NotFound,
                })
            }
            Op::Get { key } => {
                s.counts.gets += 1;
                Answer::Get(match s.model.get(&key) {
                    Some(object) => GetOutcome::Found(object.body.clone()),
                    None => GetOutcome::NotFound,
                })
            }
            Op::List { prefix, max_keys, start_after } => {
                s.counts.store.lists += 1;
                let page = s.model.list(&prefix, max_keys as usize, start_after.as_deref());
                let entries = page
                    .keys
                    .into_iter()
                    .map(|key| {
                        let size = s.model.get(&key).map_or(0, |o| o.body.len() as u64);
                        ListEntry { key, size }
                    })
                    .collect();
                Answer::List(Ok(ListPage { entries, truncated: page.truncated }))
            }
        }
    }
}

#[async_trait]
impl ObjectStore for SimStore {
    async fn put_if_absent(&self, key: &str, body: Bytes, metadata: &[(String, String)]) -> PutOutcome {
        let object = StoredObject { body, metadata: metadata.to_vec() };
        match self.call(Op::Put { key: key.to_owned(), object }).await {
            Answer::Put(outcome) => outcome,
            other => unexpected(other),
        }
    }

    async fn head(&self, key: &str) -> HeadOutcome {
        match self.call(Op::Head { key: key.to_owned() }).await {
            Answer::Head(outcome) => outcome,
            other => unexpected(other),
        }
    }

    async fn get(&self, key: &str) -> GetOutcome {
        match self.call(Op::Get { key: key.to_owned() }).await {
            Answer::Get(outcome) => outcome,
            other => unexpected(other),
        }
    }

    async fn list(&self, prefix: &str, max_keys: u32, start_after: Option<&str>) -> Result<ListPage, Fault> {
        let op = Op::List { prefix: prefix.to_owned(), max_keys, start_after: start_after.map(str::to_owned) };
        match self.call(op).await {
            Answer::List(outcome) => outcome,
            other => unexpected(other),
        }
    }

    fn describe(&self) -> String {
        "sim-s3".into()
    }
}

/// A request, briefly: its kind, position, and the object's tag.
fn describe(op: &Op) -> String {
    let position = |key: &str| BatchNumber::from_key(key).map_or(key.to_owned(), |n| n.position().to_string());
    match op {
        Op::Put { key, object } => {
            let tag = metadata_value(&object.metadata, TAG_METADATA_KEY).and_then(|v| ObjectTag::parse(v).ok());
            let what = tag.map_or("untagged".to_string(), |t| {
                let h = t.header;
                match h.kind {
                    ObjectKind::Fence => format!("fence {} {} next {}", h.leader, h.epoch, h.first_seq),
                    ObjectKind::Batch => format!("batch {} {} {}+{}", h.leader, h.epoch, h.first_seq, h.count),
                }
            });
            format!("put {} {what}", position(key))
        }
        Op::Head { key } => format!("head {}", position(key)),
        Op::Get { key } => format!("get {}", position(key)),
        Op::List { prefix, max_keys, start_after } => {
            format!(
                "list {prefix} max {max_keys}{}",
                start_after.as_ref().map(|a| format!(" after {a}")).unwrap_or_default()
            )
        }
    }
}

/// What the client heard, briefly.
fn heard(answer: &Answer) -> String {
    match answer {
        Answer::Put(PutOutcome::Created) => "201".into(),
        Answer::Put(PutOutcome::AlreadyExists) => "412".into(),
        Answer::Put(PutOutcome::Failed(f))
        | Answer::Head(HeadOutcome::Failed(f))
        | Answer::Get(GetOutcome::Failed(f))
        | Answer::List(Err(f)) => format!("failed: {f}"),
        Answer::Head(HeadOutcome::Found { tag }) => {
            let tag = tag.as_deref().and_then(|v| ObjectTag::parse(v).ok());
            tag.map_or("found untagged".into(), |t| {
                format!("found {:?} {} {}", t.header.kind, t.header.leader, t.header.epoch)
            })
        }
        Answer::Head(HeadOutcome::NotFound) | Answer::Get(GetOutcome::NotFound) => "404".into(),
        Answer::Get(GetOutcome::Found(body)) => format!("{} bytes", body.len()),
        Answer::List(Ok(page)) => {
            format!("{} keys{}", page.entries.len(), if page.truncated { ", truncated" } else { "" })
        }
    }
}

fn unexpected<T>(answer: Answer) -> T {
    unreachable!("the store answered a request of another kind: {answer:?}")
}
