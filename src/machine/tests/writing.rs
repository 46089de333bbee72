//! The write path: batching, flow control, acks, retries, shutdown.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use super::super::*;
use crate::config::{budget_cost, Config, COMMIT_BOOKKEEPING_BYTES};
use crate::format::{decode, ObjectTag};

/// A persister, a fake clock and the requests it has asked for.
struct Harness {
    m: Persister,
    now: Time,
    puts: BTreeMap<RequestId, PutRequest>,
    heads: BTreeMap<RequestId, Position>,
    probes: Vec<RequestId>,
    durable: Vec<CommitRange>,
    accepted: Vec<CommitRange>,
    failed: Option<(CommitRange, Failure)>,
    timer: Option<Time>,
    waiting: bool,
    shut_down: bool,
}

fn config() -> Config {
    Config { batch_size_threshold: 100, batch_timeout: Duration::from_millis(5), ..Config::default() }
}

impl Harness {
    fn new(config: Config) -> Harness {
        let identity = Identity { leader: LeaderId(1), nonce: 2, jitter_seed: 3 };
        let start = StartPoint { position: Position(0), next_commit: CommitSeq(0), epoch: Epoch::default() };
        let mut h = Harness {
            m: Persister::resume(config.validate().expect("valid"), identity, start),
            now: Time::ZERO,
            puts: BTreeMap::new(),
            heads: BTreeMap::new(),
            probes: Vec::new(),
            durable: Vec::new(),
            accepted: Vec::new(),
            failed: None,
            timer: None,
            waiting: false,
            shut_down: false,
        };
        h.drain();
        h
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
                Action::List { .. } => panic!("no LIST outside recovery"),
                Action::Probe { request } => self.probes.push(request),
                Action::SetTimer { at } => self.timer = Some(at),
                Action::CancelTimer => self.timer = None,
                Action::Accepted { commits } => self.accepted.push(commits),
                Action::Durable { commits } => {
                    let expected = self.durable.last().map_or(CommitSeq(0), |r| r.end);
                    assert_eq!(commits.start, expected, "durable acks are contiguous");
                    assert!(!commits.is_empty());
                    self.durable.push(commits);
                }
                Action::ProducersMustWait => self.waiting = true,
                Action::ProducersMayContinue => self.waiting = false,
                Action::Ready { .. } => {}
                Action::Failed { commits, failure } => {
                    assert!(self.failed.is_none(), "fails once");
                    self.failed = Some((commits, failure));
                }
                Action::ShutdownComplete => self.shut_down = true,
            }
        }
    }

    fn input(&mut self, input: Input) {
        self.m.handle(self.now, input).expect("only commits are refused");
        self.drain();
    }

    fn commit(&mut self, payload: &'static [u8]) -> CommitSeq {
        let seq = self.m.next_commit_seq();
        self.m.handle(self.now, Input::CommitArrived(Bytes::from_static(payload))).expect("accepted");
        self.drain();
        seq
    }

    fn commits(&mut self, n: usize, payload: &'static [u8]) {
        for _ in 0..n {
            self.commit(payload);
        }
    }

    /// Moves the clock on, firing the timer whenever it falls due.
    fn advance(&mut self, ms: u64) {
        let until = self.now + Duration::from_millis(ms);
        while let Some(at) = self.timer.filter(|&at| at <= until) {
            self.now = self.now.max(at);
            self.timer = None;
            self.input(Input::TimerFired);
        }
        self.now = until;
    }

    /// Outstanding PUTs, oldest first, as (request, position).
    fn pending(&self) -> Vec<(RequestId, Position)> {
        self.puts.values().map(|p| (p.request, p.position)).collect()
    }

    /// Outstanding requests for one position (two while it is hedged).
    fn requests_at(&self, position: Position) -> Vec<RequestId> {
        self.puts.values().filter(|p| p.position == position).map(|p| p.request).collect()
    }

    fn pending_at(&self, position: Position) -> RequestId {
        self.puts.values().find(|p| p.position == position).map(|p| p.request).expect("a PUT for that position")
    }

    fn complete(&mut self, request: RequestId, outcome: PutOutcome) -> PutRequest {
        let put = self.puts.remove(&request).expect("known request");
        self.input(Input::PutFinished { request, outcome });
        put
    }

    fn complete_at(&mut self, position: Position, outcome: PutOutcome) -> PutRequest {
        let request = self.pending_at(position);
        self.complete(request, outcome)
    }

    fn answer_head(&mut self, outcome: HeadOutcome) -> Position {
        let (&request, &position) = self.heads.iter().next().expect("a HEAD outstanding");
        self.heads.remove(&request);
        self.input(Input::HeadFinished { request, outcome });
        position
    }

    fn durable_end(&self) -> CommitSeq {
        self.durable.last().map_or(CommitSeq(0), |r| r.end)
    }
}

