//! Extra kernel modules for the test host itself (not its guests), such as
//! `tun` for tests that give a guest a TAP-backed NIC.

use crate::TestHost;

/// What every test host loads: KVM for Pointsman.
const BASE_MODULES: &[&str] = &["kvm-amd"];

impl TestHost {
    /// Also loads `modules` (file names without `.ko`; dependencies are
    /// added) in the test host at boot.
    pub fn with_host_modules(mut self, modules: &[&str]) -> Self {
        self.host_modules
            .extend(modules.iter().map(|m| (*m).to_owned()));
        self
    }

    /// The modules the test host's initramfs carries and loads.
    pub(crate) fn host_module_names(&self) -> Vec<&str> {
        BASE_MODULES
            .iter()
            .copied()
            .chain(self.host_modules.iter().map(String::as_str))
            .collect()
    }
}
