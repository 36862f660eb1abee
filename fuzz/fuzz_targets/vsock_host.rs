//! The vsock device's host side, as a hostile guest and hostile host
//! programs see it together: host programs connect through the Unix
//! socket with any handshake text (`CONNECT <port>\n` or not), write,
//! read and hang up at any time; the guest offers receive buffers of any
//! size (header-only 44-byte ones, shorter, split, read-only) and sends
//! any packet, answering the device's requests with the ports it learnt
//! from them. The queues are well formed, so the run goes deep; every
//! used entry is checked (no chain returned twice, no partial header, a
//! header whose length matches what was written), and a loop without
//! progress is a libFuzzer timeout.
#![no_main]

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::RawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use virtio::vsock::{
    DeviceQueue, Header, HostSocket, Muxer, Op, QueueHandler, VsockConfig, Watch, HEADER_SIZE,
    HOST_CID, RX_QUEUE, TX_QUEUE,
};
use virtio::{GuestMemoryMmap, IrqTrigger, Wake};
use virtio_queue::{Queue, QueueState};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const GUEST_CID: u64 = 3;
/// A host program listens on this port (`PATH_5000`).
const HOST_LISTEN_PORT: u32 = 5000;
const QUEUE_SIZE: u16 = 256;
/// Each chain has two descriptor slots: `2 * slot` and `2 * slot + 1`.
const CHAIN_SLOTS: u16 = QUEUE_SIZE / 2;
const MEM_SIZE: usize = 4 << 20;
const RX_RING: u64 = 0;
const TX_RING: u64 = 0x1_0000;
/// Each chain slot has its buffer memory of its own, `MAX_BUFFER` bytes:
/// the receive ring's from `RX_BUFFERS`, the transmit ring's from
/// `TX_BUFFERS`, so no two chains the device holds overlap.
const RX_BUFFERS: u64 = 0x2_0000;
const TX_BUFFERS: u64 = RX_BUFFERS + CHAIN_SLOTS as u64 * MAX_BUFFER;
const MAX_BUFFER: u64 = 0x2000;
const MAX_CLIENTS: usize = 16;
const WRITE: u16 = 2;
const NEXT: u16 = 1;

struct Host {
    config: VsockConfig,
    socket: HostSocket,
    /// The device's listener, to empty its backlog between runs.
    backlog: UnixListener,
    listening: UnixListener,
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("vsock-host-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = VsockConfig {
            cid: GUEST_CID,
            socket: dir.join("v.sock"),
        };
        let socket = HostSocket::bind(&config.socket).unwrap();
        let path = PathBuf::from(format!("{}_{HOST_LISTEN_PORT}", config.socket.display()));
        let _ = std::fs::remove_file(&path);
        let listening = UnixListener::bind(path).unwrap();
        listening.set_nonblocking(true).unwrap();
        Host {
            config,
            backlog: socket.listener().unwrap(),
            socket,
            listening,
        }
    })
}

/// The worker's sources, as a set the target wakes one by one (a
/// stand-in for epoll that reports every source as ready).
#[derive(Default)]
struct Sources {
    live: std::cell::RefCell<BTreeSet<usize>>,
    next: std::cell::Cell<usize>,
}

impl Watch for Sources {
    fn add(&self, _fd: RawFd) -> std::io::Result<usize> {
        let index = self.next.get() + 1;
        self.next.set(index);
        self.live.borrow_mut().insert(index);
        Ok(index)
    }
    fn remove(&self, index: usize) {
        assert!(
            self.live.borrow_mut().remove(&index),
            "source {index} removed twice"
        );
    }
    fn watch(&self, index: usize, _readable: bool, _writable: bool) {
        assert!(
            index == 0 || self.live.borrow().contains(&index),
            "watching source {index}, which is gone"
        );
    }
}

/// The guest driver's side of one split queue, kept well formed.
struct Ring {
    base: u64,
    buffers: u64,
    avail_idx: u16,
    used_seen: u16,
    /// Chains the device holds: slot → (first descriptor's address,
    /// writable bytes in the chain).
    out: HashMap<u16, (u64, u64)>,
    next_slot: u16,
}

impl Ring {
    fn new(base: u64, buffers: u64) -> Ring {
        Ring {
            base,
            buffers,
            avail_idx: 0,
            used_seen: 0,
            out: HashMap::new(),
            next_slot: 0,
        }
    }

    fn avail(&self) -> u64 {
        self.base + 16 * u64::from(QUEUE_SIZE)
    }

