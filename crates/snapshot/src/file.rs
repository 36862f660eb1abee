//! The snapshot file: a header, the machine's state, a checksum.
//!
//! | bytes | what |
//! |---|---|
//! | 8 | [`MAGIC`] |
//! | 4 | [`FORMAT_VERSION`], little-endian |
//! | 8 | the state's length N, little-endian |
//! | N | the state, in postcard's encoding |
//! | 8 | CRC-64 (ECMA-182) of everything before it, little-endian |
//!
//! The state's encoding (postcard: compact, not self-describing) carries
//! no field names, so any change to a state struct changes the format
//! version, and a snapshot from another version is refused by number
//! rather than decoded into the wrong fields.

use crc::{Crc, CRC_64_ECMA_182};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

pub const MAGIC: [u8; 8] = *b"PTSMSNAP";
/// The version of the state structs' layout this build reads and writes.
pub const FORMAT_VERSION: u32 = 3;

const CRC: Crc<u64> = Crc::<u64>::new(&CRC_64_ECMA_182);
const HEADER_LEN: usize = MAGIC.len() + 4 + 8;
const CHECKSUM_LEN: usize = 8;

/// The whole file for `state`.
pub fn encode<T: Serialize>(state: &T) -> Result<Vec<u8>> {
    let body = postcard::to_stdvec(state).map_err(Error::Encode)?;
    let mut file = Vec::with_capacity(HEADER_LEN + body.len() + CHECKSUM_LEN);
    file.extend_from_slice(&MAGIC);
    file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&(body.len() as u64).to_le_bytes());
    file.extend_from_slice(&body);
    let checksum = CRC.checksum(&file);
    file.extend_from_slice(&checksum.to_le_bytes());
    Ok(file)
}

/// The state in `file`, after checking that it is a whole, intact
/// snapshot of this format version.
pub fn decode<T: DeserializeOwned>(file: &[u8]) -> Result<T> {
    let magic = file.get(..MAGIC.len()).ok_or(Error::NotASnapshot)?;
    if magic != MAGIC {
        return Err(Error::NotASnapshot);
    }
    let header = file.get(..HEADER_LEN).ok_or_else(|| Error::Truncated {
        missing: (HEADER_LEN - file.len()) as u64,
    })?;
    let version = u32::from_le_bytes(le_bytes(&header[MAGIC.len()..]));
    if version != FORMAT_VERSION {
        return Err(Error::Version {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let body_len = u64::from_le_bytes(le_bytes(&header[MAGIC.len() + 4..]));
    let expected = body_len.saturating_add((HEADER_LEN + CHECKSUM_LEN) as u64);
    let actual = file.len() as u64;
    if actual < expected {
        return Err(Error::Truncated {
            missing: expected - actual,
        });
    }
    if actual > expected {
        return Err(Error::TrailingBytes {
            extra: actual - expected,
        });
    }
    // Both lengths fit in memory: `expected` equals the file's length.
    let checked_len = file.len() - CHECKSUM_LEN;
    let found = u64::from_le_bytes(le_bytes(&file[checked_len..]));
    let computed = CRC.checksum(&file[..checked_len]);
    if found != computed {
        return Err(Error::Checksum { found, computed });
    }
    let (state, rest) =
        postcard::take_from_bytes(&file[HEADER_LEN..checked_len]).map_err(Error::Decode)?;
    if !rest.is_empty() {
        return Err(Error::Decode(postcard::Error::DeserializeBadEncoding));
    }
    Ok(state)
}

/// The first N bytes of `bytes` as an array; callers pass at least N.
fn le_bytes<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Machine {
        name: String,
        registers: Vec<u64>,
        flag: bool,
    }

    fn machine() -> Machine {
        Machine {
            name: "guest".into(),
            registers: vec![1, u64::MAX, 0x1234],
            flag: true,
        }
    }

    #[test]
    fn a_state_comes_back_as_it_was_written() {
        let file = encode(&machine()).unwrap();
        assert_eq!(&file[..8], b"PTSMSNAP");
        assert_eq!(decode::<Machine>(&file).unwrap(), machine());
    }

    #[test]
    fn another_file_is_not_a_snapshot() {
        for file in [&b""[..], b"PTSM", b"\x7fELF\x02\x01\x01\0\0\0\0\0"] {
            assert!(matches!(decode::<Machine>(file), Err(Error::NotASnapshot)));
        }
    }

    #[test]
    fn another_format_version_is_refused_by_number() {
        let mut file = encode(&machine()).unwrap();
        file[8..12].copy_from_slice(&7u32.to_le_bytes());
        let err = decode::<Machine>(&file).unwrap_err();
        assert!(matches!(
            err,
            Error::Version {
                found: 7,
                supported: FORMAT_VERSION
            }
        ));
        assert!(err.to_string().contains("version 7"), "{err}");
    }

    #[test]
    fn every_truncation_is_refused() {
        let file = encode(&machine()).unwrap();
        for len in MAGIC.len()..file.len() {
            let err = decode::<Machine>(&file[..len]).unwrap_err();
            assert!(matches!(err, Error::Truncated { .. }), "{len}: {err}");
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(matches!(
            decode::<Machine>(&longer),
            Err(Error::TrailingBytes { extra: 1 })
        ));
    }

    #[test]
    fn every_flipped_bit_after_the_header_is_caught() {
        let file = encode(&machine()).unwrap();
        for byte in HEADER_LEN..file.len() {
            for bit in 0..8 {
                let mut bad = file.clone();
                bad[byte] ^= 1 << bit;
                let err = decode::<Machine>(&bad).unwrap_err();
                assert!(matches!(err, Error::Checksum { .. }), "{byte}.{bit}: {err}");
            }
        }
    }

    #[test]
    fn a_huge_length_is_truncation_not_a_panic() {
        let mut file = encode(&machine()).unwrap();
        file[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode::<Machine>(&file),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn a_state_of_another_shape_does_not_decode() {
        #[derive(Debug, Serialize, Deserialize)]
        struct Other {
            registers: Vec<String>,
        }
        let file = encode(&machine()).unwrap();
        assert!(matches!(decode::<Other>(&file), Err(Error::Decode(_))));
    }
}
