//! What a device keeps beyond its queues, in a snapshot: one enum over the
//! devices that keep anything, which the transport's core saves with the
//! queues and gives back to the device built anew before activating it.

use serde::{Deserialize, Serialize};

use crate::balloon::BalloonState;
use crate::net::NetState;
use crate::SavedQueue;

/// A device's own state. A device that keeps nothing beyond its queues
/// (entropy, disk, vsock) saves none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceState {
    Net(NetState),
    /// Boxed: far larger than the others.
    Balloon(Box<BalloonState>),
}

impl DeviceState {
    /// The device the state is of, for errors.
    pub fn device_name(&self) -> &'static str {
        match self {
            DeviceState::Net(_) => "virtio-net",
            DeviceState::Balloon(_) => "virtio-balloon",
        }
    }
}

/// What a device gives for a snapshot of the paused machine: where its
/// queues stand (none before the driver started it) and its own state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SavedDevice {
    pub queues: Vec<SavedQueue>,
    pub state: Option<DeviceState>,
}

impl SavedDevice {
    /// A device that keeps nothing but its queues.
    pub fn queues(queues: Vec<SavedQueue>) -> SavedDevice {
        SavedDevice {
            queues,
            state: None,
        }
    }
}

/// Why a device refused the state a snapshot gave it.
#[derive(Debug, thiserror::Error)]
pub enum DeviceStateError {
    #[error("a {saved} device's state was saved for a {device} device")]
    OtherDevice {
        saved: &'static str,
        device: &'static str,
    },
    #[error("the {0} device was saved without its state")]
    Missing(&'static str),
    #[error("the saved {device} state is invalid: {reason}")]
    Invalid {
        device: &'static str,
        reason: String,
    },
}

/// For a device that keeps nothing beyond its queues: refuses any state.
pub fn expect_no_state(
    device: &'static str,
    state: Option<&DeviceState>,
) -> Result<(), DeviceStateError> {
    match state {
        None => Ok(()),
        Some(other) => Err(DeviceStateError::OtherDevice {
            saved: other.device_name(),
            device,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balloon::{Balloon, BalloonConfig};
    use crate::VirtioDevice;

    /// Saves `device`'s own state, restores `fresh` from its encoding and
    /// checks that `fresh` saves the same bytes; returns `fresh`.
    fn assert_round_trip<D: VirtioDevice>(device: &D, mut fresh: D) -> D {
        let saved = device.save().unwrap();
        assert!(saved.queues.is_empty(), "not started: no queues");
        let bytes = snapshot::encode(&saved.state).unwrap();
        let state: Option<DeviceState> = snapshot::decode(&bytes).unwrap();
        fresh.restore_state(state.as_ref()).unwrap();
        let again = snapshot::encode(&fresh.save().unwrap().state).unwrap();
        assert_eq!(bytes, again, "save, restore, save gave other bytes");
        fresh
    }

    fn config_word(device: &dyn VirtioDevice, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        device.read_config(offset, &mut data);
        u32::from_le_bytes(data)
    }

    #[test]
    fn a_balloon_round_trips_its_config_space_before_its_driver_starts() {
        let config = BalloonConfig {
            size: 1 << 20,
            ..Default::default()
        };
        let mut balloon = Balloon::new(&config, 64 << 20);
        balloon.handle().set_target(2 << 20).unwrap();
        balloon.write_config(4, &9u32.to_le_bytes());
        let restored = assert_round_trip(&balloon, Balloon::new(&config, 64 << 20));
        assert_eq!(
            config_word(&restored, 0),
            512,
            "num_pages as set at run time"
        );
        assert_eq!(config_word(&restored, 4), 9, "actual");
        assert_eq!(restored.handle().target(), 2 << 20);
    }

    #[test]
    fn a_vsock_device_keeps_nothing_beyond_its_queues() {
        let dir = std::env::temp_dir().join(format!("virtio-device-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = |name: &str| crate::vsock::VsockConfig {
            cid: 7,
            socket: dir.join(name),
        };
        let vsock = crate::vsock::Vsock::new(config("a.sock")).unwrap();
        let fresh = crate::vsock::Vsock::new(config("b.sock")).unwrap();
        assert_eq!(vsock.save().unwrap(), SavedDevice::default());
        let mut restored = assert_round_trip(&vsock, fresh);
        assert_eq!(
            config_word(&restored, 0),
            7,
            "the CID from the configuration"
        );
        let balloon = Balloon::new(&BalloonConfig::default(), 1 << 20);
        let error = restored
            .restore_state(balloon.save().unwrap().state.as_ref())
            .unwrap_err();
        assert!(
            error.to_string().contains("virtio-balloon device's state"),
            "{error}"
        );
        drop((vsock, restored));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
