//! `GET /metrics`: the `GET /stats` figures as Prometheus families. Each
//! guest's sample is labelled `guest="NAME"`; counters are the raw
//! totals (Prometheus' `rate()` makes rates of them), so the rates the
//! daemon works out for `top` are not exposed here.

use crate::prometheus::{Exposition, Kind, Number, Samples};
use crate::report::{GuestStats, StatsReport};

/// A per-guest family: name, help, and the figure it shows.
type GuestFamily = (
    &'static str,
    &'static str,
    fn(&GuestStats) -> Option<Number>,
);

/// Nanoseconds as seconds.
fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// One family of per-guest samples: `value` picks the figure (`None`:
/// the guest has no sample in it).
fn per_guest(
    e: &mut Exposition,
    report: &StatsReport,
    name: &str,
    kind: Kind,
    help: &str,
    value: impl Fn(&GuestStats) -> Option<Number>,
) {
    let samples: Samples<'_> = report
        .guests
        .iter()
        .filter_map(|g| Some((vec![("guest", g.name.as_str())], value(g)?)))
        .collect();
    e.family(name, kind, help, samples);
}

pub fn render(report: &StatsReport) -> String {
    let mut e = Exposition::default();
    let info: Samples<'_> = report
        .guests
        .iter()
        .map(|g| {
            let labels = vec![("guest", g.name.as_str()), ("state", g.state.as_str())];
            (labels, Number::Int(1))
        })
        .collect();
    e.family(
        "pointsman_guest_info",
        Kind::Gauge,
        "Each guest, 1, with its state (running, paused, stopping, stopped) as a label.",
        info,
    );
    use Kind::{Counter, Gauge};
    let gauges: [GuestFamily; 7] = [
        (
            "pointsman_guest_pid",
            "The process id of the guest's VMM, while it runs.",
            |g| g.pid.map(Number::from),
        ),
        ("pointsman_guest_vcpus", "The guest's vCPUs.", |g| {
            Some(g.vcpus.into())
        }),
        (
            "pointsman_guest_cpu_weight",
            "The guest's share of contended CPU time (1-10000, 100 by default).",
            |g| Some(g.cpu_weight.into()),
        ),
        (
            "pointsman_guest_cpu_max_cpus",
            "The guest's CPU cap, in host CPUs (absent: no cap).",
            |g| {
                g.cpu_max_percent
                    .map(|p| Number::Float(f64::from(p) / 100.0))
            },
        ),
        (
            "pointsman_guest_memory_bytes",
            "Memory charged to the guest's cgroup: its VMM's and the guest memory it touched.",
            |g| g.counters.memory_bytes.map(Number::from),
        ),
        (
            "pointsman_guest_memory_limit_bytes",
            "The limit on the guest's cgroup's memory (--memory-max).",
            |g| Some(g.memory_limit_bytes.into()),
        ),
        (
            "pointsman_guest_uptime_seconds",
            "Seconds since the guest's VMM started.",
            |g| g.uptime_seconds.map(Number::from),
        ),
    ];
    for (name, help, value) in gauges {
        per_guest(&mut e, report, name, Gauge, help, value);
    }
    let counters: [GuestFamily; 6] = [
        (
            "pointsman_guest_cpu_seconds_total",
            "CPU time used by every thread of the guest's VMM, vCPUs included.",
            |g| g.counters.cpu_ns.map(|ns| Number::Float(seconds(ns))),
        ),
        (
            "pointsman_guest_cpu_throttled_seconds_total",
            "Time the guest was held back by its CPU cap.",
            |g| {
                g.counters
                    .cpu_throttled_ns
                    .map(|ns| Number::Float(seconds(ns)))
            },
        ),
        (
            "pointsman_guest_disk_read_bytes_total",
            "Bytes the guest's VMM read from block devices (not reads the page cache answered).",
            |g| g.counters.disk_read_bytes.map(Number::from),
        ),
        (
            "pointsman_guest_disk_written_bytes_total",
            "Bytes the guest's VMM wrote to block devices (once they leave the page cache).",
            |g| g.counters.disk_write_bytes.map(Number::from),
        ),
        (
            "pointsman_guest_network_receive_bytes_total",
            "Bytes the guest received on its TAP devices.",
            |g| g.counters.net_rx_bytes.map(Number::from),
        ),
        (
            "pointsman_guest_network_transmit_bytes_total",
            "Bytes the guest sent on its TAP devices.",
            |g| g.counters.net_tx_bytes.map(Number::from),
        ),
    ];
    for (name, help, value) in counters {
        per_guest(&mut e, report, name, Counter, help, value);
    }
    let host = &report.host;
    let host_gauges: [(&str, &str, u64); 7] = [
        (
            "pointsman_host_capacity_cpus",
            "Host CPUs the daemon gives guests.",
            host.capacity_cpus,
        ),
        (
            "pointsman_host_capacity_memory_bytes",
            "Host memory the daemon gives guests (the host's less a reserve).",
            host.capacity_memory_bytes,
        ),
        (
            "pointsman_host_limit_cpus",
            "vCPUs that may be promised: capacity times the CPU overcommit ratio.",
            host.limit_cpus,
        ),
        (
            "pointsman_host_limit_memory_bytes",
            "Guest memory that may be promised: capacity times the memory overcommit ratio.",
            host.limit_memory_bytes,
        ),
        (
            "pointsman_host_used_cpus",
            "vCPUs of running guests.",
            host.used_cpus,
        ),
        (
            "pointsman_host_used_memory_bytes",
            "Guest memory of running guests.",
            host.used_memory_bytes,
        ),
        (
            "pointsman_guests",
            "Guests the daemon knows, running or not.",
            report.guests.len() as u64,
        ),
    ];
    for (name, help, value) in host_gauges {
        e.single(name, Gauge, help, Some(value.into()));
    }
    e.single(
        "process_cpu_seconds_total",
        Counter,
        "CPU time the daemon itself used (user and system).",
        host.daemon_cpu_seconds.map(Number::from),
    );
    e.single(
        "process_resident_memory_bytes",
        Gauge,
        "The daemon's own resident memory.",
        host.daemon_resident_memory_bytes.map(Number::from),
    );
    e.into_text()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::parse::{samples, Line};
    use crate::report::HostStats;
    use crate::stats::Counters;

    fn report() -> StatsReport {
        let running = GuestStats {
            name: "web".into(),
            state: "running".into(),
            pid: Some(4321),
            vcpus: 2,
            cpu_weight: 200,
            cpu_max_percent: Some(150),
            memory_limit_bytes: 192 << 20,
            uptime_seconds: Some(12.5),
            counters: Counters {
                cpu_ns: Some(3_250_000_000),
                cpu_throttled_ns: Some(0),
                memory_bytes: Some(40 << 20),
                disk_read_bytes: Some(4096),
                disk_write_bytes: Some(0),
                net_rx_bytes: None,
                net_tx_bytes: None,
            },
            rates: None,
        };
        let stopped = GuestStats {
            name: "old".into(),
            state: "stopped".into(),
            vcpus: 1,
            cpu_weight: 100,
            memory_limit_bytes: 192 << 20,
            ..GuestStats::default()
        };
        StatsReport {
            host: HostStats {
                capacity_cpus: 2,
                capacity_memory_bytes: 1 << 30,
                limit_cpus: 8,
                limit_memory_bytes: 1 << 30,
                used_cpus: 2,
                used_memory_bytes: 128 << 20,
                daemon_cpu_seconds: Some(0.5),
                daemon_resident_memory_bytes: Some(3 << 20),
            },
            guests: vec![running, stopped],
        }
    }

    fn find<'a>(lines: &'a [Line], name: &str, guest: Option<&str>) -> Option<&'a Line> {
        lines
            .iter()
            .find(|l| l.name == name && l.label("guest") == guest)
    }

    #[test]
    fn every_figure_is_a_family_with_guest_labels() {
        let text = render(&report());
        let lines = samples(&text).unwrap();
        let value = |name, guest| find(&lines, name, guest).map(|l| l.value);
        assert_eq!(
            value("pointsman_guest_cpu_seconds_total", Some("web")),
            Some(3.25)
        );
        assert_eq!(value("pointsman_guest_vcpus", Some("web")), Some(2.0));
        assert_eq!(value("pointsman_guest_vcpus", Some("old")), Some(1.0));
        assert_eq!(
            value("pointsman_guest_cpu_max_cpus", Some("web")),
            Some(1.5)
        );
        assert_eq!(
            value("pointsman_guest_memory_bytes", Some("web")),
            Some(41_943_040.0)
        );
        assert_eq!(
            value("pointsman_guest_memory_limit_bytes", Some("web")),
            Some(201_326_592.0)
        );
        assert_eq!(
            value("pointsman_guest_disk_read_bytes_total", Some("web")),
            Some(4096.0)
        );
        assert_eq!(value("pointsman_guest_pid", Some("web")), Some(4321.0));
        assert_eq!(
            value("pointsman_guest_uptime_seconds", Some("web")),
            Some(12.5)
        );
        assert_eq!(value("pointsman_host_limit_cpus", None), Some(8.0));
        assert_eq!(value("pointsman_guests", None), Some(2.0));
        assert_eq!(
            value("process_resident_memory_bytes", None),
            Some(3_145_728.0)
        );
        // A stopped guest has its info and limits, no usage; no guest has
        // a TAP, so there is no network family at all.
        let old = find(&lines, "pointsman_guest_info", Some("old")).unwrap();
        assert_eq!(old.label("state"), Some("stopped"));
        assert_eq!(
            value("pointsman_guest_cpu_seconds_total", Some("old")),
            None
        );
        assert_eq!(value("pointsman_guest_cpu_max_cpus", Some("old")), None);
        assert!(!text.contains("pointsman_guest_network"));
        // Each family: HELP and TYPE once, before its samples; counters
        // end in _total.
        for line in &lines {
            let type_line = text
                .lines()
                .find(|l| l.starts_with(&format!("# TYPE {} ", line.name)))
                .unwrap_or_else(|| panic!("no TYPE for {}", line.name));
            assert_eq!(
                type_line.ends_with("counter"),
                line.name.ends_with("_total"),
                "{type_line}"
            );
            assert_eq!(text.matches(&format!("# HELP {} ", line.name)).count(), 1);
            let declared = text.find(type_line).unwrap();
            let first = text.find(&format!("\n{}", line.name)).unwrap();
            assert!(declared < first, "{}", line.name);
        }
    }
}
