use std::sync::atomic::{AtomicU32, Ordering};

use vmm_sys_util::eventfd::EventFd;

/// InterruptStatus bit: a queue has new used buffers.
pub const INT_VRING: u32 = 1 << 0;
/// InterruptStatus bit: the configuration space changed.
pub const INT_CONFIG: u32 = 1 << 1;

/// How a device tells its driver about used buffers and configuration
/// changes. The transport decides what that means: one interrupt line and
/// a status register for virtio-mmio, an MSI-X vector per queue for
/// virtio-pci. Device worker threads call it.
pub trait VirtioInterrupt: Send + Sync {
    /// Queue `queue` has new used buffers.
    fn signal_used_queue(&self, queue: usize);
    /// The configuration space changed.
    fn signal_config_change(&self);
}

/// A virtio-mmio device's interrupt: the status bits the driver reads
/// through the transport (its acks stay in KVM, see
/// [`IrqTrigger::take_status`]), and the irqfd that raises the guest
/// interrupt line.
pub struct IrqTrigger {
    status: AtomicU32,
    irq: EventFd,
}

impl IrqTrigger {
    pub fn new(irq: EventFd) -> Self {
        IrqTrigger {
            status: AtomicU32::new(0),
            irq,
        }
    }

    fn raise(&self, bit: u32) {
        self.status.fetch_or(bit, Ordering::SeqCst);
        // A failed eventfd write cannot be reported to the guest; it will
        // see the status bit at its next interrupt or poll.
        if let Err(e) = self.irq.write(1) {
            tracing::warn!("cannot raise a virtio interrupt: {e}");
        }
    }

    /// The status bits set now, left as they are.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// A read of the InterruptStatus register: the bits set, which the
    /// read clears. The driver acks what it read, but that write is caught
    /// inside KVM (an ioeventfd on InterruptACK) and never reaches the
    /// transport, which saves the guest one exit to the VMM per interrupt;
    /// clearing on the read is what the ack would have done.
    pub fn take_status(&self) -> u32 {
        self.status.swap(0, Ordering::SeqCst)
    }

    /// InterruptACK: clears the bits the driver handled.
    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// The eventfd behind the interrupt line (for irqfd registration).
    pub fn eventfd(&self) -> &EventFd {
        &self.irq
    }
}

impl VirtioInterrupt for IrqTrigger {
    // One line for every queue: the driver scans them all.
    fn signal_used_queue(&self, _queue: usize) {
        self.raise(INT_VRING);
    }

    fn signal_config_change(&self) {
        self.raise(INT_CONFIG);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    #[test]
    fn status_bits_set_and_ack() {
        let irq = IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap());
        irq.signal_used_queue(0);
        irq.signal_config_change();
        assert_eq!(irq.status(), INT_VRING | INT_CONFIG);
        assert_eq!(irq.eventfd().read().unwrap(), 2);
        irq.ack(INT_VRING);
        assert_eq!(irq.status(), INT_CONFIG);
    }

    #[test]
    fn reading_the_status_clears_it() {
        let irq = IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap());
        irq.signal_used_queue(1);
        assert_eq!(irq.take_status(), INT_VRING);
        assert_eq!(irq.take_status(), 0);
        // Raised after the read: there for the next one.
        irq.signal_config_change();
        irq.ack(INT_VRING);
        assert_eq!(irq.take_status(), INT_CONFIG);
    }
}
