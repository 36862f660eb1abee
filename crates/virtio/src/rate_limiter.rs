//! Token-bucket rate limiting for device I/O, so one guest cannot take all
//! of the host's disk or network capacity.
//!
//! Written here because the rust-vmm rate limiters live inside Firecracker
//! and Cloud Hypervisor, not in a crate of their own.

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use vmm_sys_util::timerfd::TimerFd;

/// A bucket of `size` tokens that refills completely every `refill`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucketConfig {
    pub size: u64,
    pub refill: Duration,
    /// Tokens granted once, on top of the full bucket and spent before
    /// it, that never come back (Firecracker's `one_time_burst`, for a
    /// fast boot under a tight limit); 0 for none.
    pub one_time_burst: u64,
}

impl TokenBucketConfig {
    /// Parses `N[/TIME]`: N tokens (with K/M/G suffixes, powers of 1024)
    /// per TIME (`500ms`, `2s`; one second when left out).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (amount, time) = text.split_once('/').unwrap_or((text, "1s"));
        let size =
            parse_amount(amount).ok_or_else(|| format!("invalid amount {amount:?} in {text:?}"))?;
        let refill = parse_duration(time)
            .ok_or_else(|| format!("invalid refill time {time:?} in {text:?}"))?;
        if size == 0 || refill.is_zero() {
            return Err(format!(
                "{text:?}: the amount and the refill time must be above zero"
            ));
        }
        Ok(TokenBucketConfig {
            size,
            refill,
            one_time_burst: 0,
        })
    }
}

/// A rate limiter's settings: its two buckets, either of which may be
/// left out (no limit).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes per refill time.
    pub bandwidth: Option<TokenBucketConfig>,
    /// Operations (requests, frames) per refill time.
    pub ops: Option<TokenBucketConfig>,
}

impl Limits {
    /// A limiter with these buckets, full.
    pub fn limiter(&self) -> std::io::Result<RateLimiter> {
        RateLimiter::new(self.bandwidth.clone(), self.ops.clone())
    }

    /// These settings changed by `update`.
    pub fn apply(&mut self, update: &LimiterUpdate) {
        update.apply_to(&mut self.bandwidth, &mut self.ops);
    }
}

/// A change to a rate limiter's two buckets, each left as it is (`None`),
/// replaced by a new, full bucket (`Some(Some(..))`), or removed
/// (`Some(None)`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimiterUpdate {
    pub bandwidth: Option<Option<TokenBucketConfig>>,
    pub ops: Option<Option<TokenBucketConfig>>,
}

impl LimiterUpdate {
    /// True when it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.bandwidth.is_none() && self.ops.is_none()
    }

    /// The limits `bandwidth` and `ops` become.
    pub fn apply_to(
        &self,
        bandwidth: &mut Option<TokenBucketConfig>,
        ops: &mut Option<TokenBucketConfig>,
    ) {
        if let Some(new) = &self.bandwidth {
            bandwidth.clone_from(new);
        }
        if let Some(new) = &self.ops {
            ops.clone_from(new);
        }
    }
}

fn parse_amount(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    text.strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
}

/// A token bucket: spends tokens, refills them continuously at
/// `size / refill`.
#[derive(Debug)]
pub struct TokenBucket {
    config: TokenBucketConfig,
    tokens: u64,
    /// What is left of the one-time burst.
    burst: u64,
    last_refill: Instant,
}

impl TokenBucket {
    pub fn new(config: TokenBucketConfig) -> Self {
        TokenBucket {
            tokens: config.size,
            burst: config.one_time_burst,
            config,
            last_refill: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_refill);
        let per_ns = self.config.refill.as_nanos().max(1);
        let new = (u128::from(self.config.size).saturating_mul(elapsed.as_nanos()) / per_ns)
            .min(u128::from(u64::MAX));
        let new = u64::try_from(new).unwrap_or(u64::MAX);
        if new > 0 {
            self.tokens = self.tokens.saturating_add(new).min(self.config.size);
            self.last_refill = now;
        }
    }

