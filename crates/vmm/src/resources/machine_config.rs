//! `machine-config` (`PUT|PATCH /machine-config`): vCPUs and memory.

use serde::{Deserialize, Serialize};

use super::ResourceError;
use crate::HugePages;

/// The most vCPUs Firecracker gives a guest; Pointsman's own limit
/// (the host's KVM) is checked when the guest starts.
pub const MAX_VCPUS: u32 = 32;
/// Guest memory when the config file gives no `machine-config`.
const DEFAULT_MEM_SIZE_MIB: u64 = 128;

/// How guest memory is backed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HugePagesConfig {
    /// 4 KiB pages (the host's transparent huge page policy decides).
    #[default]
    None,
    /// 2 MiB pages: Pointsman asks for transparent huge pages
    /// (`--memory ...,thp=on`) rather than mapping hugetlbfs.
    #[serde(rename = "2M")]
    Hugetlbfs2M,
}

/// The guest's vCPUs and memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    pub vcpu_count: u32,
    pub mem_size_mib: u64,
    /// Accepted and ignored: the guest sees one thread per core.
    #[serde(default)]
    pub smt: bool,
    /// Only `"None"` is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_template: Option<String>,
    /// KVM logs the pages the guest writes, which Diff snapshots need.
    #[serde(default)]
    pub track_dirty_pages: bool,
    #[serde(default)]
    pub huge_pages: HugePagesConfig,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            vcpu_count: 1,
            mem_size_mib: DEFAULT_MEM_SIZE_MIB,
            smt: false,
            cpu_template: None,
            track_dirty_pages: false,
            huge_pages: HugePagesConfig::None,
        }
    }
}

impl MachineConfig {
    pub fn validate(&self) -> Result<(), ResourceError> {
        if self.vcpu_count == 0 || self.vcpu_count > MAX_VCPUS {
            return Err(ResourceError::VcpuCount {
                value: self.vcpu_count,
                max: MAX_VCPUS,
            });
        }
        if self.mem_size_mib == 0 {
            return Err(ResourceError::MemorySize);
        }
        self.memory_bytes()?;
        match self.cpu_template.as_deref() {
            None | Some("None") => Ok(()),
            Some(other) => Err(ResourceError::CpuTemplate(other.to_owned())),
        }
    }

    /// Guest memory in bytes.
    pub fn memory_bytes(&self) -> Result<u64, ResourceError> {
        self.mem_size_mib
            .checked_mul(1 << 20)
            .ok_or(ResourceError::MemoryTooLarge(self.mem_size_mib))
    }

    /// Pointsman's huge page advice for this backing.
    pub fn huge_pages_advice(&self) -> HugePages {
        match self.huge_pages {
            HugePagesConfig::None => HugePages::HostPolicy,
            HugePagesConfig::Hugetlbfs2M => HugePages::On,
        }
    }
}

/// `PATCH /machine-config`: the fields to change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineConfigUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpu_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_size_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smt: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_dirty_pages: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub huge_pages: Option<HugePagesConfig>,
}

impl MachineConfigUpdate {
    /// `base` with this update's fields in place, validated: on an error
    /// nothing is changed.
    pub fn apply(&self, base: &MachineConfig) -> Result<MachineConfig, ResourceError> {
        let updated = MachineConfig {
            vcpu_count: self.vcpu_count.unwrap_or(base.vcpu_count),
            mem_size_mib: self.mem_size_mib.unwrap_or(base.mem_size_mib),
            smt: self.smt.unwrap_or(base.smt),
            cpu_template: self
                .cpu_template
                .clone()
                .or_else(|| base.cpu_template.clone()),
            track_dirty_pages: self.track_dirty_pages.unwrap_or(base.track_dirty_pages),
            huge_pages: self.huge_pages.unwrap_or(base.huge_pages),
        };
        updated.validate()?;
        Ok(updated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_round_trip() {
        let m: MachineConfig =
            serde_json::from_str(r#"{"vcpu_count": 2, "mem_size_mib": 256}"#).unwrap();
        assert_eq!(
            m,
            MachineConfig {
                vcpu_count: 2,
                mem_size_mib: 256,
                ..MachineConfig::default()
            }
        );
        m.validate().unwrap();
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"vcpu_count":2,"mem_size_mib":256,"smt":false,"track_dirty_pages":false,"huge_pages":"None"}"#
        );
        assert_eq!(serde_json::from_str::<MachineConfig>(&text).unwrap(), m);
        let huge: MachineConfig = serde_json::from_str(
            r#"{"vcpu_count": 1, "mem_size_mib": 64, "huge_pages": "2M", "cpu_template": "None"}"#,
        )
        .unwrap();
        huge.validate().unwrap();
        assert_eq!(huge.huge_pages_advice(), HugePages::On);
        assert_eq!(m.huge_pages_advice(), HugePages::HostPolicy);
        assert_eq!(m.memory_bytes().unwrap(), 256 << 20);
    }

    #[test]
    fn refusals() {
        for bad in [
            r#"{"mem_size_mib": 256}"#,
            r#"{"vcpu_count": 1}"#,
            r#"{"vcpu_count": -1, "mem_size_mib": 256}"#,
            r#"{"vcpu_count": "2", "mem_size_mib": 256}"#,
            r#"{"vcpu_count": 1, "mem_size_mib": 256, "huge_pages": "1G"}"#,
            r#"{"vcpu_count": 1, "mem_size_mib": 256, "cpus": 1}"#,
        ] {
            assert!(serde_json::from_str::<MachineConfig>(bad).is_err(), "{bad}");
        }
        let with = |vcpu_count, mem_size_mib, template: Option<&str>| MachineConfig {
            vcpu_count,
            mem_size_mib,
            cpu_template: template.map(str::to_owned),
            ..MachineConfig::default()
        };
        assert_eq!(
            with(0, 128, None).validate(),
            Err(ResourceError::VcpuCount { value: 0, max: 32 })
        );
        assert_eq!(
            with(33, 128, None).validate(),
            Err(ResourceError::VcpuCount { value: 33, max: 32 })
        );
        assert_eq!(with(1, 0, None).validate(), Err(ResourceError::MemorySize));
        assert_eq!(
            with(1, u64::MAX, None).validate(),
            Err(ResourceError::MemoryTooLarge(u64::MAX))
        );
        assert_eq!(
            with(1, 128, Some("T2")).validate(),
            Err(ResourceError::CpuTemplate("T2".into()))
        );
        assert!(with(1, 128, Some("T2"))
            .validate()
            .unwrap_err()
            .to_string()
            .contains("only \"None\""));
    }

    #[test]
    fn an_update_changes_only_its_fields_and_is_checked() {
        let base = MachineConfig::default();
        let update: MachineConfigUpdate = serde_json::from_str(r#"{"vcpu_count": 4}"#).unwrap();
        let updated = update.apply(&base).unwrap();
        assert_eq!((updated.vcpu_count, updated.mem_size_mib), (4, 128));
        let empty: MachineConfigUpdate = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.apply(&base).unwrap(), base);
        let bad: MachineConfigUpdate = serde_json::from_str(r#"{"mem_size_mib": 0}"#).unwrap();
        assert_eq!(bad.apply(&base), Err(ResourceError::MemorySize));
        assert!(serde_json::from_str::<MachineConfigUpdate>(r#"{"memory": 1}"#).is_err());
    }
}