    fn used(&self) -> u64 {
        (self.avail() + 6 + 2 * u64::from(QUEUE_SIZE) + 3) & !3
    }

    fn queue(&self, event_idx: bool) -> Queue {
        Queue::try_from(QueueState {
            max_size: QUEUE_SIZE,
            size: QUEUE_SIZE,
            ready: true,
            desc_table: self.base,
            avail_ring: self.avail(),
            used_ring: self.used(),
            next_avail: 0,
            next_used: 0,
            event_idx_enabled: event_idx,
        })
        .unwrap()
    }

    /// A slot the device does not hold, and its buffer's address.
    fn free_slot(&mut self) -> Option<(u16, u64)> {
        let slot = (0..CHAIN_SLOTS)
            .map(|i| (self.next_slot + i) % CHAIN_SLOTS)
            .find(|s| !self.out.contains_key(s))?;
        self.next_slot = (slot + 1) % CHAIN_SLOTS;
        Some((slot, self.buffers + u64::from(slot) * MAX_BUFFER))
    }

    /// Makes `parts` (address, length, flags) the chain of `slot` and
    /// offers it.
    fn push(&mut self, mem: &GuestMemoryMmap, slot: u16, parts: &[(u64, u32, u16)]) {
        assert!(!parts.is_empty() && parts.len() <= 2);
        let head = 2 * slot;
        let mut writable = 0;
        for (i, &(addr, len, flags)) in parts.iter().enumerate() {
            let index = head + i as u16;
            let last = i + 1 == parts.len();
            let flags = if last { flags } else { flags | NEXT };
            let at = self.base + 16 * u64::from(index);
            mem.write_obj(addr, GuestAddress(at)).unwrap();
            mem.write_obj(len, GuestAddress(at + 8)).unwrap();
            mem.write_obj(flags, GuestAddress(at + 12)).unwrap();
            mem.write_obj(index + 1, GuestAddress(at + 14)).unwrap();
            if flags & WRITE != 0 {
                writable += u64::from(len);
            }
        }
        let slot_at = self.avail() + 4 + 2 * u64::from(self.avail_idx % QUEUE_SIZE);
        mem.write_obj(head, GuestAddress(slot_at)).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.write_obj(self.avail_idx, GuestAddress(self.avail() + 2))
            .unwrap();
        self.out.insert(slot, (parts[0].0, writable));
    }

    /// Used entries since the last call: (first descriptor's address,
    /// writable bytes, used length). Panics on an entry the device should
    /// not have made.
    fn take_used(&mut self, mem: &GuestMemoryMmap) -> Vec<(u64, u64, u32)> {
        let idx: u16 = mem.read_obj(GuestAddress(self.used() + 2)).unwrap();
        let mut got = Vec::new();
        while self.used_seen != idx {
            let at = self.used() + 4 + 8 * u64::from(self.used_seen % QUEUE_SIZE);
            let id: u32 = mem.read_obj(GuestAddress(at)).unwrap();
            let len: u32 = mem.read_obj(GuestAddress(at + 4)).unwrap();
            assert!(
                id.is_multiple_of(2) && id < u32::from(QUEUE_SIZE),
                "used id {id} was never a head"
            );
            let slot = (id / 2) as u16;
            let (addr, writable) = self
                .out
                .remove(&slot)
                .unwrap_or_else(|| panic!("chain {id} used but not offered (or used twice)"));
            assert!(
                u64::from(len) <= writable,
                "used length {len} > {writable} writable bytes"
            );
            got.push((addr, writable, len));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        got
    }
}

struct Guest {
    mem: GuestMemoryMmap,
    rx: Ring,
    tx: Ring,
    /// (host port, guest port) of the connections the device asked for
    /// or answered: what a guest would answer and send to.
    peers: Vec<(u32, u32)>,
}

impl Guest {
    /// Checks what the device put in receive buffers and learns ports.
    fn check_rx(&mut self) {
        for (addr, writable, len) in self.rx.take_used(&self.mem) {
            let len = len as usize;
            if len == 0 {
                continue;
            }
            assert!(
                len >= HEADER_SIZE,
                "a {len}-byte packet: a header cut short"
            );
            // The header sits in the first descriptor when it is large
            // enough, which is how every chain here that gets one is laid
            // out (a split chain has a 44-byte first part).
            let mut b = [0u8; HEADER_SIZE];
            self.mem.read_slice(&mut b, GuestAddress(addr)).unwrap();
            let h = Header::from_bytes(&b);
            assert_eq!(
                h.len as usize,
                len - HEADER_SIZE,
                "header length vs used length"
            );
            assert!(len as u64 <= writable);
            assert_eq!((h.src_cid, h.dst_cid), (HOST_CID, GUEST_CID), "{h:?}");
            if (h.op == Op::Request as u16 || h.op == Op::Response as u16) && self.peers.len() < 64
            {
                self.peers.push((h.src_port, h.dst_port));
            }
        }
    }

