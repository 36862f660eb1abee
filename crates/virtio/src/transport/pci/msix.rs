//! MSI-X (PCI Local Bus 3.0, section 6.8.2): a device's vector table,
//! pending bit array and the enable and mask bits of Message Control.
//!
//! Each vector is delivered through an irqfd on a GSI of its own; the VMM
//! points that GSI at the message the guest programmed through
//! [`MsiRoutes`]. Routes are only updated when a vector is live (MSI-X
//! enabled, function and vector unmasked) and its message differs from the
//! one KVM already has, because every update rewrites KVM's whole routing
//! table. A masked vector keeps its old route: [`Msix::signal`] checks the
//! masks and sets the pending bit instead of writing the irqfd.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use vmm_sys_util::eventfd::EventFd;

/// The vector number virtio uses for "no vector" (VIRTIO_MSI_NO_VECTOR).
pub const NO_VECTOR: u16 = 0xffff;
/// The most vectors an MSI-X table can hold (Table Size is 11 bits, N - 1).
pub const MAX_VECTORS: usize = 2048;
/// Bytes per table entry.
pub const ENTRY_LEN: u64 = 16;

const ADDR_LO: u64 = 0;
const ADDR_HI: u64 = 4;
const DATA: u64 = 8;
const CONTROL: u64 = 12;
/// Vector Control bit 0; the other bits are reserved and read as zero.
const CONTROL_MASKED: u32 = 1;

/// An MSI message: where the interrupt write goes and what it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MsiMessage {
    pub address: u64,
    pub data: u32,
}

/// The VMM's interrupt routing (KVM's GSI routing table).
pub trait MsiRoutes: Send + Sync {
    /// Points `gsi` at `message`, or removes its route with `None`.
    fn set_msi_route(&self, gsi: u32, message: Option<MsiMessage>) -> std::io::Result<()>;
}

/// One MSI-X vector's delivery: its GSI and the eventfd that is registered
/// as an irqfd on that GSI.
pub struct MsixVector {
    pub gsi: u32,
    pub irqfd: EventFd,
}

/// One table entry as the guest programmed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    addr_lo: u32,
    addr_hi: u32,
    data: u32,
    masked: bool,
}

impl Default for Entry {
    // Every entry comes out of reset masked (PCI 3.0, 6.8.2.9).
    fn default() -> Self {
        Entry {
            addr_lo: 0,
            addr_hi: 0,
            data: 0,
            masked: true,
        }
    }
}

impl Entry {
    fn message(&self) -> MsiMessage {
        MsiMessage {
            address: u64::from(self.addr_hi) << 32 | u64::from(self.addr_lo),
            data: self.data,
        }
    }

    /// The dword at `reg`, an offset in the entry.
    fn read(&self, reg: u64) -> u32 {
        match reg {
            ADDR_LO => self.addr_lo,
            ADDR_HI => self.addr_hi,
            DATA => self.data,
            CONTROL => u32::from(self.masked) * CONTROL_MASKED,
            _ => 0,
        }
    }

    fn write(&mut self, reg: u64, value: u32) {
        match reg {
            // The low two address bits are hardwired to zero: messages are
            // dword writes.
            ADDR_LO => self.addr_lo = value & !3,
            ADDR_HI => self.addr_hi = value,
            DATA => self.data = value,
            CONTROL => self.masked = value & CONTROL_MASKED != 0,
            _ => {}
        }
    }
}

/// Everything the guest can change, behind the lock.
struct State {
    entries: Vec<Entry>,
    pending: Vec<u64>,
    enabled: bool,
    function_masked: bool,
    /// The message KVM routes each vector's GSI to, as far as we know:
    /// `None` before the first route and after a failed update.
    routed: Vec<Option<MsiMessage>>,
}

impl State {
    fn live(&self, vector: usize) -> bool {
        self.enabled && !self.function_masked && self.entries.get(vector).is_some_and(|e| !e.masked)
    }

    /// Clears `vector`'s pending bit and says whether it was set.
    fn take_pending(&mut self, vector: usize) -> bool {
        let bit = 1u64 << (vector % 64);
        match self.pending.get_mut(vector / 64) {
            Some(word) if *word & bit != 0 => {
                *word &= !bit;
                true
            }
            _ => false,
        }
    }

    fn set_pending(&mut self, vector: usize) {
        if let Some(word) = self.pending.get_mut(vector / 64) {
            *word |= 1u64 << (vector % 64);
        }
    }
}

