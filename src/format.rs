//! The bytes of a log object, and the tag that names its owner.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "S3WL"
//!      4     1  format version (1)
//!      5     1  kind: 1 batch, 2 fence
//!      6     2  reserved, zero
//!      8     8  leader id
//!     16     8  epoch generation
//!     24     8  epoch nonce
//!     32     8  batch number (u64::MAX - position)
//!     40     8  first commit sequence number (a fence: the next one)
//!     48     4  commit count (a fence: 0)
//!     52     8  checkpoint position
//!     60     8  checkpoint: the next commit sequence number there
//!     68     8  checkpoint: the greatest valid epoch's generation there
//!     76     8  checkpoint: that epoch's nonce
//!     84     4  the writer's window
//!     88     …  commits, each a u32 length and that many bytes
//!    end-4   4  CRC32C of every byte before it
//! ```
//!
//! All integers are little-endian. [`decode`] never panics: any byte string
//! gives an [`Object`] or a [`DecodeError`].

mod crc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::types::{BatchNumber, CommitSeq, Epoch, LeaderId, Position};
use crate::valid_log::LogState;

const MAGIC: &[u8; 4] = b"S3WL";
const VERSION: u8 = 2;
/// Bytes before the first commit.
pub const HEADER_LEN: usize = 88;
/// Bytes after the last commit (the checksum).
pub const TRAILER_LEN: usize = 4;
/// Bytes each commit adds besides its payload (its length).
pub const COMMIT_OVERHEAD: usize = 4;
/// The user-metadata key that carries an object's [`ObjectTag`].
pub const TAG_METADATA_KEY: &str = "s3wal-tag";

/// What an object is for.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// Holds commits.
    Batch,
    /// Holds none: claims a position so that no earlier writer can use it.
    Fence,
}

impl ObjectKind {
    fn to_byte(self) -> u8 {
        match self {
            ObjectKind::Batch => 1,
            ObjectKind::Fence => 2,
        }
    }

    fn from_byte(b: u8) -> Option<ObjectKind> {
        match b {
            1 => Some(ObjectKind::Batch),
            2 => Some(ObjectKind::Fence),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ObjectKind::Batch => "batch",
            ObjectKind::Fence => "fence",
        }
    }
}

/// Everything in an object but its commits.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Batch or fence.
    pub kind: ObjectKind,
    /// The instance that wrote it.
    pub leader: LeaderId,
    /// That instance's generation.
    pub epoch: Epoch,
    /// Where it sits in the log.
    pub position: Position,
    /// The first commit's sequence number; for a fence, the next one.
    pub first_seq: CommitSeq,
    /// How many commits it holds.
    pub count: u32,
    /// The valid log's state at or below this position, as the writer knew
    /// it: recovery starts from the newest object's checkpoint instead of
    /// reading the log back.
    pub checkpoint: Checkpoint,
    /// How far past its durable prefix the writer may claim
    /// (`max_in_flight_requests`): a new writer fences that far.
    pub window: u32,
}

/// A true statement about the log, carried by every object: every position
/// below `position` was resolved when the object was written, and the
/// valid-log rule's state there is `state`. Objects never change, so it
/// stays true, even if its writer is deposed later.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// Every position below it was written when the object was.
    pub position: Position,
    /// The valid log's state at `position`.
    pub state: LogState,
}

/// A decoded object. Its commits share the object's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    /// The header.
    pub header: Header,
    /// The commits, in sequence order from `header.first_seq`.
    pub commits: Commits,
    /// The checksum stored in (and verified against) the object.
    pub crc: u32,
}

/// An object's commits, still in their length-prefixed form: [`decode`]
/// checks every length once and makes nothing per commit, so a reader pays
/// for a commit only when it takes one out.
#[derive(Clone, Default)]
pub struct Commits {
    /// Each commit as a u32 length and its bytes, and nothing else: [`decode`]
    /// checked that the lengths tile it exactly.
    framed: Bytes,
    count: u32,
}

