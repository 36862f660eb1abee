//! What each guest uses, read where the kernel counts it: its cgroup
//! (CPU time, throttled time, memory, block I/O), its TAP devices'
//! statistics (network) and /proc (uptime). `GET /stats` and
//! `GET /metrics` show these; [`crate::rates`] turns two samples into
//! rates.
//!
//! Every figure is an `Option`: a file that is missing or unreadable (a
//! controller not mounted, a v2 cgroup without the io controller, a TAP
//! the guest has not made yet) gives `None`, shown as absent, not as 0.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroup::CgroupLayout;

/// A guest's counters at one moment. Bytes and nanoseconds, each since
/// the guest's VMM started (its cgroup was new then).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// CPU time of every thread of the VMM: its vCPUs, its device
    /// workers and its own.
    pub cpu_ns: Option<u64>,
    /// Time the guest was runnable but held back by its `--cpu-max` cap.
    pub cpu_throttled_ns: Option<u64>,
    /// Memory charged to the guest's cgroup (the VMM's RSS, the guest's
    /// memory it has touched, page cache of its files).
    pub memory_bytes: Option<u64>,
    /// Bytes read from and written to block devices: I/O that reached the
    /// block layer, so not reads the host's page cache answered nor
    /// writes still in it.
    pub disk_read_bytes: Option<u64>,
    pub disk_write_bytes: Option<u64>,
    /// Bytes the guest received and sent on its TAP devices (the TAP's
    /// transmit and receive counters: the host's view is the reverse).
    pub net_rx_bytes: Option<u64>,
    pub net_tx_bytes: Option<u64>,
}

/// Where the figures are read: the host's files, or a test's directory
/// laid out like them.
#[derive(Clone, Debug)]
pub struct Sources {
    pub cgroups: CgroupLayout,
    /// The cgroup under which each guest's is made.
    pub parent_cgroup: String,
    /// `/sys/class/net`.
    pub net_root: PathBuf,
}

impl Sources {
    /// Guest `name`'s counters; `taps` are its TAP devices' names.
    pub fn counters(&self, name: &str, taps: &[String]) -> Counters {
        let dir = |controller: &str| {
            self.cgroups
                .controller_dir(controller, &self.parent_cgroup, name)
        };
        let file = |controller: &str, file: &str| -> Option<String> {
            std::fs::read_to_string(dir(controller)?.join(file)).ok()
        };
        let (rx, tx) = self.network(taps);
        let mut counters = Counters {
            net_rx_bytes: rx,
            net_tx_bytes: tx,
            ..Counters::default()
        };
        match self.cgroups {
            CgroupLayout::V1 { .. } => {
                counters.cpu_ns = file("cpuacct", "cpuacct.usage").and_then(|t| number(&t));
                counters.cpu_throttled_ns =
                    file("cpu", "cpu.stat").and_then(|t| keyed(&t, "throttled_time"));
                counters.memory_bytes =
                    file("memory", "memory.usage_in_bytes").and_then(|t| number(&t));
                if let Some(text) = file("blkio", "blkio.throttle.io_service_bytes") {
                    let (read, write) = v1_io_service_bytes(&text);
                    counters.disk_read_bytes = Some(read);
                    counters.disk_write_bytes = Some(write);
                }
            }
            CgroupLayout::V2 { .. } => {
                let stat = file("cpu", "cpu.stat");
                let micros = |key| Some(keyed(stat.as_deref()?, key)?.saturating_mul(1000));
                counters.cpu_ns = micros("usage_usec");
                counters.cpu_throttled_ns = micros("throttled_usec");
                counters.memory_bytes = file("memory", "memory.current").and_then(|t| number(&t));
                if let Some(text) = file("io", "io.stat") {
                    let (read, write) = v2_io_stat(&text);
                    counters.disk_read_bytes = Some(read);
                    counters.disk_write_bytes = Some(write);
                }
            }
        }
        counters
    }

