//! virtio-pci (`--pci`) used by Debian's unmodified cloud kernel inside
//! the test host: the guest finds the host bridge and the devices through
//! ACPI and PCI configuration space, and takes MSI-X interrupts.

mod common;

use std::path::Path;

use common::linux::{guest_initrd, test_host, value, CMDLINE};
use common::Scratch;
use testhost::{linux_guest_initramfs, TestHost};

const MODULES: &[&str] = &["virtio_pci", "virtio_blk", "virtio_rng"];

const GUEST: &str = r#"
for i in $(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.1; done
for d in /sys/bus/pci/devices/*; do
    echo "@@pci $(basename $d) $(cat $d/vendor):$(cat $d/device) $(cat $d/class)"
done
echo "@@drivers $(ls /sys/bus/virtio/drivers/virtio_blk | grep -c virtio) $(ls /sys/bus/virtio/drivers/virtio_rng | grep -c virtio)"
dd if=/dev/urandom of=/tmp/data bs=64k count=64 2>/dev/null
dd if=/tmp/data of=/dev/vda bs=64k 2>/dev/null
sync
echo 3 > /proc/sys/vm/drop_caches
echo "@@written $(md5sum < /tmp/data | cut -c1-32)"
echo "@@read $(dd if=/dev/vda bs=64k count=64 2>/dev/null | md5sum | cut -c1-32)"
echo "@@rng-bytes $(dd if=/dev/hwrng bs=512 count=4 2>/dev/null | wc -c)"
echo "@@msi-lines $(grep PCI-MSI /proc/interrupts | grep -c virtio)"
echo "@@msix-requests $(grep 'virtio[0-9]*-req' /proc/interrupts | awk '{ s = 0; for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i; else break; print s }')"
echo "@@intx $(grep -c IO-APIC.*virtio /proc/interrupts)"
grep virtio /proc/interrupts | sed 's/^/@@irq /' 
poweroff -f
"#;

/// Runs `script` (one `run_vm`) in the test host with the guest kernel and
/// `initrd`; returns the console once that VM ended with status 0.
fn run_one_vm(host: &TestHost, kernel: &Path, initrd: &Path, script: &str) -> String {
    let run = host
        .run(
            &[("guest/vmlinuz", kernel), ("guest/initrd.cpio", initrd)],
            script,
        )
        .expect("run the test host");
    let console = run.console.clone();
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{console}");
    assert_eq!(vms[0].1, 0, "{console}");
    console
}

#[test]
fn guest_uses_disk_and_rng_over_pci_with_msix() {
    let host = test_host();
    let dir = Scratch::new("pci");
    let initrd = guest_initrd(&host, &dir, "guest.cpio", MODULES, GUEST);
    let kernel = host.assets().cloud.vmlinuz.clone();
    let script = format!(
        "dd if=/dev/zero of=/tmp/disk.img bs=1M count=16 2>/dev/null\n\
         run_vm --kernel /guest/vmlinuz --initrd /guest/initrd.cpio --cmdline '{CMDLINE}' \
         --pci --rng --disk path=/tmp/disk.img\n\
         echo \"@@host-sum $(head -c 4194304 /tmp/disk.img | md5sum | cut -c1-32)\"\n"
    );
    let console = &run_one_vm(&host, &kernel, &initrd, &script);

    let functions: Vec<&str> = console
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("@@pci "))
        .collect();
    assert!(
        functions
            .iter()
            .any(|f| f.starts_with("0000:00:00.0") && f.ends_with("0x060000")),
        "a host bridge at 00:00.0: {functions:?}\n{console}"
    );
    // The rng comes before the disk: 0x1044 (type 4), then 0x1042 (type 2).
    assert!(
        functions.iter().any(|f| f.contains("0x1af4:0x1044")),
        "{functions:?}"
    );
    assert!(
        functions.iter().any(|f| f.contains("0x1af4:0x1042")),
        "{functions:?}"
    );
    assert_eq!(value(console, "drivers"), Some("1 1"), "{console}");

    let written = value(console, "written").expect("the guest wrote");
    assert_eq!(value(console, "read"), Some(written), "{console}");
    assert_eq!(value(console, "host-sum"), Some(written), "{console}");
    assert_eq!(value(console, "rng-bytes"), Some("2048"), "{console}");

    // Each queue and each device's configuration changes have an MSI-X
    // vector of their own (the devices offer no MSI and no INTx; Linux
    // labels both kinds "PCI-MSI"), and the disk's requests were answered
    // through its vector.
    assert_eq!(value(console, "msi-lines"), Some("4"), "{console}");
    assert_eq!(value(console, "intx"), Some("0"), "{console}");
    let requests: u64 = value(console, "msix-requests")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(requests > 0, "disk interrupts through MSI-X\n{console}");
}

/// The balloon's queues and configuration space over PCI: the guest reads
/// its target and inflates to it (MemTotal falls by the balloon's size).
#[test]
fn balloon_inflates_over_pci() {
    let host = test_host();
    let dir = Scratch::new("pci-balloon");
    let guest = r#"
total() { awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo; }
before=$(total)
insmod /balloon/virtio_balloon.ko
for i in $(seq 1 200); do [ $(( before - $(total) )) -ge 60 ] && break; sleep 0.1; done
echo "@@shrunk-by $(( before - $(total) ))"
echo "@@msi-lines $(grep PCI-MSI /proc/interrupts | grep -c virtio)"
poweroff -f
"#;
    // The balloon driver loads only once the guest has its MemTotal.
    let assets = host.assets();
    let ko = assets
        .cloud
        .modules
        .join("drivers/virtio/virtio_balloon.ko");
    let initrd = dir.path().join("guest.cpio");
    linux_guest_initramfs(&assets.busybox, &assets.cloud, &["virtio_pci"], guest)
        .and_then(|mut i| {
            i.file("balloon/virtio_balloon.ko", &ko, 0o644)
                .write(&initrd)
        })
        .expect("build the guest initramfs");
    let kernel = assets.cloud.vmlinuz.clone();
    let script = format!(
        "run_vm --kernel /guest/vmlinuz --initrd /guest/initrd.cpio --cmdline '{CMDLINE}' \
         --memory 256M --pci --balloon size=64M,stats=on\n"
    );
    let console = &run_one_vm(&host, &kernel, &initrd, &script);
    let shrunk: u32 = value(console, "shrunk-by")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        (60..=70).contains(&shrunk),
        "the balloon took its 64 MiB: {shrunk} MiB\n{console}"
    );
    // Inflate, deflate and stats queues and the configuration vector.
    assert_eq!(value(console, "msi-lines"), Some("4"), "{console}");
}
