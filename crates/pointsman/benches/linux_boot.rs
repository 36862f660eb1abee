//! Linux boot time in the test host: Pointsman against QEMU microvm.
//!
//! In one test host boot (QEMU TCG with nested SVM: see the testhost crate)
//! each VMM boots Debian's cloud kernel with the same busybox initramfs,
//! whose init prints a line first thing and powers off, several times and
//! for two guest command lines. Inside the test host busybox `ts` stamps
//! every console line as it arrives, so the launch, the guest's first init
//! line and the VMM's exit are all timed on the test host's clock. Writes
//! the medians to the `## Linux boot in the test host` section of
//! `docs/benchmarks.md`.
//!
//! Run with `cargo bench -p pointsman --bench linux_boot`.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{median, Markers, Vmm};
use testhost::{qemu_microvm_args, Initramfs, TestHost, QEMU_BINARY};

/// Timed runs of each VMM for each command line.
const RUNS: usize = 5;
const MEMORY_MIB: u32 = 256;
const CPUS: u32 = 1;
/// The guest command line both VMMs get, with and without `quiet`.
const BASE_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1";
const VARIANTS: [&str; 2] = [" quiet", ""];
/// Prints first thing (`echo` is an ash builtin: no fork, no PATH needed).
const GUEST_INIT: &str = "#!/bin/sh\necho @@init\n/bin/busybox poweroff -f\n";
const INIT_LINE: &str = "@@init";
/// Paths inside the test host.
const KERNEL: &str = "/guest/vmlinuz";
const INITRD: &str = "/guest/init.cpio";
/// A run that hangs is killed after this long; the whole test host after
/// `HOST_LIMIT`, several times a whole bench's usual 5 to 10 minutes, so
/// that a hung test host (docs/guests.md) is run again soon (on
/// 2026-12-04 one stopped after 43 boots and would have held the bench
/// for its 3 hours).
const RUN_LIMIT_S: u32 = 180;
const HOST_LIMIT: Duration = Duration::from_secs(40 * 60);
/// Pointsman's median time to init must be at most this share of QEMU's.
const TARGET_SHARE: f64 = 0.5;

const MARKERS: Markers = Markers {
    begin: "<!-- linux-boot:begin -->",
    end: "<!-- linux-boot:end -->",
};

/// `timed CMD...` runs a VMM with its console piped through `ts`, which
/// stamps each line when it arrives; `@@t-launch` and `@@t-exit STATUS`
/// mark the launch and the exit on the same clock. Logs go to files so the
/// test host's own console stays quiet while a VMM runs.
const TIMED: &str = r#"
n=0
timed() {
    { echo @@t-launch; timeout -s KILL LIMIT "$@" < /dev/null 2> /tmp/run.$n.err; echo "@@t-exit $?"; } \
        | ts '%.s' > /tmp/run.$n.log
    n=$((n + 1))
}
# show_runs: each run's stamped console in run_vm's markers.
show_runs() {
    i=0
    while [ $i -lt $n ]; do
        echo "@@vm-console-begin"; cat /tmp/run.$i.log; echo "@@vm-console-end"
        sed 's/^/@@stderr /' /tmp/run.$i.err | head -20
        echo "@@vm-status $(sed -n 's/.*@@t-exit //p' /tmp/run.$i.log)"
        i=$((i + 1))
    done
}
"#;

/// The set-ups compared, in the order each round runs them.
const VMMS: [Vmm; 4] = [
    Vmm::Pointsman,
    Vmm::PointsmanPci,
    Vmm::PointsmanThp,
    Vmm::Qemu,
];

impl Vmm {
    /// The shell command that boots the guest with `cmdline`.
    fn command(self, cmdline: &str) -> String {
        if self.is_qemu() {
            format!(
                "{QEMU_BINARY} {}",
                qemu_microvm_args(KERNEL, INITRD, cmdline, MEMORY_MIB)
            )
        } else {
            format!(
                "pointsman run --kernel {KERNEL} --initrd {INITRD} --cmdline '{cmdline}' \
                 --cpus {CPUS} --memory {MEMORY_MIB}M{}{}",
                self.memory_options(),
                self.pointsman_flags()
            )
        }
    }
}

