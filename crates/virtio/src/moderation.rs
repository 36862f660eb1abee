//! Interrupt moderation for one queue: while used buffers keep coming
//! soon after the last interrupt, the next interrupt waits a little so
//! that one covers several; a buffer after a quiet spell interrupts at
//! once. A hold that caught nothing more (request and response traffic,
//! where the guest waits for the answer) turns holding off for the next
//! few interrupts, twice as many after each such hold in a row, so such
//! traffic is rarely delayed.
//!
//! A hold lasts a fixed time ([`Hold::Fixed`]), or while buffers keep
//! coming ([`Hold::WhileBusy`]): then it ends once none has come for a
//! little longer than the stream's usual gap between them, so it scales
//! with how fast the guest and the host's storage are instead of capping
//! a fast device at a few requests per hold.
//!
//! Each interrupt costs the guest an entry to its handler (and on
//! virtio-mmio an exit to the VMM to read the status); a guest that
//! receives a stream spends much of its CPU on them when every frame
//! comes alone. No crate does this for a virtio device, hence by hand.

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use vmm_sys_util::timerfd::TimerFd;

/// How long a held interrupt waits for more used buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Always this long.
    Fixed(Duration),
    /// Until no buffer has come for [`QUIET_GAPS`] of the stream's usual
    /// gap between used buffers (an average), or `max` in all.
    WhileBusy { max: Duration },
}

/// A busy hold ends after this many usual gaps without a buffer.
pub const QUIET_GAPS: f64 = 1.5;
/// Weight of each new gap in the running average of gaps.
const GAP_WEIGHT: f64 = 1.0 / 8.0;

impl Hold {
    /// The longest a hold may last.
    fn max(self) -> Duration {
        match self {
            Hold::Fixed(d) | Hold::WhileBusy { max: d } => d,
        }
    }
}

/// How a queue's interrupts are moderated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModerationConfig {
    /// How long an interrupt may wait for more used buffers.
    pub hold: Hold,
    /// Buffers used within this time of the last interrupt are a stream.
    pub window: Duration,
    /// Interrupt at once when this many buffers wait.
    pub max_held: usize,
    /// Interrupts sent at once after a hold that caught nothing; doubled
    /// after each further one, up to [`MAX_BACKOFF`].
    pub backoff: u32,
}

/// Most interrupts sent at once between two holds that catch nothing.
pub const MAX_BACKOFF: u32 = 256;

// Devices turn moderation off by having none (no timer); tests use this.
#[cfg(test)]
impl ModerationConfig {
    /// Never holds: every interrupt goes at once.
    pub const OFF: ModerationConfig = ModerationConfig {
        hold: Hold::Fixed(Duration::ZERO),
        window: Duration::ZERO,
        max_held: 0,
        backoff: 0,
    };
}

/// How long a busy hold waits for the next buffer, given the usual gap:
/// never zero (a zero timer is a stopped one), never past `max` (unless
/// `max` itself is under the 1 µs floor).
fn quiet(gap: Duration, max: Duration) -> Duration {
    let floor = Duration::from_micros(1);
    Duration::try_from_secs_f64(gap.as_secs_f64() * QUIET_GAPS)
        .unwrap_or(max)
        .clamp(floor, max.max(floor))
}

/// One queue's moderation state and the timer that ends a hold.
pub struct Moderation {
    config: ModerationConfig,
    timer: TimerFd,
    last_signal: Option<Instant>,
    /// Buffers used since the hold began (`None`: not holding).
    held: Option<usize>,
    /// When the hold began, and when its latest buffer came.
    hold_began: Instant,
    last_used: Instant,
    /// The stream's usual gap between used buffers ([`Hold::WhileBusy`]).
    gap: Option<Duration>,
    /// The timer waits a quiet gap, not for the hold's end.
    quiet_armed: bool,
    /// A hold saw more buffers after it began.
    caught: bool,
    /// Interrupts still to send at once.
    skip: u32,
    /// What the next hold that catches nothing sets `skip` to.
    next_backoff: u32,
}

