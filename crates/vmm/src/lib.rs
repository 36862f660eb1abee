//! The Pointsman VMM core.
//!
//! [`run`] boots one guest from a [`VmConfig`] and returns how it ended.
//! A reset restarts the guest in the same process with a fresh machine
//! built from the same configuration (or ends the run under `no_reboot`).

mod config;
mod console;
mod device_manager;
mod error;
mod exit;
mod machine;
mod memory;
mod msi;
mod net;
mod pci;
mod ram_mapping;
pub mod resources;
mod signals;
mod vcpu;

pub use config::{
    parse_memory_option, parse_memory_size, HugePages, KernelSource, VmConfig, DEFAULT_CMDLINE,
    DEFAULT_MEMORY,
};
pub use error::{Error, Result};
pub use exit::GuestExit;
pub use resources::{ResourceError, VmResources};
pub use virtio::balloon::BalloonConfig;

pub use virtio::block::DiskConfig;
pub use virtio::net::NetConfig;
pub use virtio::vsock::VsockConfig;

use std::path::Path;

use hypervisor::Hypervisor;
use tracing::info;

/// The KVM device every VM is created through.
pub const KVM_PATH: &str = "/dev/kvm";

/// Boots the guest described by `config` and runs it until it powers off,
/// resets under `no_reboot`, fails, or SIGTERM or SIGINT ends it
/// ([`Error::Stopped`]; this installs handlers for both).
pub fn run(config: &VmConfig) -> Result<GuestExit> {
    signals::install()?;
    let hypervisor = Hypervisor::open(Path::new(KVM_PATH)).map_err(Error::OpenKvm)?;
    config.validate(&hypervisor)?;
    let taps = net::Taps::open(config)?;
    let _terminal = console::TerminalGuard::new();
    let mut boots = 0u32;
    loop {
        if let Some(signal) = signals::received() {
            return Err(Error::Stopped { signal });
        }
        boots += 1;
        let machine = machine::Machine::build(config, &hypervisor, &taps)?;
        info!(boot = boots, "guest started");
        match machine.run()? {
            GuestExit::Reset if !config.no_reboot => {
                info!("guest reset: restarting it in place");
            }
            exit => return Ok(exit),
        }
    }
}