fn cmdline(variant: usize) -> String {
    format!("{BASE_CMDLINE}{}", VARIANTS[variant])
}

/// One VMM launch in the script; warm-ups are not counted.
#[derive(Clone, Copy)]
struct Step {
    vmm: Vmm,
    variant: usize,
    counted: bool,
}

/// One warm-up of each VMM, then rounds that alternate the VMMs so drift
/// in the machine's load hits both alike.
fn plan() -> Vec<Step> {
    let mut steps = Vec::new();
    for vmm in VMMS {
        steps.push(Step {
            vmm,
            variant: 0,
            counted: false,
        });
    }
    for _ in 0..RUNS {
        for variant in 0..VARIANTS.len() {
            for vmm in VMMS {
                steps.push(Step {
                    vmm,
                    variant,
                    counted: true,
                });
            }
        }
    }
    steps
}

fn script(steps: &[Step]) -> String {
    let mut script = TIMED.replace("LIMIT", &RUN_LIMIT_S.to_string());
    for step in steps {
        let _ = writeln!(script, "timed {}", step.vmm.command(&cmdline(step.variant)));
    }
    script.push_str("show_runs\n");
    script
}

/// Seconds from the launch to the init line and to the exit, as `ts`
/// stamped them, and the VMM's exit status.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    to_init: Option<f64>,
    to_exit: Option<f64>,
    status: Option<i32>,
}

/// `ts '%.s'` lines: seconds since the epoch, a space, the line.
fn stamped(line: &str) -> Option<(f64, &str)> {
    let (stamp, rest) = line.trim_end_matches('\r').split_once(' ')?;
    Some((stamp.parse().ok()?, rest))
}

fn parse_run(console: &str) -> Sample {
    let (mut launch, mut init, mut exit, mut status) = (None, None, None, None);
    for (at, line) in console.lines().filter_map(stamped) {
        if line.starts_with("@@t-launch") {
            launch = Some(at);
        } else if let Some(code) = line.strip_prefix("@@t-exit ") {
            exit = Some(at);
            status = code.trim().parse().ok();
        } else if line.contains(INIT_LINE) && init.is_none() {
            init = Some(at);
        }
    }
    let since = |t: Option<f64>| Some(t? - launch?);
    Sample {
        to_init: since(init),
        to_exit: since(exit),
        status,
    }
}

/// The counted samples of one VMM and command line that reached init and
/// exited with status 0, and how many runs failed.
struct Cell {
    good: Vec<Sample>,
    failed: usize,
}

impl Cell {
    fn of(samples: &[(Step, Sample)], vmm: Vmm, variant: usize) -> Cell {
        let mine: Vec<Sample> = samples
            .iter()
            .filter(|(s, _)| s.counted && s.vmm == vmm && s.variant == variant)
            .map(|(_, sample)| *sample)
            .collect();
        let total = mine.len();
        let good: Vec<Sample> = mine
            .into_iter()
            .filter(|s| s.status == Some(0) && s.to_init.is_some() && s.to_exit.is_some())
            .collect();
        Cell {
            failed: total - good.len(),
            good,
        }
    }

    fn to_init(&self) -> Vec<f64> {
        self.good.iter().filter_map(|s| s.to_init).collect()
    }

    fn to_exit(&self) -> Vec<f64> {
        self.good.iter().filter_map(|s| s.to_exit).collect()
    }
}

fn seconds(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.2} s"))
}

fn range(values: &[f64]) -> String {
    let min = values.iter().copied().reduce(f64::min);
    let max = values.iter().copied().reduce(f64::max);
    match (min, max) {
        (Some(lo), Some(hi)) => format!("{lo:.2}–{hi:.2} s"),
        _ => "–".into(),
    }
}

fn table(out: &mut String, samples: &[(Step, Sample)]) {
    out.push_str(
        "| Guest command line | VMM | Launch → init, median | Launch → exit, median | \
         Launch → init, range | Runs (failed) |\n|---|---|---:|---:|---:|---:|\n",
    );
    for variant in 0..VARIANTS.len() {
        for vmm in VMMS {
            let cell = Cell::of(samples, vmm, variant);
            let _ = writeln!(
                out,
                "| `{}` | {} | **{}** | {} | {} | {} ({}) |",
                cmdline(variant),
                vmm.name(),
                seconds(median(&cell.to_init())),
                seconds(median(&cell.to_exit())),
                range(&cell.to_init()),
                cell.good.len() + cell.failed,
                cell.failed
            );
        }
    }
}

