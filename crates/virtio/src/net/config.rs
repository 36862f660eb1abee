//! `--net tap=NAME[,mac=MAC][,id=NAME][,bandwidth=N[/TIME]][,ops=N[/TIME]]
//! [,rx_bandwidth=..][,rx_ops=..][,tx_bandwidth=..][,tx_ops=..][,moderation=on|off]`.

use crate::rate_limiter::{Limits, TokenBucketConfig};

/// Longest NIC id.
pub const MAX_ID_LEN: usize = 64;

/// Longest interface name Linux accepts (`IFNAMSIZ` less the NUL).
pub const MAX_TAP_NAME: usize = 15;

/// Why a `--net` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--net {0:?}: `tap=NAME` is required")]
    MissingTap(String),
    #[error(
        "--net {text:?}: unknown key {key:?} (expected tap, mac, id, bandwidth, ops, rx_bandwidth, rx_ops, tx_bandwidth, tx_ops or moderation)"
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
    #[error("--net: invalid id {0:?}: 1 to {MAX_ID_LEN} printable characters, no spaces")]
    Id(String),
    #[error("--net {text:?}: {both} (both directions) and {one} set the same limit")]
    Conflict {
        text: String,
        both: &'static str,
        one: &'static str,
    },
}

/// One network interface of the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// The host TAP device, opened if it exists, created otherwise.
    pub tap: String,
    /// The guest's MAC address; a random locally administered one if none.
    pub mac: Option<[u8; 6]>,
    /// The name the control plane knows the NIC by (Firecracker's
    /// `iface_id`).
    pub id: Option<String>,
    /// Limits on what the guest receives: bytes and frames per refill time.
    pub rx: Limits,
    /// Limits on what the guest sends.
    pub tx: Limits,
    /// Interrupt moderation (on unless `moderation=off`): a guest
    /// receiving a stream shares interrupts between frames that come
    /// close together, at up to 300 µs more latency for them.
    pub moderation: bool,
}

impl NetConfig {
    /// Parses the option's `key=value,...` text. `bandwidth=` and `ops=`
    /// limit both directions; `rx_`/`tx_` ones limit one.
    pub fn parse(text: &str) -> Result<NetConfig, ConfigError> {
        let mut tap = None;
        let mut mac = None;
        let mut id = None;
        // bandwidth, ops, then rx_ and tx_ ones.
        let mut limits: [Option<TokenBucketConfig>; 6] = Default::default();
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
                "id" if id.is_some() => return Err(duplicate()),
                "id" => id = Some(parse_id(value)?),
                "moderation" if moderation.is_some() => return Err(duplicate()),
                "moderation" => {
                    moderation = Some(match value {
                        "on" => true,
                        "off" => false,
                        _ => return Err(ConfigError::NotOnOff(value.to_owned())),
                    })
                }
                _ => {
                    let Some(slot) = LIMIT_KEYS.iter().position(|k| *k == key) else {
                        return Err(ConfigError::UnknownKey {
                            text: text.to_owned(),
                            key: key.to_owned(),
                        });
                    };
                    if limits[slot].is_some() {
                        return Err(duplicate());
                    }
                    limits[slot] = Some(parse_limit(LIMIT_KEYS[slot], value)?);
                }
            }
        }
        let [bandwidth, ops, rx_bandwidth, rx_ops, tx_bandwidth, tx_ops] = limits;
        let either = |both: &Option<TokenBucketConfig>,
                      one: Option<TokenBucketConfig>,
                      names: (&'static str, &'static str)| {
            match (both, one) {
                (Some(_), Some(_)) => Err(ConfigError::Conflict {
                    text: text.to_owned(),
                    both: names.0,
                    one: names.1,
                }),
                (both, one) => Ok(one.or_else(|| both.clone())),
            }
        };
        Ok(NetConfig {
            tap: tap.ok_or_else(|| ConfigError::MissingTap(text.to_owned()))?,
            mac,
            id,
            rx: Limits {
                bandwidth: either(&bandwidth, rx_bandwidth, ("bandwidth", "rx_bandwidth"))?,
                ops: either(&ops, rx_ops, ("ops", "rx_ops"))?,
            },
            tx: Limits {
                bandwidth: either(&bandwidth, tx_bandwidth, ("bandwidth", "tx_bandwidth"))?,
                ops: either(&ops, tx_ops, ("ops", "tx_ops"))?,
            },
            moderation: moderation.unwrap_or(true),
        })
    }
}

/// The limit keys, in the order `NetConfig::parse` keeps them.
const LIMIT_KEYS: [&str; 6] = [
    "bandwidth",
    "ops",
    "rx_bandwidth",
    "rx_ops",
    "tx_bandwidth",
    "tx_ops",
];

/// A NIC id: printable, no spaces (the control plane's ids are letters,
/// digits and `_`, a subset).
fn parse_id(id: &str) -> Result<String, ConfigError> {
    let valid =
        !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(id.to_owned())
    } else {
        Err(ConfigError::Id(id.to_owned()))
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
        assert_eq!(c.rx, c.tx, "both directions");
        let bw = c.rx.bandwidth.unwrap();
        assert_eq!((bw.size, bw.refill), (10 << 20, Duration::from_millis(100)));
        assert_eq!(c.rx.ops.unwrap().size, 1000);
        assert!(c.moderation, "on unless turned off");
        assert_eq!(c.id, None);
        let c = NetConfig::parse("tap=t,moderation=off").unwrap();
        assert_eq!(
            (c.mac, c.rx.clone(), c.tx),
            (None, Limits::default(), Limits::default())
        );
        assert!(!c.moderation);
        assert!(NetConfig::parse("tap=t,moderation=on").unwrap().moderation);
    }

    #[test]
    fn each_direction_may_have_limits_of_its_own() {
        let c = NetConfig::parse("tap=t,id=eth_0,ops=100,rx_bandwidth=1M,tx_bandwidth=2M").unwrap();
        assert_eq!(c.id.as_deref(), Some("eth_0"));
        let size = |b: &Option<TokenBucketConfig>| b.as_ref().map(|b| b.size);
        assert_eq!(size(&c.rx.bandwidth), Some(1 << 20));
        assert_eq!(size(&c.tx.bandwidth), Some(2 << 20));
        assert_eq!(size(&c.rx.ops), Some(100), "ops= is for both");
        assert_eq!(size(&c.tx.ops), Some(100));
        let c = NetConfig::parse("tap=t,rx_ops=7,tx_ops=5").unwrap();
        assert_eq!((size(&c.rx.ops), size(&c.tx.ops)), (Some(7), Some(5)));
        let c = NetConfig::parse("tap=t,rx_ops=7").unwrap();
        assert_eq!((size(&c.rx.ops), c.tx.ops), (Some(7), None));
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
            ("tap=a,id=", |e| matches!(e, ConfigError::Id(_))),
            ("tap=a,id=a b", |e| matches!(e, ConfigError::Id(_))),
            ("tap=a,id=x,id=y", |e| {
                matches!(e, ConfigError::Duplicate { .. })
            }),
            ("tap=a,tx_ops=1,tx_ops=2", |e| {
                matches!(e, ConfigError::Duplicate { .. })
            }),
            ("tap=a,ops=1,tx_ops=2", |e| {
                matches!(e, ConfigError::Conflict { .. })
            }),
            ("tap=a,rx_bandwidth=0", |e| {
                matches!(e, ConfigError::Limit { .. })
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