impl Commits {
    /// How many commits there are.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The commits, borrowed.
    pub fn iter(&self) -> CommitIter<'_> {
        CommitIter { rest: &self.framed, left: self.count }
    }

    /// The commits as `Bytes` that share the object's buffer (one reference
    /// count each).
    pub fn shared(&self) -> impl ExactSizeIterator<Item = Bytes> + '_ {
        self.iter().map(|commit| self.framed.slice_ref(commit))
    }

    /// The commits after the first `n` (none if there are not that many).
    pub fn skip(&self, n: usize) -> Commits {
        let n = n.min(self.len());
        let mut it = self.iter();
        it.by_ref().take(n).for_each(drop);
        let start = self.framed.len() - it.rest.len();
        Commits { framed: self.framed.slice(start..), count: it.left }
    }

    /// The commits as a vector of shared `Bytes`.
    pub fn to_vec(&self) -> Vec<Bytes> {
        self.shared().collect()
    }
}

impl PartialEq for Commits {
    fn eq(&self, other: &Commits) -> bool {
        self.count == other.count && self.framed == other.framed
    }
}

impl Eq for Commits {}

impl std::fmt::Debug for Commits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(Bytes::copy_from_slice)).finish()
    }
}

impl<'a> IntoIterator for &'a Commits {
    type Item = &'a [u8];
    type IntoIter = CommitIter<'a>;

    fn into_iter(self) -> CommitIter<'a> {
        self.iter()
    }
}

/// The commits of a [`Commits`], borrowed, in order.
#[derive(Clone, Debug)]
pub struct CommitIter<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> Iterator for CommitIter<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        self.left = self.left.checked_sub(1)?;
        let (prefix, rest) = self.rest.split_at(COMMIT_OVERHEAD);
        let (commit, rest) = rest.split_at(read_u32(prefix) as usize);
        self.rest = rest;
        Some(commit)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for CommitIter<'_> {}

impl Object {
    /// The tag a writer puts in this object's metadata.
    pub fn tag(&self) -> ObjectTag {
        ObjectTag { header: self.header, crc: self.crc }
    }
}

/// Why bytes are not a valid object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than an empty object.
    #[error("object is {len} bytes, shorter than the {min}-byte minimum")]
    TooShort {
        /// The object's length.
        len: usize,
        /// The least an object can be.
        min: usize,
    },
    /// The checksum does not match: the bytes were damaged.
    #[error("checksum mismatch: stored {stored:08x}, computed {computed:08x}")]
    ChecksumMismatch {
        /// The checksum in the object.
        stored: u32,
        /// The checksum of its bytes.
        computed: u32,
    },
    /// Not an s3wal object.
    #[error("bad magic bytes {found:02x?}: not an s3wal object")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// Written by a format this build does not read.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// A kind byte this build does not know.
    #[error("unknown object kind {0}")]
    UnknownKind(u8),
    /// A commit's length runs past the end of the object.
    #[error("commit {index} overruns the object")]
    CommitOverrun {
        /// Which commit, from 0.
        index: u32,
    },
    /// Bytes left over after the last commit.
    #[error("{extra} bytes after the last of {count} commits")]
    TrailingBytes {
        /// The commits the header announced.
        count: u32,
        /// The bytes left over.
        extra: usize,
    },
    /// A fence that claims to hold commits.
    #[error("fence object claims {count} commits")]
    FenceWithCommits {
        /// The commits it claims.
        count: u32,
    },
}

/// Collects commits into one batch object, copying each commit's bytes once.
///
/// Room for the header is reserved up front and filled in by [`seal`],
/// when the batch's position is known.
///
/// [`seal`]: BatchBuilder::seal
#[derive(Debug)]
pub struct BatchBuilder {
    buf: BytesMut,
    count: u32,
}

impl BatchBuilder {
    /// An empty batch with room for about `capacity` bytes of commits.
    pub fn with_capacity(capacity: usize) -> BatchBuilder {
        let mut buf = BytesMut::with_capacity(HEADER_LEN + capacity + TRAILER_LEN);
        buf.put_bytes(0, HEADER_LEN);
        BatchBuilder { buf, count: 0 }
    }

