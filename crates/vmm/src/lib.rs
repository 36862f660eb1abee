//! The Pointsman VMM core.
//!
//! [`run`] boots one guest from a [`VmConfig`] and returns how it ended.
//! A reset restarts the guest in the same process with a fresh machine
//! built from the same configuration (or ends the run under `no_reboot`).

mod config;
mod console;
mod controller;
mod device_manager;
mod device_updates;
mod error;
mod exit;
mod generation_id;
pub mod lifecycle;
mod machine;
mod memory;
mod metrics_sink;
mod msi;
mod net;
mod not_started;
mod pci;
mod ram_mapping;
pub mod request;
mod request_metrics;
pub mod resources;
mod run_control;
mod serial_output;
mod signals;
mod snapshot;
mod vcpu;
mod vcpu_gate;

pub use config::{
    parse_memory_option, parse_memory_size, HugePages, KernelSource, VmConfig, DEFAULT_CMDLINE,
    DEFAULT_MEMORY,
};
pub use controller::{Controller, LoggerHook, StartOptions};
pub use error::{Error, Result};
pub use exit::GuestExit;
pub use resources::{ResourceError, VmResources};
pub use serial_output::SerialOutput;
pub use snapshot::{describe_snapshot, merge_memory_files, MergeError, SnapshotInfo};
pub use virtio::balloon::BalloonConfig;

pub use virtio::block::{BlockUpdate as DriveUpdate, DiskConfig};
pub use virtio::net::{NetConfig, NetUpdate};
pub use virtio::rate_limiter::{LimiterUpdate, Limits, TokenBucketConfig};
pub use virtio::vsock::VsockConfig;

use std::path::Path;

use hypervisor::Hypervisor;
pub use not_started::RestoreFrom;
use not_started::Started;
use request::RequestSource;
use tracing::info;

/// The KVM device every VM is created through.
pub const KVM_PATH: &str = "/dev/kvm";

/// Boots the guest described by `config` and runs it until it powers off,
/// resets under `no_reboot`, fails, or SIGTERM or SIGINT ends it
/// ([`Error::Stopped`]; this installs handlers for both).
pub fn run(config: &VmConfig) -> Result<GuestExit> {
    run_boot(Boot::Config(config.clone()), StartOptions::default())
}

/// [`run`] for a guest booted or restored (`--restore`, which `options`
/// apply to), with no API.
pub fn run_boot(boot: Boot, options: StartOptions) -> Result<GuestExit> {
    let resources = match &boot {
        Boot::Config(config) => VmResources::from_vm_config(config),
        // The snapshot brings its own.
        Boot::Restore(_) => VmResources::default(),
    };
    run_controlled(Some(boot), Controller::new(resources, options, None), None)
}

/// How the guest comes to life without waiting for requests.
#[derive(Clone, Debug)]
pub enum Boot {
    /// Booted from its kernel.
    Config(VmConfig),
    /// Brought back from a snapshot (`--restore`).
    Restore(RestoreFrom),
}

/// [`run`], serving `requests` (the API's) all along through `controller`:
/// with no `boot`, the VMM waits for the requests that configure and
/// start the guest (or load a snapshot).
pub fn run_controlled(
    boot: Option<Boot>,
    mut controller: Controller,
    mut requests: Option<&mut dyn RequestSource>,
) -> Result<GuestExit> {
    signals::install()?;
    let hypervisor = Hypervisor::open(Path::new(KVM_PATH)).map_err(Error::OpenKvm)?;
    let Started {
        mut config,
        mut taps,
        mut machine,
        paused,
    } = match (boot, requests.as_deref_mut()) {
        (Some(Boot::Config(config)), _) => not_started::prepare(config, &hypervisor)?,
        (Some(Boot::Restore(from)), _) => {
            not_started::restore(&from, &hypervisor, &mut controller)?
        }
        (None, Some(source)) => not_started::wait_for_start(source, &hypervisor, &mut controller)?,
        (None, None) => return Err(Error::NothingToBoot),
    };
    // A console in a file leaves the terminal as it is.
    let _terminal = config
        .serial
        .is_terminal()
        .then(console::TerminalGuard::new);
    // Everything that needs wide access is done (/dev/kvm, the files, the
    // TAPs, the sockets): the filter goes on before the guest's first
    // instruction. What the main thread still does later (reboots,
    // snapshots, device changes) its filter allows.
    seccomp::install(seccomp::ThreadKind::Main)?;
    let mut boots = 1u32;
    // Only a restored guest may start paused; after a reset it boots.
    let mut start_paused = paused;
    loop {
        info!(boot = boots, paused = start_paused, "guest started");
        let handles = machine.device_handles();
        let outcome = machine.run(requests.as_deref_mut(), &mut controller, start_paused)?;
        start_paused = false;
        match outcome {
            GuestExit::Reset if !config.no_reboot => {
                info!("guest reset: restarting it in place");
            }
            exit => return Ok(exit),
        }
        if let Some(signal) = signals::received() {
            return Err(Error::Stopped { signal });
        }
        boots += 1;
        // Disks and NICs changed while the guest ran stay changed.
        handles.carry_over(&mut config, &mut taps);
        machine = machine::Machine::build(&config, &hypervisor, &taps)?;
        // A Diff snapshot of the rebooted guest is laid over the last
        // snapshot of the guest before: all of its fresh RAM differs.
        machine.ram.mark_all_dirty();
    }
}
