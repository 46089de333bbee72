//! Recovery and takeover: one LIST, the read-back, fencing, deposed writers.
//! A small bucket stands in for S3; each test decides which request lands when.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use super::super::*;
use crate::config::Config;
use crate::format::decode;
use crate::valid_log::Replayer;

/// Objects by position, with their tag metadata: what S3 would hold.
#[derive(Default)]
struct Bucket {
    objects: BTreeMap<Position, (Bytes, String)>,
}

impl Bucket {
    /// A conditional PUT, applied now.
    fn put(&mut self, put: &PutRequest) -> PutOutcome {
        if self.objects.contains_key(&put.position) {
            return PutOutcome::AlreadyExists;
        }
        let tag = put.metadata[0].1.clone();
        self.objects.insert(put.position, (put.body.clone(), tag));
        PutOutcome::Created
    }

    fn head(&self, position: Position) -> HeadOutcome {
        match self.objects.get(&position) {
            Some((_, tag)) => HeadOutcome::Found { tag: Some(tag.clone()) },
            None => HeadOutcome::NotFound,
        }
    }

    /// LIST `batches/` with max-keys 1000: the 1000 highest positions.
    fn list(&self) -> ListOutcome {
        let mut keys: Vec<String> = self.objects.keys().map(|p| p.key()).collect();
        keys.sort();
        let truncated = keys.len() > 1000;
        keys.truncate(1000);
        ListOutcome::Listed { keys, truncated }
    }

    /// The valid log, replayed from position 0 to the first gap.
    fn valid_log(&self) -> Vec<(CommitSeq, Bytes)> {
        let mut replayer = Replayer::new();
        let mut log = Vec::new();
        for (i, (position, (body, _))) in self.objects.iter().enumerate() {
            if position.0 != i as u64 {
                break;
            }
            let object = decode(body).expect("valid object");
            let added = replayer.push(&object).expect("the rule holds");
            log.extend(added.commits.shared().enumerate().map(|(k, c)| (added.first.plus(k as u64), c)));
        }
        log
    }

    /// Batches of one commit each, as a writer with window 50 that sent
    /// each one after the previous was durable would leave them.
    fn fill(&mut self, positions: impl Iterator<Item = u64>, leader: u64) {
        self.fill_pipelined(positions, leader, 0);
    }

    /// Batches of one commit each, each sent while the `in_flight`
    /// before it were not yet durable.
    fn fill_pipelined(&mut self, positions: impl Iterator<Item = u64>, leader: u64, in_flight: u64) {
        for p in positions {
            let epoch = Epoch { generation: 0, nonce: leader };
            let durable = p.saturating_sub(in_flight);
            let max_epoch = if durable == 0 { Epoch::default() } else { epoch };
            let state = LogState { next_seq: CommitSeq(durable), max_epoch };
            let header = Header {
                kind: ObjectKind::Batch,
                leader: LeaderId(leader),
                epoch,
                position: Position(p),
                first_seq: CommitSeq(p),
                count: 1,
                checkpoint: Checkpoint { position: Position(durable), state },
                window: 50,
            };
            let (body, tag) = format::encode_batch(header, &[Bytes::from(p.to_le_bytes().to_vec())]);
            self.objects.insert(Position(p), (body, tag.to_metadata_value()));
        }
    }
}

/// One writer instance and the requests it has asked for.
struct Node {
    m: Persister,
    now: Time,
    puts: BTreeMap<RequestId, PutRequest>,
    heads: BTreeMap<RequestId, Position>,
    list: Option<RequestId>,
    durable: Vec<CommitRange>,
    failed: Option<(CommitRange, Failure)>,
    ready: Option<CommitSeq>,
    timer: Option<Time>,
}

fn config(window: u32) -> Config {
    Config {
        max_in_flight_requests: window,
        target_pool_size: window,
        batch_size_threshold: 1,
        batch_timeout: Duration::from_millis(1),
        ..Config::default()
    }
}

impl Node {
    fn recover(window: u32, leader: u64) -> Node {
        let identity = Identity { leader: LeaderId(leader), nonce: leader, jitter_seed: leader };
        let mut n = Node {
            m: Persister::recover(config(window).validate().expect("valid"), identity),
            now: Time::ZERO,
            puts: BTreeMap::new(),
            heads: BTreeMap::new(),
            list: None,
            durable: Vec::new(),
            failed: None,
            ready: None,
            timer: None,
        };
        n.drain();
        n
    }

