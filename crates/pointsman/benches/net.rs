//! virtio-net throughput and latency, Pointsman against QEMU microvm:
//! TCP between a Linux guest and its host over a TAP, inside the test host
//! (QEMU TCG with nested SVM; see the testhost crate), with busybox `nc`.
//! Both VMMs boot the same guest in the same test host run, one after the
//! other, on the same TAP. The same transfer over the test host's loopback
//! and over the guest's own loopback are the ceilings the emulated machine
//! allows, with no NIC in the way.
//!
//! Writes the section between `<!-- net:begin -->` and `<!-- net:end -->`
//! in `docs/benchmarks.md`. Run with `cargo bench -p pointsman --bench net`.

mod common;
#[path = "../tests/net_shell/mod.rs"]
mod net_shell;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use common::{median, verdicts, Markers, Vmm};
use net_shell::{COMMON_HELPERS, GUEST_HELPERS, HOST_HELPERS};
use testhost::{linux_guest_initramfs, TestHost, QEMU_BINARY};

/// MiB per transfer, and transfers per path in each VM session.
const MIB: u32 = 32;
const RUNS: usize = 3;
/// Transfers over the guest's own loopback in each VM session: more than
/// over the NIC, since one of them varies by a third between transfers of
/// the same set-up and takes only about 2 s.
const LOOPBACK_RUNS: usize = 6;
/// VM sessions per VMM, alternating (Pointsman, QEMU, Pointsman, ...) so
/// drift in the shared machine's load hits both alike.
const SESSIONS: usize = 3;
/// Rounds of the paired loopback run: one test host in which each VMM in
/// turn boots a guest with no NIC for its loopback transfers alone, so
/// that every VMM meets the same state of the shared machine.
const PAIRED_ROUNDS: usize = 3;
/// The guest command-line word that makes the guest run only its
/// loopback transfers and power off.
const LOOPBACK_ONLY: &str = "loopback_only";
/// Longest one test host boot, with its one VM session, may take
/// (seconds; one takes about two minutes).
const SESSION_LIMIT_SECONDS: u64 = 600;
const PINGS: u32 = 20;
const MEMORY_MIB: u32 = 512;
const MAC: &str = "52:54:00:12:34:56";
const CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 quiet";
const KERNEL: &str = "/guest/vmlinuz";
const INITRD: &str = "/guest/initrd.cpio";
/// The set-ups compared, in the order each round runs them. Not QEMU
/// microvm `pcie=on`: with `virtio-net-pci` it overflowed a kernel stack
/// of the test host (a guard-page panic in its thread) in every session
/// tried, which ends the whole test host run. Not Pointsman `thp=on`:
/// the test host's THP policy is `always`, so Pointsman's 2 MiB-aligned
/// RAM gets the same huge pages without it.
const VMMS: [Vmm; 3] = [Vmm::Pointsman, Vmm::PointsmanPci, Vmm::Qemu];
const MARKERS: Markers = Markers {
    begin: "<!-- net:begin -->",
    end: "<!-- net:end -->",
};

