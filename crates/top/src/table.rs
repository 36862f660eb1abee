//! The guest table's rows: how they are sorted and how each figure is
//! written in its cell. No terminal here, so it is tested with plain
//! values.

use manager::report::GuestStats;

/// What the table is sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Name,
    Cpu,
    Memory,
    Disk,
    Net,
    Uptime,
}

impl SortKey {
    /// The key that sorts by this (shown in the footer).
    pub const ALL: [(char, SortKey, &'static str); 6] = [
        ('n', SortKey::Name, "name"),
        ('c', SortKey::Cpu, "cpu"),
        ('m', SortKey::Memory, "mem"),
        ('d', SortKey::Disk, "disk"),
        ('t', SortKey::Net, "net"),
        ('u', SortKey::Uptime, "uptime"),
    ];

    pub fn from_key(key: char) -> Option<SortKey> {
        Self::ALL
            .iter()
            .find(|(k, ..)| *k == key)
            .map(|(_, s, _)| *s)
    }

    pub fn label(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, s, _)| *s == self)
            .map_or("", |(.., l)| l)
    }

    /// Names read best A to Z; figures biggest first.
    pub fn default_descending(self) -> bool {
        self != SortKey::Name
    }

    /// The figure sorted on; a guest without one sorts as 0.
    fn figure(self, guest: &GuestStats) -> f64 {
        let rates = guest.rates.unwrap_or_default();
        let sum = |a: Option<f64>, b: Option<f64>| a.unwrap_or(0.0) + b.unwrap_or(0.0);
        match self {
            SortKey::Name => 0.0,
            SortKey::Cpu => rates.cpu_percent.unwrap_or(0.0),
            SortKey::Memory => guest.counters.memory_bytes.unwrap_or(0) as f64,
            SortKey::Disk => sum(
                rates.disk_read_bytes_per_second,
                rates.disk_write_bytes_per_second,
            ),
            SortKey::Net => sum(rates.net_rx_bytes_per_second, rates.net_tx_bytes_per_second),
            SortKey::Uptime => guest.uptime_seconds.unwrap_or(0.0),
        }
    }
}

/// Sorts `guests` by `key`; ties (and the name sort) go by name, so the
/// order does not flicker between refreshes.
pub fn sort(guests: &mut [GuestStats], key: SortKey, descending: bool) {
    guests.sort_by(|a, b| {
        let by_figure = key.figure(a).total_cmp(&key.figure(b));
        let by_name = a.name.cmp(&b.name);
        match (key, descending) {
            (SortKey::Name, false) => by_name,
            (SortKey::Name, true) => by_name.reverse(),
            (_, true) => by_figure.reverse().then(by_name),
            (_, false) => by_figure.then(by_name),
        }
    });
}

/// The column titles, in the order of [`cells`].
pub const HEADERS: [&str; 10] = [
    "NAME",
    "STATE",
    "VCPUS",
    "CPU%",
    "WEIGHT",
    "CAP",
    "MEM/LIMIT",
    "DISK R/W",
    "NET RX/TX",
    "UPTIME",
];

/// One guest's row, as text.
pub fn cells(guest: &GuestStats) -> [String; 10] {
    let rates = guest.rates;
    let rate = |pick: fn(&manager::rates::Rates) -> Option<f64>| {
        rates
            .as_ref()
            .and_then(pick)
            .map_or_else(|| "-".to_owned(), |r| format!("{}/s", bytes(r)))
    };
    let live = guest.pid.is_some();
    [
        guest.name.clone(),
        guest.state.clone(),
        guest.vcpus.to_string(),
        rates
            .and_then(|r| r.cpu_percent)
            .map_or_else(|| "-".to_owned(), |p| format!("{p:.1}")),
        guest.cpu_weight.to_string(),
        guest
            .cpu_max_percent
            .map_or_else(|| "-".to_owned(), |p| format!("{p}%")),
        format!(
            "{}/{}",
            guest
                .counters
                .memory_bytes
                .filter(|_| live)
                .map_or_else(|| "-".to_owned(), |b| bytes(b as f64)),
            bytes(guest.memory_limit_bytes as f64)
        ),
        format!(
            "{} {}",
            rate(|r| r.disk_read_bytes_per_second),
            rate(|r| r.disk_write_bytes_per_second)
        ),
        format!(
            "{} {}",
            rate(|r| r.net_rx_bytes_per_second),
            rate(|r| r.net_tx_bytes_per_second)
        ),
        guest
            .uptime_seconds
            .filter(|_| live)
            .map_or_else(|| "-".to_owned(), duration),
    ]
}