impl Moderation {
    pub fn new(config: ModerationConfig) -> std::io::Result<Self> {
        Ok(Moderation {
            config,
            timer: TimerFd::new()?,
            last_signal: None,
            held: None,
            hold_began: Instant::now(),
            last_used: Instant::now(),
            gap: None,
            quiet_armed: false,
            caught: false,
            skip: 0,
            next_backoff: config.backoff,
        })
    }

    /// The timer to wait on; when readable, call [`Moderation::on_timer`].
    pub fn timer_fd(&self) -> RawFd {
        self.timer.as_raw_fd()
    }

    /// True while an interrupt waits for the timer.
    #[cfg(test)]
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// A pass put `count` buffers in the used ring at `now`: true if the
    /// interrupt should go now, false if it waits for the timer.
    pub fn on_used(&mut self, count: usize, now: Instant) -> bool {
        if count == 0 {
            return false;
        }
        if let Some(held) = self.held {
            let held = held.saturating_add(count);
            self.caught = true;
            if held >= self.config.max_held || !self.extend(now) {
                self.next_backoff = self.config.backoff;
                self.end_hold();
                return true;
            }
            self.held = Some(held);
            return false;
        }
        if self.config.hold.max().is_zero() || count >= self.config.max_held {
            return true;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return true;
        }
        let since_signal = match self.last_signal {
            Some(last) => now.saturating_duration_since(last),
            None => return true,
        };
        if since_signal >= self.config.window {
            // Not a stream.
            return true;
        }
        let wait = match self.config.hold {
            Hold::Fixed(hold) => hold,
            Hold::WhileBusy { max } => {
                // The first busy hold learns from the gap since the last
                // interrupt, the guest's time to answer it.
                let wait = quiet(*self.gap.get_or_insert(since_signal), max);
                self.quiet_armed = wait < max;
                wait
            }
        };
        if !self.arm(wait) {
            return true;
        }
        self.held = Some(count);
        self.hold_began = now;
        self.last_used = now;
        self.caught = false;
        false
    }

    /// A busy hold caught a buffer at `now`: waits a quiet gap more, up to
    /// the hold's end. False if the hold should end now.
    fn extend(&mut self, now: Instant) -> bool {
        let Hold::WhileBusy { max } = self.config.hold else {
            return true;
        };
        self.learn(now.saturating_duration_since(self.last_used));
        self.last_used = now;
        let until_end = (self.hold_began + max).saturating_duration_since(now);
        let wait = quiet(self.gap.unwrap_or(max), max);
        self.quiet_armed = wait < until_end;
        self.arm(wait.min(until_end))
    }

    /// Starts (or restarts) the timer: false if it cannot run.
    fn arm(&mut self, wait: Duration) -> bool {
        if wait.is_zero() {
            return false;
        }
        match self.timer.reset(wait, None) {
            Ok(()) => true,
            Err(e) => {
                // Without the timer the interrupt would never go: send it now.
                crate::log_limit::warn_limited!("interrupt moderation timer failed: {e}");
                false
            }
        }
    }

    /// Adds one gap between used buffers to the running average.
    fn learn(&mut self, gap: Duration) {
        let gap = gap.min(self.config.window);
        self.gap = Some(match self.gap {
            Some(average) => average.mul_f64(1.0 - GAP_WEIGHT) + gap.mul_f64(GAP_WEIGHT),
            None => gap,
        });
    }

    /// The timer fired: true if a held interrupt should go now.
    pub fn on_timer(&mut self) -> bool {
        if self.held.is_none() {
            let _ = self.timer.clear();
            return false;
        }
        if self.quiet_armed {
            // The guest's next buffer is at least a quiet wait away: count
            // that much, or a gap too long to catch would never be learnt.
            if let (Hold::WhileBusy { max }, Some(gap)) = (self.config.hold, self.gap) {
                self.learn(quiet(gap, max));
            }
        }
        if self.caught {
            self.next_backoff = self.config.backoff;
        } else {
            self.skip = self.next_backoff;
            self.next_backoff = self.next_backoff.saturating_mul(2).min(MAX_BACKOFF);
        }
        self.end_hold();
        true
    }

