//! A snapshot's memory file: guest RAM region after region, as one file
//! the restored guest maps private. Pages of zeros are left as holes, so
//! the file costs the disk only what the guest wrote, and a restored
//! guest reads them as zeros without touching the disk. A Diff snapshot's
//! holds only the dirty pages, each at its place.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use vm_memory::{GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};

use super::dirty_pages::DirtyPages;
use crate::memory::GuestMemoryMmap;

/// The unit of the zero test and of the dirty bitmaps: the host's base page.
const PAGE: usize = 4096;

/// Writes every RAM region of `memory`, in order, to a new file at
/// `path` (replacing one there): a Full snapshot's memory file.
pub(crate) fn write_memory(memory: &GuestMemoryMmap, path: &Path) -> io::Result<()> {
    write_regions(memory, path, |_, file, offset, bytes| {
        write_sparse(file, offset, bytes)
    })
}

/// Writes the pages `dirty` marks to a new file at `path`, each at its
/// place in a file of the whole RAM's size, with holes everywhere else:
/// a Diff snapshot's memory file, to lay over the memory file of the
/// snapshot before it. A dirty page of zeros is written too (as data),
/// since the older file may hold something else there.
pub(crate) fn write_dirty_memory(
    memory: &GuestMemoryMmap,
    dirty: &DirtyPages,
    path: &Path,
) -> io::Result<()> {
    write_regions(memory, path, |index, file, offset, bytes| {
        for (first, count) in dirty.runs(index) {
            let start = first.saturating_mul(PAGE);
            let end = first.saturating_add(count).saturating_mul(PAGE);
            let pages = bytes.get(start..end.min(bytes.len())).ok_or_else(|| {
                io::Error::other(format!("dirty page {first} is past its RAM region"))
            })?;
            file.write_all_at(pages, offset + start as u64)?;
        }
        Ok(())
    })
}

/// A new memory file at `path` of the whole RAM's size, each region's
/// bytes handed to `write(index, file, offset, bytes)` in turn.
fn write_regions(
    memory: &GuestMemoryMmap,
    path: &Path,
    mut write: impl FnMut(usize, &File, u64, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let mut total = 0u64;
    for (index, region) in memory.iter().enumerate() {
        let len =
            usize::try_from(region.len()).map_err(|_| io::Error::other("region too large"))?;
        let host = region
            .get_host_address(MemoryRegionAddress(0))
            .map_err(|e| io::Error::other(e.to_string()))?;
        // SAFETY: the region is a live mapping of `len` bytes that the
        // machine keeps while it is paused; no vCPU or device worker runs,
        // so nothing writes it while it is read.
        let bytes = unsafe { std::slice::from_raw_parts(host.cast_const(), len) };
        write(index, &file, total, bytes)?;
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

    /// The allocated extents of the file at `path`: (offset, length),
    /// from SEEK_DATA and SEEK_HOLE.
    fn data_extents(path: &Path) -> Vec<(u64, u64)> {
        use std::os::fd::AsRawFd;
        let file = File::open(path).unwrap();
        let len = libc::off_t::try_from(file.metadata().unwrap().len()).unwrap();
        let fd = file.as_raw_fd();
        let mut extents = Vec::new();
        let mut at = 0;
        while at < len {
            // SAFETY: lseek on a file this test opened.
            let data = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
            if data < 0 {
                break;
            }
            // SAFETY: as above.
            let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
            extents.push((data as u64, (hole - data) as u64));
            at = hole;
        }
        extents
    }

    #[test]
    fn a_diff_holds_the_dirty_pages_zeros_included_and_nothing_else() {
        let size = 64 << 20;
        let ram = create_guest_memory(size, HugePages::HostPolicy).unwrap();
        let hypervisor = hypervisor::Hypervisor::open(Path::new("/dev/kvm")).unwrap();
        let vm = hypervisor.create_vm().unwrap();
        // Written before the last snapshot: not in the diff.
        ram.memory
            .write_obj(0x11u8, GuestAddress(0x10_0000))
            .unwrap();
        DirtyPages::take(&vm, &ram.memory, false).unwrap();
        // Written after it: a page with a value, and one cleared again.
        ram.memory
            .write_obj(0x22u8, GuestAddress(0x20_0010))
            .unwrap();
        ram.memory.write_obj(0u8, GuestAddress(0x30_0000)).unwrap();
        let dirty = DirtyPages::take(&vm, &ram.memory, false).unwrap();
        let path = std::env::temp_dir().join(format!("pointsman-diff-{}", std::process::id()));
        write_dirty_memory(&ram.memory, &dirty, &path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        let extents = data_extents(&path);
        // The file system may allocate in blocks larger than a page.
        for page in [0x20_0000u64, 0x30_0000] {
            assert!(
                extents
                    .iter()
                    .any(|&(at, len)| at <= page && page + PAGE as u64 <= at + len),
                "page {page:#x} is not data: {extents:x?}"
            );
        }
        assert!(
            !extents
                .iter()
                .any(|&(at, len)| at <= 0x10_0000 && 0x10_0000 < at + len),
            "a clean page was written: {extents:x?}"
        );
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes[0x20_0010], 0x22);
        assert_eq!(bytes[0x10_0000], 0, "a hole reads as zeros");
        std::fs::remove_file(&path).unwrap();
    }
}
