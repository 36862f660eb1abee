//! Rates from two samples of a guest's counters: CPU use in percent of
//! one host CPU, bytes per second. The daemon keeps each guest's last
//! sample, so each `GET /stats` gives the rates since an earlier one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::stats::Counters;

/// Rates are taken over at least this long: a client that asks more
/// often gets rates over the same, longer interval instead of over a few
/// milliseconds of noise.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// Counters and when they were read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub at: Instant,
    pub counters: Counters,
}

/// What a guest used per second between two samples. `None` where a
/// counter is missing from either sample or went backwards (a new VMM,
/// a new cgroup).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Over the interval, in percent of one host CPU (150 = one and a
    /// half CPUs busy).
    pub cpu_percent: Option<f64>,
    /// Percent of the interval the guest was held back by its cap.
    pub cpu_throttled_percent: Option<f64>,
    pub disk_read_bytes_per_second: Option<f64>,
    pub disk_write_bytes_per_second: Option<f64>,
    pub net_rx_bytes_per_second: Option<f64>,
    pub net_tx_bytes_per_second: Option<f64>,
}

/// The rates from `earlier` to `later`; `None` if no time passed.
pub fn rates(earlier: &Sample, later: &Sample) -> Option<Rates> {
    let seconds = later.at.checked_duration_since(earlier.at)?.as_secs_f64();
    if seconds <= 0.0 {
        return None;
    }
    let per_second = |pick: fn(&Counters) -> Option<u64>| {
        let grown = pick(&later.counters)?.checked_sub(pick(&earlier.counters)?)?;
        Some(grown as f64 / seconds)
    };
    // Nanoseconds per second of wall time, as percent: 1e9 ns/s = 100%.
    let percent = |ns_per_second: f64| ns_per_second / 1e7;
    Some(Rates {
        cpu_percent: per_second(|c| c.cpu_ns).map(percent),
        cpu_throttled_percent: per_second(|c| c.cpu_throttled_ns).map(percent),
        disk_read_bytes_per_second: per_second(|c| c.disk_read_bytes),
        disk_write_bytes_per_second: per_second(|c| c.disk_write_bytes),
        net_rx_bytes_per_second: per_second(|c| c.net_rx_bytes),
        net_tx_bytes_per_second: per_second(|c| c.net_tx_bytes),
    })
}

/// Each guest's last two samples at least [`MIN_INTERVAL`] apart, that
/// rates are taken from.
#[derive(Debug, Default)]
pub struct History {
    samples: BTreeMap<String, Pair>,
}

#[derive(Clone, Copy, Debug)]
struct Pair {
    older: Option<Sample>,
    newer: Sample,
}

impl History {
    /// The rates of guest `name` up to `now` (`None` the first time),
    /// from the newest sample at least [`MIN_INTERVAL`] older, so that
    /// a look soon after another still gets rates over a long enough
    /// time. `now` is kept once it is that far from the newest.
    pub fn update(&mut self, name: &str, now: Sample) -> Option<Rates> {
        let Some(pair) = self.samples.get_mut(name) else {
            let pair = Pair {
                older: None,
                newer: now,
            };
            self.samples.insert(name.to_owned(), pair);
            return None;
        };
        let far = |sample: &Sample| now.at.saturating_duration_since(sample.at) >= MIN_INTERVAL;
        let reference = match pair.older {
            Some(older) if !far(&pair.newer) => older,
            _ => pair.newer,
        };
        if far(&pair.newer) {
            pair.older = Some(pair.newer);
            pair.newer = now;
        }
        rates(&reference, &now)
    }

    /// Forgets guests that are gone (or not running: a restarted VMM's
    /// counters start again).
    pub fn keep_only(&mut self, names: &[&str]) {
        self.samples
            .retain(|name, _| names.contains(&name.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: Instant, cpu_ns: u64, read: u64, rx: Option<u64>) -> Sample {
        Sample {
            at,
            counters: Counters {
                cpu_ns: Some(cpu_ns),
                disk_read_bytes: Some(read),
                net_rx_bytes: rx,
                ..Counters::default()
            },
        }
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-6)
    }

    #[test]
    fn rates_are_growth_per_second() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        // 1.5 s of CPU in 2 s: 75% of one CPU; 4 MB read in 2 s.
        let r = rates(
            &sample(t0, 1_000_000_000, 0, Some(10)),
            &sample(t1, 2_500_000_000, 4_000_000, None),
        )
        .unwrap();
        assert!(close(r.cpu_percent, 75.0), "{r:?}");
        assert!(close(r.disk_read_bytes_per_second, 2_000_000.0), "{r:?}");
        // Missing in one sample, or never counted: no rate.
        assert_eq!(r.net_rx_bytes_per_second, None);
        assert_eq!(r.disk_write_bytes_per_second, None);
        // Two busy CPUs are 200%.
        let two = rates(&sample(t0, 0, 0, None), &sample(t1, 4_000_000_000, 0, None)).unwrap();
        assert!(close(two.cpu_percent, 200.0));
    }

    #[test]
    fn a_counter_that_went_back_or_no_time_gives_no_rate() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let r = rates(&sample(t0, 500, 9, None), &sample(t1, 100, 10, None)).unwrap();
        assert_eq!(r.cpu_percent, None);
        assert!(close(r.disk_read_bytes_per_second, 1.0));
        assert_eq!(
            rates(&sample(t1, 0, 0, None), &sample(t0, 1, 1, None)),
            None
        );
        assert_eq!(
            rates(&sample(t0, 0, 0, None), &sample(t0, 1, 1, None)),
            None
        );
    }

    #[test]
    fn history_takes_rates_over_at_least_the_minimum_interval() {
        let mut history = History::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(history.update("a", sample(t0, 0, 0, None)), None);
        // A quick second look has only the first sample: over 0.1 s.
        let quick = history.update("a", sample(at(100), 10_000_000, 0, None));
        assert!(close(quick.unwrap().cpu_percent, 10.0));
        // 1 s after the first: over 1 s, and kept.
        let later = history.update("a", sample(at(1000), 500_000_000, 0, None));
        assert!(close(later.unwrap().cpu_percent, 50.0));
        // 10 ms later: still over the 1.01 s since the first sample, not
        // over 10 ms of noise.
        let soon = history.update("a", sample(at(1010), 501_000_000, 0, None));
        assert!(close(soon.unwrap().cpu_percent, 501.0 / 10.1), "{soon:?}");
        // A second after that: from the kept sample.
        let next = history.update("a", sample(at(2000), 500_000_000, 0, None));
        assert!(close(next.unwrap().cpu_percent, 0.0));
        history.keep_only(&["b"]);
        assert_eq!(history.update("a", sample(t0, 0, 0, None)), None);
    }
}
