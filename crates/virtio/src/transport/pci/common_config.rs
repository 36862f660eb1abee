//! The virtio-pci common configuration structure (virtio 1.2, 4.1.4.3):
//! feature negotiation, device status and queue setup, as registers of
//! fixed width at fixed offsets.

use std::sync::Arc;

use virtio_queue::{Queue, QueueT};

use super::interrupt::PciInterrupt;
use crate::transport::core::TransportCore;
use crate::VirtioInterrupt;

/// Field offsets, each with its width in bytes.
mod field {
    pub const DEVICE_FEATURE_SELECT: u64 = 0x00;
    pub const DEVICE_FEATURE: u64 = 0x04;
    pub const DRIVER_FEATURE_SELECT: u64 = 0x08;
    pub const DRIVER_FEATURE: u64 = 0x0c;
    pub const CONFIG_MSIX_VECTOR: u64 = 0x10;
    pub const NUM_QUEUES: u64 = 0x12;
    pub const DEVICE_STATUS: u64 = 0x14;
    pub const CONFIG_GENERATION: u64 = 0x15;
    pub const QUEUE_SELECT: u64 = 0x16;
    pub const QUEUE_SIZE: u64 = 0x18;
    pub const QUEUE_MSIX_VECTOR: u64 = 0x1a;
    pub const QUEUE_ENABLE: u64 = 0x1c;
    pub const QUEUE_NOTIFY_OFF: u64 = 0x1e;
    pub const QUEUE_DESC_LO: u64 = 0x20;
    pub const QUEUE_DESC_HI: u64 = 0x24;
    pub const QUEUE_DRIVER_LO: u64 = 0x28;
    pub const QUEUE_DRIVER_HI: u64 = 0x2c;
    pub const QUEUE_DEVICE_LO: u64 = 0x30;
    pub const QUEUE_DEVICE_HI: u64 = 0x34;

    /// The width of the field at `offset` (64-bit fields are accessed as
    /// two 32-bit halves), or `None` between fields.
    pub fn width(offset: u64) -> Option<usize> {
        match offset {
            DEVICE_FEATURE_SELECT
            | DEVICE_FEATURE
            | DRIVER_FEATURE_SELECT
            | DRIVER_FEATURE
            | QUEUE_DESC_LO
            | QUEUE_DESC_HI
            | QUEUE_DRIVER_LO
            | QUEUE_DRIVER_HI
            | QUEUE_DEVICE_LO
            | QUEUE_DEVICE_HI => Some(4),
            CONFIG_MSIX_VECTOR | NUM_QUEUES | QUEUE_SELECT | QUEUE_SIZE | QUEUE_MSIX_VECTOR
            | QUEUE_ENABLE | QUEUE_NOTIFY_OFF => Some(2),
            DEVICE_STATUS | CONFIG_GENERATION => Some(1),
            _ => None,
        }
    }

    /// Whether an 8-byte access at `offset` is one whole 64-bit field.
    pub fn is_whole_u64(offset: u64, len: usize) -> bool {
        len == 8 && matches!(offset, QUEUE_DESC_LO | QUEUE_DRIVER_LO | QUEUE_DEVICE_LO)
    }
}

/// The driver-selected indexes of the common configuration.
#[derive(Default)]
pub struct CommonConfig {
    pub device_feature_select: u32,
    pub driver_feature_select: u32,
    pub queue_select: u16,
    pub config_generation: u8,
}

