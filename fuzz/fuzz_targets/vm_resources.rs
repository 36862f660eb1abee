//! Firecracker's config file and API request bodies from a user (or a
//! client on the API socket): parsing, checking and converting them must
//! never panic, and a configuration Pointsman accepts must show (as
//! `GET /vm/config` does) as one that boots the same guest.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmm::resources::{
    Balloon, BootSource, Drive, MachineConfig, MachineConfigUpdate, NetworkInterface, PartialDrive,
    PartialNetworkInterface, VmResources, Vsock,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(resources) = VmResources::from_json(text) {
        let _ = serde_json::to_string(&resources).expect("a parsed configuration serializes");
        if let Ok(config) = resources.to_vm_config() {
            let shown = VmResources::from_vm_config(&config);
            let again = shown
                .to_vm_config()
                .expect("what a guest's configuration shows boots");
            assert_eq!(again.cmdline, config.cmdline);
            assert_eq!(again.disks, config.disks);
            assert_eq!(again.net, config.net);
            assert_eq!(again.vsock, config.vsock);
            assert_eq!(again.balloon, config.balloon);
            assert_eq!(
                (again.cpus, again.memory, again.rng),
                (config.cpus, config.memory, config.rng)
            );
        }
    }
    // Each request body on its own, as the API gets them.
    if let Ok(update) = serde_json::from_str::<MachineConfigUpdate>(text) {
        let _ = update.apply(&MachineConfig::default());
    }
    if let Ok(drive) = serde_json::from_str::<Drive>(text) {
        let _ = drive.to_disk_config();
        if let Ok(partial) = serde_json::from_str::<PartialDrive>(text) {
            let _ = partial.apply(&drive);
        }
    }
    if let Ok(iface) = serde_json::from_str::<NetworkInterface>(text) {
        let _ = iface.to_net_config();
        if let Ok(partial) = serde_json::from_str::<PartialNetworkInterface>(text) {
            let _ = partial.apply(&iface);
        }
    }
    if let Ok(vsock) = serde_json::from_str::<Vsock>(text) {
        let _ = vsock.to_vsock_config();
    }
    if let Ok(balloon) = serde_json::from_str::<Balloon>(text) {
        let _ = balloon.to_balloon_config();
    }
    if let Ok(boot) = serde_json::from_str::<BootSource>(text) {
        let _ = boot.validate();
    }
});
