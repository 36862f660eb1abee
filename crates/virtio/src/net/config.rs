//! `--net tap=NAME[,mac=MAC][,bandwidth=N[/TIME]][,ops=N[/TIME]][,moderation=on|off]`.

use crate::rate_limiter::TokenBucketConfig;

/// Longest interface name Linux accepts (`IFNAMSIZ` less the NUL).
pub const MAX_TAP_NAME: usize = 15;

/// Why a `--net` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--net {0:?}: `tap=NAME` is required")]
    MissingTap(String),
    #[error(
        "--net {text:?}: unknown key {key:?} (expected tap, mac, bandwidth, ops or moderation)"
    )]
    UnknownKey { text: String, key: String },
    #[error("--net {text:?}: {key} is given twice")]
    Duplicate { text: String, key: String },
    #[error("--net {text:?}: {part:?} is not key=value")]
    NotKeyValue { text: String, part: String },
    #[error("--net: invalid TAP name {0:?}: 1 to 15 characters, no '/', ':', spaces, '.' or '..'")]
    TapName(String),
    #[error("--net: invalid MAC {0:?}: expected six hex bytes such as 52:54:00:12:34:56")]
    Mac(String),
    #[error("--net: MAC {0:?} is a multicast or all-zero address, which a NIC cannot have")]
    MacNotUnicast(String),
    #[error("--net: invalid {key}: {reason}")]
    Limit { key: &'static str, reason: String },
    #[error("--net: moderation={0:?}: expected on or off")]
    NotOnOff(String),
}

/// One network interface of the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// The host TAP device, opened if it exists, created otherwise.
    pub tap: String,
    /// The guest's MAC address; a random locally administered one if none.
    pub mac: Option<[u8; 6]>,
    /// Bytes per refill time the guest receives.
    pub bandwidth: Option<TokenBucketConfig>,
    /// Frames per refill time the guest receives.
    pub ops: Option<TokenBucketConfig>,
    /// Bytes per refill time the guest sends. `--net` gives both
    /// directions the same limits; Firecracker's API sets each.
    pub tx_bandwidth: Option<TokenBucketConfig>,
    /// Frames per refill time the guest sends.
    pub tx_ops: Option<TokenBucketConfig>,
    /// Interrupt moderation (on unless `moderation=off`): a guest
    /// receiving a stream shares interrupts between frames that come
    /// close together, at up to 300 µs more latency for them.
    pub moderation: bool,
}

impl NetConfig {
    /// Parses the option's `key=value,...` text.
    pub fn parse(text: &str) -> Result<NetConfig, ConfigError> {
        let mut tap = None;
        let mut mac = None;
        let mut bandwidth = None;
        let mut ops = None;
        let mut moderation = None;
        for part in text.split(',') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(ConfigError::NotKeyValue {
                    text: text.to_owned(),
                    part: part.to_owned(),
                });
            };
            let duplicate = || ConfigError::Duplicate {
                text: text.to_owned(),
                key: key.to_owned(),
            };
            match key {
                "tap" if tap.is_some() => return Err(duplicate()),
                "tap" => tap = Some(parse_tap_name(value)?),
                "mac" if mac.is_some() => return Err(duplicate()),
                "mac" => mac = Some(parse_mac(value)?),
                "bandwidth" if bandwidth.is_some() => return Err(duplicate()),
                "bandwidth" => bandwidth = Some(parse_limit("bandwidth", value)?),
                "ops" if ops.is_some() => return Err(duplicate()),
                "ops" => ops = Some(parse_limit("ops", value)?),
                "moderation" if moderation.is_some() => return Err(duplicate()),
                "moderation" => {
                    moderation = Some(match value {
                        "on" => true,
                        "off" => false,
                        _ => return Err(ConfigError::NotOnOff(value.to_owned())),
                    })
                }
                _ => {
                    return Err(ConfigError::UnknownKey {
                        text: text.to_owned(),
                        key: key.to_owned(),
                    })
                }
            }
        }
        Ok(NetConfig {
            tap: tap.ok_or_else(|| ConfigError::MissingTap(text.to_owned()))?,
            mac,
            tx_bandwidth: bandwidth.clone(),
            tx_ops: ops.clone(),
            bandwidth,
            ops,
            moderation: moderation.unwrap_or(true),
        })
    }
}

/// The names `dev_valid_name` in Linux accepts.
fn parse_tap_name(name: &str) -> Result<String, ConfigError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_TAP_NAME
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if valid {
        Ok(name.to_owned())
    } else {
        Err(ConfigError::TapName(name.to_owned()))
    }
}

/// `aa:bb:cc:dd:ee:ff`, a unicast address.
pub fn parse_mac(text: &str) -> Result<[u8; 6], ConfigError> {
    let bad = || ConfigError::Mac(text.to_owned());
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(ConfigError::MacNotUnicast(text.to_owned()));
    }
    Ok(mac)
}

