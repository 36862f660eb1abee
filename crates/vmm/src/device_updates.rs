//! Changes to running disks and NICs (Firecracker's `PATCH /drives/{id}`
//! and `PATCH /network-interfaces/{id}` after boot), through the handles
//! the devices gave when they were made.

use virtio::block::{BlockHandle, BlockUpdate, ID_BYTES};
use virtio::net::{NetHandle, NetUpdate};

use crate::config::VmConfig;
use crate::device_manager::Devices;
use crate::net::Taps;

/// The run-time handles of the disks and NICs, by id (cheap to clone).
#[derive(Clone, Default)]
pub(crate) struct DeviceHandles {
    /// Each disk's `DiskConfig::id`, or `driveN` (N counting disks from 0)
    /// for one without.
    pub drives: Vec<(String, BlockHandle)>,
    /// Each NIC's `NetConfig::id`, or `ethN` (N counting NICs from 0).
    pub nics: Vec<(String, NetHandle)>,
}

/// The id of disk `index` with `id`.
pub(crate) fn drive_key(index: usize, id: Option<&str>) -> String {
    id.map_or_else(|| format!("drive{index}"), str::to_owned)
}

/// The id of NIC `index` with `id`.
pub(crate) fn nic_key(index: usize, id: Option<&str>) -> String {
    id.map_or_else(|| format!("eth{index}"), str::to_owned)
}

impl DeviceHandles {
    /// The disk `id` names: its exact id, or, for a longer id, the first
    /// 20 bytes a disk's serial number holds (as a drive id is stored).
    fn drive(&self, id: &str) -> Option<&BlockHandle> {
        let exact = self.drives.iter().find(|(key, _)| key == id);
        let cut = || {
            let prefix = id.get(..ID_BYTES)?;
            self.drives.iter().find(|(key, _)| key == prefix)
        };
        exact.or_else(cut).map(|(_, handle)| handle)
    }
}

impl DeviceHandles {
    /// Gives disk `id` a new image and/or new limits while the guest runs.
    /// The error is one line for the API's `fault_message`; nothing
    /// changed then.
    pub(crate) fn update_drive(&self, id: &str, update: BlockUpdate) -> Result<(), String> {
        let handle = self
            .drive(id)
            .ok_or_else(|| format!("no drive with id {id}"))?;
        handle
            .update(update)
            .map_err(|e| format!("drive {id}: {e}"))
    }

    /// Gives NIC `id` new limits while the guest runs.
    pub(crate) fn update_net(&self, id: &str, update: NetUpdate) -> Result<(), String> {
        let (_, handle) = self
            .nics
            .iter()
            .find(|(key, _)| key == id)
            .ok_or_else(|| format!("no network interface with id {id}"))?;
        handle
            .update(update)
            .map_err(|e| format!("network interface {id}: {e}"))
    }
}

impl DeviceHandles {
    /// Writes the disks' images and limits and the NICs' limits as they
    /// are now into the settings the next machine is built from, so that
    /// changes made while the guest ran outlive its reboot in place.
    pub(crate) fn carry_over(&self, config: &mut VmConfig, taps: &mut Taps) {
        for (disk, (_, handle)) in config.disks.iter_mut().zip(&self.drives) {
            *disk = handle.config();
        }
        for (index, (_, handle)) in self.nics.iter().enumerate() {
            let (rx, tx) = handle.limits();
            taps.set_limits(index, rx, tx);
            if let Some(net) = config.net.get_mut(index) {
                (net.rx, net.tx) = handle.limits();
            }
        }
    }
}

impl Devices {
    /// [`DeviceHandles::update_drive`] on this machine's disks.
    pub(crate) fn update_drive(&self, id: &str, update: BlockUpdate) -> Result<(), String> {
        self.handles.update_drive(id, update)
    }