    /// An empty batch in a buffer that held an earlier one.
    pub fn reusing(mut buf: BytesMut, capacity: usize) -> BatchBuilder {
        buf.clear();
        buf.reserve(HEADER_LEN + capacity + TRAILER_LEN);
        buf.put_bytes(0, HEADER_LEN);
        BatchBuilder { buf, count: 0 }
    }

    /// Appends one commit.
    ///
    /// # Panics
    /// If the commit is 4 GiB or larger, or the batch holds `u32::MAX` commits;
    /// the writer refuses such commits before they get here.
    #[inline]
    pub fn push(&mut self, commit: &[u8]) {
        let len = u32::try_from(commit.len()).expect("commit under 4 GiB");
        let framed = COMMIT_OVERHEAD + commit.len();
        // One capacity check and one length update, where two
        // `extend_from_slice` calls made two of each: a batch of 100-byte
        // commits built at 8.4-9.0 GB/s instead of 5.9.
        self.buf.reserve(framed);
        let (prefix, payload) = self.buf.spare_capacity_mut()[..framed].split_at_mut(COMMIT_OVERHEAD);
        prefix.write_copy_of_slice(&len.to_le_bytes());
        payload.write_copy_of_slice(commit);
        // SAFETY: the `framed` bytes past the old length were just written.
        unsafe { self.buf.set_len(self.buf.len() + framed) };
        self.count = self.count.checked_add(1).expect("fewer than 2^32 commits per batch");
    }

    /// Bytes its commits take, length prefixes included.
    pub fn commits_len(&self) -> usize {
        self.buf.len() - HEADER_LEN
    }

    /// How many commits it holds.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether it holds no commit.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Fills in the header and checksum. `header.kind` must be `Batch` and
    /// `header.count` is taken from the commits pushed.
    pub fn seal(mut self, header: Header) -> (Bytes, ObjectTag) {
        debug_assert_eq!(header.kind, ObjectKind::Batch);
        let header = Header { count: self.count, ..header };
        write_header(&mut self.buf[..HEADER_LEN], &header);
        let crc = checksum(&self.buf);
        self.buf.put_u32_le(crc);
        (self.buf.freeze(), ObjectTag { header, crc })
    }
}

/// Encodes a fence: a header with no commits (`header.count` is ignored).
pub fn encode_fence(header: Header) -> (Bytes, ObjectTag) {
    let header = Header { kind: ObjectKind::Fence, count: 0, ..header };
    let mut buf = BytesMut::with_capacity(HEADER_LEN + TRAILER_LEN);
    buf.put_bytes(0, HEADER_LEN);
    write_header(&mut buf[..], &header);
    let crc = checksum(&buf);
    buf.put_u32_le(crc);
    (buf.freeze(), ObjectTag { header, crc })
}

/// Encodes a batch of commits in one go (tests, tools).
pub fn encode_batch(header: Header, commits: &[Bytes]) -> (Bytes, ObjectTag) {
    let size = commits.iter().map(|c| c.len() + COMMIT_OVERHEAD).sum();
    let mut builder = BatchBuilder::with_capacity(size);
    for commit in commits {
        builder.push(commit);
    }
    builder.seal(header)
}

fn write_header(out: &mut [u8], h: &Header) {
    let mut w = &mut out[..];
    w.put_slice(MAGIC);
    w.put_u8(VERSION);
    w.put_u8(h.kind.to_byte());
    w.put_u16_le(0);
    w.put_u64_le(h.leader.0);
    w.put_u64_le(h.epoch.generation);
    w.put_u64_le(h.epoch.nonce);
    w.put_u64_le(h.position.batch_number().0);
    w.put_u64_le(h.first_seq.0);
    w.put_u32_le(h.count);
    w.put_u64_le(h.checkpoint.position.0);
    w.put_u64_le(h.checkpoint.state.next_seq.0);
    w.put_u64_le(h.checkpoint.state.max_epoch.generation);
    w.put_u64_le(h.checkpoint.state.max_epoch.nonce);
    w.put_u32_le(h.window);
}

/// CRC-32C (Castagnoli), the checksum every object ends with; the tools
/// use it for commit digests too. See [`crc`] for how it is computed.
#[inline]
pub fn checksum(bytes: &[u8]) -> u32 {
    crc::crc32c_append(0, bytes)
}

