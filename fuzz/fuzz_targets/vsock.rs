//! Feeds virtio-vsock queues whose rings, descriptors and packets are all
//! fuzzer-chosen guest memory: short headers, wrong CIDs, bad ops and
//! lengths, chains in the wrong direction must end in a dropped packet,
//! a RST or an empty used entry, never a panic or a hang. Guest
//! connections to host port 5000 reach a real Unix socket.
#![no_main]

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use pointsman_fuzz::{guest_memory, queue, QUEUE_BYTES};
use virtio::vsock::{
    DeviceQueue, HostSocket, Muxer, QueueHandler, Unwatched, VsockConfig, RX_QUEUE, TX_QUEUE,
};
use virtio::{IrqTrigger, Wake};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM_SIZE: usize = 0x1_0000;
const GUEST_CID: u64 = 3;

struct Host {
    config: VsockConfig,
    socket: HostSocket,
    port_5000: UnixListener,
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vsock-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = VsockConfig {
            cid: GUEST_CID,
            socket: dir.join("v.sock"),
        };
        let socket = HostSocket::bind(&config.socket).unwrap();
        let port_5000 =
            UnixListener::bind(PathBuf::from(format!("{}_5000", config.socket.display()))).unwrap();
        port_5000.set_nonblocking(true).unwrap();
        Host {
            config,
            socket,
            port_5000,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 * QUEUE_BYTES {
        return;
    }
    let (header, memory) = data.split_at(2 * QUEUE_BYTES);
    let mem = guest_memory(&[(0, MEM_SIZE)], memory);
    let (Some(rx), Some(tx)) = (queue(header), queue(&header[QUEUE_BYTES..])) else {
        return;
    };
    let host = host();
    let muxer = Muxer::new(host.config.clone(), host.socket.listener().unwrap());
    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let kick = || EventFd::new(EFD_NONBLOCK).unwrap();
    let rx = DeviceQueue {
        queue: rx,
        kick: kick(),
    };
    let tx = DeviceQueue {
        queue: tx,
        kick: kick(),
    };
    let mut handler = QueueHandler::new(muxer, GUEST_CID, mem, irq, rx, tx);
    let w = Unwatched::default();
    handler.on_wake(Wake::Queue(TX_QUEUE), &w);
    handler.on_wake(Wake::Queue(RX_QUEUE), &w);
    for source in 0..4 {
        handler.on_wake(Wake::Source(source), &w);
    }
    drop(handler);
    // Empty the backlog, so later guest connections are not refused.
    while host.port_5000.accept().is_ok() {}
});
