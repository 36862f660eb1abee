use super::*;
use crate::resources::HugePagesConfig;

/// A config file using every section Pointsman supports.
const FULL: &str = r#"{
  "boot-source": {
    "kernel_image_path": "/images/vmlinux",
    "initrd_path": "/images/initrd",
    "boot_args": "console=ttyS0 reboot=k panic=1"
  },
  "drives": [
    {"drive_id": "scratch", "path_on_host": "/images/scratch.ext4", "is_root_device": false,
     "rate_limiter": {"ops": {"size": 100, "refill_time": 1000}}},
    {"drive_id": "rootfs", "path_on_host": "/images/rootfs.ext4", "is_root_device": true,
     "is_read_only": true}
  ],
  "machine-config": {"vcpu_count": 2, "mem_size_mib": 256, "huge_pages": "2M"},
  "network-interfaces": [
    {"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:ac:10:00:02"}
  ],
  "vsock": {"guest_cid": 3, "uds_path": "/tmp/v.sock"},
  "balloon": {"amount_mib": 64, "deflate_on_oom": true, "stats_polling_interval_s": 1},
  "entropy": {},
  "logger": {"log_path": "/tmp/fc.log", "level": "Debug"},
  "metrics": {"metrics_path": "/tmp/fc.metrics"}
}"#;

#[test]
fn a_full_config_file_becomes_a_vm_config() {
    let resources = VmResources::from_json(FULL).unwrap();
    let config = resources.to_vm_config().unwrap();
    assert!(
        matches!(&config.kernel, KernelSource::File(p) if p.to_str() == Some("/images/vmlinux"))
    );
    assert_eq!(config.initrd, Some(PathBuf::from("/images/initrd")));
    assert_eq!(
        config.cmdline,
        "console=ttyS0 reboot=k panic=1 root=/dev/vda ro"
    );
    assert_eq!((config.cpus, config.memory), (2, 256 << 20));
    assert_eq!(config.huge_pages, HugePages::On);
    assert!(config.rng);
    assert!(!config.no_reboot && !config.pci);
    let disks: Vec<_> = config
        .disks
        .iter()
        .map(|d| d.id.as_deref().unwrap())
        .collect();
    assert_eq!(disks, ["rootfs", "scratch"], "the root drive comes first");
    assert!(config.disks[0].readonly);
    assert_eq!(config.disks[1].ops.as_ref().map(|o| o.size), Some(100));
    assert_eq!(config.net[0].tap, "tap0");
    assert_eq!(config.vsock.as_ref().map(|v| v.cid), Some(3));
    let balloon = config.balloon.as_ref().unwrap();
    assert_eq!(
        (balloon.size, balloon.stats, balloon.deflate_on_oom),
        (64 << 20, true, true)
    );
    assert_eq!(
        resources.logger.as_ref().unwrap().log_path.as_deref(),
        Some("/tmp/fc.log")
    );
    assert_eq!(
        resources.metrics.as_ref().unwrap().metrics_path,
        "/tmp/fc.metrics"
    );
}

#[test]
fn a_minimal_config_file_gets_the_defaults() {
    let resources =
        VmResources::from_json(r#"{"boot-source": {"kernel_image_path": "/k"}}"#).unwrap();
    let config = resources.to_vm_config().unwrap();
    assert_eq!(config.cmdline, DEFAULT_CMDLINE);
    assert_eq!((config.cpus, config.memory), (1, 128 << 20));
    assert_eq!(config.huge_pages, HugePages::HostPolicy);
    assert!(!config.rng && config.balloon.is_none() && config.vsock.is_none());
    assert!(config.disks.is_empty() && config.net.is_empty());
    let root_only = VmResources::from_json(
        r#"{"boot-source": {"kernel_image_path": "/k", "boot_args": ""},
            "drives": [{"drive_id": "r", "path_on_host": "/r", "is_root_device": true,
                        "partuuid": "abcd-01"}]}"#,
    )
    .unwrap();
    assert_eq!(
        root_only.to_vm_config().unwrap().cmdline,
        "root=PARTUUID=abcd-01 rw"
    );
}

