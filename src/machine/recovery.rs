//! Recovery, as pure functions: where the log ends, and what state it is in
//! there. The machine feeds them what its LIST and HEADs returned. Why these
//! steps are enough is argued in `docs/protocol.md`.

use std::collections::BTreeMap;

use crate::config::MAX_WINDOW;
use crate::format::ObjectTag;
use crate::protocol::Failure;
use crate::types::{BatchNumber, Position};
use crate::valid_log::LogState;

/// What the LIST told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listing {
    /// The first missing position: every position below it is written.
    pub gap: Position,
    /// The highest position listed, if any.
    pub highest: Option<Position>,
}

impl Listing {
    /// The position whose tag recovery reads first: the one below the gap.
    /// Its checkpoint then says how much further down to read.
    pub fn read_back(&self) -> std::ops::Range<u64> {
        self.gap.0.saturating_sub(1)..self.gap.0
    }

    /// How many positions from the gap up to the highest listed: some
    /// writer's window is at least that wide.
    pub fn claimed_above_gap(&self) -> u64 {
        self.highest.filter(|&h| h >= self.gap).map_or(0, |h| h.distance_from(self.gap) + 1)
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

/// Where the read-back must reach, from the tag of the object below the
/// gap: its checkpoint. Its writer claimed it at most one window past that
/// checkpoint, so a deeper one breaks the protocol.
pub(crate) fn read_back_start(top: &ObjectTag) -> Result<Position, Failure> {
    let h = &top.header;
    let from = h.checkpoint.position;
    let window = u64::from(h.window.min(MAX_WINDOW));
    if from > h.position || h.position.distance_from(from) >= window {
        return Err(violation(
            h.position,
            format!("checkpoint at {from} is not within the writer's window of {} positions", h.window),
        ));
    }
    Ok(from)
}

/// The valid log's state at `gap`: the checkpoint of the object below it,
/// with the rule replayed over the tags from there to the gap.
pub(crate) fn state_at_gap(gap: Position, tags: &BTreeMap<Position, ObjectTag>) -> Result<LogState, Failure> {
    let Some(below) = gap.0.checked_sub(1) else {
        return Ok(LogState::EMPTY);
    };
    let top = tags.get(&Position(below)).ok_or_else(|| violation(gap, "tag below the gap missing"))?;
    let from = read_back_start(top)?;
    let span = tags.range(from..gap);
    if span.clone().count() as u64 != gap.distance_from(from) {
        return Err(violation(from, "a tag between the checkpoint and the gap is missing"));
    }
    replay(top.header.checkpoint.state, span.map(|(_, t)| t))
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
    use crate::format::{Checkpoint, Header, ObjectKind};
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

    /// A tag at `p` by writer `generation`, whose checkpoint is `lag`
    /// positions back with state `(next_seq, checkpoint generation)`.
    fn tag(
        kind: ObjectKind,
        p: u64,
        generation: u64,
        first: u64,
        count: u32,
        lag: u64,
        cp: (u64, u64),
    ) -> (Position, ObjectTag) {
        let state = LogState { next_seq: CommitSeq(cp.0), max_epoch: Epoch { generation: cp.1, nonce: 1 } };
        let header = Header {
            kind,
            leader: LeaderId(generation),
            epoch: Epoch { generation, nonce: 1 },
            position: Position(p),
            first_seq: CommitSeq(first),
            count,
            checkpoint: Checkpoint { position: Position(p - lag), state },
            window: 8,
        };
        (Position(p), ObjectTag { header, crc: 0 })
    }

    #[test]
    fn state_after_a_writer_that_wrote_batches_one_at_a_time() {
        let tags: BTreeMap<_, _> = (9..10).map(|p| tag(ObjectKind::Batch, p, 0, p * 3, 3, 0, (27, 0))).collect();
        assert_eq!(state_at_gap(Position(10), &tags).unwrap().next_seq, CommitSeq(30));
    }

    #[test]
    fn state_after_a_writer_with_batches_in_flight() {
        // The last batch went out while the three before it were in flight.
        let tags: BTreeMap<_, _> = (6..10).map(|p| tag(ObjectKind::Batch, p, 0, p * 3, 3, 3, (18, 0))).collect();
        assert_eq!(read_back_start(&tags[&Position(9)]), Ok(Position(6)));
        assert_eq!(state_at_gap(Position(10), &tags).unwrap().next_seq, CommitSeq(30));
    }

    #[test]
    fn state_after_a_writer_that_crashed_while_fencing() {
        // Writer 0 wrote batches 0..5 (commits 0..15); writer 5 recovered at 5
        // with checkpoint (5, 15), lost position 5 to writer 0's late batch,
        // fenced 6..8 and crashed.
        let mut tags: BTreeMap<_, _> = [tag(ObjectKind::Batch, 5, 0, 15, 3, 1, (15, 0))].into();
        tags.extend((6..8).map(|p| tag(ObjectKind::Fence, p, 5, 15, 0, p - 5, (15, 0))));
        let s = state_at_gap(Position(8), &tags).unwrap();
        assert_eq!(s.next_seq, CommitSeq(18), "writer 0's batch at 5 precedes the fence, so it counts");
        assert_eq!(s.max_epoch, Epoch { generation: 5, nonce: 1 });
    }

    #[test]
    fn a_void_top_object_is_not_counted() {
        // Writer 3 fenced at 3; writer 0, deposed but not yet aware, won 4.
        let mut tags: BTreeMap<_, _> = [tag(ObjectKind::Fence, 3, 3, 9, 0, 0, (9, 0))].into();
        tags.extend([tag(ObjectKind::Batch, 4, 0, 9, 3, 1, (9, 0))]);
        let s = state_at_gap(Position(5), &tags).unwrap();
        assert_eq!(s.next_seq, CommitSeq(9));
        assert_eq!(s.max_epoch.generation, 3);
    }

    #[test]
    fn a_checkpoint_beyond_the_window_is_a_violation() {
        let (_, top) = tag(ObjectKind::Batch, 100, 0, 0, 1, 8, (0, 0));
        assert!(read_back_start(&top).unwrap_err().to_string().contains("not within the writer's window"));
        let (_, top) = tag(ObjectKind::Batch, 100, 0, 0, 1, 7, (0, 0));
        assert_eq!(read_back_start(&top), Ok(Position(93)));
    }
}
