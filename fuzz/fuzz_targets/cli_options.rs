//! The command line's device and resource options on any text: `--memory`,
//! `--disk`, `--net`, `--vsock`, `--balloon`, and the rate limits and MAC
//! addresses inside them. A bad option must end in an error whose message
//! formats; an accepted one must hold what the VMM relies on later.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtio::net::config::{format_mac, parse_mac, MAX_TAP_NAME};
use virtio::rate_limiter::TokenBucketConfig;
use vmm::{BalloonConfig, DiskConfig, NetConfig, VsockConfig};

/// Guest CIDs run from 3 to `u32::MAX - 1` (vsock's `config.rs`).
const GUEST_CIDS: std::ops::RangeInclusive<u64> = 3..=u32::MAX as u64 - 1;
/// Longest vsock socket path, leaving room for a `_PORT` suffix.
const MAX_SOCKET_PATH: usize = 107 - 11;

fn check_limit(limit: Option<&TokenBucketConfig>) {
    if let Some(b) = limit {
        assert!(b.size > 0 && !b.refill.is_zero(), "{b:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();

    if let Err(e) = vmm::parse_memory_option(text) {
        drop(e.to_string());
    }
    match DiskConfig::parse(text) {
        Ok(disk) => {
            assert!(disk.validate().is_ok(), "{disk:?}");
            check_limit(disk.bandwidth.as_ref());
            check_limit(disk.ops.as_ref());
        }
        Err(e) => drop(e.to_string()),
    }
    match NetConfig::parse(text) {
        Ok(net) => {
            assert!(
                !net.tap.is_empty() && net.tap.len() <= MAX_TAP_NAME,
                "{net:?}"
            );
            if let Some(mac) = net.mac {
                assert_eq!(parse_mac(&format_mac(&mac)).ok(), Some(mac));
            }
            for limits in [&net.rx, &net.tx] {
                check_limit(limits.bandwidth.as_ref());
                check_limit(limits.ops.as_ref());
            }
        }
        Err(e) => drop(e.to_string()),
    }
    match VsockConfig::parse(text) {
        Ok(vsock) => {
            assert!(GUEST_CIDS.contains(&vsock.cid), "{vsock:?}");
            let path = vsock.socket.as_os_str().len();
            assert!(path > 0 && path <= MAX_SOCKET_PATH, "{vsock:?}");
            // The longest port suffix still fits a Unix socket address.
            assert!(vsock.port_path(u32::MAX).as_os_str().len() <= 107);
        }
        Err(e) => drop(e.to_string()),
    }
    match BalloonConfig::parse(text) {
        Ok(balloon) => drop(balloon.target_pages()),
        Err(e) => drop(e.to_string()),
    }
    match TokenBucketConfig::parse(text) {
        Ok(limit) => check_limit(Some(&limit)),
        Err(e) => drop(e),
    }
    if let Ok(mac) = parse_mac(text) {
        assert!(mac[0] & 1 == 0 && mac != [0; 6], "{mac:?}");
        assert_eq!(
            format_mac(&mac).to_ascii_lowercase(),
            text.to_ascii_lowercase()
        );
    }
});
