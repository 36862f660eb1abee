//! virtio-blk throughput, Pointsman against QEMU microvm: sequential
//! reads and writes and 4 KiB random reads by Debian's cloud kernel, in
//! the test host (see the testhost crate). Both VMMs boot the same guest
//! in the same test host run, over the same kind of raw image on the same
//! storage. Writes the figures to the section between
//! `<!-- block:begin -->` and `<!-- block:end -->` of `docs/benchmarks.md`.
//!
//! Run with `cargo bench -p pointsman --bench block`.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{median, verdicts, Markers, Vmm};
use testhost::{linux_guest_initramfs, TestHost};

const MARKERS: Markers = Markers {
    begin: "<!-- block:begin -->",
    end: "<!-- block:end -->",
};
const CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 quiet";
/// Image size and bytes moved per sequential pass, in MiB.
const IMAGE_MIB: u32 = 512;
/// Passes of each measurement in one VM session.
const ROUNDS: u32 = 2;
/// VM sessions per VMM and disk, run forwards and backwards in turn
/// (A B C, C B A, A B C) so that a machine getting busier or quieter over
/// the run weighs on every VMM alike; the median over all sessions'
/// passes is reported.
const SESSIONS: usize = 3;
/// Longest one VM session may run before the test host shows where its
/// VMM waits and kills it (seconds; a session takes about a minute).
const VM_LIMIT_SECONDS: u32 = 400;
/// Longest one test host boot may take: its VM session and the test
/// host's own start and stop around it (seconds).
const HOST_LIMIT_SECONDS: u64 = VM_LIMIT_SECONDS as u64 + 200;
/// What the guest prints after its last measurement: a session without it
/// stopped early (QEMU with `-no-reboot` exits with status 0 when its
/// guest resets).
const GUEST_DONE: &str = "@@guest-done";
/// Seconds of each random-read run.
const RANDOM_SECONDS: u32 = 5;
const MEMORY_MIB: u32 = 512;
/// The set-ups compared, in the order a session round runs them: each
/// VMM with virtio-mmio and with virtio-pci.
const VMMS: [Vmm; 4] = [Vmm::Pointsman, Vmm::PointsmanPci, Vmm::Qemu, Vmm::QemuPci];
const KERNEL: &str = "/guest/vmlinuz";
const INITRD: &str = "/guest/initrd.cpio";

/// 4 KiB O_DIRECT reads at random aligned offsets of a block device by
/// JOBS processes for SECONDS; prints reads per second. Each job keeps
/// one read in flight, so JOBS is the queue depth.
const RANDREAD_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: randread DEV JOBS SECONDS\n"); return 2; }
    int jobs = atoi(argv[2]);
    double seconds = atof(argv[3]);
    int fd = open(argv[1], O_RDONLY | O_DIRECT);
    uint64_t size = 0;
    if (fd < 0 || ioctl(fd, BLKGETSIZE64, &size) != 0 || size < 4096) { perror(argv[1]); return 1; }
    uint64_t blocks = size / 4096;
    int counts[2];
    if (pipe(counts) != 0) { perror("pipe"); return 1; }
    double start = now();
    for (int j = 0; j < jobs; j++) {
        if (fork() == 0) {
            void *buf;
            if (posix_memalign(&buf, 4096, 4096) != 0) _exit(1);
            uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(j + 1), n = 0;
            while (now() - start < seconds) {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                if (pread(fd, buf, 4096, (off_t)((x % blocks) * 4096)) != 4096) { perror("pread"); _exit(1); }
                n++;
            }
            if (write(counts[1], &n, sizeof n) != sizeof n) _exit(1);
            _exit(0);
        }
    }
    uint64_t total = 0, n;
    for (int j = 0; j < jobs; j++) {
        if (read(counts[0], &n, sizeof n) != sizeof n) { fprintf(stderr, "a job failed\n"); return 1; }
        total += n;
    }
    while (wait(NULL) > 0) {}
    printf("%.0f\n", total / (now() - start));
    return 0;
}
"#;