    /// The stream's usual gap between used buffers, once learnt.
    #[cfg(test)]
    pub fn usual_gap(&self) -> Option<Duration> {
        self.gap
    }

    /// Ends any hold at once (the guest must see its buffers now, say
    /// because it has none left to receive into): true if one was held.
    pub fn flush(&mut self) -> bool {
        let was = self.held.is_some();
        self.end_hold();
        was
    }

    /// True if the last interrupt went within the stream window of `now`:
    /// another is likely soon.
    pub fn in_stream(&self, now: Instant) -> bool {
        self.last_signal
            .is_some_and(|last| now.saturating_duration_since(last) < self.config.window)
    }

    /// Holds `count` more buffers for another interrupt to carry (see
    /// [`Moderation::flush`]), for at most `max` from the first: true if
    /// the interrupt should go now instead.
    pub fn ride(&mut self, count: usize, max: Duration, now: Instant) -> bool {
        if count == 0 {
            return false;
        }
        let held = self.held.unwrap_or(0).saturating_add(count);
        if held >= self.config.max_held {
            self.end_hold();
            return true;
        }
        if self.held.is_none() {
            if !self.arm(max) {
                return true;
            }
            self.hold_began = now;
            self.last_used = now;
            self.quiet_armed = false;
        }
        // Not a hold that caught nothing: the backoff stays as it is.
        self.caught = true;
        self.held = Some(held);
        false
    }

    /// The interrupt was sent at `now`.
    pub fn signalled(&mut self, now: Instant) {
        self.last_signal = Some(now);
    }