    fn drain(&mut self) {
        while let Some(action) = self.m.poll_action() {
            match action {
                Action::Put(put) => {
                    self.puts.insert(put.request, put);
                }
                Action::Head { request, position, .. } => {
                    self.heads.insert(request, position);
                }
                Action::List { request, max_keys, .. } => {
                    assert_eq!(max_keys, 1000);
                    assert!(self.list.replace(request).is_none(), "one LIST at a time");
                }
                Action::SetTimer { at } => self.timer = Some(at),
                Action::CancelTimer => self.timer = None,
                Action::Durable { commits } => {
                    let expected = self.durable.last().map_or(commits.start, |r| r.end);
                    assert_eq!(commits.start, expected, "contiguous");
                    self.durable.push(commits);
                }
                Action::Ready { next_commit, .. } => self.ready = Some(next_commit),
                Action::Failed { commits, failure } => self.failed = Some((commits, failure)),
                Action::Accepted { .. }
                | Action::Probe { .. }
                | Action::ProducersMustWait
                | Action::ProducersMayContinue
                | Action::ShutdownComplete => {}
            }
        }
    }

    fn input(&mut self, input: Input) {
        self.m.handle(self.now, input).expect("not a commit");
        self.drain();
    }

    fn answer_list(&mut self, bucket: &Bucket) {
        let request = self.list.take().expect("a LIST outstanding");
        self.input(Input::ListFinished { request, outcome: bucket.list() });
    }

    fn answer_heads(&mut self, bucket: &Bucket) {
        while let Some((request, position)) = self.heads.pop_first() {
            self.input(Input::HeadFinished { request, outcome: bucket.head(position) });
        }
    }

    /// Lands and answers every outstanding PUT (except those at `hold`),
    /// oldest first, and every HEAD, until nothing but held PUTs is left.
    fn settle(&mut self, bucket: &mut Bucket, hold: &[u64]) {
        for _ in 0..100_000 {
            self.answer_heads(bucket);
            let next = self.puts.values().find(|p| !hold.contains(&p.position.0)).map(|p| p.request);
            let Some(request) = next else { return };
            let put = self.puts.remove(&request).expect("known");
            let outcome = bucket.put(&put);
            self.input(Input::PutFinished { request, outcome });
        }
        panic!("did not settle");
    }

    /// LIST, read back, fence: until ready or failed.
    fn open(&mut self, bucket: &mut Bucket) {
        self.answer_list(bucket);
        self.settle(bucket, &[]);
    }

    fn commit(&mut self, payload: &[u8]) -> CommitSeq {
        let seq = self.m.next_commit_seq();
        self.m.handle(self.now, Input::CommitArrived(Bytes::copy_from_slice(payload))).expect("accepted");
        self.drain();
        seq
    }

    fn take_put_at(&mut self, position: u64) -> PutRequest {
        let request = self.puts.values().find(|p| p.position.0 == position).expect("a PUT there").request;
        self.puts.remove(&request).expect("known")
    }

    fn acked(&self) -> CommitSeq {
        self.durable.last().map_or(CommitSeq(0), |r| r.end)
    }

    fn first_batch_position(&self) -> Position {
        self.m.durable_position()
    }
}

fn assert_prefix(bucket: &Bucket, payloads: &BTreeMap<CommitSeq, Vec<u8>>, acked: CommitSeq) {
    let log = bucket.valid_log();
    for (seq, payload) in payloads.range(..acked) {
        let found = log.iter().find(|(s, _)| s == seq).map(|(_, b)| b.to_vec());
        assert_eq!(found.as_ref(), Some(payload), "acked commit {seq} is in the valid log");
    }
    for w in log.windows(2) {
        assert_eq!(w[1].0, w[0].0.next(), "the valid log has no holes in its sequence");
    }
}

