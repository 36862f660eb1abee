//! virtio-blk used by Debian's unmodified cloud kernel, inside the test
//! host (see the testhost crate). Disk images live in the test host's RAM.

mod common;

use std::path::{Path, PathBuf};

use common::linux::{guest_initrd, test_host, value, CMDLINE};
use common::Scratch;
use testhost::HostRun;

const MODULES: &[&str] = &["virtio_mmio", "virtio_blk"];

/// Guest helpers: `wait_dev DEV` until the disk shows up; `$phase` is the
/// `phase=` word of the kernel command line, so one initramfs can do
/// different things on different boots.
const GUEST_PRELUDE: &str = r#"
wait_dev() {
    for i in $(seq 1 100); do [ -b "$1" ] && return 0; sleep 0.1; done
    echo "@@missing $1"; return 1
}
phase=$(sed -n 's/.*phase=\([a-z0-9-]*\).*/\1/p' /proc/cmdline)
"#;

/// Host helpers: a tmpfs for the images, and the VM arguments every run
/// shares.
const HOST_PRELUDE: &str = r#"
mkdir -p /disks && mount -t tmpfs -o size=3G tmpfs /disks
VM="--kernel /guest/vmlinuz --initrd /guest/initrd.cpio"
"#;

/// Boots the test host with a guest initramfs running `guest` and the
/// host script `script` (which calls `run_vm $VM --cmdline ...`).
fn run(guest: &str, script: &str, extra: &[(&str, &Path)]) -> HostRun {
    let host = test_host();
    let dir = Scratch::new("block");
    let initrd = guest_initrd(
        &host,
        &dir,
        "guest.cpio",
        MODULES,
        &format!("{GUEST_PRELUDE}{guest}"),
    );
    let kernel = host.assets().cloud.vmlinuz.clone();
    let mut files: Vec<(&str, &Path)> =
        vec![("guest/vmlinuz", &kernel), ("guest/initrd.cpio", &initrd)];
    files.extend_from_slice(extra);
    host.run(&files, &format!("{HOST_PRELUDE}{script}"))
        .expect("run the test host")
}

/// `run_vm` with the shared arguments, the command line plus `phase=`,
/// and `args`.
fn vm(phase: &str, args: &str) -> String {
    format!("run_vm $VM --cmdline '{CMDLINE} phase={phase}' {args}\n")
}

fn number(console: &str, key: &str) -> f64 {
    value(console, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number for {key}:\n{console}"))
}

/// Makes a file system on /dev/vda and writes files (phase `write`), or
/// reads them back and trims the space of a deleted one (phase `read`).
const FILES_GUEST: &str = r#"
wait_dev /dev/vda
mkdir -p /mnt
sums() { (cd /mnt && md5sum big small dir/numbers | md5sum | cut -d' ' -f1); }
case $phase in
write)
    mke2fs -F /dev/vda >/dev/null 2>&1 || echo "@@mkfs-failed"
    mount -t ext4 /dev/vda /mnt || echo "@@mount-failed"
    dd if=/dev/urandom of=/mnt/big bs=1M count=32 2>/dev/null
    echo "written on the first boot" > /mnt/small
    mkdir /mnt/dir && seq 1 20000 > /mnt/dir/numbers
    echo "@@sums $(sums)"
    sync
    ;;
read)
    mount -t ext4 /dev/vda /mnt || echo "@@mount-failed"
    echo "@@sums $(sums)"
    echo "@@small $(cat /mnt/small)"
    rm /mnt/big
    sync
    fstrim /mnt && echo "@@trimmed yes"
    sync
    ;;
esac
poweroff -f
"#;

/// Checks the two boots of [`FILES_GUEST`]: both clean, the files the same.
fn assert_files_survived(run: &HostRun) -> Vec<(String, i32)> {
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 2, "{}", run.console);
    for (console, status) in &vms {
        assert_eq!(*status, 0, "{console}");
        assert!(!console.contains("@@mkfs-failed"), "{console}");
        assert!(!console.contains("@@mount-failed"), "{console}");
    }
    let written = value(&vms[0].0, "sums").expect("sums on the first boot");
    assert_eq!(written.len(), 32, "{}", vms[0].0);
    assert_eq!(value(&vms[1].0, "sums"), Some(written), "{}", vms[1].0);
    assert_eq!(value(&vms[1].0, "small"), Some("written on the first boot"));
    vms
}

