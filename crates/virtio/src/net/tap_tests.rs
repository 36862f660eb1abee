//! The whole device on a real TAP, in a private network namespace: the
//! guest's ARP request goes out through the TAP and the host kernel's
//! reply comes back into receive buffers posted after it arrived (so the
//! worker had to stop watching the TAP, then start again).
#![allow(clippy::cast_possible_truncation)] // small fixed test values

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::{features, Net, NetConfig, Tap, HEADER_LEN};
use crate::{ActivateContext, GuestMemoryMmap, IrqTrigger, VirtioDevice};

const WRITE: u16 = virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE as u16;
const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc];
const GUEST_IP: [u8; 4] = [10, 200, 0, 2];
const HOST_IP: [u8; 4] = [10, 200, 0, 1];
const TX_FRAME: u64 = 0x10_0000;
const RX_BUFFERS: u64 = 0x20_0000;

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?}");
}

/// An ARP request for the host's address, behind an empty virtio-net header.
fn arp_request() -> Vec<u8> {
    let mut p = vec![0u8; HEADER_LEN];
    p.extend([0xff; 6]);
    p.extend(GUEST_MAC);
    p.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    p.extend(GUEST_MAC);
    p.extend(GUEST_IP);
    p.extend([0; 6]);
    p.extend(HOST_IP);
    p
}

/// Whether `frame` (after its header) is an ARP reply to the guest.
fn is_arp_reply(packet: &[u8]) -> bool {
    let f = &packet[HEADER_LEN.min(packet.len())..];
    f.len() >= 42 && f[..6] == GUEST_MAC && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2]
}

fn used_idx(mem: &GuestMemoryMmap, q: &MockSplitQueue<GuestMemoryMmap>) -> u16 {
    mem.read_obj(GuestAddress(q.used_addr().0 + 2)).unwrap()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "no {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn arp_round_trip_through_a_real_tap() {
    std::thread::spawn(|| {
        // SAFETY: unshare takes flags only; it moves this thread (and the
        // `ip` commands it starts) alone into a new network namespace.
        let ret = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(ret, 0, "unshare: {}", std::io::Error::last_os_error());
        let tap = Arc::new(Tap::open("ptsm-e2e").expect("open a TAP"));
        ip(&["addr", "add", "10.200.0.1/24", "dev", "ptsm-e2e"]);
        ip(&["link", "set", "ptsm-e2e", "up"]);

        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
        let rx = MockSplitQueue::create(&mem, GuestAddress(0x1_0000), 16);
        let tx = MockSplitQueue::create(&mem, GuestAddress(0x2_0000), 16);
        let mut queues: Vec<Queue> = vec![rx.create_queue().unwrap(), tx.create_queue().unwrap()];
        for q in &mut queues {
            q.set_event_idx(true);
        }
        let evts: Vec<EventFd> = (0..2)
            .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
            .collect();
        let kicks: Vec<EventFd> = evts.iter().map(|e| e.try_clone().unwrap()).collect();
        let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
        let config = NetConfig::parse("tap=ptsm-e2e,mac=52:54:00:aa:bb:cc").unwrap();
        let mut net = Net::new(&config, tap);
        net.set_acked_features(
            net.avail_features() & !features::MRG_RXBUF | crate::features::RING_EVENT_IDX,
        );
        net.activate(ActivateContext {
            mem: mem.clone(),
            interrupt: irq.clone(),
            queues,
            queue_evts: evts,
        })
        .expect("activate");

        // The guest sends; no receive buffers yet.
        let request = arp_request();
        mem.write_slice(&request, GuestAddress(TX_FRAME)).unwrap();
        let desc = SplitDescriptor::new(TX_FRAME, request.len() as u32, 0, 0);
        tx.add_desc_chains(&[RawDescriptor::from(desc)], 0).unwrap();
        kicks[1].write(1).unwrap();
        wait_until("transmit completion", || used_idx(&mem, &tx) == 1);
        // Let the reply (and the kernel's IPv6 chatter) reach the TAP.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(used_idx(&mem, &rx), 0);

        let descs: Vec<RawDescriptor> = (0..8)
            .map(|i| {
                RawDescriptor::from(SplitDescriptor::new(
                    RX_BUFFERS + i * 0x1000,
                    2048,
                    WRITE,
                    0,
                ))
            })
            .collect();
        rx.add_desc_chains(&descs, 0).unwrap();
        kicks[0].write(1).unwrap();
        wait_until("ARP reply", || {
            let n = u64::from(used_idx(&mem, &rx));
            (0..n).any(|i| {
                let at = rx.used_addr().0 + 4 + 8 * i;
                let head: u32 = mem.read_obj(GuestAddress(at)).unwrap();
                let len: u32 = mem.read_obj(GuestAddress(at + 4)).unwrap();
                let mut packet = vec![0u8; len as usize];
                mem.read_slice(
                    &mut packet,
                    GuestAddress(RX_BUFFERS + u64::from(head) * 0x1000),
                )
                .unwrap();
                is_arp_reply(&packet)
            })
        });
        assert_ne!(irq.status(), 0, "the guest was interrupted");
        net.reset();
    })
    .join()
    .unwrap();
}
