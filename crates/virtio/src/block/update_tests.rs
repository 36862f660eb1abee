//! Run-time updates of a disk (a new image, new limits) through its
//! handle, on a device whose worker serves a mock queue.
#![allow(clippy::cast_possible_truncation)] // small fixed test values

use std::sync::Arc;
use std::time::{Duration, Instant};

use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::request::types;
use super::tests::{
    mem, ones_without_fallocate, open, range, request, unlimited, with_kick, zeroed_bytes, Image,
    Rig, DATA, STATUS,
};
use super::*;
use crate::interrupt::INT_CONFIG;
use crate::rate_limiter::{LimiterUpdate, TokenBucketConfig};
use crate::{ActivateContext, GuestMemoryMmap, IrqTrigger, UpdateError, VirtioDevice};

const MIB: u64 = 1 << 20;

/// An image of `size` bytes, each `byte`.
fn image_of(size: u64, byte: u8) -> Image {
    let image = Image::new(0);
    std::fs::write(&image.0, vec![byte; size as usize]).unwrap();
    image
}

fn capacity(block: &Block) -> u64 {
    let mut bytes = [0u8; 8];
    block.read_config(0, &mut bytes);
    u64::from_le_bytes(bytes)
}

/// A device activated on a queue of `mock`, its features taken first
/// unless they were.
struct Running {
    block: Block,
    irq: Arc<IrqTrigger>,
    kick: EventFd,
    used_addr: u64,
}

fn activate(
    mut block: Block,
    mem: &GuestMemoryMmap,
    mock: &MockSplitQueue<GuestMemoryMmap>,
) -> Running {
    let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let evt = EventFd::new(EFD_NONBLOCK).unwrap();
    let kick = evt.try_clone().unwrap();
    if block.acked_features == 0 {
        block.set_acked_features(block.avail_features());
    }
    block
        .activate(ActivateContext {
            mem: mem.clone(),
            interrupt: irq.clone(),
            queues: vec![mock.create_queue().unwrap()],
            queue_evts: vec![evt],
        })
        .unwrap();
    Running {
        block,
        irq,
        kick,
        used_addr: mock.used_addr().0,
    }
}

