//! The virtio-vsock device: its features, its configuration space (the
//! guest's CID) and its worker.

use super::config::VsockConfig;
use super::handler::{DeviceQueue, QueueHandler, RX_QUEUE, TX_QUEUE};
use super::muxer::{Muxer, LISTENER_SOURCE};
use super::socket::{HostSocket, SocketError};
use crate::device::{read_config_bytes, ActivateContext, ActivateError, VirtioDevice};
use crate::{
    device_type, expect_no_state, features, DeviceState, DeviceStateError, SaveError, SaveReport,
    SavedDevice, Wake, Worker,
};

const QUEUE_SIZE: u16 = 256;
const QUEUE_SIZES: [u16; 3] = [QUEUE_SIZE; 3];
/// Stream sockets (virtio 1.2: bit 0; older drivers assume it).
const F_STREAM: u64 = 1 << 0;

/// The virtio socket device, with its host socket listening from the
/// start so host programs may connect before the guest driver is up.
pub struct Vsock {
    config: VsockConfig,
    socket: HostSocket,
    acked_features: u64,
    worker: Option<Worker>,
    /// Where the worker reports its queues for a snapshot.
    report: SaveReport,
    /// Restored in a new process: the driver's connections went with the
    /// old one, and its next activation tells it with a transport reset.
    reset_pending: bool,
    metrics: std::sync::Arc<metrics::VsockMetrics>,
}

impl Vsock {
    /// Listens on the configured socket path.
    pub fn new(config: VsockConfig) -> Result<Vsock, SocketError> {
        let socket = HostSocket::bind(&config.socket)?;
        Ok(Vsock {
            config,
            socket,
            acked_features: 0,
            worker: None,
            report: SaveReport::default(),
            reset_pending: false,
            metrics: Default::default(),
        })
    }

    /// Counts in `metrics`.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<metrics::VsockMetrics>) -> Self {
        self.metrics = metrics;
        self
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        device_type::VSOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn avail_features(&self) -> u64 {
        features::VERSION_1 | features::RING_EVENT_IDX | features::RING_INDIRECT_DESC | F_STREAM
    }

    fn set_acked_features(&mut self, features: u64) {
        self.acked_features = features;
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        // le64 guest_cid (virtio 1.2, section 5.10.4).
        read_config_bytes(&self.config.cid.to_le_bytes(), offset, data);
    }

    fn write_config(&mut self, offset: u64, _data: &[u8]) {
        tracing::debug!(offset, "virtio-vsock: the configuration space is read-only");
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        let got = ctx.queues.len();
        if got != QUEUE_SIZES.len() || ctx.queue_evts.len() != got {
            return Err(ActivateError::QueueCount {
                expected: QUEUE_SIZES.len(),
                got,
            });
        }
        debug_assert_eq!((RX_QUEUE, TX_QUEUE), (0, 1));
        let mut queues = ctx.queues.into_iter();
        let (Some(rx), Some(tx), Some(event)) = (queues.next(), queues.next(), queues.next())
        else {
            return Err(ActivateError::QueueCount { expected: 3, got });
        };
        // The handler kicks itself through these when it stops early.
        let rx = DeviceQueue {
            queue: rx,
            kick: ctx.queue_evts[RX_QUEUE]
                .try_clone()
                .map_err(ActivateError::Worker)?,
        };
        let tx = DeviceQueue {
            queue: tx,
            kick: ctx.queue_evts[TX_QUEUE]
                .try_clone()
                .map_err(ActivateError::Worker)?,
        };
        let listener = self.socket.listener().map_err(ActivateError::Worker)?;
        let muxer = Muxer::new(self.config.clone(), listener).with_metrics(self.metrics.clone());
        let sources = vec![muxer.listener_fd()];
        debug_assert_eq!(LISTENER_SOURCE, 0);
        let mut handler = QueueHandler::new(muxer, self.config.cid, ctx.mem, ctx.interrupt, rx, tx)
            .with_event_queue(event, std::mem::take(&mut self.reset_pending));
        let report = self.report.clone();
        let worker = Worker::spawn(
            "virtio-vsock".into(),
            ctx.queue_evts,
            sources,
            move |wake, sources| match wake {
                Wake::Save => report.put(SavedDevice::queues(handler.save())),
                _ => handler.on_wake(wake, sources),
            },
        )
        .map_err(ActivateError::Worker)?;
        self.worker = Some(worker);
        Ok(())
    }