/// The guest: each measurement ROUNDS times, as `@@NAME VALUE` lines.
fn guest_script() -> String {
    format!(
        r#"
for i in $(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.1; done
took() {{
    s=$(cut -d' ' -f1 /proc/uptime)
    "$@" >/dev/null 2>&1 || echo "@@failed $*"
    awk -v s=$s '{{print $1 - s}}' /proc/uptime
}}
mibs() {{ awk -v t="$1" 'BEGIN {{ printf "%.1f", {IMAGE_MIB} / t }}'; }}
# MiB/s of one sequential pass over the whole disk.
write_pass() {{ mibs $(took dd if=/dev/zero of=/dev/vda bs=1M count={IMAGE_MIB} oflag=direct); }}
read_pass() {{ mibs $(took dd if=/dev/vda of=/dev/null bs=1M count={IMAGE_MIB} iflag=direct); }}
# The disk's interrupts so far, and its requests completed so far.
irqs() {{ awk '/virtio/ {{ for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i }} END {{ print s + 0 }}' /proc/interrupts; }}
reqs() {{ awk '{{ print $1 + $5 }}' /sys/block/vda/stat; }}
# rand JOBS: random reads with JOBS in flight, and interrupts per request.
rand() {{
    i0=$(irqs); r0=$(reqs)
    v=$(randread /dev/vda $1 {RANDOM_SECONDS})
    i1=$(irqs); r1=$(reqs)
    echo "@@rand-read-qd$1 $v"
    echo "@@irqs-qd$1 $(awk -v i=$((i1 - i0)) -v r=$((r1 - r0)) 'BEGIN {{ printf "%.2f", r ? i / r : 0 }}')"
}}
# The first write fills the fresh sparse image (the test host allocates
# it as it goes); the rounds' writes overwrite it.
echo "@@fresh-write $(write_pass)"
for round in $(seq 1 {ROUNDS}); do
    echo "@@seq-write $(write_pass)"
    echo "@@seq-read $(read_pass)"
    rand 1
    rand 8
done
echo "{GUEST_DONE}"
poweroff -f
"#
    )
}

impl Vmm {
    /// The test host helper call that boots the guest on `image`.
    fn command(self, disk: Disk, image: &str) -> String {
        if self.is_qemu() {
            format!(
                "run_qemu {} -drive file={image},format=raw,if=none,id=disk0,cache={} \
                 -device {},drive=disk0",
                self.qemu_args(KERNEL, INITRD, CMDLINE, MEMORY_MIB),
                disk.qemu_cache(),
                self.qemu_device("blk")
            )
        } else {
            format!(
                "run_vm --kernel {KERNEL} --initrd {INITRD} --cmdline '{CMDLINE}' \
                 --memory {MEMORY_MIB}M{} --cpus 1{} --disk path={image}{}",
                self.memory_options(),
                self.pointsman_flags(),
                disk.pointsman_options()
            )
        }
    }
}

/// Where the image is and how the VMM opens it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Disk {
    /// On tmpfs, through the host page cache.
    Cached,
    /// On ext4 on a RAM block device, with O_DIRECT.
    Direct,
}

impl Disk {
    const ALL: [Disk; 2] = [Disk::Cached, Disk::Direct];

    fn describe(self) -> &'static str {
        match self {
            Disk::Cached => "image on tmpfs, host page cache",
            Disk::Direct => "image on ext4 on `brd`, O_DIRECT",
        }
    }

    fn pointsman_options(self) -> &'static str {
        match self {
            Disk::Cached => "",
            Disk::Direct => ",direct=on",
        }
    }

    /// QEMU's cache mode that does what Pointsman does: buffered
    /// write-back, or O_DIRECT with flushes passed on.
    fn qemu_cache(self) -> &'static str {
        match self {
            Disk::Cached => "writeback",
            Disk::Direct => "none",
        }
    }

    fn image(self) -> &'static str {
        match self {
            Disk::Cached => "/disks/disk.img",
            Disk::Direct => "/direct/disk.img",
        }
    }
}

/// The VM runs, in order: for each disk, [`SESSIONS`] of each VMM, each
/// on a fresh image, forwards and backwards in turn.
fn plan() -> Vec<(Disk, Vmm)> {
    let mut steps = Vec::new();
    for disk in Disk::ALL {
        for session in 0..SESSIONS {
            steps.extend(common::round_order(VMMS, session).map(|vmm| (disk, vmm)));
        }
    }
    steps
}

/// The test host's script for one VM session: the disk's storage, a
/// fresh sparse image on it, and the VM.
fn host_script(disk: Disk, vmm: Vmm) -> String {
    let storage = match disk {
        Disk::Cached => "mkdir -p /disks && mount -t tmpfs -o size=1G tmpfs /disks\n".to_owned(),
        Disk::Direct => format!(
            "insmod /extra/brd.ko rd_nr=1 rd_size={} || echo '@@insmod-failed'\n\
             mke2fs -F /dev/ram0 >/dev/null 2>&1; mkdir -p /direct\n\
             mount -t ext4 /dev/ram0 /direct || echo '@@mount-failed'\n",
            (IMAGE_MIB + 128) * 1024
        ),
    };
    let image = disk.image();
    format!(
        "VM_LIMIT={VM_LIMIT_SECONDS}\n{storage}truncate -s {IMAGE_MIB}M {image}\n{}\n",
        vmm.command(disk, image)
    )
}

