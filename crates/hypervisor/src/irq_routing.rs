//! KVM's GSI routing table: the in-kernel irqchip's default routes plus the
//! MSI routes the VMM adds.
//!
//! KVM_SET_GSI_ROUTING replaces the whole table, so every commit must carry
//! the routes KVM_CREATE_IRQCHIP installed as well, or the PIC and IOAPIC
//! lines stop working. [`IrqRoutes`] keeps the MSI routes and builds the
//! full table; building it is a pure function so it can be tested without
//! KVM.

use std::collections::BTreeMap;

use kvm_bindings::{
    kvm_irq_routing_entry, KvmIrqRouting, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_MAX_IRQ_ROUTES,
};

use crate::error::{Error, Result};

/// GSIs below this are the IOAPIC's pins; the first free for MSI.
pub const MSI_GSI_BASE: u32 = IOAPIC_PINS;

/// One past the highest GSI KVM accepts (the kernel's KVM_MAX_IRQ_ROUTES,
/// which also bounds the number of routes).
#[allow(clippy::cast_possible_truncation)] // 4096 fits.
pub const MAX_GSI: u32 = KVM_MAX_IRQ_ROUTES as u32;

const IOAPIC_PINS: u32 = 24;
/// The two cascaded 8259s cover ISA IRQs 0..16.
const PIC_LINES: u32 = 16;
/// Routes in the default table: every PIC line and every IOAPIC pin.
const DEFAULT_ROUTES: usize = (PIC_LINES + IOAPIC_PINS) as usize;

/// Where an MSI route's interrupt write goes and what it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MsiRoute {
    pub address: u64,
    pub data: u32,
}

/// The routing table the VMM last committed (or is about to commit).
#[derive(Debug, Default)]
pub(crate) struct IrqRoutes {
    // Ordered so the table KVM receives is deterministic.
    msi: BTreeMap<u32, MsiRoute>,
}

impl IrqRoutes {
    /// Adds or replaces the MSI route of `gsi` and returns the route it
    /// replaced, so a failed commit can be rolled back.
    pub fn insert_msi(&mut self, gsi: u32, route: MsiRoute) -> Result<Option<MsiRoute>> {
        if !(MSI_GSI_BASE..MAX_GSI).contains(&gsi) {
            return Err(Error::MsiGsiOutOfRange { gsi });
        }
        if !self.msi.contains_key(&gsi) && DEFAULT_ROUTES + self.msi.len() >= KVM_MAX_IRQ_ROUTES {
            return Err(Error::RoutingTableFull {
                max: KVM_MAX_IRQ_ROUTES,
            });
        }
        Ok(self.msi.insert(gsi, route))
    }

    /// Removes the MSI route of `gsi`, returning it if there was one.
    pub fn remove_msi(&mut self, gsi: u32) -> Option<MsiRoute> {
        self.msi.remove(&gsi)
    }

    /// Puts `previous` back as the route of `gsi` (or none), undoing an
    /// insert or remove whose commit failed.
    pub fn restore_msi(&mut self, gsi: u32, previous: Option<MsiRoute>) {
        match previous {
            Some(route) => self.msi.insert(gsi, route),
            None => self.msi.remove(&gsi),
        };
    }

    /// The whole table: the irqchip defaults, then the MSI routes.
    pub fn entries(&self) -> Vec<kvm_irq_routing_entry> {
        let mut entries = default_entries();
        entries.extend(self.msi.iter().map(|(&gsi, route)| msi_entry(gsi, *route)));
        entries
    }

    /// The table in the form KVM_SET_GSI_ROUTING takes.
    pub fn to_kvm(&self) -> Result<KvmIrqRouting> {
        let full = || Error::RoutingTableFull {
            max: KVM_MAX_IRQ_ROUTES,
        };
        KvmIrqRouting::from_entries(&self.entries()).map_err(|_| full())
    }
}

/// The routes KVM_CREATE_IRQCHIP installs (the kernel's
/// kvm_setup_default_irq_routing): GSIs 0..16 go to both the PIC (master
/// for 0..8, slave for 8..16, pin = GSI % 8) and the IOAPIC pin of the same
/// number, GSIs 16..24 to the IOAPIC only. GSI 2 is routed like the others:
/// Pointsman's MADT has no interrupt source override, so unlike QEMU it does
/// not move the timer from GSI 0 to IOAPIC pin 2.
fn default_entries() -> Vec<kvm_irq_routing_entry> {
    let mut entries = Vec::with_capacity(DEFAULT_ROUTES);
    for gsi in 0..IOAPIC_PINS {
        if gsi < PIC_LINES {
            let chip = if gsi < 8 {
                KVM_IRQCHIP_PIC_MASTER
            } else {
                KVM_IRQCHIP_PIC_SLAVE
            };
            entries.push(irqchip_entry(gsi, chip, gsi % 8));
        }
        entries.push(irqchip_entry(gsi, KVM_IRQCHIP_IOAPIC, gsi));
    }
    entries
}

fn irqchip_entry(gsi: u32, irqchip: u32, pin: u32) -> kvm_irq_routing_entry {
    let mut entry = kvm_irq_routing_entry {
        gsi,
        type_: KVM_IRQ_ROUTING_IRQCHIP,
        ..Default::default()
    };
    entry.u.irqchip.irqchip = irqchip;
    entry.u.irqchip.pin = pin;
    entry
}

