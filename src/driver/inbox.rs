//! Where appenders leave commits for the writer task.
//!
//! Appenders push onto a vector under the lock that numbers them, and the
//! writer takes the whole vector at once, handing back an empty one; it is
//! woken only when the vector was empty, so once per take and not per
//! commit. An mpsc channel, message per commit, cost the producer a third
//! of its time in a 100-byte bulk load (perf, `cargo bench --bench driver`):
//! its slots are shared cache lines the two threads take turns writing.

use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};

use super::{lock, AppendError};
use crate::types::CommitSeq;

/// Told when a shutdown completes.
pub(super) type ShutdownReply = oneshot::Sender<Result<(), AppendError>>;

/// One commit on its way to the writer.
#[derive(Debug)]
pub(super) struct Queued {
    pub payload: Bytes,
    /// Budget permits: given back when the commit is durable or refused.
    pub permits: u32,
    /// Queue permits: given back once the writer has copied the payload.
    pub queued: u32,
}

/// What the writer takes in one go.
#[derive(Debug, Default)]
pub(super) struct Taken {
    /// The number of the first of `appends`; the rest follow in order.
    pub first: CommitSeq,
    pub appends: Vec<Queued>,
    /// Shutdowns requested after every one of `appends`.
    pub shutdowns: Vec<ShutdownReply>,
    /// Every `Log` is gone: the writer stops at once, as in a crash.
    pub abandoned: bool,
}

/// Why the inbox took nothing.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Closed {
    /// A shutdown was requested: later commits are refused.
    ShuttingDown,
    /// The writer has stopped.
    WriterGone,
}

#[derive(Debug)]
pub(super) struct Inbox {
    state: Mutex<State>,
    /// The writer's wake-up: given when the inbox stops being empty.
    filled: Notify,
}

#[derive(Debug)]
struct State {
    next_seq: CommitSeq,
    appends: Vec<Queued>,
    shutdowns: Vec<ShutdownReply>,
    shutting_down: bool,
    abandoned: bool,
    writer_gone: bool,
}

impl State {
    fn is_empty(&self) -> bool {
        self.appends.is_empty() && self.shutdowns.is_empty() && !self.abandoned
    }

    fn refusal(&self) -> Option<Closed> {
        if self.writer_gone {
            Some(Closed::WriterGone)
        } else if self.shutting_down {
            Some(Closed::ShuttingDown)
        } else {
            None
        }
    }
}

impl Inbox {
    pub fn new(next_seq: CommitSeq) -> Inbox {
        let state = State {
            next_seq,
            appends: Vec::new(),
            shutdowns: Vec::new(),
            shutting_down: false,
            abandoned: false,
            writer_gone: false,
        };
        Inbox { state: Mutex::new(state), filled: Notify::new() }
    }

    /// The number the next commit will get.
    pub fn next_seq(&self) -> CommitSeq {
        lock(&self.state).next_seq
    }

    /// Numbers a commit and queues it; `make` builds its bytes from its
    /// number, under the lock, so queue order is number order.
    pub fn push(&self, permits: u32, queued: u32, make: impl FnOnce(CommitSeq) -> Bytes) -> Result<CommitSeq, Closed> {
        let mut state = lock(&self.state);
        if let Some(closed) = state.refusal() {
            return Err(closed);
        }
        let seq = state.next_seq;
        let payload = make(seq);
        self.fill(&mut state, |s| s.appends.push(Queued { payload, permits, queued }));
        state.next_seq = seq.next();
        Ok(seq)
    }

    /// Asks the writer to shut down after every commit queued so far;
    /// `done` hears the outcome. Hands `done` back if the writer is gone.
    pub fn request_shutdown(&self, done: ShutdownReply) -> Result<(), ShutdownReply> {
        let mut state = lock(&self.state);
        if state.writer_gone {
            return Err(done);
        }
        state.shutting_down = true;
        self.fill(&mut state, |s| s.shutdowns.push(done));
        Ok(())
    }

    /// The last `Log` is gone.
    pub fn abandon(&self) {
        let mut state = lock(&self.state);
        self.fill(&mut state, |s| s.abandoned = true);
    }

    /// Changes the state, and wakes the writer if it found the inbox empty.
    fn fill(&self, state: &mut State, change: impl FnOnce(&mut State)) {
        let was_empty = state.is_empty();
        change(state);
        if was_empty {
            self.filled.notify_one();
        }
    }

