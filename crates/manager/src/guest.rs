//! A guest as `PUT /vms/{name}` describes it: the options of `pointsman
//! run` plus its share of the host. Shared by the client, the API and the
//! guest's `config.json`.

use std::ffi::OsString;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::capacity::Usage;
use crate::cgroup::{GuestLimits, CPU_WEIGHT_RANGE, DEFAULT_CPU_WEIGHT};
use crate::clone::CloneOrigin;
use crate::cpuset::CpuList;
use crate::restart::RestartPolicy;
use crate::size::{parse_size, MIB};
use crate::ManagerError;

/// What a VMM needs beyond its guest's memory: its own RSS (a few MiB),
/// device buffers, KVM's page tables for the guest (about 0.2% of it),
/// thread stacks and the jail's copy of the binary in the page cache.
/// 64 MiB covers these with room to spare, so the default limit never
/// kills a healthy VMM, while a VMM that leaks is still stopped near its
/// guest's size.
pub const VMM_OVERHEAD_BYTES: u64 = 64 * MIB;

/// Most vCPUs a guest may ask for (the VMM's limit).
pub const MAX_CPUS: u32 = 254;

fn one() -> u32 {
    1
}

fn default_memory() -> String {
    "128M".to_owned()
}

/// A guest's description. Paths are the host's: the jail gives each file
/// to the VMM inside its root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestConfig {
    /// Kernel to boot (required: `pointsman run --api-sock` without one
    /// waits to be configured through the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    #[serde(default = "one")]
    pub cpus: u32,
    /// `SIZE[,thp=on|off]`, as `pointsman run --memory`.
    #[serde(default = "default_memory")]
    pub memory: String,
    /// `pointsman run --disk` specs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disk: Vec<String>,
    /// `pointsman run --net` specs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub net: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsock: Option<String>,
    #[serde(default)]
    pub rng: bool,
    #[serde(default)]
    pub pci: bool,
    /// Relative CPU share, 1-10000 (100 if left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<u32>,
    /// CPU cap in percent of one host CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_max: Option<u32>,
    /// Limit on the VMM's memory; the guest's memory plus
    /// [`VMM_OVERHEAD_BYTES`] if left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max: Option<String>,
    /// Set for a clone (`vm clone`): the snapshot it is restored from
    /// instead of booting the kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_of: Option<CloneOrigin>,
    /// Host CPUs dedicated to the guest (`1`, `0-1`, `2,4-5`); without
    /// one it shares the CPUs no guest has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// Relative disk share, 1-10000; nothing about I/O is set without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_weight: Option<u32>,
    /// Whether the daemon starts the guest again when its VMM ends
    /// unasked (`no` if left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
}

/// What a valid config asks of the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Demands {
    pub usage: Usage,
    pub limits: GuestLimits,
}

impl GuestConfig {
    /// Parses a request body.
    pub fn from_json(body: &[u8]) -> Result<GuestConfig, ManagerError> {
        serde_json::from_slice(body).map_err(|e| ManagerError::BadJson(e.to_string()))
    }

    /// Guest memory in bytes: the size before any `,thp=`.
    pub fn memory_bytes(&self) -> Result<u64, ManagerError> {
        let size = self.memory.split(',').next().unwrap_or("");
        parse_size(size)
    }

    /// Checks the values and works out what the guest takes.
    pub fn demands(&self) -> Result<Demands, ManagerError> {
        let bad = |m: String| Err(ManagerError::BadGuest(m));
        if !(1..=MAX_CPUS).contains(&self.cpus) {
            return bad(format!("cpus {}: expected 1 to {MAX_CPUS}", self.cpus));
        }
        let memory = self.memory_bytes()?;
        let cpu_weight = self.cpu_weight.unwrap_or(DEFAULT_CPU_WEIGHT);
        if !CPU_WEIGHT_RANGE.contains(&cpu_weight) {
            return bad(format!("cpu-weight {cpu_weight}: expected 1 to 10000"));
        }
        if let Some(percent) = self.cpu_max {
            if !(1..=MAX_CPUS * 100).contains(&percent) {
                return bad(format!(
                    "cpu-max {percent}: expected 1 to {} (percent of one CPU)",
                    MAX_CPUS * 100
                ));
            }
        }
        let memory_max = match &self.memory_max {
            Some(text) => parse_size(text)?,
            None => memory.saturating_add(VMM_OVERHEAD_BYTES),
        };
        if let Some(cpus) = &self.cpuset {
            CpuList::parse(cpus)?;
        }
        if let Some(weight) = self.io_weight {
            crate::io_weight::check(weight)?;
        }
        // Without one the VMM would wait for its API to configure a guest.
        if self.kernel.is_none() {
            return bad("kernel: every guest needs one (--kernel PATH)".to_owned());
        }
        for path in [&self.kernel, &self.initrd].into_iter().flatten() {
            if path.is_relative() {
                return bad(format!(
                    "{}: give an absolute path (the daemon has its own working directory)",
                    path.display()
                ));
            }
        }
        Ok(Demands {
            usage: Usage {
                cpus: u64::from(self.cpus),
                memory,
            },
            limits: GuestLimits {
                cpu_weight,
                cpu_max_percent: self.cpu_max,
                memory_max,
            },
        })
    }

