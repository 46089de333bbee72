//! The whole contract between the state machine ([`crate::Persister`]) and
//! whatever drives it: every [`Input`] it accepts and every [`Action`] it asks for.
//!
//! # The driving rule
//!
//! 1. Feed one input: [`Persister::handle`](crate::Persister::handle)`(now, input)`,
//!    with `now` read from the driver's clock.
//! 2. Drain [`Persister::poll_action`](crate::Persister::poll_action) until it
//!    returns `None`, and carry out each action. Commits that arrive together
//!    may be fed one after another with the same `now` before draining, as
//!    long as nothing else is fed in between: a commit's actions can wait for
//!    the next commit, since no time passes between them.
//! 3. Keep one timer: [`Action::SetTimer`] replaces it, [`Action::CancelTimer`]
//!    clears it; when it is due, feed [`Input::TimerFired`].
//!
//! The machine never blocks, never performs I/O, never reads a clock and never
//! draws a random number: time arrives with every input and randomness with
//! the [`Identity`](crate::Identity) it was built with. Completions may be fed
//! in any order; a completion for a request the machine no longer cares about
//! (for example after it failed) is ignored.

use bytes::Bytes;

use crate::types::{CommitRange, CommitSeq, Epoch, LeaderId, Position, RequestId, Time};

/// Something that happened, for the machine to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The application handed over one commit. It gets the sequence number
    /// [`Persister::next_commit_seq`](crate::Persister::next_commit_seq)
    /// returned just before; commits are numbered in the order they arrive.
    /// The machine copies the bytes at once:
    /// [`Persister::commit`](crate::Persister::commit) takes them borrowed.
    CommitArrived(Bytes),
    /// A [`PutRequest`] the machine asked for has finished.
    PutFinished {
        /// The request, as named in the [`PutRequest`].
        request: RequestId,
        /// What the store answered.
        outcome: PutOutcome,
    },
    /// An [`Action::Head`] has finished.
    HeadFinished {
        /// The request, as named in the action.
        request: RequestId,
        /// What the store answered.
        outcome: HeadOutcome,
    },
    /// An [`Action::List`] has finished.
    ListFinished {
        /// The request, as named in the action.
        request: RequestId,
        /// What the store answered.
        outcome: ListOutcome,
    },
    /// An [`Action::Probe`] has finished: `Ok` if the store answered.
    ProbeFinished {
        /// The request, as named in the action.
        request: RequestId,
        /// Whether the store answered, and if not why.
        outcome: Result<(), Fault>,
    },
    /// The timer set by the last [`Action::SetTimer`] is due.
    TimerFired,
    /// The application asked for a graceful shutdown: seal what is
    /// collecting, drain everything in flight, then report
    /// [`Action::ShutdownComplete`].
    ShutdownRequested,
}

/// How a conditional PUT (`If-None-Match: *`) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// 200: the object is written, and it is ours.
    Created,
    /// 412 Precondition Failed: the key exists. It may be ours (an earlier
    /// attempt that we did not hear back from) or another writer's.
    AlreadyExists,
    /// The request failed; see [`Fault`] for whether it may have been applied.
    Failed(Fault),
}

/// How a HEAD of an object ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadOutcome {
    /// The object exists. `tag` is its `s3wal-tag` user metadata, if it has one.
    Found {
        /// The metadata value, unparsed: the machine judges it.
        tag: Option<String>,
    },
    /// 404: no such object.
    NotFound,
    /// The request failed.
    Failed(Fault),
}

/// How a LIST of the log's prefix ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListOutcome {
    /// The keys, in ascending order, as S3 returns them.
    Listed {
        /// Full keys, `batches/…`, relative to the log's root.
        keys: Vec<String>,
        /// Whether more keys exist past the last one returned.
        truncated: bool,
    },
    /// The request failed.
    Failed(Fault),
}