/// The target, on the `quiet` command line (variant 0), for each
/// Pointsman configuration; met when one of them meets it.
fn target(out: &mut String, samples: &[(Step, Sample)]) {
    let qemu = median(&Cell::of(samples, Vmm::Qemu, 0).to_init());
    let _ = write!(
        out,
        "\n### Target\n\nPointsman's median time from launch to the guest's first init line at \
         most half of QEMU's, with `{}`",
        cmdline(0)
    );
    let Some(qemu) = qemu else {
        out.push_str(": **not measured** (QEMU's runs failed: see the bench's output).\n");
        return;
    };
    let limit = qemu * TARGET_SHARE;
    let _ = writeln!(out, " (QEMU {qemu:.2} s, so at most {limit:.2} s):\n");
    let mut met = false;
    for vmm in VMMS.into_iter().filter(|v| !v.is_qemu()) {
        match median(&Cell::of(samples, vmm, 0).to_init()) {
            Some(ours) => {
                met |= ours <= limit;
                let _ = writeln!(
                    out,
                    "- {}: {ours:.2} s, {:.0}% of QEMU's: {}.",
                    vmm.name(),
                    100.0 * ours / qemu,
                    if ours <= limit { "met" } else { "not met" }
                );
            }
            None => {
                let _ = writeln!(out, "- {}: not measured (its runs failed).", vmm.name());
            }
        }
    }
    let _ = writeln!(
        out,
        "\nVerdict: **{}**.",
        if met { "met" } else { "not met" }
    );
}

/// What profiling the guest's boot found (task notes, not measured by
/// this bench): shown next to the figures so they can be read.
const WHERE_THE_TIME_GOES: &str = "\
### Where the time goes (profiled 2026-11-25; not re-measured by this bench)

- The CMOS RTC probe: `cmos_init` took about 2.8 s of the guest kernel's ~4.7 s to init \
(`initcall_debug`: `initcall cmos_init+0x0/0x78 returned 0 after 2834050 usecs`). With no RTC at \
ports 0x70/0x71 (neither VMM has one here; QEMU's microvm leaves it out under KVM unless \
`rtc=on`), port 0x71 reads 0xff, the update-in-progress bit looks stuck, and the kernel's \
`mc146818_avoid_UIP` polls for its whole budget: 10000 rounds of `udelay(100)` and four port exits each, 40000 exits. Fixed in \
Pointsman: its FADT says \"no CMOS RTC\" (`IAPC_BOOT_ARCH`), so the guest does not probe. QEMU's \
microvm still pays it: that is most of the gap in the table.
- Nested page faults: Pointsman's guest RAM used to land wherever `mmap` put it, not 2 MiB \
aligned in the test host's address space (its kernel, 6.1, does not align large anonymous \
mappings), so KVM mapped it with 4 KiB nested page-table entries only: 29000 NPF exits a boot, \
21000 of them in the first two seconds, against 1450 for QEMU, which aligns its RAM and asks \
for transparent huge pages. Pointsman now maps RAM on 2 MiB boundaries always (since \
2026-12-04), so huge pages the host's THP policy gives (`always` in the test host) are 2 MiB \
pages for KVM too; `--memory SIZE,thp=on` asks for them as QEMU does, on hosts whose policy is \
`madvise`.
- What is left between launch and the guest kernel's time 0 (2-3 s on a quiet machine) is \
mostly the bzImage decompressing itself; VMM set-up is about 0.3 s.
";