    /// Bytes received and sent by the guest on `taps`, summed; `None` if
    /// it has none or any cannot be read.
    fn network(&self, taps: &[String]) -> (Option<u64>, Option<u64>) {
        if taps.is_empty() {
            return (None, None);
        }
        let mut rx = Some(0u64);
        let mut tx = Some(0u64);
        for tap in taps {
            let read = |file: &str| {
                let path = self.net_root.join(tap).join("statistics").join(file);
                std::fs::read_to_string(path).ok().and_then(|t| number(&t))
            };
            // The TAP transmits what the guest receives.
            rx = rx.zip(read("tx_bytes")).map(|(a, b)| a.saturating_add(b));
            tx = tx.zip(read("rx_bytes")).map(|(a, b)| a.saturating_add(b));
        }
        (rx, tx)
    }
}

/// The TAP device names in `pointsman run --net` specs
/// (`tap=NAME[,mac=...]`).
pub fn tap_names(net_specs: &[String]) -> Vec<String> {
    net_specs
        .iter()
        .filter_map(|spec| {
            spec.split(',')
                .find_map(|part| part.strip_prefix("tap="))
                .filter(|name| !name.is_empty() && !name.contains('/'))
                .map(str::to_owned)
        })
        .collect()
}

fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The value of `key` in `KEY VALUE` lines (`cpu.stat`).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| number(v)).flatten()
    })
}

/// Read and write bytes in v1's `blkio.throttle.io_service_bytes`: lines
/// `MAJ:MIN Read N`, `MAJ:MIN Write N`, ..., and a `Total N`.
fn v1_io_service_bytes(text: &str) -> (u64, u64) {
    let mut read = 0u64;
    let mut write = 0u64;
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [_, op, value] = fields[..] {
            let value = number(value).unwrap_or(0);
            match op {
                "Read" => read = read.saturating_add(value),
                "Write" => write = write.saturating_add(value),
                _ => {}
            }
        }
    }
    (read, write)
}

/// Read and write bytes in v2's `io.stat`: a line per device,
/// `MAJ:MIN rbytes=N wbytes=N rios=N ...`.
fn v2_io_stat(text: &str) -> (u64, u64) {
    let mut read = 0u64;
    let mut write = 0u64;
    for pair in text.split_whitespace() {
        let value = |prefix: &str| pair.strip_prefix(prefix).and_then(number);
        if let Some(n) = value("rbytes=") {
            read = read.saturating_add(n);
        } else if let Some(n) = value("wbytes=") {
            write = write.saturating_add(n);
        }
    }
    (read, write)
}

/// Seconds process `start_ticks` (field 22 of its `stat`) has run, from
/// `/proc/uptime`.
pub fn uptime_seconds(start_ticks: u64) -> Option<f64> {
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let since_boot: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let seconds = (since_boot - ticks_to_seconds(start_ticks)).max(0.0);
    // Both are in hundredths: no more digits than that.
    Some((seconds * 100.0).round() / 100.0)
}

/// The daemon's own CPU time (user and system) and resident memory.
pub fn own_usage() -> (Option<f64>, Option<u64>) {
    own_usage_in(Path::new("/proc/self"))
}

fn own_usage_in(dir: &Path) -> (Option<f64>, Option<u64>) {
    let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
    let cpu = stat.rfind(')').and_then(|i| {
        // utime and stime are fields 14 and 15: the 12th and 13th after
        // the name.
        let mut fields = stat[i + 1..].split_whitespace().skip(11);
        let user: u64 = fields.next()?.parse().ok()?;
        let system: u64 = fields.next()?.parse().ok()?;
        Some(ticks_to_seconds(user.saturating_add(system)))
    });
    let statm = std::fs::read_to_string(dir.join("statm")).unwrap_or_default();
    let rss = statm
        .split_whitespace()
        .nth(1)
        .and_then(number)
        .map(|pages| pages.saturating_mul(page_size()));
    (cpu, rss)
}

