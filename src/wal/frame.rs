//! The record frame: how one record is laid out in a segment, by hand.
//!
//! ```text
//! offset size field
//!  0     4    crc32 (IEEE, crc32fast) of bytes 4..32 of the header, then the payload
//!  4     4    payload length in bytes (u32 LE)
//!  8     8    LSN (u64 LE)
//! 16     8    segment number (u64 LE)   \ the segment's identity: a record copied
//! 24     4    segment salt (u32 LE)     / from another file or cycle never passes
//! 28     2    group delta (u16 LE): records before this one in its commit group
//! 30     1    record type (u8, never 0)
//! 31     1    flags (bit 0: BATCH_CONTINUES; other bits must be 0)
//! 32     len  payload
//! ..     0-7  zero padding to the next multiple of 8
//! ```
//!
//! Everything is little-endian. Records start at 8-byte aligned offsets, so
//! a scan for "any valid record after a bad one" only tries aligned offsets.
//! This module owns the byte layout and nothing else: it never does I/O.

/// Length of the frame header in bytes.
pub const HEADER_LEN: usize = 32;
/// Records start at multiples of this.
pub const ALIGN: usize = 8;
/// Flag: more records of the same atomic batch follow this one.
pub const FLAG_BATCH_CONTINUES: u8 = 0x01;
const KNOWN_FLAGS: u8 = FLAG_BATCH_CONTINUES;

/// The identity of a segment, stamped into every record it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SegmentId {
    /// The segment number (also in its file name).
    pub number: u64,
    /// A random value chosen when the segment was created.
    pub salt: u32,
}

/// The fields of a frame, as written or as decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length.
    pub len: u32,
    /// Log sequence number.
    pub lsn: u64,
    /// The segment the record was written into.
    pub segment: SegmentId,
    /// How many records precede this one in its commit group.
    pub group_delta: u16,
    /// Record type, never 0.
    pub kind: u8,
    /// Flags ([`FLAG_BATCH_CONTINUES`]).
    pub flags: u8,
}

impl FrameHeader {
    /// The LSN of the first record of this record's commit group.
    pub fn group_first_lsn(&self) -> u64 {
        self.lsn.saturating_sub(u64::from(self.group_delta))
    }

    /// True if more records of the same atomic batch follow.
    pub fn batch_continues(&self) -> bool {
        self.flags & FLAG_BATCH_CONTINUES != 0
    }
}

/// A frame decoded in place: its header and a borrowed payload.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// The header fields.
    pub header: FrameHeader,
    /// The payload bytes.
    pub payload: &'a [u8],
    /// Total bytes the frame occupies, padding included.
    pub total_len: usize,
}

/// Why bytes at an offset are not a valid frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer than [`HEADER_LEN`] bytes remain.
    ShortHeader,
    /// The header is all zeros: unwritten (preallocated) space.
    Zeroed,
    /// The length runs past the end of the file.
    LengthPastEnd {
        /// The length field.
        len: u64,
        /// Bytes available after the header.
        available: u64,
    },
    /// The record belongs to another segment (or another cycle of it).
    ForeignSegment,
    /// The checksum does not match.
    Checksum,
    /// Type 0 or unknown flag bits.
    BadTypeOrFlags,
    /// The padding after the payload is not zero.
    BadPadding,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::ShortHeader => write!(f, "record header cut short"),
            DecodeError::Zeroed => write!(f, "zeroed bytes where a record was expected"),
            DecodeError::LengthPastEnd { len, available } => write!(
                f,
                "record length {len} exceeds the {available} bytes left in the file"
            ),
            DecodeError::ForeignSegment => {
                write!(f, "record belongs to another segment or cycle")
            }
            DecodeError::Checksum => write!(f, "record checksum mismatch"),
            DecodeError::BadTypeOrFlags => write!(f, "record type 0 or unknown flags"),
            DecodeError::BadPadding => write!(f, "non-zero padding after record"),
        }
    }
}

/// Bytes a record with `payload_len` bytes of payload occupies on disk.
pub fn encoded_len(payload_len: usize) -> usize {
    align_up(HEADER_LEN + payload_len)
}

