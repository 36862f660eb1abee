use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

/// A raise while the status bits of an earlier interrupt wait unread adds
/// its bit to that interrupt, unless it went longer ago than this: then
/// the line is pulsed again, in case the guest missed the first (its
/// handler not yet there, the line masked). Each interrupt costs the guest
/// an exit to read InterruptStatus, so raises that come while the guest is
/// still on its way to that read (a receive and a transmit completion in a
/// row, say) are worth folding into one.
pub const COALESCE_WINDOW: Duration = Duration::from_millis(1);

/// A virtio-mmio device's interrupt: the status bits the driver reads
/// through the transport (its acks stay in KVM, see
/// [`IrqTrigger::take_status`]), and the irqfd that raises the guest
/// interrupt line.
///
/// The line is an edge (an irqfd pulse), so unlike a level-triggered line
/// it does not fold raises into one interrupt by itself; [`COALESCE_WINDOW`]
/// does that here.
pub struct IrqTrigger {
    status: AtomicU32,
    irq: EventFd,
    /// When the line was last pulsed, in nanoseconds after `epoch`.
    pulsed_at: AtomicU64,
    epoch: Instant,
}

impl IrqTrigger {
    pub fn new(irq: EventFd) -> Self {
        IrqTrigger {
            status: AtomicU32::new(0),
            irq,
            pulsed_at: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn raise(&self, bit: u32) {
        // SeqCst with the read in `take_status`: either that read sees this
        // bit, or this sees the status it left (zero) and pulses the line.
        let unread = self.status.fetch_or(bit, Ordering::SeqCst);
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let since_pulse = now.saturating_sub(self.pulsed_at.load(Ordering::SeqCst));
        if unread != 0 && u128::from(since_pulse) < COALESCE_WINDOW.as_nanos() {
            return;
        }
        self.pulsed_at.store(now, Ordering::SeqCst);
        // A failed eventfd write cannot be reported to the guest; it will
        // see the status bit at its next interrupt or poll.
        if let Err(e) = self.irq.write(1) {
            crate::log_limit::warn_limited!("cannot raise a virtio interrupt: {e}");
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

    /// Sets the status bits a snapshot saved unread, without a pulse:
    /// see [`IrqTrigger::resend`].
    pub fn restore_status(&self, bits: u32) {
        self.status.store(bits, Ordering::SeqCst);
    }

    /// Pulses the line again if status bits wait unread: for a restored
    /// machine, once its interrupt controllers are back, since the saved
    /// pulse may not have reached them before they were saved. A driver
    /// that finds nothing new on a second interrupt ignores it.
    pub fn resend(&self) {
        if self.status() != 0 {
            if let Err(e) = self.irq.write(1) {
                crate::log_limit::warn_limited!("cannot raise a virtio interrupt: {e}");
            }
        }
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
        irq.ack(INT_VRING);
        assert_eq!(irq.status(), INT_CONFIG);
    }

    #[test]
    fn a_raise_before_the_status_is_read_joins_the_pending_interrupt() {
        let irq = IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap());
        irq.signal_used_queue(0);
        irq.signal_used_queue(1);
        irq.signal_config_change();
        assert_eq!(irq.eventfd().read().unwrap(), 1, "one pulse for all three");
        assert_eq!(irq.take_status(), INT_VRING | INT_CONFIG);
        // Read: the next raise is a new interrupt.
        irq.signal_used_queue(0);
        assert_eq!(irq.eventfd().read().unwrap(), 1);
    }

    #[test]
    fn an_unread_status_is_pulsed_again_after_the_window() {
        let irq = IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap());
        irq.signal_used_queue(0);
        assert_eq!(irq.eventfd().read().unwrap(), 1);
        // The guest never read it (it missed the pulse): a raise past the
        // window pulses the line again.
        std::thread::sleep(COALESCE_WINDOW * 2);
        irq.signal_used_queue(0);
        assert_eq!(irq.eventfd().read().unwrap(), 1);
        assert_eq!(irq.status(), INT_VRING);
    }

    #[test]
    fn a_restored_status_waits_for_the_resend_to_pulse() {
        let irq = IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap());
        irq.resend();
        assert!(irq.eventfd().read().is_err(), "nothing to read: no pulse");
        irq.restore_status(INT_CONFIG);
        assert!(irq.eventfd().read().is_err(), "not before the resend");
        irq.resend();
        assert_eq!(irq.eventfd().read().unwrap(), 1);
        assert_eq!(irq.take_status(), INT_CONFIG);
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
