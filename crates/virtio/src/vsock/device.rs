//! The virtio-vsock device: its features, its configuration space (the
//! guest's CID) and its worker.

use std::path::PathBuf;

use super::config::VsockConfig;
use super::handler::{DeviceQueue, QueueHandler, RX_QUEUE, TX_QUEUE};
use super::muxer::{Muxer, LISTENER_SOURCE};
use super::socket::{HostSocket, SocketError};
use crate::device::{read_config_bytes, ActivateContext, ActivateError, VirtioDevice};
use crate::{device_type, features, Worker};

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
        })
    }

    pub fn socket_path(&self) -> PathBuf {
        self.config.socket.clone()
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
        let (Some(rx), Some(tx)) = (queues.next(), queues.next()) else {
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
        let muxer = Muxer::new(self.config.clone(), listener);
        let sources = vec![muxer.listener_fd()];
        debug_assert_eq!(LISTENER_SOURCE, 0);
        let mut handler = QueueHandler::new(muxer, self.config.cid, ctx.mem, ctx.interrupt, rx, tx);
        let worker = Worker::spawn(
            "virtio-vsock".into(),
            ctx.queue_evts,
            sources,
            move |wake, sources| handler.on_wake(wake, sources),
        )
        .map_err(ActivateError::Worker)?;
        self.worker = Some(worker);
        Ok(())
    }

    fn reset(&mut self) {
        // The worker owns the connections: they close with it.
        self.worker = None;
        self.acked_features = 0;
    }
}
