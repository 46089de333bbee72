//! The driver and API against the in-memory and local-directory stores.
//! (The same suite runs against a real S3-compatible server in `tests/s3.rs`.)

mod suite;

use std::time::Duration;

use s3wal::store::{DirStore, MemStore};

macro_rules! suite {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn round_trip() {
                let (store, _guard) = $make;
                suite::round_trip(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crash_and_reopen() {
                let (store, _guard) = $make;
                suite::crash_and_reopen(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn takeover_fences_the_old_writer() {
                let (store, _guard) = $make;
                suite::takeover_fences_the_old_writer(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn many_producers() {
                let (store, _guard) = $make;
                suite::many_producers(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn budget_backpressure() {
                let (store, _guard) = $make;
                tokio::time::timeout(Duration::from_secs(60), suite::budget_backpressure(store))
                    .await
                    .expect("no hang");
            }
        }
    };
}

fn temp_dir_store() -> (DirStore, TempDir) {
    let dir = TempDir::new();
    (DirStore::open(&dir.0).expect("open dir store"), dir)
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "s3wal-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

suite!(mem, (MemStore::new(), ()));
suite!(dir, temp_dir_store());