fn fault(f: Fault) -> PutOutcome {
    PutOutcome::Failed(f)
}

fn tag_of(put: &PutRequest) -> String {
    decode(&put.body).expect("valid object").tag().to_metadata_value()
}

#[test]
fn idle_fast_path_sends_the_first_commit_at_once() {
    let mut h = Harness::new(config());
    h.commit(b"first");
    assert_eq!(h.pending().len(), 1, "nothing in flight: sent without waiting");
    assert_eq!(h.accepted, vec![CommitRange::new(CommitSeq(0), CommitSeq(1))]);
    let put = &h.puts.values().next().unwrap();
    assert_eq!(put.key, Position(0).key());
    let obj = decode(&put.body).unwrap();
    assert_eq!(obj.commits.to_vec(), vec![Bytes::from_static(b"first")]);
    assert_eq!(put.metadata, vec![(TAG_METADATA_KEY.to_string(), obj.tag().to_metadata_value())]);
}

#[test]
fn a_lone_producer_in_a_closed_loop_keeps_the_idle_fast_path() {
    let mut h = Harness::new(config());
    for round in 0..5u64 {
        h.commit(b"txn");
        let (request, position) = h.pending()[0];
        assert_eq!(position, Position(round), "round {round}: sent at once, no timer waited for");
        h.complete(request, PutOutcome::Created);
    }
    assert_eq!(h.durable_end(), CommitSeq(5));
    assert_eq!(h.now, Time::ZERO);
}

#[test]
fn after_an_ack_wave_the_idle_fast_path_waits_for_the_released_producers() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    h.commits(2, b"b");
    assert_eq!(h.pending().len(), 1, "a went alone; the others collect while it is in flight");
    h.complete_at(Position(0), PutOutcome::Created);
    assert!(h.pending().is_empty(), "a's producer was released: wait for it (and the 2 collecting)");
    h.commit(b"a again");
    let (_, position) = h.pending()[0];
    assert_eq!(position, Position(1), "sent the moment the wave's 3 commits are in, before any timer");
    assert_eq!(decode(&h.puts[&h.pending_at(position)].body).unwrap().commits.len(), 3);
    assert_eq!(h.now, Time::ZERO);
}

#[test]
fn a_wave_whose_producers_do_not_return_leaves_at_the_time_trigger() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    h.advance(1);
    h.commits(2, b"b");
    h.complete_at(Position(0), PutOutcome::Created);
    assert!(h.pending().is_empty());
    assert_eq!(h.timer, Some(Time::from_millis(6)), "5 ms after the batch started collecting");
    h.advance(4);
    assert!(h.pending().is_empty());
    h.advance(1);
    let request = h.pending_at(Position(1));
    assert_eq!(decode(&h.puts[&request].body).unwrap().commits.len(), 2, "a's producer never came back");
}

#[test]
fn size_trigger_seals_a_batch_while_another_is_in_flight() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    h.commits(2, &[7; 60]);
    assert_eq!(h.pending().len(), 2, "60+60 >= 100 bytes sealed the second batch");
    let put = h.complete_at(Position(1), PutOutcome::Created);
    assert_eq!(decode(&put.body).unwrap().commits.len(), 2);
}

#[test]
fn time_trigger_counts_from_the_batchs_first_commit() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    h.advance(2);
    h.commit(b"b");
    assert_eq!(h.timer, Some(Time::from_millis(7)), "5 ms after b started the batch");
    h.advance(4);
    h.commit(b"c");
    assert_eq!(h.pending().len(), 1);
    h.advance(1);
    assert_eq!(h.pending().len(), 2, "sent at 7 ms");
    assert_eq!(decode(&h.puts[&h.pending_at(Position(1))].body).unwrap().commits.len(), 2);
}

#[test]
fn no_batch_is_ever_empty_and_an_idle_machine_only_wakes_to_probe() {
    let mut h = Harness::new(config());
    h.advance(100);
    assert!(h.pending().is_empty());
    assert_eq!(h.timer, Some(Time::from_millis(5_000)), "the only timer: the idle health probe");
    h.commit(b"x");
    h.complete_at(Position(0), PutOutcome::Created);
    h.advance(100);
    assert!(h.pending().is_empty());
    assert_eq!(h.timer, Some(Time::from_millis(5_100)), "5 s after the store last answered");
    assert!(h.probes.is_empty());
}