    fn end_hold(&mut self) {
        self.held = None;
        self.quiet_armed = false;
        let _ = self.timer.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the rate_limiter fuzz target: a busy hold whose `max` was
    /// under the 1 µs floor made `clamp` panic (min > max).
    #[test]
    fn quiet_stays_in_bounds_for_any_gap_and_max() {
        let us = Duration::from_micros;
        assert_eq!(quiet(us(10), Duration::ZERO), us(1));
        assert_eq!(
            quiet(Duration::from_nanos(500), Duration::from_nanos(10)),
            us(1)
        );
        assert_eq!(quiet(Duration::ZERO, us(100)), us(1));
        assert_eq!(quiet(Duration::MAX, us(100)), us(100));
        assert!(quiet(us(10), us(100)) <= us(100));
    }

    const CONFIG: ModerationConfig = ModerationConfig {
        hold: Hold::Fixed(Duration::from_millis(50)),
        window: Duration::from_millis(2),
        max_held: 8,
        backoff: 2,
    };

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Whether the moderation timer becomes readable within `timeout_ms`.
    fn timer_fires(m: &Moderation, timeout_ms: i32) -> bool {
        let mut fds = [libc::pollfd {
            fd: m.timer_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd, for the length given.
        unsafe { libc::poll(fds.as_mut_ptr(), 1, timeout_ms) == 1 }
    }

    #[test]
    fn a_lone_buffer_interrupts_at_once() {
        let mut m = Moderation::new(CONFIG).unwrap();
        let t0 = Instant::now();
        assert!(m.on_used(1, t0), "no interrupt before: not a stream");
        m.signalled(t0);
        assert!(m.on_used(1, t0 + ms(10)), "after a quiet spell");
        assert!(!m.holding());
    }

    #[test]
    fn a_stream_is_held_until_the_timer() {
        let mut m = Moderation::new(CONFIG).unwrap();
        let t0 = Instant::now();
        assert!(m.on_used(1, t0));
        m.signalled(t0);
        assert!(!m.on_used(1, t0 + ms(1)), "soon after the last: held");
        assert!(m.holding());
        assert!(!m.on_used(2, t0 + ms(1)));
        assert!(m.on_timer());
        assert!(!m.holding());
        // The hold caught more: the next one in the stream is held too.
        m.signalled(t0 + ms(2));
        assert!(!m.on_used(1, t0 + ms(3)));
    }

    #[test]
    fn the_timer_fd_fires_after_the_hold() {
        let config = ModerationConfig {
            hold: Hold::Fixed(ms(1)),
            ..CONFIG
        };
        let mut m = Moderation::new(config).unwrap();
        let t0 = Instant::now();
        m.signalled(t0);
        assert!(!m.on_used(1, t0));
        assert!(timer_fires(&m, 5000), "the timer fires");
        assert!(m.on_timer());
        assert!(!timer_fires(&m, 0), "and is quiet once handled");
    }

    #[test]
    fn enough_held_buffers_interrupt_at_once() {
        let mut m = Moderation::new(CONFIG).unwrap();
        let t0 = Instant::now();
        m.signalled(t0);
        assert!(!m.on_used(4, t0));
        assert!(m.on_used(4, t0), "max_held reached");
        assert!(!m.holding());
        assert!(!m.on_timer(), "nothing held any more");
        assert!(m.on_used(8, t0), "a full batch never waits");
    }

    #[test]
    fn a_hold_that_caught_nothing_backs_off() {
        let mut m = Moderation::new(CONFIG).unwrap();
        let t0 = Instant::now();
        m.signalled(t0);
        assert!(!m.on_used(1, t0));
        assert!(m.on_timer());
        m.signalled(t0);
        // Request and response: the next `backoff` go at once.
        assert!(m.on_used(1, t0));
        assert!(m.on_used(1, t0));
        assert!(!m.on_used(1, t0), "then holding is tried again");
        // Caught nothing again: twice as long without holding.
        assert!(m.on_timer());
        for _ in 0..4 {
            assert!(m.on_used(1, t0));
        }
        assert!(!m.on_used(1, t0));
        // A hold that catches more resets the backoff.
        assert!(!m.on_used(1, t0));
        assert!(m.on_timer());
        assert!(!m.on_used(1, t0), "held again at once");
        assert!(m.on_timer(), "caught nothing");
        assert!(m.on_used(1, t0));
        assert!(m.on_used(1, t0));
        assert!(!m.on_used(1, t0), "back to the first backoff");
    }

    #[test]
    fn the_backoff_stops_growing() {
        let mut m = Moderation::new(CONFIG).unwrap();
        let t0 = Instant::now();
        m.signalled(t0);
        for _ in 0..20 {
            while m.on_used(1, t0) {}
            assert!(m.on_timer());
        }
        let mut sent = 0;
        while m.on_used(1, t0) {
            sent += 1;
        }
        assert_eq!(sent, MAX_BACKOFF);
    }

    #[test]
    fn flush_ends_a_hold_and_off_never_holds() {
        let mut m = Moderation::new(CONFIG).unwrap();
        let t0 = Instant::now();
        m.signalled(t0);
        assert!(!m.on_used(1, t0));
        assert!(m.flush());
        assert!(!m.flush());
        let mut off = Moderation::new(ModerationConfig::OFF).unwrap();
        off.signalled(t0);
        assert!(off.on_used(1, t0));
        assert!(!off.on_used(0, t0), "nothing used: nothing to say");
    }

    const BUSY: ModerationConfig = ModerationConfig {
        hold: Hold::WhileBusy { max: ms(3) },
        ..CONFIG
    };

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn a_busy_hold_lasts_while_buffers_come_up_to_its_max() {
        let mut m = Moderation::new(BUSY).unwrap();
        let t0 = Instant::now();
        m.signalled(t0);
        assert!(!m.on_used(1, t0 + us(800)), "a stream: held");
        assert_eq!(m.usual_gap(), Some(us(800)), "learnt from the answer");
        // Each buffer that comes extends the hold...
        assert!(!m.on_used(1, t0 + us(1600)));
        assert!(!m.on_used(1, t0 + us(2400)));
        assert!(m.holding());
        // ...but not past its max, 3 ms after it began.
        assert!(m.on_used(1, t0 + us(3800)), "the hold's max reached");
        assert!(!m.holding());
        assert!(!m.on_timer(), "nothing held any more");
    }

    #[test]
    fn a_busy_hold_learns_the_streams_gap() {
        let mut m = Moderation::new(BUSY).unwrap();
        let t0 = Instant::now();
        m.signalled(t0);
        assert!(!m.on_used(1, t0 + us(1000)));
        // Buffers every 10 µs: the usual gap falls towards it.
        let mut t = t0 + us(1000);
        for _ in 0..6 {
            t += us(10);
            assert!(!m.on_used(1, t));
        }
        let gap = m.usual_gap().unwrap();
        assert!(gap < us(1000) && gap > us(10), "{gap:?}");
        // Ended by the timer, the hold counts a quiet wait as a gap, so
        // a stream whose gaps grew is learnt too.
        assert!(m.on_timer());
        let after = m.usual_gap().unwrap();
        assert!(after > gap, "{after:?} after {gap:?}");
        let expected = gap.mul_f64(1.0 - GAP_WEIGHT) + gap.mul_f64(QUIET_GAPS * GAP_WEIGHT);
        assert!(
            after.abs_diff(expected) < us(1),
            "{after:?}, not {expected:?}"
        );
    }

    #[test]
    fn a_fast_stream_gets_short_busy_holds() {
        let mut m = Moderation::new(ModerationConfig {
            hold: Hold::WhileBusy {
                max: Duration::from_secs(60),
            },
            window: Duration::from_secs(1),
            ..CONFIG
        })
        .unwrap();
        let t0 = Instant::now();
        m.signalled(t0);
        assert!(!m.on_used(1, t0 + us(20)));
        // The timer waits 30 µs (1.5 gaps), not the 60 s maximum.
        assert!(timer_fires(&m, 10_000), "the quiet wait ends the hold");
        assert!(m.on_timer());
    }

    #[test]
    fn a_busy_hold_that_caught_nothing_backs_off() {
        let mut m = Moderation::new(BUSY).unwrap();
        let t0 = Instant::now();
        m.signalled(t0);
        assert!(!m.on_used(1, t0 + us(500)));
        assert!(m.on_timer());
        m.signalled(t0 + us(1000));
        assert!(m.on_used(1, t0 + us(1500)), "backing off");
        assert!(m.on_used(1, t0 + us(1500)));
        assert!(!m.on_used(1, t0 + us(1500)), "then held again");
    }

    #[test]
    fn a_queue_is_in_a_stream_for_a_window_after_its_interrupt() {
        let mut m = Moderation::new(CONFIG).unwrap();
        let t0 = Instant::now();
        assert!(!m.in_stream(t0), "never interrupted");
        m.signalled(t0);
        assert!(m.in_stream(t0 + ms(1)));
        assert!(!m.in_stream(t0 + ms(2)), "the window is over");
    }

    #[test]
    fn riding_buffers_wait_for_a_flush_or_the_timer() {
        let config = ModerationConfig {
            hold: Hold::Fixed(ms(1)),
            ..CONFIG
        };
        let mut m = Moderation::new(config).unwrap();
        let t0 = Instant::now();
        assert!(!m.ride(0, ms(50), t0), "nothing to hold");
        assert!(!m.holding());
        // No interrupt yet and no stream: riding holds all the same.
        assert!(!m.ride(2, ms(50), t0));
        assert!(!m.ride(3, ms(50), t0));
        assert!(m.holding());
        assert!(m.flush(), "another interrupt carries them");
        assert!(!m.holding());
        assert!(!m.ride(1, ms(1), t0));
        assert!(timer_fires(&m, 5000), "the ride's own timer");
        assert!(m.on_timer(), "then the interrupt goes");
    }

    #[test]
    fn riding_buffers_go_at_once_when_enough_wait() {
        let mut m = Moderation::new(CONFIG).unwrap();
        let t0 = Instant::now();
        assert!(!m.ride(7, ms(50), t0));
        assert!(m.ride(1, ms(50), t0), "max_held reached");
        assert!(!m.holding());
        assert!(!m.on_timer(), "nothing left for the timer");
    }

    #[test]
    fn a_ride_leaves_the_backoff_alone() {
        let mut m = Moderation::new(CONFIG).unwrap();
        let t0 = Instant::now();
        m.signalled(t0);
        assert!(!m.ride(1, ms(50), t0));
        assert!(m.on_timer());
        m.signalled(t0);
        // A ride that ends on its timer is no failed hold: the next buffer
        // in the stream is held as before, not sent at once.
        assert!(!m.on_used(1, t0));
    }
}
