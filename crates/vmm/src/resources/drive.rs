//! `drives` (`PUT|PATCH /drives/{drive_id}`): virtio-blk disks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use virtio::block::{DiskConfig, ID_BYTES};

use super::{check_file, validate_id, validate_path, RateLimiter, ResourceError};

/// Whether the guest's flushes reach the host's disk. Pointsman always
/// offers flush and runs it with `fdatasync`, so both behave as
/// `Writeback`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CacheType {
    #[default]
    Unsafe,
    Writeback,
}

/// Firecracker's I/O engines; Pointsman has its own (a worker thread per
/// disk), so the choice is accepted and ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum IoEngine {
    #[default]
    Sync,
    Async,
}

/// One disk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drive {
    pub drive_id: String,
    /// With `is_root_device`: `root=PARTUUID=` instead of `root=/dev/vda`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partuuid: Option<String>,
    /// The guest's root file system: this drive becomes the first disk and
    /// the command line gets `root=... ro|rw`.
    pub is_root_device: bool,
    #[serde(default)]
    pub cache_type: CacheType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_on_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limiter: Option<RateLimiter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_engine: Option<IoEngine>,
    /// vhost-user: refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
}

impl Drive {
    pub fn validate(&self) -> Result<(), ResourceError> {
        validate_id("drive_id", &self.drive_id)?;
        if self.socket.is_some() {
            return Err(ResourceError::VhostUserDrive(self.drive_id.clone()));
        }
        let path = self.path_on_host.as_deref().ok_or(ResourceError::Missing {
            field: "path_on_host",
        })?;
        validate_path("path_on_host", path)?;
        if let Some(partuuid) = &self.partuuid {
            let valid = self.is_root_device
                && !partuuid.is_empty()
                && partuuid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid {
                return Err(ResourceError::PartUuid {
                    drive: self.drive_id.clone(),
                    value: partuuid.clone(),
                });
            }
        }
        if let Some(limiter) = &self.rate_limiter {
            limiter.validate("rate_limiter")?;
        }
        Ok(())
    }

    /// Checks that the image can be opened as the guest will use it.
    pub fn check_files(&self) -> Result<(), ResourceError> {
        match &self.path_on_host {
            Some(path) => check_file("path_on_host", path, !self.read_only()),
            None => Err(ResourceError::Missing {
                field: "path_on_host",
            }),
        }
    }

    pub fn read_only(&self) -> bool {
        self.is_read_only.unwrap_or(false)
    }

    /// What the root device adds to the kernel command line.
    pub fn root_args(&self) -> String {
        let mode = if self.read_only() { "ro" } else { "rw" };
        match &self.partuuid {
            Some(partuuid) => format!("root=PARTUUID={partuuid} {mode}"),
            None => format!("root=/dev/vda {mode}"),
        }
    }

    /// Pointsman's disk. Its serial number (what the guest reads as the
    /// disk's id) is the drive id cut to the 20 bytes virtio-blk has, as
    /// Firecracker does.
    pub fn to_disk_config(&self) -> Result<DiskConfig, ResourceError> {
        self.validate()?;
        let limiter = self.rate_limiter.clone().unwrap_or_default();
        let mut id = self.drive_id.clone();
        id.truncate(ID_BYTES);
        Ok(DiskConfig {
            path: PathBuf::from(self.path_on_host.clone().unwrap_or_default()),
            readonly: self.read_only(),
            id: Some(id),
            direct: false,
            bandwidth: limiter.bandwidth_config(),
            ops: limiter.ops_config(),
            moderation: true,
        })
    }

    /// The drive that shows Pointsman's disk number `index` (0 for the
    /// first). Its id is the disk's own, or `driveN` when it has none or
    /// one that is not a valid drive id.
    pub fn from_disk_config(index: usize, disk: &DiskConfig) -> Drive {
        let drive_id = disk
            .id
            .clone()
            .filter(|id| validate_id("drive_id", id).is_ok())
            .unwrap_or_else(|| format!("drive{index}"));
        Drive {
            drive_id,
            partuuid: None,
            is_root_device: false,
            cache_type: CacheType::Writeback,
            is_read_only: Some(disk.readonly),
            path_on_host: Some(disk.path.to_string_lossy().into_owned()),
            rate_limiter: RateLimiter::from_configs(disk.bandwidth.as_ref(), disk.ops.as_ref()),
            io_engine: Some(IoEngine::Sync),
            socket: None,
        }
    }
}

/// `PATCH /drives/{drive_id}`: a new image or new limits after boot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialDrive {
    pub drive_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_on_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limiter: Option<RateLimiter>,
}

impl PartialDrive {
    pub fn validate(&self) -> Result<(), ResourceError> {
        validate_id("drive_id", &self.drive_id)?;
        if let Some(path) = &self.path_on_host {
            validate_path("path_on_host", path)?;
        }
        if let Some(limiter) = &self.rate_limiter {
            limiter.validate("rate_limiter")?;
        }
        Ok(())
    }

