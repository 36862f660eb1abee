//! virtio-net throughput and latency: TCP between a Linux guest and its
//! host over a TAP, inside the test host (QEMU TCG with nested SVM; see
//! the testhost crate), with busybox `nc`. The same transfer over the
//! test host's loopback and over the guest's own loopback are the
//! ceilings the emulated machine allows, with no NIC in the way.
//!
//! Writes the section between `<!-- net:begin -->` and `<!-- net:end -->`
//! in `docs/benchmarks.md`. Run with `cargo bench -p pointsman --bench net`.

#[path = "../tests/net_shell/mod.rs"]
mod net_shell;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use net_shell::{COMMON_HELPERS, GUEST_HELPERS, HOST_HELPERS};
use testhost::{linux_guest_initramfs, TestHost};

/// MiB per transfer, and transfers per path.
const MIB: u32 = 32;
const RUNS: usize = 3;
const PINGS: u32 = 20;
const MAC: &str = "52:54:00:12:34:56";
const CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 quiet";
/// What the figures meant when they were first taken (static text).
const FINDINGS: &str = "On 2026-11-25, over six runs of this benchmark, the virtio-net \
medians were 57% to 107% of the same run's guest-loopback median, most runs above 80%: \
the guest's TCP stack (emulated, like everything in the test host) set the pace more than \
the device. The worker thread's own code (its user time: one copy of each frame between \
the guest's buffers and the device's, and the queue bookkeeping) cost 2-4 ms per MiB, a \
fifth or less of its CPU; the rest was the kernel: TAP reads and writes and, for guest → \
host, the host's TCP receive path. Reading and writing the TAP straight from guest memory \
(readv/writev) would save at most that user time, so the device keeps its single copy, \
which also lets it check a whole transmit header before the TAP sees it. Runs vary by up \
to a half because the measuring machine's two cores are shared.";
const BEGIN: &str = "<!-- net:begin -->";
const END: &str = "<!-- net:end -->";

fn guest_script() -> String {
    format!(
        r#"
nic {MAC} 10.200.0.2/24
reach 10.200.0.1
dd if=/dev/urandom of=/tmp/data bs=1M count={MIB} 2>/dev/null
for i in $(seq {RUNS}); do
    receive 6000 /dev/null
    t0=$(cut -d' ' -f1 /proc/uptime)
    nc 127.0.0.1 6000 < /tmp/data || kill $NC
    wait $NC
    echo "@@guest-lo {MIB} $t0 $(cut -d' ' -f1 /proc/uptime)"
done
echo "@@ping $(ping -c {PINGS} -i 0.2 10.200.0.1 | tail -n 1)"
for i in $(seq {RUNS}); do
    receive 5002 /dev/null
    echo "@@ready-$i"
    wait $NC
done
for i in $(seq {RUNS}); do
    read go
    t0=$(cut -d' ' -f1 /proc/uptime)
    nc 10.200.0.1 5001 < /tmp/data || break
    echo "@@g2h {MIB} $t0 $(cut -d' ' -f1 /proc/uptime)"
done
read done
poweroff -f
"#
    )
}

