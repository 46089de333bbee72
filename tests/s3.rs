//! The S3 store against a real S3-compatible server (moto, over HTTP on
//! 127.0.0.1), and the driver suite of `tests/driver.rs` on top of it.
//!
//! How these tests run (one scheme, on purpose):
//!
//! - Every test that needs the server is `#[ignore]`d, so a plain
//!   `cargo test` on a machine without one still passes (it lists them as
//!   ignored).
//! - `scripts/test.sh` installs and starts moto with `scripts/moto.sh`,
//!   exports its environment (`S3WAL_S3_ENDPOINT`, `AWS_ACCESS_KEY_ID=test`,
//!   `AWS_SECRET_ACCESS_KEY=test`, `AWS_REGION`), and runs
//!   `cargo test --test s3 -- --ignored`. By hand:
//!
//!   ```text
//!   eval "$(scripts/moto.sh start)"
//!   cargo test --test s3 -- --ignored
//!   scripts/moto.sh stop
//!   ```
//!
//! - An ignored test run without `S3WAL_S3_ENDPOINT` FAILS with a message
//!   saying to use `scripts/test.sh`: it never passes silently.
//!
//! Each test makes its own bucket. moto in server mode does not check
//! request signatures, so WRONG credentials cannot be shown here: the mapping
//! of `InvalidAccessKeyId` / `SignatureDoesNotMatch` is unit-tested in
//! `src/store/s3.rs` instead. MISSING credentials are shown here, in a child
//! process with an empty environment.
#![cfg(feature = "s3")]

mod suite;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use s3wal::driver::{Log, OpenError, OpenOptions};
use s3wal::store::{GetOutcome, ObjectStore, S3Error, S3Options, S3Store};
use s3wal::{Config, Failure, Fault, HeadOutcome, PutOutcome};

/// The server's URL. Fails the test, with directions, when it is not set.
fn endpoint() -> String {
    match std::env::var("S3WAL_S3_ENDPOINT") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "S3WAL_S3_ENDPOINT is not set. These tests need a running S3-compatible server: run them via \
             scripts/test.sh (or `eval \"$(scripts/moto.sh start)\"` first, then \
             `cargo test --test s3 -- --ignored`)"
        ),
    }
}

fn s3_options(endpoint: String, bucket: &str, prefix: &str, pool_size: usize) -> S3Options {
    S3Options {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        force_path_style: true,
        pool_size,
        connect_timeout: Duration::from_secs(2),
        operation_timeout: Duration::from_secs(20),
    }
}

async fn store_at(bucket: &str, prefix: &str) -> S3Store {
    S3Store::connect(s3_options(endpoint(), bucket, prefix, 16)).await.expect("connect")
}

/// Logs to the test's output when `S3WAL_TEST_LOG` names a level (`debug`, …).
fn init_logs() {
    let level = std::env::var("S3WAL_TEST_LOG").ok().and_then(|l| l.parse::<tracing::Level>().ok());
    if let Some(level) = level {
        let _ = tracing_subscriber::fmt().with_max_level(level).with_test_writer().try_init();
    }
}