impl Vmm {
    /// The session's tag in the test host's console.
    fn tag(self) -> &'static str {
        match self {
            Vmm::Pointsman => "pointsman",
            Vmm::PointsmanPci => "pointsman-pci",
            Vmm::PointsmanThp => "pointsman-thp",
            Vmm::Qemu => "qemu",
            Vmm::QemuPci => "qemu-pci",
        }
    }

    /// The thread that moves the frames: Pointsman's worker, QEMU's main
    /// loop (virtio-net without vhost runs there, woken by ioeventfd).
    fn io_thread(self) -> &'static str {
        if self.is_qemu() {
            "qemu-system-x86"
        } else {
            "net-tap0"
        }
    }

    /// The test host helper call that starts the guest on `tap0`.
    fn start(self) -> String {
        let nic = if self.is_qemu() {
            format!(
                " -netdev tap,id=net0,ifname=tap0,script=no,downscript=no \
                 -device {},netdev=net0,mac={MAC}",
                self.qemu_device("net")
            )
        } else {
            format!(" --net tap=tap0,mac={MAC}")
        };
        self.launch(CMDLINE, &nic)
    }

    /// The test host helper call that starts a guest with no NIC, which
    /// only runs its loopback transfers.
    fn start_plain(self) -> String {
        self.launch(&format!("{CMDLINE} {LOOPBACK_ONLY}"), "")
    }

    /// The test host helper call that starts the guest with `cmdline`,
    /// the VMM's arguments followed by `devices`.
    fn launch(self, cmdline: &str, devices: &str) -> String {
        if self.is_qemu() {
            format!(
                "start_qemu {}{devices}",
                self.qemu_args(KERNEL, INITRD, cmdline, MEMORY_MIB)
            )
        } else {
            format!(
                "start_vm --kernel {KERNEL} --initrd {INITRD} --cmdline '{cmdline}' \
                 --memory {MEMORY_MIB}M{} --cpus 1{}{devices}",
                self.memory_options(),
                self.pointsman_flags()
            )
        }
    }
}

/// The test host's script for the paired loopback run.
fn paired_script() -> String {
    let mut script = format!("{COMMON_HELPERS}{HOST_HELPERS}\n");
    for round in 0..PAIRED_ROUNDS {
        for vmm in common::round_order(VMMS, round) {
            let _ = writeln!(
                script,
                "echo '@@paired-session {}'\n{}\n\
                 wait_for @@paired-done 1 300 || kill $VM_PID\nfinish_vm",
                vmm.tag(),
                vmm.start_plain()
            );
        }
    }
    script
}

/// Shell for both the guest and the test host: the data to send, and
/// `loopback KEY`, the transfers over 127.0.0.1, one "@@KEY MiB start end"
/// line (uptime seconds) each.
fn loopback_helper() -> String {
    format!(
        r#"
dd if=/dev/urandom of=/tmp/data bs=1M count={MIB} 2>/dev/null
loopback() {{
    for i in $(seq {LOOPBACK_RUNS}); do
        receive 6000 /dev/null
        t0=$(cut -d' ' -f1 /proc/uptime)
        nc 127.0.0.1 6000 < /tmp/data || kill $NC
        wait $NC
        echo "@@$1 {MIB} $t0 $(cut -d' ' -f1 /proc/uptime)"
    done
}}
"#
    )
}

fn guest_script() -> String {
    format!(
        r#"{}
if grep -q {LOOPBACK_ONLY} /proc/cmdline; then
    loopback paired-lo
    echo "@@paired-done"
    poweroff -f
fi
nic {MAC} 10.200.0.2/24
reach 10.200.0.1
loopback guest-lo
echo "@@ping $(ping -c {PINGS} -i 0.2 10.200.0.1 | tail -n 1)"
# The NIC's interrupts so far (every queue's, on either transport).
irqs() {{ awk '/virtio/ {{ for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i }} END {{ print s + 0 }}' /proc/interrupts; }}
i0=$(irqs)
for i in $(seq {RUNS}); do
    receive 5002 /dev/null
    echo "@@ready-$i"
    wait $NC
done
echo "@@irqs-h2g $(( $(irqs) - i0 ))"
i0=$(irqs)
for i in $(seq {RUNS}); do
    read go
    t0=$(cut -d' ' -f1 /proc/uptime)
    nc 10.200.0.1 5001 < /tmp/data || break
    echo "@@g2h {MIB} $t0 $(cut -d' ' -f1 /proc/uptime)"
done
echo "@@irqs-g2h $(( $(irqs) - i0 ))"
read done
poweroff -f
"#,
        loopback_helper()
    )
}