#[test]
fn serialization_round_trips() {
    let resources = VmResources::from_json(FULL).unwrap();
    let text = serde_json::to_string(&resources).unwrap();
    assert!(text.contains(r#""boot-source":"#), "{text}");
    assert!(text.contains(r#""machine-config":"#), "{text}");
    assert!(text.contains(r#""network-interfaces":"#), "{text}");
    assert_eq!(VmResources::from_json(&text).unwrap(), resources);
}

#[test]
fn a_command_line_guest_shows_in_the_config_file_format() {
    let config = VmResources::from_json(FULL)
        .unwrap()
        .to_vm_config()
        .unwrap();
    let shown = VmResources::from_vm_config(&config);
    let machine = shown.machine_config.as_ref().unwrap();
    assert_eq!((machine.vcpu_count, machine.mem_size_mib), (2, 256));
    assert_eq!(machine.huge_pages, HugePagesConfig::Hugetlbfs2M);
    assert_eq!(shown.drives[0].drive_id, "rootfs");
    assert_eq!(shown.network_interfaces[0].iface_id, "eth0");
    assert_eq!(shown.entropy, Some(Entropy::default()));
    // Booting what it shows gives the same guest back.
    let again = shown.to_vm_config().unwrap();
    assert_eq!(again.cmdline, config.cmdline);
    assert_eq!(again.disks, config.disks);
    assert_eq!(again.net, config.net);
    assert_eq!(again.vsock, config.vsock);
    assert_eq!(again.balloon, config.balloon);
    assert_eq!(
        (again.cpus, again.memory, again.rng),
        (config.cpus, config.memory, config.rng)
    );

    let demo = VmConfig {
        kernel: KernelSource::Embedded(&[]),
        disks: vec![config.disks[0].clone(), config.disks[0].clone()],
        ..config
    };
    let shown = VmResources::from_vm_config(&demo);
    assert_eq!(
        shown.boot_source.as_ref().unwrap().kernel_image_path,
        EMBEDDED_KERNEL_PATH
    );
    assert_eq!(shown.drives[1].drive_id, "drive1", "ids stay unique");
    shown.validate().unwrap();
}

fn refusal(text: &str) -> String {
    match VmResources::from_json(text) {
        Ok(r) => panic!("{text} was accepted: {r:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn refusals_name_the_problem() {
    let boot = r#""boot-source": {"kernel_image_path": "/k"}"#;
    let cases = [
        ("{", "invalid configuration: EOF"),
        (r#""kernel""#, "invalid configuration: invalid type"),
        (
            r#"{"boot-source": {"kernel_image_path": "/k"}, "cpus": 1}"#,
            "unknown field `cpus`",
        ),
        (
            r#"{"boot-source": {"kernel": "/k"}}"#,
            "unknown field `kernel`",
        ),
        // Firecracker's config file has no serial section either:
        // PUT /serial is a request only.
        (
            &format!(r#"{{{boot}, "serial": {{"serial_out_path": "/tmp/s"}}}}"#),
            "unknown field `serial`",
        ),
        (
            &format!(r#"{{{boot}, "machine-config": {{"vcpu_count": 0, "mem_size_mib": 128}}}}"#),
            "invalid vcpu_count 0",
        ),
        (
            &format!(
                r#"{{{boot}, "machine-config": {{"vcpu_count": 1, "mem_size_mib": 128, "cpu_template": "C3"}}}}"#
            ),
            "cpu_template \"C3\" is not supported",
        ),
        (
            &format!(r#"{{{boot}, "mmds-config": {{"network_interfaces": ["eth0"]}}}}"#),
            "mmds-config (the microVM metadata service) is not supported",
        ),
        (
            &format!(r#"{{{boot}, "cpu-config": "/t.json"}}"#),
            "cpu-config",
        ),
        (
            &format!(r#"{{{boot}, "memory-hotplug": {{}}}}"#),
            "memory-hotplug is not supported",
        ),
        (&format!(r#"{{{boot}, "pmem": [{{"id": "p"}}]}}"#), "pmem"),
        (
            &format!(
                r#"{{{boot}, "network-interfaces": [{{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "nonsense"}}]}}"#
            ),
            "invalid guest_mac \"nonsense\"",
        ),
        (
            &format!(
                r#"{{{boot}, "network-interfaces": [{{"iface_id": "a", "host_dev_name": "tap0"}}, {{"iface_id": "a", "host_dev_name": "tap1"}}]}}"#
            ),
            "network interface id \"a\" is given twice",
        ),
        (
            &format!(
                r#"{{{boot}, "network-interfaces": [{{"iface_id": "a", "host_dev_name": "tap0"}}, {{"iface_id": "b", "host_dev_name": "tap0"}}]}}"#
            ),
            "host_dev_name \"tap0\" is given to two",
        ),
        (
            &format!(
                r#"{{{boot}, "drives": [{{"drive_id": "a", "path_on_host": "/a", "is_root_device": true}}, {{"drive_id": "b", "path_on_host": "/b", "is_root_device": true}}]}}"#
            ),
            "drive b: a root block device already exists",
        ),
        (
            &format!(
                r#"{{{boot}, "drives": [{{"drive_id": "a", "path_on_host": "/a", "is_root_device": false}}, {{"drive_id": "a", "path_on_host": "/b", "is_root_device": false}}]}}"#
            ),
            "drive id \"a\" is given twice",
        ),
        (
            &format!(
                r#"{{{boot}, "drives": [{{"drive_id": "a", "socket": "/vhost.sock", "is_root_device": false}}]}}"#
            ),
            "vhost-user",
        ),
        (
            &format!(r#"{{{boot}, "balloon": {{"amount_mib": 200, "deflate_on_oom": false}}}}"#),
            "balloon amount_mib 200 is more than the guest's 128 MiB",
        ),
        (
            &format!(
                r#"{{{boot}, "balloon": {{"amount_mib": 1, "deflate_on_oom": false, "free_page_hinting": true}}}}"#
            ),
            "free_page_hinting is not supported",
        ),
        (
            &format!(r#"{{{boot}, "vsock": {{"guest_cid": 1, "uds_path": "/v"}}}}"#),
            "invalid guest_cid 1",
        ),
        (
            &format!(r#"{{{boot}, "logger": {{"level": "Chatty"}}}}"#),
            "invalid logger level \"Chatty\"",
        ),
        (
            &format!(r#"{{{boot}, "metrics": {{"metrics_path": ""}}}}"#),
            "metrics_path is empty",
        ),
        (
            r#"{"boot-source": {"kernel_image_path": ""}}"#,
            "kernel_image_path is empty",
        ),
    ];
    for (text, expected) in cases {
        let message = refusal(text);
        assert!(
            message.contains(expected),
            "{text}: {message:?} lacks {expected:?}"
        );
        assert_eq!(message.lines().count(), 1, "{message}");
    }
    let no_boot = VmResources::from_json("{}").unwrap();
    assert_eq!(
        no_boot.to_vm_config().unwrap_err(),
        ResourceError::NoBootSource
    );
}

#[test]
fn an_empty_pmem_list_is_no_pmem() {
    VmResources::from_json(r#"{"boot-source": {"kernel_image_path": "/k"}, "pmem": []}"#).unwrap();
}

#[test]
fn missing_files_are_named() {
    let resources = VmResources::from_json(
        r#"{"boot-source": {"kernel_image_path": "/proc/self/exe"},
            "drives": [{"drive_id": "d", "path_on_host": "/nonexistent/d.img",
                        "is_root_device": false}]}"#,
    )
    .unwrap();
    let e = resources.check_files().unwrap_err().to_string();
    assert!(
        e.starts_with("cannot open path_on_host /nonexistent/d.img:"),
        "{e}"
    );
}

#[test]
fn put_replaces_by_id_and_changes_nothing_on_error() {
    let mut resources = VmResources::default();
    let drive = |id: &str, root| Drive {
        drive_id: id.into(),
        path_on_host: Some(format!("/{id}")),
        is_root_device: root,
        ..Drive::default()
    };
    resources.put_drive(drive("a", true)).unwrap();
    resources.put_drive(drive("b", false)).unwrap();
    resources.put_drive(drive("b", false)).unwrap();
    assert_eq!(resources.drives.len(), 2);
    let before = resources.clone();
    assert!(
        resources.put_drive(drive("c", true)).is_err(),
        "second root"
    );
    assert!(resources.put_drive(drive("c d", false)).is_err());
    assert_eq!(resources, before);
    assert_eq!(resources.drive("b").map(|d| d.drive_id.as_str()), Some("b"));
    let iface = |id: &str, tap: &str| NetworkInterface {
        iface_id: id.into(),
        host_dev_name: tap.into(),
        ..NetworkInterface::default()
    };
    resources
        .put_network_interface(iface("eth0", "tap0"))
        .unwrap();
    resources
        .put_network_interface(iface("eth0", "tap1"))
        .unwrap();
    assert_eq!(resources.network_interfaces.len(), 1);
    assert!(resources
        .put_network_interface(iface("eth1", "tap1"))
        .is_err());
}
