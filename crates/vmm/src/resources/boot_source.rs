//! `boot-source` (`PUT /boot-source`): the kernel, initrd and command line.

use serde::{Deserialize, Serialize};

use super::{check_file, validate_path, ResourceError};

/// What to boot. Without `boot_args` the guest gets Pointsman's default
/// command line (serial console on), not Firecracker's (serial off).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootSource {
    pub kernel_image_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_args: Option<String>,
}

impl BootSource {
    pub fn validate(&self) -> Result<(), ResourceError> {
        validate_path("kernel_image_path", &self.kernel_image_path)?;
        if let Some(initrd) = &self.initrd_path {
            validate_path("initrd_path", initrd)?;
        }
        Ok(())
    }

    /// Checks that the kernel and initrd can be opened.
    pub fn check_files(&self) -> Result<(), ResourceError> {
        check_file("kernel_image_path", &self.kernel_image_path, false)?;
        if let Some(initrd) = &self.initrd_path {
            check_file("initrd_path", initrd, false)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_kernel_is_required() {
        let b: BootSource = serde_json::from_str(r#"{"kernel_image_path": "/k"}"#).unwrap();
        assert_eq!(
            b,
            BootSource {
                kernel_image_path: "/k".into(),
                initrd_path: None,
                boot_args: None
            }
        );
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"kernel_image_path":"/k"}"#
        );
        b.validate().unwrap();
        let full = r#"{"kernel_image_path":"/k","initrd_path":"/i","boot_args":"console=ttyS0"}"#;
        let b: BootSource = serde_json::from_str(full).unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), full);
    }

    #[test]
    fn refusals() {
        for bad in [
            r#"{}"#,
            r#"{"boot_args": "x"}"#,
            r#"{"kernel_image_path": "/k", "x": 1}"#,
        ] {
            assert!(serde_json::from_str::<BootSource>(bad).is_err(), "{bad}");
        }
        let empty = BootSource::default();
        assert_eq!(
            empty.validate(),
            Err(ResourceError::EmptyPath {
                field: "kernel_image_path"
            })
        );
        let missing = BootSource {
            kernel_image_path: "/proc/self/exe".into(),
            initrd_path: Some("/nonexistent".into()),
            boot_args: None,
        };
        assert!(matches!(
            missing.check_files(),
            Err(ResourceError::File {
                field: "initrd_path",
                ..
            })
        ));
    }
}
