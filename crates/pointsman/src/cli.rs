//! Arguments of `pointsman`, and turning them into a VM configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use vmm::{DiskConfig, KernelSource, VmConfig, VmResources};

use crate::firecracker::FirecrackerArgs;
use crate::jail_command::JailArgs;
use crate::serve_command::ServeArgs;
use crate::snapshot_cmd::SnapshotCommand;
use crate::vm_command::VmArgs;
use crate::{config_file, landlock_rules, launch, logging, restore_overrides};

#[derive(Parser, Debug)]
#[command(
    name = "pointsman",
    version,
    about = "Boot guests on KVM: a small, fast VMM for microVMs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Boot a guest and attach its serial console to this terminal.
    /// Without --kernel, boots the demo guest built into Pointsman.
    Run(RunArgs),
    /// Firecracker's command line (what a `firecracker` symlink to this
    /// binary runs): see `pointsman firecracker --help`.
    #[command(disable_version_flag = true)]
    Firecracker(FirecrackerArgs),
    /// Run a VMM confined: a root of its own with only its guest's files,
    /// new namespaces, a cgroup, limits, an unprivileged user without
    /// capabilities. `pointsman jail --id ID --uid U --gid G -- ARGS`
    /// runs `pointsman run ARGS` so.
    Jail(JailArgs),
    /// Work on snapshot files: merge Diff snapshots' memory files.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// The host manager's daemon: admits guests, runs each VMM jailed in
    /// a cgroup of its own, and serves a REST API on a Unix socket.
    Serve(ServeArgs),
    /// Manage the guests of a `pointsman serve` daemon.
    Vm(VmArgs),
    /// A full-screen view of a daemon's guests, refreshed every second:
    /// CPU against weight and cap, memory against its limit, disk and
    /// network rates; keys to sort, pause, resume and stop.
    Top(crate::top_command::TopArgs),
}

/// The options that describe the guest, which a config file replaces.
const GUEST_OPTIONS: [&str; 10] = [
    "kernel", "initrd", "cmdline", "cpus", "memory", "rng", "balloon", "vsock", "disk", "net",
];

/// The guest options a snapshot brings itself: `--net` and `--vsock` stay,
/// giving its devices new host ends.
const RESTORE_CONFLICTS: [&str; 8] = [
    "kernel", "initrd", "cmdline", "cpus", "memory", "rng", "balloon", "disk",
];

