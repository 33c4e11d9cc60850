//! Typed payloads: how structured values become record payload bytes.
//!
//! The frame is hand-encoded ([`crate::wal::frame`]); what goes *inside* a
//! record may be a serde value encoded with bincode 2.0.1 (pinned: the crate
//! is unmaintained and 3.0.0 is a deliberate compile error). The encoding is
//! fixed: little-endian, fixed-width integers, and a decode limit equal to
//! the largest record, so a hostile length prefix inside a payload can never
//! make the decoder allocate more than a record's worth. Every payload
//! starts with a `u16` schema version so old logs stay readable.
//! Golden-bytes tests below fail if the encoding changes by accident.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest payload the decoder will allocate for (the default maximum
/// record size).
pub const DECODE_LIMIT: usize = 16 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<DECODE_LIMIT>()
}

/// Why a payload could not be encoded or decoded.
#[derive(Debug)]
pub struct PayloadError(String);

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "payload: {}", self.0)
    }
}

impl std::error::Error for PayloadError {}

/// Encodes `value` with schema `version` in front.
pub fn encode<T: Serialize>(version: u16, value: &T) -> Result<Vec<u8>, PayloadError> {
    let mut out = version.to_le_bytes().to_vec();
    bincode::serde::encode_into_std_write(value, &mut out, config())
        .map_err(|e| PayloadError(e.to_string()))?;
    Ok(out)
}

/// Decodes a payload, returning its schema version and value. Trailing
/// bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<(u16, T), PayloadError> {
    let (head, body) = bytes
        .split_first_chunk::<2>()
        .ok_or_else(|| PayloadError("shorter than its version tag".into()))?;
    let version = u16::from_le_bytes(*head);
    let (value, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| PayloadError(e.to_string()))?;
    if used != body.len() {
        return Err(PayloadError(format!(
            "{} trailing bytes after the value",
            body.len() - used
        )));
    }
    Ok((version, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Sample {
        id: u32,
        name: String,
        tags: Vec<String>,
        cost: Option<f64>,
    }

    fn sample() -> Sample {
        Sample {
            id: 7,
            name: "ab".into(),
            tags: vec!["x".into()],
            cost: Some(1.5),
        }
    }

    #[test]
    fn golden_bytes() {
        let bytes = encode(1, &sample()).unwrap();
        let expected: Vec<u8> = [
            &[1u8, 0][..],                                           // version 1
            &[7, 0, 0, 0],                                           // id: u32
            &[2, 0, 0, 0, 0, 0, 0, 0, b'a', b'b'],                   // name: u64 length + bytes
            &[1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, b'x'], // tags
            &[1],                                                    // Some
            &1.5f64.to_le_bytes(),                                   // cost
        ]
        .concat();
        assert_eq!(bytes, expected);
        let (v, back): (u16, Sample) = decode(&bytes).unwrap();
        assert_eq!(v, 1);
        assert_eq!(back, sample());
    }

    #[test]
    fn hostile_length_does_not_allocate() {
        // version, then a string whose length prefix claims 2^60 bytes.
        let mut bytes = vec![1, 0, 7, 0, 0, 0];
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(decode::<Sample>(&bytes).is_err());
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(1, &sample()).unwrap();
        bytes.push(0);
        assert!(decode::<Sample>(&bytes).is_err());
    }
}