/// Bytes in binary units, three significant figures at most: `512B`,
/// `1.5K`, `40.0M`, `2.00G`.
pub fn bytes(amount: f64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    let mut value = amount.max(0.0);
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match (unit, value) {
        (0, v) => format!("{v:.0}B"),
        (u, v) if v < 10.0 => format!("{v:.2}{}", UNITS[u]),
        (u, v) if v < 100.0 => format!("{v:.1}{}", UNITS[u]),
        (u, v) => format!("{v:.0}{}", UNITS[u]),
    }
}

/// Seconds as `45s`, `12m05s`, `3h07m`, `2d04h`.
pub fn duration(seconds: f64) -> String {
    // Whole seconds; negative or NaN reads as 0 (the cast saturates).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let s = if seconds.is_finite() && seconds > 0.0 {
        seconds as u64
    } else {
        0
    };
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use manager::rates::Rates;
    use manager::stats::Counters;

    fn guest(name: &str, cpu: Option<f64>, memory: u64, uptime: f64) -> GuestStats {
        GuestStats {
            name: name.into(),
            state: "running".into(),
            pid: Some(1),
            vcpus: 1,
            cpu_weight: 100,
            memory_limit_bytes: 192 << 20,
            uptime_seconds: Some(uptime),
            counters: Counters {
                memory_bytes: Some(memory),
                ..Counters::default()
            },
            rates: Some(Rates {
                cpu_percent: cpu,
                ..Rates::default()
            }),
            ..GuestStats::default()
        }
    }

    fn names(guests: &[GuestStats]) -> Vec<&str> {
        guests.iter().map(|g| g.name.as_str()).collect()
    }

    #[test]
    fn sorts_by_each_key_with_names_breaking_ties() {
        let mut guests = vec![
            guest("b", Some(50.0), 30 << 20, 10.0),
            guest("a", Some(99.0), 10 << 20, 5.0),
            guest("c", None, 20 << 20, 100.0),
            guest("d", Some(50.0), 40 << 20, 1.0),
        ];
        sort(&mut guests, SortKey::Cpu, true);
        assert_eq!(names(&guests), ["a", "b", "d", "c"]);
        sort(&mut guests, SortKey::Memory, true);
        assert_eq!(names(&guests), ["d", "b", "c", "a"]);
        sort(&mut guests, SortKey::Uptime, false);
        assert_eq!(names(&guests), ["d", "a", "b", "c"]);
        sort(&mut guests, SortKey::Name, false);
        assert_eq!(names(&guests), ["a", "b", "c", "d"]);
        sort(&mut guests, SortKey::Name, true);
        assert_eq!(names(&guests), ["d", "c", "b", "a"]);
        assert_eq!(SortKey::from_key('m'), Some(SortKey::Memory));
        assert_eq!(SortKey::from_key('x'), None);
        assert_eq!(SortKey::Net.label(), "net");
    }

    #[test]
    fn cells_show_figures_and_dashes_for_what_is_unknown() {
        let mut g = guest("web", Some(99.84), 40 << 20, 3725.0);
        g.cpu_max_percent = Some(150);
        g.rates = g.rates.map(|r| Rates {
            disk_read_bytes_per_second: Some(1536.0),
            disk_write_bytes_per_second: Some(0.0),
            ..r
        });
        assert_eq!(
            cells(&g),
            [
                "web",
                "running",
                "1",
                "99.8",
                "100",
                "150%",
                "40.0M/192M",
                "1.50K/s 0B/s",
                "- -",
                "1h02m"
            ]
        );
        // A stopped guest: no use, no uptime, its limit still shown.
        let stopped = GuestStats {
            pid: None,
            state: "stopped".into(),
            rates: None,
            ..g
        };
        let row = cells(&stopped);
        assert_eq!(
            (row[3].as_str(), row[6].as_str(), row[9].as_str()),
            ("-", "-/192M", "-")
        );
    }

    #[test]
    fn units_and_durations() {
        assert_eq!(bytes(0.0), "0B");
        assert_eq!(bytes(1023.0), "1023B");
        assert_eq!(bytes(1024.0), "1.00K");
        assert_eq!(bytes(200.0 * 1024.0 * 1024.0), "200M");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.00G");
        assert_eq!(bytes(-5.0), "0B");
        assert_eq!(duration(45.9), "45s");
        assert_eq!(duration(725.0), "12m05s");
        assert_eq!(duration(2.0 * 86_400.0 + 4.0 * 3600.0), "2d04h");
        assert_eq!(duration(f64::NAN), "0s");
    }
}
