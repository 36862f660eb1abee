//! virtio-blk throughput: sequential reads and writes and 4 KiB random
//! reads by Debian's cloud kernel on a Pointsman disk, in the test host
//! (see the testhost crate). Writes the figures to the section between
//! `<!-- block:begin -->` and `<!-- block:end -->` of `docs/benchmarks.md`.
//!
//! Run with `cargo bench -p pointsman --bench block`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use testhost::{linux_guest_initramfs, TestHost};

const SECTION_BEGIN: &str = "<!-- block:begin -->";
const SECTION_END: &str = "<!-- block:end -->";
const CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 quiet";
/// Image size and bytes moved per sequential pass, in MiB.
const IMAGE_MIB: u32 = 512;
/// Passes of each measurement; the median is reported.
const ROUNDS: u32 = 3;
/// Seconds of each random-read run.
const RANDOM_SECONDS: u32 = 5;
const GUEST_MEMORY: &str = "512M";

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
for round in $(seq 1 {ROUNDS}); do
    echo "@@seq-write $(mibs $(took dd if=/dev/zero of=/dev/vda bs=1M count={IMAGE_MIB} oflag=direct))"
    echo "@@seq-read $(mibs $(took dd if=/dev/vda of=/dev/null bs=1M count={IMAGE_MIB} iflag=direct))"
    echo "@@rand-read-qd1 $(randread /dev/vda 1 {RANDOM_SECONDS})"
    echo "@@rand-read-qd8 $(randread /dev/vda 8 {RANDOM_SECONDS})"
done
poweroff -f
"#
    )
}

/// Two runs: the image on tmpfs through the host page cache (the
/// default), then on ext4 (on a RAM block device) with `direct=on`.
fn host_script() -> String {
    let vm = |disk: &str| {
        format!(
            "run_vm --kernel /guest/vmlinuz --initrd /guest/initrd.cpio --cmdline '{CMDLINE}' \
             --memory {GUEST_MEMORY} --disk {disk}\n"
        )
    };
    format!(
        "mkdir -p /disks && mount -t tmpfs -o size=1G tmpfs /disks\n\
         truncate -s {IMAGE_MIB}M /disks/disk.img\n\
         {}\
         rm /disks/disk.img\n\
         insmod /extra/brd.ko rd_nr=1 rd_size={} || echo '@@insmod-failed'\n\
         mke2fs -F /dev/ram0 >/dev/null 2>&1; mkdir -p /direct\n\
         mount -t ext4 /dev/ram0 /direct || echo '@@mount-failed'\n\
         truncate -s {IMAGE_MIB}M /direct/disk.img\n\
         {}",
        vm("path=/disks/disk.img"),
        (IMAGE_MIB + 128) * 1024,
        vm("path=/direct/disk.img,direct=on"),
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

/// The median of each `@@NAME VALUE` in one VM's console.
fn medians(console: &str, names: &[&str]) -> Result<Vec<f64>, String> {
    names
        .iter()
        .map(|name| {
            let tag = format!("@@{name} ");
            let mut values: Vec<f64> = console
                .lines()
                .filter_map(|l| l.trim_end_matches('\r').strip_prefix(tag.as_str()))
                .filter_map(|v| v.trim().parse().ok())
                .collect();
            if values.is_empty() {
                return Err(format!("no {name} figure in the guest's output"));
            }
            values.sort_by(f64::total_cmp);
            Ok(values[values.len() / 2])
        })
        .collect()
}

const METRICS: &[&str] = &["seq-write", "seq-read", "rand-read-qd1", "rand-read-qd8"];

fn measure(dir: &Path) -> Result<(Vec<f64>, Vec<f64>), String> {
    let host = TestHost::new(Path::new(env!("CARGO_BIN_EXE_pointsman")))
        .map_err(|e| e.to_string())?
        .timeout(std::time::Duration::from_secs(1800));
    let assets = host.assets();
    let randread = build_randread(dir)?;
    let initrd = dir.join("guest.cpio");
    let mut image = linux_guest_initramfs(
        &assets.busybox,
        &assets.cloud,
        &["virtio_mmio", "virtio_blk"],
        &guest_script(),
    )
    .map_err(|e| e.to_string())?;
    image.file("bin/randread", &randread, 0o755);
    image.write(&initrd).map_err(|e| e.to_string())?;
    let kernel = assets.cloud.vmlinuz.clone();
    let brd = assets.cloud.modules.join("drivers/block/brd.ko");
    let run = host
        .run(
            &[
                ("guest/vmlinuz", &kernel),
                ("guest/initrd.cpio", &initrd),
                ("extra/brd.ko", &brd),
            ],
            &host_script(),
        )
        .map_err(|e| e.to_string())?;
    let vms = run.vm_runs();
    if vms.len() != 2 || vms.iter().any(|(_, s)| *s != 0) || run.console.contains("@@failed") {
        return Err(format!("the guest runs failed:\n{}", run.console));
    }
    Ok((medians(&vms[0].0, METRICS)?, medians(&vms[1].0, METRICS)?))
}

fn host_cpu() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(
            || "unknown CPU".to_owned(),
            |(_, v)| format!("{} ({cpus} CPUs)", v.trim()),
        )
}

fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map_or("unknown".into(), |o| {
            String::from_utf8_lossy(&o.stdout).trim().to_owned()
        })
}

