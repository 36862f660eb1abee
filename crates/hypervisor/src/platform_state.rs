//! What KVM holds of a VM as a whole that its guest can observe, its
//! in-kernel platform: the PICs and IOAPIC, the PIT and the kvm-clock.
//! Saved and put back with the vCPUs' state ([`crate::VcpuState`]) for
//! snapshots.

use kvm_bindings::{
    kvm_clock_data, kvm_irqchip, kvm_pit_state2, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::vm::Vm;

/// The VM-wide state of the in-kernel devices, as KVM keeps it.
#[derive(Serialize, Deserialize)]
pub struct PlatformState {
    pub pic_master: kvm_irqchip,
    pub pic_slave: kvm_irqchip,
    pub ioapic: kvm_irqchip,
    pub pit: kvm_pit_state2,
    /// kvm-clock's value: restored as it was, so the guest's clock goes
    /// on from where it stopped rather than jumping over the time the VM
    /// spent saved.
    pub clock: kvm_clock_data,
}

impl Vm {
    /// Reads the irqchips, the PIT and the clock. The vCPUs must be out of
    /// `KVM_RUN`, or the state read is a moving target.
    pub fn save_platform(&self) -> Result<PlatformState> {
        Ok(PlatformState {
            pic_master: self.irqchip(KVM_IRQCHIP_PIC_MASTER)?,
            pic_slave: self.irqchip(KVM_IRQCHIP_PIC_SLAVE)?,
            ioapic: self.irqchip(KVM_IRQCHIP_IOAPIC)?,
            pit: self.fd().get_pit2().map_err(Error::ioctl("KVM_GET_PIT2"))?,
            clock: self
                .fd()
                .get_clock()
                .map_err(Error::ioctl("KVM_GET_CLOCK"))?,
        })
    }

    /// Puts `state` back into a VM whose platform
    /// ([`Vm::create_x86_platform`]) exists, before its vCPUs run.
    pub fn restore_platform(&self, state: &PlatformState) -> Result<()> {
        for chip in [&state.pic_master, &state.pic_slave, &state.ioapic] {
            self.fd()
                .set_irqchip(chip)
                .map_err(Error::ioctl("KVM_SET_IRQCHIP"))?;
        }
        self.fd()
            .set_pit2(&state.pit)
            .map_err(Error::ioctl("KVM_SET_PIT2"))?;
        // The flags KVM_GET_CLOCK reports (TSC_STABLE, REALTIME, HOST_TSC)
        // describe that moment; KVM_SET_CLOCK takes only the value here.
        let clock = kvm_clock_data {
            flags: 0,
            ..state.clock
        };
        self.fd()
            .set_clock(&clock)
            .map_err(Error::ioctl("KVM_SET_CLOCK"))
    }

    fn irqchip(&self, chip_id: u32) -> Result<kvm_irqchip> {
        let mut chip = kvm_irqchip {
            chip_id,
            ..Default::default()
        };
        self.fd()
            .get_irqchip(&mut chip)
            .map_err(Error::ioctl("KVM_GET_IRQCHIP"))?;
        Ok(chip)
    }
}

#[cfg(test)]
mod tests {
    use kvm_bindings::kvm_pit_state2;

    use crate::test_utils::vm_with_irqchip;

    #[test]
    fn the_irqchips_pit_and_clock_come_back() {
        let vm = vm_with_irqchip();
        let mut state = vm.save_platform().unwrap();
        // Something a fresh VM would not have: a PIT channel's count and
        // a clock well past zero.
        state.pit.channels[0].count = 0x1234;
        state.clock.clock += 5_000_000_000;
        vm.restore_platform(&state).unwrap();
        let text = serde_json::to_vec(&state).unwrap();

        let other = vm_with_irqchip();
        let reread: super::PlatformState = serde_json::from_slice(&text).unwrap();
        other.restore_platform(&reread).unwrap();
        let again = other.save_platform().unwrap();
        let count = |p: &kvm_pit_state2| p.channels[0].count;
        assert_eq!(count(&again.pit), 0x1234);
        assert!(
            again.clock.clock >= state.clock.clock,
            "the clock went back"
        );
        let ioapic = |c: &kvm_bindings::kvm_irqchip| {
            // SAFETY: chip_id says which union member KVM filled: the IOAPIC.
            unsafe { c.chip.ioapic.id }
        };
        assert_eq!(ioapic(&again.ioapic), ioapic(&state.ioapic));
        let pic = |c: &kvm_bindings::kvm_irqchip| {
            // SAFETY: chip_id says which union member KVM filled: a PIC.
            unsafe { c.chip.pic.imr }
        };
        assert_eq!(pic(&again.pic_master), pic(&state.pic_master));
        assert_eq!(pic(&again.pic_slave), pic(&state.pic_slave));
    }
}
