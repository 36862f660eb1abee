//! `vsock` (`PUT /vsock`): the guest's virtio-vsock device.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use virtio::vsock::{ConfigError, VsockConfig};

use super::{validate_id, ResourceError};

/// The vsock device. Host programs connect to `uds_path` and write
/// `CONNECT <port>\n`; guest connections to host port P reach
/// `uds_path_P`, as in Firecracker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vsock {
    /// Deprecated by Firecracker; accepted (and checked) but unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsock_id: Option<String>,
    pub guest_cid: u64,
    pub uds_path: String,
}

impl Vsock {
    pub fn validate(&self) -> Result<(), ResourceError> {
        self.to_vsock_config().map(drop)
    }

    pub fn to_vsock_config(&self) -> Result<VsockConfig, ResourceError> {
        if let Some(id) = &self.vsock_id {
            validate_id("vsock_id", id)?;
        }
        let config = VsockConfig {
            cid: self.guest_cid,
            socket: PathBuf::from(&self.uds_path),
        };
        config.validate().map_err(|e| match e {
            ConfigError::CidOutOfRange(cid) => ResourceError::GuestCid(cid),
            ConfigError::EmptyPath => ResourceError::EmptyPath { field: "uds_path" },
            other => ResourceError::UdsPath {
                path: self.uds_path.clone(),
                reason: other.to_string(),
            },
        })?;
        Ok(config)
    }

    pub fn from_vsock_config(config: &VsockConfig) -> Vsock {
        Vsock {
            vsock_id: None,
            guest_cid: config.cid,
            uds_path: config.socket.to_string_lossy().into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v: Vsock =
            serde_json::from_str(r#"{"guest_cid": 3, "uds_path": "/tmp/v.sock"}"#).unwrap();
        let config = v.to_vsock_config().unwrap();
        assert_eq!(
            (config.cid, config.socket.to_str()),
            (3, Some("/tmp/v.sock"))
        );
        assert_eq!(Vsock::from_vsock_config(&config), v);
        let old: Vsock = serde_json::from_str(
            r#"{"vsock_id": "vsock0", "guest_cid": 3, "uds_path": "/tmp/v.sock"}"#,
        )
        .unwrap();
        old.validate().unwrap();
    }

    #[test]
    fn refusals() {
        for bad in [
            r#"{"guest_cid": 3}"#,
            r#"{"uds_path": "/v"}"#,
            r#"{"guest_cid": 3, "uds_path": "/v", "cid": 3}"#,
        ] {
            assert!(serde_json::from_str::<Vsock>(bad).is_err(), "{bad}");
        }
        let v = |cid, path: &str| Vsock {
            vsock_id: None,
            guest_cid: cid,
            uds_path: path.into(),
        };
        assert_eq!(v(2, "/v").validate(), Err(ResourceError::GuestCid(2)));
        assert_eq!(
            v(3, "").validate(),
            Err(ResourceError::EmptyPath { field: "uds_path" })
        );
        let long = format!("/{}", "x".repeat(200));
        assert!(matches!(
            v(3, &long).validate(),
            Err(ResourceError::UdsPath { .. })
        ));
        let bad_id = Vsock {
            vsock_id: Some("a-b".into()),
            ..v(3, "/v")
        };
        assert!(matches!(
            bad_id.validate(),
            Err(ResourceError::InvalidId { .. })
        ));
    }
}
