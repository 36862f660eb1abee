//! Boots an untrusted ELF `vmlinux`: headers, program headers, PVH notes
//! and segment addresses all come from the fuzzer. A bad file must end in
//! an error, never a panic, an overflow or a write outside guest RAM.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pointsman_fuzz::boot_kernel;

fuzz_target!(|data: &[u8]| {
    // Every input takes the ELF path: the magic is not worth finding.
    let mut image = data.to_vec();
    if image.len() >= 4 {
        image[..4].copy_from_slice(b"\x7fELF");
    }
    boot_kernel(&image);
});
