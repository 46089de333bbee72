//! Collects commits into batches: the size trigger, the time trigger and the
//! idle fast path. Knows nothing of positions or the store.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::format::BatchBuilder;
use crate::types::{CommitRange, CommitSeq, Time};

/// Smallest buffer a new batch starts with.
const MIN_CAPACITY: usize = 4 << 10;

/// A batch whose commits are fixed, waiting for a position.
#[derive(Debug)]
pub(crate) struct SealedBatch {
    pub builder: BatchBuilder,
    pub commits: CommitRange,
    /// Commit payload bytes (what the size threshold counts; the byte
    /// budget counts them with each commit's bookkeeping).
    pub payload_bytes: u64,
}

#[derive(Debug)]
struct OpenBatch {
    builder: BatchBuilder,
    first: CommitSeq,
    /// When the time trigger fires: `batch_timeout` after the first commit.
    deadline: Time,
    payload_bytes: u64,
}

impl OpenBatch {
    fn seal(self) -> SealedBatch {
        let commits = CommitRange::new(self.first, self.first.plus(u64::from(self.builder.count())));
        SealedBatch { builder: self.builder, commits, payload_bytes: self.payload_bytes }
    }
}

/// Why the open batch may be sent now.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum SendNow {
    /// Nothing is in flight: send at once (the idle fast path), unless the
    /// batcher is waiting for a wave of producers (see [`Batcher::expect_wave`]).
    Idle,
    /// A shutdown is draining: send whatever is collected.
    Draining,
    /// Only send it if its size or time trigger fired.
    IfTriggered,
}

#[derive(Debug)]
pub(crate) struct Batcher {
    threshold: u64,
    timeout: Duration,
    open: Option<OpenBatch>,
    sealed: VecDeque<SealedBatch>,
    /// Size of the last sealed batch: a guess for the next one's buffer, so a
    /// batch rarely reallocates (which would copy its commits again) and a
    /// lone commit does not pin a threshold-sized buffer.
    last_encoded: usize,
    /// Buffers of durable batches kept for new ones: fresh memory costs a
    /// page fault per 4 KiB, more than copying the commits into it.
    spare: Vec<BytesMut>,
    /// The sum of `spare`'s capacities.
    spare_bytes: u64,
    /// Most buffers `spare` holds: a window's worth, the most one ack wave
    /// can return.
    max_spares: usize,
    /// How many commits the idle fast path waits for (at most until the time
    /// trigger). 1 except right after an ack wave emptied the window.
    idle_quorum: u64,
}

/// Spare buffers kept even when the byte budget is full: enough for a
/// steady bulk load, where each durable batch's buffer goes to the next
/// batch, at the cost of this many batches of memory beyond the budget.
const SPARES_ALWAYS_KEPT: usize = 4;

impl Batcher {
    pub fn new(threshold: u64, timeout: Duration, max_spares: usize) -> Batcher {
        Batcher {
            threshold,
            timeout,
            open: None,
            sealed: VecDeque::new(),
            last_encoded: MIN_CAPACITY,
            spare: Vec::new(),
            spare_bytes: 0,
            max_spares,
            idle_quorum: 1,
        }
    }

    /// An ack wave released `released` commits and left nothing in flight.
    ///
    /// Producers that wait for durability before their next commit (a closed
    /// loop, like concurrent transactions) come back within microseconds of
    /// the wave. Sending the first of them alone would split every round into
    /// two PUTs: one commit, then the rest a moment later. So the idle fast
    /// path waits until the batch holds as many commits as the wave released
    /// plus those already collecting, or until the time trigger, whichever
    /// comes first. A lone producer's wave is one commit: it still goes at
    /// once.
    pub fn expect_wave(&mut self, released: u64) {
        let collecting = self.open.as_ref().map_or(0, |open| u64::from(open.builder.count()));
        self.idle_quorum = released.saturating_add(collecting).max(1);
    }