fn ticks_to_seconds(ticks: u64) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = if per_second > 0 { per_second } else { 100 };
    ticks as f64 / per_second as f64
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cgroup tree and /sys/class/net under a temporary directory.
    struct Tree {
        root: PathBuf,
    }

    impl Tree {
        fn new(tag: &str) -> Tree {
            Tree {
                root: crate::test_daemon::fresh_dir("stats", tag),
            }
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }

        fn sources(&self, cgroups: CgroupLayout) -> Sources {
            Sources {
                cgroups,
                parent_cgroup: "p".into(),
                net_root: self.root.join("net"),
            }
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    #[test]
    fn v1_figures_come_from_each_hierarchy() {
        let tree = Tree::new("v1");
        let mounts: Vec<(String, PathBuf)> = ["cpu", "cpuacct", "memory", "blkio"]
            .iter()
            .map(|c| (c.to_string(), tree.root.join(c)))
            .collect();
        tree.write("cpuacct/p/g/cpuacct.usage", "2500000000\n");
        tree.write(
            "cpu/p/g/cpu.stat",
            "nr_periods 10\nnr_throttled 2\nthrottled_time 7000\n",
        );
        tree.write("memory/p/g/memory.usage_in_bytes", "52428800\n");
        tree.write(
            "blkio/p/g/blkio.throttle.io_service_bytes",
            "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\n8:16 Read 4096\n8:16 Total 4096\nTotal 8704\n",
        );
        tree.write("net/tap0/statistics/rx_bytes", "100\n");
        tree.write("net/tap0/statistics/tx_bytes", "2000\n");
        tree.write("net/tap1/statistics/rx_bytes", "1\n");
        tree.write("net/tap1/statistics/tx_bytes", "2\n");
        let sources = tree.sources(CgroupLayout::V1 { mounts });
        let counters = sources.counters("g", &["tap0".into(), "tap1".into()]);
        assert_eq!(
            counters,
            Counters {
                cpu_ns: Some(2_500_000_000),
                cpu_throttled_ns: Some(7000),
                memory_bytes: Some(52_428_800),
                disk_read_bytes: Some(8192),
                disk_write_bytes: Some(512),
                net_rx_bytes: Some(2002),
                net_tx_bytes: Some(101),
            }
        );
        // No such guest, no such TAP: nothing is made up.
        let none = sources.counters("other", &["tap9".into()]);
        assert_eq!(none, Counters::default());
    }

    #[test]
    fn v2_figures_come_from_the_one_cgroup() {
        let tree = Tree::new("v2");
        tree.write(
            "unified/p/g/cpu.stat",
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_throttled 1\nthrottled_usec 30\n",
        );
        tree.write("unified/p/g/memory.current", "4096\n");
        tree.write(
            "unified/p/g/io.stat",
            "8:0 rbytes=100 wbytes=20 rios=1 wios=1 dbytes=0 dios=0\n8:16 rbytes=5 wbytes=0 rios=1 wios=0\n",
        );
        let mount = tree.root.join("unified");
        let counters = tree.sources(CgroupLayout::V2 { mount }).counters("g", &[]);
        assert_eq!(
            counters,
            Counters {
                cpu_ns: Some(1_500_000),
                cpu_throttled_ns: Some(30_000),
                memory_bytes: Some(4096),
                disk_read_bytes: Some(105),
                disk_write_bytes: Some(20),
                net_rx_bytes: None,
                net_tx_bytes: None,
            }
        );
    }

    #[test]
    fn tap_names_come_from_net_specs() {
        let specs = [
            "tap=tap0,mac=02:00:00:00:00:01".to_owned(),
            "id=eth1,tap=vm-b".into(),
            "mac=02:00:00:00:00:02".into(),
            "tap=../x".into(),
        ];
        assert_eq!(tap_names(&specs), ["tap0", "vm-b"]);
    }

    #[test]
    fn own_usage_reads_stat_and_statm() {
        let tree = Tree::new("own");
        tree.write(
            "self/stat",
            "42 (point sman) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 77 1000 200\n",
        );
        tree.write("self/statm", "1000 300 100 1 0 200 0\n");
        let (cpu, rss) = own_usage_in(&tree.root.join("self"));
        assert_eq!(cpu, Some(ticks_to_seconds(300)));
        assert_eq!(rss, Some(300 * page_size()));
        let (cpu, rss) = own_usage();
        assert!(cpu.is_some() && rss.unwrap() > 0);
        assert!(uptime_seconds(0).unwrap() > 0.0);
    }
}
