//! A virtio-pci device's interrupts: each queue, and configuration
//! changes, go to the MSI-X vector the driver chose for them. With MSI-X,
//! the driver needs no status read and no acknowledgement per interrupt,
//! which saves two exits to the VMM on each one.

use std::sync::atomic::{AtomicU16, AtomicU8, Ordering};
use std::sync::Arc;

use super::msix::{Msix, NO_VECTOR};
use super::persist::PciStateError;
use crate::VirtioInterrupt;

/// ISR status bits (virtio 1.2, 4.1.4.5): kept for drivers that poll it,
/// as they would without MSI-X.
const ISR_QUEUE: u8 = 1;
const ISR_CONFIG: u8 = 2;

/// The vector of each queue and of configuration changes, as the driver
/// set them, in front of the MSI-X table.
pub struct PciInterrupt {
    msix: Arc<Msix>,
    queue_vectors: Vec<AtomicU16>,
    config_vector: AtomicU16,
    isr: AtomicU8,
}

impl PciInterrupt {
    pub fn new(msix: Arc<Msix>, queues: usize) -> Self {
        PciInterrupt {
            msix,
            queue_vectors: (0..queues).map(|_| AtomicU16::new(NO_VECTOR)).collect(),
            config_vector: AtomicU16::new(NO_VECTOR),
            isr: AtomicU8::new(0),
        }
    }

    pub fn msix(&self) -> &Arc<Msix> {
        &self.msix
    }

    /// A vector the driver may use: one the table has, or none.
    fn valid(&self, vector: u16) -> u16 {
        if vector < self.msix.vector_count() {
            vector
        } else {
            NO_VECTOR
        }
    }

    pub fn config_vector(&self) -> u16 {
        self.config_vector.load(Ordering::Acquire)
    }

    /// Reads back `NO_VECTOR` when the device has no such vector, which
    /// tells the driver to choose again.
    pub fn set_config_vector(&self, vector: u16) {
        self.config_vector
            .store(self.valid(vector), Ordering::Release);
    }

    pub fn queue_vector(&self, queue: u16) -> u16 {
        self.queue_vectors
            .get(usize::from(queue))
            .map_or(NO_VECTOR, |v| v.load(Ordering::Acquire))
    }

    pub fn set_queue_vector(&self, queue: u16, vector: u16) {
        if let Some(v) = self.queue_vectors.get(usize::from(queue)) {
            v.store(self.valid(vector), Ordering::Release);
        }
    }

    /// A device reset forgets the driver's vector choices (not the MSI-X
    /// table, which belongs to PCI).
    pub fn reset_vectors(&self) {
        for v in &self.queue_vectors {
            v.store(NO_VECTOR, Ordering::Release);
        }
        self.config_vector.store(NO_VECTOR, Ordering::Release);
        self.isr.store(0, Ordering::Release);
    }

    /// The driver's vector for each queue, for snapshots.
    pub fn queue_vectors(&self) -> Vec<u16> {
        self.queue_vectors
            .iter()
            .map(|v| v.load(Ordering::Acquire))
            .collect()
    }

    /// The ISR status, without the read that clears it (for snapshots).
    pub fn isr(&self) -> u8 {
        self.isr.load(Ordering::Acquire)
    }

    /// The vectors and ISR status a snapshot saved. Refused: another
    /// number of queues, or a vector the table does not have (neither
    /// could the guest have set).
    pub fn restore(
        &self,
        queue_vectors: &[u16],
        config_vector: u16,
        isr: u8,
    ) -> Result<(), PciStateError> {
        if queue_vectors.len() != self.queue_vectors.len() {
            return Err(PciStateError::QueueVectors {
                saved: queue_vectors.len(),
                built: self.queue_vectors.len(),
            });
        }
        let count = self.msix.vector_count();
        let named = std::iter::once(("configuration changes".to_string(), config_vector)).chain(
            queue_vectors
                .iter()
                .enumerate()
                .map(|(i, &v)| (format!("queue {i}"), v)),
        );
        for (what, vector) in named {
            if self.valid(vector) != vector {
                return Err(PciStateError::Vector {
                    what,
                    vector,
                    count,
                });
            }
        }
        if isr & !(ISR_QUEUE | ISR_CONFIG) != 0 {
            return Err(PciStateError::Isr(isr));
        }
        for (slot, &vector) in self.queue_vectors.iter().zip(queue_vectors) {
            slot.store(vector, Ordering::Release);
        }
        self.config_vector.store(config_vector, Ordering::Release);
        self.isr.store(isr, Ordering::Release);
        Ok(())
    }

    /// The ISR status register: reading it clears it.
    pub fn read_isr(&self) -> u8 {
        self.isr.swap(0, Ordering::AcqRel)
    }
}

impl VirtioInterrupt for PciInterrupt {
    fn signal_used_queue(&self, queue: usize) {
        self.isr.fetch_or(ISR_QUEUE, Ordering::AcqRel);
        if let Some(v) = self.queue_vectors.get(queue) {
            self.msix.signal(v.load(Ordering::Acquire));
        }
    }

    fn signal_config_change(&self) {
        self.isr.fetch_or(ISR_CONFIG, Ordering::AcqRel);
        self.msix.signal(self.config_vector());
    }
}
