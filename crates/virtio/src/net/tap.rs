//! The host side of a guest NIC: a TAP device with virtio-net headers.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use super::HEADER_LEN;

const TUN_PATH: &str = "/dev/net/tun";

/// Offloads (`TUN_F_*`) the device asks a TAP for: checksums, TCPv4 and
/// TCPv6 segmentation.
pub const TUN_OFFLOADS: u32 = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;

/// TUNSETIFF flags: an Ethernet TAP, no packet-info prefix, a virtio-net
/// header on every frame. The flags fit a `short` (0x5002).
#[allow(clippy::cast_possible_truncation)]
const TAP_FLAGS: libc::c_short =
    (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
/// The header size as TUNSETVNETHDRSZ takes it.
const VNET_HEADER_LEN: libc::c_int = 12;
const _: () = assert!(VNET_HEADER_LEN as usize == HEADER_LEN);

/// Why a TAP could not be opened or set up.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("cannot open {TUN_PATH} for TAP {name} (is the tun module loaded?): {source}")]
    OpenTun {
        name: String,
        source: std::io::Error,
    },
    #[error("cannot attach to TAP {name} (TUNSETIFF): {source}")]
    SetIff {
        name: String,
        source: std::io::Error,
    },
    #[error("cannot set the virtio-net header size of TAP {name}: {source}")]
    VnetHeader {
        name: String,
        source: std::io::Error,
    },
}

/// `struct ifreq` as TUNSETIFF reads it: the name and the flags; the rest
/// of the union is padding.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// An open TAP: non-blocking, one frame per read or write, each with a
/// `virtio_net_hdr_v1` in front.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
    offloads: u32,
}

impl Tap {
    /// Attaches to the TAP `name`, creating it (until the last fd closes)
    /// if it does not exist.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(TUN_PATH)
            .map_err(|source| TapError::OpenTun {
                name: name.to_owned(),
                source,
            })?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: TAP_FLAGS,
            _pad: [0; 22],
        };
        // Names are checked by the config parser; the last byte stays NUL.
        let bytes = name.as_bytes();
        let n = bytes.len().min(libc::IFNAMSIZ - 1);
        req.name[..n].copy_from_slice(&bytes[..n]);
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`; `req` has its
        // layout and size and lives through the call.
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if ret < 0 {
            return Err(TapError::SetIff {
                name: name.to_owned(),
                source: std::io::Error::last_os_error(),
            });
        }
        let header_len = VNET_HEADER_LEN;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, which
        // points at a live local.
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &header_len) };
        if ret < 0 {
            return Err(TapError::VnetHeader {
                name: name.to_owned(),
                source: std::io::Error::last_os_error(),
            });
        }
        let mut tap = Tap {
            file,
            name: name.to_owned(),
            offloads: 0,
        };
        tap.offloads = tap.probe_offloads();
        Ok(tap)
    }

    /// Which of [`TUN_OFFLOADS`] this TAP accepts, leaving all off.
    fn probe_offloads(&self) -> u32 {
        let supported = [TUN_OFFLOADS, libc::TUN_F_CSUM]
            .into_iter()
            .find(|&flags| self.set_offload(flags).is_ok())
            .unwrap_or(0);
        if let Err(e) = self.set_offload(0) {
            tracing::warn!("TAP {}: cannot turn offloads off: {e}", self.name);
        }
        supported
    }

    /// Tells the TAP which offloads the reader (the guest) handles: frames
    /// towards the guest may then have partial checksums or be up to 64 KiB
    /// segmentation frames.
    pub fn set_offload(&self, flags: u32) -> std::io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes its argument by value; no memory is
        // shared with the kernel.
        let ret = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                libc::c_ulong::from(flags),
            )
        };
        if ret < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The `TUN_F_*` offloads the TAP supports.
    pub fn supported_offloads(&self) -> u32 {
        self.offloads
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one frame with its header; `WouldBlock` when none is queued.
    pub fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Writes one frame with its header.
    pub fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
        (&self.file).write(buf)
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_the_kernel_layout() {
        assert_eq!(
            std::mem::size_of::<IfReq>(),
            std::mem::size_of::<libc::ifreq>()
        );
        assert_eq!(std::mem::offset_of!(IfReq, flags), libc::IFNAMSIZ);
    }
}