#[test]
fn an_empty_bucket_is_a_new_log_fenced_one_window_deep() {
    let mut bucket = Bucket::default();
    let mut a = Node::recover(50, 1);
    a.open(&mut bucket);
    assert_eq!(a.ready, Some(CommitSeq(0)));
    assert_eq!(a.m.epoch(), Epoch { generation: 0, nonce: 1 });
    let cost = a.m.stats().recovery.clone();
    assert_eq!((cost.lists, cost.heads, cost.puts), (1, 0, 50), "a new log fences its own window");
    assert_eq!(a.first_batch_position(), Position(50));
    a.commit(b"x");
    a.settle(&mut bucket, &[]);
    assert_eq!(a.acked(), CommitSeq(1));
    assert_eq!(bucket.valid_log(), vec![(CommitSeq(0), Bytes::from_static(b"x"))]);
}

#[test]
fn commits_are_refused_while_recovering() {
    let mut a = Node::recover(50, 1);
    let refused = a.m.handle(a.now, Input::CommitArrived(Bytes::from_static(b"early"))).unwrap_err();
    assert_eq!(refused, Refused::Recovering);
}

#[test]
fn clean_shutdown_then_reopen_continues_the_sequence() {
    let mut bucket = Bucket::default();
    let mut a = Node::recover(10, 1);
    a.open(&mut bucket);
    for i in 0..25u8 {
        a.commit(&[i]);
    }
    a.input(Input::ShutdownRequested);
    a.settle(&mut bucket, &[]);
    assert!(a.m.is_shut_down());
    let mut b = Node::recover(10, 2);
    b.open(&mut bucket);
    assert_eq!(b.ready, Some(CommitSeq(25)));
    assert!(b.m.epoch() > a.m.epoch());
    let cost = b.m.stats().recovery.clone();
    // The last batch went out when the 9 before it were in flight: its
    // checkpoint is 9 positions back. The fence covers A's window of 10.
    assert_eq!((cost.lists, cost.heads, cost.puts), (1, 10, 10));
    b.commit(b"next");
    b.settle(&mut bucket, &[]);
    assert_eq!(bucket.valid_log().last().map(|(s, _)| *s), Some(CommitSeq(25)));
}

#[test]
fn crash_with_a_gap_in_the_middle_of_the_window() {
    let mut bucket = Bucket::default();
    let mut payloads = BTreeMap::new();
    let mut a = Node::recover(8, 1);
    a.open(&mut bucket);
    let start = a.first_batch_position().0;
    for i in 0..6u8 {
        payloads.insert(a.commit(&[i; 3]), vec![i; 3]);
    }
    // Batches at start..start+6; the one at start+3 never lands.
    a.settle(&mut bucket, &[start + 3]);
    assert_eq!(a.acked(), CommitSeq(3));
    drop(a);
    let mut b = Node::recover(8, 2);
    b.open(&mut bucket);
    assert_eq!(b.ready, Some(CommitSeq(3)), "commits after the hole were never acked and are void");
    assert_eq!(b.m.epoch().generation, start + 3);
    b.commit(b"new");
    b.settle(&mut bucket, &[]);
    assert_prefix(&bucket, &payloads, CommitSeq(3));
    let log = bucket.valid_log();
    assert_eq!(log.len(), 4);
    assert_eq!(log[3], (CommitSeq(3), Bytes::from_static(b"new")));
}

#[test]
fn exactly_1000_claimed_and_all_written_is_found_by_one_list() {
    let mut bucket = Bucket::default();
    bucket.fill(0..3000, 7);
    let mut b = Node::recover(50, 2);
    b.open(&mut bucket);
    assert_eq!(b.m.epoch().generation, 3000);
    assert_eq!(b.ready, Some(CommitSeq(3000)));
    let cost = b.m.stats().recovery.clone();
    assert_eq!((cost.lists, cost.heads, cost.puts), (1, 1, 50), "the top object's checkpoint is the gap's state");
}

#[test]
fn exactly_1000_claimed_with_the_earliest_missing() {
    let mut bucket = Bucket::default();
    bucket.fill(0..2000, 7);
    bucket.fill(2001..3000, 7); // 999 written above the hole at 2000
    let mut b = Node::recover(50, 2);
    b.open(&mut bucket);
    assert_eq!(b.m.epoch().generation, 2000);
    assert_eq!(b.ready, Some(CommitSeq(2000)), "nothing past the hole counts");
    let log = bucket.valid_log();
    assert_eq!(log.len(), 2000);
    b.commit(b"after");
    b.settle(&mut bucket, &[]);
    assert_eq!(bucket.valid_log().last().map(|(s, _)| *s), Some(CommitSeq(2000)));
}

