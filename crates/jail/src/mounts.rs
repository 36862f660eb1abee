//! The VMM's root: a mount namespace of its own in which the VM's files
//! are bind-mounted into an otherwise empty directory, device nodes are
//! made on a small tmpfs, and the process pivots into it, leaving the
//! host's tree unreachable. The mounts live and die with the namespace:
//! nothing is mounted on the host.

use std::fs::File;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chdir, chown, pivot_root, Gid, Uid};

use crate::{JailError, VmFile};

/// Joins the network namespace at `path` (`ip netns add` makes them).
pub(crate) fn join_netns(path: &Path) -> Result<(), JailError> {
    let ns =
        File::open(path).map_err(|e| JailError::host("open the network namespace", path, e))?;
    setns(ns, CloneFlags::CLONE_NEWNET).map_err(JailError::system("join the network namespace"))
}

/// A device node the VMM may need: `/dev/kvm` for the VM, `/dev/net/tun`
/// for TAPs, `/dev/null` for a daemon's standard streams.
struct DeviceNode {
    path: &'static str,
    major: u64,
    minor: u64,
    mode: u32,
    /// Given to the VMM's user (the others are open to all).
    owned: bool,
}

const DEVICES: [DeviceNode; 3] = [
    DeviceNode {
        path: "dev/kvm",
        major: 10,
        minor: 232,
        mode: 0o660,
        owned: true,
    },
    DeviceNode {
        path: "dev/net/tun",
        major: 10,
        minor: 200,
        mode: 0o660,
        owned: true,
    },
    DeviceNode {
        path: "dev/null",
        major: 1,
        minor: 3,
        mode: 0o666,
        owned: false,
    },
];

/// In a new mount namespace: `root` with `files` and the device nodes,
/// owned by `uid`:`gid` (where the VMM creates its sockets), and a mount
/// point of its own (which `pivot_root` needs).
pub(crate) fn build_root(
    root: &Path,
    files: &[VmFile],
    uid: u32,
    gid: u32,
) -> Result<(), JailError> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(JailError::system("make a mount namespace"))?;
    // Nothing mounted from here on reaches the host's namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(JailError::system("make the mounts private"))?;
    for file in files {
        if let VmFile::Input { host, writable, .. } = file {
            bind_file(host, &root.join(file.name()), *writable)?;
        }
    }
    make_devices(root, uid, gid)?;
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    chown(root, Some(uid), Some(gid))
        .map_err(JailError::system("give the root to the VMM's user"))?;
    mount(
        Some(root),
        root,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(JailError::system("make the root a mount point"))
}

/// `host` at `at` (an empty file made as the mount point), read-only
/// unless `writable`.
fn bind_file(host: &Path, at: &Path, writable: bool) -> Result<(), JailError> {
    File::create(at).map_err(|e| JailError::host("create", at, e))?;
    let bind = |flags| {
        mount(Some(host), at, None::<&str>, flags, None::<&str>)
            .map_err(|e| JailError::host("bind-mount into the jail", host, e.into()))
    };
    bind(MsFlags::MS_BIND)?;
    if !writable {
        // A bind mount takes its flags only on a remount.
        bind(MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID)?;
    }
    Ok(())
}

/// A tmpfs at `root/dev` with the device nodes: a tmpfs of the jail's own
/// allows device nodes even where the chroot base is mounted `nodev`.
fn make_devices(root: &Path, uid: u32, gid: u32) -> Result<(), JailError> {
    let dev = root.join("dev");
    std::fs::create_dir(&dev).map_err(|e| JailError::host("create", &dev, e))?;
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=64k"),
    )
    .map_err(JailError::system("mount the jail's /dev"))?;
    let net = dev.join("net");
    std::fs::create_dir(&net).map_err(|e| JailError::host("create", &net, e))?;
    for node in DEVICES {
        let path = root.join(node.path);
        mknod(
            &path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(node.mode),
            makedev(node.major, node.minor),
        )
        .map_err(|e| JailError::host("create the device", &path, e.into()))?;
        // mknod's mode is cut by the umask: set it whole.
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            &path,
            Mode::from_bits_truncate(node.mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| JailError::host("set the mode of", &path, e.into()))?;
        if node.owned {
            chown(&path, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                .map_err(|e| JailError::host("give the VMM's user", &path, e.into()))?;
        }
    }
    Ok(())
}

/// Makes `root` this process's `/`, with the old root detached.
pub(crate) fn pivot_into(root: &Path) -> Result<(), JailError> {
    chdir(root).map_err(JailError::system("enter the root"))?;
    // The old root goes under the new one, then is detached: no
    // directory for it is needed.
    match pivot_root(".", ".") {
        Ok(()) => {
            umount2(".", MntFlags::MNT_DETACH)
                .map_err(JailError::system("detach the host's root"))?;
        }
        // A host running from its initramfs (rootfs) cannot pivot its
        // root away: the root mount is moved over `/` instead, and the
        // process chroots into it. The VMM keeps no capability with which
        // to leave a chroot.
        Err(nix::Error::EINVAL) => {
            mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
                .map_err(JailError::system("move the root over /"))?;
            nix::unistd::chroot(".").map_err(JailError::system("chroot into the root"))?;
        }
        Err(e) => return Err(JailError::system("pivot into the root")(e)),
    }
    chdir("/").map_err(JailError::system("enter the root"))
}