#[test]
fn outstanding_requests_are_bounded() {
    let mut h = Harness::new(Config { max_in_flight_requests: 3, target_pool_size: 3, ..config() });
    h.commits(20, &[1; 100]);
    assert_eq!(h.pending().len(), 3);
    assert_eq!(h.m.outstanding_requests(), 3);
    h.complete_at(Position(0), PutOutcome::Created);
    assert_eq!(h.pending().len(), 3, "one finished, one more sent");
}

#[test]
fn window_counts_claims_not_requests() {
    let mut h = Harness::new(Config { max_in_flight_requests: 3, target_pool_size: 3, ..config() });
    h.commits(20, &[1; 100]);
    h.complete_at(Position(1), PutOutcome::Created);
    h.complete_at(Position(2), PutOutcome::Created);
    assert_eq!(h.pending().len(), 1, "positions 1 and 2 are done but 0 is not: no new claims");
    assert_eq!(h.m.window_len(), 3);
    assert!(h.durable.is_empty());
    h.complete_at(Position(0), PutOutcome::Created);
    assert_eq!(h.durable_end(), CommitSeq(3));
    assert_eq!(h.pending().len(), 3, "the window slid by three");
}

#[test]
fn commits_keep_collecting_while_the_window_is_full() {
    let mut h = Harness::new(Config { max_in_flight_requests: 1, target_pool_size: 1, ..config() });
    h.commit(b"a");
    h.commits(5, &[0; 10]);
    h.advance(50);
    assert_eq!(h.pending().len(), 1, "timeout passed but the window is full");
    assert_eq!(h.timer, None, "no point waking up for a batch that cannot go");
    h.complete_at(Position(0), PutOutcome::Created);
    let put = h.puts.values().next().unwrap();
    assert_eq!(decode(&put.body).unwrap().commits.len(), 5, "the late batch holds everything collected");
}

#[test]
fn byte_budget_makes_producers_wait_and_releases_them() {
    let byte_budget = budget_cost(2, 200) + 50;
    let mut h = Harness::new(Config { byte_budget, batch_size_threshold: 100, ..config() });
    h.commits(2, &[0; 100]);
    assert!(!h.waiting);
    h.commit(&[0; 100]);
    assert!(h.waiting, "three commits cost more than the budget");
    h.complete_at(Position(0), PutOutcome::Created);
    assert!(!h.waiting, "two left: under budget");
}

#[test]
fn empty_commits_cost_their_bookkeeping() {
    let mut h = Harness::new(Config { byte_budget: budget_cost(3, 0), batch_size_threshold: 100, ..config() });
    h.commits(3, b"");
    assert!(!h.waiting, "three empty commits fill the budget exactly");
    h.commit(b"");
    assert!(h.waiting, "a fourth is over it");
    h.complete_at(Position(0), PutOutcome::Created);
    assert!(!h.waiting, "the first batch's commits gave their cost back");
}

#[test]
fn durable_commits_give_back_exactly_what_they_cost() {
    let mut h = Harness::new(Config { byte_budget: 1000, batch_size_threshold: 100, ..config() });
    h.commits(3, b"");
    h.commits(2, &[7; 150]);
    for _ in 0..10 {
        h.advance(10); // Batch timeouts fire.
        while let Some(&request) = h.puts.keys().next() {
            h.complete(request, PutOutcome::Created);
        }
    }
    assert_eq!(h.durable_end(), CommitSeq(5));
    assert!(!h.waiting);
    let longest = Bytes::from(vec![0; h.m.config.max_commit_len()]);
    h.m.handle(h.now, Input::CommitArrived(longest)).expect("fits");
    h.drain();
    assert!(!h.waiting, "the longest commit costs the whole budget: nothing was left behind");
    h.commit(b"");
    assert!(h.waiting, "and one more is over it");
}

#[test]
fn a_commit_larger_than_the_budget_is_refused() {
    let byte_budget = 200;
    let mut h = Harness::new(Config { byte_budget, batch_size_threshold: 100, ..config() });
    let max = (byte_budget - COMMIT_BOOKKEEPING_BYTES) as usize;
    let err = h.m.handle(h.now, Input::CommitArrived(Bytes::from(vec![0; max + 1]))).unwrap_err();
    assert_eq!(err, Refused::TooLarge { len: max + 1, max });
    h.m.handle(h.now, Input::CommitArrived(Bytes::from(vec![0; max]))).expect("the longest commit fits");
}