#[test]
fn without_the_window_rule_one_list_declares_durable_what_follows_a_hole() {
    // A writer bounded only by outstanding requests can claim 1001 positions
    // past its durable prefix: the first lost, the other 1000 written.
    let mut bucket = Bucket::default();
    bucket.fill(0..500, 7);
    bucket.fill(501..1501, 7);
    let ListOutcome::Listed { keys, truncated } = bucket.list() else { unreachable!() };
    let listing = recovery::first_gap(&keys, truncated).expect("looks fine from the top");
    assert_eq!(listing.gap, Position(1501), "the hole at 500 is out of sight: 501..1501 would count as durable");
    // With the window bound, 999 at most sit above the hole, and one LIST sees it.
    let mut bounded = Bucket::default();
    bounded.fill(0..500, 7);
    bounded.fill(501..1500, 7);
    let ListOutcome::Listed { keys, truncated } = bounded.list() else { unreachable!() };
    assert_eq!(recovery::first_gap(&keys, truncated).unwrap().gap, Position(500));
}

#[test]
fn the_machines_window_never_lets_1000_land_past_a_hole() {
    let mut bucket = Bucket::default();
    let mut a = Node::recover(1000, 1);
    a.open(&mut bucket);
    let start = a.first_batch_position().0;
    for i in 0..3000u32 {
        a.commit(&i.to_le_bytes());
    }
    a.settle(&mut bucket, &[start]);
    assert_eq!(a.puts.len(), 1, "only the held PUT is left");
    let above = bucket.objects.range(Position(start)..).count();
    assert_eq!(above, 999, "the window stops claiming 1000 positions past the hole");
    let ListOutcome::Listed { keys, truncated } = bucket.list() else { unreachable!() };
    assert_eq!(recovery::first_gap(&keys, truncated).unwrap().gap, Position(start));
}

#[test]
fn an_old_leader_that_wins_the_first_gap_keeps_its_batch() {
    let mut bucket = Bucket::default();
    let mut payloads = BTreeMap::new();
    let mut a = Node::recover(4, 1);
    a.open(&mut bucket);
    let start = a.first_batch_position().0;
    for i in 0..3u8 {
        payloads.insert(a.commit(&[i]), vec![i]);
    }
    a.settle(&mut bucket, &[start]);
    // B lists while A's PUT at `start` is still on the wire.
    let mut b = Node::recover(4, 2);
    b.answer_list(&bucket);
    let late = a.take_put_at(start);
    let outcome = bucket.put(&late);
    assert_eq!(outcome, PutOutcome::Created, "A wins the gap");
    a.input(Input::PutFinished { request: late.request, outcome });
    assert_eq!(a.acked(), CommitSeq(3), "A acked everything, the gap included");
    b.settle(&mut bucket, &[]);
    assert_eq!(b.ready, Some(CommitSeq(3)), "B counts A's batch at the gap");
    assert_prefix(&bucket, &payloads, a.acked());
    // A's next batch runs into B's fence: A is deposed.
    a.commit(b"zombie");
    a.settle(&mut bucket, &[]);
    assert!(matches!(a.failed, Some((_, Failure::Fenced { .. }))), "{:?}", a.failed);
    assert_eq!(a.acked(), CommitSeq(3), "nothing more acked");
    assert_prefix(&bucket, &payloads, a.acked());
}

#[test]
fn an_old_leader_that_keeps_writing_during_the_takeover_is_fenced() {
    let mut bucket = Bucket::default();
    let mut payloads = BTreeMap::new();
    let mut a = Node::recover(8, 1);
    a.open(&mut bucket);
    let mut b = Node::recover(8, 2);
    b.answer_list(&bucket);
    b.answer_heads(&bucket);
    // Interleave: A writes a batch, B lands a few fences, and so on.
    for round in 0..200u32 {
        if a.failed.is_none() {
            payloads.insert(a.commit(&round.to_le_bytes()), round.to_le_bytes().to_vec());
            if let Some(&request) = a.puts.keys().next() {
                let put = a.puts.remove(&request).unwrap();
                let outcome = bucket.put(&put);
                a.input(Input::PutFinished { request, outcome });
                a.answer_heads(&bucket);
            }
        }
        for _ in 0..3 {
            if let Some(&request) = b.puts.keys().next() {
                let put = b.puts.remove(&request).unwrap();
                let outcome = bucket.put(&put);
                b.input(Input::PutFinished { request, outcome });
                b.answer_heads(&bucket);
            }
        }
    }
    a.settle(&mut bucket, &[]);
    b.settle(&mut bucket, &[]);
    assert!(matches!(a.failed, Some((_, Failure::Fenced { .. }))), "{:?}", a.failed);
    assert_eq!(b.ready, Some(a.acked()), "B continues right after A's last valid commit");
    assert_prefix(&bucket, &payloads, a.acked());
    b.commit(b"b");
    b.settle(&mut bucket, &[]);
    assert_eq!(bucket.valid_log().last().map(|(s, _)| *s), Some(a.acked()));
}