impl Running {
    /// Kicks the queue and waits for the worker to have served `n`
    /// requests in all.
    fn serve(&self, mem: &GuestMemoryMmap, n: u16) {
        self.kick.write(1).unwrap();
        let start = Instant::now();
        loop {
            let used: u16 = mem.read_obj(GuestAddress(self.used_addr + 2)).unwrap();
            if used >= n {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{used} of {n} served"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn read_back(mem: &GuestMemoryMmap, at: u64) -> [u8; 512] {
    let mut data = [0u8; 512];
    mem.read_slice(&mut data, GuestAddress(at)).unwrap();
    data
}

fn new_path(image: &Image) -> BlockUpdate {
    BlockUpdate {
        path: Some(image.0.clone()),
        limits: LimiterUpdate::default(),
    }
}

#[test]
fn a_new_image_is_served_after_the_update_and_the_guest_is_told() {
    let (old, new) = (image_of(MIB, 0xaa), image_of(2 * MIB, 0xbb));
    let block = Block::new(old.config(",moderation=off")).unwrap();
    let handle = block.handle();
    let serial = *handle.lock().disk.id();
    let mem = mem();
    let mock = MockSplitQueue::new(&mem, 64);
    request(&mem, &mock, 0, types::IN, 0, (DATA, 512));
    let running = activate(block, &mem, &mock);
    running.serve(&mem, 1);
    assert_eq!(read_back(&mem, DATA), [0xaa; 512]);
    assert_eq!(capacity(&running.block), MIB / 512);
    let generation = running.block.config_generation();
    running.irq.take_status();

    handle.update(new_path(&new)).unwrap();
    assert_eq!(capacity(&running.block), 2 * MIB / 512, "the new size");
    assert_ne!(running.block.config_generation(), generation);
    assert_eq!(running.irq.take_status(), INT_CONFIG, "the guest is told");
    assert_eq!(handle.config().path, new.0);

    request(&mem, &mock, 3, types::IN, 2047, (DATA + 0x1000, 512));
    request(&mem, &mock, 6, types::GET_ID, 0, (DATA + 0x2000, 20));
    running.serve(&mem, 3);
    assert_eq!(
        read_back(&mem, DATA + 0x1000),
        [0xbb; 512],
        "read from the new image past the old end"
    );
    let mut id = [0u8; ID_BYTES];
    mem.read_slice(&mut id, GuestAddress(DATA + 0x2000))
        .unwrap();
    assert_eq!(id, serial, "the serial number stays");
    let m = running.block.metrics();
    assert_eq!(m.update_count.get(), 1);
    assert_eq!((m.read_count.get(), m.read_bytes.get()), (2, 1024));
    assert!(m.queue_event_count.get() >= 1, "the guest's kicks");
}

#[test]
fn an_image_that_cannot_be_opened_changes_nothing() {
    let old = image_of(MIB, 0xaa);
    let empty = image_of(0, 0);
    let block = Block::new(old.config(",moderation=off")).unwrap();
    let handle = block.handle();
    let mem = mem();
    let mock = MockSplitQueue::new(&mem, 64);
    let running = activate(block, &mem, &mock);
    running.irq.take_status();
    let ops = TokenBucketConfig {
        size: 5,
        refill: Duration::from_secs(1),
        one_time_burst: 0,
    };
    let missing = std::env::temp_dir().join(format!("no-such-disk-{}.img", std::process::id()));
    let update = BlockUpdate {
        path: Some(missing.clone()),
        limits: LimiterUpdate {
            bandwidth: None,
            ops: Some(Some(ops)),
        },
    };
    let err = handle.update(update).unwrap_err();
    assert!(matches!(err, UpdateError::Block(_)), "{err}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    let err = handle.update(new_path(&empty)).unwrap_err();
    assert!(
        err.to_string().contains("less than one 512-byte sector"),
        "{err}"
    );
    assert_eq!(running.block.metrics().update_fails.get(), 2);
    assert_eq!(running.block.metrics().update_count.get(), 0);
    assert_eq!(
        handle.config(),
        old.config(",moderation=off"),
        "neither path nor limits changed"
    );
    assert_eq!(capacity(&running.block), MIB / 512);
    assert_eq!(running.irq.take_status(), 0, "nothing to tell the guest");
    request(&mem, &mock, 0, types::IN, 0, (DATA, 512));
    running.serve(&mem, 1);
    assert_eq!(
        read_back(&mem, DATA),
        [0xaa; 512],
        "the old image still serves"
    );
}

#[test]
fn an_update_before_activation_takes_effect_at_activation() {
    let (old, new) = (image_of(MIB, 0xaa), image_of(3 * MIB, 0xbb));
    let mut block = Block::new(old.config(",moderation=off,ops=1/60s")).unwrap();
    let handle = block.handle();
    // The driver took the features (and read the capacity) already.
    block.set_acked_features(block.avail_features());
    let update = BlockUpdate {
        path: Some(new.0.clone()),
        limits: LimiterUpdate {
            bandwidth: None,
            ops: Some(None),
        },
    };
    handle.update(update).unwrap();
    assert_eq!(capacity(&block), 3 * MIB / 512, "in config space at once");
    assert_eq!(handle.config().ops, None);
    let mem = mem();
    let mock = MockSplitQueue::new(&mem, 64);
    request(&mem, &mock, 0, types::IN, 0, (DATA, 512));
    request(&mem, &mock, 3, types::IN, 1, (DATA + 0x1000, 512));
    let running = activate(block, &mem, &mock);
    assert_eq!(
        running.irq.take_status(),
        INT_CONFIG,
        "the capacity the driver read is stale"
    );
    running.serve(&mem, 2);
    assert_eq!(read_back(&mem, DATA), [0xbb; 512]);
    assert_eq!(
        read_back(&mem, DATA + 0x1000),
        [0xbb; 512],
        "no ops limit left"
    );

    // An update before the driver reads anything is nothing to tell.
    let block = Block::new(old.config(",moderation=off")).unwrap();
    block.handle().update(new_path(&new)).unwrap();
    let mock = MockSplitQueue::new(&mem, 64);
    let running = activate(block, &mem, &mock);
    assert_eq!(running.irq.take_status(), 0);
}

#[test]
fn new_limits_change_what_the_worker_charges() {
    let image = image_of(MIB, 0xaa);
    let block = Block::new(image.config(",moderation=off,ops=1/60s")).unwrap();
    let handle = block.handle();
    let mem = mem();
    let mock = MockSplitQueue::new(&mem, 64);
    for i in 0..3u16 {
        request(
            &mem,
            &mock,
            i * 3,
            types::IN,
            0,
            (DATA + u64::from(i) * 0x1000, 512),
        );
    }
    let running = activate(block, &mem, &mock);
    running.serve(&mem, 1);
    std::thread::sleep(Duration::from_millis(50));
    let used = |mem: &GuestMemoryMmap| -> u16 {
        mem.read_obj(GuestAddress(running.used_addr + 2)).unwrap()
    };
    assert_eq!(used(&mem), 1, "one operation a minute");
    handle
        .update(BlockUpdate {
            path: None,
            limits: LimiterUpdate {
                bandwidth: Some(Some(TokenBucketConfig {
                    size: 1 << 20,
                    refill: Duration::from_secs(1),
                    one_time_burst: 0,
                })),
                ops: Some(Some(TokenBucketConfig {
                    size: 2,
                    refill: Duration::from_secs(60),
                    one_time_burst: 0,
                })),
            },
        })
        .unwrap();
    // No kick: the blocked worker tries again under the new limits.
    let start = Instant::now();
    while used(&mem) < 3 {
        assert!(start.elapsed() < Duration::from_secs(5), "still limited");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        running.irq.status() & INT_CONFIG,
        0,
        "limits are not configuration"
    );
    let config = handle.config();
    assert_eq!(config.ops.map(|o| o.size), Some(2));
    assert_eq!(config.bandwidth.map(|b| b.size), Some(1 << 20));
}

#[test]
fn a_paused_worker_takes_an_update() {
    let (old, new) = (image_of(MIB, 0xaa), image_of(2 * MIB, 0xbb));
    let block = Block::new(old.config(",moderation=off")).unwrap();
    let handle = block.handle();
    let mem = mem();
    let mock = MockSplitQueue::new(&mem, 64);
    let running = activate(block, &mem, &mock);
    let worker = running.block.worker().unwrap();
    assert!(worker.pause(Duration::from_secs(5)));
    handle.update(new_path(&new)).unwrap();
    assert_eq!(capacity(&running.block), 2 * MIB / 512);
    request(&mem, &mock, 0, types::IN, 0, (DATA, 512));
    running.kick.write(1).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let used: u16 = mem.read_obj(GuestAddress(running.used_addr + 2)).unwrap();
    assert_eq!(used, 0, "still paused");
    running.block.worker().unwrap().resume();
    running.serve(&mem, 1);
    assert_eq!(read_back(&mem, DATA), [0xbb; 512]);
}

#[test]
fn read_only_stays_read_only() {
    let (old, new) = (image_of(MIB, 0xaa), image_of(MIB, 0xbb));
    let block = Block::new(old.config(",moderation=off,readonly=on")).unwrap();
    let handle = block.handle();
    let mem = mem();
    let mock = MockSplitQueue::new(&mem, 64);
    let running = activate(block, &mem, &mock);
    handle.update(new_path(&new)).unwrap();
    assert!(handle.lock().disk.readonly());
    mem.write_slice(&[0x11; 512], GuestAddress(DATA)).unwrap();
    request(&mem, &mock, 0, types::OUT, 0, (DATA, 512));
    running.serve(&mem, 1);
    let status: u8 = mem.read_obj(GuestAddress(STATUS)).unwrap();
    assert_eq!(status, status::IOERR);
    assert_eq!(new.bytes(), vec![0xbb; MIB as usize]);
}

#[test]
fn a_request_in_progress_ends_on_the_image_it_started_on() {
    let size = 16 << 20;
    let (old, disk) = ones_without_fallocate(size);
    let new = image_of(size as u64, 1);
    let replacement = Arc::new(disk.successor(&new.0).unwrap());
    let rig = Rig::new(disk, unlimited(), |mem, mock| {
        range(mem, 0, (size / 512) as u32, 0);
        request(mem, mock, 0, types::WRITE_ZEROES, 0, (DATA, 16));
        request(mem, mock, 3, types::IN, 0, (DATA + 0x1000, 512));
    });
    let (mut rig, _kick) = with_kick(rig);
    rig.queue.process();
    assert_eq!(rig.used_count(), 0, "a step of the zeros is written");
    rig.queue
        .update(Some(replacement), &LimiterUpdate::default());
    while rig.used_count() < 2 {
        rig.queue.process();
    }
    assert_eq!(zeroed_bytes(&old), size, "all zeros went to the old image");
    assert_eq!(zeroed_bytes(&new), 0);
    assert_eq!(
        read_back(&rig.mem, DATA + 0x1000),
        [1; 512],
        "the next read, from the new one"
    );
    assert_eq!([rig.status(0), rig.status(3)], [status::OK, status::OK]);
}

#[test]
fn an_unopened_image_is_refused_through_open_too() {
    // Disk::successor keeps O_DIRECT: a file system without it says so.
    let image = image_of(MIB, 0);
    let disk = open(&image, "");
    assert!(disk
        .successor(std::path::Path::new("/nonexistent/disk.img"))
        .is_err());
}
