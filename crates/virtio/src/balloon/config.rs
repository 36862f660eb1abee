//! `--balloon [size=SIZE][,stats=on][,free-page-reporting=on][,deflate-on-oom=on]`.

use super::BALLOON_PAGE;

/// Why a `--balloon` value was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown key {0:?} (expected size, stats, free-page-reporting or deflate-on-oom)")]
    UnknownKey(String),
    #[error("{0} needs a value, as in {0}=...")]
    MissingValue(String),
    #[error("{0} is given twice")]
    Duplicate(String),
    #[error("invalid {key} value {value:?}: expected on or off")]
    InvalidSwitch { key: String, value: String },
    #[error(
        "invalid size {0:?}: expected a number with an optional K, M or G suffix, such as 256M"
    )]
    InvalidSize(String),
    #[error("size {0} bytes is too large for a balloon (at most 16 TiB minus 4 KiB)")]
    SizeTooLarge(u64),
}

/// One balloon device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BalloonConfig {
    /// The target the guest inflates to, in bytes (a whole number of 4 KiB
    /// balloon pages: the rest is dropped).
    pub size: u64,
    /// Offer VIRTIO_BALLOON_F_STATS_VQ: the guest reports memory statistics.
    pub stats: bool,
    /// Offer VIRTIO_BALLOON_F_REPORTING: the guest hands free pages back.
    pub free_page_reporting: bool,
    /// Offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM: the guest takes pages back
    /// from the balloon rather than kill a process.
    pub deflate_on_oom: bool,
}

impl BalloonConfig {
    /// Parses the `key=value,...` form of `--balloon`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut config = BalloonConfig::default();
        let mut seen: Vec<&str> = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| ConfigError::MissingValue(item.to_owned()))?;
            let (key, value) = (key.trim(), value.trim());
            if seen.contains(&key) {
                return Err(ConfigError::Duplicate(key.to_owned()));
            }
            match key {
                "size" => config.size = parse_size(value)?,
                "stats" => config.stats = switch(key, value)?,
                "free-page-reporting" => config.free_page_reporting = switch(key, value)?,
                "deflate-on-oom" => config.deflate_on_oom = switch(key, value)?,
                _ => return Err(ConfigError::UnknownKey(key.to_owned())),
            }
            seen.push(key);
        }
        Ok(config)
    }

    /// The target in 4 KiB balloon pages, as the config space holds it.
    pub fn target_pages(&self) -> u32 {
        bytes_to_pages(self.size).unwrap_or(u32::MAX)
    }
}

/// `bytes` in whole balloon pages, if that fits the config space's field.
pub(crate) fn bytes_to_pages(bytes: u64) -> Option<u32> {
    u32::try_from(bytes / BALLOON_PAGE).ok()
}

fn switch(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(ConfigError::InvalidSwitch {
            key: key.to_owned(),
            value: value.to_owned(),
        }),
    }
}

/// A size with an optional K, M or G suffix (powers of 1024); a bare
/// number is in MiB, as for `--memory`.
fn parse_size(text: &str) -> Result<u64, ConfigError> {
    let invalid = || ConfigError::InvalidSize(text.to_owned());
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" | "M" | "MB" | "MIB" => 20,
        "K" | "KB" | "KIB" => 10,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(invalid()),
    };
    let bytes = number.checked_mul(1u64 << shift).ok_or_else(invalid)?;
    match bytes_to_pages(bytes) {
        Some(_) => Ok(bytes),
        None => Err(ConfigError::SizeTooLarge(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key() {
        let c = BalloonConfig::parse("size=256M,stats=on,free-page-reporting=on,deflate-on-oom=on")
            .unwrap();
        assert_eq!(
            c,
            BalloonConfig {
                size: 256 << 20,
                stats: true,
                free_page_reporting: true,
                deflate_on_oom: true,
            }
        );
        assert_eq!(c.target_pages(), 65536);
    }

    #[test]
    fn defaults_and_sizes() {
        assert_eq!(BalloonConfig::parse("").unwrap(), BalloonConfig::default());
        let size = |s: &str| BalloonConfig::parse(&format!("size={s}")).unwrap().size;
        assert_eq!(size("1G"), 1 << 30);
        assert_eq!(size("512k"), 512 << 10);
        assert_eq!(size("64"), 64 << 20);
        assert_eq!(size("0"), 0);
        assert_eq!(
            BalloonConfig::parse("stats=off, size=6K").unwrap(),
            BalloonConfig {
                size: 6 << 10,
                ..Default::default()
            }
        );
        assert_eq!(
            BalloonConfig::parse("size=6K").unwrap().target_pages(),
            1,
            "whole pages only"
        );
    }

    #[test]
    fn bad_values_are_refused() {
        use ConfigError::*;
        let err = |s: &str| BalloonConfig::parse(s).unwrap_err();
        assert!(matches!(err("size=12Q"), InvalidSize(_)));
        assert!(matches!(err("size=-1"), InvalidSize(_)));
        assert!(matches!(err("size="), InvalidSize(_)));
        assert!(matches!(err("size=99999999999999G"), InvalidSize(_)));
        assert!(matches!(err("size=16384G"), SizeTooLarge(_)));
        assert!(matches!(err("stats=yes"), InvalidSwitch { .. }));
        assert!(matches!(err("stats"), MissingValue(_)));
        assert!(matches!(err("colour=red"), UnknownKey(_)));
        assert!(matches!(err("size=1M,size=2M"), Duplicate(_)));
    }
}