fn method(out: &mut String, host: &HostFacts) {
    out.push_str(
        "\nHow: one test host boot (QEMU TCG, `-cpu max` with SVM, q35, 2 vCPUs, 4 GiB: see the \
         testhost crate) runs every boot below one after another. In the test host each VMM's \
         stdout (the guest's serial console) goes through busybox `ts '%.s'`, which stamps each \
         line with gettimeofday as it arrives; a line written just before the launch and one \
         after the VMM is reaped mark the launch and the exit. \"Init\" is the first line the \
         guest's `/init` prints, as its first command (busybox ash `echo`); it then runs \
         `busybox poweroff -f`. ",
    );
    let _ = writeln!(
        out,
        "Guest: Debian's cloud kernel {} (the bzImage), {MEMORY_MIB} MiB, {CPUS} vCPU, a \
         busybox initramfs. {RUNS} counted runs per VMM and command line, after one untimed \
         warm-up of each VMM; the VMMs alternate run by run. A run counts only if the VMM exits \
         with status 0 after the init line. The machine is shared and the test host is \
         emulated, so single runs vary by a second or more: compare medians.\n",
        host.kernel
    );
    out.push_str(
        "Command lines inside the test host (`CMDLINE` is the guest command line):\n\n```\n",
    );
    for vmm in VMMS {
        let _ = writeln!(out, "{}", vmm.command("CMDLINE"));
    }
    let _ = writeln!(
        out,
        "```\n\nPointsman is the release build. Machine: {}; Linux {}; {}; load average before \
         / after: {} / {}. Measured {}.",
        host.cpu, host.machine_kernel, host.qemu, host.load_before, host.load_after, host.date
    );
}

fn section(samples: &[(Step, Sample)], host: &HostFacts) -> String {
    let mut out = "## Linux boot in the test host\n\nGenerated by `cargo bench -p pointsman \
                   --bench linux_boot`.\n\n"
        .to_owned();
    table(&mut out, samples);
    target(&mut out, samples);
    method(&mut out, host);
    out.push('\n');
    out.push_str(WHERE_THE_TIME_GOES);
    out
}

/// Facts about the run, for the report.
struct HostFacts {
    cpu: String,
    machine_kernel: String,
    kernel: String,
    qemu: String,
    date: String,
    load_before: String,
    load_after: String,
}

fn guest_initrd(host: &TestHost) -> PathBuf {
    let path = std::env::temp_dir().join(format!("linux_boot-{}.cpio", std::process::id()));
    let mut image = Initramfs::new();
    image.busybox(&host.assets().busybox);
    image.script("init", GUEST_INIT);
    image.write(&path).expect("write the guest initramfs");
    path
}

fn measure(host: &TestHost, steps: &[Step]) -> Vec<(Step, Sample)> {
    let initrd = guest_initrd(host);
    let kernel = host.assets().cloud.vmlinuz.clone();
    let files = [
        ("guest/vmlinuz", kernel.as_path()),
        ("guest/init.cpio", &initrd),
    ];
    let run = host.run(&files, &script(steps));
    let _ = std::fs::remove_file(&initrd);
    let run = run.expect("run the test host");
    let runs = run.vm_runs();
    if runs.len() != steps.len() {
        eprintln!(
            "linux_boot: {} of {} runs reported:\n{}",
            runs.len(),
            steps.len(),
            run.console
        );
    }
    let samples: Vec<(Step, Sample)> = steps
        .iter()
        .zip(&runs)
        .map(|(step, (console, _))| (*step, parse_run(console)))
        .collect();
    for ((step, sample), (console, _)) in samples.iter().zip(&runs) {
        if sample.status != Some(0) || sample.to_init.is_none() {
            eprintln!(
                "linux_boot: a {} run failed: {sample:?}\n{console}",
                step.vmm.name()
            );
        }
    }
    samples
}

fn main() {
    if !common::bench_requested() {
        return;
    }
    let host = TestHost::new(Path::new(env!("CARGO_BIN_EXE_pointsman")))
        .expect("set up the test host")
        .with_qemu()
        .timeout(HOST_LIMIT);
    let load_before = common::load_average();
    let samples = measure(&host, &plan());
    let facts = HostFacts {
        cpu: common::cpu_model(),
        machine_kernel: common::kernel_release(),
        kernel: host.assets().cloud.version.clone(),
        qemu: common::first_line(QEMU_BINARY, &["--version"]),
        date: common::now(),
        load_before,
        load_after: common::load_average(),
    };
    common::publish("linux_boot", MARKERS, &section(&samples, &facts));
}
