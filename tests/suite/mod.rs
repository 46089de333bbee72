//! The driver's suite, run against every store: memory and directory in
//! `tests/driver.rs`, a real S3-compatible server in `tests/s3.rs`.

use std::collections::BTreeMap;

use bytes::Bytes;
use s3wal::config::COMMIT_BOOKKEEPING_BYTES;
use s3wal::driver::{AppendError, Log, OpenOptions};
use s3wal::reader::Reader;
use s3wal::store::ObjectStore;
use s3wal::{CommitSeq, Config, Failure};

pub fn options(seed: u64) -> OpenOptions {
    let config = Config { max_in_flight_requests: 8, target_pool_size: 16, ..Config::default() };
    OpenOptions { config, seed: Some(seed), stream_durable_commits: false }
}

pub fn payload(i: u64) -> Bytes {
    Bytes::from(format!("commit-{i}-{}", "x".repeat((i % 50) as usize)))
}

pub async fn replay<S: ObjectStore>(store: S) -> BTreeMap<CommitSeq, Bytes> {
    let reader = Reader::new(store);
    reader
        .fold(CommitSeq(0)..CommitSeq(u64::MAX), BTreeMap::new(), |mut m, seq, c| {
            m.insert(seq, c.clone());
            m
        })
        .await
        .expect("the log reads back")
}

pub async fn round_trip<S: ObjectStore + Clone>(store: S) {
    let log = Log::open(store.clone(), options(1)).await.expect("open");
    let mut pending = Vec::new();
    for i in 0..200 {
        pending.push(log.append(payload(i)).await.expect("accepted"));
    }
    for (i, appended) in pending.into_iter().enumerate() {
        assert_eq!(appended.seq, CommitSeq(i as u64));
        assert_eq!(appended.durable().await, Ok(CommitSeq(i as u64)));
    }
    assert_eq!(*log.watch_durable().borrow(), CommitSeq(200));
    log.shutdown().await.expect("clean shutdown");
    let log_contents = replay(store).await;
    assert_eq!(log_contents.len(), 200);
    for (seq, bytes) in log_contents {
        assert_eq!(bytes, payload(seq.0));
    }
}

pub async fn crash_and_reopen<S: ObjectStore + Clone>(store: S) {
    let log = Log::open(store.clone(), options(2)).await.expect("open");
    let mut acked = Vec::new();
    for round in 0..5 {
        let mut pending = Vec::new();
        for i in 0..40 {
            pending.push(log.append(payload(round * 40 + i)).await.expect("accepted"));
        }
        for p in pending {
            acked.push(p.durable().await.expect("durable"));
        }
    }
    // Some more that may or may not land, then the writer vanishes.
    for i in 200..260 {
        let _ = log.append(payload(i)).await;
    }
    let old_epoch = log.epoch();
    drop(log);
    let reopened = Log::open(store.clone(), options(3)).await.expect("reopen");
    assert!(reopened.epoch() > old_epoch, "a new generation takes over");
    let next = reopened.append(Bytes::from_static(b"after")).await.expect("accepted");
    let after_seq = next.durable().await.expect("durable");
    reopened.shutdown().await.expect("shutdown");
    let contents = replay(store).await;
    for seq in &acked {
        assert_eq!(contents.get(seq), Some(&payload(seq.0)), "acked commit {seq} survives the crash");
    }
    assert_eq!(contents.get(&after_seq).map(|b| b.as_ref()), Some(&b"after"[..]));
    assert_eq!(contents.keys().last(), Some(&after_seq), "the new writer continues the sequence");
}

pub async fn takeover_fences_the_old_writer<S: ObjectStore + Clone>(store: S) {
    let old = Log::open(store.clone(), options(4)).await.expect("open old");
    let first = old.append(Bytes::from_static(b"before")).await.unwrap();
    let before = first.durable().await.expect("durable before the takeover");
    let new = Log::open(store.clone(), options(5)).await.expect("open new");
    // The old writer's next commit runs into the new writer's fences.
    let late = old.append(Bytes::from_static(b"late")).await.unwrap();
    let outcome = late.durable().await;
    assert!(matches!(outcome, Err(AppendError::Fenced(Failure::Fenced { .. }))), "{outcome:?}");
    assert!(matches!(old.append(Bytes::from_static(b"again")).await, Err(AppendError::Fenced(_))));
    let fresh = new.append(Bytes::from_static(b"new")).await.unwrap().durable().await.expect("new writer acks");
    assert_eq!(fresh, before.next());
    new.shutdown().await.unwrap();
    let contents = replay(store).await;
    assert_eq!(
        contents.values().cloned().collect::<Vec<_>>(),
        vec![Bytes::from_static(b"before"), Bytes::from_static(b"new")]
    );
}

pub async fn many_producers<S: ObjectStore + Clone>(store: S) {
    let log = Log::open(store.clone(), options(6)).await.expect("open");
    let mut tasks = Vec::new();
    for producer in 0..16u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..50u64 {
                let bytes = Bytes::from(format!("p{producer}-{i}"));
                let seq = log.append(bytes.clone()).await.unwrap().durable().await.unwrap();
                acked.push((seq, bytes));
            }
            acked
        }));
    }
    let mut acked = BTreeMap::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    log.shutdown().await.unwrap();
    assert_eq!(acked.len(), 800);
    assert_eq!(replay(store).await, acked);
}

pub async fn budget_backpressure<S: ObjectStore + Clone>(store: S) {
    let config = Config { byte_budget: 4096, batch_size_threshold: 1024, ..Config::default() };
    let log = Log::open(store, OpenOptions { config, seed: Some(7), ..OpenOptions::default() }).await.unwrap();
    let big = Bytes::from(vec![7u8; 1000]);
    let mut pending = Vec::new();
    for _ in 0..40 {
        pending.push(log.append(big.clone()).await.unwrap());
    }
    for p in pending {
        p.durable().await.unwrap();
    }
    let too_big = log.append(Bytes::from(vec![0u8; 5000])).await;
    // The longest commit leaves room in the budget for its bookkeeping.
    let max = 4096 - COMMIT_BOOKKEEPING_BYTES as usize;
    assert!(matches!(too_big, Err(AppendError::TooLarge { len: 5000, max: m }) if m == max), "{too_big:?}");
    log.shutdown().await.unwrap();
}