    fn reset(&mut self) {
        // The worker owns the connections: they close with it.
        self.worker = None;
        self.acked_features = 0;
        // A driver starting afresh has no connections to drop.
        self.reset_pending = false;
    }

    fn worker(&self) -> Option<&Worker> {
        self.worker.as_ref()
    }

    fn save(&self) -> Result<SavedDevice, SaveError> {
        self.report
            .ask_if_active(self.worker.as_ref(), "virtio-vsock")
    }

    /// Nothing is kept beyond the queues: the host sockets of the
    /// connections end with the old process, so the restored device
    /// starts with none and tells its driver so.
    fn restore_state(&mut self, state: Option<&DeviceState>) -> Result<(), DeviceStateError> {
        expect_no_state("virtio-vsock", state)?;
        self.reset_pending = true;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use crate::{GuestMemoryMmap, IrqTrigger};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
    use virtio_queue::mock::MockSplitQueue;
    use virtio_queue::Queue;
    use vm_memory::GuestAddress;
    use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

    const WRITE: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE as u16;

    fn config(name: &str) -> VsockConfig {
        let dir = std::env::temp_dir().join(format!("vsock-device-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        VsockConfig {
            cid: 0x1_2345_6789,
            socket: dir.join("v.sock"),
        }
    }

    #[test]
    fn identifies_itself_and_shows_the_cid() {
        let dev = Vsock::new(config("ident")).unwrap();
        assert_eq!(dev.device_type(), device_type::VSOCK);
        assert_eq!(dev.queue_max_sizes().len(), 3);
        assert_ne!(dev.avail_features() & features::VERSION_1, 0);
        let mut cid = [0u8; 8];
        dev.read_config(0, &mut cid);
        assert_eq!(u64::from_le_bytes(cid), 0x1_2345_6789);
        let mut high = [0u8; 4];
        dev.read_config(4, &mut high);
        assert_eq!(u32::from_le_bytes(high), 1);
        let mut past = [0xffu8; 4];
        dev.read_config(8, &mut past);
        assert_eq!(past, [0; 4]);
    }

    #[test]
    fn serves_host_programs_on_its_worker_until_reset() {
        let config = config("worker");
        let path = config.socket.clone();
        let mut dev = Vsock::new(config).unwrap();
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let mocks: Vec<MockSplitQueue<GuestMemoryMmap>> = (0..3)
            .map(|i| MockSplitQueue::create(&mem, GuestAddress(i * 0x1_0000), 16))
            .collect();
        // One receive buffer, for the REQUEST.
        let rx_buf = RawDescriptor::from(SplitDescriptor::new(0x8_0000, 4096, WRITE, 0));
        mocks[0].add_desc_chains(&[rx_buf], 0).unwrap();
        let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
        let queues: Vec<Queue> = mocks.iter().map(|m| m.create_queue().unwrap()).collect();
        let evts = (0..3)
            .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
            .collect();
        let err = dev.activate(ActivateContext {
            mem: mem.clone(),
            interrupt: irq.clone(),
            queues: mocks[..2]
                .iter()
                .map(|m| m.create_queue().unwrap())
                .collect(),
            queue_evts: (0..2)
                .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
                .collect(),
        });
        assert!(matches!(err, Err(ActivateError::QueueCount { got: 2, .. })));
        dev.activate(ActivateContext {
            mem: mem.clone(),
            interrupt: irq.clone(),
            queues,
            queue_evts: evts,
        })
        .unwrap();

        let mut host = UnixStream::connect(&path).unwrap();
        host.write_all(b"CONNECT 6000\n").unwrap();
        let start = Instant::now();
        while irq.status() == 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "no REQUEST");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The reset closes the connection; the socket stays for the next
        // activation, and goes with the device.
        dev.reset();
        host.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut rest = Vec::new();
        host.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        assert!(path.exists());
        drop(dev);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
