//! `--restart`: whether the daemon starts a guest again when its VMM
//! ends without being asked to, and how long it waits first (backing off
//! while the guest keeps ending soon after its start).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::state_dir::ExitRecord;

/// The guest's restart record in its state directory.
pub const RESTART_FILE: &str = "restart.json";

/// The first wait before a restart; it doubles with each quick end.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest wait.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// A run this long counts as healthy: the next wait is the first again.
pub const HEALTHY_RUN: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never (the default).
    #[default]
    No,
    /// Unless the VMM exited with status 0 (the guest powered off).
    OnFailure,
    /// Whenever it ends unasked.
    Always,
}

impl RestartPolicy {
    /// `no`, `on-failure` or `always`.
    pub fn parse(text: &str) -> Option<RestartPolicy> {
        match text {
            "no" => Some(RestartPolicy::No),
            "on-failure" => Some(RestartPolicy::OnFailure),
            "always" => Some(RestartPolicy::Always),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        }
    }

    /// Whether a VMM that ended unasked with `status` (unknown for a
    /// guest the daemon adopted: counted as a failure) is started again.
    pub fn restarts_after(self, status: Option<i32>) -> bool {
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure => status != Some(0),
            RestartPolicy::Always => true,
        }
    }
}

/// What outlives a daemon restart: how many restarts, the last end, and
/// whether a restart is due.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartRecord {
    pub count: u32,
    pub last_exit: Option<ExitRecord>,
    pub waiting: bool,
}

/// The daemon's view of one guest's restarts.
#[derive(Clone, Debug)]
pub struct RestartState {
    pub record: RestartRecord,
    /// Quick ends in a row: the exponent of the next wait.
    pub streak: u32,
    /// When the running VMM started.
    pub started: Instant,
}

impl RestartState {
    pub fn new(record: RestartRecord, started: Instant) -> RestartState {
        RestartState {
            record,
            streak: 0,
            started,
        }
    }

    /// How long to wait before restarting a VMM that ended at `now`.
    pub fn next_delay(&mut self, now: Instant) -> Duration {
        if now.saturating_duration_since(self.started) >= HEALTHY_RUN {
            self.streak = 0;
        }
        let delay = delay_after(self.streak);
        self.streak = self.streak.saturating_add(1);
        delay
    }
}

/// [`FIRST_DELAY`] doubled `streak` times, at most [`MAX_DELAY`].
pub fn delay_after(streak: u32) -> Duration {
    let factor = 1u32.checked_shl(streak).unwrap_or(u32::MAX);
    FIRST_DELAY.saturating_mul(factor).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_decide() {
        for policy in [
            RestartPolicy::No,
            RestartPolicy::OnFailure,
            RestartPolicy::Always,
        ] {
            assert_eq!(RestartPolicy::parse(policy.name()), Some(policy));
            let json = serde_json::to_string(&policy).unwrap();
            assert_eq!(json, format!("\"{}\"", policy.name()));
        }
        assert_eq!(RestartPolicy::parse("sometimes"), None);
        assert!(!RestartPolicy::No.restarts_after(Some(137)));
        assert!(!RestartPolicy::OnFailure.restarts_after(Some(0)));
        assert!(RestartPolicy::OnFailure.restarts_after(Some(137)));
        assert!(RestartPolicy::OnFailure.restarts_after(None));
        assert!(RestartPolicy::Always.restarts_after(Some(0)));
    }

    #[test]
    fn waits_double_to_a_cap_and_reset_after_a_healthy_run() {
        let secs = |s: u64| Duration::from_secs(s);
        assert_eq!(
            (0..7).map(delay_after).collect::<Vec<_>>(),
            [
                secs(1),
                secs(2),
                secs(4),
                secs(8),
                secs(16),
                secs(30),
                secs(30)
            ]
        );
        assert_eq!(delay_after(200), secs(30));
        let start = Instant::now();
        let mut state = RestartState::new(RestartRecord::default(), start);
        assert_eq!(state.next_delay(start + secs(1)), secs(1));
        state.started = start + secs(2);
        assert_eq!(state.next_delay(start + secs(3)), secs(2));
        state.started = start + secs(5);
        assert_eq!(state.next_delay(start + secs(6)), secs(4));
        // Up for 30 s: healthy, back to the first wait.
        state.started = start + secs(10);
        assert_eq!(state.next_delay(start + secs(40)), secs(1));
    }
}