#[test]
fn files_written_and_synced_are_there_after_power_off_and_discard_frees_space() {
    let script = format!(
        "truncate -s 256M /disks/disk.img\n\
         {}echo \"@@host-kib-written $(du -k /disks/disk.img | cut -f1)\"\n\
         {}echo \"@@host-kib-trimmed $(du -k /disks/disk.img | cut -f1)\"\n",
        vm("write", "--disk path=/disks/disk.img"),
        vm("read", "--disk path=/disks/disk.img"),
    );
    let run = run(FILES_GUEST, &script, &[]);
    let vms = assert_files_survived(&run);
    assert_eq!(value(&vms[1].0, "trimmed"), Some("yes"), "{}", vms[1].0);
    let written = number(&run.console, "host-kib-written");
    let trimmed = number(&run.console, "host-kib-trimmed");
    eprintln!("image allocation: {written} KiB written, {trimmed} KiB after fstrim");
    assert!(written >= 32.0 * 1024.0, "{written} KiB");
    assert!(
        trimmed <= written - 24.0 * 1024.0,
        "the 32 MiB file's blocks were punched out: {written} -> {trimmed} KiB"
    );
}

#[test]
fn read_only_disk_refuses_writes_and_the_vmm_carries_on() {
    let guest = r#"
wait_dev /dev/vda
echo "@@ro $(cat /sys/block/vda/ro)"
echo "@@head $(dd if=/dev/vda bs=24 count=1 2>/dev/null)"
if dd if=/dev/zero of=/dev/vda bs=4096 count=1 conv=fsync 2>/tmp/err; then
    echo "@@write succeeded"
else
    echo "@@write-error $(head -n 1 /tmp/err)"
fi
mkdir -p /mnt
if mount -t ext4 /dev/vda /mnt 2>/dev/null; then echo "@@mounted"; fi
echo "@@still-running yes"
poweroff -f
"#;
    let script = format!(
        "truncate -s 64M /disks/ro.img\n\
         printf 'pointsman read-only disk' | dd of=/disks/ro.img conv=notrunc 2>/dev/null\n\
         echo \"@@host-before $(md5sum < /disks/ro.img | cut -d' ' -f1)\"\n\
         {}echo \"@@host-after $(md5sum < /disks/ro.img | cut -d' ' -f1)\"\n",
        vm("ro", "--disk path=/disks/ro.img,readonly=on"),
    );
    let run = run(guest, &script, &[]);
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{}", run.console);
    let (console, status) = &vms[0];
    assert_eq!(*status, 0, "{console}");
    assert_eq!(value(console, "ro"), Some("1"), "{console}");
    assert_eq!(
        value(console, "head"),
        Some("pointsman read-only disk"),
        "{console}"
    );
    let error = value(console, "write-error").unwrap_or_else(|| panic!("{console}"));
    eprintln!("guest write error: {error}");
    assert_eq!(value(console, "still-running"), Some("yes"), "{console}");
    assert_eq!(
        value(&run.console, "host-before"),
        value(&run.console, "host-after"),
        "the image is unchanged"
    );
}

