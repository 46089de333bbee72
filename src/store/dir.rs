//! Objects as files under a local directory: the embedded default.
//!
//! Each object is one file, `<root>/<key>`, holding its metadata and its
//! body. Create-if-absent is atomic across processes: the object is written
//! to a temporary file, fsynced, then hard-linked to its final name, which
//! fails if the name exists; then the directory is fsynced.
//!
//! An fsync error poisons the store: after it, nobody can say which writes
//! reached the disk, so every later call fails (the lesson of PostgreSQL's
//! "fsyncgate"). Reopen the log to recover from what is really on disk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use super::{metadata_value, GetOutcome, ListEntry, ListPage, Metadata, ObjectStore};
use crate::format::TAG_METADATA_KEY;
use crate::protocol::{Fault, HeadOutcome, PutOutcome};

const TEMP_DIR: &str = ".tmp";
const MAGIC: &[u8; 8] = b"S3WLFILE";

/// A store in a local directory. Clones share the same poison state.
#[derive(Clone, Debug)]
pub struct DirStore {
    inner: Arc<Inner>,
}

/// How the store makes a file or directory durable: `File::sync_all`,
/// swapped in tests to show that a failed fsync poisons the store.
pub type FsyncFn = fn(&File) -> io::Result<()>;

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    poisoned: Mutex<Option<String>>,
    temp_counter: AtomicU64,
    fsync: FsyncFn,
}

impl DirStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<DirStore> {
        DirStore::open_with_fsync(root, File::sync_all)
    }

    /// [`DirStore::open`] with another way to fsync: for tests of what a
    /// failing disk does.
    pub fn open_with_fsync(root: impl Into<PathBuf>, fsync: FsyncFn) -> io::Result<DirStore> {
        let root = root.into();
        fs::create_dir_all(root.join(TEMP_DIR))?;
        let inner = Inner { root, poisoned: Mutex::new(None), temp_counter: AtomicU64::new(0), fsync };
        Ok(DirStore { inner: Arc::new(inner) })
    }

    /// The directory it lives in.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Why the store is poisoned, if it is.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.poison_reason()
    }

    // madsim-tokio deprecates spawn_blocking in simulation; the madsim
    // level uses the simulator's store, never this one.
    #[cfg_attr(madsim, allow(deprecated))]
    async fn blocking<T: Send + 'static>(&self, job: impl FnOnce(&Inner) -> T + Send + 'static) -> Result<T, Fault> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || job(&inner))
            .await
            .map_err(|e| Fault::Rejected { reason: format!("directory store task failed: {e}") })
    }
}