    fn check_tx(&mut self) {
        for (_, _, len) in self.tx.take_used(&self.mem) {
            assert_eq!(len, 0, "the device wrote into a transmit chain");
        }
    }

    /// A receive buffer of any size and layout.
    fn rx_buffer(&mut self, u: &mut Unstructured) -> Result<()> {
        let size: u64 = match u.int_in_range(0..=5)? {
            0 | 1 => HEADER_SIZE as u64,
            2 => u.int_in_range(0..=HEADER_SIZE as u64 - 1)?,
            3 => HEADER_SIZE as u64 + u.int_in_range(1..=16)?,
            _ => u.int_in_range(HEADER_SIZE as u64..=MAX_BUFFER)?,
        };
        let flags = if u.ratio(1, 16)? { 0 } else { WRITE };
        let Some((slot, mut addr)) = self.rx.free_slot() else {
            return Ok(());
        };
        if u.ratio(1, 32)? {
            addr = MEM_SIZE as u64 - 8;
        }
        let len = size as u32;
        if size > HEADER_SIZE as u64 && u.arbitrary()? {
            let header = HEADER_SIZE as u32;
            let parts = [
                (addr, header, flags),
                (addr + u64::from(header), len - header, flags),
            ];
            self.rx.push(&self.mem, slot, &parts);
        } else {
            self.rx.push(&self.mem, slot, &[(addr, len, flags)]);
        }
        Ok(())
    }