/// Why a request did not get an answer the machine can use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 409 ConditionalRequestConflict: another conditional write to the same
    /// key was in progress. Nothing was written; retry.
    Conflict,
    /// 503 SlowDown: throttled. Nothing was written; retry later.
    Throttled,
    /// 400 BadDigest: the body the store received did not match the checksum
    /// it was sealed with. S3 checks before it stores, so nothing was
    /// written (s3s-fs stores first; it is not used for writing). Damage on
    /// the way is gone on a retry, which sends the bytes again from memory;
    /// damage in memory is refused every time, and the writer fails once
    /// its retries run out instead of storing it.
    BodyDamaged,
    /// Another 5xx. The request may or may not have been applied.
    ServerError {
        /// The HTTP status.
        status: u16,
    },
    /// No answer in time. The request may or may not have been applied.
    TimedOut,
    /// The connection failed or was reset. The request may or may not have
    /// been applied.
    ConnectionFailed,
    /// The store refused in a way retrying cannot fix (access denied, no such
    /// bucket, bad request). Nothing was written.
    Rejected {
        /// The store's explanation, free of credentials.
        reason: String,
    },
}

impl Fault {
    /// Whether a retry could succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Fault::Rejected { .. })
    }

    /// Whether a PUT that failed this way may nevertheless have written its
    /// object (so a later 412 may be our own write).
    pub fn may_have_applied(&self) -> bool {
        matches!(self, Fault::ServerError { .. } | Fault::TimedOut | Fault::ConnectionFailed)
    }

    /// A short name for counters and logs.
    pub fn cause(&self) -> &'static str {
        match self {
            Fault::Conflict => "conflict",
            Fault::Throttled => "throttled",
            Fault::BodyDamaged => "body_damaged",
            Fault::ServerError { .. } => "server_error",
            Fault::TimedOut => "timed_out",
            Fault::ConnectionFailed => "connection_failed",
            Fault::Rejected { .. } => "rejected",
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Conflict => f.write_str("409 conditional request conflict"),
            Fault::Throttled => f.write_str("503 slow down"),
            Fault::BodyDamaged => f.write_str("400 bad digest (body damaged after it was sealed)"),
            Fault::ServerError { status } => write!(f, "server error {status}"),
            Fault::TimedOut => f.write_str("timed out"),
            Fault::ConnectionFailed => f.write_str("connection failed"),
            Fault::Rejected { reason } => write!(f, "rejected: {reason}"),
        }
    }
}

/// A conditional PUT: create `key` with `body` only if no object has that key
/// (`If-None-Match: *`). Every write the machine makes is one of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutRequest {
    /// Names this request in [`Input::PutFinished`].
    pub request: RequestId,
    /// The position being claimed.
    pub position: Position,
    /// The object key, `batches/{n:020}`, relative to the log's root.
    pub key: String,
    /// The object's bytes. A retry sends the very same bytes.
    pub body: Bytes,
    /// User metadata to store with the object (`x-amz-meta-…`): the
    /// [`ObjectTag`](crate::format::ObjectTag) under
    /// [`TAG_METADATA_KEY`](crate::format::TAG_METADATA_KEY).
    pub metadata: Vec<(String, String)>,
}

