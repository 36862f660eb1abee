//! Runs virtio-net's receive and transmit loops over queues whose rings,
//! descriptors and buffers are all fuzzer-chosen guest memory, with
//! fuzzer-chosen negotiated features and received frame lengths: chains
//! that loop, leave memory, point the wrong way or are too short or long
//! must end in a used entry or nothing, never a panic or a hang. Some
//! runs put small rate limits and interrupt moderation on both queues and
//! fire their timers at once, as the worker would after they expire.
#![no_main]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pointsman_fuzz::{guest_memory, queue, QUEUE_BYTES};
use virtio::moderation::Moderation;
use virtio::net::queues::MODERATION;
use virtio::net::{features, FrameIo, NetQueues};
use virtio::rate_limiter::{RateLimiter, TokenBucketConfig};
use virtio::{IrqTrigger, Wake};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM_SIZE: usize = 0x1_0000;
/// Two queue states, the features, four frame lengths.
const HEADER_LEN: usize = 2 * QUEUE_BYTES + 1 + 8;

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

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_LEN {
        return;
    }
    let (header, memory) = data.split_at(HEADER_LEN);
    let mem = guest_memory(&[(0, MEM_SIZE)], memory);
    let (Some(rx), Some(tx)) = (queue(header), queue(&header[QUEUE_BYTES..])) else {
        return;
    };
    let pick = header[2 * QUEUE_BYTES];
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
    let frames = header[2 * QUEUE_BYTES + 1..]
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])))
        .collect();
    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    // A few frames and a few KiB per second, so the limits bite.
    let limited = pick & 0x10 != 0;
    let limiter = || {
        let bucket = |size| TokenBucketConfig {
            size,
            refill: Duration::from_secs(1),
            one_time_burst: 0,
        };
        let (bandwidth, ops) = if limited {
            (Some(bucket(4096)), Some(bucket(2)))
        } else {
            (None, None)
        };
        RateLimiter::new(bandwidth, ops).unwrap()
    };
    let limiters = (limiter(), limiter());
    let mut net = NetQueues::new(FuzzTap(frames), mem, irq, rx, tx, acked, limiters);
    if pick & 0x20 != 0 {
        let moderation = || Moderation::new(MODERATION).unwrap();
        net.set_moderation(moderation(), moderation());
    }
    net.handle(Wake::Queue(1));
    net.handle(Wake::Source(0));
    net.handle(Wake::Queue(0));
    net.handle(Wake::Queue(1));
    if pick & 0x40 != 0 {
        // Every timer source (rate limits, then moderation) fires.
        for source in 1..=4 {
            net.handle(Wake::Source(source));
        }
        net.handle(Wake::Queue(0));
        net.handle(Wake::Queue(1));
    }
});