    /// `drive` with this update in place, validated.
    pub fn apply(&self, drive: &Drive) -> Result<Drive, ResourceError> {
        self.validate()?;
        let mut updated = drive.clone();
        if let Some(path) = &self.path_on_host {
            updated.path_on_host = Some(path.clone());
        }
        if let Some(limiter) = &self.rate_limiter {
            updated.rate_limiter = Some(limiter.merged_onto(drive.rate_limiter.as_ref()));
        }
        updated.validate()?;
        Ok(updated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use virtio::rate_limiter::TokenBucketConfig;

    fn drive(text: &str) -> Drive {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn defaults_and_disk_config() {
        let d = drive(r#"{"drive_id": "rootfs", "path_on_host": "/img", "is_root_device": true}"#);
        d.validate().unwrap();
        assert_eq!(d.cache_type, CacheType::Unsafe);
        assert!(!d.read_only());
        assert_eq!(d.root_args(), "root=/dev/vda rw");
        assert_eq!(
            d.to_disk_config().unwrap(),
            DiskConfig {
                path: "/img".into(),
                readonly: false,
                id: Some("rootfs".into()),
                direct: false,
                bandwidth: None,
                ops: None,
                moderation: true
            }
        );
        let text = serde_json::to_string(&d).unwrap();
        assert_eq!(
            text,
            r#"{"drive_id":"rootfs","is_root_device":true,"cache_type":"Unsafe","path_on_host":"/img"}"#
        );
        assert_eq!(serde_json::from_str::<Drive>(&text).unwrap(), d);
    }

    #[test]
    fn every_field() {
        let d = drive(
            r#"{"drive_id": "a_very_long_drive_identifier_x", "path_on_host": "/img",
                "is_root_device": true, "partuuid": "0eaa91a0-01", "is_read_only": true,
                "cache_type": "Writeback", "io_engine": "Async",
                "rate_limiter": {"bandwidth": {"size": 1000, "refill_time": 10}}}"#,
        );
        d.validate().unwrap();
        assert_eq!(d.root_args(), "root=PARTUUID=0eaa91a0-01 ro");
        let disk = d.to_disk_config().unwrap();
        assert_eq!(disk.id.as_deref(), Some("a_very_long_drive_id"));
        assert!(disk.readonly);
        assert_eq!(
            disk.bandwidth,
            Some(TokenBucketConfig {
                size: 1000,
                refill: Duration::from_millis(10),
                one_time_burst: 0,
            })
        );
        let back = Drive::from_disk_config(3, &disk);
        assert_eq!(back.drive_id, "a_very_long_drive_id");
        assert_eq!(back.to_disk_config().unwrap(), disk);
        let unnamed = Drive::from_disk_config(
            3,
            &DiskConfig {
                id: None,
                ..disk.clone()
            },
        );
        assert_eq!(unnamed.drive_id, "drive3");
    }

    #[test]
    fn refusals() {
        for bad in [
            r#"{"drive_id": "a", "path_on_host": "/img"}"#,
            r#"{"path_on_host": "/img", "is_root_device": false}"#,
            r#"{"drive_id": "a", "path_on_host": "/img", "is_root_device": false, "cache_type": "None"}"#,
            r#"{"drive_id": "a", "path_on_host": "/img", "is_root_device": false, "io_engine": "Uring"}"#,
            r#"{"drive_id": "a", "path_on_host": "/img", "is_root_device": false, "readonly": true}"#,
        ] {
            assert!(serde_json::from_str::<Drive>(bad).is_err(), "{bad}");
        }
        let base =
            || drive(r#"{"drive_id": "a", "path_on_host": "/img", "is_root_device": false}"#);
        let d = Drive {
            drive_id: "a-b".into(),
            ..base()
        };
        assert!(matches!(d.validate(), Err(ResourceError::InvalidId { .. })));
        let d = Drive {
            socket: Some("/vhost".into()),
            ..base()
        };
        assert_eq!(d.validate(), Err(ResourceError::VhostUserDrive("a".into())));
        let d = Drive {
            path_on_host: None,
            ..base()
        };
        assert_eq!(
            d.validate(),
            Err(ResourceError::Missing {
                field: "path_on_host"
            })
        );
        let d = Drive {
            path_on_host: Some(String::new()),
            ..base()
        };
        assert_eq!(
            d.validate(),
            Err(ResourceError::EmptyPath {
                field: "path_on_host"
            })
        );
        let d = Drive {
            partuuid: Some("x".into()),
            ..base()
        };
        assert!(
            matches!(d.validate(), Err(ResourceError::PartUuid { .. })),
            "not root"
        );
        let d = Drive {
            path_on_host: Some("/nonexistent/img".into()),
            ..base()
        };
        assert!(matches!(d.check_files(), Err(ResourceError::File { .. })));
    }

    #[test]
    fn a_partial_drive_changes_the_image_or_the_limits() {
        let d = drive(r#"{"drive_id": "a", "path_on_host": "/img", "is_root_device": false}"#);
        let p: PartialDrive =
            serde_json::from_str(r#"{"drive_id": "a", "path_on_host": "/other"}"#).unwrap();
        let updated = p.apply(&d).unwrap();
        assert_eq!(updated.path_on_host.as_deref(), Some("/other"));
        let p: PartialDrive = serde_json::from_str(
            r#"{"drive_id": "a", "rate_limiter": {"ops": {"size": 5, "refill_time": 100}}}"#,
        )
        .unwrap();
        let updated = p.apply(&d).unwrap();
        assert_eq!(updated.path_on_host.as_deref(), Some("/img"));
        assert!(updated.rate_limiter.is_some());
        assert!(
            serde_json::from_str::<PartialDrive>(r#"{"drive_id": "a", "is_read_only": true}"#)
                .is_err()
        );
        let p: PartialDrive =
            serde_json::from_str(r#"{"drive_id": "a", "path_on_host": ""}"#).unwrap();
        assert!(p.apply(&d).is_err());
    }
}