/// Compiles the random-read tool for the guest (static: the guest has
/// only busybox).
fn build_randread(dir: &Path) -> Result<PathBuf, String> {
    let source = dir.join("randread.c");
    let binary = dir.join("randread");
    std::fs::write(&source, RANDREAD_C).map_err(|e| e.to_string())?;
    let out = Command::new("cc")
        .args(["-O2", "-static", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .map_err(|e| format!("cc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cc: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(binary)
}

/// Every `@@NAME VALUE` of each metric in one VM's console.
fn values(console: &str) -> Vec<Vec<f64>> {
    METRICS
        .iter()
        .map(|metric| {
            let tag = format!("@@{} ", metric.tag);
            console
                .lines()
                .filter_map(|l| l.trim_end_matches('\r').strip_prefix(tag.as_str()))
                .filter_map(|v| v.trim().parse().ok())
                .collect()
        })
        .collect()
}

/// One row: its tag in the guest's output, its name, and whether it is a
/// target (higher is better) or shown for explanation only.
struct Metric {
    tag: &'static str,
    what: &'static str,
    target: bool,
}

const METRICS: &[Metric] = &[
    Metric {
        tag: "fresh-write",
        what: "Sequential write to the fresh image, 1 MiB blocks (MiB/s)",
        target: true,
    },
    Metric {
        tag: "seq-write",
        what: "Sequential overwrite, 1 MiB blocks (MiB/s)",
        target: true,
    },
    Metric {
        tag: "seq-read",
        what: "Sequential read, 1 MiB blocks (MiB/s)",
        target: true,
    },
    Metric {
        tag: "rand-read-qd1",
        what: "4 KiB random read, 1 in flight (IOPS)",
        target: true,
    },
    Metric {
        tag: "rand-read-qd8",
        what: "4 KiB random read, 8 in flight (IOPS)",
        target: true,
    },
    Metric {
        tag: "irqs-qd1",
        what: "Guest interrupts per request, 1 in flight (info)",
        target: false,
    },
    Metric {
        tag: "irqs-qd8",
        what: "Guest interrupts per request, 8 in flight (info)",
        target: false,
    },
];

/// What the VM sessions gave.
struct Figures {
    /// Each session's values per metric, in [`plan`] order.
    runs: Vec<Vec<Vec<f64>>>,
    /// The sessions that did not end with status 0, as `VMM on disk: why`.
    failed: Vec<String>,
}

fn measure(dir: &Path) -> Result<Figures, String> {
    let host = TestHost::new(Path::new(env!("CARGO_BIN_EXE_pointsman")))
        .map_err(|e| e.to_string())?
        .with_qemu()
        .timeout(std::time::Duration::from_secs(HOST_LIMIT_SECONDS));
    let assets = host.assets();
    let randread = build_randread(dir)?;
    let initrd = dir.join("guest.cpio");
    let mut image = linux_guest_initramfs(
        &assets.busybox,
        &assets.cloud,
        &["virtio_mmio", "virtio_pci", "virtio_blk"],
        &guest_script(),
    )
    .map_err(|e| e.to_string())?;
    image.file("bin/randread", &randread, 0o755);
    image.write(&initrd).map_err(|e| e.to_string())?;
    let kernel = assets.cloud.vmlinuz.clone();
    let brd = assets.cloud.modules.join("drivers/block/brd.ko");
    let files = [
        ("guest/vmlinuz", kernel.as_path()),
        ("guest/initrd.cpio", initrd.as_path()),
        ("extra/brd.ko", brd.as_path()),
    ];
    let mut figures = Figures {
        runs: Vec::new(),
        failed: Vec::new(),
    };
    // Each session boots a test host of its own: a fault of the nested,
    // emulated test host (docs/guests.md), which on some machines comes
    // every few long runs, then costs one session rather than the rest of
    // the plan.
    for (disk, vmm) in plan() {
        let session = session(&host, &files, disk, vmm);
        if let Err(why) = &session {
            eprintln!("block bench: {} on {}: {why}", vmm.name(), disk.describe());
            figures
                .failed
                .push(format!("{} on {}: {why}", vmm.name(), disk.describe()));
        }
        figures.runs.push(session.unwrap_or_default());
    }
    Ok(figures)
}

/// One VM session's values per metric, or why it gave none.
fn session(
    host: &TestHost,
    files: &[(&str, &Path)],
    disk: Disk,
    vmm: Vmm,
) -> Result<Vec<Vec<f64>>, String> {
    let run = host
        .run(files, &host_script(disk, vmm))
        .map_err(|e| common::headline(&e))?;
    let tail = || run.console_tail(40);
    let (console, status) = match run.vm_runs().pop() {
        Some(vm) => vm,
        None => {
            eprintln!("{}", tail());
            return Err("the VM did not run".into());
        }
    };
    if console.contains("@@vm-timeout") {
        eprintln!("{}", tail());
        return Err(format!("killed after {VM_LIMIT_SECONDS} s"));
    }
    if status != 0 {
        eprintln!("{}", tail());
        return Err(format!("exit status {status}"));
    }
    if let Some(line) = console.lines().find(|l| l.contains("@@failed")) {
        return Err(format!("a measurement failed ({line})"));
    }
    if !console.contains(GUEST_DONE) {
        eprintln!("{}", tail());
        return Err("the guest stopped before its last measurement".into());
    }
    Ok(values(&console))
}

fn cell(metric: &Metric, value: Option<f64>) -> String {
    match value {
        None => "–".into(),
        Some(v) if metric.target => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn table(out: &mut String, figures: &Figures) {
    let names: Vec<&str> = VMMS.iter().map(|v| v.name()).collect();
    let _ = writeln!(
        out,
        "| Disk | Measure | {} | Pointsman against QEMU, same transport |\n|---|---|{}---|",
        names.join(" | "),
        "---:|".repeat(VMMS.len())
    );
    let mut passes = String::new();
    for disk in Disk::ALL {
        for (m, metric) in METRICS.iter().enumerate() {
            let what = metric.what;
            let all = VMMS.map(|vmm| passes_of(figures, disk, vmm, m));
            let medians = all.clone().map(|v| median(&v));
            let of = |vmm: Vmm| VMMS.iter().position(|&v| v == vmm).and_then(|i| medians[i]);
            let against = if metric.target {
                verdicts(&VMMS, of, true)
            } else {
                "–".into()
            };
            let cells: Vec<String> = medians
                .iter()
                .map(|&v| format!("**{}**", cell(metric, v)))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {what} | {} | {against} |",
                disk.describe(),
                cells.join(" | ")
            );
            let lists: Vec<String> = all
                .iter()
                .map(|v| {
                    v.iter()
                        .map(|x| cell(metric, Some(*x)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .collect();
            let _ = writeln!(
                passes,
                "| {} | {what} | {} |",
                disk.describe(),
                lists.join(" | ")
            );
        }
    }
    let _ = write!(
        out,
        "\nEvery pass, in the order run:\n\n| Disk | Measure | {} |\n|---|---|{}\n{passes}",
        names.join(" | "),
        "---|".repeat(VMMS.len())
    );
    if !figures.failed.is_empty() {
        let _ = write!(
            out,
            "\nSessions that failed (left out above): {}.\n",
            figures.failed.join("; ")
        );
    }
}

/// Every pass of metric `m` by `vmm` on `disk`, over all its sessions.
fn passes_of(figures: &Figures, disk: Disk, vmm: Vmm, m: usize) -> Vec<f64> {
    plan()
        .iter()
        .zip(&figures.runs)
        .filter(|(step, _)| **step == (disk, vmm))
        .flat_map(|(_, run)| run.get(m).cloned().unwrap_or_default())
        .collect()
}

/// What the figures meant when they were taken (static text, from the
/// investigation behind this bench).
const FINDINGS: &str =
    "Findings (2026-12-04, the run above, on an Intel Xeon machine with 2 CPUs). Each VM \
session has a test host booted for it alone (two runs on 2026-12-03 with all sessions in one \
test host lost most of them, to a test host that hung and to the test host's kernel \
panicking in QEMU's TCG thread); in this run one test host hung in a QEMU `pcie=on` session \
and was run again (docs/guests.md), and every session finished. Pointsman is at or above \
QEMU on every row, on both transports: 106% to 214% on virtio-mmio and 103% to 187% on \
virtio-pci, furthest ahead on random reads. The run of 2026-12-03 (AMD) had Pointsman `--pci` \
below QEMU `pcie=on` on the O_DIRECT rows (79% to 98%), and a follow-up run of only those two \
set-ups put it above on all five (101% to 167%): one pass can be several times another of \
the same set-up on a busy machine (203 to 1078 IOPS that day), so read each median with its \
passes. This machine was quieter (passes within about 20% of each other) and faster. \
Between the two runs Pointsman's default guest RAM became 2 MiB aligned: before, Linux 6.1 in \
the test host left the mapping unaligned and KVM mapped it with 4 KiB nested pages only, \
while QEMU aligns its RAM; now both VMMs' guests run on 2 MiB nested pages (the test host's \
THP policy is `always`). Completion interrupt moderation holds Pointsman's guest interrupts \
per request with 8 in flight to 0.39 on virtio-mmio (QEMU's thread pool: 0.40-0.54) and \
0.29-0.33 on virtio-pci (QEMU: 0.94-0.96); with 1 in flight nothing is held (a hold that \
catches nothing turns holding off for the next 8 to 256 interrupts). virtio-pci is the \
transport for I/O-heavy guests: with `--pci` Pointsman's random reads with 1 in flight are \
31% to 38% above its virtio-mmio figure, since on virtio-mmio every interrupt costs the guest \
an exit to the VMM (the InterruptStatus read, which KVM cannot answer alone) and an MSI-X \
interrupt none.";

fn section(result: &Result<Figures, String>) -> String {
    let mut out = String::from("## virtio-blk\n\n");
    let _ = writeln!(
        out,
        "Generated by `cargo bench -p pointsman --bench block` on {} ({}; load average after: {}).\n",
        common::today(),
        common::cpu_model(),
        common::load_average(),
    );
    match result {
        Ok(figures) => table(&mut out, figures),
        Err(e) => {
            let _ = writeln!(
                out,
                "The measurement failed: {}",
                e.lines().next().unwrap_or("")
            );
        }
    }
    let _ = writeln!(
        out,
        "\nHow: Debian's cloud kernel (1 vCPU, {MEMORY_MIB} MiB, `virtio_blk`) under Pointsman \
         and under QEMU microvm, each with virtio-mmio and with virtio-pci (Pointsman `--pci`; \
         QEMU `-M microvm,pcie=on` with `virtio-blk-pci`), in turn, each VM session in a test host booted for it alone (QEMU TCG with nested SVM: every guest \
         exit and interrupt goes through emulated hardware, so absolute figures are far below \
         bare metal; compare columns, not machines). Each VM gets a fresh sparse {IMAGE_MIB} MiB \
         raw image. Sequential: busybox `dd` of {IMAGE_MIB} MiB with 1 MiB blocks and O_DIRECT \
         in the guest: `/dev/zero` to `/dev/vda` once on the fresh image (the test host allocates \
         it as the writes come), then in each pass again (an overwrite) and back to `/dev/null`. Random: a small \
         static C program reading 4 KiB at random aligned offsets with O_DIRECT for \
         {RANDOM_SECONDS} s, one process per request in flight. {SESSIONS} VM sessions per VMM \
         and disk, run in the order of the columns, then the reverse, and so on in turn, \
         with {ROUNDS} passes of each measurement in each (one of the write to the fresh image); \
         each figure is the median of all of a VMM's passes. Host caching is the same for both: without `direct=on` Pointsman \
         does buffered I/O through the host page cache, as QEMU's default `cache=writeback` \
         does; `direct=on` opens the image with O_DIRECT and passes flushes on, as QEMU's \
         `cache=none` does. The O_DIRECT \
         image sits on ext4 on a RAM block device (`brd`) in the test host, since tmpfs has no \
         O_DIRECT. QEMU runs its default `aio=threads` and no iothread, and \
         virtio 1.0 on both transports like Pointsman (QEMU's default on virtio-mmio is the \
         legacy interface). Both VMMs use their default guest RAM, on 2 MiB boundaries and \
         transparent huge pages (QEMU asks for them, and the test host's policy, `always`, \
         gives them to Pointsman's too).\n\n\
         Command lines inside the test host (`run_vm` runs `pointsman run`, `run_qemu` \
         `qemu-system-x86_64`), each VM session at most {VM_LIMIT_SECONDS} s:\n\n```"
    );
    for disk in Disk::ALL {
        for vmm in VMMS {
            let _ = writeln!(out, "{}", vmm.command(disk, disk.image()));
        }
    }
    let _ = write!(out, "```\n\n{FINDINGS}\n");
    out
}

fn main() {
    if !common::bench_requested() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("block-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let result = measure(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = &result {
        eprintln!("block bench: {e}");
    }
    common::publish("block", MARKERS, &section(&result));
}
