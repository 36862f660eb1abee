//! Host mappings for guest RAM that start on a 2 MiB boundary.
//!
//! KVM can back a guest 2 MiB page with one large page of its own (one
//! nested page-table entry instead of 512) only when the guest address and
//! the host address agree modulo 2 MiB, and the host kernel can only give
//! transparent huge pages to aligned 2 MiB ranges. `vm-memory` maps RAM
//! wherever `mmap` puts it, which older kernels do not align, so this
//! module reserves a little more address space than needed and maps RAM at
//! the first 2 MiB boundary inside it; `vm-memory` then gets the mapping
//! as a raw pointer and this type unmaps it. Alignment costs nothing when
//! no huge page comes (the host's THP policy and `--memory ...,thp=` say).

use std::fs::File;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::null_mut;

use vm_memory::bitmap::AtomicBitmap;
use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{GuestAddress, GuestRegionMmap};

/// The huge page size the alignment is for.
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// The page the dirty bitmaps count in: KVM's dirty log's (the host's
/// base page), so that the two can be ORed word for word.
pub(crate) const DIRTY_PAGE: NonZeroUsize = NonZeroUsize::new(4096).unwrap();

/// How RAM is mapped.
const PROT: libc::c_int = libc::PROT_READ | libc::PROT_WRITE;
/// Private anonymous memory, not charged against overcommit up front: an
/// untouched guest page costs the host nothing, as with `vm-memory`'s own
/// mappings.
const FLAGS: libc::c_int = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
/// A file mapped private: copy-on-write, the file left as it is.
const FILE_FLAGS: libc::c_int = libc::MAP_PRIVATE | libc::MAP_NORESERVE;

/// One 2 MiB-aligned anonymous mapping; unmapped on drop.
#[derive(Debug)]
pub(crate) struct RamMapping {
    addr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain process memory, not tied to the thread that
// made it; this type only unmaps it.
unsafe impl Send for RamMapping {}
// SAFETY: as above; `&RamMapping` gives no access to the memory.
unsafe impl Sync for RamMapping {}

impl RamMapping {
    /// Maps `len` bytes (a multiple of the page size) at a 2 MiB boundary,
    /// with `advice` (`MADV_HUGEPAGE` or `MADV_NOHUGEPAGE`) if given.
    pub(crate) fn new(len: usize, advice: Option<libc::c_int>) -> io::Result<RamMapping> {
        Self::map(len, advice, None)
    }

    /// Maps `len` bytes of `file` from `offset` (both multiples of the
    /// page size), private and copy-on-write: the guest reads the file's
    /// pages through the page cache, shared with every other mapping of
    /// it, and a page it writes becomes its own. A restored guest's RAM.
    pub(crate) fn from_file(
        file: &File,
        offset: u64,
        len: usize,
        advice: Option<libc::c_int>,
    ) -> io::Result<RamMapping> {
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
        Self::map(len, advice, Some((file.as_raw_fd(), offset)))
    }

    fn map(
        len: usize,
        advice: Option<libc::c_int>,
        file: Option<(RawFd, libc::off_t)>,
    ) -> io::Result<RamMapping> {
        let reserve = len
            .checked_add(HUGE_PAGE)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        // SAFETY: a new PROT_NONE mapping at an address of the kernel's
        // choosing; it touches no existing memory.
        let base = unsafe { libc::mmap(null_mut(), reserve, libc::PROT_NONE, FLAGS, -1, 0) };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = base.cast::<u8>();
        let head = (HUGE_PAGE - (base as usize) % HUGE_PAGE) % HUGE_PAGE;
        // SAFETY: `head < HUGE_PAGE`, so the result stays in the reservation.
        let start = unsafe { base.add(head) };
        let (flags, fd, offset) = match file {
            Some((fd, offset)) => (FILE_FLAGS, fd, offset),
            None => (FLAGS, -1, 0),
        };
        // SAFETY: [start, start + len) lies inside the reservation made
        // above, which this function owns; MAP_FIXED replaces only it. A
        // file mapping is private: the file never changes through it.
        let mapped =
            unsafe { libc::mmap(start.cast(), len, PROT, flags | libc::MAP_FIXED, fd, offset) };
        let tail = reserve - head - len;
        // SAFETY: the head and tail are the unused ends of the reservation
        // (either may be empty, which munmap rejects harmlessly); after a
        // failed MAP_FIXED the whole reservation goes.
        unsafe {
            if mapped == libc::MAP_FAILED {
                let error = io::Error::last_os_error();
                libc::munmap(base.cast(), reserve);
                return Err(error);
            }
            if head > 0 {
                libc::munmap(base.cast(), head);
            }
            if tail > 0 {
                libc::munmap(start.add(len).cast(), tail);
            }
        }
        if let Some(advice) = advice {
            // SAFETY: advice on the mapping made above. It fails only where
            // the host kernel has no THP, and then changes nothing: ignore it.
            unsafe { libc::madvise(start.cast(), len, advice) };
        }
        Ok(RamMapping { addr: start, len })
    }