/// A device's MSI-X table, PBA and Message Control state. Shared (`Arc`)
/// between the vCPU thread that handles config and BAR accesses and the
/// device worker threads that signal vectors.
pub struct Msix {
    vectors: Vec<MsixVector>,
    routes: Arc<dyn MsiRoutes>,
    state: Mutex<State>,
    // Per vector: live and routed to its current message. Lets `signal`
    // write the irqfd without taking the lock, so a device thread never
    // waits behind a routing ioctl. Only changed with the lock held.
    deliverable: Vec<AtomicBool>,
}

impl Msix {
    /// MSI-X state for `vectors` (at most [`MAX_VECTORS`]; any beyond are
    /// dropped), routed through `routes`. All vectors start masked and
    /// MSI-X starts disabled.
    pub fn new(mut vectors: Vec<MsixVector>, routes: Arc<dyn MsiRoutes>) -> Msix {
        if vectors.len() > MAX_VECTORS {
            tracing::warn!(
                "MSI-X takes at most {MAX_VECTORS} vectors; dropping {} of them",
                vectors.len() - MAX_VECTORS
            );
            vectors.truncate(MAX_VECTORS);
        }
        let count = vectors.len();
        Msix {
            state: Mutex::new(State {
                entries: vec![Entry::default(); count],
                pending: vec![0; count.div_ceil(64)],
                enabled: false,
                function_masked: false,
                routed: vec![None; count],
            }),
            deliverable: (0..count).map(|_| AtomicBool::new(false)).collect(),
            vectors,
            routes,
        }
    }

    /// How many vectors the table has.
    pub fn vector_count(&self) -> u16 {
        // At most MAX_VECTORS (2048), so the conversion cannot fail.
        u16::try_from(self.vectors.len()).unwrap_or(u16::MAX)
    }

    /// Table size in bytes: 16 per entry.
    pub fn table_len(&self) -> u64 {
        u64::from(self.vector_count()) * ENTRY_LEN
    }

    /// PBA size in bytes: a bit per vector, in whole u64s.
    pub fn pba_len(&self) -> u64 {
        u64::from(self.vector_count()).div_ceil(64) * 8
    }

