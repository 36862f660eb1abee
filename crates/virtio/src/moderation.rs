//! Interrupt moderation for one queue: while used buffers keep coming
//! soon after the last interrupt, the next interrupt waits a little so
//! that one covers several; a buffer after a quiet spell interrupts at
//! once. A hold that caught nothing more (request and response traffic,
//! where the guest waits for the answer) turns holding off for the next
//! few interrupts, twice as many after each such hold in a row, so such
//! traffic is rarely delayed.
//!
//! Each interrupt costs the guest an entry to its handler (and on
//! virtio-mmio an exit to the VMM to read the status); a guest that
//! receives a stream spends much of its CPU on them when every frame
//! comes alone. No crate does this for a virtio device, hence by hand.

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use vmm_sys_util::timerfd::TimerFd;

/// How a queue's interrupts are moderated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModerationConfig {
    /// How long an interrupt may wait for more used buffers.
    pub hold: Duration,
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
        hold: Duration::ZERO,
        window: Duration::ZERO,
        max_held: 0,
        backoff: 0,
    };
}

/// One queue's moderation state and the timer that ends a hold.
pub struct Moderation {
    config: ModerationConfig,
    timer: TimerFd,
    last_signal: Option<Instant>,
    /// Buffers used since the hold began (`None`: not holding).
    held: Option<usize>,
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
            if held >= self.config.max_held {
                self.next_backoff = self.config.backoff;
                self.end_hold();
                return true;
            }
            self.held = Some(held);
            return false;
        }
        if self.config.hold.is_zero() || count >= self.config.max_held {
            return true;
        }
        if self.skip > 0 {
            self.skip -= 1;
            return true;
        }
        let streaming = self
            .last_signal
            .is_some_and(|last| now.saturating_duration_since(last) < self.config.window);
        if !streaming {
            return true;
        }
        if let Err(e) = self.timer.reset(self.config.hold, None) {
            // Without the timer the interrupt would never go: send it now.
            tracing::warn!("interrupt moderation timer failed: {e}");
            return true;
        }
        self.held = Some(count);
        self.caught = false;
        false
    }

    /// The timer fired: true if a held interrupt should go now.
    pub fn on_timer(&mut self) -> bool {
        if self.held.is_none() {
            let _ = self.timer.clear();
            return false;
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

    /// Ends any hold at once (the guest must see its buffers now, say
    /// because it has none left to receive into): true if one was held.
    pub fn flush(&mut self) -> bool {
        let was = self.held.is_some();
        self.end_hold();
        was
    }

    /// The interrupt was sent at `now`.
    pub fn signalled(&mut self, now: Instant) {
        self.last_signal = Some(now);
    }

    fn end_hold(&mut self) {
        self.held = None;
        let _ = self.timer.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: ModerationConfig = ModerationConfig {
        hold: Duration::from_millis(50),
        window: Duration::from_millis(2),
        max_held: 8,
        backoff: 2,
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
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
            hold: ms(1),
            ..CONFIG
        };
        let mut m = Moderation::new(config).unwrap();
        let t0 = Instant::now();
        m.signalled(t0);
        assert!(!m.on_used(1, t0));
        let mut fds = [libc::pollfd {
            fd: m.timer_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd, for the length given.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, 5000) };
        assert_eq!(ready, 1, "the timer fires");
        assert!(m.on_timer());
        // SAFETY: as above.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
        assert_eq!(ready, 0, "and is quiet once handled");
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
}
