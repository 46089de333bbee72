//! A log as a crashed writer leaves it, written straight into the model: a
//! recovery measured on a million batches needs no million simulated PUTs.

use std::time::Duration;

use bytes::Bytes;
use s3wal::format::{encode_batch, Checkpoint, Header, ObjectKind, TAG_METADATA_KEY};
use s3wal::valid_log::LogState;
use s3wal::{CommitSeq, Epoch, LeaderId, Position, Time};

use crate::s3_model::{S3Model, StoredObject};

/// The writer that left the log.
const WRITER: LeaderId = LeaderId(1);

/// Writes `batches` one-commit batches at positions `0..batches`, as a
/// writer with `window` leaves them if it sent each batch while the
/// `in_flight` before it were not yet durable, and then crashed: every
/// object's checkpoint is the durable prefix when it was sent.
pub fn write_log(store: &mut S3Model, batches: u64, in_flight: u64, window: u32) {
    let epoch = Epoch { generation: 1, nonce: 1 };
    for p in 0..batches {
        let durable = p.saturating_sub(in_flight);
        let max_epoch = if durable == 0 { Epoch::default() } else { epoch };
        let header = Header {
            kind: ObjectKind::Batch,
            leader: WRITER,
            epoch,
            position: Position(p),
            first_seq: CommitSeq(p),
            count: 1,
            checkpoint: Checkpoint {
                position: Position(durable),
                state: LogState { next_seq: CommitSeq(durable), max_epoch },
            },
            window,
        };
        let (body, tag) = encode_batch(header, &[Bytes::from(p.to_le_bytes().to_vec())]);
        let metadata = vec![(TAG_METADATA_KEY.to_owned(), tag.to_metadata_value())];
        store.put_if_absent(&Position(p).key(), StoredObject { body, metadata }, Time::ZERO, Duration::ZERO);
    }
}
