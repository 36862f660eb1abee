//! What the fuzz targets share: guest memory and virtqueues built from
//! fuzzer bytes.

use virtio::balloon::{BalloonState, BalloonStats};
use virtio::net::NetState;
use virtio::{CoreState, DeviceState, GuestMemoryMmap, SavedQueue};
use virtio_queue::{Queue, QueueState};
use vm_memory::{Bytes, GuestAddress};

/// How many bytes `queue` reads.
pub const QUEUE_BYTES: usize = 12;

/// A ready split queue described by `QUEUE_BYTES` fuzzer bytes: its size,
/// where its descriptor table and rings are (aligned as the spec requires,
/// anywhere else the fuzzer likes), its next indices and whether event-idx
/// is on. `None` when virtio-queue refuses the description.
pub fn queue(b: &[u8]) -> Option<Queue> {
    let b: &[u8; QUEUE_BYTES] = b.get(..QUEUE_BYTES)?.try_into().ok()?;
    let word = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let state = QueueState {
        max_size: 256,
        size: u16::from(b[0]).max(1).next_power_of_two().min(256),
        ready: true,
        desc_table: u64::from(word(1)) & !0xf,
        avail_ring: u64::from(word(3)) & !0x1,
        used_ring: u64::from(word(5)) & !0x3,
        next_avail: word(7),
        next_used: word(9),
        event_idx_enabled: b[11] & 1 != 0,
    };
    Queue::try_from(state).ok()
}

/// Guest memory made of `regions` (guest address, size), filled in order
/// from `data`; what `data` does not cover stays zero.
pub fn guest_memory(regions: &[(u64, usize)], mut data: &[u8]) -> GuestMemoryMmap {
    let ranges: Vec<(GuestAddress, usize)> = regions
        .iter()
        .map(|&(addr, size)| (GuestAddress(addr), size))
        .collect();
    let mem = GuestMemoryMmap::from_ranges(&ranges).expect("fixed test regions");
    for &(addr, size) in regions {
        let (here, rest) = data.split_at(data.len().min(size));
        mem.write_slice(here, GuestAddress(addr))
            .expect("inside the region");
        data = rest;
    }
    mem
}

/// Guest RAM the loader targets boot into: small enough that a kernel
/// file claiming more is refused, and the mapping stays cheap to make.
pub const BOOT_RAM: usize = 64 << 20;

/// What the VMM does with a kernel file after reading it (`vmm`'s
/// `machine.rs`): load it, put an initrd where its setup header allows,
/// write the command line and the boot information. Errors are the
/// expected answer to a bad file; only a panic is a finding.
pub fn boot_kernel(image: &[u8]) {
    use arch::x86_64::memory::memory_map;
    use std::io::Cursor;

    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), BOOT_RAM)]).expect("boot RAM");
    let Ok(kernel) = boot::load_kernel(&mem, &mut Cursor::new(image)) else {
        return;
    };
    let addr_max = kernel
        .setup_header
        .map_or(u64::from(u32::MAX), |h| u64::from(h.initrd_addr_max));
    let initrd = boot::load_initrd(
        &mem,
        &mut Cursor::new(&[0x5a; 4096][..]),
        kernel.end,
        addr_max,
    )
    .ok();
    let Ok(cmdline) = boot::write_cmdline(&mem, "console=ttyS0 reboot=k panic=1") else {
        return;
    };
    let map = memory_map(BOOT_RAM as u64);
    let info = boot::BootInfo {
        kernel: &kernel,
        cmdline,
        initrd,
        rsdp: arch::layout::RSDP_START,
        memory_map: &map,
    };
    let _ = boot::write_boot_info(&mem, &info);
}

/// The virtio device kinds the transport targets put behind a transport,
/// by the choice byte's value modulo their number: rng, balloon (every
/// optional queue offered), block over a small image file (writable or
/// not), vsock on a socket of its own. virtio-net needs a host TAP and is
/// left to `net_queues`.
pub const DEVICE_KINDS: u8 = 5;

/// A device of the kind `choice` picks (see [`DEVICE_KINDS`]), for a
/// guest with `memory` bytes of RAM.
pub fn virtio_device(choice: u8, memory: u64) -> Box<dyn virtio::VirtioDevice> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use virtio::balloon::{Balloon, BalloonConfig};
    use virtio::block::{Block, Disk, DiskConfig};
    use virtio::vsock::{Vsock, VsockConfig};

    match choice % DEVICE_KINDS {
        0 => Box::new(virtio::rng::Rng::new()),
        1 => {
            let config = BalloonConfig {
                size: memory / 2,
                stats: true,
                free_page_reporting: true,
                deflate_on_oom: true,
            };
            Box::new(Balloon::new(&config, memory))
        }
        kind @ (2 | 3) => {
            let readonly = kind == 3;
            let (file, path) = image_file();
            let config = DiskConfig {
                path,
                readonly,
                id: None,
                direct: false,
                bandwidth: None,
                ops: None,
                moderation: true,
            };
            let disk = Disk::from_file(file, readonly).expect("image file");
            Box::new(Block::with_disk(config, disk).expect("a disk of a whole sector"))
        }
        _ => {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir();
            let socket = dir.join(format!("fuzz-vsock-{}-{n}.sock", std::process::id()));
            let config = VsockConfig { cid: 3, socket };
            // The socket file goes with the device.
            Box::new(Vsock::new(config).expect("vsock socket"))
        }
    }
}