    /// A guest packet, mostly well addressed, to a port it learnt.
    fn tx_packet(&mut self, u: &mut Unstructured) -> Result<()> {
        let (host_port, guest_port) = match u.int_in_range(0..=3)? {
            0 | 1 if !self.peers.is_empty() => *u.choose(&self.peers)?,
            0 => (HOST_LISTEN_PORT, 1234),
            1 | 2 => (HOST_LISTEN_PORT, u.int_in_range(1024..=1031)?),
            _ => (u.arbitrary()?, u.arbitrary()?),
        };
        let payload_len = usize::from(u.arbitrary::<u8>()?);
        let payload = u.bytes(payload_len)?.to_vec();
        let bad = u.ratio(1, 16)?;
        let h = Header {
            src_cid: if bad { u.arbitrary()? } else { GUEST_CID },
            dst_cid: if bad { u.arbitrary()? } else { HOST_CID },
            src_port: guest_port,
            dst_port: host_port,
            len: if u.ratio(1, 16)? {
                u.arbitrary()?
            } else {
                payload.len() as u32
            },
            type_: if u.ratio(1, 32)? { u.arbitrary()? } else { 1 },
            op: u.int_in_range(0..=8)?,
            flags: u.int_in_range(0..=3)?,
            buf_alloc: if u.arbitrary()? {
                u.arbitrary()?
            } else {
                256 << 10
            },
            fwd_cnt: u.arbitrary()?,
        };
        let Some((slot, hdr)) = self.tx.free_slot() else {
            return Ok(());
        };
        self.mem
            .write_slice(&h.to_bytes(), GuestAddress(hdr))
            .unwrap();
        let data = hdr + HEADER_SIZE as u64;
        self.mem.write_slice(&payload, GuestAddress(data)).unwrap();
        let header_len = HEADER_SIZE as u32;
        let payload_len = payload.len() as u32;
        if payload.is_empty() {
            self.tx.push(&self.mem, slot, &[(hdr, header_len, 0)]);
        } else if u.arbitrary()? {
            let parts = [(hdr, header_len, 0), (data, payload_len, 0)];
            self.tx.push(&self.mem, slot, &parts);
        } else {
            self.tx
                .push(&self.mem, slot, &[(hdr, header_len + payload_len, 0)]);
        }
        Ok(())
    }
}

/// Wakes the handler for the listener and every live source, as epoll
/// would when all of them are ready.
fn poll(handler: &mut QueueHandler, sources: &Sources) {
    handler.on_wake(Wake::Source(0), sources);
    let live: Vec<usize> = sources.live.borrow().iter().copied().collect();
    for index in live {
        handler.on_wake(Wake::Source(index), sources);
    }
}

fn run(u: &mut Unstructured, host: &Host) -> Result<()> {
    let event_idx = u.arbitrary()?;
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let mut guest = Guest {
        rx: Ring::new(RX_RING, RX_BUFFERS),
        tx: Ring::new(TX_RING, TX_BUFFERS),
        mem: mem.clone(),
        peers: Vec::new(),
    };
    let muxer = Muxer::new(host.config.clone(), host.socket.listener().unwrap());
    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let queue = |ring: &Ring| DeviceQueue {
        queue: ring.queue(event_idx),
        kick: EventFd::new(EFD_NONBLOCK).unwrap(),
    };
    let (rx, tx) = (queue(&guest.rx), queue(&guest.tx));
    let mut handler = QueueHandler::new(muxer, GUEST_CID, mem, irq, rx, tx);
    let sources = Sources::default();
    let mut clients: Vec<UnixStream> = Vec::new();
    let mut scratch = vec![0u8; 64 << 10];

    for _ in 0..256 {
        if u.is_empty() {
            break;
        }
        match u.int_in_range(0..=8)? {
            // A host program connects and writes its handshake line.
            0 if clients.len() < MAX_CLIENTS => {
                let mut text = match u.int_in_range(0..=2)? {
                    0 => format!("CONNECT {}\n", u.arbitrary::<u32>()?).into_bytes(),
                    1 => format!("CONNECT {}\n", u.int_in_range(1024..=1031)?).into_bytes(),
                    _ => {
                        let n = usize::from(u.int_in_range(0..=48u8)?);
                        u.bytes(n)?.to_vec()
                    }
                };
                if u.ratio(1, 8)? {
                    text.truncate(u.int_in_range(0..=text.len())?);
                }
                let mut stream = UnixStream::connect(&host.config.socket).unwrap();
                stream.set_nonblocking(true).unwrap();
                let _ = stream.write(&text);
                clients.push(stream);
                poll(&mut handler, &sources);
            }
            // A host program writes, up to 64 KiB.
            1 | 2 if !clients.is_empty() => {
                let i = u.choose_index(clients.len())?;
                let n = usize::from(u.arbitrary::<u16>()?);
                let fill: u8 = u.arbitrary()?;
                scratch[..n].fill(fill);
                let _ = clients[i].write(&scratch[..n]);
                poll(&mut handler, &sources);
            }
            // A host program reads what the guest sent it.
            3 if !clients.is_empty() => {
                let i = u.choose_index(clients.len())?;
                let _ = clients[i].read(&mut scratch);
                poll(&mut handler, &sources);
            }
            // A host program hangs up, one way or both, or goes.
            4 if !clients.is_empty() => {
                let i = u.choose_index(clients.len())?;
                match u.int_in_range(0..=3)? {
                    0 => drop(clients.swap_remove(i)),
                    1 => clients[i].shutdown(Shutdown::Read).unwrap_or(()),
                    2 => clients[i].shutdown(Shutdown::Write).unwrap_or(()),
                    _ => clients[i].shutdown(Shutdown::Both).unwrap_or(()),
                }
                poll(&mut handler, &sources);
            }
            // The program on host port 5000 takes a guest's connection.
            5 if clients.len() < MAX_CLIENTS => {
                if let Ok((stream, _)) = host.listening.accept() {
                    stream.set_nonblocking(true).unwrap();
                    clients.push(stream);
                }
            }
            // The guest offers receive buffers.
            6 => {
                for _ in 0..u.int_in_range(1..=4)? {
                    guest.rx_buffer(u)?;
                }
                handler.on_wake(Wake::Queue(RX_QUEUE), &sources);
            }
            // The guest sends packets.
            7 => {
                for _ in 0..u.int_in_range(1..=4)? {
                    guest.tx_packet(u)?;
                }
                handler.on_wake(Wake::Queue(TX_QUEUE), &sources);
            }
            _ => poll(&mut handler, &sources),
        }
        guest.check_rx();
        guest.check_tx();
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let host = host();
    let mut u = Unstructured::new(data);
    let _ = run(&mut u, host);
    // Empty both backlogs, so the next run starts with none.
    while host.backlog.accept().is_ok() {}
    while host.listening.accept().is_ok() {}
});
