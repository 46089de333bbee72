//! Wrong credentials against a server that checks request signatures
//! (s3s-fs, started by `scripts/test.sh`; moto does not check them). The
//! user must get one clear line naming the problem, and nothing is written.
//!
//! `#[ignore]`d in a plain `cargo test`, like `tests/s3.rs`.

use std::process::Command;

use s3wal::store::{S3Error, S3Options, S3Store};

const RIGHT: (&str, &str) = ("s3wal-right", "s3wal-right-secret");

fn endpoint() -> String {
    std::env::var("S3WAL_S3S_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| panic!("S3WAL_S3S_ENDPOINT is not set: run this test via scripts/test.sh"))
}

fn s3wal(args: &[&str], key: (&str, &str)) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_s3wal"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", key.0)
        .env("AWS_SECRET_ACCESS_KEY", key.1)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("s3wal runs")
}

#[tokio::test]
#[ignore = "needs s3s-fs, which checks signatures: scripts/test.sh starts it"]
async fn wrong_credentials_are_named_and_write_nothing() {
    let endpoint = endpoint();
    // This test is alone in its binary: setting the process's credentials is safe.
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", RIGHT.0);
        std::env::set_var("AWS_SECRET_ACCESS_KEY", RIGHT.1);
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    let bucket = format!("s3wal-sig-{}", std::process::id());
    let options = S3Options {
        bucket: bucket.clone(),
        endpoint: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        force_path_style: true,
        ..S3Options::default()
    };
    let store = S3Store::connect(options.clone()).await.expect("connect");
    let _ = store.client().create_bucket().bucket(&bucket).send().await;
    store.check().await.expect("the right credentials work");

    let url = format!("s3://{bucket}/log");
    let wrong = s3wal(&["load", "--s3", &url, "--endpoint", &endpoint, "--commits", "10"], ("s3wal-wrong", "nope"));
    assert_eq!(wrong.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.to_lowercase().contains("credential"), "names the problem: {stderr}");
    assert!(!stderr.contains(RIGHT.1) && !stderr.contains("nope"), "no secret in the message: {stderr}");

    let right = s3wal(&["load", "--s3", &url, "--endpoint", &endpoint, "--commits", "50", "--producers", "4"], RIGHT);
    assert!(right.status.success(), "{}", String::from_utf8_lossy(&right.stderr));
    let replay = s3wal(&["replay", "--s3", &url, "--endpoint", &endpoint], RIGHT);
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    assert_eq!(String::from_utf8_lossy(&replay.stdout).lines().count(), 50, "only the right writer's commits");
    checksums_are_checked(&store, &bucket).await;

    // The store-level check names it too.
    let wrong_store = {
        unsafe { std::env::set_var("AWS_ACCESS_KEY_ID", "s3wal-wrong") };
        S3Store::connect(options).await.expect("connect")
    };
    let err = wrong_store.check().await.expect_err("wrong credentials");
    assert!(matches!(err, S3Error::BadCredentials { .. }), "{err}");
}

/// S3Store sends every PUT unsigned, with the body's CRC-32C for the server
/// to check. s3s-fs checks it (a wrong one is refused with BadDigest), so the
/// load above landing shows the checksums were right; here the stored value
/// is compared with the bytes, and a wrong one is shown to be refused.
/// (s3s-fs keeps the refused body under its key, without metadata; S3 keeps
/// nothing. So the refused PUT goes outside the log's prefix.)
async fn checksums_are_checked(store: &S3Store, bucket: &str) {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::ChecksumMode;

    let listed = store.client().list_objects_v2().bucket(bucket).prefix("log/batches/").send().await.expect("list");
    let key = listed.contents().last().and_then(|o| o.key()).expect("the load wrote batches").to_string();
    let got = store.client().get_object().bucket(bucket).key(&key).checksum_mode(ChecksumMode::Enabled).send().await;
    let got = got.expect("get");
    let stored = got.checksum_crc32_c().expect("the PUT carried a CRC-32C").to_string();
    let body = got.body.collect().await.expect("body").into_bytes();
    let expected = aws_smithy_types::base64::encode(s3wal::format::checksum(&body).to_be_bytes());
    assert_eq!(stored, expected, "{key}");

    let wrong = store
        .client()
        .put_object()
        .bucket(bucket)
        .key("damaged-body")
        .checksum_crc32_c(aws_smithy_types::base64::encode(0u32.to_be_bytes()))
        .body(ByteStream::from_static(b"these bytes do not have CRC-32C zero"))
        .send()
        .await
        .expect_err("a body that does not match its checksum is refused");
    let code = wrong.as_service_error().and_then(|e| aws_sdk_s3::error::ProvideErrorMetadata::code(e));
    assert_eq!(code, Some("BadDigest"), "{wrong:?}");
}