#[test]
fn retries_back_off_exponentially_with_the_same_bytes() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    let first = h.complete_at(Position(0), fault(Fault::Throttled));
    assert!(h.pending().is_empty(), "waits before retrying");
    for attempt in 1..=3u32 {
        let wait = h.timer.expect("a retry timer") - h.now;
        let full = Duration::from_millis(100) * (1 << (attempt - 1));
        assert!(wait >= full / 2 && wait <= full, "retry {attempt}: {wait:?}");
        h.advance(wait.as_millis() as u64 + 1);
        let retry = h.puts.values().next().expect("retried").clone();
        assert_eq!(retry.body, first.body, "identical bytes");
        assert_eq!(retry.key, first.key, "same key");
        if attempt < 3 {
            h.complete(retry.request, fault(Fault::Conflict));
        } else {
            h.complete(retry.request, PutOutcome::Created);
        }
    }
    assert_eq!(h.durable_end(), CommitSeq(1));
    assert_eq!(h.m.stats().retries.throttled, 1);
    assert_eq!(h.m.stats().retries.conflict, 2);
}

#[test]
fn only_the_failing_batch_waits() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    h.commits(2, &[0; 60]);
    h.complete_at(Position(0), fault(Fault::ServerError { status: 500 }));
    h.commits(2, &[0; 60]);
    assert_eq!(h.pending().len(), 2, "later batches keep flowing");
    h.complete_at(Position(1), PutOutcome::Created);
    h.complete_at(Position(2), PutOutcome::Created);
    assert!(h.durable.is_empty(), "but nothing is acked past the hole");
    h.advance(200);
    h.complete_at(Position(0), PutOutcome::Created);
    assert_eq!(h.durable, vec![CommitRange::new(CommitSeq(0), CommitSeq(5))]);
}

#[test]
fn exhausted_retries_fail_every_waiting_commit_and_refuse_more() {
    let mut h = Harness::new(Config { max_retry_attempts: 2, ..config() });
    h.commit(b"a");
    h.commits(3, &[0; 60]);
    for _ in 0..2 {
        h.complete_at(Position(0), fault(Fault::ServerError { status: 500 }));
        h.advance(1000);
    }
    h.complete_at(Position(1), PutOutcome::Created);
    h.complete_at(Position(0), fault(Fault::ServerError { status: 500 }));
    let (commits, failure) = h.failed.clone().expect("failed");
    assert_eq!(commits, CommitRange::new(CommitSeq(0), CommitSeq(4)), "every unacked commit, sent or not");
    assert!(matches!(failure, Failure::RetriesExhausted { attempts: 3, position: Position(0), .. }), "{failure}");
    assert!(h.durable.is_empty());
    let refused = h.m.handle(h.now, Input::CommitArrived(Bytes::from_static(b"late"))).unwrap_err();
    assert!(matches!(refused, Refused::Failed(_)), "{refused}");
    let late = h.pending_at(Position(2));
    h.complete(late, PutOutcome::Created);
    assert!(h.durable.is_empty(), "a failed machine never acks");
    assert_eq!(h.timer, None);
}

#[test]
fn zero_retries_fail_on_the_first_error() {
    let mut h = Harness::new(Config { max_retry_attempts: 0, ..config() });
    h.commit(b"a");
    h.complete_at(Position(0), fault(Fault::Throttled));
    assert!(matches!(h.failed, Some((_, Failure::RetriesExhausted { attempts: 1, .. }))));
}

#[test]
fn rejected_requests_fail_at_once() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    h.complete_at(Position(0), fault(Fault::Rejected { reason: "AccessDenied".into() }));
    assert!(matches!(&h.failed, Some((_, Failure::Rejected { reason, .. })) if reason.contains("AccessDenied")));
}

#[test]
fn ambiguous_write_then_412_on_our_own_object_is_success() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    let first = h.complete_at(Position(0), fault(Fault::TimedOut));
    h.advance(200);
    h.complete_at(Position(0), PutOutcome::AlreadyExists);
    assert!(h.durable.is_empty(), "not before the owner check");
    h.answer_head(HeadOutcome::Found { tag: Some(tag_of(&first)) });
    assert_eq!(h.durable_end(), CommitSeq(1));
    assert!(h.failed.is_none());
}

