//! A snapshot's memory file: guest RAM region after region, as one file
//! the restored guest maps private. Pages of zeros are left as holes, so
//! the file costs the disk only what the guest wrote, and a restored
//! guest reads them as zeros without touching the disk.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use vm_memory::{GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};

use crate::memory::GuestMemoryMmap;

/// The unit of the zero test: the host's base page.
const PAGE: usize = 4096;

/// Writes every RAM region of `memory`, in order, to a new file at
/// `path` (replacing one there).
pub(crate) fn write_memory(memory: &GuestMemoryMmap, path: &Path) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let mut total = 0u64;
    for region in memory.iter() {
        let len =
            usize::try_from(region.len()).map_err(|_| io::Error::other("region too large"))?;
        let host = region
            .get_host_address(MemoryRegionAddress(0))
            .map_err(|e| io::Error::other(e.to_string()))?;
        // SAFETY: the region is a live mapping of `len` bytes that the
        // machine keeps while it is paused; no vCPU or device worker runs,
        // so nothing writes it while it is read.
        let bytes = unsafe { std::slice::from_raw_parts(host.cast_const(), len) };
        write_sparse(&file, total, bytes)?;
        total += region.len();
    }
    // The trailing holes, if any, still count in the file's length.
    file.set_len(total)?;
    file.sync_all()
}

/// Writes `bytes` at `offset` in `file`, one positioned write per run of
/// pages that are not all zeros: the pages of zeros between them are
/// left as holes, without a system call each.
fn write_sparse(file: &File, offset: u64, bytes: &[u8]) -> io::Result<()> {
    let mut run_start = None;
    for (index, page) in bytes.chunks(PAGE).enumerate() {
        let zero = page.iter().all(|&b| b == 0);
        match (zero, run_start) {
            (false, None) => run_start = Some(index * PAGE),
            (true, Some(start)) => {
                file.write_all_at(&bytes[start..index * PAGE], offset + start as u64)?;
                run_start = None;
            }
            _ => {}
        }
    }
    if let Some(start) = run_start {
        file.write_all_at(&bytes[start..], offset + start as u64)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use vm_memory::{Bytes, GuestAddress};

    use super::*;
    use crate::memory::{create_guest_memory, map_memory_file};
    use crate::HugePages;

    #[test]
    fn ram_comes_back_from_its_file_and_zeros_cost_no_disk() {
        let size = 64 << 20;
        let ram = create_guest_memory(size, HugePages::HostPolicy).unwrap();
        let stamps = [
            (0u64, 0x11u8),
            (0x1234, 0x22),
            (size - 1, 0x33),
            (40 << 20, 0x44),
        ];
        for (addr, value) in stamps {
            ram.memory.write_obj(value, GuestAddress(addr)).unwrap();
        }
        let path = std::env::temp_dir().join(format!("pointsman-mem-{}", std::process::id()));
        write_memory(&ram.memory, &path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), size);
        // Three pages (the first two stamps share one) in 512-byte blocks.
        assert!(
            meta.blocks() * 512 <= 8 * PAGE as u64,
            "{} blocks",
            meta.blocks()
        );

        let file = File::open(&path).unwrap();
        let restored = map_memory_file(&file, size, HugePages::HostPolicy).unwrap();
        for (addr, value) in stamps {
            let got: u8 = restored.memory.read_obj(GuestAddress(addr)).unwrap();
            assert_eq!(got, value, "at {addr:#x}");
        }
        let zero: u64 = restored.memory.read_obj(GuestAddress(0x10_0000)).unwrap();
        assert_eq!(zero, 0);
        std::fs::remove_file(&path).unwrap();
    }
}
