//! Recovery, as pure functions: where the log ends, and what state it is in
//! there. The machine feeds them what its LIST and HEADs returned. Why these
//! steps are enough is argued in `docs/protocol.md`.

use std::collections::BTreeMap;

use crate::config::MAX_WINDOW;
use crate::format::{ObjectKind, ObjectTag};
use crate::protocol::Failure;
use crate::types::{BatchNumber, Position};
use crate::valid_log::LogState;

/// How far below the first gap recovery reads object tags: one fence range
/// (at most two windows) is all that can separate the gap from the state
/// the log was in where the newest writer began.
pub(crate) const READ_BACK: u64 = 2 * MAX_WINDOW as u64;

/// What the LIST told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listing {
    /// The first missing position: every position below it is written.
    pub gap: Position,
    /// The highest position listed, if any.
    pub highest: Option<Position>,
}

impl Listing {
    /// The positions whose tags recovery reads: `[gap - READ_BACK, gap)`.
    pub fn read_back(&self) -> std::ops::Range<u64> {
        self.gap.0.saturating_sub(READ_BACK)..self.gap.0
    }
}

fn violation(position: Position, detail: impl Into<String>) -> Failure {
    Failure::ProtocolViolation { position, detail: detail.into() }
}

/// Finds the first gap from one LIST of at most [`MAX_WINDOW`] keys, newest
/// first. No writer claims more than `MAX_WINDOW` positions past its durable
/// prefix, so at most `MAX_WINDOW - 1` objects sit above the gap and the
/// listing always reaches below it.
pub(crate) fn first_gap(keys: &[String], truncated: bool) -> Result<Listing, Failure> {
    let mut positions = Vec::with_capacity(keys.len());
    for key in keys {
        let number = BatchNumber::from_key(key).ok_or_else(|| {
            violation(Position(0), format!("{key:?} is not a batch key; the log's prefix must hold only s3wal objects"))
        })?;
        positions.push(number.position());
    }
    // Ascending keys are descending positions.
    if positions.windows(2).any(|w| w[0] <= w[1]) {
        return Err(violation(
            Position(0),
            "LIST did not return keys in ascending order (an S3 Express directory bucket?)",
        ));
    }
    positions.reverse();
    let Some((&lowest, &highest)) = positions.first().zip(positions.last()) else {
        return Ok(Listing { gap: Position(0), highest: None });
    };
    let gap = if !truncated && lowest != Position(0) {
        Position(0)
    } else {
        let run = positions.windows(2).take_while(|w| w[1] == w[0].next()).count();
        positions[run].next()
    };
    if highest >= gap && highest.distance_from(gap) >= u64::from(MAX_WINDOW) {
        return Err(violation(
            highest,
            format!(
                "object {} positions past the first gap {gap}: deeper than any writer's window",
                highest.distance_from(gap)
            ),
        ));
    }
    Ok(Listing { gap, highest: Some(highest) })
}

/// The valid log's state at `gap`, from the tags of the positions in
/// [`Listing::read_back`].
///
/// Let `k` be the newest writer among those tags. If `k` wrote a batch
/// there, it had finished fencing, nothing older can follow its batches,
/// and the batch at `gap - 1` is `k`'s last: the log continues after it.
/// Otherwise `k` was still fencing: its fences carry the log's state where
/// it began, and the rule is replayed from there to `gap`.
pub(crate) fn state_at_gap(gap: Position, tags: &BTreeMap<Position, ObjectTag>) -> Result<LogState, Failure> {
    let Some(newest) = tags.values().max_by_key(|t| (t.header.epoch, t.header.position)) else {
        return Ok(LogState::EMPTY);
    };
    let epoch = newest.header.epoch;
    let wrote_batch = tags.values().any(|t| t.header.epoch == epoch && t.header.kind == ObjectKind::Batch);
    let last = gap
        .0
        .checked_sub(1)
        .and_then(|p| tags.get(&Position(p)))
        .ok_or_else(|| violation(gap, "tag below the gap missing"))?;
    if wrote_batch {
        if last.header.epoch != epoch || last.header.kind != ObjectKind::Batch {
            return Err(violation(
                last.header.position,
                format!("expected the newest writer's ({epoch}) last batch here"),
            ));
        }
        let end = last.header.first_seq.plus(u64::from(last.header.count));
        return Ok(LogState { max_epoch: epoch, next_seq: end });
    }
    let fence = newest.header;
    let began = Position(epoch.generation);
    if !tags.contains_key(&began) && began < gap {
        return Err(violation(
            fence.position,
            format!("fence of {epoch} began at {began}, further back than a fence range"),
        ));
    }
    let start = LogState { max_epoch: fence.base_epoch, next_seq: fence.first_seq };
    replay(start, tags.range(began..gap).map(|(_, t)| t))
}