#[test]
fn a_412_on_another_writers_object_is_fenced() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    h.commit(b"b");
    let ours = h.complete_at(Position(0), PutOutcome::AlreadyExists);
    let mut theirs = decode(&ours.body).unwrap().tag();
    theirs.header.leader = LeaderId(99);
    theirs.header.epoch = Epoch { generation: 5, nonce: 1 };
    h.answer_head(HeadOutcome::Found { tag: Some(theirs.to_metadata_value()) });
    let (commits, failure) = h.failed.clone().expect("deposed");
    assert_eq!(commits, CommitRange::new(CommitSeq(0), CommitSeq(2)));
    assert!(matches!(failure, Failure::Fenced { leader: LeaderId(99), .. }), "{failure}");
    assert!(failure.to_string().contains("fenced"));
}

#[test]
fn same_leader_but_different_bytes_is_not_ours() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    let ours = h.complete_at(Position(0), PutOutcome::AlreadyExists);
    let mut other = decode(&ours.body).unwrap().tag();
    other.crc ^= 1;
    h.answer_head(HeadOutcome::Found { tag: Some(other.to_metadata_value()) });
    assert!(matches!(h.failed, Some((_, Failure::Fenced { .. }))));
}

#[test]
fn a_foreign_object_is_a_protocol_violation() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    h.complete_at(Position(0), PutOutcome::AlreadyExists);
    h.answer_head(HeadOutcome::Found { tag: None });
    assert!(matches!(h.failed, Some((_, Failure::ProtocolViolation { .. }))));
}

#[test]
fn a_failed_owner_check_is_retried() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    let ours = h.complete_at(Position(0), PutOutcome::AlreadyExists);
    h.answer_head(HeadOutcome::Failed(Fault::ConnectionFailed));
    assert!(h.heads.is_empty());
    h.advance(200);
    h.answer_head(HeadOutcome::Found { tag: Some(tag_of(&ours)) });
    assert_eq!(h.durable_end(), CommitSeq(1));
}

#[test]
fn graceful_shutdown_seals_drains_and_refuses() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    h.commit(b"b");
    h.input(Input::ShutdownRequested);
    assert_eq!(h.pending().len(), 2, "the open batch is sent at once");
    let refused = h.m.handle(h.now, Input::CommitArrived(Bytes::from_static(b"c"))).unwrap_err();
    assert_eq!(refused, Refused::ShuttingDown);
    h.complete_at(Position(1), PutOutcome::Created);
    assert!(!h.shut_down);
    h.complete_at(Position(0), PutOutcome::Created);
    assert!(h.shut_down);
    assert_eq!(h.durable_end(), CommitSeq(2), "nothing accepted was dropped");
}

#[test]
fn shutdown_waits_for_retries() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    h.input(Input::ShutdownRequested);
    h.complete_at(Position(0), fault(Fault::Throttled));
    assert!(!h.shut_down);
    h.advance(1000);
    h.complete_at(Position(0), PutOutcome::Created);
    assert!(h.shut_down);
}

#[test]
fn objects_carry_identity_and_sequence() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    h.commits(2, &[1; 50]);
    let put = h.complete_at(Position(1), PutOutcome::Created);
    let obj = decode(&put.body).unwrap();
    assert_eq!(obj.header.leader, LeaderId(1));
    assert_eq!(obj.header.position, Position(1));
    assert_eq!(obj.header.first_seq, CommitSeq(1));
    assert_eq!(obj.header.count, 2);
    assert_eq!(ObjectTag::parse(&tag_of(&put)).unwrap(), obj.tag());
}

proptest! {
    /// Whatever order PUTs complete in, acks come out in order, contiguous,
    /// exactly once, each only after its batch and every earlier one.
    #[test]
    fn acks_are_ordered_under_any_completion_order(
        sizes in prop::collection::vec(1usize..150, 1..60),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..200),
        window in 1u32..8,
    ) {
        let mut h = Harness::new(Config { max_in_flight_requests: window, target_pool_size: window, ..config() });
        static PAYLOAD: [u8; 150] = [5; 150];
        let mut picks = picks.into_iter();
        let mut completed: BTreeMap<Position, CommitRange> = BTreeMap::new();
        for size in sizes {
            h.commit(&PAYLOAD[..size]);
            if let Some(pick) = picks.next() {
                let pending = h.pending();
                if !pending.is_empty() {
                    let (request, position) = pending[pick.index(pending.len())];
                    let put = h.complete(request, PutOutcome::Created);
                    let obj = decode(&put.body).unwrap();
                    let first = obj.header.first_seq;
                    completed.insert(position, CommitRange::new(first, first.plus(obj.commits.len() as u64)));
                }
            }
            prop_assert!(h.m.window_len() <= window as usize);
            // Every ack is covered by a prefix of completed positions.
            let prefix_end = completed.iter().enumerate().take_while(|(i, (p, _))| p.0 == *i as u64).map(|(_, (_, r))| r.end).last();
            prop_assert_eq!(h.durable_end(), prefix_end.unwrap_or(CommitSeq(0)));
        }
        h.input(Input::ShutdownRequested);
        while let Some(&(request, _)) = h.pending().last() {
            h.complete(request, PutOutcome::Created);
        }
        prop_assert!(h.shut_down);
        prop_assert_eq!(h.durable_end(), h.m.next_commit_seq());
    }
}

