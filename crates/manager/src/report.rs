//! The `GET /stats` document: every guest's share, what it uses and at
//! what rate, and the host's totals. The daemon writes it, `pointsman
//! top` reads it; `GET /metrics` gives the same figures to Prometheus.

use serde::{Deserialize, Serialize};

use crate::rates::Rates;
use crate::stats::Counters;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    pub host: HostStats,
    pub guests: Vec<GuestStats>,
}

/// What the host offers, what is promised, and the daemon's own use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostStats {
    pub capacity_cpus: u64,
    pub capacity_memory_bytes: u64,
    /// Capacity times the overcommit ratios: what guests may be promised.
    pub limit_cpus: u64,
    pub limit_memory_bytes: u64,
    /// What running guests were promised.
    pub used_cpus: u64,
    pub used_memory_bytes: u64,
    pub daemon_cpu_seconds: Option<f64>,
    pub daemon_resident_memory_bytes: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestStats {
    pub name: String,
    /// `running`, `paused`, `stopping` or `stopped`.
    pub state: String,
    /// The VMM's pid while it runs.
    pub pid: Option<u32>,
    pub vcpus: u32,
    pub cpu_weight: u32,
    /// The cap, in percent of one host CPU.
    pub cpu_max_percent: Option<u32>,
    pub memory_limit_bytes: u64,
    pub uptime_seconds: Option<f64>,
    /// Absent for a guest that is not running.
    pub counters: Counters,
    /// Since the daemon's previous look (none the first time).
    pub rates: Option<Rates>,
}
