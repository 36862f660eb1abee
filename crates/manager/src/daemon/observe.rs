//! What the daemon's guests use, for `GET /stats` and `GET /metrics`:
//! read from each running guest's cgroup, TAPs and /proc at the moment
//! of the request (nothing is sampled in the background, so a daemon no
//! one asks costs nothing), with rates since the previous request.

use std::path::PathBuf;
use std::time::Instant;

use super::Daemon;
use crate::capacity;
use crate::metrics_text;
use crate::rates::Sample;
use crate::report::{GuestStats, HostStats, StatsReport};
use crate::stats::{self, Counters, Sources};

/// Where TAP devices' counters are.
const NET_ROOT: &str = "/sys/class/net";

impl Daemon {
    /// Every guest's figures now.
    pub fn stats(&mut self) -> StatsReport {
        let sources = Sources {
            cgroups: self.settings.cgroups.clone(),
            parent_cgroup: self.settings.parent_cgroup.clone(),
            net_root: PathBuf::from(NET_ROOT),
        };
        let mut guests = Vec::with_capacity(self.guests.len());
        for (name, guest) in &self.guests {
            let live = guest.is_live();
            let limits = guest.demands.limits;
            let mut stats = GuestStats {
                name: name.clone(),
                state: guest.phase.name().to_owned(),
                pid: live.then_some(guest.process.pid),
                vcpus: guest.config.cpus,
                cpu_weight: limits.cpu_weight,
                cpu_max_percent: limits.cpu_max_percent,
                memory_limit_bytes: limits.memory_max,
                ..GuestStats::default()
            };
            if live {
                stats.uptime_seconds = stats::uptime_seconds(guest.process.start_time);
                stats.counters = sources.counters(name, &stats::tap_names(&guest.config.net));
                let sample = Sample {
                    at: Instant::now(),
                    counters: stats.counters,
                };
                stats.rates = self.history.update(name, sample);
            } else {
                stats.counters = Counters::default();
            }
            guests.push(stats);
        }
        let live: Vec<&str> = guests
            .iter()
            .filter(|g| g.pid.is_some())
            .map(|g| g.name.as_str())
            .collect();
        self.history.keep_only(&live);
        StatsReport {
            host: self.host_stats(),
            guests,
        }
    }

    fn host_stats(&self) -> HostStats {
        let capacity = self.settings.capacity;
        let limits = capacity::limits(capacity, self.settings.overcommit);
        let used = self.used();
        let (cpu, rss) = stats::own_usage();
        HostStats {
            capacity_cpus: capacity.cpus.into(),
            capacity_memory_bytes: capacity.memory,
            limit_cpus: limits.cpus,
            limit_memory_bytes: limits.memory,
            used_cpus: used.cpus,
            used_memory_bytes: used.memory,
            daemon_cpu_seconds: cpu,
            daemon_resident_memory_bytes: rss,
        }
    }

    /// The figures in Prometheus' text format.
    pub fn metrics(&mut self) -> String {
        metrics_text::render(&self.stats())
    }
}