#[test]
fn two_disks_with_their_sizes_and_serial_numbers() {
    let guest = r#"
wait_dev /dev/vda && wait_dev /dev/vdb
for d in /sys/block/vd*; do
    echo "@@disk $(basename $d) $(cat $d/size) $(cat $d/serial)"
done
poweroff -f
"#;
    let script = format!(
        "truncate -s 32M /disks/a.img\ntruncate -s 48M /disks/b.img\n{}",
        vm(
            "two",
            "--disk path=/disks/a.img,id=alpha-disk --disk path=/disks/b.img"
        ),
    );
    let run = run(guest, &script, &[]);
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{}", run.console);
    let (console, status) = &vms[0];
    assert_eq!(*status, 0, "{console}");
    let disks: Vec<Vec<&str>> = console
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("@@disk "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    // In the order of the options: /sys/block lists them sorted by name.
    assert_eq!(disks.len(), 2, "{console}");
    assert_eq!(disks[0], ["vda", "65536", "alpha-disk"], "{console}");
    assert_eq!(disks[1][..2], ["vdb", "98304"], "{console}");
    assert!(
        disks[1].get(2).is_some_and(|s| s.starts_with("ptsm-")),
        "a default serial: {console}"
    );
}

#[test]
fn file_larger_than_guest_ram_copies_intact() {
    let guest = r#"
wait_dev /dev/vda && wait_dev /dev/vdb
echo "@@guest-src $(md5sum < /dev/vda | cut -d' ' -f1)"
dd if=/dev/vda of=/dev/vdb bs=1M conv=fsync 2>/dev/null && echo "@@copied yes"
poweroff -f
"#;
    let script = format!(
        "dd if=/dev/urandom of=/disks/src.img bs=1M count=300 2>/dev/null\n\
         truncate -s 300M /disks/dst.img\n\
         echo \"@@host-src $(md5sum < /disks/src.img | cut -d' ' -f1)\"\n\
         start=$(cut -d' ' -f1 /proc/uptime)\n\
         {}echo \"@@vm-seconds $(awk -v s=$start '{{print $1 - s}}' /proc/uptime)\"\n\
         echo \"@@host-dst $(md5sum < /disks/dst.img | cut -d' ' -f1)\"\n",
        // The source's completions are moderated (the default), the
        // destination's each interrupt at once.
        vm(
            "big",
            "--memory 128M --disk path=/disks/src.img,readonly=on \
             --disk path=/disks/dst.img,moderation=off"
        ),
    );
    let run = run(guest, &script, &[]);
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{}", run.console);
    let (console, status) = &vms[0];
    assert_eq!(*status, 0, "{console}");
    let src = value(&run.console, "host-src").expect("host checksum");
    assert_eq!(src.len(), 32);
    assert_eq!(value(console, "guest-src"), Some(src), "{console}");
    assert_eq!(value(console, "copied"), Some("yes"), "{console}");
    assert_eq!(value(&run.console, "host-dst"), Some(src));
    eprintln!(
        "300 MiB read twice and written once in a 128 MiB guest: {} s for the whole VM run",
        number(&run.console, "vm-seconds")
    );
}

#[test]
fn rate_limited_disks_are_slower_and_finish() {
    let guest = r#"
wait_dev /dev/vda && wait_dev /dev/vdb && wait_dev /dev/vdc
took() {
    s=$(cut -d' ' -f1 /proc/uptime)
    "$@" >/dev/null 2>&1 || echo "@@failed $*"
    awk -v s=$s '{print $1 - s}' /proc/uptime
}
echo "@@plain-bytes $(took dd if=/dev/vda of=/dev/null bs=1M count=16 iflag=direct)"
echo "@@limited-bytes $(took dd if=/dev/vdb of=/dev/null bs=1M count=16 iflag=direct)"
echo "@@plain-ops $(took dd if=/dev/vda of=/dev/null bs=4k count=300 iflag=direct)"
echo "@@limited-ops $(took dd if=/dev/vdc of=/dev/null bs=4k count=300 iflag=direct)"
poweroff -f
"#;
    let script = format!(
        "for d in a b c; do truncate -s 64M /disks/$d.img; done\n{}",
        vm(
            "limits",
            "--disk path=/disks/a.img --disk path=/disks/b.img,bandwidth=4M \
             --disk path=/disks/c.img,ops=100/1s"
        ),
    );
    let run = run(guest, &script, &[]);
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{}", run.console);
    let (console, status) = &vms[0];
    assert_eq!(*status, 0, "{console}");
    assert!(!console.contains("@@failed"), "{console}");
    let plain_bytes = number(console, "plain-bytes");
    let limited_bytes = number(console, "limited-bytes");
    let plain_ops = number(console, "plain-ops");
    let limited_ops = number(console, "limited-ops");
    eprintln!(
        "16 MiB: {plain_bytes} s unlimited, {limited_bytes} s at 4 MiB/s; \
         300 x 4 KiB: {plain_ops} s unlimited, {limited_ops} s at 100 ops/s"
    );
    // Lower bounds only, which the limiter guarantees however slow the
    // machine: a full bucket, then the rest at the refill rate.
    assert!(
        limited_bytes >= 2.5,
        "12 MiB past the bucket at 4 MiB/s: {limited_bytes} s"
    );
    assert!(
        limited_ops >= 1.5,
        "200 requests past the bucket at 100/s: {limited_ops} s"
    );
    assert!(limited_bytes > plain_bytes && limited_ops > plain_ops);
}

/// The cloud kernel's module for RAM block devices, for an ext4 file
/// system in the test host: tmpfs has no O_DIRECT.
fn brd_module(host_modules: &Path) -> PathBuf {
    host_modules.join("drivers/block/brd.ko")
}

#[test]
fn direct_io_disk_keeps_files_and_tmpfs_refuses_it() {
    let modules = test_host().assets().cloud.modules.clone();
    let brd = brd_module(&modules);
    let script = format!(
        "truncate -s 64M /disks/tmpfs.img\n\
         pointsman run --disk path=/disks/tmpfs.img,direct=on 2>/tmp/err; echo \"@@tmpfs-status $?\"\n\
         echo \"@@tmpfs-error $(cat /tmp/err)\"\n\
         insmod /extra/brd.ko rd_nr=1 rd_size=262144 || echo '@@insmod-failed'\n\
         mke2fs -F /dev/ram0 >/dev/null 2>&1; mkdir -p /direct\n\
         mount -t ext4 /dev/ram0 /direct || echo '@@host-mount-failed'\n\
         truncate -s 128M /direct/disk.img\n\
         {}{}",
        vm("write", "--disk path=/direct/disk.img,direct=on"),
        vm("read", "--disk path=/direct/disk.img,direct=on"),
    );
    let run = run(FILES_GUEST, &script, &[("extra/brd.ko", &brd)]);
    assert!(!run.console.contains("@@insmod-failed"), "{}", run.console);
    assert!(
        !run.console.contains("@@host-mount-failed"),
        "{}",
        run.console
    );
    assert_eq!(
        value(&run.console, "tmpfs-status"),
        Some("2"),
        "{}",
        run.console
    );
    assert!(
        value(&run.console, "tmpfs-error").is_some_and(|e| e.contains("O_DIRECT")),
        "{}",
        run.console
    );
    assert_files_survived(&run);
}
