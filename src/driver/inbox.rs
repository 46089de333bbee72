//! Where appenders leave commits for the writer task.
//!
//! Appenders push onto a vector under the lock that numbers them, and the
//! writer takes the whole vector at once, handing back an empty one; it is
//! woken only when the vector was empty, so once per take and not per
//! commit. An mpsc channel, a message per commit, took a fifth of the CPU
//! samples of a 100-byte bulk load in the sending alone (perf of `cargo
//! bench --bench driver`; 8 % more receiving): its slots are cache lines the
//! two threads take turns writing.

use std::sync::{Mutex, MutexGuard};

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
    /// How the shutdown ended, for shutdowns asked for after it.
    shut_down: Option<Result<(), AppendError>>,
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
            shut_down: None,
        };
        Inbox { state: Mutex::new(state), filled: Notify::new() }
    }

    /// The number the next commit will get.
    pub fn next_seq(&self) -> CommitSeq {
        lock(&self.state).next_seq
    }

    /// Whether a shutdown was asked for.
    pub fn shutting_down(&self) -> bool {
        lock(&self.state).shutting_down
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
        state.next_seq = seq.next();
        self.fill(state, |s| s.appends.push(Queued { payload, permits, queued }));
        Ok(seq)
    }

    /// Asks the writer to shut down after every commit queued so far;
    /// `done` hears the outcome, at once if the shutdown already ended.
    /// Hands `done` back if the writer stopped without a shutdown.
    pub fn request_shutdown(&self, done: ShutdownReply) -> Result<(), ShutdownReply> {
        let mut state = lock(&self.state);
        if state.writer_gone {
            return match &state.shut_down {
                Some(outcome) => {
                    let _ = done.send(outcome.clone());
                    Ok(())
                }
                None => Err(done),
            };
        }
        state.shutting_down = true;
        self.fill(state, |s| s.shutdowns.push(done));
        Ok(())
    }

    /// The last `Log` is gone.
    pub fn abandon(&self) {
        self.fill(lock(&self.state), |s| s.abandoned = true);
    }

    /// Changes the state, and wakes the writer if it found the inbox empty
    /// (after the lock is let go, so the writer does not wake into it).
    fn fill(&self, mut state: MutexGuard<'_, State>, change: impl FnOnce(&mut State)) {
        let was_empty = state.is_empty();
        change(&mut state);
        drop(state);
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

    /// The writer has stopped, after a shutdown that ended with `outcome`
    /// if it is given: later appends are refused, later shutdowns hear the
    /// outcome, or that the writer is gone. Returns the shutdowns that
    /// were still waiting, for the caller to answer.
    pub fn close(&self, outcome: Option<Result<(), AppendError>>) -> Vec<ShutdownReply> {
        let mut state = lock(&self.state);
        state.writer_gone = true;
        if outcome.is_some() {
            state.shut_down = outcome;
        }
        state.appends.clear();
        std::mem::take(&mut state.shutdowns)
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
        let wake_ups = |inbox: &Inbox| {
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
        assert_eq!(wake_ups(&inbox), 1, "the first push onto an empty inbox wakes the writer");
        push(&inbox, 3).expect("queued");
        assert_eq!(wake_ups(&inbox), 0, "not taken yet: no new wake-up");
        assert_eq!(inbox.take(Vec::new()).appends.len(), 4);
        push(&inbox, 4).expect("queued");
        assert_eq!(wake_ups(&inbox), 1, "emptied by a take: the next push wakes the writer");
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
    fn a_writer_gone_without_a_shutdown_refuses_everything() {
        let inbox = Inbox::new(CommitSeq(0));
        assert!(inbox.close(None).is_empty());
        assert_eq!(push(&inbox, 1), Err(Closed::WriterGone));
        let (done, _rx) = oneshot::channel();
        assert!(inbox.request_shutdown(done).is_err(), "nobody will answer it");
    }

    #[test]
    fn shutdowns_asked_for_while_or_after_the_writer_shut_down_hear_how_it_ended() {
        let inbox = Inbox::new(CommitSeq(0));
        let (done, _rx) = oneshot::channel();
        inbox.request_shutdown(done).expect("the writer is there");
        assert_eq!(inbox.take(Vec::new()).shutdowns.len(), 1);
        let (late, mut late_rx) = oneshot::channel();
        inbox.request_shutdown(late).expect("queued behind the first");
        let waiting = inbox.close(Some(Ok(())));
        assert_eq!(waiting.len(), 1, "the late request is handed back to be answered");
        assert!(inbox.close(None).is_empty(), "a second close (the driver's drop) changes nothing");
        let (after, mut after_rx) = oneshot::channel();
        inbox.request_shutdown(after).expect("answered at once");
        assert_eq!(after_rx.try_recv(), Ok(Ok(())));
        waiting.into_iter().for_each(|done| done.send(Ok(())).expect("the late caller waits"));
        assert_eq!(late_rx.try_recv(), Ok(Ok(())), "the reply handed back is the late caller's");
        assert_eq!(push(&inbox, 1), Err(Closed::WriterGone));
    }
}