fn section(result: &Result<(Vec<f64>, Vec<f64>), String>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{SECTION_BEGIN}");
    let _ = writeln!(out, "## virtio-blk\n");
    let _ = writeln!(
        out,
        "Generated by `cargo bench -p pointsman --bench block` on {} ({}).\n",
        today(),
        host_cpu()
    );
    match result {
        Ok((cached, direct)) => {
            let _ = writeln!(
                out,
                "| Disk | Sequential write | Sequential read | 4 KiB random read, 1 in flight | 4 KiB random read, 8 in flight |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|");
            for (name, v) in [
                ("image on tmpfs (host page cache)", cached),
                ("image on ext4, `direct=on`", direct),
            ] {
                let _ = writeln!(
                    out,
                    "| {name} | {:.0} MiB/s | {:.0} MiB/s | {:.0} IOPS | {:.0} IOPS |",
                    v[0], v[1], v[2], v[3]
                );
            }
        }
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
        "\nHow: Debian's cloud kernel (1 vCPU, {GUEST_MEMORY}) in Pointsman in the test host \
         (QEMU TCG with nested SVM: every guest exit and interrupt goes through emulated \
         hardware, so absolute figures are far below bare metal; compare runs, not machines). \
         Sequential: busybox `dd` of {IMAGE_MIB} MiB with 1 MiB blocks and O_DIRECT in the guest \
         (`/dev/zero` to `/dev/vda`, then back to `/dev/null`). Random: a small static C \
         program reading 4 KiB at random aligned offsets with O_DIRECT for {RANDOM_SECONDS} s, \
         one process per request in flight. Each figure is the median of {ROUNDS} passes. The \
         `direct=on` image sits on ext4 on a RAM block device (`brd`) in the test host, since \
         tmpfs has no O_DIRECT."
    );
    let _ = writeln!(out, "{SECTION_END}");
    out
}

/// Puts `section` between the markers of `text`, or appends it.
fn splice(text: &str, section: &str) -> String {
    let span = text.find(SECTION_BEGIN).and_then(|start| {
        let end = text[start..].find(SECTION_END)? + start + SECTION_END.len();
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

fn main() {
    let dir = std::env::temp_dir().join(format!("block-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let result = measure(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = &result {
        eprintln!("block bench: {e}");
    }
    let text = section(&result);
    print!("{text}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    match std::fs::write(&path, splice(&old, &text)) {
        Ok(()) => eprintln!("block bench: wrote {}", path.display()),
        Err(e) => eprintln!("block bench: cannot write {}: {e}", path.display()),
    }
}
