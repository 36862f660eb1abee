//! `--disk` options: `path=FILE[,readonly=on][,id=NAME][,direct=on]
//! [,bandwidth=N[/TIME]][,ops=N[/TIME]][,moderation=on|off]`.

use std::path::PathBuf;

use crate::rate_limiter::TokenBucketConfig;

/// Longest serial number a guest can read (`VIRTIO_BLK_ID_BYTES`).
pub const ID_BYTES: usize = 20;

/// Why a `--disk` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--disk {0:?}: expected key=value pairs separated by commas")]
    NotKeyValue(String),
    #[error("--disk: unknown key {0:?} (expected path, readonly, id, direct, bandwidth, ops or moderation)")]
    UnknownKey(String),
    #[error("--disk: {0} is given twice")]
    Duplicate(String),
    #[error("--disk: path= is missing")]
    MissingPath,
    #[error("--disk: {key}={value:?} is not on or off")]
    NotOnOff { key: String, value: String },
    #[error("--disk: id={0:?} is longer than {ID_BYTES} bytes")]
    IdTooLong(String),
    #[error("--disk: id={0:?} must be printable ASCII")]
    IdNotPrintable(String),
    #[error("--disk: {key}: {reason}")]
    Limit { key: String, reason: String },
}

/// One disk: a raw image file and how the guest may use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskConfig {
    pub path: PathBuf,
    pub readonly: bool,
    /// Serial number the guest reads (VIRTIO_BLK_T_GET_ID); derived from
    /// the file when not given.
    pub id: Option<String>,
    /// Bypass the host page cache (O_DIRECT).
    pub direct: bool,
    /// Bytes per refill time.
    pub bandwidth: Option<TokenBucketConfig>,
    /// Requests per refill time.
    pub ops: Option<TokenBucketConfig>,
    /// Completion interrupt moderation (on unless `moderation=off`).
    pub moderation: bool,
}

fn on_off(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(ConfigError::NotOnOff {
            key: key.to_owned(),
            value: value.to_owned(),
        }),
    }
}

fn limit(key: &str, value: &str) -> Result<TokenBucketConfig, ConfigError> {
    TokenBucketConfig::parse(value).map_err(|reason| ConfigError::Limit {
        key: key.to_owned(),
        reason,
    })
}

impl DiskConfig {
    /// Parses the `--disk` syntax and validates it.
    pub fn parse(text: &str) -> Result<DiskConfig, ConfigError> {
        let mut path = None;
        let mut readonly = None;
        let mut id = None;
        let mut direct = None;
        let mut bandwidth = None;
        let mut ops = None;
        let mut moderation = None;
        for item in text.split(',') {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| ConfigError::NotKeyValue(text.to_owned()))?;
            let duplicate = || ConfigError::Duplicate(key.to_owned());
            match key {
                "path" if path.is_some() => return Err(duplicate()),
                "path" => path = Some(PathBuf::from(value)),
                "readonly" if readonly.is_some() => return Err(duplicate()),
                "readonly" => readonly = Some(on_off(key, value)?),
                "id" if id.is_some() => return Err(duplicate()),
                "id" => id = Some(value.to_owned()),
                "direct" if direct.is_some() => return Err(duplicate()),
                "direct" => direct = Some(on_off(key, value)?),
                "bandwidth" if bandwidth.is_some() => return Err(duplicate()),
                "bandwidth" => bandwidth = Some(limit(key, value)?),
                "ops" if ops.is_some() => return Err(duplicate()),
                "ops" => ops = Some(limit(key, value)?),
                "moderation" if moderation.is_some() => return Err(duplicate()),
                "moderation" => moderation = Some(on_off(key, value)?),
                _ => return Err(ConfigError::UnknownKey(key.to_owned())),
            }
        }
        let config = DiskConfig {
            path: path
                .filter(|p| !p.as_os_str().is_empty())
                .ok_or(ConfigError::MissingPath)?,
            readonly: readonly.unwrap_or(false),
            id,
            direct: direct.unwrap_or(false),
            bandwidth,
            ops,
            moderation: moderation.unwrap_or(true),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what parsing alone does not: the serial number's length and
    /// characters.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.path.as_os_str().is_empty() {
            return Err(ConfigError::MissingPath);
        }
        if let Some(id) = &self.id {
            if id.len() > ID_BYTES {
                return Err(ConfigError::IdTooLong(id.clone()));
            }
            if !id.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
                return Err(ConfigError::IdNotPrintable(id.clone()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn path_alone_gives_a_writable_buffered_unlimited_disk() {
        let c = DiskConfig::parse("path=/tmp/disk.img").unwrap();
        assert_eq!(c.path, PathBuf::from("/tmp/disk.img"));
        assert!(!c.readonly && !c.direct);
        assert!(c.moderation, "moderated unless turned off");
        assert_eq!((c.id, c.bandwidth, c.ops), (None, None, None));
    }

    #[test]
    fn every_option() {
        let c = DiskConfig::parse(
            "path=a.img,readonly=on,id=data-1,direct=on,bandwidth=10M/100ms,ops=500,moderation=off",
        )
        .unwrap();
        assert!(c.readonly && c.direct && !c.moderation);
        assert_eq!(c.id.as_deref(), Some("data-1"));
        assert_eq!(
            c.bandwidth,
            Some(TokenBucketConfig {
                size: 10 << 20,
                refill: Duration::from_millis(100),
                one_time_burst: 0,
            })
        );
        assert_eq!(c.ops.map(|o| o.size), Some(500));
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let cases: &[(&str, ConfigError)] = &[
            ("readonly=on", ConfigError::MissingPath),
            ("path=", ConfigError::MissingPath),
            ("path=a,path=b", ConfigError::Duplicate("path".into())),
            (
                "path=a,moderation=on,moderation=off",
                ConfigError::Duplicate("moderation".into()),
            ),
            (
                "path=a,moderation=fast",
                ConfigError::NotOnOff {
                    key: "moderation".into(),
                    value: "fast".into(),
                },
            ),
            ("path=a,size=3", ConfigError::UnknownKey("size".into())),
            ("a.img", ConfigError::NotKeyValue("a.img".into())),
            (
                "path=a,readonly=maybe",
                ConfigError::NotOnOff {
                    key: "readonly".into(),
                    value: "maybe".into(),
                },
            ),
            (
                "path=a,id=123456789012345678901",
                ConfigError::IdTooLong("123456789012345678901".into()),
            ),
            (
                "path=a,id=\u{e9}",
                ConfigError::IdNotPrintable("\u{e9}".into()),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(DiskConfig::parse(text).as_ref(), Err(expected), "{text}");
        }
        assert!(matches!(
            DiskConfig::parse("path=a,bandwidth=0"),
            Err(ConfigError::Limit { .. })
        ));
        assert!(matches!(
            DiskConfig::parse("path=a,ops=5/1h"),
            Err(ConfigError::Limit { .. })
        ));
    }

    #[test]
    fn twenty_byte_id_fits() {
        let c = DiskConfig::parse("path=a,id=12345678901234567890").unwrap();
        assert_eq!(c.id.map(|i| i.len()), Some(ID_BYTES));
    }
}
