//! The pointsman host manager: `pointsman serve`, a daemon that decides
//! which guests fit on the host (admission control), starts each guest's
//! VMM through `pointsman jail` with a uid, a jail and a cgroup of its own,
//! controls it through the VMM's API socket, and keeps what it needs to
//! find its guests again in a state directory, so that guests outlive the
//! daemon and a new daemon adopts them. Its REST API (JSON over HTTP on a
//! Unix socket) is served by the `api` crate's transport; [`client`] is
//! what `pointsman vm` uses to reach it.
//!
//! The daemon never links the VMM: it drives VMM processes only.

pub mod capacity;
pub mod cgroup;
pub mod client;
pub mod clone;
pub mod console;
pub mod console_log;
pub mod cpuset;
pub mod daemon;
mod error;
pub mod file_copy;
pub mod guest;
mod guest_record;
pub mod http_client;
pub mod io_weight;
pub mod kvm_pit;
pub mod limits_update;
pub mod metrics_text;
pub mod name;
pub mod proc_stat;
pub mod prometheus;
pub mod rates;
pub mod report;
pub mod restart;
pub mod routes;
pub mod serve;
pub mod size;
pub mod snapshot;
pub mod spawn;
pub mod state_dir;
pub mod stats;
#[cfg(test)]
mod test_daemon;

pub use error::ManagerError;

/// The default `--uid-range`: guests' users, none of them the host's.
pub const DEFAULT_UID_RANGE: (u32, u32) = (40_000, 49_999);

/// Parses `FIRST-LAST`.
pub fn parse_uid_range(text: &str) -> Result<(u32, u32), ManagerError> {
    let bad = || ManagerError::BadUidRange(text.to_owned());
    let (first, last) = text.split_once('-').ok_or_else(bad)?;
    let first: u32 = first.parse().map_err(|_| bad())?;
    let last: u32 = last.parse().map_err(|_| bad())?;
    if first == 0 || first > last {
        return Err(bad());
    }
    Ok((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_ranges_parse() {
        assert_eq!(parse_uid_range("40000-49999").unwrap(), (40000, 49999));
        assert_eq!(parse_uid_range("5-5").unwrap(), (5, 5));
        for bad in ["", "0-10", "10-5", "a-b", "10"] {
            assert!(parse_uid_range(bad).is_err(), "{bad}");
        }
    }
}
