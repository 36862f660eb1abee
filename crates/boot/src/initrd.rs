use std::io::{Read, Seek, SeekFrom};

use vm_memory::{Bytes, GuestAddress, ReadVolatile};

use crate::kernel::low_ram_end;
use crate::{Error, GuestMemoryMmap, Result};

const PAGE_SIZE: u64 = 0x1000;

/// Where the initrd was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitrdRegion {
    pub addr: u64,
    pub size: u64,
}

/// Loads the initrd as high in RAM below 4 GiB as `addr_max` (the boot
/// protocol's `initrd_addr_max`, the highest address the kernel can reach)
/// allows, page aligned and above the kernel's end, as boot loaders do.
pub fn load_initrd<R>(
    mem: &GuestMemoryMmap,
    image: &mut R,
    kernel_end: u64,
    addr_max: u64,
) -> Result<InitrdRegion>
where
    R: Read + Seek + ReadVolatile,
{
    let size = image.seek(SeekFrom::End(0)).map_err(Error::ReadInitrd)?;
    image.rewind().map_err(Error::ReadInitrd)?;
    let limit = low_ram_end(mem).min(addr_max.saturating_add(1));
    let too_large = Error::InitrdTooLarge {
        size,
        kernel_end,
        limit,
    };
    let addr = limit
        .checked_sub(size)
        .map(|a| a & !(PAGE_SIZE - 1))
        .filter(|&a| a >= kernel_end)
        .ok_or(too_large)?;
    let len = usize::try_from(size).map_err(|_| Error::InitrdTooLarge {
        size,
        kernel_end,
        limit,
    })?;
    mem.read_exact_volatile_from(GuestAddress(addr), image, len)
        .map_err(|e| Error::ReadInitrd(std::io::Error::other(e.to_string())))?;
    Ok(InitrdRegion { addr, size })
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use std::io::Cursor;

    const MIB: u64 = 1 << 20;

    fn mem(size: u64) -> GuestMemoryMmap {
        crate::test_memory(size as usize)
    }

    #[test]
    fn placed_page_aligned_at_top_of_ram() {
        let mem = mem(16 * MIB);
        let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let r = load_initrd(&mem, &mut Cursor::new(&data), 2 * MIB, u64::MAX).unwrap();
        assert_eq!(r.size, 5000);
        assert_eq!(r.addr % PAGE_SIZE, 0);
        assert!(r.addr + r.size <= 16 * MIB);
        assert!(r.addr >= 16 * MIB - 2 * PAGE_SIZE);
        let mut back = vec![0u8; 5000];
        mem.read_slice(&mut back, GuestAddress(r.addr)).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn respects_initrd_addr_max() {
        let mem = mem(16 * MIB);
        let r = load_initrd(&mem, &mut Cursor::new(vec![1u8; 10]), MIB, 8 * MIB - 1).unwrap();
        assert!(r.addr + r.size <= 8 * MIB);
    }

    #[test]
    fn too_large_is_an_error() {
        let mem = mem(4 * MIB);
        let data = vec![0u8; 3 * MIB as usize];
        assert!(matches!(
            load_initrd(&mem, &mut Cursor::new(data), 2 * MIB, u64::MAX),
            Err(Error::InitrdTooLarge { .. })
        ));
    }
}