    /// Takes back a durable batch's buffer, if nobody else holds it, there
    /// are fewer than `max_spares`, and either there are fewer than
    /// [`SPARES_ALWAYS_KEPT`] or the spares stay within `room` bytes (what
    /// the byte budget has free when the buffer comes back).
    ///
    /// Acks come in waves: one slow PUT holds back the batches behind it,
    /// then they all turn durable at once, while new batches start at a
    /// steady pace. Keeping only a few spares, they overflow on every wave
    /// and run dry between waves, and most batches start in fresh memory
    /// (BENCHMARKS.md, "PUT bodies and batch buffers"). Under a bulk load
    /// the budget is always full, and a buffer, sized for the last batch
    /// plus an eighth, is larger than the payload its batch frees: without
    /// the few kept regardless, no buffer was ever reused there.
    pub fn recycle(&mut self, body: Bytes, room: u64) {
        if self.spare.len() >= self.max_spares {
            return;
        }
        let Ok(buffer) = body.try_into_mut() else { return };
        let capacity = buffer.capacity() as u64;
        if self.spare.len() < SPARES_ALWAYS_KEPT || self.spare_bytes + capacity <= room {
            self.spare_bytes += capacity;
            self.spare.push(buffer);
        }
    }

    fn new_builder(&mut self) -> BatchBuilder {
        let capacity = self.next_capacity();
        match self.spare.pop() {
            Some(buffer) => {
                self.spare_bytes -= buffer.capacity() as u64;
                BatchBuilder::reusing(buffer, capacity)
            }
            None => BatchBuilder::with_capacity(capacity),
        }
    }

    /// Adds one commit; seals the open batch when it reaches the threshold.
    /// Returns whether this commit started a new batch (its timer starts).
    #[inline]
    pub fn push(&mut self, now: Time, seq: CommitSeq, payload: &[u8]) -> bool {
        let started = self.open.is_none();
        if started {
            self.start_batch(now, seq);
        }
        let Some(open) = self.open.as_mut() else { return started };
        debug_assert_eq!(open.first.plus(u64::from(open.builder.count())), seq, "commits arrive in order");
        open.builder.push(payload);
        open.payload_bytes += payload.len() as u64;
        if open.payload_bytes >= self.threshold {
            self.seal_open();
        }
        started
    }

    /// Out of line: once per batch, and inlined it weighed on every commit.
    #[inline(never)]
    fn start_batch(&mut self, now: Time, first: CommitSeq) {
        let builder = self.new_builder();
        let deadline = now + self.timeout;
        self.open = Some(OpenBatch { builder, first, deadline, payload_bytes: 0 });
    }

    /// Room for the last batch and a little more, capped near twice the
    /// threshold (encoded commits carry a length each, so a full batch
    /// exceeds the threshold).
    fn next_capacity(&self) -> usize {
        let most = usize::try_from(self.threshold).unwrap_or(usize::MAX).saturating_mul(2).saturating_add(MIN_CAPACITY);
        let guess = self.last_encoded.saturating_add(self.last_encoded / 8).saturating_add(MIN_CAPACITY);
        guess.clamp(MIN_CAPACITY, most)
    }

    #[inline(never)]
    fn seal_open(&mut self) {
        if let Some(open) = self.open.take() {
            self.idle_quorum = 1;
            self.last_encoded = open.builder.commits_len();
            self.sealed.push_back(open.seal());
        }
    }

    /// Whether [`Batcher::take_ready`] would return a batch.
    #[inline]
    pub fn has_ready(&self, now: Time, send: SendNow) -> bool {
        !self.sealed.is_empty() || self.open.as_ref().is_some_and(|open| self.open_is_due(open, now, send))
    }

    #[inline]
    fn open_is_due(&self, open: &OpenBatch, now: Time, send: SendNow) -> bool {
        match send {
            SendNow::Draining => true,
            SendNow::Idle => u64::from(open.builder.count()) >= self.idle_quorum || now >= open.deadline,
            SendNow::IfTriggered => now >= open.deadline,
        }
    }

    /// The next batch to send, if one is ready at `now`.
    #[inline]
    pub fn take_ready(&mut self, now: Time, send: SendNow) -> Option<SealedBatch> {
        if self.sealed.is_empty() {
            let open = self.open.as_ref()?;
            if !self.open_is_due(open, now, send) {
                return None;
            }
            self.seal_open();
        }
        self.sealed.pop_front()
    }

    /// When the open batch's time trigger fires, if a batch is open.
    pub fn deadline(&self) -> Option<Time> {
        self.open.as_ref().map(|o| o.deadline)
    }

    /// Whether no commit is waiting to be sent.
    pub fn is_empty(&self) -> bool {
        self.open.is_none() && self.sealed.is_empty()
    }

