//! The VM generation ID in guest memory: 16 bytes the guest's `vmgenid`
//! driver reads at [`VMGENID_START`] (the ACPI `VGEN` device's `ADDR`
//! says where). The VMM writes a fresh random one at each boot and at each
//! restore of a snapshot, then tells the guest through the GED interrupt,
//! so that clones of one snapshot do not go on with the same random state.

use vm_memory::{Bytes, GuestAddress, GuestMemory};

use crate::layout::{RESET_VECTOR, VMGENID_LEN, VMGENID_START};
use crate::{Error, Result};

/// One generation ID (a GUID's 16 bytes).
pub type GenerationId = [u8; 16];

// The ID fills its slot, just below the reset vector code, clear of it.
const _: () = assert!(
    VMGENID_LEN == std::mem::size_of::<GenerationId>() as u64
        && VMGENID_START + VMGENID_LEN <= RESET_VECTOR
);

/// Writes `id` where the guest reads its generation ID.
pub fn write_generation_id<M: GuestMemory>(mem: &M, id: &GenerationId) -> Result<()> {
    mem.write_slice(id, GuestAddress(VMGENID_START))
        .map_err(|_| Error::GuestWrite {
            what: "VM generation ID",
            addr: VMGENID_START,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    #[test]
    fn the_id_lands_at_its_address() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 2 << 20)]).unwrap();
        let id: GenerationId = *b"0123456789abcdef";
        write_generation_id(&mem, &id).unwrap();
        let mut read = [0u8; 16];
        mem.read_slice(&mut read, GuestAddress(0xf_ffe0)).unwrap();
        assert_eq!(read, id);
    }
}