/// The CRC-32C of every intact object, trailer included. An object is
/// `content ++ checksum(content)` (little-endian), and a CRC run over its own
/// remainder always ends at the same value, CRC-32C's residue. So a store
/// that checks a PUT body against this constant (S3's
/// `x-amz-checksum-crc32c`) checks that the object still matches the
/// checksum it was sealed with, without anyone reading it again; a body
/// damaged anywhere, in memory or on the way, fails.
pub const SEALED_OBJECT_CRC32C: u32 = 0x4867_4BC7;

/// How [`checksum`] runs on this CPU (benchmarks say so).
pub fn checksum_kernel() -> &'static str {
    crc::kernel_name()
}

/// Decodes and verifies one object. The commits share `bytes`' buffer.
pub fn decode(bytes: &Bytes) -> Result<Object, DecodeError> {
    let min = HEADER_LEN + TRAILER_LEN;
    if bytes.len() < min {
        return Err(DecodeError::TooShort { len: bytes.len(), min });
    }
    let body_end = bytes.len() - TRAILER_LEN;
    let body = &bytes[..body_end];
    // The checksum and the walk over the commits' lengths go block by block,
    // so that the walk, a chain of dependent loads, reads what the checksum
    // has just brought into the L1 cache: a walk over a 1 MiB object after
    // its checksum took twice as long.
    let mut walk = LengthWalk { at: HEADER_LEN, walked: 0, count: read_u32(&body[48..]) };
    let mut computed = 0;
    let block_len = crc::block_len();
    for (i, block) in body.chunks(block_len).enumerate() {
        computed = crc::crc32c_append(computed, block);
        walk.advance(&body[..((i + 1) * block_len).min(body_end)]);
    }
    let stored = read_u32(&bytes[body_end..]);
    if stored != computed {
        return Err(DecodeError::ChecksumMismatch { stored, computed });
    }
    let header = read_header(&body[..HEADER_LEN])?;
    walk.finish(body_end)?;
    let commits = Commits { framed: bytes.slice(HEADER_LEN..body_end), count: header.count };
    Ok(Object { header, commits, crc: stored })
}

/// Checks that an object's length-prefixed commits tile its body exactly.
struct LengthWalk {
    /// Where the next commit's length prefix starts.
    at: usize,
    /// Commits walked over.
    walked: u32,
    /// Commits the header announces.
    count: u32,
}

impl LengthWalk {
    /// Walks over every commit whose length prefix lies in `seen`.
    fn advance(&mut self, seen: &[u8]) {
        while self.walked < self.count {
            let Some(prefix) = seen.get(self.at..self.at + COMMIT_OVERHEAD) else { return };
            self.at = self.at.saturating_add(COMMIT_OVERHEAD + read_u32(prefix) as usize);
            self.walked += 1;
        }
    }

    /// The verdict once the whole body of `body_end` bytes has been seen.
    fn finish(self, body_end: usize) -> Result<(), DecodeError> {
        let overrun = self.at > body_end;
        if overrun || self.walked < self.count {
            // The last commit walked ran past the end, or the next one's prefix did not fit.
            let index = if overrun { self.walked - 1 } else { self.walked };
            return Err(DecodeError::CommitOverrun { index });
        }
        if self.at != body_end {
            return Err(DecodeError::TrailingBytes { count: self.count, extra: body_end - self.at });
        }
        Ok(())
    }
}