/// `pointsman run`'s arguments alone: what `pointsman run` parses (the
/// other subcommands' options are never built, so their code and text
/// stay out of a VMM's memory) and what the jail checks.
#[derive(Parser)]
#[command(name = "pointsman run", version)]
pub struct RunOnly {
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Kernel to boot: an ELF vmlinux (PVH or 64-bit entry) or a bzImage.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Initramfs to load where the boot protocol says.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line [default: "console=ttyS0 reboot=k panic=1" for a
    /// --kernel, empty for the demo guest].
    #[arg(long, value_name = "TEXT")]
    pub cmdline: Option<String>,
    /// Number of vCPUs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cpus: u32,
    /// Guest RAM, with a K, M, G or T suffix (a bare number is MiB);
    /// thp=on asks for transparent huge pages (faster for large, busy
    /// guests; a small guest then grows in 2 MiB steps), thp=off refuses
    /// them, and with neither the host's THP policy decides.
    #[arg(long, value_name = "SIZE[,thp=on|off]", default_value = "128M")]
    pub memory: String,
    /// KVM logs the pages the guest writes, so that `PUT /snapshot/create`
    /// can take Diff snapshots (only what changed since the last snapshot);
    /// with --restore, the restored guest's writes are logged.
    #[arg(long, conflicts_with = "config_file")]
    pub track_dirty_pages: bool,
    /// End the run when the guest resets instead of restarting it.
    #[arg(long)]
    pub no_reboot: bool,
    /// Give the guest a virtio-rng device, fed from the host's getrandom.
    #[arg(long)]
    pub rng: bool,
    /// Give the guest a virtio-balloon device:
    /// [size=SIZE][,stats=on][,free-page-reporting=on][,deflate-on-oom=on].
    /// SIZE (K, M or G suffix; a bare number is MiB) is the target the
    /// guest inflates to, giving that much memory back to the host.
    #[arg(long, value_name = "OPTIONS")]
    pub balloon: Option<String>,
    /// Give the guest a virtio-vsock device with context ID N (3 or more).
    /// Host programs connect to the Unix socket PATH and write
    /// "CONNECT <port>\n"; guest connections to host port P reach the
    /// Unix socket PATH_P.
    #[arg(long, value_name = "cid=N,socket=PATH")]
    pub vsock: Option<String>,
    /// Give the guest a virtio-blk disk over a raw image file (repeatable):
    /// path=FILE[,readonly=on][,id=NAME][,direct=on][,bandwidth=N[/TIME]][,ops=N[/TIME]]
    /// [,moderation=off]. Limits are amounts (K/M/G suffixes) per refill
    /// time (e.g. 500ms; 1s when left out); moderation=off sends every
    /// completion's interrupt at once.
    #[arg(long, value_name = "OPTIONS")]
    pub disk: Vec<String>,
    /// Give the guest a virtio-net NIC on a host TAP (repeatable):
    /// tap=NAME[,mac=MAC][,id=NAME][,bandwidth=N[/TIME]][,ops=N[/TIME]]
    /// [,rx_bandwidth=..][,rx_ops=..][,tx_bandwidth=..][,tx_ops=..][,moderation=off].
    /// The TAP is created if it does not exist; bandwidth and ops limit
    /// each direction, rx_ and tx_ ones only what the guest receives or
    /// sends; id names the NIC for the API; moderation=off sends every
    /// interrupt at once.
    #[arg(long, value_name = "SPEC")]
    pub net: Vec<String>,
    /// Put the virtio devices on a PCI bus with MSI-X interrupts instead
    /// of virtio-mmio: fewer exits per interrupt, a little more boot work
    /// in the guest (it needs the virtio_pci driver).
    #[arg(long)]
    pub pci: bool,
    /// Boot the guest a Firecracker JSON configuration describes
    /// (boot-source, drives, machine-config, network-interfaces, vsock,
    /// balloon, entropy, logger, metrics) instead of the options above.
    #[arg(long, value_name = "FILE", conflicts_with_all = GUEST_OPTIONS)]
    pub config_file: Option<PathBuf>,
    /// Bring back the guest a snapshot saved (`PUT /snapshot/create`)
    /// instead of booting one: its state file; --mem-file gives its memory.
    /// Beside it, `--net id=NAME,tap=TAP` gives the snapshot's NIC NAME a
    /// new TAP and `--vsock socket=PATH` its vsock device a new socket
    /// (each clone of one snapshot needs its own).
    #[arg(
        long,
        value_name = "SNAPSHOT",
        requires = "mem_file",
        conflicts_with_all = RESTORE_CONFLICTS,
        conflicts_with = "config_file"
    )]
    pub restore: Option<PathBuf>,
    /// The memory file of the snapshot --restore names.
    #[arg(long, value_name = "PATH", requires = "restore")]
    pub mem_file: Option<PathBuf>,
    /// The restored guest goes on at once; without it, it waits paused
    /// for `PATCH /vm {"state": "Resumed"}` on --api-sock.
    #[arg(long, requires = "restore")]
    pub resume: bool,
    /// Serve Firecracker's API on this Unix socket. With --kernel or
    /// --config-file the guest boots at once and the API controls it;
    /// with neither, the API configures and starts it (InstanceStart).
    #[arg(long, value_name = "PATH")]
    pub api_sock: Option<PathBuf>,
    /// Limit the VMM's file access with Landlock (where the kernel has
    /// it) to the files the guest needs: its kernel, initrd, disks,
    /// snapshot, sockets' directories, /dev/kvm and /dev/net/tun.
    /// `pointsman jail` turns it on.
    #[arg(long)]
    pub landlock: bool,
    /// With --landlock: a directory beneath which the VMM may also make,
    /// read and write files (for snapshots, logs or disks given through
    /// the API later). Repeatable.
    #[arg(long, value_name = "DIR", requires = "landlock")]
    pub landlock_rule: Vec<PathBuf>,
    /// Log what the VMM does to stderr, and print the vCPU registers when
    /// the guest fails.
    #[arg(long, short)]
    pub verbose: bool,
    /// Seccomp filters on every VMM thread: on (a forbidden system call
    /// ends the VMM with status 159 and one line naming it), log (the
    /// kernel logs forbidden calls and lets them through: for finding
    /// what a filter lacks) or off.
    #[arg(long, value_name = "on|off|log", default_value = "on", value_parser = parse_seccomp)]
    pub seccomp: seccomp::Mode,
}

fn parse_seccomp(text: &str) -> Result<seccomp::Mode, String> {
    seccomp::Mode::parse(text).ok_or_else(|| format!("expected on, off or log, not {text:?}"))
}

fn config(args: &RunArgs) -> Result<VmConfig, vmm::Error> {
    let (kernel, default_cmdline) = match &args.kernel {
        Some(path) => (KernelSource::File(path.clone()), vmm::DEFAULT_CMDLINE),
        None => (KernelSource::Embedded(guests::DEMO), ""),
    };
    let (memory, huge_pages) = vmm::parse_memory_option(&args.memory)?;
    Ok(VmConfig {
        kernel,
        initrd: args.initrd.clone(),
        cmdline: args
            .cmdline
            .clone()
            .unwrap_or_else(|| default_cmdline.to_owned()),
        cpus: args.cpus,
        memory,
        huge_pages,
        track_dirty_pages: args.track_dirty_pages,
        no_reboot: args.no_reboot,
        rng: args.rng,
        pci: args.pci,
        serial: vmm::SerialOutput::default(),
        balloon: args
            .balloon
            .as_deref()
            .map(vmm::BalloonConfig::parse)
            .transpose()?,
        vsock: args
            .vsock
            .as_deref()
            .map(|text| {
                vmm::VsockConfig::parse(text).map_err(|source| vmm::Error::InvalidVsock {
                    text: text.to_owned(),
                    source,
                })
            })
            .transpose()?,
        disks: args
            .disk
            .iter()
            .map(|d| DiskConfig::parse(d))
            .collect::<Result<_, _>>()?,
        net: args
            .net
            .iter()
            .map(|spec| vmm::NetConfig::parse(spec))
            .collect::<Result<_, _>>()?,
    })
}