#[test]
fn three_generations_each_acked_prefix_survives() {
    let mut bucket = Bucket::default();
    let mut payloads = BTreeMap::new();
    let mut acked = CommitSeq(0);
    for generation in 1..=3u64 {
        let mut n = Node::recover(6, generation);
        n.open(&mut bucket);
        assert_eq!(n.ready, Some(acked), "generation {generation} continues the sequence");
        let start = n.first_batch_position().0;
        for i in 0..10u8 {
            payloads.insert(n.commit(&[generation as u8, i]), vec![generation as u8, i]);
        }
        // Each generation dies with a hole 4 batches in.
        n.settle(&mut bucket, &[start + 4]);
        acked = n.acked();
        assert_eq!(acked.0 - n.ready.unwrap().0, 4);
        assert_prefix(&bucket, &payloads, acked);
    }
}

#[test]
fn a_writer_that_crashed_while_fencing_is_recovered_with_one_list() {
    let mut bucket = Bucket::default();
    bucket.fill(0..10, 7);
    let mut a = Node::recover(50, 1);
    a.answer_list(&bucket);
    a.answer_heads(&bucket);
    // A lands the fences it can while the one at 15 hangs, and dies.
    a.settle(&mut bucket, &[15]);
    assert_eq!(bucket.objects.len(), 10 + 5 + 44, "fences 10..15, then on to the fence range's end at 60");
    drop(a);
    let mut b = Node::recover(50, 2);
    b.open(&mut bucket);
    assert_eq!(b.m.epoch().generation, 15);
    assert_eq!(b.ready, Some(CommitSeq(10)), "A's fences carry the log's state as A knew it");
    b.commit(b"ten");
    b.settle(&mut bucket, &[]);
    assert_eq!(bucket.valid_log().last().map(|(s, _)| *s), Some(CommitSeq(10)));
}

#[test]
fn two_instances_recovering_from_one_listing_one_wins() {
    let mut bucket = Bucket::default();
    bucket.fill(0..5, 7);
    let mut a = Node::recover(10, 1);
    let mut b = Node::recover(10, 2);
    a.answer_list(&bucket);
    b.answer_list(&bucket);
    assert_eq!(a.m.epoch().generation, b.m.epoch().generation);
    // Alternate their requests, each going first every other round.
    for round in 0..5000 {
        let order = if round % 2 == 0 { [&mut a, &mut b] } else { [&mut b, &mut a] };
        for n in order {
            n.answer_heads(&bucket);
            if let Some(&request) = n.puts.keys().next() {
                let put = n.puts.remove(&request).unwrap();
                let outcome = bucket.put(&put);
                n.input(Input::PutFinished { request, outcome });
            }
        }
    }
    let (winner, loser) = if a.failed.is_some() { (&mut b, &mut a) } else { (&mut a, &mut b) };
    assert!(matches!(loser.failed, Some((_, Failure::Fenced { .. }))), "{:?}", loser.failed);
    assert_eq!(loser.ready, None, "the loser never accepted a commit");
    assert!(winner.failed.is_none(), "{:?}", winner.failed);
    winner.settle(&mut bucket, &[]);
    assert_eq!(winner.ready, Some(CommitSeq(5)));
    winner.commit(b"w");
    winner.settle(&mut bucket, &[]);
    assert_eq!(winner.acked(), CommitSeq(6));
    assert_eq!(bucket.valid_log().len(), 6);
}

