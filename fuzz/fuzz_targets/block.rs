//! Serves a virtio-blk queue whose rings, descriptors, request headers,
//! data and discard ranges are all fuzzer-chosen guest memory, against a
//! small image file: malformed requests, wrong directions, sectors past
//! the end, chains out of memory or looping must end in a status byte or
//! an empty used entry, never a panic or a hang.
//!
//! Regression input (issue 25, item 3, fixed):
//! corpus/block/seed-regression-request-split-address-overflow, a readable
//! descriptor at 0xffff_ffff_ffff_fff0 (32 bytes) that overflowed the
//! address arithmetic in `request::split` once the header was split off.
#![no_main]

use std::fs::File;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pointsman_fuzz::{guest_memory, queue, QUEUE_BYTES};
use virtio::block::{BlockQueue, Disk, MODERATION};
use virtio::moderation::Moderation;
use virtio::rate_limiter::{RateLimiter, TokenBucketConfig};
use virtio::IrqTrigger;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM_SIZE: usize = 0x1_0000;
const DISK_SIZE: u64 = 64 * 1024;

/// One image file for the whole run, emptied before each input.
fn image() -> &'static File {
    static IMAGE: OnceLock<File> = OnceLock::new();
    IMAGE.get_or_init(|| {
        // tmpfs when there is one: flush requests cost nothing there.
        let dir = std::path::Path::new("/dev/shm");
        let dir = if dir.is_dir() {
            dir.to_owned()
        } else {
            std::env::temp_dir()
        };
        let path = dir.join(format!("fuzz-block-{}.img", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        file
    })
}

fuzz_target!(|data: &[u8]| {
    // A queue, two bytes of choices, then guest memory.
    if data.len() < QUEUE_BYTES + 2 {
        return;
    }
    let (header, memory) = data.split_at(QUEUE_BYTES + 2);
    let Some(queue) = queue(header) else {
        return;
    };
    let mem = guest_memory(&[(0, MEM_SIZE)], memory);
    let choices = &header[QUEUE_BYTES..];
    let file = image();
    file.set_len(0).unwrap();
    file.set_len(DISK_SIZE).unwrap();
    let disk = Disk::from_file(file.try_clone().unwrap(), choices[0] & 2 != 0).unwrap();
    // Sometimes a tiny bucket, so requests get put back for the timer.
    let ops = (choices[0] & 4 != 0).then(|| TokenBucketConfig {
        size: u64::from(choices[1] % 4 + 1),
        refill: Duration::from_secs(1),
        one_time_burst: 0,
    });
    // Sometimes a small byte budget too, so that large requests (and
    // write-zeroes and discard, once they are charged) wait for it.
    let bandwidth = (choices[0] & 32 != 0).then(|| TokenBucketConfig {
        size: 512 * (1 + u64::from(choices[1] >> 2)),
        refill: Duration::from_secs(1),
        one_time_burst: 0,
    });
    let limiter = RateLimiter::new(bandwidth, ops).unwrap();
    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let mut block = BlockQueue::new(queue, mem, irq, Arc::new(disk), limiter);
    if choices[0] & 16 != 0 {
        block = block.with_moderation(Moderation::new(MODERATION).unwrap());
    }
    block.process();
    if choices[0] & 8 != 0 {
        // Go on as the timers would, without waiting for them.
        block.on_timer();
        block.on_moderation_timer();
    }
});
