//! Boots an untrusted bzImage: the setup header (setup sectors, protocol
//! version, load flags, `code32_start`, `init_size`, `initrd_addr_max`)
//! and the payload come from the fuzzer. A bad file must end in an error,
//! never a panic, an overflow or a write outside guest RAM.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pointsman_fuzz::boot_kernel;

/// Where the setup header's "HdrS" magic sits, and how long a file must
/// be for the loader to look at it.
const MAGIC_AT: usize = 0x202;
const MIN_LEN: usize = 0x241;

fuzz_target!(|data: &[u8]| {
    // Every input takes the bzImage path: the magic is not worth finding.
    let mut image = data.to_vec();
    if image.len() < MIN_LEN {
        image.resize(MIN_LEN, 0);
    }
    image[MAGIC_AT..MAGIC_AT + 4].copy_from_slice(b"HdrS");
    boot_kernel(&image);
});