    /// Resolves once something is queued (at once if something came since
    /// the last take).
    pub async fn filled(&self) {
        self.filled.notified().await;
    }

    /// Everything queued; `spare` is the writer's emptied vector, reused.
    pub fn take(&self, spare: Vec<Queued>) -> Taken {
        debug_assert!(spare.is_empty(), "the writer hands back an empty vector");
        let mut state = lock(&self.state);
        let appends = std::mem::replace(&mut state.appends, spare);
        let first = CommitSeq(state.next_seq.0 - appends.len() as u64);
        Taken { first, appends, shutdowns: std::mem::take(&mut state.shutdowns), abandoned: state.abandoned }
    }

    /// The writer has stopped: later calls are refused, and the shutdowns
    /// still waiting hear that it is gone (their replies are dropped).
    pub fn close(&self) {
        let mut state = lock(&self.state);
        state.writer_gone = true;
        state.shutdowns.clear();
        state.appends.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(inbox: &Inbox, byte: u8) -> Result<CommitSeq, Closed> {
        inbox.push(1, 1, |_| Bytes::from(vec![byte]))
    }

    #[test]
    fn commits_are_taken_in_number_order_with_the_first_number() {
        let inbox = Inbox::new(CommitSeq(7));
        assert_eq!(push(&inbox, 1), Ok(CommitSeq(7)));
        assert_eq!(push(&inbox, 2), Ok(CommitSeq(8)));
        let taken = inbox.take(Vec::new());
        assert_eq!(taken.first, CommitSeq(7));
        let bytes: Vec<&[u8]> = taken.appends.iter().map(|q| &q.payload[..]).collect();
        assert_eq!(bytes, [&[1u8][..], &[2u8][..]]);
        assert_eq!(push(&inbox, 3), Ok(CommitSeq(9)));
        assert_eq!(inbox.take(Vec::new()).first, CommitSeq(9), "numbering goes on across takes");
    }

    #[test]
    fn the_writer_is_woken_once_per_take_not_per_commit() {
        use std::future::Future;
        let inbox = Inbox::new(CommitSeq(0));
        let waker_count = |inbox: &Inbox| {
            let mut woken = 0;
            loop {
                let mut notified = std::pin::pin!(inbox.filled());
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                if notified.as_mut().poll(&mut cx).is_pending() {
                    return woken;
                }
                woken += 1;
            }
        };
        for byte in 0..3 {
            push(&inbox, byte).expect("queued");
        }
        assert_eq!(waker_count(&inbox), 1, "three pushes onto an empty inbox: one wake-up");
        push(&inbox, 3).expect("queued");
        assert_eq!(waker_count(&inbox), 0, "not taken yet: no new wake-up");
        assert_eq!(inbox.take(Vec::new()).appends.len(), 4);
        push(&inbox, 4).expect("queued");
        assert_eq!(waker_count(&inbox), 1, "emptied by a take: the next push wakes the writer");
    }

    #[test]
    fn a_shutdown_comes_after_the_commits_before_it_and_refuses_the_later_ones() {
        let inbox = Inbox::new(CommitSeq(0));
        push(&inbox, 1).expect("queued");
        let (done, _rx) = oneshot::channel();
        inbox.request_shutdown(done).expect("the writer is there");
        assert_eq!(push(&inbox, 2), Err(Closed::ShuttingDown));
        let taken = inbox.take(Vec::new());
        assert_eq!((taken.appends.len(), taken.shutdowns.len()), (1, 1));
        assert_eq!(push(&inbox, 3), Err(Closed::ShuttingDown), "still after the take");
        assert_eq!(inbox.next_seq(), CommitSeq(1), "refused commits take no number");
    }

    #[test]
    fn a_closed_inbox_refuses_everything_and_drops_waiting_shutdowns() {
        let inbox = Inbox::new(CommitSeq(0));
        let (done, mut rx) = oneshot::channel();
        inbox.request_shutdown(done).expect("the writer is there");
        inbox.close();
        assert!(rx.try_recv().is_err_and(|e| e == oneshot::error::TryRecvError::Closed));
        assert_eq!(push(&inbox, 1), Err(Closed::WriterGone));
        let (done, _rx) = oneshot::channel();
        assert!(inbox.request_shutdown(done).is_err());
    }
}
