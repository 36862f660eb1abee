//! A snapshot file is the user's to hand over (`PUT /snapshot/load`,
//! `--restore`): reading one must never panic, whatever its bytes, and
//! what it refuses it refuses with a reason.
//!
//! Raw bytes rarely pass the magic number and the checksum, so inputs
//! whose first byte is odd get a valid header and checksum around the
//! rest: the fuzzer then reaches the state's decoding and the devices'
//! checks of their saved state.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let file = if mode & 1 == 1 {
        wrapped(rest)
    } else {
        rest.to_vec()
    };
    if let Err(why) = vmm::describe_snapshot(&file) {
        assert!(!why.is_empty());
    }
});

/// `body` as the state of a well-formed snapshot file: the same layout
/// `snapshot::encode` writes (magic, version, length, body, CRC-64).
fn wrapped(body: &[u8]) -> Vec<u8> {
    use crc::{Crc, CRC_64_ECMA_182};
    let mut file = Vec::with_capacity(body.len() + 28);
    file.extend_from_slice(&snapshot::MAGIC);
    file.extend_from_slice(&snapshot::FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&(body.len() as u64).to_le_bytes());
    file.extend_from_slice(body);
    let crc = Crc::<u64>::new(&CRC_64_ECMA_182).checksum(&file);
    file.extend_from_slice(&crc.to_le_bytes());
    file
}