    /// [`DeviceHandles::update_net`] on this machine's NICs.
    pub(crate) fn update_net(&self, id: &str, update: NetUpdate) -> Result<(), String> {
        self.handles.update_net(id, update)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use virtio::block::{Block, DiskConfig};
    use virtio::rate_limiter::{LimiterUpdate, TokenBucketConfig};

    /// A 1 MiB image file removed when dropped.
    struct Image(PathBuf);

    impl Image {
        fn new(name: &str) -> Image {
            let path = std::env::temp_dir().join(format!("vmm-{name}-{}.img", std::process::id()));
            std::fs::File::create(&path)
                .unwrap()
                .set_len(1 << 20)
                .unwrap();
            Image(path)
        }
    }

    impl Drop for Image {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn handles(disks: &[(&Image, Option<&str>)]) -> DeviceHandles {
        let mut handles = DeviceHandles::default();
        for (index, (image, id)) in disks.iter().enumerate() {
            let config = DiskConfig {
                path: image.0.clone(),
                readonly: false,
                id: id.map(str::to_owned),
                direct: false,
                bandwidth: None,
                ops: None,
                moderation: true,
            };
            let block = Block::new(config).unwrap();
            handles.drives.push((drive_key(index, *id), block.handle()));
        }
        handles
    }

    fn path(image: &Image) -> BlockUpdate {
        BlockUpdate {
            path: Some(image.0.clone()),
            limits: LimiterUpdate::default(),
        }
    }

    #[test]
    fn drives_are_found_by_id_or_number() {
        let (a, b, c) = (Image::new("a"), Image::new("b"), Image::new("c"));
        let long = "a_drive_id_longer_than_twenty_bytes";
        let h = handles(&[
            (&a, Some("rootfs")),
            (&b, None),
            (&c, Some(&long[..ID_BYTES])),
        ]);
        let new = Image::new("new");
        h.update_drive("rootfs", path(&new)).unwrap();
        assert_eq!(h.drives[0].1.config().path, new.0);
        h.update_drive("drive1", path(&new)).unwrap();
        assert_eq!(h.drives[1].1.config().path, new.0);
        h.update_drive(long, path(&new)).unwrap();
        assert_eq!(
            h.drives[2].1.config().path,
            new.0,
            "found by its stored 20 bytes"
        );
        assert_eq!(
            h.update_drive("drive0", path(&new)).unwrap_err(),
            "no drive with id drive0",
            "a disk with an id has no number"
        );
    }

    #[test]
    fn errors_say_what_was_wrong_and_change_nothing() {
        let image = Image::new("errors");
        let h = handles(&[(&image, Some("data"))]);
        let missing = std::env::temp_dir().join("vmm-no-such-image.img");
        let update = BlockUpdate {
            path: Some(missing.clone()),
            limits: LimiterUpdate {
                bandwidth: Some(Some(TokenBucketConfig {
                    size: 100,
                    refill: std::time::Duration::from_secs(1),
                    one_time_burst: 0,
                })),
                ops: None,
            },
        };
        let err = h.update_drive("data", update).unwrap_err();
        assert!(
            err.starts_with("drive data: cannot open the disk image"),
            "{err}"
        );
        assert!(err.contains(&missing.display().to_string()), "{err}");
        let config = h.drives[0].1.config();
        assert_eq!((config.path, config.bandwidth), (image.0.clone(), None));
        assert_eq!(
            h.update_drive("nope", BlockUpdate::default()).unwrap_err(),
            "no drive with id nope"
        );
        assert_eq!(
            h.update_net("eth0", NetUpdate::default()).unwrap_err(),
            "no network interface with id eth0"
        );
    }

    #[test]
    fn changes_outlive_a_reboot_in_place() {
        let (a, b) = (Image::new("carry-a"), Image::new("carry-b"));
        let h = handles(&[(&a, Some("root")), (&b, None)]);
        let mut config = VmConfig {
            kernel: crate::KernelSource::Embedded(&[]),
            initrd: None,
            cmdline: String::new(),
            cpus: 1,
            memory: crate::DEFAULT_MEMORY,
            huge_pages: crate::HugePages::default(),
            track_dirty_pages: false,
            no_reboot: false,
            rng: false,
            balloon: None,
            vsock: None,
            disks: h.drives.iter().map(|(_, d)| d.config()).collect(),
            net: Vec::new(),
            pci: false,
            serial: crate::SerialOutput::default(),
        };
        let new = Image::new("carry-new");
        h.update_drive("drive1", path(&new)).unwrap();
        let mut taps = Taps::default();
        h.carry_over(&mut config, &mut taps);
        assert_eq!(config.disks[0].path, a.0);
        assert_eq!(config.disks[1].path, new.0, "the new image");
    }

    #[test]
    fn keys_default_to_numbers() {
        assert_eq!(drive_key(2, None), "drive2");
        assert_eq!(drive_key(2, Some("root")), "root");
        assert_eq!(nic_key(0, None), "eth0");
        assert_eq!(nic_key(0, Some("net1")), "net1");
    }
}
