//! virtio-rng: entropy for the guest from the host's `getrandom`.

use std::io::Write;
use std::sync::Arc;

pub use metrics::EntropyMetrics;
use virtio_queue::{Queue, QueueT};

use crate::device::{read_config_bytes, ActivateContext, ActivateError, VirtioDevice};
use crate::{
    device_type, expect_no_state, features, DeviceState, DeviceStateError, GuestMemoryMmap,
    SaveError, SaveReport, SavedDevice, SavedQueue, VirtioInterrupt, Wake, Worker,
};

const QUEUE_SIZE: u16 = 256;
/// Most bytes served per request, so one request cannot keep the worker
/// busy for long.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Most requests served per wake-up, whatever the guest put in its rings.
const MAX_CHAINS_PER_WAKE: usize = 4096;

/// The virtio entropy device.
#[derive(Default)]
pub struct Rng {
    acked_features: u64,
    worker: Option<Worker>,
    /// Where the worker reports its queue for a snapshot.
    report: SaveReport,
    metrics: Arc<EntropyMetrics>,
}

impl Rng {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<EntropyMetrics>) -> Self {
        self.metrics = metrics;
        self
    }
}

/// Fills `buf` from the host's entropy pool.
pub fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the kernel writes at most `rest.len()` bytes into `rest`,
        // which we own.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match n {
            n if n > 0 => filled += n as usize,
            _ => {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

/// Serves one request: fills its writable buffers with random bytes and
/// returns how many were written. A malformed chain gets zero bytes.
fn serve(
    chain: virtio_queue::DescriptorChain<&GuestMemoryMmap>,
    mem: &GuestMemoryMmap,
    metrics: &EntropyMetrics,
) -> u32 {
    let Ok(mut writer) = chain.writer(mem) else {
        return 0;
    };
    let mut left = writer.available_bytes().min(MAX_REQUEST_BYTES);
    let mut buf = [0u8; 4096];
    while left > 0 {
        let n = left.min(buf.len());
        if getrandom(&mut buf[..n]).is_err() {
            metrics.host_rng_fails.inc();
            break;
        }
        if writer.write_all(&buf[..n]).is_err() {
            break;
        }
        left -= n;
    }
    metrics.entropy_event_count.inc();
    metrics.entropy_bytes.add(writer.bytes_written() as u64);
    u32::try_from(writer.bytes_written()).unwrap_or(u32::MAX)
}

/// Serves every pending request, counting in `metrics`, then interrupts
/// the guest if it asked. Public for the fuzz targets: everything in the
/// queue is guest input.
pub fn process_queue(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    irq: &dyn VirtioInterrupt,
    metrics: &EntropyMetrics,
) {
    let mut served = 0usize;
    loop {
        // Notifications off while draining; back on, then look again for
        // requests that slipped in between (the event-index protocol).
        if queue.disable_notification(mem).is_err() {
            return;
        }
        let mut popped = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            popped = true;
            let head = chain.head_index();
            let len = serve(chain, mem, metrics);
            if queue.add_used(mem, head, len).is_err() {
                crate::log_limit::warn_limited!("virtio-rng: cannot add to the used ring");
                return;
            }
            served += 1;
            // A guest that puts its used ring over its avail ring makes
            // every used entry look like a new request: stop after a bound.
            if served >= MAX_CHAINS_PER_WAKE {
                break;
            }
        }
        // Look again only after progress: a corrupt avail index (ahead of
        // what was popped by more than the queue size) would otherwise spin.
        let more = matches!(queue.enable_notification(mem), Ok(true));
        if !(more && popped && served < MAX_CHAINS_PER_WAKE) {
            break;
        }
    }
    if queue.needs_notification(mem).unwrap_or(true) {
        irq.signal_used_queue(0);
    }
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        device_type::RNG
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn avail_features(&self) -> u64 {
        features::VERSION_1 | features::RING_EVENT_IDX | features::RING_INDIRECT_DESC
    }

    fn set_acked_features(&mut self, features: u64) {
        self.acked_features = features;
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // virtio-rng has no configuration space.
        read_config_bytes(&[], offset, data);
    }

    fn write_config(&mut self, offset: u64, _data: &[u8]) {
        tracing::debug!(offset, "virtio-rng has no configuration space to write");
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        let got = ctx.queues.len();
        let (Some(mut queue), Some(evt)) = (
            ctx.queues.into_iter().next(),
            ctx.queue_evts.into_iter().next(),
        ) else {
            return Err(ActivateError::QueueCount { expected: 1, got });
        };
        let mem = ctx.mem;
        let irq: Arc<dyn VirtioInterrupt> = ctx.interrupt;
        let metrics = self.metrics.clone();
        let report = self.report.clone();
        let worker = Worker::spawn("virtio-rng".into(), vec![evt], vec![], move |wake, _| {
            match wake {
                // Every request is answered within its wake: nothing is
                // in flight or held back to save.
                Wake::Save => report.put(SavedDevice::queues(vec![SavedQueue::from(&queue)])),
                Wake::Queue(_) | Wake::Source(_) | Wake::Update => {
                    process_queue(&mut queue, &mem, irq.as_ref(), &metrics)
                }
            }
        })
        .map_err(ActivateError::Worker)?;
        self.worker = Some(worker);
        Ok(())
    }

    fn reset(&mut self) {
        self.worker = None;
        self.acked_features = 0;
    }

    fn worker(&self) -> Option<&Worker> {
        self.worker.as_ref()
    }

    fn save(&self) -> Result<SavedDevice, SaveError> {
        self.report
            .ask_if_active(self.worker.as_ref(), "virtio-rng")
    }

    fn restore_state(&mut self, state: Option<&DeviceState>) -> Result<(), DeviceStateError> {
        expect_no_state("virtio-rng", state)
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use crate::IrqTrigger;
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress};
    use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

    const WRITE: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE as u16;
    const NEXT: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_NEXT as u16;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    fn irq() -> IrqTrigger {
        IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap())
    }

    fn descriptor(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
        RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next))
    }

    #[test]
    fn fills_writable_buffers_with_random_bytes() {
        let mem = mem();
        let mock = MockSplitQueue::new(&mem, 16);
        let descs = [
            descriptor(0x4000, 512, WRITE | NEXT, 1),
            descriptor(0x5000, 512, WRITE, 0),
        ];
        mock.add_desc_chains(&descs, 0).unwrap();
        let mut queue: Queue = mock.create_queue().unwrap();
        let irq = irq();
        let metrics = EntropyMetrics::default();
        process_queue(&mut queue, &mem, &irq, &metrics);
        assert_eq!(metrics.entropy_event_count.get(), 1);
        assert_eq!(metrics.entropy_bytes.get(), 1024);
        assert_eq!(metrics.host_rng_fails.get(), 0);
        let used: u32 = mem.read_obj(GuestAddress(mock.used_addr().0 + 4)).unwrap();
        assert_eq!(used, 0, "head index");
        let len: u32 = mem.read_obj(GuestAddress(mock.used_addr().0 + 8)).unwrap();
        assert_eq!(len, 1024);
        let mut bytes = [0u8; 512];
        mem.read_slice(&mut bytes, GuestAddress(0x5000)).unwrap();
        assert!(bytes.iter().any(|b| *b != 0), "random, not zeros");
        assert_eq!(irq.status(), crate::interrupt::INT_VRING);
    }

    #[test]
    fn chain_outside_memory_is_answered_with_zero_bytes() {
        let mem = mem();
        let mock = MockSplitQueue::new(&mem, 16);
        let descs = [descriptor(0xffff_0000, 4096, WRITE, 0)];
        mock.add_desc_chains(&descs, 0).unwrap();
        let mut queue: Queue = mock.create_queue().unwrap();
        let metrics = EntropyMetrics::default();
        process_queue(&mut queue, &mem, &irq(), &metrics);
        let len: u32 = mem.read_obj(GuestAddress(mock.used_addr().0 + 8)).unwrap();
        assert_eq!(len, 0);
        assert_eq!(metrics.entropy_bytes.get(), 0);
    }

    #[test]
    fn read_only_buffers_get_nothing() {
        let mem = mem();
        let mock = MockSplitQueue::new(&mem, 16);
        let descs = [descriptor(0x4000, 64, 0, 0)];
        mock.add_desc_chains(&descs, 0).unwrap();
        let mut queue: Queue = mock.create_queue().unwrap();
        process_queue(&mut queue, &mem, &irq(), &EntropyMetrics::default());
        let len: u32 = mem.read_obj(GuestAddress(mock.used_addr().0 + 8)).unwrap();
        assert_eq!(len, 0);
        let mut bytes = [0xffu8; 64];
        mem.read_slice(&mut bytes, GuestAddress(0x4000)).unwrap();
        assert_eq!(bytes, [0u8; 64]);
    }
}