/// Rounds `n` up to a multiple of [`ALIGN`].
pub fn align_up(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

/// Appends the encoded frame for `header` and `payload` to `out`.
///
/// `header.len` is taken from `payload.len()`; the caller has checked that it
/// fits in a `u32` and in the segment.
pub fn encode(out: &mut Vec<u8>, header: &FrameHeader, payload: &[u8]) {
    assert!(header.kind != 0, "record type 0 is reserved");
    assert!(header.flags & !KNOWN_FLAGS == 0, "unknown flags");
    let len = u32::try_from(payload.len()).expect("payload length checked by caller");
    let start = out.len();
    let mut head = [0u8; HEADER_LEN];
    head[4..8].copy_from_slice(&len.to_le_bytes());
    head[8..16].copy_from_slice(&header.lsn.to_le_bytes());
    head[16..24].copy_from_slice(&header.segment.number.to_le_bytes());
    head[24..28].copy_from_slice(&header.segment.salt.to_le_bytes());
    head[28..30].copy_from_slice(&header.group_delta.to_le_bytes());
    head[30] = header.kind;
    head[31] = header.flags;
    let crc = checksum(&head[4..], payload);
    head[0..4].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    out.resize(start + encoded_len(payload.len()), 0);
    // Paired with `decode`: the frame just written passes every check a
    // reader will make (debug builds: it costs a second checksum).
    debug_assert!(
        decode(&out[start..], header.segment).is_ok_and(|f| f.header.lsn == header.lsn
            && f.header.group_delta == header.group_delta
            && f.payload == payload),
        "an encoded frame decodes to what was encoded"
    );
}

fn checksum(head_rest: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(head_rest);
    hasher.update(payload);
    hasher.finalize()
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// Decodes the frame at the start of `bytes`, which must belong to segment
/// `id`. Never panics and never allocates, whatever the bytes: the length
/// field is bounded by what `bytes` holds before anything is read.
pub fn decode(bytes: &[u8], id: SegmentId) -> Result<Frame<'_>, DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::ShortHeader);
    }
    let head = &bytes[..HEADER_LEN];
    if head.iter().all(|&b| b == 0) {
        return Err(DecodeError::Zeroed);
    }
    let len = le_u32(&head[4..8]);
    let available = (bytes.len() - HEADER_LEN) as u64;
    // The whole frame, padding included, must be present: a file that ends
    // inside a frame ends in a torn record.
    if (encoded_len(len as usize) - HEADER_LEN) as u64 > available {
        return Err(DecodeError::LengthPastEnd {
            len: u64::from(len),
            available,
        });
    }
    let segment = SegmentId {
        number: le_u64(&head[16..24]),
        salt: le_u32(&head[24..28]),
    };
    if segment != id {
        return Err(DecodeError::ForeignSegment);
    }
    let payload = &bytes[HEADER_LEN..HEADER_LEN + len as usize];
    if checksum(&head[4..], payload) != le_u32(&head[0..4]) {
        return Err(DecodeError::Checksum);
    }
    let kind = head[30];
    let flags = head[31];
    if kind == 0 || flags & !KNOWN_FLAGS != 0 {
        return Err(DecodeError::BadTypeOrFlags);
    }
    let total_len = encoded_len(len as usize);
    if bytes[HEADER_LEN + len as usize..total_len]
        .iter()
        .any(|&b| b != 0)
    {
        return Err(DecodeError::BadPadding);
    }
    Ok(Frame {
        header: FrameHeader {
            len,
            lsn: le_u64(&head[8..16]),
            segment,
            group_delta: u16::from_le_bytes([head[28], head[29]]),
            kind,
            flags,
        },
        payload,
        total_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: SegmentId = SegmentId {
        number: 7,
        salt: 0xA1B2_C3D4,
    };

    fn header(lsn: u64, kind: u8, flags: u8) -> FrameHeader {
        FrameHeader {
            len: 0,
            lsn,
            segment: ID,
            group_delta: 2,
            kind,
            flags,
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode(&mut buf, &header(42, 3, FLAG_BATCH_CONTINUES), b"hello");
        assert_eq!(buf.len(), 40);
        let f = decode(&buf, ID).unwrap();
        assert_eq!(f.header.lsn, 42);
        assert_eq!(f.header.len, 5);
        assert_eq!(f.header.kind, 3);
        assert!(f.header.batch_continues());
        assert_eq!(f.header.group_first_lsn(), 40);
        assert_eq!(f.payload, b"hello");
        assert_eq!(f.total_len, 40);
    }

    #[test]
    fn foreign_segment_is_rejected() {
        let mut buf = Vec::new();
        encode(&mut buf, &header(1, 1, 0), b"x");
        let other = SegmentId { number: 7, salt: 1 };
        assert_eq!(
            decode(&buf, other).unwrap_err(),
            DecodeError::ForeignSegment
        );
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode(&mut buf, &header(9, 2, 0), b"payload bytes");
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    decode(&bad, ID).is_err(),
                    "flip at byte {i} bit {bit} passed"
                );
            }
        }
    }

    #[test]
    fn frame_cut_inside_its_padding_is_rejected() {
        let mut buf = Vec::new();
        encode(&mut buf, &header(1, 1, 0), b"abc");
        assert_eq!(buf.len(), 40);
        assert!(matches!(
            decode(&buf[..36], ID),
            Err(DecodeError::LengthPastEnd { .. })
        ));
    }

    #[test]
    fn huge_length_is_bounded_by_the_buffer() {
        let mut buf = Vec::new();
        encode(&mut buf, &header(1, 1, 0), b"abc");
        buf[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&buf, ID),
            Err(DecodeError::LengthPastEnd { .. })
        ));
    }
}