/// The test host's script for one VM session of `vmm`: the TAP, the
/// test host's own loopback transfers, and the session.
fn host_script(vmm: Vmm) -> String {
    let mut script = format!(
        r#"{COMMON_HELPERS}{HOST_HELPERS}
# A VM that dies leaves `send` writing to a FIFO with no reader: fail
# with EPIPE and carry on to finish_vm, which shows why it died.
trap '' PIPE
ip link set lo up
tunctl -t tap0 >/dev/null
ip addr add 10.200.0.1/24 dev tap0 && ip link set tap0 up
{}
loopback host-lo
# user and system ticks (1/100 s) the VMM's thread named $1 has used
thread_ticks() {{
    for t in /proc/$VM_PID/task/*; do
        [ "$(cat $t/comm)" = "$1" ] && awk '{{print $14, $15}}' $t/stat
    done
}}
# session TAG THREAD START...: one VMM's transfers; START starts the guest.
session() {{
    tag=$1; thread=$2; shift 2
    echo "@@session $tag $thread"
    "$@"
    wait_for @@ready-1 1 300
    echo "@@ticks-start $(thread_ticks $thread)"
    for i in $(seq {RUNS}); do
        wait_for @@ready-$i 1 300 || {{ fail ready; break; }}
        t0=$(uptime_s)
        nc 10.200.0.2 5002 < /tmp/data
        echo "@@h2g {MIB} $t0 $(uptime_s)"
    done
    echo "@@ticks-h2g $(thread_ticks $thread)"
    for i in $(seq {RUNS}); do
        receive 5001 /dev/null
        send go
        wait_for @@g2h $i 300 || {{ kill $NC; fail g2h; break; }}
        wait $NC
    done
    echo "@@ticks-g2h $(thread_ticks $thread)"
    send done
    finish_vm
}}
"#,
        loopback_helper()
    );
    let _ = writeln!(
        script,
        "session {} {} {}",
        vmm.tag(),
        vmm.io_thread(),
        vmm.start()
    );
    script
}

/// Every VM session in turn, each in a test host booted for it alone (one
/// that hangs costs one session, not the run): the consoles one after
/// another, and a line for each session that failed.
fn measure(host: &TestHost, files: &[(&str, &Path)]) -> (String, Vec<String>) {
    let mut console = String::new();
    let mut failed = Vec::new();
    for session in 0..SESSIONS {
        for vmm in common::round_order(VMMS, session) {
            match host.run(files, &host_script(vmm)) {
                Ok(run) => {
                    let figures = Figures::of(&run.console, vmm);
                    if figures.h2g.len() != RUNS || figures.g2h.len() != RUNS {
                        eprintln!(
                            "net bench: {} transfers missing:\n{}",
                            vmm.name(),
                            run.console_tail(60)
                        );
                        failed.push(format!("{}: transfers missing", vmm.name()));
                    }
                    console.push_str(&run.console);
                }
                Err(e) => {
                    let why = common::headline(&e);
                    eprintln!("net bench: {}: {why}", vmm.name());
                    failed.push(format!("{}: {why}", vmm.name()));
                }
            }
        }
    }
    (console, failed)
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

/// The parts of the test host's console from each `@@session TAG` to the
/// next session (the VM's own console is in it: `finish_vm` prints it).
fn sessions(console: &str, vmm: Vmm) -> Vec<&str> {
    parts(console, "@@session ", vmm)
}

/// The parts of `console` from each `MARKER TAG` of `vmm` to the next
/// marker.
fn parts<'a>(console: &'a str, marker: &str, vmm: Vmm) -> Vec<&'a str> {
    console
        .split(marker)
        .skip(1)
        .filter(|part| part.split_whitespace().next() == Some(vmm.tag()))
        .collect()
}

/// One VMM's figures, over its sessions.
struct Figures {
    h2g: Vec<f64>,
    g2h: Vec<f64>,
    guest_lo: Vec<f64>,
    /// `round-trip min/avg/max = ...` lines, as busybox `ping` prints them.
    pings: Vec<String>,
    /// The guest driver's feature bits, as `/sys` shows them.
    features: String,
    /// Guest interrupts per MiB moved, host → guest and guest → host.
    irqs_per_mib: [Vec<f64>; 2],
    /// The I/O thread's CPU ticks (user, system) host → guest and guest →
    /// host, summed over the sessions; `None` if one went unmeasured.
    ticks: Option<[(f64, f64); 2]>,
}

impl Figures {
    fn of(console: &str, vmm: Vmm) -> Figures {
        let parts = sessions(console, vmm);
        let all = |key| parts.iter().flat_map(|p| rates(p, key)).collect();
        let mut ticks = Some([(0.0, 0.0); 2]);
        for part in &parts {
            ticks = ticks.zip(session_ticks(part)).map(|(sum, more)| {
                [
                    (sum[0].0 + more[0].0, sum[0].1 + more[0].1),
                    (sum[1].0 + more[1].0, sum[1].1 + more[1].1),
                ]
            });
        }
        Figures {
            h2g: all("h2g"),
            g2h: all("g2h"),
            guest_lo: all("guest-lo"),
            pings: parts
                .iter()
                .flat_map(|p| values(p, "ping"))
                .map(str::to_owned)
                .collect(),
            features: parts
                .iter()
                .find_map(|p| values(p, "nic").first()?.split_whitespace().nth(2))
                .map_or("unknown".into(), feature_bits),
            ticks: ticks.filter(|_| !parts.is_empty()),
            irqs_per_mib: ["irqs-h2g", "irqs-g2h"].map(|key| {
                parts
                    .iter()
                    .flat_map(|p| values(p, key))
                    .filter_map(|v| v.parse::<f64>().ok())
                    .map(|n| n / (f64::from(MIB) * RUNS as f64))
                    .collect()
            }),
        }
    }

    /// The median of the sessions' average round trips, in ms.
    fn ping_avg(&self) -> Option<f64> {
        let averages: Vec<f64> = self
            .pings
            .iter()
            .filter_map(|p| p.split_once('=')?.1.trim().split('/').nth(1)?.parse().ok())
            .collect();
        median(&averages)
    }
}

/// The numbers of the bits set in `/sys`'s string of 0s and 1s.
fn feature_bits(bits: &str) -> String {
    let set: Vec<String> = bits
        .chars()
        .enumerate()
        .filter(|(_, c)| *c == '1')
        .map(|(i, _)| i.to_string())
        .collect();
    set.join(" ")
}

/// A session's I/O thread ticks (user, system), host → guest then guest
/// → host, from its `@@ticks-*` lines.
fn session_ticks(part: &str) -> Option<[(f64, f64); 2]> {
    let ticks = |key| -> Option<(f64, f64)> {
        let v: Vec<f64> = values(part, key)
            .first()?
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (v.len() == 2).then(|| (v[0], v[1]))
    };
    let (t0, t1, t2) = (
        ticks("ticks-start")?,
        ticks("ticks-h2g")?,
        ticks("ticks-g2h")?,
    );
    Some([(t1.0 - t0.0, t1.1 - t0.1), (t2.0 - t1.0, t2.1 - t1.1)])
}

/// The I/O thread's user and system CPU per MiB moved, each way.
fn thread_cpu(figures: &Figures, vmm: Vmm) -> String {
    let Some([h2g, g2h]) = figures.ticks else {
        return format!("not measured (no {} thread)", vmm.io_thread());
    };
    // Ticks are 10 ms.
    let runs = |rates: &[f64]| f64::from(u32::try_from(rates.len()).unwrap_or(u32::MAX));
    let per_mib = |ticks: f64, rates: &[f64]| ticks * 10.0 / (f64::from(MIB) * runs(rates));
    format!(
        "host → guest {:.1} ms user + {:.1} ms system, guest → host {:.1} ms user + {:.1} ms \
         system",
        per_mib(h2g.0, &figures.h2g),
        per_mib(h2g.1, &figures.h2g),
        per_mib(g2h.0, &figures.g2h),
        per_mib(g2h.1, &figures.g2h),
    )
}

fn mibs(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.1}"))
}

fn runs(values: &[f64]) -> String {
    let all: Vec<String> = values.iter().map(|r| format!("{r:.1}")).collect();
    all.join(", ")
}

fn row(out: &mut String, what: &str, runs_of: &[&[f64]]) {
    row_with(out, what, runs_of, true);
}

/// A row of MiB/s, with verdicts against QEMU if `judged`.
fn row_with(out: &mut String, what: &str, runs_of: &[&[f64]], judged: bool) {
    let medians: Vec<Option<f64>> = runs_of.iter().map(|r| median(r)).collect();
    let cells: Vec<String> = medians
        .iter()
        .map(|m| format!("**{}**", mibs(*m)))
        .collect();
    let lists: Vec<String> = runs_of.iter().map(|r| runs(r)).collect();
    let _ = writeln!(
        out,
        "| {what} | {} | {} | {} |",
        cells.join(" | "),
        if judged {
            verdicts(&VMMS, |v| figure_of(&medians, v), true)
        } else {
            "– (info)".into()
        },
        lists.join(" / ")
    );
}

/// A row shown for explanation, not a target: medians and every session.
fn info_row(out: &mut String, what: &str, runs_of: &[&[f64]]) {
    let medians: Vec<String> = runs_of
        .iter()
        .map(|r| median(r).map_or("–".into(), |m| format!("{m:.0}")))
        .collect();
    let lists: Vec<String> = runs_of
        .iter()
        .map(|r| {
            r.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    let _ = writeln!(
        out,
        "| {what} | {} | – | {} |",
        medians.join(" | "),
        lists.join(" / ")
    );
}

/// The figure of `vmm` among `values`, which follow [`VMMS`].
fn figure_of(values: &[Option<f64>], vmm: Vmm) -> Option<f64> {
    VMMS.iter()
        .position(|&v| v == vmm)
        .and_then(|i| values.get(i).copied().flatten())
}

/// What the figures meant when they were taken (static text, from the
/// investigation behind this bench).
const FINDINGS: &str =
    "Findings (2026-12-04, the run above, on an Intel Xeon machine with 2 CPUs, each VM session \
in a test host booted for it alone; one QEMU guest reset itself during its boot, before its \
first transfer, a fault of docs/guests.md, so QEMU's transfers come from two sessions). \
Host → guest is the guest-bound direction (its TCP stack copies every byte to `nc`), and \
there the guest's interrupts decide. On 2026-12-02 Pointsman's guest took 31 to 36 \
interrupts per MiB received to QEMU's 9 and received at 76% to 99% of QEMU's rate. Three \
changes since: on virtio-mmio the driver's InterruptACK write no longer leaves KVM (an \
ioeventfd takes it, and reading InterruptStatus clears it); the device moderates its \
interrupts (a frame delivered within 2 ms of the queue's last interrupt waits up to 300 µs \
for more, unless 128 buffers wait or the guest has none left); and, the largest, transmit \
completions ride on receive interrupts while the guest receives a stream (docs/devices.md). \
The last came from counting each queue's interrupts in the device: a receiving guest sends \
an acknowledgement every few frames, and each one's completion took an interrupt of its \
own, more than half of all (1325 transmit and 1175 receive interrupts raised for 128 MiB \
received, in a scratch run). Its guest sent about 2300 frames per 128 MiB received to \
QEMU's guest's 1250, since fewer interrupts mean longer polls and fewer acknowledgements. \
Before it, the receiving guest took 24 interrupts per MiB on virtio-mmio (AMD run of the \
same day) and received at 88% to 94% of QEMU's rate; in a paired scratch run (one test \
host, the VMMs in turn, 8 transfers each, two test hosts) Pointsman without the ride \
received at 87% and 94% of QEMU's rate and with it at 110% and 98%, with 30% to 45% fewer \
interrupts, guest → host and ping unchanged. In this run virtio-mmio host → guest is at 101% \
of QEMU's rate with 10 interrupts per MiB to QEMU's 8, and `--pci` at 108% (MSI-X: no exit \
to the VMM per interrupt). The 2 MiB nested pages (guest RAM now 2 MiB aligned; before, \
Linux 6.1 in the test host left it unaligned and KVM mapped it with 4 KiB pages only) do not \
decide this row: in a paired scratch run Pointsman received at 19.2 MiB/s with them and 16.3 \
with `thp=off`. Guest → host Pointsman is ahead by 4.4 and 4.3 times, and its ping round \
trip is 96% and 81% of QEMU's. Guest loopback, the control row with no NIC: in the paired \
run, where every VMM's guests meet the same state of the machine, Pointsman is level with \
QEMU (103%, and 98% for `--pci`, which with no NIC changes nothing the guest's loopback \
uses; the row's transfers run from 17.0 to 22.1 MiB/s under each). QEMU microvm with \
`pcie=on` and `virtio-net-pci` panicked the test host's kernel (a kernel stack guard page \
hit in its thread) in every session tried, so this bench does not run it and has no QEMU \
virtio-pci column; its virtio-blk sessions ran (see above).";

fn section(console: &str, paired: &str, failed: &[String]) -> String {
    let figures = VMMS.map(|vmm| Figures::of(console, vmm));
    let paired_lo = VMMS.map(|vmm| {
        parts(paired, "@@paired-session ", vmm)
            .iter()
            .flat_map(|p| rates(p, "paired-lo"))
            .collect::<Vec<f64>>()
    });
    let names: Vec<&str> = VMMS.iter().map(|v| v.name()).collect();
    let host_lo = rates(console, "host-lo");
    let mut s = String::new();
    let _ = write!(
        s,
        "## virtio-net\n\n\
         TCP throughput of busybox `nc` moving {MIB} MiB of random data between a Linux \
         guest (Debian cloud kernel, 1 vCPU, {MEMORY_MIB} MiB, `virtio_net`, virtio 1.0 under \
         both VMMs) and its host over a TAP, under Pointsman (virtio-mmio, and virtio-pci \
         with `--pci`) and under QEMU microvm (virtio-mmio; userspace virtio-net, no vhost), \
         each VM session in a test host booted for it alone: {SESSIONS} VM sessions per \
         configuration, in turn (the second round in reverse), {RUNS} transfers per path in \
         each ({LOOPBACK_RUNS} over each loopback); medians over all of a \
         configuration's transfers. Both VMMs' guest RAM is on transparent huge pages (the \
         test host's policy is `always`; both map RAM on 2 MiB boundaries), so KVM maps it \
         with 2 MiB pages under both. Both ends run inside the test host, QEMU TCG with nested SVM: \
         the host side is emulated, so these figures compare VMMs and paths on this set-up, \
         not with bare metal. The loopback rows are the same transfer with no NIC in the way: \
         the guest's own TCP stack (under each VMM), and the test host's. The first guest \
         loopback row comes from one more test host, in which each configuration in turn \
         boots a guest with no NIC for {LOOPBACK_RUNS} loopback transfers ({PAIRED_ROUNDS} \
         rounds, every other one in reverse), so that every VMM meets the same state of the \
         shared machine: that state sets the loopback's speed (compare the test host's own \
         loopback from session to session).\n\n\
         Measured on {} by `cargo bench -p pointsman --bench net` (release build). \
         Machine: {}; load average after: {}.\n\n\
         | Path (median MiB/s) | {} | Pointsman against QEMU | Runs: {} |\n\
         |---|{}---|---|\n",
        common::today(),
        common::cpu_model(),
        common::load_average(),
        names.join(" | "),
        names.join(" / "),
        "---:|".repeat(VMMS.len()),
    );
    let each = |f: fn(&Figures) -> &[f64]| figures.iter().map(f).collect::<Vec<_>>();
    row(&mut s, "host → guest, virtio-net", &each(|f| &f.h2g));
    row(&mut s, "guest → host, virtio-net", &each(|f| &f.g2h));
    row(
        &mut s,
        "guest loopback, no NIC, VMMs in turn in one test host",
        &paired_lo.iter().map(Vec::as_slice).collect::<Vec<_>>(),
    );
    row_with(
        &mut s,
        "guest loopback in the NIC sessions above",
        &each(|f| &f.guest_lo),
        false,
    );
    let host = mibs(median(&host_lo));
    let _ = writeln!(
        s,
        "| test host loopback (no VMM) | {} – | {} |",
        format!("{host} | ").repeat(VMMS.len()),
        runs(&host_lo)
    );
    let pings: Vec<Option<f64>> = figures.iter().map(Figures::ping_avg).collect();
    let _ = writeln!(
        s,
        "| ping guest → host, average round trip (ms, {PINGS} pings a session, lower is \
         better) | {} | {} | {} |",
        pings
            .iter()
            .map(|p| p.map_or("–".into(), |v| format!("**{v:.2}**")))
            .collect::<Vec<_>>()
            .join(" | "),
        verdicts(&VMMS, |v| figure_of(&pings, v), false),
        figures
            .iter()
            .map(|f| f.pings.join("; "))
            .collect::<Vec<_>>()
            .join(" / "),
    );
    info_row(
        &mut s,
        "guest interrupts per MiB, host → guest (info)",
        &each(|f| &f.irqs_per_mib[0]),
    );
    info_row(
        &mut s,
        "guest interrupts per MiB, guest → host (info)",
        &each(|f| &f.irqs_per_mib[1]),
    );
    let features: Vec<String> = VMMS
        .iter()
        .zip(&figures)
        .map(|(v, f)| format!("{} {}", v.name(), f.features))
        .collect();
    let cpu: Vec<String> = VMMS
        .iter()
        .zip(&figures)
        .map(|(&v, f)| format!("{}: {}", v.name(), thread_cpu(f, v)))
        .collect();
    let _ = write!(
        s,
        "\nFeature bits the guest's driver took (set bits of \
         `/sys/class/net/*/device/features`): {}. CPU time of the thread \
         that moves the frames (Pointsman's worker, QEMU's main loop), per MiB \
         (in the test host, `/proc/PID/task/TID/stat`; system time includes the test host \
         kernel's network stack, which processes each frame written to the TAP in the \
         writer's context): {}.\n\n\
         Command lines inside the test host (`start_vm` runs `pointsman run`, `start_qemu` \
         `{QEMU_BINARY}`, with the console on a FIFO):\n\n```\n",
        features.join("; "),
        cpu.join("; "),
    );
    for vmm in VMMS {
        let _ = writeln!(s, "{}", vmm.start());
    }
    let _ = write!(s, "```\n\n");
    if !failed.is_empty() {
        let _ = write!(
            s,
            "Sessions that failed (their transfers are left out above): {}.\n\n",
            failed.join("; ")
        );
    }
    let _ = writeln!(s, "{FINDINGS}");
    s
}

fn main() {
    if !common::bench_requested() {
        return;
    }
    let host = TestHost::new(Path::new(env!("CARGO_BIN_EXE_pointsman")))
        .expect("set up the test host")
        .with_host_modules(&["tun"])
        .with_qemu()
        .timeout(Duration::from_secs(SESSION_LIMIT_SECONDS));
    let assets = host.assets();
    let dir = std::env::temp_dir().join(format!("pointsman-net-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let initrd = dir.join("guest.cpio");
    linux_guest_initramfs(
        &assets.busybox,
        &assets.cloud,
        &["virtio_mmio", "virtio_pci", "virtio_net"],
        &format!("{COMMON_HELPERS}{GUEST_HELPERS}{}", guest_script()),
    )
    .and_then(|i| i.write(&initrd))
    .expect("build the guest initramfs");
    let kernel = assets.cloud.vmlinuz.clone();
    let files = [
        ("guest/vmlinuz", kernel.as_path()),
        ("guest/initrd.cpio", &initrd),
    ];
    let (console, mut failed) = measure(&host, &files);
    let paired = match host.run(&files, &paired_script()) {
        Ok(run) => run.console,
        Err(e) => {
            let why = common::headline(&e);
            eprintln!("net bench: paired loopback run: {why}");
            failed.push(format!("paired loopback run: {why}"));
            String::new()
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    common::publish("net", MARKERS, &section(&console, &paired, &failed));
}
