//! What every bench shares: writing its own section of
//! `docs/benchmarks.md`, describing the machine, dates, medians.
//!
//! Each bench includes this with `mod common;` and uses only part of it.
#![allow(dead_code)]

pub mod host_daemon;
pub mod process;
pub mod scratch;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// QEMU's option for virtio 1.0 virtio-mmio devices, as Pointsman has:
/// QEMU's virtio-mmio transport is the legacy interface unless told.
pub const QEMU_MODERN_VIRTIO: &str = "-global virtio-mmio.force-legacy=false";

/// What the test-host benches compare; each bench picks its list.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Vmm {
    /// Pointsman as it starts by default: virtio-mmio, guest RAM as
    /// `vm-memory` maps it.
    Pointsman,
    /// Pointsman with `--pci`: virtio-pci with MSI-X.
    PointsmanPci,
    /// Pointsman with guest RAM on transparent huge pages (`thp=on`), as
    /// QEMU backs it by default.
    PointsmanThp,
    /// QEMU microvm with virtio-mmio devices.
    Qemu,
    /// QEMU microvm with its PCIe host bridge and virtio-pci devices.
    QemuPci,
}

impl Vmm {
    pub fn name(self) -> &'static str {
        match self {
            Vmm::Pointsman => "Pointsman",
            Vmm::PointsmanPci => "Pointsman `--pci`",
            Vmm::PointsmanThp => "Pointsman `thp=on`",
            Vmm::Qemu => "QEMU microvm",
            Vmm::QemuPci => "QEMU microvm `pcie=on`",
        }
    }

    pub fn is_qemu(self) -> bool {
        matches!(self, Vmm::Qemu | Vmm::QemuPci)
    }

    /// The QEMU set-up a Pointsman one is measured against: the one with
    /// the same virtio transport.
    pub fn reference(self) -> Vmm {
        match self {
            Vmm::PointsmanPci | Vmm::QemuPci => Vmm::QemuPci,
            _ => Vmm::Qemu,
        }
    }

    /// What follows `--memory SIZE` for Pointsman.
    pub fn memory_options(self) -> &'static str {
        match self {
            Vmm::PointsmanThp => ",thp=on",
            _ => "",
        }
    }

    /// Pointsman's transport flag.
    pub fn pointsman_flags(self) -> &'static str {
        match self {
            Vmm::PointsmanPci => " --pci",
            _ => "",
        }
    }

    /// QEMU's arguments before the devices: the machine, the kernel, and
    /// virtio 1.0 on virtio-mmio (QEMU's default there is legacy).
    pub fn qemu_args(self, kernel: &str, initrd: &str, cmdline: &str, memory_mib: u32) -> String {
        let args = testhost::qemu_microvm_args(kernel, initrd, cmdline, memory_mib);
        match self {
            Vmm::QemuPci => args.replacen("-M microvm", "-M microvm,pcie=on", 1),
            _ => format!("{args} {QEMU_MODERN_VIRTIO}"),
        }
    }

    /// QEMU's device for virtio device `kind` (`blk`, `net`, ...) on this
    /// set-up's transport, virtio 1.0 only either way.
    pub fn qemu_device(self, kind: &str) -> String {
        match self {
            // No option ROM: the guest boots from -kernel, and Debian
            // installs no EFI ROMs for QEMU's virtio-net.
            Vmm::QemuPci => format!("virtio-{kind}-pci,disable-legacy=on,romfile="),
            _ => format!("virtio-{kind}-device"),
        }
    }
}

/// "`name` against `QEMU`: verdict" for each Pointsman set-up in `vmms`,
/// against the QEMU one with its transport (QEMU microvm's default when
/// that one is not in `vmms`), joined with "; ".
pub fn verdicts(
    vmms: &[Vmm],
    figure: impl Fn(Vmm) -> Option<f64>,
    higher_is_better: bool,
) -> String {
    vmms.iter()
        .filter(|v| !v.is_qemu())
        .filter_map(|&v| {
            let qemu = [v.reference(), Vmm::Qemu]
                .into_iter()
                .find(|q| vmms.contains(q))?;
            Some(format!(
                "{} against {}: {}",
                v.name(),
                qemu.name(),
                verdict(figure(v), figure(qemu), higher_is_better)
            ))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The markers around one bench's section of `docs/benchmarks.md`.
#[derive(Clone, Copy)]
pub struct Markers {
    pub begin: &'static str,
    pub end: &'static str,
}

impl Markers {
    /// `body` between the markers, one line each, ending in a newline.
    pub fn wrap(&self, body: &str) -> String {
        format!("{}\n{}\n{}\n", self.begin, body.trim_end(), self.end)
    }
}

/// `docs/benchmarks.md` of this checkout.
pub fn docs_path() -> PathBuf {
    docs_file("benchmarks.md")
}

/// `docs/NAME` of this checkout.
pub fn docs_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name)
        .components()
        .collect()
}

/// Puts `body`, wrapped in `markers`, in place of the text between them
/// in `text` (markers included), or at its end; the rest stays as it was.
pub fn splice(text: &str, markers: Markers, body: &str) -> String {
    let section = markers.wrap(body);
    let span = text.find(markers.begin).and_then(|start| {
        let end = text[start..].find(markers.end)? + start + markers.end.len();
        Some((start, end))
    });
    match span {
        Some((start, end)) => {
            let rest = text[end..].strip_prefix('\n').unwrap_or(&text[end..]);
            format!("{}{section}{rest}", &text[..start])
        }
        None if text.trim().is_empty() => format!("# Benchmarks\n\n{section}"),
        None => format!("{}\n\n{section}", text.trim_end()),
    }
}

/// Writes `body` into its section of `docs/benchmarks.md`, re-reading the
/// file just before: other benches own the other sections.
pub fn write_section(markers: Markers, body: &str) -> std::io::Result<PathBuf> {
    write_section_to(&docs_path(), markers, body)
}

/// Writes `body` into its section of the document at `path`; the rest of
/// the document stays as it was.
pub fn write_section_to(path: &Path, markers: Markers, body: &str) -> std::io::Result<PathBuf> {
    let path = path.to_owned();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, splice(&old, markers, body))?;
    Ok(path)
}

