//! The guest's VM generation ID: a fresh random one at each boot, and a
//! new one at each restore of a snapshot, which the guest hears of at
//! once through the ACPI generic event device's interrupt (and, under
//! Linux 5.18 and later, reseeds its random number generator for).

use arch::x86_64::vmgenid::{write_generation_id, GenerationId};
use vmm_sys_util::eventfd::EventFd;

use crate::memory::GuestMemoryMmap;
use crate::{Error, Result};

/// Writes a fresh random generation ID into the guest's memory.
pub(crate) fn write_fresh(memory: &GuestMemoryMmap) -> Result<()> {
    let mut id = GenerationId::default();
    virtio::rng::getrandom(&mut id).map_err(|source| Error::Host {
        what: "read random bytes for the VM generation ID",
        source,
    })?;
    write_generation_id(memory, &id)?;
    Ok(())
}

/// Gives a restored guest a new generation ID and tells it so (an edge on
/// the GED's line, `ged_irq`'s irqfd).
pub(crate) fn renew(memory: &GuestMemoryMmap, ged_irq: &EventFd) -> Result<()> {
    write_fresh(memory)?;
    ged_irq.write(1).map_err(|source| Error::Host {
        what: "signal the VM generation ID change",
        source,
    })
}