fn read_header(h: &[u8]) -> Result<Header, DecodeError> {
    let found: [u8; 4] = [h[0], h[1], h[2], h[3]];
    if &found != MAGIC {
        return Err(DecodeError::BadMagic { found });
    }
    if h[4] != VERSION {
        return Err(DecodeError::UnsupportedVersion(h[4]));
    }
    let kind = ObjectKind::from_byte(h[5]).ok_or(DecodeError::UnknownKind(h[5]))?;
    let count = read_u32(&h[48..]);
    if kind == ObjectKind::Fence && count != 0 {
        return Err(DecodeError::FenceWithCommits { count });
    }
    Ok(Header {
        kind,
        leader: LeaderId(read_u64(&h[8..])),
        epoch: Epoch { generation: read_u64(&h[16..]), nonce: read_u64(&h[24..]) },
        position: BatchNumber(read_u64(&h[32..])).position(),
        first_seq: CommitSeq(read_u64(&h[40..])),
        count,
        checkpoint: Checkpoint {
            position: Position(read_u64(&h[52..])),
            state: LogState {
                next_seq: CommitSeq(read_u64(&h[60..])),
                max_epoch: Epoch { generation: read_u64(&h[68..]), nonce: read_u64(&h[76..]) },
            },
        },
        window: read_u32(&h[84..]),
    })
}

fn read_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn read_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// An object's identity, small enough for user metadata: a HEAD tells who
/// owns a position without fetching the object.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectTag {
    /// The object's header.
    pub header: Header,
    /// The object's checksum: tells two objects of one writer apart.
    pub crc: u32,
}

/// Why a metadata value is not an [`ObjectTag`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed s3wal tag {0:?}")]
pub struct TagError(pub String);

impl ObjectTag {
    /// The metadata value:
    /// `v2 <kind> <leader> <gen> <nonce> <position> <first_seq> <count>
    /// <checkpoint position> <its next_seq> <its gen> <its nonce> <window> <crc>`.
    pub fn to_metadata_value(&self) -> String {
        let h = &self.header;
        let c = &h.checkpoint;
        format!(
            "v2 {} {:x} {} {:x} {} {} {} {} {} {} {:x} {} {:08x}",
            h.kind.name(),
            h.leader.0,
            h.epoch.generation,
            h.epoch.nonce,
            h.position.0,
            h.first_seq.0,
            h.count,
            c.position.0,
            c.state.next_seq.0,
            c.state.max_epoch.generation,
            c.state.max_epoch.nonce,
            h.window,
            self.crc
        )
    }

    /// Parses a value made by [`ObjectTag::to_metadata_value`].
    pub fn parse(value: &str) -> Result<ObjectTag, TagError> {
        let bad = || TagError(value.chars().take(120).collect());
        let f: Vec<&str> = value.split(' ').collect();
        if f.len() != 14 || f[0] != "v2" {
            return Err(bad());
        }
        let kind = match f[1] {
            "batch" => ObjectKind::Batch,
            "fence" => ObjectKind::Fence,
            _ => return Err(bad()),
        };
        let hex = |s: &str| u64::from_str_radix(s, 16).map_err(|_| bad());
        let dec = |s: &str| s.parse::<u64>().map_err(|_| bad());
        let header = Header {
            kind,
            leader: LeaderId(hex(f[2])?),
            epoch: Epoch { generation: dec(f[3])?, nonce: hex(f[4])? },
            position: Position(dec(f[5])?),
            first_seq: CommitSeq(dec(f[6])?),
            count: u32::try_from(dec(f[7])?).map_err(|_| bad())?,
            checkpoint: Checkpoint {
                position: Position(dec(f[8])?),
                state: LogState {
                    next_seq: CommitSeq(dec(f[9])?),
                    max_epoch: Epoch { generation: dec(f[10])?, nonce: hex(f[11])? },
                },
            },
            window: u32::try_from(dec(f[12])?).map_err(|_| bad())?,
        };
        let crc = u32::try_from(hex(f[13])?).map_err(|_| bad())?;
        Ok(ObjectTag { header, crc })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(count: u32) -> Header {
        Header {
            kind: ObjectKind::Batch,
            leader: LeaderId(7),
            epoch: Epoch { generation: 3, nonce: 0xabc },
            position: Position(41),
            first_seq: CommitSeq(1000),
            count,
            checkpoint: Checkpoint::default(),
            window: 50,
        }
    }

    #[test]
    fn every_intact_object_has_the_same_whole_checksum_and_a_damaged_one_does_not() {
        let commits = [Bytes::from_static(b"a"), Bytes::from(vec![9; 5000])];
        for (object, _) in [encode_fence(header(0)), encode_batch(header(2), &commits)] {
            assert_eq!(checksum(&object), SEALED_OBJECT_CRC32C);
            for at in [0, object.len() / 2, object.len() - 1] {
                let mut damaged = object.to_vec();
                damaged[at] ^= 0x10;
                assert_ne!(checksum(&damaged), SEALED_OBJECT_CRC32C, "byte {at}");
            }
        }
    }

    fn arb_checkpoint() -> impl Strategy<Value = Checkpoint> {
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(p, s, g, n)| Checkpoint {
            position: Position(p),
            state: LogState { next_seq: CommitSeq(s), max_epoch: Epoch { generation: g, nonce: n } },
        })
    }

