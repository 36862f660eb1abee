//! TAPs for a jailed VMM. The VMM keeps no capability, so it cannot make
//! a TAP (nor attach to one it does not own): the jailer, still root and
//! in the VMM's network namespace, makes each TAP the VM's arguments
//! name persistent and owned by the VMM's user, as `ip tuntap add ...
//! user UID` would. A TAP made so stays after the VMM ends, as one made
//! with `ip tuntap` does.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::JailError;

/// TUNSETIFF's flags as the VMM opens its TAPs (`virtio::net::Tap`);
/// they fit a `short` (0x5002).
#[allow(clippy::cast_possible_truncation)]
const FLAGS: libc::c_short =
    (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;

/// `struct ifreq` as TUNSETIFF reads it: the name and the flags.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _rest: [u8; 22],
}

/// Whether `name` can name a network interface.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// Makes (or takes) TAP `name`, persistent and owned by `uid`:`gid`.
pub(crate) fn give_tap(name: &str, uid: u32, gid: u32) -> Result<(), JailError> {
    let path = Path::new("/dev/net/tun");
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| JailError::host("open", path, e))?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: FLAGS,
        _rest: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    let fd = tun.as_raw_fd();
    let failed = |what| {
        let e = std::io::Error::last_os_error();
        JailError::Host {
            what,
            path: Path::new(name).to_owned(),
            source: e,
        }
    };
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `req`
    // lays out and outlives the call.
    if unsafe { libc::ioctl(fd, libc::TUNSETIFF, &mut req) } < 0 {
        return Err(failed("make or attach to the TAP"));
    }
    // SAFETY: these take their argument by value; no memory is shared.
    unsafe {
        if libc::ioctl(fd, libc::TUNSETOWNER, libc::c_ulong::from(uid)) < 0 {
            return Err(failed("give the VMM's user the TAP"));
        }
        if libc::ioctl(fd, libc::TUNSETGROUP, libc::c_ulong::from(gid)) < 0 {
            return Err(failed("give the VMM's group the TAP"));
        }
        if libc::ioctl(fd, libc::TUNSETPERSIST, 1 as libc::c_ulong) < 0 {
            return Err(failed("keep the TAP"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked() {
        assert!(valid_name("tap0"));
        assert!(valid_name("fc-tap-123456"));
        for bad in ["", "a/b", "a b", "x".repeat(16).as_str(), "..", "a:1"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
