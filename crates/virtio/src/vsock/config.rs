//! `--vsock cid=N,socket=PATH`: the guest's address and the host socket.

use std::path::PathBuf;

/// The lowest CID a guest may have: 0 and 1 are reserved, 2 is the host.
pub const MIN_GUEST_CID: u64 = 3;
/// CIDs are 32-bit in practice, and `u32::MAX` means "any".
pub const MAX_GUEST_CID: u64 = u32::MAX as u64 - 1;
/// Longest socket path: `sun_path` is 108 bytes with its NUL, and guest
/// connections to host port P use `PATH_P` (up to 11 more bytes).
pub const MAX_SOCKET_PATH: usize = 107 - 11;

/// Why a `--vsock` value is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown key {0:?} (expected cid=N,socket=PATH)")]
    UnknownKey(String),
    #[error("{0:?} is not key=value (expected cid=N,socket=PATH)")]
    NotKeyValue(String),
    #[error("{0} is given twice")]
    Duplicate(&'static str),
    #[error("{0}= is missing (expected cid=N,socket=PATH)")]
    Missing(&'static str),
    #[error("cid {0:?} is not a number")]
    BadCid(String),
    #[error("cid {0} is out of range: a guest CID is {MIN_GUEST_CID} to {MAX_GUEST_CID}")]
    CidOutOfRange(u64),
    #[error("the socket path is empty")]
    EmptyPath,
    #[error("the socket path is {0} bytes long: at most {MAX_SOCKET_PATH} fit in a Unix socket address with a port suffix")]
    PathTooLong(usize),
}

/// The guest's vsock device: its CID and the Unix socket that host
/// programs connect through (`PATH`), and the prefix of the sockets that
/// guest connections to host ports reach (`PATH_<port>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VsockConfig {
    pub cid: u64,
    pub socket: PathBuf,
}

impl VsockConfig {
    /// Parses `cid=N,socket=PATH` (in any order) and validates it.
    pub fn parse(text: &str) -> Result<VsockConfig, ConfigError> {
        let mut cid = None;
        let mut socket = None;
        for item in text.split(',') {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| ConfigError::NotKeyValue(item.to_owned()))?;
            match key.trim() {
                "cid" => {
                    let value = value.trim();
                    let n = value
                        .parse::<u64>()
                        .map_err(|_| ConfigError::BadCid(value.to_owned()))?;
                    if cid.replace(n).is_some() {
                        return Err(ConfigError::Duplicate("cid"));
                    }
                }
                "socket" => {
                    if socket.replace(PathBuf::from(value)).is_some() {
                        return Err(ConfigError::Duplicate("socket"));
                    }
                }
                other => return Err(ConfigError::UnknownKey(other.to_owned())),
            }
        }
        let config = VsockConfig {
            cid: cid.ok_or(ConfigError::Missing("cid"))?,
            socket: socket.ok_or(ConfigError::Missing("socket"))?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the CID range and that the socket paths fit an address.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_GUEST_CID..=MAX_GUEST_CID).contains(&self.cid) {
            return Err(ConfigError::CidOutOfRange(self.cid));
        }
        let len = self.socket.as_os_str().len();
        if len == 0 {
            return Err(ConfigError::EmptyPath);
        }
        if len > MAX_SOCKET_PATH {
            return Err(ConfigError::PathTooLong(len));
        }
        Ok(())
    }

    /// Where a guest connection to host port `port` goes.
    pub fn port_path(&self, port: u32) -> PathBuf {
        let mut path = self.socket.clone().into_os_string();
        path.push(format!("_{port}"));
        PathBuf::from(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_keys_in_any_order() {
        let c = VsockConfig::parse("cid=3,socket=/tmp/v.sock").unwrap();
        assert_eq!(c.cid, 3);
        assert_eq!(c.socket, PathBuf::from("/tmp/v.sock"));
        let d = VsockConfig::parse("socket=/tmp/v.sock,cid=3").unwrap();
        assert_eq!(c, d);
        assert_eq!(c.port_path(52), PathBuf::from("/tmp/v.sock_52"));
    }

    #[test]
    fn refuses_bad_values() {
        use ConfigError::*;
        let cases: &[(&str, ConfigError)] = &[
            ("cid=2,socket=/s", CidOutOfRange(2)),
            ("cid=0,socket=/s", CidOutOfRange(0)),
            ("cid=4294967295,socket=/s", CidOutOfRange(u32::MAX.into())),
            ("cid=x,socket=/s", BadCid("x".into())),
            ("cid=-3,socket=/s", BadCid("-3".into())),
            ("socket=/s", Missing("cid")),
            ("cid=3", Missing("socket")),
            ("cid=3,socket=", EmptyPath),
            ("cid=3,cid=4,socket=/s", Duplicate("cid")),
            ("cid=3,socket=/s,port=4", UnknownKey("port".into())),
            ("cid=3,/s", NotKeyValue("/s".into())),
            ("", NotKeyValue(String::new())),
        ];
        for (text, want) in cases {
            assert_eq!(VsockConfig::parse(text).as_ref(), Err(want), "{text}");
        }
        let long = format!("cid=3,socket=/{}", "a".repeat(MAX_SOCKET_PATH));
        assert_eq!(
            VsockConfig::parse(&long),
            Err(PathTooLong(MAX_SOCKET_PATH + 1))
        );
    }
}