    fn arb_header() -> impl Strategy<Value = Header> {
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), arb_checkpoint(), any::<u32>()).prop_map(
            |(l, g, n, p, s, checkpoint, window)| Header {
                kind: ObjectKind::Batch,
                leader: LeaderId(l),
                epoch: Epoch { generation: g, nonce: n },
                position: Position(p),
                first_seq: CommitSeq(s),
                count: 0,
                checkpoint,
                window,
            },
        )
    }

    fn arb_commits() -> impl Strategy<Value = Vec<Bytes>> {
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from), 0..20)
    }

    #[test]
    fn layout_is_as_documented() {
        let (bytes, tag) = encode_batch(header(0), &[Bytes::from_static(b"abc")]);
        assert_eq!(&bytes[..4], b"S3WL");
        assert_eq!(bytes.len(), HEADER_LEN + COMMIT_OVERHEAD + 3 + TRAILER_LEN);
        assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + 4], &3u32.to_le_bytes());
        assert_eq!(tag.header.count, 1);
        assert_eq!(read_u64(&bytes[32..]), u64::MAX - 41);
    }

    #[test]
    fn fence_round_trips_with_its_checkpoint() {
        let state = LogState { next_seq: CommitSeq(77), max_epoch: Epoch { generation: 4, nonce: 0xf00 } };
        let checkpoint = Checkpoint { position: Position(8), state };
        let (bytes, tag) = encode_fence(Header { kind: ObjectKind::Fence, checkpoint, count: 3, ..header(0) });
        let obj = decode(&bytes).expect("valid");
        assert_eq!(obj.header.kind, ObjectKind::Fence);
        assert_eq!(obj.header.count, 0, "a fence holds no commits");
        assert_eq!(obj.header.checkpoint, checkpoint);
        assert_eq!(obj.header.window, 50);
        assert!(obj.commits.is_empty());
        assert_eq!(obj.tag(), tag);
        assert_eq!(ObjectTag::parse(&tag.to_metadata_value()), Ok(tag));
    }

    #[test]
    fn commits_are_sliced_on_demand_from_the_object() {
        let commits: Vec<Bytes> = [&b"a"[..], b"", b"ccc", b"dd"].iter().map(|c| Bytes::copy_from_slice(c)).collect();
        let (bytes, _) = encode_batch(header(0), &commits);
        let obj = decode(&bytes).expect("valid");
        assert_eq!(obj.commits.len(), 4);
        assert_eq!(obj.commits.iter().collect::<Vec<_>>(), [&b"a"[..], b"", b"ccc", b"dd"]);
        assert_eq!(obj.commits.skip(2).to_vec(), &commits[2..]);
        assert_eq!(obj.commits.skip(4), Commits::default());
        assert_eq!(obj.commits.skip(9), Commits::default());
        let third = obj.commits.shared().nth(2).expect("four commits");
        assert!(bytes.as_ptr_range().contains(&third.as_ptr()), "a commit shares the object's buffer");
        assert_eq!(format!("{:?}", obj.commits.skip(3)), format!("{:?}", [Bytes::from_static(b"dd")]));
    }

    /// Re-seals `raw` after an edit, so only the structure is wrong.
    fn reseal(mut raw: Vec<u8>) -> Bytes {
        let end = raw.len() - TRAILER_LEN;
        let crc = checksum(&raw[..end]);
        raw[end..].copy_from_slice(&crc.to_le_bytes());
        Bytes::from(raw)
    }

    #[test]
    fn objects_larger_than_a_checksum_block_are_walked_across_blocks() {
        let commits: Vec<Bytes> = (0..100u32).map(|i| Bytes::from(vec![i as u8; (i as usize * 37) % 3001])).collect();
        let (bytes, _) = encode_batch(header(0), &commits);
        assert!(bytes.len() > 3 * crc::block_len(), "{} bytes", bytes.len());
        assert_eq!(decode(&bytes).expect("valid").commits.to_vec(), commits);

        let with_count = |count: u32| {
            let mut raw = bytes.to_vec();
            raw[48..52].copy_from_slice(&count.to_le_bytes());
            decode(&reseal(raw))
        };
        assert_eq!(with_count(99), Err(DecodeError::TrailingBytes { count: 99, extra: 4 + 99 * 37 % 3001 }));
        assert_eq!(with_count(101), Err(DecodeError::CommitOverrun { index: 100 }));

        // Commit 60's length, far into the object, now runs past its end.
        let at = HEADER_LEN + commits[..60].iter().map(|c| COMMIT_OVERHEAD + c.len()).sum::<usize>();
        let mut raw = bytes.to_vec();
        raw[at..at + 4].copy_from_slice(&(1u32 << 30).to_le_bytes());
        assert_eq!(decode(&reseal(raw)), Err(DecodeError::CommitOverrun { index: 60 }));
    }

    #[test]
    fn short_input_is_an_error() {
        for len in 0..HEADER_LEN + TRAILER_LEN {
            let err = decode(&Bytes::from(vec![0u8; len])).unwrap_err();
            assert!(matches!(err, DecodeError::TooShort { .. }), "{err}");
        }
    }

    #[test]
    fn lying_count_is_caught_even_with_a_good_checksum() {
        let (bytes, _) = encode_batch(header(0), &[Bytes::from_static(b"xy")]);
        let mut raw = bytes.to_vec();
        raw[48..52].copy_from_slice(&5u32.to_le_bytes());
        assert_eq!(decode(&reseal(raw)), Err(DecodeError::CommitOverrun { index: 1 }));
    }

    #[test]
    fn tags_round_trip_and_reject_garbage() {
        let (_, tag) = encode_batch(header(0), &[Bytes::from_static(b"q")]);
        assert_eq!(ObjectTag::parse(&tag.to_metadata_value()), Ok(tag));
        let good = tag.to_metadata_value();
        let old = good.replacen("v2", "v1", 1);
        let short = good.rsplit_once(' ').unwrap().0.to_string();
        for bad in
            ["", "v2 blob 1 2 3 4 5 6 7 8 9 10 11 12 13", "v2 batch zz 2 3 4 5 6 7 8 9 10 11 12 13", &old, &short]
        {
            assert!(ObjectTag::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(h in arb_header(), commits in arb_commits()) {
            let (bytes, tag) = encode_batch(h, &commits);
            let obj = decode(&bytes).expect("own encoding decodes");
            prop_assert_eq!(obj.header, Header { count: commits.len() as u32, ..h });
            prop_assert_eq!(obj.commits.to_vec(), commits.clone());
            prop_assert!(obj.commits.iter().eq(commits.iter().map(|c| &c[..])));
            prop_assert_eq!(obj.tag(), tag);
            prop_assert_eq!(ObjectTag::parse(&tag.to_metadata_value()), Ok(tag));
        }

        #[test]
        fn random_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&Bytes::from(raw));
        }

        #[test]
        fn any_bit_flip_is_detected(h in arb_header(), commits in arb_commits(), bit in any::<prop::sample::Index>()) {
            let (bytes, _) = encode_batch(h, &commits);
            let mut raw = bytes.to_vec();
            let bit = bit.index(raw.len() * 8);
            raw[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode(&Bytes::from(raw)).is_err());
        }

        #[test]
        fn truncation_is_detected(h in arb_header(), commits in arb_commits(), cut in any::<prop::sample::Index>()) {
            let (bytes, _) = encode_batch(h, &commits);
            let keep = cut.index(bytes.len());
            prop_assert!(decode(&bytes.slice(..keep)).is_err());
        }
    }
}
