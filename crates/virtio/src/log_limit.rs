//! Rate-limited logging for what a guest can make happen again and again
//! (a malformed ring entry, a failed interrupt, a refused system call per
//! request): without a limit, a guest grows the host's logs at will.
//!
//! Each call site of [`warn_limited!`](crate::log_limit::warn_limited)
//! has a token bucket of its own: [`BURST`] lines at once, then one line
//! per [`INTERVAL`]. The first line logged after some were held back says
//! how many (`suppressed=N`).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Lines a call site logs at once before the limit starts.
pub const BURST: u32 = 10;
/// Then one line per this long, at most.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// The token bucket of one call site.
#[derive(Debug)]
pub struct LogLimit {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: u32,
    /// When `tokens` was last topped up; `None` until the first line.
    refilled: Option<Instant>,
    /// Lines held back since the last one logged.
    suppressed: u64,
}

impl LogLimit {
    pub const fn new() -> LogLimit {
        LogLimit {
            state: Mutex::new(State {
                tokens: BURST,
                refilled: None,
                suppressed: 0,
            }),
        }
    }

    /// Whether a line may be logged now: `Some(n)`, with `n` lines held
    /// back since the last one logged, or `None` (counted as held back).
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> Option<u64> {
        // Nothing under the lock can panic halfway through a change.
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let refilled = *s.refilled.get_or_insert(now);
        let elapsed = now.saturating_duration_since(refilled);
        let gained = elapsed.as_nanos() / INTERVAL.as_nanos();
        if gained > 0 {
            let gained = u32::try_from(gained).unwrap_or(u32::MAX);
            s.tokens = s.tokens.saturating_add(gained).min(BURST);
            // Whole intervals only: a partial one keeps counting.
            let used = INTERVAL.saturating_mul(gained);
            s.refilled = Some(refilled.checked_add(used).unwrap_or(now).min(now));
        }
        if s.tokens == 0 {
            s.suppressed = s.suppressed.saturating_add(1);
            return None;
        }
        s.tokens -= 1;
        Some(std::mem::take(&mut s.suppressed))
    }
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit::new()
    }
}

/// `tracing::warn!`, at most [`BURST`] lines at once and then one per
/// [`INTERVAL`] from this call site; the first line after a pause carries
/// `suppressed = N`. For every message a guest can trigger.
macro_rules! warn_limited {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::log_limit::LogLimit = $crate::log_limit::LogLimit::new();
        match LIMIT.admit() {
            Some(0) => tracing::warn!($($arg)+),
            Some(suppressed) => tracing::warn!(suppressed, $($arg)+),
            None => {}
        }
    }};
}
pub(crate) use warn_limited;

/// Counting log lines in tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata};

    /// Counts the warnings it is given.
    struct Counter(Arc<AtomicUsize>);

    impl tracing::Subscriber for Counter {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            if *event.metadata().level() == Level::WARN {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    /// How many warnings `f` logs on this thread.
    pub fn warnings_of(f: impl FnOnce()) -> usize {
        let lines = Arc::new(AtomicUsize::new(0));
        tracing::subscriber::with_default(Counter(lines.clone()), f);
        lines.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::warnings_of;
    use super::*;

    #[test]
    fn a_burst_then_one_line_per_interval_with_the_count_held_back() {
        let limit = LogLimit::new();
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert_eq!(limit.admit_at(t0), Some(0));
        }
        for _ in 0..500 {
            assert_eq!(limit.admit_at(t0), None);
        }
        let almost = t0 + INTERVAL - Duration::from_millis(1);
        assert_eq!(limit.admit_at(almost), None, "not a whole interval yet");
        assert_eq!(limit.admit_at(t0 + INTERVAL), Some(501));
        assert_eq!(limit.admit_at(t0 + INTERVAL), None);
        // Three intervals later, three lines; never more than a burst.
        let later = t0 + INTERVAL * 4;
        assert_eq!(limit.admit_at(later), Some(1));
        assert_eq!(limit.admit_at(later), Some(0));
        assert_eq!(limit.admit_at(later), Some(0));
        assert_eq!(limit.admit_at(later), None);
        let much_later = later + INTERVAL * 1000;
        let admitted = (0..100)
            .filter(|_| limit.admit_at(much_later).is_some())
            .count();
        assert_eq!(admitted, BURST as usize);
    }

    #[test]
    fn time_going_backwards_admits_nothing_extra() {
        let limit = LogLimit::new();
        let t0 = Instant::now() + INTERVAL;
        for _ in 0..BURST {
            assert!(limit.admit_at(t0).is_some());
        }
        assert_eq!(limit.admit_at(t0 - INTERVAL), None);
    }

    #[test]
    fn a_flood_from_one_call_site_logs_a_burst() {
        let lines = warnings_of(|| {
            for i in 0..1024 {
                warn_limited!(request = i, "a malformed request");
            }
        });
        assert_eq!(lines, BURST as usize);
    }
}
