//! `kill -9` in the middle of `s3wal load` against a real S3-compatible
//! server: the ack log must hold only commits that were really durable.
//!
//! Needs the server that `scripts/test.sh` starts (`S3WAL_S3_ENDPOINT`), so
//! it is `#[ignore]`d in a plain `cargo test`, like `tests/s3.rs`.

use std::process::{Command, Stdio};
use std::time::Duration;

use s3wal::store::{S3Options, S3Store};

fn endpoint() -> String {
    std::env::var("S3WAL_S3_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| panic!("S3WAL_S3_ENDPOINT is not set: run this test via scripts/test.sh"))
}

fn s3wal(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_s3wal"));
    command.args(args);
    command
}

async fn create_bucket(name: &str) {
    let options = S3Options {
        bucket: name.into(),
        endpoint: Some(endpoint()),
        region: Some("us-east-1".into()),
        force_path_style: true,
        ..S3Options::default()
    };
    let store = S3Store::connect(options).await.expect("connect");
    let _ = store.client().create_bucket().bucket(name).send().await;
    store.check().await.expect("the bucket answers");
}

/// (seq, crc) lines, as `load --ack-log` and `replay` write them.
fn lines(text: &str) -> Vec<(u64, String)> {
    text.lines()
        .map(|l| {
            let (seq, crc) = l.split_once('\t').expect("SEQ<TAB>CRC");
            (seq.parse().expect("a number"), crc.to_string())
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs a running S3-compatible server: scripts/test.sh starts one"]
async fn kill_9_leaves_only_acknowledged_commits_in_the_ack_log() {
    let endpoint = endpoint();
    let bucket = format!("s3wal-kill9-{}", std::process::id());
    create_bucket(&bucket).await;
    let url = format!("s3://{bucket}/log");
    let dir = std::env::temp_dir().join(format!("s3wal-kill9-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (first_acks, second_acks) = (dir.join("first.acks"), dir.join("second.acks"));
    let load = |acks: &std::path::Path, commits: &str| {
        s3wal(&[
            "load",
            "--s3",
            &url,
            "--endpoint",
            &endpoint,
            "--commits",
            commits,
            "--commit-size",
            "200",
            "--producers",
            "16",
            "--seed",
            "7",
            "--ack-log",
            acks.to_str().unwrap(),
        ])
    };
    let mut child = load(&first_acks, "1000000").stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
    // Wait until acks are flowing, then a "random" moment more (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&first_acks).map_or(0, |m| m.len()) < 4_000 {
        assert!(std::time::Instant::now() < deadline, "the first load never acked anything");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(u64::from(std::process::id() % 700)));
    child.kill().expect("kill -9");
    child.wait().expect("reaped");

    let second = load(&second_acks, "300").output().expect("second load runs");
    assert!(second.status.success(), "takeover load: {}", String::from_utf8_lossy(&second.stderr));
    let replay = s3wal(&["replay", "--s3", &url, "--endpoint", &endpoint]).output().expect("replay runs");
    assert!(replay.status.success(), "replay: {}", String::from_utf8_lossy(&replay.stderr));

    let log = lines(&String::from_utf8_lossy(&replay.stdout));
    let first = lines(&std::fs::read_to_string(&first_acks).unwrap());
    let second = lines(&std::fs::read_to_string(&second_acks).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!first.is_empty() && second.len() == 300, "first {} acks, second {}", first.len(), second.len());
    for w in log.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "the valid log has no holes");
    }
    let index: std::collections::BTreeMap<u64, &String> = log.iter().map(|(s, c)| (*s, c)).collect();
    for (seq, crc) in first.iter().chain(&second) {
        assert_eq!(index.get(seq), Some(&crc), "acked commit {seq} is in the log with the same bytes");
    }
    for w in first.windows(2).chain(second.windows(2)) {
        assert_eq!(w[1].0, w[0].0 + 1, "ack logs are in order and contiguous");
    }
    assert!(second[0].0 > first.last().unwrap().0, "the takeover continues after the killed writer's acks");
}