/// Something the machine asks its driver to do, or tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Make this conditional PUT and report with [`Input::PutFinished`].
    Put(PutRequest),
    /// HEAD `key` and report with [`Input::HeadFinished`]: who owns a
    /// position that answered 412, or (recovery) what an object holds.
    Head {
        /// Names this request in [`Input::HeadFinished`].
        request: RequestId,
        /// The position asked about.
        position: Position,
        /// The object key.
        key: String,
    },
    /// LIST keys under `prefix`, ascending, at most `max_keys`, and report
    /// with [`Input::ListFinished`]. Recovery makes exactly one.
    List {
        /// Names this request in [`Input::ListFinished`].
        request: RequestId,
        /// `batches/`.
        prefix: String,
        /// 1000.
        max_keys: u32,
    },
    /// Make one cheap request (a LIST of one key) to learn whether the
    /// store answers, and report with [`Input::ProbeFinished`]. Sent when
    /// the writer has been idle for `health_probe_interval`, and while the
    /// store is unhealthy; no new batch is sent until a probe succeeds.
    Probe {
        /// Names this request in [`Input::ProbeFinished`].
        request: RequestId,
    },
    /// Feed [`Input::TimerFired`] at `at` (replaces any earlier timer).
    SetTimer {
        /// When.
        at: Time,
    },
    /// No timer is needed any more.
    CancelTimer,
    /// These commits were packed into a batch and sent. Not yet durable.
    Accepted {
        /// The commits.
        commits: CommitRange,
    },
    /// These commits are durable: their batch and every earlier position are
    /// confirmed written. Reported in order, contiguous, never twice.
    Durable {
        /// The commits, starting where the previous `Durable` ended.
        commits: CommitRange,
    },
    /// Commits accepted but not durable exceed the byte budget: producers
    /// must wait before handing over more.
    ProducersMustWait,
    /// Back under the byte budget: producers may go on.
    ProducersMayContinue,
    /// Recovery and fencing are done: the machine accepts commits, the first
    /// of which gets `next_commit`.
    Ready {
        /// The first sequence number this instance will assign.
        next_commit: CommitSeq,
        /// This instance's epoch.
        epoch: Epoch,
    },
    /// The machine stopped for good. The listed commits (every one accepted
    /// and not yet durable) will never be acknowledged by this instance; some
    /// of them may still turn out durable when the log is recovered.
    Failed {
        /// The commits that are left unacknowledged.
        commits: CommitRange,
        /// Why.
        failure: Failure,
    },
    /// A requested shutdown finished: every accepted commit is durable.
    ShutdownComplete,
}

/// Why the machine stopped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// A request kept failing until its retries ran out.
    #[error("gave up on {position} after {attempts} attempts; last error: {last}")]
    RetriesExhausted {
        /// The position whose request failed.
        position: Position,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        last: Fault,
    },
    /// The store refused a request in a way retrying cannot fix.
    #[error("the store refused the request for {position}: {reason}")]
    Rejected {
        /// The position concerned.
        position: Position,
        /// The store's explanation.
        reason: String,
    },
    /// Another instance took over the log: this one is deposed.
    #[error("fenced: {position} belongs to {leader} of {epoch}, a newer writer")]
    Fenced {
        /// Where the newer writer was found.
        position: Position,
        /// The newer writer.
        leader: LeaderId,
        /// Its epoch.
        epoch: Epoch,
    },
    /// Recovery lost every position of a whole window to older writers: an
    /// older instance is still writing fast. Stop it, or retry later.
    #[error(
        "takeover lost: older writers took all {positions} positions from {gap} on; an older instance is still writing"
    )]
    TakeoverLost {
        /// The first gap recovery found.
        gap: Position,
        /// How many positions it tried.
        positions: u64,
    },
    /// An object in the log is not something s3wal wrote, or contradicts the
    /// protocol. The machine stops rather than guess.
    #[error("protocol violation at {position}: {detail}")]
    ProtocolViolation {
        /// Where.
        position: Position,
        /// What is wrong.
        detail: String,
    },
}

/// Why a commit was refused at [`Input::CommitArrived`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Recovery has not finished; wait for [`Action::Ready`].
    #[error("the log is still recovering")]
    Recovering,
    /// A shutdown was requested.
    #[error("the log is shutting down")]
    ShuttingDown,
    /// The machine failed earlier.
    #[error("the log has failed: {0}")]
    Failed(Failure),
    /// The commit alone is larger than the byte budget (less its
    /// bookkeeping) or the format's 32-bit length field allows:
    /// [`crate::ValidConfig::max_commit_len`].
    #[error("commit of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The commit's size.
        len: usize,
        /// The limit.
        max: usize,
    },
}