    /// A `vm-memory` region for guest address `guest` over this mapping.
    ///
    /// # Safety
    /// The region (and every clone of the guest memory holding it) must be
    /// dropped before this mapping is.
    pub(crate) unsafe fn region(
        &self,
        guest: GuestAddress,
    ) -> io::Result<GuestRegionMmap<AtomicBitmap>> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
        let dirty = AtomicBitmap::new(self.len, DIRTY_PAGE);
        // SAFETY: `addr` and `len` describe a live mapping owned by `self`,
        // which the caller keeps until the region is gone.
        let region = unsafe {
            MmapRegionBuilder::new_with_bitmap(self.len, dirty)
                .with_raw_mmap_pointer(self.addr)
                .with_mmap_prot(PROT)
                .with_mmap_flags(FLAGS)
                .build()
        }
        .map_err(|e| invalid(e.to_string()))?;
        GuestRegionMmap::new(region, guest)
            .ok_or_else(|| invalid(format!("guest region at {:#x} overflows", guest.0)))
    }

    #[cfg(test)]
    fn addr(&self) -> usize {
        self.addr as usize
    }
}

impl Drop for RamMapping {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` and is unmapped only here;
        // the safety contract of `region` keeps users away from it now.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use vm_memory::{Bytes, GuestMemoryRegion, MemoryRegionAddress};

    use super::*;

    #[test]
    fn mappings_start_on_a_huge_page_boundary() {
        for len in [4096, HUGE_PAGE, 3 * HUGE_PAGE + 4096] {
            let ram = RamMapping::new(len, None).unwrap();
            assert_eq!(ram.addr() % HUGE_PAGE, 0, "{len} bytes");
        }
    }

    #[test]
    fn regions_read_and_write_the_mapping() {
        let ram = RamMapping::new(HUGE_PAGE, Some(libc::MADV_HUGEPAGE)).unwrap();
        // SAFETY: the region is dropped at the end of the test, before `ram`.
        let region = unsafe { ram.region(GuestAddress(0x1_0000_0000)) }.unwrap();
        assert_eq!(region.len(), HUGE_PAGE as u64);
        assert_eq!(region.start_addr(), GuestAddress(0x1_0000_0000));
        region
            .write_obj(0xfeed_u32, MemoryRegionAddress(HUGE_PAGE as u64 - 4))
            .unwrap();
        let value: u32 = region
            .read_obj(MemoryRegionAddress(HUGE_PAGE as u64 - 4))
            .unwrap();
        assert_eq!(value, 0xfeed);
        assert!(region
            .write_obj(0u32, MemoryRegionAddress(HUGE_PAGE as u64))
            .is_err());
    }

    /// The `VmFlags` of the host mapping holding `addr`, from
    /// /proc/self/smaps (a neighbour with the same flags may have merged
    /// with it, so the range need not start at `addr`).
    fn vm_flags(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let holds = |line: &str| {
            let range = line.split_whitespace().next().unwrap_or("");
            let Some((start, end)) = range.split_once('-') else {
                return false;
            };
            match (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) {
                (Ok(start), Ok(end)) => (start..end).contains(&addr),
                _ => false,
            }
        };
        let mut lines = smaps.lines().skip_while(|l| !holds(l));
        lines
            .find_map(|l| l.strip_prefix("VmFlags:"))
            .unwrap_or_else(|| panic!("no mapping holds {addr:#x}"))
            .to_owned()
    }

    #[test]
    fn advice_reaches_the_host_kernel() {
        let flags = |advice| {
            let ram = RamMapping::new(HUGE_PAGE, advice).unwrap();
            let flags: Vec<String> = vm_flags(ram.addr())
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            (flags.contains(&"hg".into()), flags.contains(&"nh".into()))
        };
        assert_eq!(flags(None), (false, false));
        assert_eq!(flags(Some(libc::MADV_HUGEPAGE)), (true, false));
        assert_eq!(flags(Some(libc::MADV_NOHUGEPAGE)), (false, true));
    }

    #[test]
    fn a_file_mapping_is_private_copy_on_write() {
        let path = std::env::temp_dir().join(format!("pointsman-ram-{}", std::process::id()));
        let mut content = vec![0u8; 2 * HUGE_PAGE];
        content[HUGE_PAGE] = 0x5a;
        std::fs::write(&path, &content).unwrap();
        let file = File::open(&path).unwrap();
        // The second 2 MiB of the file, read-only on the host side.
        let ram = RamMapping::from_file(&file, HUGE_PAGE as u64, HUGE_PAGE, None).unwrap();
        assert_eq!(ram.addr() % HUGE_PAGE, 0);
        // SAFETY: the region is dropped at the end of the test, before `ram`.
        let region = unsafe { ram.region(GuestAddress(0)) }.unwrap();
        assert_eq!(region.read_obj::<u8>(MemoryRegionAddress(0)).unwrap(), 0x5a);
        region.write_obj(0xa5u8, MemoryRegionAddress(0)).unwrap();
        assert_eq!(region.read_obj::<u8>(MemoryRegionAddress(0)).unwrap(), 0xa5);
        assert_eq!(
            std::fs::read(&path).unwrap()[HUGE_PAGE],
            0x5a,
            "the file changed"
        );
        assert!(RamMapping::from_file(&file, u64::MAX - 4095, 4096, None).is_err());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn impossible_sizes_fail_cleanly() {
        assert!(RamMapping::new(usize::MAX - 4096, None).is_err());
    }
}