/// Prints `body` and writes it to its section, reporting where as `bench`.
pub fn publish(bench: &str, markers: Markers, body: &str) {
    publish_to(&docs_path(), bench, markers, body);
}

/// As [`publish`], into the document at `path`.
pub fn publish_to(path: &Path, bench: &str, markers: Markers, body: &str) {
    print!("{}", markers.wrap(body));
    match write_section_to(path, markers, body) {
        Ok(path) => eprintln!("{bench}: wrote {}", path.display()),
        Err(e) => eprintln!("{bench}: cannot write {}: {e}", path.display()),
    }
}

/// Whether `cargo bench` started this binary (it passes `--bench`); a
/// plain `cargo test --benches` passes nothing and must stay quick.
pub fn bench_requested() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn date(format: &str) -> String {
    Command::new("date")
        .args(["-u", format])
        .output()
        .map_or("unknown".into(), |o| {
            String::from_utf8_lossy(&o.stdout).trim().to_owned()
        })
}

/// Today, `YYYY-MM-DD` (UTC).
pub fn today() -> String {
    date("+%Y-%m-%d")
}

/// Now, `YYYY-MM-DD HH:MM UTC`.
pub fn now() -> String {
    date("+%Y-%m-%d %H:%M UTC")
}

/// The CPU model and count, as `MODEL (N CPUs)`.
pub fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".into(), |(_, v)| v.trim().to_owned());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    format!("{model} ({cpus} CPUs)")
}

/// The running kernel's release.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("unknown".into(), |k| k.trim().to_owned())
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or("unknown".into(), |l| {
        l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    })
}

/// The first line `program args` prints, or `unknown`.
pub fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map_or("unknown".into(), |o| {
            let text = String::from_utf8_lossy(&o.stdout);
            text.lines().next().unwrap_or("unknown").trim().to_owned()
        })
}

/// The first line of an error's message: a test host error carries the
/// console's tail after it, which the caller prints apart or not at all.
pub fn headline(error: &impl std::fmt::Display) -> String {
    error.to_string().lines().next().unwrap_or("").to_owned()
}

/// `items` (VMMs, set-ups) in the order round `round` runs them: as given,
/// then reversed every other round, so drift in the shared machine's load
/// hits all alike.
pub fn round_order<T, const N: usize>(items: [T; N], round: usize) -> [T; N] {
    let mut order = items;
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// The indices of an array of `N`, in the order round `round` runs them.
pub fn round_indices<const N: usize>(round: usize) -> [usize; N] {
    round_order(std::array::from_fn(|i| i), round)
}

/// The median (the mean of the two middle values for an even count), or
/// `None` for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ => Some((v[(n - 1) / 2] + v[n / 2]) / 2.0),
    }
}

/// The median of durations, through the median of seconds (zero for none).
pub fn median_duration(values: &[Duration]) -> Duration {
    let seconds: Vec<f64> = values.iter().map(Duration::as_secs_f64).collect();
    Duration::from_secs_f64(median(&seconds).unwrap_or(0.0))
}

/// The `p`th percentile (0 to 100) by the nearest-rank method: the
/// smallest value at or above `p`% of them; `None` for no values.
pub fn percentile(values: &[Duration], p: f64) -> Option<Duration> {
    let mut v = values.to_vec();
    v.sort_unstable();
    // A count of samples is far below 2^52: exact in f64, and the rank
    // is at most the count.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = (p / 100.0 * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len().max(1)) - 1).copied()
}

/// The median and 99th percentile of timed requests or runs.
#[derive(Clone, Copy)]
pub struct Latency {
    pub count: usize,
    pub median: Duration,
    pub p99: Duration,
}

impl Latency {
    pub fn of(samples: &[Duration]) -> Latency {
        Latency {
            count: samples.len(),
            median: median_duration(samples),
            p99: percentile(samples, 99.0).unwrap_or_default(),
        }
    }
}

/// A duration in milliseconds, two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// A duration in microseconds, whole.
pub fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// KiB as MiB, two decimals.
pub fn mib(kib: u64) -> String {
    // KiB counts of a process's memory are far below 2^52: exact in f64.
    #[allow(clippy::cast_precision_loss)]
    let value = kib as f64 / 1024.0;
    format!("{value:.2} MiB")
}

/// Whether `ours` is at or above `qemu` (at or below when lower is
/// better), with `ours` as a share of `qemu`.
pub fn verdict(ours: Option<f64>, qemu: Option<f64>, higher_is_better: bool) -> String {
    match (ours, qemu) {
        (Some(o), Some(q)) => {
            let good = if higher_is_better { o >= q } else { o <= q };
            let word = if good {
                "**at or above QEMU**"
            } else {
                "**below QEMU**"
            };
            format!("{word} ({:.0}%)", 100.0 * o / q)
        }
        _ => "not measured".into(),
    }
}
