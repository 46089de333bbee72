//! Log objects for unit tests, built in one place so that a change to the
//! library's header touches one function.

use bytes::Bytes;
use s3wal::format::{encode_batch, Header, ObjectKind, TAG_METADATA_KEY};
use s3wal::{CommitSeq, Epoch, LeaderId, Position, Time};
use std::time::Duration;

use crate::s3_model::{S3Model, StoredObject};

/// Writes a batch of `commits` at `position`, starting at `first_seq`.
pub fn put_batch(store: &mut S3Model, position: u64, first_seq: u64, commits: Vec<Bytes>) {
    let header = Header {
        kind: ObjectKind::Batch,
        leader: LeaderId(1),
        epoch: Epoch::default(),
        position: Position(position),
        first_seq: CommitSeq(first_seq),
        count: 0,
        checkpoint: Default::default(),
        window: 1,
    };
    let (body, tag) = encode_batch(header, &commits);
    let object = StoredObject { body, metadata: vec![(TAG_METADATA_KEY.to_owned(), tag.to_metadata_value())] };
    store.put_if_absent(&Position(position).key(), object, Time::ZERO, Duration::ZERO);
}