/// A new bucket of its own for one test (200, or 409 BucketAlreadyOwnedByYou).
async fn fresh_bucket(hint: &str) -> String {
    init_logs();
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let name = format!("s3wal-{hint}-{}-{nanos}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let store = store_at(&name, "").await;
    match store.client().create_bucket().bucket(&name).send().await {
        Ok(_) => {}
        Err(e) => {
            use aws_sdk_s3::error::ProvideErrorMetadata;
            let code = e.code().map(String::from);
            assert_eq!(code.as_deref(), Some("BucketAlreadyOwnedByYou"), "create bucket {name}: {e:?}");
        }
    }
    store.check().await.expect("the new bucket answers");
    name
}

fn options(seed: u64) -> OpenOptions {
    let config = Config { max_in_flight_requests: 8, target_pool_size: 16, ..Config::default() };
    OpenOptions { config, seed: Some(seed), stream_durable_commits: false }
}

fn tag(value: &str) -> Vec<(String, String)> {
    vec![("s3wal-tag".to_string(), value.to_string())]
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn second_put_of_a_key_already_exists() {
    let bucket = fresh_bucket("put").await;
    let store = store_at(&bucket, "log").await;
    let first = store.put_if_absent("batches/1", Bytes::from_static(b"first"), &tag("a")).await;
    assert_eq!(first, PutOutcome::Created);
    let second = store.put_if_absent("batches/1", Bytes::from_static(b"second"), &tag("b")).await;
    assert_eq!(second, PutOutcome::AlreadyExists);
    assert_eq!(store.get("batches/1").await, GetOutcome::Found(Bytes::from_static(b"first")));
    assert_eq!(store.head("batches/1").await, HeadOutcome::Found { tag: Some("a".into()) });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn two_writers_racing_for_a_key_exactly_one_wins() {
    let bucket = fresh_bucket("race").await;
    // Two stores, two connection pools: two writers.
    let (a, b) = (store_at(&bucket, "").await, store_at(&bucket, "").await);
    let (tag_a, tag_b) = (tag("a"), tag("b"));
    for round in 0..50 {
        let key = format!("batches/{round:020}");
        let (body_a, body_b) = (Bytes::from(format!("a-{round}")), Bytes::from(format!("b-{round}")));
        let (out_a, out_b) =
            tokio::join!(a.put_if_absent(&key, body_a.clone(), &tag_a), b.put_if_absent(&key, body_b.clone(), &tag_b));
        let winner = match (&out_a, &out_b) {
            (PutOutcome::Created, PutOutcome::AlreadyExists) => body_a,
            (PutOutcome::AlreadyExists, PutOutcome::Created) => body_b,
            other => panic!("round {round}: exactly one writer must win, got {other:?}"),
        };
        assert_eq!(a.get(&key).await, GetOutcome::Found(winner), "round {round}: the winner's bytes are stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn head_returns_the_tag_metadata() {
    let bucket = fresh_bucket("head").await;
    let store = store_at(&bucket, "p").await;
    // S3 lowercases metadata names; the tag is found whatever the case.
    let metadata = vec![("S3wal-Tag".to_string(), "leader-7:epoch-3".to_string()), ("other".into(), "x".into())];
    assert_eq!(store.put_if_absent("tagged", Bytes::from_static(b"1"), &metadata).await, PutOutcome::Created);
    assert_eq!(store.head("tagged").await, HeadOutcome::Found { tag: Some("leader-7:epoch-3".into()) });
    assert_eq!(store.put_if_absent("untagged", Bytes::from_static(b"2"), &[]).await, PutOutcome::Created);
    assert_eq!(store.head("untagged").await, HeadOutcome::Found { tag: None });
    assert_eq!(store.head("missing").await, HeadOutcome::NotFound);
    assert_eq!(store.get("missing").await, GetOutcome::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn list_honours_prefix_max_keys_start_after_and_order() {
    let bucket = fresh_bucket("list").await;
    let store = store_at(&bucket, "tenant/a").await;
    // A neighbour whose prefix starts with the same letters must stay invisible.
    let neighbour = store_at(&bucket, "tenant/ab/").await;
    // Written in descending order; LIST must still answer in ascending order.
    let sizes: BTreeMap<String, u64> =
        (0..7u64).map(|n| (format!("batches/{:020}", u64::MAX - n * 3), n + 1)).collect();
    for (key, size) in sizes.iter().rev() {
        let body = Bytes::from(vec![b'x'; *size as usize]);
        assert_eq!(store.put_if_absent(key, body, &tag("t")).await, PutOutcome::Created);
    }
    assert_eq!(store.put_if_absent("fences/x", Bytes::from_static(b"f"), &[]).await, PutOutcome::Created);
    assert_eq!(neighbour.put_if_absent("batches/0", Bytes::from_static(b"n"), &[]).await, PutOutcome::Created);
    let keys: Vec<String> = sizes.keys().cloned().collect();

    let all = store.list("batches/", 1000, None).await.expect("list");
    assert_eq!(all.keys(), keys, "relative keys, ascending, only under the prefix");
    assert!(!all.truncated);
    for entry in &all.entries {
        assert_eq!(Some(&entry.size), sizes.get(&entry.key), "size of {}", entry.key);
    }

    let first = store.list("batches/", 3, None).await.expect("page 1");
    assert_eq!(first.keys(), keys[..3].to_vec());
    assert!(first.truncated);
    let second = store.list("batches/", 3, Some(&keys[2])).await.expect("page 2");
    assert_eq!(second.keys(), keys[3..6].to_vec());
    assert!(second.truncated);
    let third = store.list("batches/", 3, Some(&keys[5])).await.expect("page 3");
    assert_eq!(third.keys(), keys[6..].to_vec());
    assert!(!third.truncated);

    let exact = store.list("batches/", 7, None).await.expect("exactly all");
    assert_eq!(exact.keys(), keys);
    assert!(!exact.truncated);
    assert!(store.list("nothing/", 10, None).await.expect("empty").entries.is_empty());
    assert_eq!(neighbour.list("batches/", 10, None).await.expect("neighbour").keys(), vec!["batches/0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn prefix_forms_name_the_same_place() {
    let bucket = fresh_bucket("prefix").await;
    let (bare, slashed, root) =
        (store_at(&bucket, "a/b").await, store_at(&bucket, "a/b/").await, store_at(&bucket, "").await);
    assert_eq!(bare.put_if_absent("k", Bytes::from_static(b"v"), &[]).await, PutOutcome::Created);
    assert_eq!(slashed.put_if_absent("k", Bytes::from_static(b"w"), &[]).await, PutOutcome::AlreadyExists);
    assert_eq!(slashed.get("k").await, GetOutcome::Found(Bytes::from_static(b"v")));
    assert_eq!(root.get("a/b/k").await, GetOutcome::Found(Bytes::from_static(b"v")));
    assert_eq!(root.list("a/", 10, None).await.expect("list").keys(), vec!["a/b/k"]);
    assert_eq!(bare.describe(), format!("s3://{bucket}/a/b/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn pool_size_bounds_the_connections() {
    let bucket = fresh_bucket("pool").await;
    let store = S3Store::connect(s3_options(endpoint(), &bucket, "", 2)).await.expect("connect");
    let mut tasks = Vec::new();
    for i in 0..24u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.put_if_absent(&format!("k/{i:04}"), Bytes::from(vec![1u8; 64 * 1024]), &[]).await
        }));
    }
    let mut most = 0;
    while !tasks.iter().all(|t| t.is_finished()) {
        let (in_use, limit) = store.connection_capacity().expect("a custom endpoint's pool is bounded");
        assert_eq!(limit, 2, "the pool is sized from pool_size");
        most = most.max(in_use);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), PutOutcome::Created);
    }
    assert!(most <= 2, "at most pool_size connections, saw {most}");
    assert!(most >= 1, "the sampling saw connections in use");
    assert_eq!(store.list("k/", 1000, None).await.expect("list").entries.len(), 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn log_round_trip() {
    let bucket = fresh_bucket("log").await;
    let store = store_at(&bucket, "wal").await;
    assert_eq!(store.describe(), format!("s3://{bucket}/wal/"));
    suite::round_trip(store).await;
    // The batches sit under the prefix, and nothing else does.
    let root = store_at(&bucket, "").await;
    let everything = root.list("", 1000, None).await.expect("list");
    assert!(!everything.entries.is_empty());
    assert!(everything.keys().iter().all(|k| k.starts_with("wal/batches/")), "{:?}", everything.keys());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn crash_and_reopen_keeps_every_acked_commit() {
    let bucket = fresh_bucket("crash").await;
    suite::crash_and_reopen(store_at(&bucket, "").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn a_second_instance_takes_over_and_fences_the_first() {
    let bucket = fresh_bucket("takeover").await;
    suite::takeover_fences_the_old_writer(store_at(&bucket, "db").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn many_producers() {
    let bucket = fresh_bucket("producers").await;
    suite::many_producers(store_at(&bucket, "").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn appends_wait_for_the_byte_budget() {
    let bucket = fresh_bucket("budget").await;
    let run = suite::budget_backpressure(store_at(&bucket, "").await);
    tokio::time::timeout(Duration::from_secs(120), run).await.expect("no hang");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn unreachable_endpoint_is_named() {
    // The credentials come from the same environment as the other tests.
    let _ = endpoint();
    init_logs();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let store =
        S3Store::connect(s3_options(url.clone(), "some-bucket", "", 4)).await.expect("connect makes no request");
    let err = store.check().await.expect_err("nothing listens there");
    assert!(matches!(err, S3Error::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    eprintln!("check() says: {text}");
    assert!(text.contains("cannot reach the S3 endpoint") && text.contains(&url), "{text}");
    assert!(!text.contains("test"), "no credentials in the message: {text}");

    let fast = Config { retry_base_delay: Duration::from_millis(10), ..options(8).config };
    let open = Log::open(store, OpenOptions { config: fast, ..options(8) }).await;
    match open {
        Err(e @ OpenError::Recovery(Failure::RetriesExhausted { last: Fault::ConnectionFailed, .. })) => {
            eprintln!("Log::open says: {e}");
        }
        other => panic!("expected recovery to fail on connection errors, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn missing_bucket_is_named() {
    init_logs();
    let name = format!("s3wal-missing-{}", std::process::id());
    let store = store_at(&name, "wal").await;
    let err = store.check().await.expect_err("no such bucket");
    assert!(matches!(err, S3Error::NoSuchBucket { .. }), "{err:?}");
    let text = err.to_string();
    eprintln!("check() says: {text}");
    assert!(text.contains("no such bucket") && text.contains(&name), "{text}");

    match Log::open(store, options(9)).await {
        Err(OpenError::Recovery(Failure::Rejected { reason, .. })) => {
            eprintln!("Log::open says: {reason}");
            assert!(reason.contains("no such bucket") && reason.contains(&name), "{reason}");
        }
        other => panic!("expected a clear refusal, got {other:?}"),
    }
}

/// Runs `no_credentials_child` in a child process whose environment holds
/// no credentials (and forbids instance metadata): the environment is the
/// process's, so this is the only way to show it without disturbing the
/// tests running beside it.
#[test]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
fn missing_credentials_are_named() {
    let endpoint = endpoint();
    let home = std::env::temp_dir().join(format!("s3wal-no-credentials-{}", std::process::id()));
    std::fs::create_dir_all(&home).expect("temp home");
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", "no_credentials_child", "--nocapture"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1")
        .env("S3WAL_S3_ENDPOINT", endpoint)
        .env("S3WAL_NO_CREDENTIALS_CHILD", "1")
        .output()
        .expect("run the child");
    let _ = std::fs::remove_dir_all(&home);
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    eprintln!("{}", text.lines().filter(|l| l.contains("says")).collect::<Vec<_>>().join("\n"));
    assert!(output.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran its test:\n{text}");
}

/// The child half of `missing_credentials_are_named`; does nothing elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn no_credentials_child() {
    if std::env::var_os("S3WAL_NO_CREDENTIALS_CHILD").is_none() {
        return;
    }
    let store = store_at("any-bucket", "").await;
    let err = store.check().await.expect_err("no credentials");
    eprintln!("check() says: {err}");
    assert!(matches!(err, S3Error::NoCredentials { .. }), "{err:?}");
    assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
    match Log::open(store, options(10)).await {
        Err(OpenError::Recovery(Failure::Rejected { reason, .. })) => {
            eprintln!("Log::open says: {reason}");
            assert!(reason.contains("no AWS credentials found"), "{reason}");
        }
        other => panic!("expected a clear refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_buckets_are_refused_before_any_request() {
    let options = S3Options { endpoint: Some("http://127.0.0.1:9".into()), ..S3Options::new("wal--usw2-az1--x-s3") };
    let err = S3Store::connect(options).await.expect_err("refused");
    assert!(matches!(err, S3Error::DirectoryBucket { .. }), "{err:?}");
    assert!(err.to_string().contains("LIST keys in no particular order"), "{err}");
}

/// `s3wal bench` deletes each measurement's objects once it is measured (a
/// filling moto slows down, which skewed the W2 against raw comparison), so
/// the bucket ends as it began.
#[tokio::test]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn bench_leaves_the_bucket_empty() {
    let bucket = fresh_bucket("bench").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_s3wal"))
        .args(["bench", "--s3", &format!("s3://{bucket}/runs"), "--endpoint", &endpoint()])
        .args(["--producers", "1", "--rounds", "1", "--seconds", "0.2", "--w2-seconds", "0.2", "--w2-max-mib", "2"])
        .output()
        .expect("s3wal bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("W2 4096B share of raw:"), "it measured everything:\n{stdout}");
    let page = store_at(&bucket, "").await.list("", 1000, None).await.expect("the bucket lists");
    assert!(page.entries.is_empty(), "left behind: {:?}", page.keys());
}
