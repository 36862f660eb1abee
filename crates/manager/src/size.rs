//! Sizes as users write them: `256M`, `1G`, `512K`, `2T`, a bare number
//! in MiB (as `pointsman run --memory` takes them).

use crate::ManagerError;

pub const MIB: u64 = 1 << 20;

/// Bytes in `text`: a number with an optional K, M, G or T suffix (powers
/// of 1024, case-insensitive, an optional trailing `iB` or `B`); a bare
/// number is MiB.
pub fn parse_size(text: &str) -> Result<u64, ManagerError> {
    let bad = || ManagerError::BadSize(text.to_owned());
    let trimmed = text.trim();
    let unit_start = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(unit_start);
    let number: u64 = digits.parse().map_err(|_| bad())?;
    let unit = unit.to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" | "m" => 20,
        "k" => 10,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad()),
    };
    let bytes = number.checked_mul(1 << shift).ok_or_else(bad)?;
    if bytes == 0 {
        return Err(bad());
    }
    Ok(bytes)
}

/// `bytes` in whole MiB, rounded down, for messages.
pub fn mib(bytes: u64) -> u64 {
    bytes / MIB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("256M").unwrap(), 256 * MIB);
        assert_eq!(parse_size("128").unwrap(), 128 * MIB);
        assert_eq!(parse_size("1G").unwrap(), 1024 * MIB);
        assert_eq!(parse_size("1gib").unwrap(), 1024 * MIB);
        assert_eq!(parse_size("512K").unwrap(), 512 * 1024);
        assert_eq!(parse_size("2T").unwrap(), 2 << 40);
        assert_eq!(parse_size("64MB").unwrap(), 64 * MIB);
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in [
            "",
            "M",
            "-1M",
            "1.5G",
            "12X",
            "0",
            "0M",
            "99999999999T",
            "1 G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