    /// Takes `tokens` if there are enough. A request larger than the whole
    /// bucket is let through when the bucket is full, and empties it, so it
    /// is slowed rather than stuck forever.
    /// The one-time burst is spent first; what it does not cover comes
    /// from the bucket, and nothing is spent when the request waits.
    fn try_take(&mut self, tokens: u64, now: Instant) -> bool {
        self.refill(now);
        let from_burst = tokens.min(self.burst);
        let rest = tokens - from_burst;
        if rest <= self.tokens {
            self.tokens -= rest;
        } else if rest > self.config.size && self.tokens == self.config.size {
            self.tokens = 0;
        } else {
            return false;
        }
        self.burst -= from_burst;
        true
    }

    /// Takes `tokens` now if there are enough, for a user that drops
    /// what the limit refuses rather than waiting (the serial console's
    /// output, as in Firecracker).
    pub fn take(&mut self, tokens: u64) -> bool {
        self.try_take(tokens, Instant::now())
    }

    /// How long until `tokens` (capped at the bucket size) are available.
    fn wait_for(&self, tokens: u64) -> Duration {
        let missing = tokens
            .saturating_sub(self.burst)
            .min(self.config.size)
            .saturating_sub(self.tokens);
        // The refill time is the user's: up to u64::MAX seconds.
        let ns = u128::from(missing).saturating_mul(self.config.refill.as_nanos())
            / u128::from(self.config.size.max(1));
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)).max(Duration::from_millis(1))
    }
}

/// Limits on bytes and operations, with a timer that says when a blocked
/// device may go on.
#[derive(Debug)]
pub struct RateLimiter {
    bandwidth: Option<TokenBucket>,
    ops: Option<TokenBucket>,
    timer: TimerFd,
    blocked: bool,
}

impl RateLimiter {
    pub fn new(
        bandwidth: Option<TokenBucketConfig>,
        ops: Option<TokenBucketConfig>,
    ) -> std::io::Result<Self> {
        Ok(RateLimiter {
            bandwidth: bandwidth.map(TokenBucket::new),
            ops: ops.map(TokenBucket::new),
            timer: TimerFd::new()?,
            blocked: false,
        })
    }

    /// Replaces the buckets `update` names with new, full ones, or removes
    /// them. A device blocked under the old limits tries again at once
    /// (its timer fires in a millisecond): the new ones may let it go, or
    /// block it for as long as they say.
    pub fn update(&mut self, update: &LimiterUpdate) {
        if update.is_empty() {
            return;
        }
        if let Some(new) = &update.bandwidth {
            self.bandwidth = new.clone().map(TokenBucket::new);
        }
        if let Some(new) = &update.ops {
            self.ops = new.clone().map(TokenBucket::new);
        }
        if self.blocked {
            self.block(Duration::from_millis(1));
        }
    }

    /// Asks to do one operation of `bytes`. On false the device must stop
    /// (keeping the request) until [`RateLimiter::on_timer`] runs.
    pub fn consume(&mut self, bytes: u64) -> bool {
        if self.blocked {
            return false;
        }
        let now = Instant::now();
        let ops_ok = self.ops.as_mut().is_none_or(|b| b.try_take(1, now));
        if !ops_ok {
            let wait = self.ops.as_ref().map_or(Duration::ZERO, |b| b.wait_for(1));
            return self.block(wait);
        }
        let bytes_ok = self
            .bandwidth
            .as_mut()
            .is_none_or(|b| b.try_take(bytes, now));
        if !bytes_ok {
            // Give the operation token back: the request did not happen.
            if let Some(ops) = self.ops.as_mut() {
                ops.tokens = (ops.tokens + 1).min(ops.config.size);
            }
            let wait = self
                .bandwidth
                .as_ref()
                .map_or(Duration::ZERO, |b| b.wait_for(bytes));
            return self.block(wait);
        }
        true
    }

    /// Asks to move `bytes` more for an operation already counted (a long
    /// request done a piece at a time). On false, as for
    /// [`RateLimiter::consume`].
    pub fn consume_bytes(&mut self, bytes: u64) -> bool {
        if self.blocked {
            return false;
        }
        let Some(bandwidth) = self.bandwidth.as_mut() else {
            return true;
        };
        if bandwidth.try_take(bytes, Instant::now()) {
            return true;
        }
        let wait = bandwidth.wait_for(bytes);
        self.block(wait)
    }