impl CommonConfig {
    /// A read of `data.len()` bytes at `offset`. An access that is not
    /// exactly one field (or a 64-bit field whole) reads as zeros.
    pub fn read(&self, offset: u64, data: &mut [u8], core: &TransportCore, irq: &PciInterrupt) {
        data.fill(0);
        if field::is_whole_u64(offset, data.len()) {
            let (mut lo, mut hi) = ([0u8; 4], [0u8; 4]);
            self.read(offset, &mut lo, core, irq);
            self.read(offset + 4, &mut hi, core, irq);
            data[..4].copy_from_slice(&lo);
            data[4..].copy_from_slice(&hi);
            return;
        }
        if field::width(offset) != Some(data.len()) {
            return;
        }
        let queue = core.queue(u32::from(self.queue_select));
        let value: u64 = match offset {
            field::DEVICE_FEATURE_SELECT => self.device_feature_select.into(),
            field::DEVICE_FEATURE => core.device_features_page(self.device_feature_select).into(),
            field::DRIVER_FEATURE_SELECT => self.driver_feature_select.into(),
            field::DRIVER_FEATURE => core.driver_features_page(self.driver_feature_select).into(),
            field::CONFIG_MSIX_VECTOR => irq.config_vector().into(),
            field::NUM_QUEUES => u64::try_from(core.queue_count()).unwrap_or(0),
            field::DEVICE_STATUS => core.status().into(),
            // The 8-bit register shows the low byte of the sum.
            field::CONFIG_GENERATION => self
                .config_generation
                .wrapping_add(core.device().config_generation().to_le_bytes()[0])
                .into(),
            field::QUEUE_SELECT => self.queue_select.into(),
            // Until the driver sets a size, this reads the maximum.
            field::QUEUE_SIZE => queue.map_or(0, |q| q.size().into()),
            field::QUEUE_MSIX_VECTOR => irq.queue_vector(self.queue_select).into(),
            field::QUEUE_ENABLE => queue.map_or(0, |q| q.ready().into()),
            // Each queue notifies at its own address: its index.
            field::QUEUE_NOTIFY_OFF => queue.map_or(0, |_| self.queue_select.into()),
            field::QUEUE_DESC_LO => queue.map_or(0, |q| q.desc_table() & 0xffff_ffff),
            field::QUEUE_DESC_HI => queue.map_or(0, |q| q.desc_table() >> 32),
            field::QUEUE_DRIVER_LO => queue.map_or(0, |q| q.avail_ring() & 0xffff_ffff),
            field::QUEUE_DRIVER_HI => queue.map_or(0, |q| q.avail_ring() >> 32),
            field::QUEUE_DEVICE_LO => queue.map_or(0, |q| q.used_ring() & 0xffff_ffff),
            field::QUEUE_DEVICE_HI => queue.map_or(0, |q| q.used_ring() >> 32),
            _ => 0,
        };
        let bytes = value.to_le_bytes();
        data.copy_from_slice(&bytes[..data.len()]);
    }

    /// A write of `data` at `offset`; anything but one whole field (or a
    /// 64-bit field whole) is ignored.
    pub fn write(
        &mut self,
        offset: u64,
        data: &[u8],
        core: &mut TransportCore,
        irq: &Arc<PciInterrupt>,
    ) {
        if field::is_whole_u64(offset, data.len()) {
            self.write(offset, &data[..4], core, irq);
            self.write(offset + 4, &data[4..], core, irq);
            return;
        }
        if field::width(offset) != Some(data.len()) {
            tracing::debug!(
                offset,
                len = data.len(),
                "virtio-pci: odd common config write"
            );
            return;
        }
        let mut bytes = [0u8; 4];
        bytes[..data.len()].copy_from_slice(data);
        let value = u32::from_le_bytes(bytes);
        // Fields of two bytes or less: `value` fits.
        let short = u16::try_from(value).unwrap_or(u16::MAX);
        let select = u32::from(self.queue_select);
        match offset {
            field::DEVICE_FEATURE_SELECT => self.device_feature_select = value,
            field::DRIVER_FEATURE_SELECT => self.driver_feature_select = value,
            field::DRIVER_FEATURE => {
                core.set_driver_features_page(self.driver_feature_select, value)
            }
            field::CONFIG_MSIX_VECTOR => irq.set_config_vector(short),
            field::DEVICE_STATUS => {
                let interrupt: Arc<dyn VirtioInterrupt> = irq.clone();
                if core.set_status(value, &interrupt) {
                    self.queue_select = 0;
                    irq.reset_vectors();
                }
            }
            field::QUEUE_SELECT => self.queue_select = short,
            field::QUEUE_SIZE => with_queue(core, select, |q| q.set_size(short)),
            field::QUEUE_MSIX_VECTOR if !core.is_activated() => {
                irq.set_queue_vector(self.queue_select, short)
            }
            // Only 1 enables; a driver may not disable a queue this way.
            field::QUEUE_ENABLE if value == 1 => with_queue(core, select, |q| q.set_ready(true)),
            field::QUEUE_DESC_LO => with_queue(core, select, |q| {
                q.set_desc_table_address(Some(value), None)
            }),
            field::QUEUE_DESC_HI => with_queue(core, select, |q| {
                q.set_desc_table_address(None, Some(value))
            }),
            field::QUEUE_DRIVER_LO => with_queue(core, select, |q| {
                q.set_avail_ring_address(Some(value), None)
            }),
            field::QUEUE_DRIVER_HI => with_queue(core, select, |q| {
                q.set_avail_ring_address(None, Some(value))
            }),
            field::QUEUE_DEVICE_LO => {
                with_queue(core, select, |q| q.set_used_ring_address(Some(value), None))
            }
            field::QUEUE_DEVICE_HI => {
                with_queue(core, select, |q| q.set_used_ring_address(None, Some(value)))
            }
            _ => tracing::debug!(offset, value, "virtio-pci: write to a read-only field"),
        }
    }
}

fn with_queue(core: &mut TransportCore, index: u32, f: impl FnOnce(&mut Queue)) {
    if let Some(q) = core.configurable_queue(index) {
        f(q);
    }
}
