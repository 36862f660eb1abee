//! Host TAPs for the guest's NICs, opened once per run: a reboot in place
//! builds new devices on the same TAPs, so a TAP the VMM created (and the
//! host's addresses on it) outlives the guest's reboots. A random MAC is
//! drawn here too, once, so the guest keeps it across reboots.

use std::sync::Arc;

use virtio::net::{config::random_mac, Net, NetConfig, Tap};
use virtio::rate_limiter::Limits;

use crate::config::VmConfig;
use crate::Result;

/// The open TAPs, one per `--net`, in order, with their NIC's settings.
#[derive(Default)]
pub(crate) struct Taps(Vec<(NetConfig, Arc<Tap>)>);

impl Taps {
    pub(crate) fn open(config: &VmConfig) -> Result<Taps> {
        let taps = config
            .net
            .iter()
            .map(|net| {
                let mut net = net.clone();
                net.mac = Some(net.mac.unwrap_or_else(random_mac));
                Tap::open(&net.tap).map(|tap| (net, Arc::new(tap)))
            })
            .collect::<std::result::Result<_, _>>()?;
        Ok(Taps(taps))
    }

    /// Gives NIC `index` these limits from its next device on.
    pub(crate) fn set_limits(&mut self, index: usize, rx: Limits, tx: Limits) {
        if let Some((net, _)) = self.0.get_mut(index) {
            (net.rx, net.tx) = (rx, tx);
        }
    }

    /// A fresh virtio-net device for each NIC, with its settings.
    pub(crate) fn devices(&self) -> Vec<(&NetConfig, Net)> {
        self.0
            .iter()
            .map(|(net, tap)| {
                let device = Net::new(net, tap.clone());
                tracing::info!(
                    tap = tap.name(),
                    mac = virtio::net::config::format_mac(&device.mac()),
                    "virtio-net"
                );
                (net, device)
            })
            .collect()
    }
}
