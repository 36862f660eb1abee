//! What every transport does the same way, whatever its registers look
//! like: feature negotiation, the device status state machine, the queues
//! the driver sets up, activation and reset (virtio 1.2, sections 2 and 3).

use std::sync::Arc;

use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::EventFd;

use crate::device::ActivateContext;
use crate::{features, GuestMemoryMmap, VirtioDevice, VirtioInterrupt};

mod persist;
pub use persist::{CoreState, RestoreError};

/// Device status bits (virtio 1.2, section 2.1).
pub mod status {
    #[cfg(test)]
    pub const ACKNOWLEDGE: u32 = 1;
    #[cfg(test)]
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
    pub const FAILED: u32 = 0x80;
}

/// A device and the driver's view of it, behind some transport.
pub struct TransportCore {
    device: Box<dyn VirtioDevice>,
    mem: GuestMemoryMmap,
    queues: Vec<Queue>,
    queue_evts: Vec<EventFd>,
    driver_features: u64,
    status: u32,
    activated: bool,
}

impl TransportCore {
    /// `queue_evts[i]` is signalled when the driver kicks queue `i`.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        queue_evts: Vec<EventFd>,
    ) -> Self {
        let queues = device
            .queue_max_sizes()
            .iter()
            .filter_map(|&max| Queue::new(max).ok())
            .collect();
        TransportCore {
            device,
            mem,
            queues,
            queue_evts,
            driver_features: 0,
            status: 0,
            activated: false,
        }
    }

    pub fn device(&self) -> &dyn VirtioDevice {
        self.device.as_ref()
    }

    pub fn device_mut(&mut self) -> &mut dyn VirtioDevice {
        self.device.as_mut()
    }

    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Queue `index`, when it exists.
    pub fn queue(&self, index: u32) -> Option<&Queue> {
        self.queues.get(usize::try_from(index).ok()?)
    }

    /// Queue `index` while the driver may still configure it: it exists,
    /// features are negotiated and the device has not started.
    pub fn configurable_queue(&mut self, index: u32) -> Option<&mut Queue> {
        if self.activated || self.status & status::FEATURES_OK == 0 {
            return None;
        }
        self.queues.get_mut(usize::try_from(index).ok()?)
    }

    /// What the device offers, with VERSION_1 (no legacy interface).
    pub fn device_features(&self) -> u64 {
        self.device.avail_features() | features::VERSION_1
    }

    /// 32 bits of the offered features: `page` 0 is the low half.
    pub fn device_features_page(&self, page: u32) -> u32 {
        feature_page(self.device_features(), page)
    }

    pub fn driver_features_page(&self, page: u32) -> u32 {
        feature_page(self.driver_features, page)
    }

    /// The driver writes 32 bits of what it accepts; ignored once it set
    /// FEATURES_OK.
    pub fn set_driver_features_page(&mut self, page: u32, value: u32) {
        if self.status & status::FEATURES_OK != 0 {
            return;
        }
        let value = u64::from(value);
        self.driver_features = match page {
            0 => (self.driver_features & !0xffff_ffff) | value,
            1 => (self.driver_features & 0xffff_ffff) | (value << 32),
            _ => self.driver_features,
        };
    }

    pub fn status(&self) -> u32 {
        self.status
    }

    pub fn is_activated(&self) -> bool {
        self.activated
    }

    /// Whether the driver gave up on the device (config writes then stop).
    pub fn failed(&self) -> bool {
        self.status & status::FAILED != 0
    }

    /// The driver writes the device status. 0 resets the device; the
    /// transport resets its own registers when this returns `true`.
    pub fn set_status(&mut self, value: u32, interrupt: &Arc<dyn VirtioInterrupt>) -> bool {
        if value == 0 {
            self.reset();
            return true;
        }
        let added = value & !self.status;
        if added & status::FEATURES_OK != 0 && !self.features_acceptable() {
            // Leaving FEATURES_OK clear tells the driver we refuse them.
            self.status = value & !status::FEATURES_OK;
            return false;
        }
        if added & status::FEATURES_OK != 0 {
            self.device.set_acked_features(self.driver_features);
            let event_idx = self.driver_features & features::RING_EVENT_IDX != 0;
            for q in &mut self.queues {
                q.set_event_idx(event_idx);
            }
        }
        self.status = value;
        if added & status::DRIVER_OK != 0 && value & status::FEATURES_OK != 0 {
            self.activate(interrupt);
        }
        false
    }

    fn features_acceptable(&self) -> bool {
        let offered = self.device_features();
        self.driver_features & !offered == 0 && self.driver_features & features::VERSION_1 != 0
    }

    fn activate(&mut self, interrupt: &Arc<dyn VirtioInterrupt>) {
        let ready_and_valid = self
            .queues
            .iter()
            .all(|q| !q.ready() || q.is_valid(&self.mem));
        let evts: std::io::Result<Vec<EventFd>> =
            self.queue_evts.iter().map(EventFd::try_clone).collect();
        // The device gets its own copies of the queues; the transport's stay
        // as the driver configured them, for the next reset.
        let queues: Result<Vec<Queue>, _> = self
            .queues
            .iter()
            .map(|q| Queue::try_from(q.state()))
            .collect();
        let result = match (ready_and_valid, evts, queues) {
            (true, Ok(queue_evts), Ok(queues)) => self.device.activate(ActivateContext {
                mem: self.mem.clone(),
                interrupt: interrupt.clone(),
                queues,
                queue_evts,
            }),
            (false, _, _) => Err(crate::ActivateError::Device(
                "a ready queue is outside guest memory".into(),
            )),
            (_, Err(e), _) => Err(crate::ActivateError::Worker(e)),
            (_, _, Err(e)) => Err(crate::ActivateError::Device(format!("invalid queue: {e}"))),
        };
        match result {
            Ok(()) => self.activated = true,
            Err(e) => {
                crate::log_limit::warn_limited!(
                    device = self.device.device_type(),
                    "virtio device failed to start: {e}"
                );
                self.status |= status::DEVICE_NEEDS_RESET;
                interrupt.signal_config_change();
            }
        }
    }

    fn reset(&mut self) {
        self.device.reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.status = 0;
        self.driver_features = 0;
        self.activated = false;
    }

    /// A kick that no ioeventfd caught (or before they were registered).
    pub fn notify(&self, queue: u32) {
        let evt = usize::try_from(queue)
            .ok()
            .and_then(|i| self.queue_evts.get(i));
        if let Some(evt) = evt {
            let _ = evt.write(1);
        }
    }
}

fn feature_page(features: u64, page: u32) -> u32 {
    match page {
        0 => (features & 0xffff_ffff) as u32,
        1 => (features >> 32) as u32,
        _ => 0,
    }
}
