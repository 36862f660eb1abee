//! Runs virtio-net's receive and transmit loops over queues whose rings,
//! descriptors and buffers are all fuzzer-chosen guest memory, with
//! fuzzer-chosen negotiated features and received frame lengths: chains
//! that loop, leave memory, point the wrong way or are too short or long
//! must end in a used entry or nothing, never a panic or a hang.
#![no_main]

use std::collections::VecDeque;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use virtio::net::{features, FrameIo, NetQueues};
use virtio::rate_limiter::RateLimiter;
use virtio::{GuestMemoryMmap, IrqTrigger, Wake};
use virtio_queue::{Queue, QueueState};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM_SIZE: usize = 0x1_0000;
/// Two queue states, the features, four frame lengths.
const HEADER_LEN: usize = 13 + 13 + 1 + 8;

/// Frames of the chosen lengths in; whatever the device sends, dropped.
struct FuzzTap(VecDeque<usize>);

impl FrameIo for FuzzTap {
    fn read_frame(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.pop_front() {
            Some(len) => Ok(len.min(buf.len())),
            None => Err(std::io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_frame(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
}

fn queue(b: &[u8]) -> Option<Queue> {
    let word = |i: usize| u64::from(u16::from_le_bytes([b[i], b[i + 1]]));
    let state = QueueState {
        max_size: 256,
        size: (u16::from(b[0]) % 256).max(1).next_power_of_two().min(256),
        ready: true,
        desc_table: word(1) & !0xf,
        avail_ring: word(3) & !0x1,
        used_ring: word(5) & !0x3,
        next_avail: u16::from_le_bytes([b[7], b[8]]),
        next_used: u16::from_le_bytes([b[9], b[10]]),
        event_idx_enabled: b[11] & 1 != 0,
    };
    Queue::try_from(state).ok()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_LEN {
        return;
    }
    let (header, memory) = data.split_at(HEADER_LEN);
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    let _ = mem.write_slice(&memory[..memory.len().min(MEM_SIZE)], GuestAddress(0));
    let (Some(rx), Some(tx)) = (queue(&header[..13]), queue(&header[13..26])) else {
        return;
    };
    let pick = header[26];
    let mut acked = 0;
    for (bit, feature) in [
        features::MRG_RXBUF,
        features::CSUM,
        features::HOST_TSO4,
        features::HOST_TSO6,
    ]
    .into_iter()
    .enumerate()
    {
        if pick & (1 << bit) != 0 {
            acked |= feature;
        }
    }
    let frames = header[27..]
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])))
        .collect();
    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let limiters = (
        RateLimiter::new(None, None).unwrap(),
        RateLimiter::new(None, None).unwrap(),
    );
    let mut net = NetQueues::new(FuzzTap(frames), mem, irq, rx, tx, acked, limiters);
    net.handle(Wake::Queue(1));
    net.handle(Wake::Source(0));
    net.handle(Wake::Queue(0));
    net.handle(Wake::Queue(1));
});
