//! Virtio devices used by Debian's unmodified cloud kernel, inside the
//! test host (see the testhost crate).

mod common;

use common::linux::{guest_initrd, test_host, value, CMDLINE};
use common::Scratch;

/// Boots the cloud kernel with `args` and an init running `body`; returns
/// the guest's console and Pointsman's exit status.
fn boot(modules: &[&str], body: &str, args: &str) -> (String, i32) {
    let host = test_host();
    let dir = Scratch::new("virtio");
    let initrd = guest_initrd(&host, &dir, "guest.cpio", modules, body);
    let kernel = host.assets().cloud.vmlinuz.clone();
    let script = format!(
        "run_vm --kernel /guest/vmlinuz --initrd /guest/initrd.cpio --cmdline '{CMDLINE}' {args}\n"
    );
    let run = host
        .run(
            &[("guest/vmlinuz", &kernel), ("guest/initrd.cpio", &initrd)],
            &script,
        )
        .expect("run the test host");
    let mut vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{}", run.console);
    vms.remove(0)
}

#[test]
fn guest_reads_entropy_from_virtio_rng() {
    let body = r#"
echo "@@rng-current $(cat /sys/class/misc/hw_random/rng_current)"
echo "@@rng-bytes $(dd if=/dev/hwrng bs=512 count=4 2>/dev/null | wc -c)"
echo "@@rng-distinct $(dd if=/dev/hwrng bs=256 count=1 2>/dev/null | od -An -v -tx1 | tr -s ' ' '\n' | sort -u | grep -c .)"
poweroff -f
"#;
    let (console, status) = boot(&["virtio_mmio", "virtio_rng"], body, "--rng");
    assert_eq!(status, 0, "{console}");
    assert_eq!(
        value(&console, "rng-current"),
        Some("virtio_rng.0"),
        "{console}"
    );
    assert_eq!(value(&console, "rng-bytes"), Some("2048"), "{console}");
    let distinct: u32 = value(&console, "rng-distinct")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        distinct > 100,
        "256 random bytes take many values: {distinct}\n{console}"
    );
}