fn parse_limit(key: &'static str, value: &str) -> Result<TokenBucketConfig, ConfigError> {
    TokenBucketConfig::parse(value).map_err(|reason| ConfigError::Limit { key, reason })
}

/// A random locally administered unicast MAC address.
pub fn random_mac() -> [u8; 6] {
    let mut mac = [0u8; 6];
    // SAFETY: the kernel writes at most `mac.len()` bytes into `mac`.
    let n = unsafe { libc::getrandom(mac.as_mut_ptr().cast(), mac.len(), 0) };
    if usize::try_from(n).ok() != Some(mac.len()) {
        // No entropy (should not happen): vary by process and time instead.
        let seed = u64::from(std::process::id())
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() ^ u64::from(d.subsec_nanos()));
        mac.copy_from_slice(&seed.to_le_bytes()[..6]);
    }
    // Unicast, locally administered.
    mac[0] = (mac[0] & 0xfc) | 0x02;
    mac
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn full_option_parses() {
        let c = NetConfig::parse("tap=tap0,mac=52:54:00:AB:cd:01,bandwidth=10M/100ms,ops=1000")
            .unwrap();
        assert_eq!(c.tap, "tap0");
        assert_eq!(c.mac, Some([0x52, 0x54, 0, 0xab, 0xcd, 1]));
        assert_eq!(
            (&c.tx_bandwidth, &c.tx_ops),
            (&c.bandwidth, &c.ops),
            "both directions"
        );
        let bw = c.bandwidth.unwrap();
        assert_eq!((bw.size, bw.refill), (10 << 20, Duration::from_millis(100)));
        assert_eq!(c.ops.unwrap().size, 1000);
        assert!(c.moderation, "on unless turned off");
        let c = NetConfig::parse("tap=t,moderation=off").unwrap();
        assert_eq!((c.mac, c.bandwidth, c.ops), (None, None, None));
        assert!(!c.moderation);
        assert!(NetConfig::parse("tap=t,moderation=on").unwrap().moderation);
    }

    #[test]
    fn bad_options_are_refused_with_their_reason() {
        type Check = fn(&ConfigError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, ConfigError::NotKeyValue { .. })),
            ("mac=52:54:00:00:00:01", |e| {
                matches!(e, ConfigError::MissingTap(_))
            }),
            ("tap=a,tap=b", |e| {
                matches!(e, ConfigError::Duplicate { .. })
            }),
            ("tap=a,colour=red", |e| {
                matches!(e, ConfigError::UnknownKey { .. })
            }),
            ("tap=a,mac", |e| {
                matches!(e, ConfigError::NotKeyValue { .. })
            }),
            ("tap=", |e| matches!(e, ConfigError::TapName(_))),
            ("tap=sixteen-chars-xx", |e| {
                matches!(e, ConfigError::TapName(_))
            }),
            ("tap=a/b", |e| matches!(e, ConfigError::TapName(_))),
            ("tap=..", |e| matches!(e, ConfigError::TapName(_))),
            ("tap=a b", |e| matches!(e, ConfigError::TapName(_))),
            ("tap=a,mac=52:54:00:00:00", |e| {
                matches!(e, ConfigError::Mac(_))
            }),
            ("tap=a,mac=52:54:00:00:00:01:02", |e| {
                matches!(e, ConfigError::Mac(_))
            }),
            ("tap=a,mac=5g:54:00:00:00:01", |e| {
                matches!(e, ConfigError::Mac(_))
            }),
            ("tap=a,mac=+5:54:00:00:00:01", |e| {
                matches!(e, ConfigError::Mac(_))
            }),
            ("tap=a,mac=01:00:5e:00:00:01", |e| {
                matches!(e, ConfigError::MacNotUnicast(_))
            }),
            ("tap=a,mac=00:00:00:00:00:00", |e| {
                matches!(e, ConfigError::MacNotUnicast(_))
            }),
            ("tap=a,bandwidth=0", |e| {
                matches!(e, ConfigError::Limit { .. })
            }),
            ("tap=a,ops=5/1h", |e| matches!(e, ConfigError::Limit { .. })),
            ("tap=a,moderation=maybe", |e| {
                matches!(e, ConfigError::NotOnOff(_))
            }),
            ("tap=a,moderation=on,moderation=off", |e| {
                matches!(e, ConfigError::Duplicate { .. })
            }),
        ];
        for (text, expected) in cases {
            let err = NetConfig::parse(text).unwrap_err();
            assert!(expected(&err), "{text}: {err}");
            assert!(err.to_string().starts_with("--net"), "{err}");
        }
    }

    #[test]
    fn random_macs_are_local_unicast_and_differ() {
        let a = random_mac();
        let b = random_mac();
        assert_eq!(a[0] & 0x03, 0x02);
        assert_ne!(a, b);
        assert_eq!(
            format_mac(&[0x52, 0x54, 0, 0xab, 0, 1]),
            "52:54:00:ab:00:01"
        );
        assert_eq!(parse_mac(&format_mac(&a)).unwrap(), a);
    }
}
