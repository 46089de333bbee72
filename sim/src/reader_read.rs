//! The pure world's bucket read back with the library's own
//! [`Reader`](s3wal::reader::Reader), as a user would read it: the objects
//! are copied into a [`MemStore`], whose futures never wait, so they are
//! polled to completion here without a runtime.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use s3wal::reader::{ReadError, Reader};
use s3wal::store::{MemStore, ObjectStore};
use s3wal::CommitSeq;

use crate::s3_model::S3Model;

/// Every valid commit in `store`, in order, as the library's reader reads it.
pub fn read_all(store: &S3Model) -> Result<Vec<(CommitSeq, Bytes)>, ReadError> {
    let mem = MemStore::new();
    for (key, object) in store.objects() {
        ready(mem.put_if_absent(key, object.body.clone(), &object.metadata));
    }
    let reader = Reader::new(mem);
    ready(reader.fold(CommitSeq(0)..CommitSeq(u64::MAX), Vec::new(), |mut log, seq, commit| {
        log.push((seq, commit.clone()));
        log
    }))
}

/// Polls a future that cannot wait (the in-memory store answers at once).
fn ready<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => unreachable!("the in-memory store never waits"),
    }
}
