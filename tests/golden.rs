//! Golden bytes of the on-disk format.
//!
//! The expected arrays below were written out by hand from the layouts in
//! the module docs of `src/frame.rs` and `src/segment.rs` (little-endian
//! fields; the crc32 values were computed once with an independent IEEE
//! CRC-32 and pasted in). If one of these tests fails, the on-disk format
//! changed: that breaks every existing journal, so it must be deliberate
//! (new format version), never an accident.

use tracejournal::testkit::wal::frame::{self, FrameHeader, SegmentId};
use tracejournal::testkit::wal::segment::{self, SegmentHeader};

/// lsn 42, segment {7, 0xA1B2C3D4}, group delta 2, kind 3,
/// flags BATCH_CONTINUES, payload "hello" (5 bytes, so 3 bytes of padding).
const FRAME_HELLO: [u8; 40] = [
    0xd3, 0x60, 0xfe, 0x6b, // crc32 of bytes 4..32 and the payload (0x6bfe60d3)
    0x05, 0x00, 0x00, 0x00, // payload length 5
    0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // LSN 42
    0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // segment number 7
    0xd4, 0xc3, 0xb2, 0xa1, // segment salt 0xA1B2C3D4
    0x02, 0x00, // group delta 2
    0x03, // record type 3
    0x01, // flags: BATCH_CONTINUES
    b'h', b'e', b'l', b'l', b'o', // payload
    0x00, 0x00, 0x00, // padding to a multiple of 8
];

/// Every field at an extreme, empty payload: lsn 0x0102030405060708,
/// segment {0x1122334455667788, 0x01020304}, group delta 0xFFFF, kind 0xFF,
/// no flags.
const FRAME_EMPTY: [u8; 32] = [
    0x63, 0x53, 0x9b, 0x22, // crc32 (0x229b5363)
    0x00, 0x00, 0x00, 0x00, // payload length 0
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // LSN
    0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // segment number
    0x04, 0x03, 0x02, 0x01, // salt
    0xff, 0xff, // group delta
    0xff, // record type
    0x00, // flags
];

/// Segment 3, salt 0xDEADBEEF, first LSN 1234.
const SEGMENT_HEADER: [u8; 64] = [
    b'T', b'J', b'S', b'E', b'G', b'M', b'N', b'T', // magic
    0x01, 0x00, // format version 1
    0x40, 0x00, // header length 64
    0xef, 0xbe, 0xad, 0xde, // salt
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // segment number 3
    0xd2, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // first LSN 1234
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // reserved (28 bytes)
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x00, 0x00, 0x00, 0x00, //
    0x19, 0x81, 0x7f, 0x00, // crc32 of bytes 0..60 (0x007f8119)
];

fn hello_header() -> FrameHeader {
    FrameHeader {
        len: 5,
        lsn: 42,
        segment: SegmentId {
            number: 7,
            salt: 0xA1B2_C3D4,
        },
        group_delta: 2,
        kind: 3,
        flags: frame::FLAG_BATCH_CONTINUES,
    }
}

#[test]
fn layout_constants() {
    assert_eq!(frame::HEADER_LEN, 32);
    assert_eq!(frame::ALIGN, 8);
    assert_eq!(frame::FLAG_BATCH_CONTINUES, 0x01);
    assert_eq!(segment::HEADER_LEN, 64);
    assert_eq!(&segment::MAGIC, b"TJSEGMNT");
    assert_eq!(segment::FORMAT_VERSION, 1);
    assert_eq!(frame::encoded_len(0), 32);
    assert_eq!(frame::encoded_len(1), 40);
    assert_eq!(frame::encoded_len(8), 40);
    assert_eq!(frame::encoded_len(9), 48);
}

#[test]
fn golden_crcs_match_the_documented_coverage() {
    // The crc covers bytes 4..32 of the header, then the payload (not the
    // padding); for the segment header, bytes 0..60.
    assert_eq!(
        crc32fast::hash(&FRAME_HELLO[4..37]).to_le_bytes(),
        FRAME_HELLO[0..4]
    );
    assert_eq!(
        crc32fast::hash(&FRAME_EMPTY[4..32]).to_le_bytes(),
        FRAME_EMPTY[0..4]
    );
    assert_eq!(
        crc32fast::hash(&SEGMENT_HEADER[0..60]).to_le_bytes(),
        SEGMENT_HEADER[60..64]
    );
}

#[test]
fn frame_encodes_to_golden_bytes() {
    let mut out = Vec::new();
    frame::encode(&mut out, &hello_header(), b"hello");
    assert_eq!(out, FRAME_HELLO);

    let mut out = Vec::new();
    let header = FrameHeader {
        len: 0,
        lsn: 0x0102_0304_0506_0708,
        segment: SegmentId {
            number: 0x1122_3344_5566_7788,
            salt: 0x0102_0304,
        },
        group_delta: 0xFFFF,
        kind: 0xFF,
        flags: 0,
    };
    frame::encode(&mut out, &header, b"");
    assert_eq!(out, FRAME_EMPTY);
}

#[test]
fn frame_encode_appends_after_existing_bytes() {
    let mut out = vec![0xEE; 8];
    frame::encode(&mut out, &hello_header(), b"hello");
    assert_eq!(&out[..8], &[0xEE; 8]);
    assert_eq!(&out[8..], &FRAME_HELLO);
}

#[test]
fn golden_frame_decodes() {
    let id = SegmentId {
        number: 7,
        salt: 0xA1B2_C3D4,
    };
    let f = frame::decode(&FRAME_HELLO, id).unwrap();
    assert_eq!(f.header, hello_header());
    assert_eq!(f.payload, b"hello");
    assert_eq!(f.total_len, 40);
    assert!(f.header.batch_continues());
    assert_eq!(f.header.group_first_lsn(), 40);
}

#[test]
fn segment_header_encodes_to_golden_bytes() {
    let h = SegmentHeader {
        id: SegmentId {
            number: 3,
            salt: 0xDEAD_BEEF,
        },
        first_lsn: 1234,
    };
    assert_eq!(h.encode(), SEGMENT_HEADER);
    assert_eq!(SegmentHeader::decode(&SEGMENT_HEADER).unwrap(), h);
}

#[test]
fn segment_file_names_are_golden() {
    assert_eq!(segment::file_name(1), "00000000000000000001.seg");
    assert_eq!(segment::file_name(12345), "00000000000000012345.seg");
    assert_eq!(segment::temp_name(2), "00000000000000000002.seg.tmp");
    assert_eq!(
        segment::parse_file_name("00000000000000000042.seg"),
        Some(42)
    );
}