    /// Guest read of the table at `offset` from its start. Aligned 4-byte
    /// reads of one field and aligned 8-byte reads of two work; anything
    /// else reads zero.
    pub fn read_table(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let Some(entry) = self.table_access(offset, data.len()) else {
            return;
        };
        let state = self.lock();
        let Some(e) = state.entries.get(entry) else {
            return;
        };
        let reg = offset % ENTRY_LEN;
        for (i, chunk) in data.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(&e.read(reg + 4 * i as u64).to_le_bytes());
        }
    }

    /// Guest write of the table at `offset` from its start, with the same
    /// widths as [`read_table`](Self::read_table); other writes are
    /// ignored. An 8-byte write updates both fields before the route is
    /// looked at, so the route never sees half a message.
    pub fn write_table(&self, offset: u64, data: &[u8]) {
        let Some(vector) = self.table_access(offset, data.len()) else {
            tracing::debug!(
                "MSI-X table write of {} bytes at {offset:#x} ignored",
                data.len()
            );
            return;
        };
        let deliver = {
            let mut state = self.lock();
            let Some(e) = state.entries.get_mut(vector) else {
                return;
            };
            let reg = offset % ENTRY_LEN;
            for (i, chunk) in data.chunks_exact(4).enumerate() {
                let mut bytes = [0u8; 4];
                bytes.copy_from_slice(chunk);
                e.write(reg + 4 * i as u64, u32::from_le_bytes(bytes));
            }
            self.refresh(&mut state, vector)
        };
        if deliver {
            self.deliver(vector);
        }
    }

    /// Guest read of the pending bit array at `offset` from its start
    /// (aligned 4 or 8 bytes; anything else reads zero). The PBA is
    /// read-only, so there is no write counterpart.
    pub fn read_pba(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if !aligned_access(offset, data.len()) || !fits(offset, data.len(), self.pba_len()) {
            return;
        }
        let state = self.lock();
        let Some(&word) = usize::try_from(offset / 8)
            .ok()
            .and_then(|i| state.pending.get(i))
        else {
            return;
        };
        let bytes = word.to_le_bytes();
        let start = usize::from(offset & 4 != 0) * 4;
        if let Some(src) = bytes.get(start..start + data.len()) {
            data.copy_from_slice(src);
        }
    }

    /// The MSI-X Enable (bit 15) and Function Mask (bit 14) of Message
    /// Control, as the guest wrote them to config space.
    pub fn set_control(&self, enabled: bool, function_masked: bool) {
        let deliver: Vec<usize> = {
            let mut state = self.lock();
            if state.enabled == enabled && state.function_masked == function_masked {
                return;
            }
            state.enabled = enabled;
            state.function_masked = function_masked;
            (0..self.vectors.len())
                .filter(|&v| self.refresh(&mut state, v))
                .collect()
        };
        for vector in deliver {
            self.deliver(vector);
        }
    }

    /// Whether MSI-X is enabled and the function is masked, as last set by
    /// [`set_control`](Self::set_control).
    pub fn control(&self) -> (bool, bool) {
        let state = self.lock();
        (state.enabled, state.function_masked)
    }

    /// From device threads: delivers `vector` (writes its irqfd) if MSI-X is
    /// enabled and neither the function nor the vector is masked; otherwise
    /// sets its pending bit. A vector out of range, such as [`NO_VECTOR`],
    /// does nothing.
    pub fn signal(&self, vector: u16) {
        if vector == NO_VECTOR {
            return;
        }
        let v = usize::from(vector);
        let Some(deliverable) = self.deliverable.get(v) else {
            return;
        };
        if !deliverable.load(Ordering::Acquire) {
            let mut state = self.lock();
            // Looked at again under the lock: the vCPU may have unmasked
            // the vector since, and then it will not look at the PBA again.
            if !deliverable.load(Ordering::Acquire) {
                state.set_pending(v);
                return;
            }
        }
        self.deliver(v);
    }

    /// Forgets everything the guest programmed: all vectors masked, MSI-X
    /// disabled, nothing pending. For a whole-device reset only: a virtio
    /// device reset is not an MSI-X reset. KVM keeps its routes, which no
    /// longer matter because nothing is delivered until the guest unmasks.
    pub fn reset(&self) {
        let mut state = self.lock();
        state.entries.fill(Entry::default());
        state.pending.fill(0);
        state.enabled = false;
        state.function_masked = false;
        for d in &self.deliverable {
            d.store(false, Ordering::Release);
        }
    }

    /// The entry an access of `len` bytes at table `offset` touches, if it
    /// is one this table answers.
    fn table_access(&self, offset: u64, len: usize) -> Option<usize> {
        if !aligned_access(offset, len) || !fits(offset, len, self.table_len()) {
            return None;
        }
        usize::try_from(offset / ENTRY_LEN).ok()
    }

    /// Brings `vector`'s route and delivery flag up to date after the guest
    /// changed its entry or the control bits, and says whether a pending
    /// interrupt must be delivered now. The route is updated first so that
    /// interrupt goes to the new message.
    fn refresh(&self, state: &mut State, vector: usize) -> bool {
        self.route(state, vector) && state.take_pending(vector)
    }

    /// [`refresh`](Self::refresh) short of the pending bit: whether
    /// `vector` is live and routed to its current message.
    fn route(&self, state: &mut State, vector: usize) -> bool {
        let (Some(v), Some(deliverable)) = (self.vectors.get(vector), self.deliverable.get(vector))
        else {
            return false;
        };
        if !state.live(vector) {
            deliverable.store(false, Ordering::Release);
            return false;
        }
        let Some(message) = state.entries.get(vector).map(Entry::message) else {
            return false;
        };
        if state.routed.get(vector).copied().flatten() != Some(message) {
            let routed = match self.routes.set_msi_route(v.gsi, Some(message)) {
                Ok(()) => Some(message),
                Err(e) => {
                    // Keep the vector undeliverable: an irqfd write would
                    // go to a stale message. The pending bit keeps the
                    // interrupt until a later write retries the route.
                    crate::log_limit::warn_limited!(
                        "cannot route MSI-X vector {vector} (GSI {}) to {message:x?}: {e}",
                        v.gsi
                    );
                    None
                }
            };
            if let Some(slot) = state.routed.get_mut(vector) {
                *slot = routed;
            }
            if routed.is_none() {
                deliverable.store(false, Ordering::Release);
                return false;
            }
        }
        deliverable.store(true, Ordering::Release);
        true
    }

    fn deliver(&self, vector: usize) {
        let Some(v) = self.vectors.get(vector) else {
            return;
        };
        // A failed eventfd write cannot be reported to the guest; the
        // driver finds the work at its next interrupt or poll.
        if let Err(e) = v.irqfd.write(1) {
            crate::log_limit::warn_limited!(
                "cannot raise MSI-X vector {vector} (GSI {}): {e}",
                v.gsi
            );
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing under the lock can panic halfway through a change, so a
        // poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[path = "msix_persist.rs"]
mod persist;
pub use persist::{MsixEntryState, MsixState};

/// A 4-byte access on a 4-byte boundary or an 8-byte one on an 8-byte
/// boundary: the widths PCI allows for MSI-X structures.
fn aligned_access(offset: u64, len: usize) -> bool {
    // `len` is a power of two, so the low bits say the alignment.
    matches!(len, 4 | 8) && offset & (len as u64 - 1) == 0
}

fn fits(offset: u64, len: usize, size: u64) -> bool {
    offset
        .checked_add(len as u64)
        .is_some_and(|end| end <= size)
}

#[cfg(test)]
mod tests {
    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    use super::*;

    const GSI_BASE: u32 = 24;

    /// Records every route call; fails them while `fail` is set.
    #[derive(Default)]
    struct FakeRoutes {
        calls: Mutex<Vec<(u32, Option<MsiMessage>)>>,
        fail: AtomicBool,
    }

    impl MsiRoutes for FakeRoutes {
        fn set_msi_route(&self, gsi: u32, message: Option<MsiMessage>) -> std::io::Result<()> {
            self.calls.lock().unwrap().push((gsi, message));
            if self.fail.load(Ordering::SeqCst) {
                return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
            }
            Ok(())
        }
    }

    impl FakeRoutes {
        fn take(&self) -> Vec<(u32, Option<MsiMessage>)> {
            std::mem::take(&mut *self.calls.lock().unwrap())
        }
    }

    struct Fixture {
        msix: Msix,
        routes: Arc<FakeRoutes>,
        irqfds: Vec<EventFd>,
    }

    impl Fixture {
        fn new(count: u16) -> Self {
            let routes = Arc::new(FakeRoutes::default());
            let mut irqfds = Vec::new();
            let vectors = (0..count)
                .map(|i| {
                    let irqfd = EventFd::new(EFD_NONBLOCK).unwrap();
                    irqfds.push(irqfd.try_clone().unwrap());
                    MsixVector {
                        gsi: GSI_BASE + u32::from(i),
                        irqfd,
                    }
                })
                .collect();
            let msix = Msix::new(vectors, routes.clone());
            Fixture {
                msix,
                routes,
                irqfds,
            }
        }

        /// How many times `vector`'s irqfd was written since last asked.
        fn fired(&self, vector: usize) -> u64 {
            self.irqfds[vector].read().unwrap_or(0)
        }

        fn read32(&self, offset: u64) -> u32 {
            let mut b = [0u8; 4];
            self.msix.read_table(offset, &mut b);
            u32::from_le_bytes(b)
        }

        fn write32(&self, offset: u64, value: u32) {
            self.msix.write_table(offset, &value.to_le_bytes());
        }

        fn program(&self, vector: u64, message: MsiMessage) {
            let base = vector * ENTRY_LEN;
            self.msix.write_table(base, &message.address.to_le_bytes());
            self.write32(base + DATA, message.data);
        }

        fn mask(&self, vector: u64, masked: bool) {
            self.write32(vector * ENTRY_LEN + CONTROL, u32::from(masked));
        }

        fn pba(&self) -> u64 {
            let mut b = [0u8; 8];
            self.msix.read_pba(0, &mut b);
            u64::from_le_bytes(b)
        }
    }

    fn msg(data: u32) -> MsiMessage {
        MsiMessage {
            address: 0xfee0_1000,
            data,
        }
    }

    #[test]
    fn sizes_follow_vector_count() {
        let f = Fixture::new(3);
        assert_eq!(f.msix.vector_count(), 3);
        assert_eq!(f.msix.table_len(), 48);
        assert_eq!(f.msix.pba_len(), 8);
        let f = Fixture::new(65);
        assert_eq!(f.msix.table_len(), 65 * 16);
        assert_eq!(f.msix.pba_len(), 16);
        let f = Fixture::new(0);
        assert_eq!((f.msix.table_len(), f.msix.pba_len()), (0, 0));
        f.msix.signal(0);
        f.msix.set_control(true, false);
    }

    #[test]
    fn entries_start_masked_and_zero() {
        let f = Fixture::new(2);
        for v in 0..2 {
            assert_eq!(f.read32(v * 16 + ADDR_LO), 0);
            assert_eq!(f.read32(v * 16 + ADDR_HI), 0);
            assert_eq!(f.read32(v * 16 + DATA), 0);
            assert_eq!(f.read32(v * 16 + CONTROL), 1);
        }
        assert_eq!(f.msix.control(), (false, false));
    }

    #[test]
    fn table_round_trips_in_both_widths() {
        let f = Fixture::new(2);
        f.write32(16 + ADDR_LO, 0xfee0_2003);
        f.write32(16 + ADDR_HI, 0x1);
        f.write32(16 + DATA, 0x4041);
        f.write32(16 + CONTROL, 0xffff_fffe);
        // The low address bits are hardwired, reserved control bits read 0.
        assert_eq!(f.read32(16 + ADDR_LO), 0xfee0_2000);
        assert_eq!(f.read32(16 + ADDR_HI), 1);
        assert_eq!(f.read32(16 + DATA), 0x4041);
        assert_eq!(f.read32(16 + CONTROL), 0);

        let mut b = [0u8; 8];
        f.msix.read_table(16, &mut b);
        assert_eq!(u64::from_le_bytes(b), 0x1_fee0_2000);
        f.msix.read_table(16 + DATA, &mut b);
        assert_eq!(u64::from_le_bytes(b), 0x4041);

        f.msix.write_table(
            DATA,
            &(u64::from(CONTROL_MASKED) << 32 | 0x77).to_le_bytes(),
        );
        assert_eq!(f.read32(DATA), 0x77);
        assert_eq!(f.read32(CONTROL), 1);
        // Entry 0 did not disturb entry 1.
        assert_eq!(f.read32(16 + DATA), 0x4041);
    }

    #[test]
    fn bad_offsets_and_widths_read_zero_and_write_nothing() {
        let f = Fixture::new(2);
        f.program(0, msg(0x55));
        let before: Vec<u32> = (0..8).map(|i| f.read32(i * 4)).collect();

        for (offset, len) in [
            (0, 1),
            (0, 2),
            (0, 3),
            (2, 4),
            (4, 8),
            (12, 8),
            (0, 16),
            (32, 4),
            (28, 8),
            (u64::MAX - 3, 4),
            (!7, 8),
        ] {
            let mut buf = vec![0xaau8; len];
            f.msix.read_table(offset, &mut buf);
            assert!(buf.iter().all(|&b| b == 0), "read of {len} at {offset:#x}");
            f.msix.write_table(offset, &vec![0xff; len]);
        }
        f.msix.read_table(0, &mut []);
        f.msix.write_table(0, &[]);
        let after: Vec<u32> = (0..8).map(|i| f.read32(i * 4)).collect();
        assert_eq!(before, after);

        let mut b = [0xaau8; 4];
        f.msix.read_pba(8, &mut b);
        assert_eq!(b, [0; 4]);
        f.msix.read_pba(2, &mut b);
        assert_eq!(b, [0; 4]);
        let mut b = [0xaau8; 2];
        f.msix.read_pba(0, &mut b);
        assert_eq!(b, [0; 2]);
    }

    #[test]
    fn signal_while_masked_sets_pba_and_unmask_delivers() {
        let f = Fixture::new(3);
        f.msix.set_control(true, false);
        f.program(2, msg(0x42));
        f.msix.signal(2);
        assert_eq!(f.fired(2), 0);
        assert_eq!(f.pba(), 1 << 2);
        let mut hi = [0xaau8; 4];
        f.msix.read_pba(4, &mut hi);
        assert_eq!(hi, [0; 4]);
        assert!(f.routes.take().is_empty(), "no route while masked");

        f.mask(2, false);
        assert_eq!(f.routes.take(), vec![(GSI_BASE + 2, Some(msg(0x42)))]);
        assert_eq!(f.fired(2), 1);
        assert_eq!(f.pba(), 0);

        f.msix.signal(2);
        assert_eq!(f.fired(2), 1);
        assert_eq!(f.pba(), 0);
    }

    #[test]
    fn function_mask_holds_every_vector() {
        let f = Fixture::new(2);
        f.msix.set_control(true, true);
        for v in 0..2 {
            f.program(v, msg(0x30 + u32::from(v == 1)));
            f.mask(v, false);
        }
        assert!(f.routes.take().is_empty());
        f.msix.signal(0);
        f.msix.signal(1);
        assert_eq!((f.fired(0), f.fired(1)), (0, 0));
        assert_eq!(f.pba(), 0b11);

        f.msix.set_control(true, false);
        assert_eq!(f.routes.take().len(), 2);
        assert_eq!((f.fired(0), f.fired(1)), (1, 1));
        assert_eq!(f.pba(), 0);
        assert_eq!(f.msix.control(), (true, false));
    }

    #[test]
    fn disabled_msix_delivers_nothing_until_enabled() {
        let f = Fixture::new(1);
        f.program(0, msg(0x21));
        f.mask(0, false);
        f.msix.signal(0);
        assert_eq!(f.fired(0), 0);
        assert_eq!(f.pba(), 1);
        assert!(f.routes.take().is_empty());

        f.msix.set_control(true, false);
        assert_eq!(f.routes.take(), vec![(GSI_BASE, Some(msg(0x21)))]);
        assert_eq!(f.fired(0), 1);

        f.msix.set_control(false, false);
        f.msix.signal(0);
        assert_eq!(f.fired(0), 0);
        assert_eq!(f.pba(), 1);
    }

    #[test]
    fn routes_change_only_when_the_live_message_does() {
        let f = Fixture::new(1);
        f.msix.set_control(true, false);
        f.program(0, msg(1));
        f.mask(0, false);
        assert_eq!(f.routes.take(), vec![(GSI_BASE, Some(msg(1)))]);

        // Same message again, a mask cycle, repeated control writes.
        f.program(0, msg(1));
        f.mask(0, true);
        f.mask(0, false);
        f.msix.set_control(true, false);
        f.msix.set_control(true, true);
        f.msix.set_control(true, false);
        assert!(f.routes.take().is_empty());

        // A change while live is routed at once, in one call per write.
        f.write32(DATA, 2);
        assert_eq!(f.routes.take(), vec![(GSI_BASE, Some(msg(2)))]);
        let other = MsiMessage {
            address: 0x1_fee0_3000,
            data: 2,
        };
        f.msix.write_table(0, &other.address.to_le_bytes());
        assert_eq!(f.routes.take(), vec![(GSI_BASE, Some(other))]);

        // A change while masked waits for the unmask.
        f.mask(0, true);
        f.write32(DATA, 3);
        f.msix.write_table(0, &msg(3).address.to_le_bytes());
        assert!(f.routes.take().is_empty());
        f.mask(0, false);
        assert_eq!(f.routes.take(), vec![(GSI_BASE, Some(msg(3)))]);
        f.msix.signal(0);
        assert_eq!(f.fired(0), 1);
    }

    #[test]
    fn failed_route_keeps_the_interrupt_pending() {
        let f = Fixture::new(1);
        f.routes.fail.store(true, Ordering::SeqCst);
        f.msix.set_control(true, false);
        f.program(0, msg(9));
        f.mask(0, false);
        f.msix.signal(0);
        assert_eq!(f.fired(0), 0);
        assert_eq!(f.pba(), 1);

        // The next write retries the route, then delivers what was pending.
        f.routes.fail.store(false, Ordering::SeqCst);
        f.mask(0, false);
        assert_eq!(f.routes.take().len(), 2);
        assert_eq!(f.fired(0), 1);
        assert_eq!(f.pba(), 0);
    }

    #[test]
    fn vectors_out_of_range_do_nothing() {
        let f = Fixture::new(2);
        f.msix.set_control(true, false);
        for v in [2, 64, 2047, 2048, NO_VECTOR - 1, NO_VECTOR] {
            f.msix.signal(v);
        }
        assert_eq!(f.pba(), 0);
        assert_eq!((f.fired(0), f.fired(1)), (0, 0));
    }

    #[test]
    fn reset_forgets_the_guest_programming() {
        let f = Fixture::new(2);
        f.msix.set_control(true, false);
        f.program(0, msg(5));
        f.mask(0, false);
        f.msix.signal(1);
        f.msix.reset();
        assert_eq!(f.msix.control(), (false, false));
        assert_eq!(f.read32(DATA), 0);
        assert_eq!(f.read32(CONTROL), 1);
        assert_eq!(f.pba(), 0);
        f.msix.signal(0);
        assert_eq!(f.fired(0), 0);
    }

    #[test]
    fn signals_race_unmasking_without_losing_one() {
        let f = Arc::new(Fixture::new(1));
        f.msix.set_control(true, false);
        f.program(0, msg(7));
        let signaller = {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    f.msix.signal(0);
                }
            })
        };
        for i in 0..200 {
            f.mask(0, i % 2 == 0);
        }
        signaller.join().unwrap();
        f.mask(0, false);
        // Every signal either fired or left the pending bit, which the last
        // unmask delivered.
        assert!(f.fired(0) >= 1);
        assert_eq!(f.pba(), 0);
    }
}
