//! An MSI-X table, its pending bits and Message Control in a snapshot, and
//! the routes KVM needs for them brought back.

use serde::{Deserialize, Serialize};

use super::{Entry, Msix, State};
use crate::transport::pci::persist::PciStateError;

/// One table entry as the guest programmed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsixEntryState {
    pub address_lo: u32,
    pub address_hi: u32,
    pub data: u32,
    pub masked: bool,
}

/// What an MSI-X function saves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsixState {
    pub entries: Vec<MsixEntryState>,
    /// The pending bit array, 64 vectors a word.
    pub pending: Vec<u64>,
    pub enabled: bool,
    pub function_masked: bool,
}

impl Msix {
    pub fn save_state(&self) -> MsixState {
        let state = self.lock();
        MsixState {
            entries: state
                .entries
                .iter()
                .map(|e| MsixEntryState {
                    address_lo: e.addr_lo,
                    address_hi: e.addr_hi,
                    data: e.data,
                    masked: e.masked,
                })
                .collect(),
            pending: state.pending.clone(),
            enabled: state.enabled,
            function_masked: state.function_masked,
        }
    }

    /// Puts the table, pending bits and control back as `saved` holds
    /// them, and routes each live vector's GSI to its message, as the
    /// guest's writes did. Pending bits stay until
    /// [`deliver_pending`](Self::deliver_pending) (once the interrupt
    /// controllers are restored) or the guest unmasks their vector.
    pub fn restore_state(&self, saved: &MsixState) -> Result<(), PciStateError> {
        let count = self.vectors.len();
        if saved.entries.len() != count {
            return Err(PciStateError::VectorCount {
                saved: saved.entries.len(),
                built: count,
            });
        }
        let words = count.div_ceil(64);
        if saved.pending.len() != words {
            return Err(PciStateError::PendingWords {
                saved: saved.pending.len(),
                built: words,
            });
        }
        // Bits past the table in the last word: no vector has them.
        let spare = words * 64 - count;
        if let Some(&last) = saved.pending.last() {
            if spare > 0 && last >> (64 - spare) != 0 {
                return Err(PciStateError::PendingPastTable);
            }
        }
        if let Some(vector) = saved.entries.iter().position(|e| e.address_lo & 3 != 0) {
            return Err(PciStateError::EntryAddress { vector });
        }
        let mut state = self.lock();
        *state = State {
            entries: saved
                .entries
                .iter()
                .map(|e| Entry {
                    addr_lo: e.address_lo,
                    addr_hi: e.address_hi,
                    data: e.data,
                    masked: e.masked,
                })
                .collect(),
            pending: saved.pending.clone(),
            enabled: saved.enabled,
            function_masked: saved.function_masked,
            routed: vec![None; count],
        };
        for vector in 0..count {
            self.route(&mut state, vector);
        }
        Ok(())
    }

    /// Delivers every live vector whose pending bit is set: interrupts
    /// saved pending whose vector the guest had unmasked.
    pub fn deliver_pending(&self) {
        let deliver: Vec<usize> = {
            let mut state = self.lock();
            (0..self.vectors.len())
                .filter(|&v| {
                    self.deliverable
                        .get(v)
                        .is_some_and(|d| d.load(std::sync::atomic::Ordering::Acquire))
                        && state.take_pending(v)
                })
                .collect()
        };
        for vector in deliver {
            self.deliver(vector);
        }
    }
}