#[test]
fn a_412_on_our_own_ambiguous_fence_counts_as_won() {
    let mut bucket = Bucket::default();
    let mut a = Node::recover(5, 1);
    a.answer_list(&bucket);
    let put = a.take_put_at(0);
    bucket.put(&put);
    a.input(Input::PutFinished { request: put.request, outcome: PutOutcome::Failed(Fault::TimedOut) });
    a.now = a.timer.expect("retry timer");
    a.input(Input::TimerFired);
    a.settle(&mut bucket, &[]);
    assert_eq!(a.ready, Some(CommitSeq(0)));
    assert!(a.failed.is_none());
}

#[test]
fn a_listing_that_contradicts_the_protocol_fails_clearly() {
    let mut a = Node::recover(5, 1);
    let request = a.list.take().unwrap();
    let keys = vec![Position(0).key(), "batches/garbage".into()];
    a.input(Input::ListFinished { request, outcome: ListOutcome::Listed { keys, truncated: false } });
    let (_, failure) = a.failed.clone().expect("failed");
    assert!(failure.to_string().contains("not a batch key"), "{failure}");
}

#[test]
fn a_deleted_object_below_the_gap_fails_clearly() {
    let mut bucket = Bucket::default();
    bucket.fill(0..5, 7);
    let mut a = Node::recover(5, 1);
    a.answer_list(&bucket);
    bucket.objects.remove(&Position(4));
    a.answer_heads(&bucket);
    assert!(matches!(&a.failed, Some((_, Failure::ProtocolViolation { position: Position(4), .. }))), "{:?}", a.failed);
}

#[test]
fn recovery_cost_does_not_grow_with_the_log() {
    // Logs left by a writer (window 50) that kept 8 batches in flight, and
    // by one that sent each batch after the last was durable.
    for in_flight in [7u64, 0] {
        let mut costs = Vec::new();
        for len in [10u64, 1_000, 100_000] {
            let mut bucket = Bucket::default();
            bucket.fill_pipelined(0..len, 7, in_flight);
            let mut n = Node::recover(50, 2);
            n.answer_list(&bucket);
            n.settle(&mut bucket, &[]);
            assert_eq!(n.ready, Some(CommitSeq(len)));
            let c = n.m.stats().recovery.clone();
            println!(
                "log of {len:>9} batches ({in_flight} in flight): {} LIST, {} HEAD, {} PUT",
                c.lists, c.heads, c.puts
            );
            costs.push((c.lists, c.heads, c.puts));
        }
        assert!(costs.iter().all(|c| *c == (1, 1 + in_flight, 50)), "identical for every length: {costs:?}");
    }
}

#[test]
fn a_hidden_writer_with_a_wider_window_makes_the_new_one_fail_not_lose() {
    let mut bucket = Bucket::default();
    bucket.fill(0..5, 7);
    // A (window 200) lists and reads, but none of its fences has landed yet.
    let mut a = Node::recover(200, 1);
    a.answer_list(&bucket);
    a.answer_heads(&bucket);
    // B (window 50) sees nothing of A: it fences 5..55 and is ready.
    let mut b = Node::recover(50, 2);
    b.open(&mut bucket);
    assert_eq!((b.ready, b.first_batch_position()), (Some(CommitSeq(5)), Position(55)));
    // A's fences land from the top down: 204..55 are created, 54 answers 412.
    let mut requests: Vec<_> = a.puts.values().map(|p| (p.position, p.request)).collect();
    requests.sort();
    for (_, request) in requests.into_iter().rev() {
        let put = a.puts.remove(&request).expect("known");
        let outcome = bucket.put(&put);
        a.input(Input::PutFinished { request, outcome });
        a.answer_heads(&bucket);
    }
    assert!(matches!(a.failed, Some((_, Failure::Fenced { .. }))), "{:?}", a.failed);
    assert_eq!(a.ready, None);
    // B's first batch meets A's void fence at 55: B fails, naming the cause.
    b.commit(b"lost?");
    b.settle(&mut bucket, &[]);
    let (commits, failure) = b.failed.clone().expect("B failed");
    assert!(failure.to_string().contains("window 200"), "{failure}");
    assert_eq!((commits.start, b.acked()), (CommitSeq(5), CommitSeq(0)), "the commit failed, nothing acked");
    assert_eq!(bucket.valid_log().len(), 5, "A's fences past B's are void; nothing acked was lost");
}