fn msi_entry(gsi: u32, route: MsiRoute) -> kvm_irq_routing_entry {
    let mut entry = kvm_irq_routing_entry {
        gsi,
        type_: KVM_IRQ_ROUTING_MSI,
        ..Default::default()
    };
    entry.u.msi.address_lo = (route.address & 0xffff_ffff) as u32;
    entry.u.msi.address_hi = (route.address >> 32) as u32;
    entry.u.msi.data = route.data;
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn irqchip_of(entry: &kvm_irq_routing_entry) -> (u32, u32, u32) {
        assert_eq!(entry.type_, KVM_IRQ_ROUTING_IRQCHIP);
        // SAFETY: the type says the irqchip member is the one written.
        let chip = unsafe { entry.u.irqchip };
        (entry.gsi, chip.irqchip, chip.pin)
    }

    fn msi_of(entry: &kvm_irq_routing_entry) -> (u32, u32, u32, u32) {
        assert_eq!(entry.type_, KVM_IRQ_ROUTING_MSI);
        // SAFETY: the type says the msi member is the one written.
        let msi = unsafe { entry.u.msi };
        (entry.gsi, msi.address_lo, msi.address_hi, msi.data)
    }

    #[test]
    fn defaults_cover_pic_and_ioapic() {
        let entries = IrqRoutes::default().entries();
        assert_eq!(entries.len(), 40);
        let chips: Vec<_> = entries.iter().map(irqchip_of).collect();
        let ioapic: Vec<_> = chips.iter().filter(|c| c.1 == KVM_IRQCHIP_IOAPIC).collect();
        assert_eq!(ioapic.len(), 24);
        assert!(ioapic.iter().all(|&&(gsi, _, pin)| gsi == pin));
        let pic: Vec<_> = chips.iter().filter(|c| c.1 != KVM_IRQCHIP_IOAPIC).collect();
        assert_eq!(pic.len(), 16);
        for &&(gsi, chip, pin) in &pic {
            assert!(gsi < 16);
            assert_eq!(pin, gsi % 8);
            let expected = if gsi < 8 {
                KVM_IRQCHIP_PIC_MASTER
            } else {
                KVM_IRQCHIP_PIC_SLAVE
            };
            assert_eq!(chip, expected);
        }
        assert!(chips.contains(&(2, KVM_IRQCHIP_PIC_MASTER, 2)));
        assert!(chips.contains(&(2, KVM_IRQCHIP_IOAPIC, 2)));
    }

    #[test]
    fn msi_routes_follow_defaults() {
        let mut routes = IrqRoutes::default();
        let a = MsiRoute {
            address: 0x1_fee0_1000,
            data: 0x4041,
        };
        let b = MsiRoute {
            address: 0xfee0_0000,
            data: 0x31,
        };
        assert_eq!(routes.insert_msi(30, a).unwrap(), None);
        assert_eq!(routes.insert_msi(24, b).unwrap(), None);
        assert_eq!(routes.insert_msi(30, b).unwrap(), Some(a));
        let entries = routes.entries();
        assert_eq!(entries.len(), 42);
        assert_eq!(msi_of(&entries[40]), (24, 0xfee0_0000, 0, 0x31));
        assert_eq!(msi_of(&entries[41]), (30, 0xfee0_0000, 0, 0x31));

        routes.restore_msi(30, Some(a));
        assert_eq!(msi_of(&routes.entries()[41]), (30, 0xfee0_1000, 1, 0x4041));
        assert_eq!(routes.remove_msi(24), Some(b));
        assert_eq!(routes.remove_msi(24), None);
        assert_eq!(routes.entries().len(), 41);
        assert_eq!(routes.to_kvm().unwrap().as_slice().len(), 41);
    }

    #[test]
    fn gsi_outside_msi_range_is_refused() {
        let mut routes = IrqRoutes::default();
        let route = MsiRoute {
            address: 0xfee0_0000,
            data: 0,
        };
        for gsi in [0, 23, MAX_GSI, u32::MAX] {
            assert!(matches!(
                routes.insert_msi(gsi, route),
                Err(Error::MsiGsiOutOfRange { .. })
            ));
        }
        assert!(routes.insert_msi(MAX_GSI - 1, route).is_ok());
    }

    #[test]
    fn table_never_exceeds_kvm_limit() {
        let mut routes = IrqRoutes::default();
        let route = MsiRoute {
            address: 0xfee0_0000,
            data: 0,
        };
        let room = KVM_MAX_IRQ_ROUTES - DEFAULT_ROUTES;
        for gsi in (MSI_GSI_BASE..MAX_GSI).take(room) {
            routes.insert_msi(gsi, route).unwrap();
        }
        assert!(matches!(
            routes.insert_msi(MAX_GSI - 1, route),
            Err(Error::RoutingTableFull { .. })
        ));
        // Replacing an existing route does not grow the table.
        assert!(routes.insert_msi(MSI_GSI_BASE, route).is_ok());
        assert_eq!(
            routes.to_kvm().unwrap().as_slice().len(),
            KVM_MAX_IRQ_ROUTES
        );
    }
}