    /// The arguments of `pointsman run` for this guest, paths as on the
    /// host (the jail rewrites them). A reset ends the VMM (`--no-reboot`),
    /// so that `stop`'s Ctrl-Alt-Del ends a guest that reboots on it.
    pub fn run_args(&self, api_sock: &str) -> Vec<OsString> {
        if let Some(origin) = &self.clone_of {
            return origin.run_args(api_sock);
        }
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |option: &str, value: OsString| {
            args.push(option.into());
            args.push(value);
        };
        if let Some(kernel) = &self.kernel {
            push("--kernel", kernel.into());
        }
        if let Some(initrd) = &self.initrd {
            push("--initrd", initrd.into());
        }
        if let Some(cmdline) = &self.cmdline {
            push("--cmdline", cmdline.into());
        }
        push("--cpus", self.cpus.to_string().into());
        push("--memory", self.memory.clone().into());
        for disk in &self.disk {
            push("--disk", disk.into());
        }
        for net in &self.net {
            push("--net", net.into());
        }
        if let Some(vsock) = &self.vsock {
            push("--vsock", vsock.into());
        }
        push("--api-sock", api_sock.into());
        for (flag, on) in [
            ("--rng", self.rng),
            ("--pci", self.pci),
            ("--no-reboot", true),
        ] {
            if on {
                args.push(flag.into());
            }
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_a_small_request() {
        let config = GuestConfig::from_json(br#"{"kernel": "/k", "cmdline": "count"}"#).unwrap();
        assert_eq!((config.cpus, config.memory.as_str()), (1, "128M"));
        let demands = config.demands().unwrap();
        assert_eq!(
            demands.usage,
            Usage {
                cpus: 1,
                memory: 128 * MIB
            }
        );
        assert_eq!(demands.limits.cpu_weight, 100);
        assert_eq!(demands.limits.memory_max, 192 * MIB);
        let args: Vec<String> = config
            .run_args("/api.sock")
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--kernel",
                "/k",
                "--cmdline",
                "count",
                "--cpus",
                "1",
                "--memory",
                "128M",
                "--api-sock",
                "/api.sock",
                "--no-reboot"
            ]
        );
    }

    #[test]
    fn bad_values_are_named() {
        let demands =
            |json: &str| GuestConfig::from_json(json.as_bytes()).and_then(|c| c.demands());
        let message = |json: &str| demands(json).unwrap_err().to_string();
        assert!(message(r#"{"kernel": "/k", "cpus": 0}"#).contains("cpus 0"));
        assert!(message(r#"{"kernel": "/k", "memory": "lots"}"#).contains("\"lots\""));
        assert!(message(r#"{"kernel": "/k", "cpu_weight": 10001}"#).contains("cpu-weight 10001"));
        assert!(message(r#"{"kernel": "/k", "cpu_max": 0}"#).contains("cpu-max 0"));
        assert!(message(r#"{"cpus": 1}"#).contains("every guest needs one"));
        assert!(message(r#"{"kernel": "vmlinux"}"#).contains("absolute path"));
        assert!(message(r#"{"gpus": 1}"#).contains("unknown field"));
        assert!(message(r#"{"kernel": "/k", "cpuset": "1-0"}"#).contains("cpuset \"1-0\""));
        assert!(message(r#"{"kernel": "/k", "io_weight": 0}"#).contains("io-weight 0"));
        assert!(message(r#"{"kernel": "/k", "restart": "sometimes"}"#).contains("on-failure"));
        let thp =
            demands(r#"{"kernel": "/k", "memory": "256M,thp=on", "memory_max": "1G"}"#).unwrap();
        assert_eq!(thp.usage.memory, 256 * MIB);
        assert_eq!(thp.limits.memory_max, 1024 * MIB);
    }
}
