//! MSI routes for virtio-pci devices: KVM's GSI routing table, as the
//! MSI-X tables that the guest programs want it.

use std::sync::Arc;

use hypervisor::Vm;
use virtio::transport::pci::msix::{MsiMessage, MsiRoutes};

/// The VM's GSI routing, for the devices' MSI-X tables.
pub(crate) struct KvmMsiRoutes(pub Arc<Vm>);

impl MsiRoutes for KvmMsiRoutes {
    fn set_msi_route(&self, gsi: u32, message: Option<MsiMessage>) -> std::io::Result<()> {
        let result = match message {
            Some(m) => self.0.set_msi_route(gsi, m.address, m.data),
            None => self.0.remove_msi_route(gsi),
        };
        result.map_err(std::io::Error::other)
    }
}
