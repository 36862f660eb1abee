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
use virtio::vsock::{
    DeviceQueue, HostSocket, Muxer, QueueHandler, Unwatched, VsockConfig, RX_QUEUE, TX_QUEUE,
};
use virtio::{GuestMemoryMmap, IrqTrigger, Wake};
use virtio_queue::{Queue, QueueState};
use vm_memory::{Bytes, GuestAddress};
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

fn queue(header: &[u8]) -> Option<Queue> {
    let word = |i: usize| u64::from(u16::from_le_bytes([header[i], header[i + 1]]));
    let state = QueueState {
        max_size: 256,
        size: u16::from(header[0]).max(1).next_power_of_two().min(256),
        ready: true,
        desc_table: word(1) & !0xf,
        avail_ring: word(3) & !0x1,
        used_ring: word(5) & !0x3,
        next_avail: u16::from_le_bytes([header[7], header[8]]),
        next_used: 0,
        event_idx_enabled: header[9] & 1 != 0,
    };
    Queue::try_from(state).ok()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 20 {
        return;
    }
    let (header, memory) = data.split_at(20);
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let _ = mem.write_slice(&memory[..memory.len().min(MEM_SIZE)], GuestAddress(0));
    let (Some(rx), Some(tx)) = (queue(&header[..10]), queue(&header[10..])) else {
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