#[test]
fn an_idle_writer_probes_the_store_and_carries_on_when_it_answers() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    h.complete_at(Position(0), PutOutcome::Created);
    assert!(h.probes.is_empty());
    h.advance(5_000);
    assert_eq!(h.probes.len(), 1, "5 s idle: one probe");
    let probe = h.probes.remove(0);
    h.input(Input::ProbeFinished { request: probe, outcome: Ok(()) });
    h.commit(b"b");
    assert_eq!(h.pending().len(), 1, "healthy: sent at once");
    assert_eq!(h.m.stats().probes, 1);
}

#[test]
fn a_dead_endpoint_pauses_new_batches_until_a_probe_succeeds() {
    let mut h = Harness::new(config());
    h.commit(b"a");
    h.complete_at(Position(0), fault(Fault::ConnectionFailed));
    assert_eq!(h.probes.len(), 1, "lost contact: probe at once");
    h.commit(b"b");
    assert!(h.pending().is_empty(), "no new batch to an endpoint that does not answer");
    let probe = h.probes.remove(0);
    h.input(Input::ProbeFinished { request: probe, outcome: Err(Fault::ConnectionFailed) });
    assert!(h.probes.is_empty());
    h.advance(200);
    assert_eq!(h.probes.len(), 1, "probes again after a backoff");
    let retry = h.pending_at(Position(0));
    h.complete(retry, PutOutcome::Created);
    assert!(h.pending().is_empty(), "still paused: only a probe clears it");
    let probe = h.probes.remove(0);
    h.input(Input::ProbeFinished { request: probe, outcome: Ok(()) });
    assert_eq!(h.pending().len(), 1, "healthy again: the waiting batch goes out");
    h.complete_at(Position(1), PutOutcome::Created);
    assert_eq!(h.durable_end(), CommitSeq(2));
}

#[test]
fn a_probe_the_store_refuses_fails_the_writer() {
    let mut h = Harness::new(config());
    h.advance(5_000);
    let probe = h.probes.remove(0);
    h.input(Input::ProbeFinished { request: probe, outcome: Err(Fault::Rejected { reason: "NoSuchBucket".into() }) });
    assert!(matches!(&h.failed, Some((_, Failure::Rejected { reason, .. })) if reason.contains("NoSuchBucket")));
}

#[test]
fn a_failure_while_draining_ends_the_shutdown() {
    let mut h = Harness::new(Config { max_retry_attempts: 0, ..config() });
    h.commit(b"a");
    h.input(Input::ShutdownRequested);
    h.complete_at(Position(0), fault(Fault::Throttled));
    assert!(h.failed.is_some());
    assert!(h.shut_down, "the shutdown does not wait forever for a failed writer");
    assert!(h.m.failure().is_some(), "and the failure is still reported");
}

// ---- hedged PUTs -------------------------------------------------------

fn hedged(window: u32) -> Config {
    Config {
        hedge_after: Some(Duration::from_millis(10)),
        max_in_flight_requests: window,
        target_pool_size: window,
        ..config()
    }
}

/// Sends one commit and lets its PUT sit unanswered until it is hedged;
/// returns the two requests, first and hedge.
fn hedged_commit(h: &mut Harness) -> (RequestId, RequestId) {
    h.commit(b"slow");
    let first = h.pending_at(Position(0));
    h.advance(9);
    assert_eq!(h.pending().len(), 1, "not hedged before the delay");
    h.advance(1);
    let requests: Vec<RequestId> = h.pending().iter().map(|&(r, _)| r).collect();
    assert_eq!(requests.len(), 2, "hedged at 10 ms");
    let hedge = requests.into_iter().find(|&r| r != first).expect("a second request");
    (first, hedge)
}

