//! `vm set` (`PATCH /vms/{name}` with limits): new limits for a guest,
//! checked as a create checks them, and the cgroup files that carry
//! them on a running guest.

use serde::{Deserialize, Serialize};

use crate::cgroup::{quota_us, v1_shares, CgroupLayout, GuestLimits, CFS_PERIOD_US};
use crate::guest::GuestConfig;
use crate::io_weight::IoWeightFile;
use crate::ManagerError;

/// A new CPU cap: percent of one CPU, or `"max"` for none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CpuMax {
    Percent(u32),
    Word(String),
}

/// What `vm set` changes; what is left out stays.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_max: Option<CpuMax>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_weight: Option<u32>,
}

impl LimitsChange {
    pub fn from_json(body: &[u8]) -> Result<LimitsChange, ManagerError> {
        serde_json::from_slice(body)
            .map_err(|e| ManagerError::BadGuest(format!("the request body is not a change of limits (cpu_weight, cpu_max, memory_max, io_weight) or of state: {e}")))
    }

    pub fn is_empty(&self) -> bool {
        *self == LimitsChange::default()
    }

    /// `config` with the change made (not yet checked: see
    /// [`GuestConfig::demands`]).
    pub fn applied_to(&self, config: &GuestConfig) -> Result<GuestConfig, ManagerError> {
        let mut new = config.clone();
        if let Some(weight) = self.cpu_weight {
            new.cpu_weight = Some(weight);
        }
        match &self.cpu_max {
            Some(CpuMax::Percent(percent)) => new.cpu_max = Some(*percent),
            Some(CpuMax::Word(word)) if word == "max" => new.cpu_max = None,
            Some(CpuMax::Word(word)) => {
                return Err(ManagerError::BadGuest(format!(
                    "cpu-max {word:?}: expected a percent of one CPU or \"max\" (no cap)"
                )))
            }
            None => {}
        }
        if let Some(size) = &self.memory_max {
            new.memory_max = Some(size.clone());
        }
        if let Some(weight) = self.io_weight {
            new.io_weight = Some(weight);
        }
        Ok(new)
    }

    /// The `FILE=VALUE` writes that give a running guest `limits` for
    /// what this change names, the memory limit first: it is the one the
    /// kernel may refuse (below what the VMM uses), and then nothing else
    /// has changed.
    pub fn writes(
        &self,
        layout: &CgroupLayout,
        limits: &GuestLimits,
        io: &IoWeightFile,
    ) -> Result<Vec<String>, ManagerError> {
        let v2 = layout.version() == 2;
        let mut writes = Vec::new();
        if self.memory_max.is_some() {
            writes.push(if v2 {
                format!("memory.max={}", limits.memory_max)
            } else {
                format!("memory.limit_in_bytes={}", limits.memory_max)
            });
        }
        if self.cpu_weight.is_some() {
            writes.push(if v2 {
                format!("cpu.weight={}", limits.cpu_weight)
            } else {
                format!("cpu.shares={}", v1_shares(limits.cpu_weight))
            });
        }
        if self.cpu_max.is_some() {
            match (v2, limits.cpu_max_percent) {
                (true, Some(p)) => writes.push(format!("cpu.max={} {CFS_PERIOD_US}", quota_us(p))),
                (true, None) => writes.push(format!("cpu.max=max {CFS_PERIOD_US}")),
                (false, Some(p)) => {
                    writes.push(format!("cpu.cfs_period_us={CFS_PERIOD_US}"));
                    writes.push(format!("cpu.cfs_quota_us={}", quota_us(p)));
                }
                (false, None) => writes.push("cpu.cfs_quota_us=-1".to_owned()),
            }
        }
        if let Some(weight) = self.io_weight {
            writes.push(io.setting(weight)?);
        }
        Ok(writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size::MIB;
    use std::path::PathBuf;

    fn v1() -> CgroupLayout {
        CgroupLayout::V1 { mounts: Vec::new() }
    }

    fn v2() -> CgroupLayout {
        CgroupLayout::V2 {
            mount: PathBuf::from("/sys/fs/cgroup"),
        }
    }

    #[test]
    fn changes_parse_and_apply() {
        let change = LimitsChange::from_json(br#"{"cpu_weight": 300, "cpu_max": "max"}"#).unwrap();
        let config = GuestConfig {
            kernel: Some("/k".into()),
            cpu_max: Some(50),
            memory: "128M".into(),
            cpus: 1,
            ..GuestConfig::default()
        };
        let new = change.applied_to(&config).unwrap();
        assert_eq!((new.cpu_weight, new.cpu_max), (Some(300), None));
        let capped = LimitsChange::from_json(br#"{"cpu_max": 25}"#).unwrap();
        assert_eq!(capped.applied_to(&config).unwrap().cpu_max, Some(25));
        let bad = LimitsChange::from_json(br#"{"cpu_max": "none"}"#).unwrap();
        assert!(bad
            .applied_to(&config)
            .unwrap_err()
            .to_string()
            .contains("\"none\""));
        assert!(LimitsChange::from_json(br#"{"gpus": 1}"#)
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
        assert!(LimitsChange::from_json(b"{}").unwrap().is_empty());
    }

    #[test]
    fn writes_name_only_what_changed_in_each_version() {
        let limits = GuestLimits {
            cpu_weight: 300,
            cpu_max_percent: None,
            memory_max: 256 * MIB,
        };
        let all = LimitsChange {
            cpu_weight: Some(300),
            cpu_max: Some(CpuMax::Word("max".into())),
            memory_max: Some("256M".into()),
            io_weight: None,
        };
        let io = IoWeightFile::V2;
        assert_eq!(
            all.writes(&v1(), &limits, &io).unwrap(),
            [
                "memory.limit_in_bytes=268435456",
                "cpu.shares=3072",
                "cpu.cfs_quota_us=-1"
            ]
        );
        assert_eq!(
            all.writes(&v2(), &limits, &io).unwrap(),
            [
                "memory.max=268435456",
                "cpu.weight=300",
                "cpu.max=max 100000"
            ]
        );
        let capped = GuestLimits {
            cpu_max_percent: Some(50),
            ..limits
        };
        let cap = LimitsChange {
            cpu_max: Some(CpuMax::Percent(50)),
            io_weight: Some(200),
            ..LimitsChange::default()
        };
        assert_eq!(
            cap.writes(&v2(), &capped, &io).unwrap(),
            ["cpu.max=50000 100000", "io.weight=default 200"]
        );
        assert_eq!(
            cap.writes(&v1(), &capped, &IoWeightFile::V1).unwrap(),
            [
                "cpu.cfs_period_us=100000",
                "cpu.cfs_quota_us=50000",
                "blkio.weight=20"
            ]
        );
        let missing = IoWeightFile::Missing("io-weight: none here".into());
        assert_eq!(
            cap.writes(&v1(), &capped, &missing)
                .unwrap_err()
                .to_string(),
            "io-weight: none here"
        );
    }
}
