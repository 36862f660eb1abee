//! An address space (I/O ports or MMIO) that routes each guest access to
//! the device owning that range.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A device reachable from a bus. `offset` is relative to the start of the
/// range the device was inserted at; `data.len()` is the access width.
pub trait BusDevice: Send {
    /// The guest reads `data.len()` bytes at `offset`.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// The guest writes `data` at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// Why a device could not be placed on a bus.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    #[error("bus range {base:#x}+{len:#x} is empty or wraps around")]
    InvalidRange { base: u64, len: u64 },
    #[error("bus range {base:#x}+{len:#x} overlaps a device already there")]
    Overlap { base: u64, len: u64 },
}

struct Entry {
    len: u64,
    device: Arc<Mutex<dyn BusDevice>>,
}

/// A set of non-overlapping device ranges.
#[derive(Default)]
pub struct Bus {
    ranges: BTreeMap<u64, Entry>,
}

impl Bus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Places `device` at `base..base + len`.
    pub fn insert(
        &mut self,
        base: u64,
        len: u64,
        device: Arc<Mutex<dyn BusDevice>>,
    ) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::InvalidRange { base, len })?;
        let before = self.ranges.range(..end).next_back();
        if before.is_some_and(|(&b, e)| b + e.len > base) {
            return Err(BusError::Overlap { base, len });
        }
        self.ranges.insert(base, Entry { len, device });
        Ok(())
    }

    /// The device whose range holds all of `addr..addr + size`, and the
    /// offset of `addr` in it.
    fn find(&self, addr: u64, size: usize) -> Option<(&Entry, u64)> {
        let (&base, entry) = self.ranges.range(..=addr).next_back()?;
        let offset = addr - base;
        let last = offset.checked_add(size as u64)?;
        (last <= entry.len).then_some((entry, offset))
    }

    /// Routes a guest read; returns false when no device answers, leaving
    /// `data` for the caller to fill.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((entry, offset)) => {
                lock(&entry.device).read(offset, data);
                true
            }
            None => false,
        }
    }

    /// Routes a guest write; returns false when no device is there.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((entry, offset)) => {
                lock(&entry.device).write(offset, data);
                true
            }
            None => false,
        }
    }
}

/// Locks a device, going on with its state if a thread panicked while
/// holding it: one device's bug must not take every vCPU down with it.
pub fn lock<T: ?Sized>(device: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    device
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        writes: Vec<(u64, Vec<u8>)>,
    }

    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.writes.push((offset, data.to_vec()));
        }
    }

    #[test]
    fn routes_to_the_right_device_with_offsets() {
        let mut bus = Bus::new();
        let a = Arc::new(Mutex::new(Recorder::default()));
        let b = Arc::new(Mutex::new(Recorder::default()));
        bus.insert(0x3f8, 8, a.clone()).unwrap();
        bus.insert(0x60, 5, b.clone()).unwrap();
        assert!(bus.write(0x3fb, &[7]));
        assert!(bus.write(0x64, &[0xfe]));
        let mut data = [0u8; 1];
        assert!(bus.read(0x3fd, &mut data));
        assert_eq!(data, [5]);
        assert_eq!(a.lock().unwrap().writes, vec![(3, vec![7])]);
        assert_eq!(b.lock().unwrap().writes, vec![(4, vec![0xfe])]);
    }

    #[test]
    fn unclaimed_and_straddling_accesses_are_not_handled() {
        let mut bus = Bus::new();
        bus.insert(0x100, 4, Arc::new(Mutex::new(Recorder::default())))
            .unwrap();
        let mut data = [0u8; 4];
        assert!(!bus.read(0xff, &mut data[..1]));
        assert!(!bus.read(0x104, &mut data[..1]));
        assert!(!bus.read(0x102, &mut data));
        assert!(!bus.write(u64::MAX, &[1, 2]));
        assert!(bus.read(0x100, &mut data));
    }

    #[test]
    fn overlapping_and_empty_ranges_are_refused() {
        let mut bus = Bus::new();
        let dev = || Arc::new(Mutex::new(Recorder::default()));
        bus.insert(0x100, 0x10, dev()).unwrap();
        assert_eq!(
            bus.insert(0x10f, 1, dev()),
            Err(BusError::Overlap {
                base: 0x10f,
                len: 1
            })
        );
        assert_eq!(
            bus.insert(0xf8, 0x10, dev()),
            Err(BusError::Overlap {
                base: 0xf8,
                len: 0x10
            })
        );
        assert!(bus.insert(0x110, 1, dev()).is_ok());
        assert!(bus.insert(0xf0, 0x10, dev()).is_ok());
        assert!(matches!(
            bus.insert(0x200, 0, dev()),
            Err(BusError::InvalidRange { .. })
        ));
        assert!(matches!(
            bus.insert(u64::MAX, 2, dev()),
            Err(BusError::InvalidRange { .. })
        ));
    }
}