/// Sends p0 at 0 ms, then `batches` batches of two 60-byte commits at 1 ms.
fn p0_then_batches(h: &mut Harness, batches: usize) {
    h.commit(b"a");
    h.advance(1);
    h.commits(2 * batches, &[7; 60]);
}

#[test]
fn a_slow_put_is_hedged_with_the_same_bytes_and_the_first_success_settles_it() {
    let mut h = Harness::new(hedged(8));
    let (first, hedge) = hedged_commit(&mut h);
    let (a, b) = (h.puts[&first].clone(), h.puts[&hedge].clone());
    assert_eq!(
        (a.position, a.key.clone(), a.body.clone(), a.metadata.clone()),
        (b.position, b.key, b.body, b.metadata)
    );
    h.complete(hedge, PutOutcome::Created);
    assert_eq!(h.durable, vec![CommitRange::new(CommitSeq(0), CommitSeq(1))]);
    h.complete(first, PutOutcome::AlreadyExists);
    assert!(h.heads.is_empty(), "the position is settled: the slow twin's 412 asks nothing");
    assert_eq!(h.durable.len(), 1, "acked once");
    assert_eq!(h.m.stats().hedges, 1);
    assert_eq!(h.m.outstanding_requests(), 0);
}

#[test]
fn a_hedges_412_checks_the_owner_at_once_instead_of_waiting_for_the_slow_twin() {
    let mut h = Harness::new(hedged(8));
    let (first, hedge) = hedged_commit(&mut h);
    let ours = h.complete(hedge, PutOutcome::AlreadyExists);
    assert_eq!(h.heads.len(), 1, "412: whose object is it?");
    assert_eq!(h.m.outstanding_requests(), 2, "the HEAD and the slow twin, still out");
    h.answer_head(HeadOutcome::Found { tag: Some(tag_of(&ours)) });
    assert_eq!(h.durable_end(), CommitSeq(1), "ours: durable before the slow twin answers");
    h.complete(first, PutOutcome::Created);
    assert_eq!(h.durable.len(), 1, "the twin's late answer changes nothing");
    assert_eq!(h.m.outstanding_requests(), 0);
}

#[test]
fn a_late_created_from_an_orphan_settles_a_position_whose_owner_is_being_checked() {
    let mut h = Harness::new(hedged(8));
    let (first, hedge) = hedged_commit(&mut h);
    h.complete(first, PutOutcome::AlreadyExists);
    assert_eq!(h.heads.len(), 1, "412 from the first: owner check, the hedge orphaned");
    h.complete(hedge, PutOutcome::Created);
    assert_eq!(h.durable_end(), CommitSeq(1), "the hedge created it: ours, without waiting for the HEAD");
    assert_eq!(h.m.outstanding_requests(), 1, "the HEAD is still out, orphaned");
    h.answer_head(HeadOutcome::NotFound);
    assert!(h.failed.is_none() && h.pending().is_empty(), "an orphaned HEAD's answer changes nothing");
    assert_eq!(h.m.outstanding_requests(), 0);
}

#[test]
fn a_failed_put_of_a_hedged_pair_leaves_the_position_to_its_twin() {
    let mut h = Harness::new(hedged(8));
    let (first, hedge) = hedged_commit(&mut h);
    h.complete(first, fault(Fault::TimedOut));
    assert_eq!(h.pending(), vec![(hedge, Position(0))], "no retry while the twin is out");
    h.advance(50);
    assert_eq!(h.pending().len(), 1, "and no second hedge for this attempt");
    h.complete(hedge, PutOutcome::Created);
    assert_eq!(h.durable_end(), CommitSeq(1));
}

#[test]
fn a_retry_after_both_twins_failed_may_be_hedged_again() {
    let mut h = Harness::new(hedged(8));
    let (first, hedge) = hedged_commit(&mut h);
    h.complete(first, fault(Fault::ServerError { status: 500 }));
    h.complete(hedge, fault(Fault::ServerError { status: 500 }));
    assert!(h.pending().is_empty(), "backing off");
    h.advance(1_000);
    assert_eq!(h.pending().len(), 2, "the retry, and after 10 ms its hedge");
    assert_eq!(h.m.stats().hedges, 2);
}

