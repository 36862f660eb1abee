//! Host TAPs for the guest's NICs, opened once per run: a reboot in place
//! builds new devices on the same TAPs, so a TAP the VMM created (and the
//! host's addresses on it) outlives the guest's reboots.

use std::sync::Arc;

use virtio::net::{Net, Tap};
use virtio::VirtioDevice;

use crate::config::VmConfig;
use crate::Result;

/// The open TAPs, one per `--net`, in order.
pub(crate) struct Taps(Vec<Arc<Tap>>);

impl Taps {
    pub(crate) fn open(config: &VmConfig) -> Result<Taps> {
        let taps = config
            .net
            .iter()
            .map(|net| Tap::open(&net.tap).map(Arc::new))
            .collect::<std::result::Result<_, _>>()?;
        Ok(Taps(taps))
    }

    /// A fresh virtio-net device for each NIC.
    pub(crate) fn devices(&self, config: &VmConfig) -> Vec<Box<dyn VirtioDevice>> {
        config
            .net
            .iter()
            .zip(&self.0)
            .map(|(net, tap)| {
                let device = Net::new(net, tap.clone());
                tracing::info!(
                    tap = tap.name(),
                    mac = virtio::net::config::format_mac(&device.mac()),
                    "virtio-net"
                );
                Box::new(device) as Box<dyn VirtioDevice>
            })
            .collect()
    }
}