impl Inner {
    fn poison_reason(&self) -> Option<String> {
        self.poisoned.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn poison(&self, what: &str, error: &io::Error) -> Fault {
        let reason = format!("fsync of {what} failed ({error}); the directory store is poisoned: reopen the log");
        *self.poisoned.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
        Fault::Rejected { reason }
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        (self.fsync)(&File::open(dir)?)
    }

    fn check_poison(&self) -> Result<(), Fault> {
        match self.poison_reason() {
            Some(reason) => Err(Fault::Rejected { reason }),
            None => Ok(()),
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf, Fault> {
        let safe = !key.is_empty()
            && key.split('/').all(|part| !part.is_empty() && part != "." && part != ".." && part != TEMP_DIR);
        if !safe {
            return Err(Fault::Rejected { reason: format!("key {key:?} is not a valid object key") });
        }
        Ok(self.root.join(key))
    }

    fn put_if_absent(&self, key: &str, body: &[u8], metadata: &[(String, String)]) -> PutOutcome {
        match self.try_put(key, body, metadata) {
            Ok(outcome) => outcome,
            Err(fault) => PutOutcome::Failed(fault),
        }
    }

    fn try_put(&self, key: &str, body: &[u8], metadata: &[(String, String)]) -> Result<PutOutcome, Fault> {
        self.check_poison()?;
        let path = self.path(key)?;
        if path.exists() {
            return Ok(PutOutcome::AlreadyExists);
        }
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(io_fault)?;
        let temp = self.root.join(TEMP_DIR).join(format!(
            "{}-{}",
            std::process::id(),
            self.temp_counter.fetch_add(1, Ordering::Relaxed)
        ));
        let written = write_envelope(&temp, body, metadata, self.fsync);
        let result = match written {
            Err(WriteError::Io(e)) => Err(io_fault(e)),
            Err(WriteError::Sync(e)) => Err(self.poison(&temp.display().to_string(), &e)),
            Ok(()) => match fs::hard_link(&temp, &path) {
                Ok(()) => self
                    .sync_dir(&dir)
                    .map(|()| PutOutcome::Created)
                    .map_err(|e| self.poison(&dir.display().to_string(), &e)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(PutOutcome::AlreadyExists),
                Err(e) => Err(io_fault(e)),
            },
        };
        let _ = fs::remove_file(&temp);
        result
    }

    fn read(&self, key: &str) -> Result<Option<(Metadata, Vec<u8>)>, Fault> {
        self.check_poison()?;
        let path = self.path(key)?;
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_fault(e)),
        };
        let mut raw = Vec::new();
        file.read_to_end(&mut raw).map_err(io_fault)?;
        let (metadata, body_at) = parse_envelope(&raw).ok_or_else(|| Fault::Rejected {
            reason: format!("{} is not an object file of this store", path.display()),
        })?;
        raw.drain(..body_at);
        Ok(Some((metadata, raw)))
    }

    fn list(&self, prefix: &str, max_keys: u32, start_after: Option<&str>) -> Result<ListPage, Fault> {
        self.check_poison()?;
        let (dir_part, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let dir = if dir_part.is_empty() { self.root.clone() } else { self.path(dir_part)? };
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ListPage::default()),
            Err(e) => return Err(io_fault(e)),
        };
        let mut listed = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_fault)?;
            let meta = entry.metadata().map_err(io_fault)?;
            if !meta.is_file() {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(String::from) else { continue };
            let key = if dir_part.is_empty() { name } else { format!("{dir_part}/{name}") };
            if key.starts_with(prefix) && start_after.is_none_or(|after| key.as_str() > after) {
                listed.push(ListEntry { key, size: meta.len() });
            }
        }
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        let truncated = listed.len() > max_keys as usize;
        listed.truncate(max_keys as usize);
        Ok(ListPage { entries: listed, truncated })
    }
}

enum WriteError {
    Io(io::Error),
    Sync(io::Error),
}

fn write_envelope(path: &Path, body: &[u8], metadata: &[(String, String)], fsync: FsyncFn) -> Result<(), WriteError> {
    let mut meta = String::new();
    for (k, v) in metadata {
        meta.push_str(k);
        meta.push('=');
        meta.push_str(v);
        meta.push('\n');
    }
    let mut file = OpenOptions::new().write(true).create_new(true).open(path).map_err(WriteError::Io)?;
    file.write_all(MAGIC).map_err(WriteError::Io)?;
    file.write_all(&(meta.len() as u32).to_le_bytes()).map_err(WriteError::Io)?;
    file.write_all(meta.as_bytes()).map_err(WriteError::Io)?;
    file.write_all(body).map_err(WriteError::Io)?;
    fsync(&file).map_err(WriteError::Sync)
}

