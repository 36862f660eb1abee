//! Giving guest pages back to the host: `madvise` on their host mapping.

use std::sync::OnceLock;

use vm_memory::bitmap::Bitmap;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion, MemoryRegionAddress};

use super::pages::GuestRange;
use crate::GuestMemoryMmap;

/// Why a range could not be given back.
#[derive(Debug, thiserror::Error)]
pub enum DiscardError {
    #[error("{0:#x}+{1:#x} is not inside one guest RAM region")]
    OutsideMemory(u64, u64),
    #[error("{0:#x}+{1:#x} is not aligned to the host page size")]
    Unaligned(u64, u64),
    #[error("guest memory on hugetlbfs is not given back")]
    Hugetlbfs,
    #[error("madvise failed: {0}")]
    Madvise(#[source] std::io::Error),
}

/// The host's page size in bytes.
pub fn host_page_size() -> u64 {
    static SIZE: OnceLock<u64> = OnceLock::new();
    *SIZE.get_or_init(|| {
        // SAFETY: sysconf reads a system constant and touches no memory.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(size).unwrap_or(4096).max(4096)
    })
}

/// Drops the host pages behind `range`: the host frees them (RSS falls)
/// and the guest reads zeros there next time. Private mappings are
/// dropped with `MADV_DONTNEED`, shared ones (memfd, files) with
/// `MADV_REMOVE`, which frees the backing too.
pub fn discard(mem: &GuestMemoryMmap, range: GuestRange) -> Result<(), DiscardError> {
    let outside = || DiscardError::OutsideMemory(range.addr, range.len);
    let region = mem
        .find_region(GuestAddress(range.addr))
        .ok_or_else(outside)?;
    let offset = range.addr - region.start_addr().0;
    let end = offset.checked_add(range.len).ok_or_else(outside)?;
    if end > region.len() {
        return Err(outside());
    }
    if region.is_hugetlbfs() == Some(true) {
        return Err(DiscardError::Hugetlbfs);
    }
    let host = region
        .get_host_address(MemoryRegionAddress(offset))
        .map_err(|_| outside())?;
    let len = usize::try_from(range.len).map_err(|_| outside())?;
    let page = host_page_size();
    if !(host as u64).is_multiple_of(page) || !range.len.is_multiple_of(page) {
        return Err(DiscardError::Unaligned(range.addr, range.len));
    }
    let advice = if region.flags() & libc::MAP_SHARED != 0 {
        libc::MADV_REMOVE
    } else {
        libc::MADV_DONTNEED
    };
    // SAFETY: `[host, host + len)` is inside the region's mapping (checked
    // above), which `mem` keeps mapped. Dropping its pages only changes what
    // the guest sees there (zeros); no host object lives in guest memory,
    // and every host access to it goes through volatile slices.
    let ret = unsafe { libc::madvise(host.cast(), len, advice) };
    if ret != 0 {
        return Err(DiscardError::Madvise(std::io::Error::last_os_error()));
    }
    // The pages are zeros now: a Diff snapshot must carry that over the
    // older memory file, which may hold what was there before.
    let start = usize::try_from(offset).map_err(|_| outside())?;
    region.bitmap().mark_dirty(start, len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn discarded_pages_read_back_as_zeros() {
        let page = host_page_size();
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        mem.write_obj(0xdead_beef_u32, GuestAddress(page)).unwrap();
        mem.write_obj(0xfeed_u32, GuestAddress(2 * page)).unwrap();
        let region = mem.find_region(GuestAddress(0)).unwrap();
        std::ops::Deref::deref(region).bitmap().reset();
        discard(
            &mem,
            GuestRange {
                addr: page,
                len: page,
            },
        )
        .unwrap();
        assert_eq!(mem.read_obj::<u32>(GuestAddress(page)).unwrap(), 0);
        assert_eq!(mem.read_obj::<u32>(GuestAddress(2 * page)).unwrap(), 0xfeed);
        // Zeros now, for the next Diff snapshot too; the rest stays clean.
        let bitmap = region.bitmap();
        let at = |addr: u64| usize::try_from(addr).unwrap();
        assert!(bitmap.dirty_at(at(page)) && bitmap.dirty_at(at(2 * page - 1)));
        assert!(!bitmap.dirty_at(at(2 * page)) && !bitmap.dirty_at(0));
    }

    #[test]
    fn ranges_outside_memory_or_unaligned_are_refused() {
        let page = host_page_size();
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let range = |addr, len| GuestRange { addr, len };
        assert!(matches!(
            discard(&mem, range(0x10_0000, page)),
            Err(DiscardError::OutsideMemory(..))
        ));
        assert!(matches!(
            discard(&mem, range(0xf_f000, 2 * page)),
            Err(DiscardError::OutsideMemory(..))
        ));
        assert!(matches!(
            discard(&mem, range(0, u64::MAX)),
            Err(DiscardError::OutsideMemory(..))
        ));
        assert!(matches!(
            discard(&mem, range(0x800, page)),
            Err(DiscardError::Unaligned(..))
        ));
    }

    #[test]
    fn shared_memory_is_removed() {
        // A memfd-backed region: MADV_REMOVE punches the file too.
        // SAFETY: the name is a NUL-terminated string; the fd returned is
        // checked and then owned by the File.
        let fd = unsafe { libc::memfd_create(c"balloon-test".as_ptr(), 0) };
        assert!(fd >= 0);
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        file.set_len(0x10_0000).unwrap();
        let probe = file.try_clone().unwrap();
        let blocks = || std::os::unix::fs::MetadataExt::blocks(&probe.metadata().unwrap());
        let offset = vm_memory::FileOffset::new(file, 0);
        let mem =
            GuestMemoryMmap::from_ranges_with_files([(GuestAddress(0), 0x10_0000, Some(offset))])
                .unwrap();
        let page = host_page_size();
        mem.write_obj(7u64, GuestAddress(0)).unwrap();
        assert!(blocks() > 0);
        discard(&mem, GuestRange { addr: 0, len: page }).unwrap();
        assert_eq!(blocks(), 0, "the file's page is freed too");
        assert_eq!(mem.read_obj::<u64>(GuestAddress(0)).unwrap(), 0);
    }
}