/// Applies the valid-log rule to `tags`, in position order, from `state`.
pub(crate) fn replay<'a>(mut state: LogState, tags: impl Iterator<Item = &'a ObjectTag>) -> Result<LogState, Failure> {
    for tag in tags {
        state.apply(&tag.header).map_err(|e| violation(tag.header.position, e.to_string()))?;
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Header;
    use crate::types::{CommitSeq, Epoch, LeaderId};

    fn keys(positions: &[u64]) -> Vec<String> {
        let mut keys: Vec<String> = positions.iter().map(|&p| Position(p).key()).collect();
        keys.sort();
        keys
    }

    #[test]
    fn an_empty_bucket_is_a_new_log() {
        assert_eq!(first_gap(&[], false).unwrap(), Listing { gap: Position(0), highest: None });
    }

    #[test]
    fn gap_in_a_complete_listing() {
        assert_eq!(first_gap(&keys(&[0, 1, 2, 4, 6]), false).unwrap().gap, Position(3));
        assert_eq!(first_gap(&keys(&[0, 1, 2]), false).unwrap().gap, Position(3));
        assert_eq!(first_gap(&keys(&[1, 2]), false).unwrap().gap, Position(0), "the very first batch never landed");
    }

    #[test]
    fn gap_in_a_truncated_listing_is_found_from_its_bottom() {
        let listed: Vec<u64> = (5000..5990).chain(5991..6001).collect();
        assert_eq!(listed.len(), 1000);
        assert_eq!(first_gap(&keys(&listed), true).unwrap().gap, Position(5990));
    }

    #[test]
    fn exactly_1000_claimed_earliest_missing() {
        // Old log up to 4999, then a window of 1000 claims [5000, 6000) with 5000 missing.
        let listed: Vec<u64> = std::iter::once(4999).chain(5001..6000).collect();
        assert_eq!(listed.len(), 1000);
        assert_eq!(first_gap(&keys(&listed), true).unwrap().gap, Position(5000));
    }

    #[test]
    fn exactly_1000_claimed_all_written() {
        let listed: Vec<u64> = (5000..6000).collect();
        assert_eq!(first_gap(&keys(&listed), true).unwrap().gap, Position(6000));
    }

    #[test]
    fn a_listing_past_the_window_is_a_violation() {
        let err = first_gap(&keys(&[0, 1, 1002]), false).unwrap_err();
        assert!(err.to_string().contains("deeper than any writer's window"), "{err}");
    }

    #[test]
    fn foreign_keys_are_a_violation() {
        let mut k = keys(&[0, 1]);
        k.push("batches/notes.txt".into());
        let err = first_gap(&k, false).unwrap_err();
        assert!(err.to_string().contains("not a batch key"), "{err}");
    }

    fn tag(
        kind: ObjectKind,
        p: u64,
        generation: u64,
        first: u64,
        count: u32,
        base: (u64, u64),
    ) -> (Position, ObjectTag) {
        let header = Header {
            kind,
            leader: LeaderId(generation),
            epoch: Epoch { generation, nonce: 1 },
            position: Position(p),
            first_seq: CommitSeq(first),
            count,
            base_epoch: Epoch { generation: base.0, nonce: base.1 },
        };
        (Position(p), ObjectTag { header, crc: 0 })
    }

    #[test]
    fn state_after_a_writer_that_wrote_batches() {
        let tags: BTreeMap<_, _> = (0..10).map(|p| tag(ObjectKind::Batch, p, 0, p * 3, 3, (0, 0))).collect();
        let s = state_at_gap(Position(10), &tags).unwrap();
        assert_eq!(s.next_seq, CommitSeq(30));
    }

    #[test]
    fn state_after_a_writer_that_crashed_while_fencing() {
        // Writer 0 wrote batches 0..5 (commits 0..15); writer 5 recovered at 5,
        // lost position 5 to writer 0's late batch, fenced 6..8, crashed.
        let mut tags: BTreeMap<_, _> = (0..6).map(|p| tag(ObjectKind::Batch, p, 0, p * 3, 3, (0, 0))).collect();
        tags.extend((6..8).map(|p| tag(ObjectKind::Fence, p, 5, 15, 0, (0, 1))));
        let s = state_at_gap(Position(8), &tags).unwrap();
        assert_eq!(s.next_seq, CommitSeq(18), "writer 0's batch at 5 precedes the fence, so it counts");
        assert_eq!(s.max_epoch, Epoch { generation: 5, nonce: 1 });
    }
}