/// A 64 KiB image file for the block device, shared by every run (a
/// handle of its own each time), and its path.
fn image_file() -> (std::fs::File, std::path::PathBuf) {
    use std::sync::OnceLock;
    static IMAGE: OnceLock<(std::fs::File, std::path::PathBuf)> = OnceLock::new();
    let (file, path) = IMAGE.get_or_init(|| {
        // tmpfs when there is one: what guests write costs no disk I/O.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        };
        let path = dir.join(format!("fuzz-transport-{}.img", std::process::id()));
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("image file");
        file.set_len(64 << 10).expect("image size");
        let _ = std::fs::remove_file(&path);
        (file, path)
    });
    (file.try_clone().expect("image file handle"), path.clone())
}

/// Fuzzer bytes read in order; zeros once they run out.
pub struct Fields<'a> {
    bytes: &'a [u8],
    mem_size: u64,
}

impl<'a> Fields<'a> {
    /// Fields for guest memory of `mem_size` bytes.
    pub fn new(bytes: &'a [u8], mem_size: u64) -> Self {
        Fields { bytes, mem_size }
    }

    /// What is left: guest memory's contents, say.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = self.bytes.len().min(N);
        out[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        out
    }
    pub fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    /// An address in guest memory or just past it, mostly.
    pub fn addr(&mut self) -> u64 {
        let a = u64::from(self.u32());
        if a & 0x8000_0000 != 0 {
            a
        } else {
            a % (self.mem_size + 0x100)
        }
    }
    pub fn queue(&mut self, max_size: u16) -> SavedQueue {
        let flags = self.u8();
        SavedQueue {
            max_size: if flags & 0x80 != 0 {
                self.u16()
            } else {
                max_size
            },
            next_avail: self.u16(),
            next_used: self.u16(),
            event_idx: flags & 1 != 0,
            size: if flags & 0x40 != 0 {
                self.u16()
            } else {
                1 << (self.u8() % 11)
            },
            ready: flags & 2 != 0,
            desc_table: self.addr(),
            avail_ring: self.addr(),
            used_ring: self.addr(),
        }
    }
    /// One queue per maximum size, give or take one.
    pub fn queues(&mut self, max_sizes: &[u16]) -> Vec<SavedQueue> {
        let count = match self.u8() % 8 {
            0 => max_sizes.len().saturating_sub(1),
            1 => max_sizes.len() + 1,
            _ => max_sizes.len(),
        };
        (0..count)
            .map(|i| self.queue(max_sizes.get(i).copied().unwrap_or(256)))
            .collect()
    }

    /// The driver's view of `device` from a flags byte and fields: its
    /// own type, features and a started status unless the flags say to
    /// make them up, queues give or take one.
    pub fn core_state(
        &mut self,
        device: &dyn virtio::VirtioDevice,
        max_sizes: &[u16],
    ) -> CoreState {
        let flags = self.u8();
        CoreState {
            device_type: if flags & 1 != 0 {
                self.u32()
            } else {
                device.device_type()
            },
            driver_features: if flags & 2 != 0 {
                u64::from(self.u32()) | u64::from(self.u32()) << 32
            } else {
                device.avail_features() | (1 << 32)
            },
            status: if flags & 4 != 0 { self.u32() } else { 0xf },
            activated: flags & 8 != 0,
            queues: self.queues(max_sizes),
            live_queues: self.queues(max_sizes),
            device: self.device_state(),
        }
    }

    /// A device's own state: none, a NIC's or a balloon's.
    pub fn device_state(&mut self) -> Option<DeviceState> {
        match self.u8() % 3 {
            0 => None,
            1 => Some(DeviceState::Net(NetState { mac: self.take() })),
            _ => {
                let flags = self.u8();
                let held_stats = (flags & 1 != 0).then(|| self.u16());
                let stats = (flags & 2 != 0).then(|| BalloonStats::parse(&self.take::<30>()));
                Some(DeviceState::Balloon(Box::new(BalloonState {
                    num_pages: self.u32(),
                    actual: self.u32(),
                    held_stats,
                    stats,
                })))
            }
        }
    }
}