    /// The bandwidth bucket's size: the most bytes one charge should ask
    /// for, since a larger one passes whenever the bucket is full.
    pub fn bandwidth_burst(&self) -> Option<u64> {
        self.bandwidth.as_ref().map(|b| b.config.size)
    }

    fn block(&mut self, wait: Duration) -> bool {
        self.blocked = true;
        if let Err(e) = self.timer.reset(wait, None) {
            // Without a timer nothing would unblock the device: let it run.
            crate::log_limit::warn_limited!("rate limiter timer failed, not limiting: {e}");
            self.blocked = false;
            return true;
        }
        false
    }

    /// True while the device waits for the timer.
    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// The timer fired: clears it and lets the device try again.
    pub fn on_timer(&mut self) {
        let _ = self.timer.clear();
        self.blocked = false;
    }

    /// True when neither limit is set.
    pub fn is_unlimited(&self) -> bool {
        self.bandwidth.is_none() && self.ops.is_none()
    }
}

impl AsRawFd for RateLimiter {
    /// The timer to wait on while blocked.
    fn as_raw_fd(&self) -> RawFd {
        self.timer.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_amounts_and_refill_times() {
        let c = TokenBucketConfig::parse("10M/100ms").unwrap();
        assert_eq!((c.size, c.refill), (10 << 20, Duration::from_millis(100)));
        let c = TokenBucketConfig::parse("500").unwrap();
        assert_eq!((c.size, c.refill), (500, Duration::from_secs(1)));
        for bad in ["", "0", "5/0s", "x/1s", "5/1h", "5Q"] {
            assert!(TokenBucketConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bucket_spends_refills_and_caps() {
        let config = TokenBucketConfig {
            size: 1000,
            refill: Duration::from_secs(1),
            one_time_burst: 0,
        };
        let mut b = TokenBucket::new(config);
        let t0 = b.last_refill;
        assert!(b.try_take(600, t0));
        assert!(!b.try_take(600, t0));
        assert_eq!(b.wait_for(600), Duration::from_millis(200));
        assert!(b.try_take(600, t0 + Duration::from_millis(200)));
        // Never more than the bucket holds.
        b.refill(t0 + Duration::from_secs(100));
        assert_eq!(b.tokens, 1000);
    }

    #[test]
    fn the_longest_refill_time_waits_without_overflow() {
        let config = TokenBucketConfig::parse(&format!("{}/{}s", u64::MAX, u64::MAX)).unwrap();
        let mut b = TokenBucket::new(config);
        let t0 = b.last_refill;
        assert!(b.try_take(u64::MAX, t0));
        assert!(b.wait_for(u64::MAX) > Duration::from_secs(1 << 30));
        b.refill(t0 + Duration::from_secs(1 << 40));
    }

    #[test]
    fn the_one_time_burst_is_spent_first_and_never_refills() {
        let mut b = TokenBucket::new(TokenBucketConfig {
            size: 100,
            refill: Duration::from_secs(1),
            one_time_burst: 250,
        });
        let t0 = b.last_refill;
        assert!(b.try_take(300, t0), "the burst and the bucket together");
        assert_eq!((b.burst, b.tokens), (0, 50));
        assert!(!b.try_take(60, t0));
        assert_eq!(b.wait_for(60), Duration::from_millis(100));
        b.refill(t0 + Duration::from_secs(100));
        assert_eq!(
            (b.burst, b.tokens),
            (0, 100),
            "the burst does not come back"
        );
        let mut b = TokenBucket::new(TokenBucketConfig {
            size: 100,
            refill: Duration::from_secs(1),
            one_time_burst: 50,
        });
        assert!(
            b.try_take(120, b.last_refill),
            "50 from the burst, 70 from the bucket"
        );
        assert_eq!((b.burst, b.tokens), (0, 30));
    }

    #[test]
    fn oversized_request_passes_only_on_a_full_bucket() {
        let mut b = TokenBucket::new(TokenBucketConfig {
            size: 100,
            refill: Duration::from_secs(1),
            one_time_burst: 0,
        });
        let t0 = b.last_refill;
        assert!(b.try_take(500, t0));
        assert_eq!(b.tokens, 0);
        assert!(!b.try_take(500, t0 + Duration::from_millis(500)));
    }

    #[test]
    fn limiter_blocks_until_its_timer() {
        let mut l = RateLimiter::new(
            None,
            Some(TokenBucketConfig {
                size: 2,
                refill: Duration::from_millis(50),
                one_time_burst: 0,
            }),
        )
        .unwrap();
        assert!(l.consume(4096));
        assert!(l.consume(4096));
        assert!(!l.consume(4096));
        assert!(l.is_blocked());
        assert!(!l.consume(1), "stays blocked until the timer");
        std::thread::sleep(Duration::from_millis(60));
        l.on_timer();
        assert!(l.consume(4096));
    }

    #[test]
    fn bytes_alone_spend_bandwidth_and_no_operation() {
        let bucket = |size| TokenBucketConfig {
            size,
            refill: Duration::from_secs(10),
            one_time_burst: 0,
        };
        let mut l = RateLimiter::new(Some(bucket(1000)), Some(bucket(1))).unwrap();
        assert_eq!(l.bandwidth_burst(), Some(1000));
        assert!(l.consume_bytes(600));
        assert!(!l.consume_bytes(600), "bandwidth spent");
        assert!(l.is_blocked());
        l.on_timer();
        assert!(l.consume(0), "the one operation is still there");
        let mut ops_only = RateLimiter::new(None, Some(bucket(1))).unwrap();
        assert!(ops_only.consume_bytes(u64::MAX));
        assert_eq!(ops_only.bandwidth_burst(), None);
    }

    #[test]
    fn an_update_replaces_or_removes_buckets_and_unblocks_soon() {
        let bucket = |size| TokenBucketConfig {
            size,
            refill: Duration::from_secs(100),
            one_time_burst: 0,
        };
        let mut l = RateLimiter::new(Some(bucket(1000)), Some(bucket(1))).unwrap();
        assert!(l.consume(10));
        assert!(!l.consume(10), "one operation per 100 s");
        // A larger ops bucket, full: the device goes on after the timer,
        // which now fires at once rather than in 100 s.
        l.update(&LimiterUpdate {
            bandwidth: None,
            ops: Some(Some(bucket(3))),
        });
        assert!(l.is_blocked(), "until the timer");
        std::thread::sleep(Duration::from_millis(20));
        assert!(!l.timer.is_armed().unwrap(), "fired");
        l.on_timer();
        for _ in 0..3 {
            assert!(l.consume(100));
        }
        assert!(!l.consume(100), "three operations");
        l.on_timer();
        // The bandwidth bucket was left alone: 690 bytes are left in it.
        l.update(&LimiterUpdate {
            bandwidth: None,
            ops: Some(None),
        });
        l.on_timer();
        assert!(l.consume(690));
        assert!(!l.consume(1));
        l.on_timer();
        l.update(&LimiterUpdate {
            bandwidth: Some(None),
            ops: None,
        });
        l.on_timer();
        assert!(l.is_unlimited());
        assert!(l.consume(u64::MAX));
        // An empty update changes nothing.
        let empty = LimiterUpdate::default();
        assert!(empty.is_empty());
        let (mut bw, mut ops) = (Some(bucket(5)), None);
        empty.apply_to(&mut bw, &mut ops);
        assert_eq!((bw.clone(), ops.clone()), (Some(bucket(5)), None));
        LimiterUpdate {
            bandwidth: Some(None),
            ops: Some(Some(bucket(2))),
        }
        .apply_to(&mut bw, &mut ops);
        assert_eq!((bw, ops), (None, Some(bucket(2))));
    }

    #[test]
    fn unlimited_never_blocks() {
        let mut l = RateLimiter::new(None, None).unwrap();
        assert!(l.is_unlimited());
        for _ in 0..10_000 {
            assert!(l.consume(1 << 20));
        }
    }
}