/// `pointsman run`: boots the guest (from the options or a config file)
/// and maps how it ended to the exit status, with one line on stderr
/// when it did not end cleanly. Logging goes to stderr as `--verbose`
/// asks, or as the config file's `logger` section does. With
/// `--api-sock`, Firecracker's API controls the guest; with neither a
/// kernel nor a config file, it configures and starts the guest too.
pub fn run(args: &RunArgs) -> ExitCode {
    seccomp::set_mode(args.seccomp);
    let waits_for_api = args.api_sock.is_some()
        && args.kernel.is_none()
        && args.config_file.is_none()
        && args.restore.is_none();
    if args.restore.is_some() && !args.resume && args.api_sock.is_none() {
        return launch::bad_input(
            "--restore without --resume waits paused for the API: give --api-sock too, or --resume",
        );
    }
    if waits_for_api && has_guest_options(args) {
        return launch::bad_input(
            "guest options need --kernel or --config-file; without them the API configures the guest",
        );
    }
    let mut log = logging::init(args.verbose);
    let mut metrics = None;
    let options = vmm::StartOptions {
        no_reboot: args.no_reboot,
        pci: args.pci,
    };
    if let (Some(snapshot), Some(memory)) = (&args.restore, &args.mem_file) {
        let overrides = match restore_overrides::parse(&args.net, args.vsock.as_deref()) {
            Ok(overrides) => overrides,
            Err(e) => return launch::bad_input(e),
        };
        if args.landlock {
            if let Err(e) = landlock_rules::confine(args, None, &VmResources::default()) {
                return launch::bad_input(e);
            }
        }
        let boot = vmm::Boot::Restore(vmm::RestoreFrom {
            snapshot: snapshot.clone(),
            memory: memory.clone(),
            resume: args.resume,
            overrides,
            track_dirty_pages: args.track_dirty_pages,
        });
        return match args.api_sock.clone() {
            None => launch::boot(boot, options, args.verbose),
            Some(socket) => launch::serve_api(launch::ApiLaunch {
                socket,
                max_payload: api::Limits::default().max_payload_bytes,
                id: vmm::resources::DEFAULT_INSTANCE_ID.to_owned(),
                boot: Some(boot),
                resources: VmResources::default(),
                options,
                metrics: None,
                logger: Some(log.into_hook()),
                verbose: args.verbose,
            }),
        };
    }
    let (config, resources) = match &args.config_file {
        Some(path) => match config_file::load(path) {
            Ok((resources, mut config)) => {
                if let Some(logger) = &resources.logger {
                    if let Err(e) = log.update(logger) {
                        return launch::bad_input(e);
                    }
                }
                metrics = resources
                    .metrics
                    .as_ref()
                    .map(|m| PathBuf::from(&m.metrics_path));
                config.no_reboot = args.no_reboot;
                config.pci = args.pci;
                (Some(config), resources)
            }
            Err(e) => return launch::bad_input(e),
        },
        None if waits_for_api => (None, VmResources::default()),
        None => match config(args) {
            Ok(config) => {
                let resources = VmResources::from_vm_config(&config);
                (Some(config), resources)
            }
            Err(e) => return launch::report(&Err(e), args.verbose),
        },
    };
    if args.landlock {
        if let Err(e) = landlock_rules::confine(args, config.as_ref(), &resources) {
            return launch::bad_input(e);
        }
    }
    let Some(socket) = args.api_sock.clone() else {
        let Some(config) = config else {
            unreachable!("without an API socket there is always a guest to boot");
        };
        return launch::boot(vmm::Boot::Config(config), options, args.verbose);
    };
    launch::serve_api(launch::ApiLaunch {
        socket,
        max_payload: api::Limits::default().max_payload_bytes,
        id: vmm::resources::DEFAULT_INSTANCE_ID.to_owned(),
        boot: config.map(vmm::Boot::Config),
        resources,
        options,
        metrics,
        logger: Some(log.into_hook()),
        verbose: args.verbose,
    })
}

/// Whether any option that describes the guest was given.
fn has_guest_options(args: &RunArgs) -> bool {
    args.initrd.is_some()
        || args.cmdline.is_some()
        || args.cpus != 1
        || args.memory != "128M"
        || args.track_dirty_pages
        || args.rng
        || args.balloon.is_some()
        || args.vsock.is_some()
        || !args.disk.is_empty()
        || !args.net.is_empty()
}