    /// Throws away every unsent commit (the machine failed).
    pub fn clear(&mut self) {
        self.idle_quorum = 1;
        self.open = None;
        self.sealed.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Time {
        Time::from_millis(n)
    }

    /// A durable batch's body, as the machine gets it back.
    fn body(capacity: usize) -> Bytes {
        let mut buffer = BytesMut::with_capacity(capacity);
        buffer.extend_from_slice(&[7; 64]);
        buffer.freeze()
    }

    #[test]
    fn a_whole_wave_of_buffers_is_kept_while_the_budget_has_room_and_reused() {
        let mut b = Batcher::new(1 << 20, Duration::from_millis(1), 50);
        for _ in 0..20 {
            b.recycle(body(1 << 20), 64 << 20);
        }
        assert_eq!(b.spare.len(), 20, "a wave of 20 durable batches");
        assert_eq!(b.spare_bytes, 20 << 20);
        b.push(ms(0), CommitSeq(0), b"x");
        assert_eq!((b.spare.len(), b.spare_bytes), (19, 19 << 20), "the new batch took a spare buffer");
    }

    #[test]
    fn spare_buffers_stay_within_the_budgets_room_and_shared_ones_are_not_taken() {
        let mut b = Batcher::new(1 << 20, Duration::from_millis(1), 50);
        for _ in 0..8 {
            b.recycle(body(1 << 20), 6 << 20);
        }
        assert_eq!(b.spare_bytes, 6 << 20, "six fit in 6 MiB of room");
        let shared = body(1 << 20);
        let _still_sent = shared.clone();
        b.recycle(shared, 64 << 20);
        assert_eq!(b.spare.len(), 6, "a body someone still holds is left alone");
        let mut capped = Batcher::new(1 << 20, Duration::from_millis(1), 2);
        for _ in 0..5 {
            capped.recycle(body(1 << 20), 64 << 20);
        }
        assert_eq!(capped.spare.len(), 2, "no more than a window's worth");
    }

    #[test]
    fn a_few_spares_are_kept_when_the_budget_is_full() {
        let mut b = Batcher::new(1 << 20, Duration::from_millis(1), 50);
        for _ in 0..SPARES_ALWAYS_KEPT + 3 {
            b.recycle(body(1 << 20), 0);
        }
        assert_eq!(b.spare.len(), SPARES_ALWAYS_KEPT, "a bulk load reuses buffers too");
    }

    #[test]
    fn size_trigger_seals_with_the_last_commit_past_the_threshold() {
        let mut b = Batcher::new(10, Duration::from_millis(5), 8);
        b.push(ms(0), CommitSeq(0), &[0; 6]);
        assert!(b.take_ready(ms(0), SendNow::IfTriggered).is_none());
        b.push(ms(0), CommitSeq(1), &[0; 6]);
        let batch = b.take_ready(ms(0), SendNow::IfTriggered).expect("sealed by size");
        assert_eq!(batch.commits, CommitRange::new(CommitSeq(0), CommitSeq(2)));
        assert_eq!(batch.payload_bytes, 12);
        assert!(b.is_empty());
    }

    #[test]
    fn time_trigger_counts_from_the_first_commit() {
        let mut b = Batcher::new(1000, Duration::from_millis(5), 8);
        assert!(b.push(ms(10), CommitSeq(0), b"a"));
        assert!(!b.push(ms(14), CommitSeq(1), b"b"));
        assert_eq!(b.deadline(), Some(ms(15)));
        assert!(b.take_ready(ms(14), SendNow::IfTriggered).is_none());
        let batch = b.take_ready(ms(15), SendNow::IfTriggered).expect("timed out");
        assert_eq!(batch.commits.len(), 2);
    }

    #[test]
    fn idle_and_draining_send_at_once_but_never_empty() {
        let mut b = Batcher::new(1000, Duration::from_millis(5), 8);
        assert!(b.take_ready(ms(0), SendNow::Idle).is_none());
        assert!(b.take_ready(ms(0), SendNow::Draining).is_none());
        b.push(ms(0), CommitSeq(7), b"x");
        assert_eq!(b.take_ready(ms(0), SendNow::Idle).map(|s| s.commits.len()), Some(1));
        b.push(ms(0), CommitSeq(8), b"y");
        assert_eq!(b.take_ready(ms(0), SendNow::Draining).map(|s| s.commits.start), Some(CommitSeq(8)));
    }

    #[test]
    fn sealed_batches_queue_in_order() {
        let mut b = Batcher::new(1, Duration::from_millis(5), 8);
        for i in 0..3 {
            b.push(ms(0), CommitSeq(i), b"zz");
        }
        let starts: Vec<u64> =
            std::iter::from_fn(|| b.take_ready(ms(0), SendNow::IfTriggered)).map(|s| s.commits.start.0).collect();
        assert_eq!(starts, vec![0, 1, 2]);
    }
}