fn host_script() -> String {
    format!(
        r#"{COMMON_HELPERS}{HOST_HELPERS}
ip link set lo up
tunctl -t tap0 >/dev/null
ip addr add 10.200.0.1/24 dev tap0 && ip link set tap0 up
dd if=/dev/urandom of=/tmp/data bs=1M count={MIB} 2>/dev/null
for i in $(seq {RUNS}); do
    receive 6000 /dev/null
    t0=$(uptime_s)
    nc 127.0.0.1 6000 < /tmp/data || kill $NC
    wait $NC
    echo "@@host-lo {MIB} $t0 $(uptime_s)"
done
# user and system ticks (1/100 s) the NIC's worker thread has used
worker_ticks() {{
    for t in /proc/$VM_PID/task/*; do
        [ "$(cat $t/comm)" = net-tap0 ] && awk '{{print $14, $15}}' $t/stat
    done
}}
start_vm --kernel /guest/vmlinuz --initrd /guest/initrd.cpio --cmdline '{CMDLINE}' \
    --memory 512M --net tap=tap0,mac={MAC}
wait_for @@ready-1 1 300
echo "@@ticks-start $(worker_ticks)"
for i in $(seq {RUNS}); do
    wait_for @@ready-$i 1 300 || {{ fail ready; break; }}
    t0=$(uptime_s)
    nc 10.200.0.2 5002 < /tmp/data
    echo "@@h2g {MIB} $t0 $(uptime_s)"
done
echo "@@ticks-h2g $(worker_ticks)"
for i in $(seq {RUNS}); do
    receive 5001 /dev/null
    send go
    wait_for @@g2h $i 300 || {{ kill $NC; fail g2h; break; }}
    wait $NC
done
echo "@@ticks-g2h $(worker_ticks)"
send done
finish_vm
"#
    )
}

/// Every `@@key` line's value, in order.
fn values<'a>(console: &'a str, key: &str) -> Vec<&'a str> {
    let tag = format!("@@{key} ");
    console
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix(tag.as_str()))
        .map(str::trim)
        .collect()
}

/// MiB/s of each `@@key MiB start end` line.
fn rates(console: &str, key: &str) -> Vec<f64> {
    values(console, key)
        .iter()
        .filter_map(|v| {
            let n: Vec<f64> = v
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (n.len() == 3).then(|| n[0] / (n[2] - n[1]).max(0.01))
        })
        .collect()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn row(what: &str, rates: &[f64]) -> String {
    let all: Vec<String> = rates.iter().map(|r| format!("{r:.1}")).collect();
    format!("| {what} | {:.1} | {} |\n", median(rates), all.join(", "))
}

fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn section(console: &str) -> String {
    let (h2g, g2h) = (rates(console, "h2g"), rates(console, "g2h"));
    let (host_lo, guest_lo) = (rates(console, "host-lo"), rates(console, "guest-lo"));
    let ping = values(console, "ping").first().copied().unwrap_or("none");
    assert!(
        h2g.len() == RUNS && g2h.len() == RUNS,
        "missing transfers:\n{console}"
    );
    let mut s = String::new();
    s.push_str(&format!(
        "## virtio-net\n\n\
         TCP throughput of busybox `nc` moving {MIB} MiB of random data, {RUNS} times \
         per path, between a Linux guest (Debian cloud kernel, 1 vCPU, 512 MiB, \
         `virtio_net` with checksum and TSO offloads and mergeable receive buffers) \
         and its host over a TAP. Both ends run inside the test host, QEMU TCG with \
         nested SVM: the host side is emulated, so these figures compare paths on \
         this set-up, not with bare metal. The loopback rows are the same transfer \
         with no NIC in the way: the test host's own TCP stack, and the guest's.\n\n\
         Measured on {} by `cargo bench -p pointsman --bench net` (release build).\n\n\
         | Path | Median MiB/s | Runs (MiB/s) |\n|---|---|---|\n",
        today()
    ));
    s.push_str(&row("host → guest, virtio-net", &h2g));
    s.push_str(&row("guest → host, virtio-net", &g2h));
    s.push_str(&row("test host loopback", &host_lo));
    s.push_str(&row("guest loopback", &guest_lo));
    s.push_str(&worker_cpu(console));
    s.push_str(&format!("\nPing, guest → host ({PINGS} pings): {ping}.\n"));
    s.push_str(&format!("\n{FINDINGS}\n"));
    s
}

/// The worker thread's user and system CPU per MiB moved, each way.
fn worker_cpu(console: &str) -> String {
    let ticks = |key| -> Option<(f64, f64)> {
        let v: Vec<f64> = values(console, key)
            .first()?
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (v.len() == 2).then(|| (v[0], v[1]))
    };
    let (Some(t0), Some(t1), Some(t2)) =
        (ticks("ticks-start"), ticks("ticks-h2g"), ticks("ticks-g2h"))
    else {
        return String::new();
    };
    // Ticks are 10 ms.
    let per_mib = |a: f64, b: f64| (b - a) * 10.0 / (f64::from(MIB) * RUNS as f64);
    format!(
        "\nCPU time of the device's worker thread per MiB moved (in the test host, \
         `/proc/PID/task/TID/stat`): host → guest {:.1} ms user + {:.1} ms system, \
         guest → host {:.1} ms user + {:.1} ms system. System time includes the host \
         kernel's network stack, which processes each frame written to the TAP in the \
         writer's context.\n",
        per_mib(t0.0, t1.0),
        per_mib(t0.1, t1.1),
        per_mib(t1.0, t2.0),
        per_mib(t1.1, t2.1),
    )
}

fn write_section(body: &str) {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/benchmarks.md")
        .components()
        .collect();
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".to_owned());
    let block = format!("{BEGIN}\n{body}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &old[..b], &old[e + END.len()..]),
        _ => format!("{}\n\n{block}\n", old.trim_end()),
    };
    std::fs::write(&path, new).expect("write docs/benchmarks.md");
    println!("wrote the virtio-net section of {}", path.display());
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test --benches` run
    // passes nothing and must stay quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let host = TestHost::new(Path::new(env!("CARGO_BIN_EXE_pointsman")))
        .expect("set up the test host")
        .with_host_modules(&["tun"])
        .timeout(Duration::from_secs(600));
    let assets = host.assets();
    let dir = std::env::temp_dir().join(format!("pointsman-net-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let initrd = dir.join("guest.cpio");
    linux_guest_initramfs(
        &assets.busybox,
        &assets.cloud,
        &["virtio_mmio", "virtio_net"],
        &format!("{COMMON_HELPERS}{GUEST_HELPERS}{}", guest_script()),
    )
    .and_then(|i| i.write(&initrd))
    .expect("build the guest initramfs");
    let kernel = assets.cloud.vmlinuz.clone();
    let run = host
        .run(
            &[("guest/vmlinuz", &kernel), ("guest/initrd.cpio", &initrd)],
            &host_script(),
        )
        .expect("run the test host");
    let _ = std::fs::remove_dir_all(&dir);
    let body = section(&run.console);
    print!("{body}");
    write_section(&body);
}