fn parse_envelope(raw: &[u8]) -> Option<(Metadata, usize)> {
    let rest = raw.strip_prefix(MAGIC.as_slice())?;
    let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let meta = std::str::from_utf8(rest.get(4..4 + len)?).ok()?;
    let metadata = meta
        .lines()
        .map(|line| line.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect::<Option<Metadata>>()?;
    Some((metadata, MAGIC.len() + 4 + len))
}

fn io_fault(e: io::Error) -> Fault {
    match e.kind() {
        io::ErrorKind::PermissionDenied => Fault::Rejected { reason: format!("permission denied: {e}") },
        _ => Fault::ServerError { status: 500 },
    }
}

#[async_trait]
impl ObjectStore for DirStore {
    async fn put_if_absent(&self, key: &str, body: Bytes, metadata: &[(String, String)]) -> PutOutcome {
        let (key, metadata) = (key.to_string(), metadata.to_vec());
        match self.blocking(move |s| s.put_if_absent(&key, &body, &metadata)).await {
            Ok(outcome) => outcome,
            Err(fault) => PutOutcome::Failed(fault),
        }
    }

    async fn head(&self, key: &str) -> HeadOutcome {
        let key = key.to_string();
        match self.blocking(move |s| s.read(&key)).await.and_then(|r| r) {
            Ok(Some((metadata, _))) => {
                HeadOutcome::Found { tag: metadata_value(&metadata, TAG_METADATA_KEY).map(String::from) }
            }
            Ok(None) => HeadOutcome::NotFound,
            Err(fault) => HeadOutcome::Failed(fault),
        }
    }

    async fn get(&self, key: &str) -> GetOutcome {
        let key = key.to_string();
        match self.blocking(move |s| s.read(&key)).await.and_then(|r| r) {
            Ok(Some((_, body))) => GetOutcome::Found(Bytes::from(body)),
            Ok(None) => GetOutcome::NotFound,
            Err(fault) => GetOutcome::Failed(fault),
        }
    }

    async fn list(&self, prefix: &str, max_keys: u32, start_after: Option<&str>) -> Result<ListPage, Fault> {
        let (prefix, start_after) = (prefix.to_string(), start_after.map(String::from));
        self.blocking(move |s| s.list(&prefix, max_keys, start_after.as_deref())).await.and_then(|r| r)
    }

    fn describe(&self) -> String {
        format!("dir:{}", self.inner.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("s3wal-dir-{name}-{}", std::process::id()))
    }

    fn failing_fsync(_: &File) -> io::Result<()> {
        Err(io::Error::other("injected EIO"))
    }

    #[tokio::test]
    async fn create_if_absent_answers_like_s3() {
        let root = temp_root("cia");
        let store = DirStore::open(&root).unwrap();
        let meta = vec![(TAG_METADATA_KEY.to_string(), "t".to_string())];
        assert_eq!(store.put_if_absent("batches/a", Bytes::from_static(b"1"), &meta).await, PutOutcome::Created);
        assert_eq!(store.put_if_absent("batches/a", Bytes::from_static(b"2"), &meta).await, PutOutcome::AlreadyExists);
        assert_eq!(store.get("batches/a").await, GetOutcome::Found(Bytes::from_static(b"1")), "the first write wins");
        assert_eq!(store.head("batches/a").await, HeadOutcome::Found { tag: Some("t".into()) });
        assert_eq!(store.list("batches/", 10, None).await.unwrap().keys(), vec!["batches/a".to_string()]);
        let bad = store.put_if_absent("../escape", Bytes::new(), &[]).await;
        assert!(matches!(bad, PutOutcome::Failed(Fault::Rejected { .. })), "{bad:?}");
        let _ = fs::remove_dir_all(root);
    }

    #[tokio::test]
    async fn a_failed_fsync_poisons_the_store_for_good() {
        let root = temp_root("poison");
        let store = DirStore::open_with_fsync(&root, failing_fsync).unwrap();
        let put = store.put_if_absent("batches/a", Bytes::from_static(b"1"), &[]).await;
        let PutOutcome::Failed(Fault::Rejected { reason }) = put else { panic!("{put:?}") };
        assert!(reason.contains("poisoned"), "{reason}");
        assert!(store.poisoned().is_some());
        // Every later call fails, whatever it is: nobody can say what reached the disk.
        assert!(matches!(store.put_if_absent("batches/b", Bytes::new(), &[]).await, PutOutcome::Failed(_)));
        assert!(matches!(store.head("batches/a").await, HeadOutcome::Failed(_)));
        assert!(matches!(store.get("batches/a").await, GetOutcome::Failed(_)));
        assert!(store.list("batches/", 10, None).await.is_err());
        let _ = fs::remove_dir_all(root);
    }

    #[tokio::test]
    async fn a_log_on_a_failing_disk_fails_to_open_and_says_why() {
        use crate::driver::{Log, OpenError, OpenOptions};
        let root = temp_root("poison-log");
        let store = DirStore::open_with_fsync(&root, failing_fsync).unwrap();
        let opened = Log::open(store, OpenOptions { seed: Some(1), ..OpenOptions::default() }).await;
        let Err(OpenError::Recovery(failure)) = opened else { panic!("open must fail: {:?}", opened.err()) };
        assert!(failure.to_string().contains("poisoned"), "{failure}");
        let _ = fs::remove_dir_all(root);
    }
}