#[test]
fn no_hedge_goes_to_a_store_that_lost_contact_until_a_probe_answers() {
    let mut h = Harness::new(hedged(8));
    p0_then_batches(&mut h, 1);
    h.complete_at(Position(1), fault(Fault::ConnectionFailed));
    assert_eq!(h.probes.len(), 1, "lost contact: a probe at once");
    h.advance(15);
    assert_eq!(h.m.stats().hedges, 0, "p0 is due for a hedge, but the store is unhealthy");
    let probe = h.probes.pop().expect("the probe");
    h.input(Input::ProbeFinished { request: probe, outcome: Ok(()) });
    assert_eq!(h.m.stats().hedges, 1, "healthy again: the due hedge goes out at once");
    assert_eq!(h.requests_at(Position(0)).len(), 2);
}

#[test]
fn new_batches_leave_a_place_for_a_hedge() {
    let mut h = Harness::new(hedged(4));
    p0_then_batches(&mut h, 3);
    assert_eq!(h.pending().len(), 3, "3 positions claimed; the 4th place is kept for a hedge");
    assert!(h.m.stats().batches == 3, "a sealed batch waits");
    h.advance(20);
    assert_eq!(h.pending().len(), 4, "the oldest slow PUT (p0) got the kept place");
    assert_eq!(h.requests_at(Position(0)).len(), 2);
    assert_eq!(h.m.stats().hedges, 1);
}

#[test]
fn an_orphan_holds_its_place_until_it_answers() {
    let mut h = Harness::new(hedged(4));
    p0_then_batches(&mut h, 1);
    h.advance(20);
    assert_eq!(h.pending().len(), 4, "p0, p1 and both their hedges");
    let p0 = h.requests_at(Position(0));
    h.complete(p0[1], PutOutcome::Created);
    assert_eq!(h.durable_end(), CommitSeq(1));
    assert_eq!(h.m.outstanding_requests(), 3, "p1, its hedge, and p0's orphan");
    h.commits(2, &[8; 60]);
    assert_eq!(h.pending().len(), 3, "the new batch waits: the orphan and the kept place");
    h.complete(p0[0], PutOutcome::AlreadyExists);
    assert!(h.heads.is_empty(), "an orphan's 412 asks nothing");
    assert_eq!(h.pending().len(), 3, "its place went to the waiting batch");
    assert_eq!(h.m.outstanding_requests(), 3);
}

// ---- the adaptive hedge delay ------------------------------------------

/// Sends `n` lone commits, one after another, and answers each one's PUT
/// (and its hedge, if it got one) `rtt_ms` after it was sent.
fn lone_puts_answered_after(h: &mut Harness, n: usize, rtt_ms: u64) {
    for _ in 0..n {
        h.commit(b"x");
        let position = h.pending()[0].1;
        h.advance(rtt_ms);
        let mut requests = h.requests_at(position).into_iter();
        let first = requests.next().expect("a PUT");
        h.complete(first, PutOutcome::Created);
        for hedge in requests {
            h.complete(hedge, PutOutcome::AlreadyExists);
        }
    }
}

/// How long after it was sent a lone PUT left unanswered gets its hedge.
fn hedged_after_ms(h: &mut Harness) -> u64 {
    h.commit(b"slow");
    let position = h.pending()[0].1;
    (1..=1_000)
        .find(|_| {
            h.advance(1);
            h.requests_at(position).len() == 2
        })
        .expect("hedged within a second")
}

#[test]
fn an_adaptive_hedge_delay_follows_the_stores_round_trips() {
    let adaptive = Config { hedge_adaptive: true, hedge_after: Some(Duration::from_millis(2)), ..hedged(8) };
    let mut h = Harness::new(adaptive);
    lone_puts_answered_after(&mut h, 40, 20);
    let near = hedged_after_ms(&mut h);
    assert!((18..=26).contains(&near), "steady 20 ms round trips: hedged after {near} ms");
    h.advance(20);
    for (request, _) in h.pending() {
        h.complete(request, PutOutcome::Created);
    }
    lone_puts_answered_after(&mut h, 40, 80);
    let far = hedged_after_ms(&mut h);
    assert!(far > 60, "80 ms round trips: hedged after {far} ms, not at the old delay");
}

#[test]
fn an_adaptive_hedge_delay_never_goes_below_its_floor() {
    let adaptive = Config { hedge_adaptive: true, hedge_after: Some(Duration::from_millis(30)), ..hedged(8) };
    let mut h = Harness::new(adaptive);
    lone_puts_answered_after(&mut h, 40, 5);
    assert_eq!(hedged_after_ms(&mut h), 30, "5 ms round trips, but the floor is 30 ms");
}
