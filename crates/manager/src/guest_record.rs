//! What the daemon knows of one guest, and how its phase is shown.

use std::process::Child;
use std::time::Instant;

use serde_json::{json, Value};

use crate::guest::{Demands, GuestConfig};
use crate::restart::RestartState;
use crate::size::mib;
use crate::state_dir::{ExitRecord, ProcessRecord};

/// Where a guest is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Running,
    Paused,
    /// Asked to stop: killed at `deadline` if still running.
    Stopping {
        deadline: Instant,
    },
    Ended,
    /// Ended unasked; started again at `at` (`--restart`). It keeps its
    /// admission (vCPUs, memory, dedicated CPUs) while it waits.
    Restarting {
        at: Instant,
    },
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Stopping { .. } => "stopping",
            Phase::Ended => "stopped",
            Phase::Restarting { .. } => "restarting",
        }
    }
}

/// What the user last asked of a guest, to say why it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    None,
    Stop,
    /// A stop whose grace period ran out: the daemon killed the VMM.
    StopTimedOut,
    Kill,
}

#[derive(Debug)]
pub struct Guest {
    pub config: GuestConfig,
    pub demands: Demands,
    pub process: ProcessRecord,
    /// The VMM process, if the daemon started it (an adopted guest is
    /// not the daemon's child: its end is seen in /proc instead).
    pub child: Option<Child>,
    pub phase: Phase,
    pub exit: Option<ExitRecord>,
    pub asked: Request,
    /// Its restart policy's record: restarts so far, the last end.
    pub restart: RestartState,
}

impl Guest {
    pub fn is_live(&self) -> bool {
        self.phase != Phase::Ended
    }

    /// Whether a VMM runs for it now (not ended, not waiting to restart).
    pub fn has_process(&self) -> bool {
        !matches!(self.phase, Phase::Ended | Phase::Restarting { .. })
    }

    /// The summary `GET /vms` lists.
    pub fn summary(&self, name: &str) -> Value {
        json!({
            "name": name,
            "state": self.phase.name(),
            "pid": self.has_process().then_some(self.process.pid),
            "cpus": self.config.cpus,
            "memory_mib": mib(self.demands.usage.memory),
        })
    }
}

/// Why a VMM that ended with `status` (exit code, or 128 + signal) did.
pub fn exit_reason(status: Option<i32>, asked: Request) -> String {
    let what = match status {
        None => {
            "ended (its exit status is unknown: the daemon adopted it after a restart)".to_owned()
        }
        Some(0) => "the guest powered off or reset".to_owned(),
        Some(1) => "the VMM failed (status 1)".to_owned(),
        Some(2) => "the VMM refused its configuration (status 2)".to_owned(),
        Some(3) => "the guest triple-faulted (status 3)".to_owned(),
        Some(4) => "KVM could not emulate a guest instruction (status 4)".to_owned(),
        Some(5) => "the guest crashed (panic, status 5)".to_owned(),
        Some(159) => "a VMM thread made a forbidden system call (status 159)".to_owned(),
        Some(137) => "killed by SIGKILL (status 137)".to_owned(),
        Some(code) if code > 128 => format!("killed by signal {} (status {code})", code - 128),
        Some(code) => format!("exited with status {code}"),
    };
    match asked {
        Request::None => what,
        Request::Stop => format!("stopped: {what}"),
        Request::StopTimedOut => format!("stopped: killed after its grace period: {what}"),
        Request::Kill => format!("killed by `vm kill`: {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_say_what_happened() {
        assert_eq!(
            exit_reason(Some(0), Request::None),
            "the guest powered off or reset"
        );
        assert_eq!(
            exit_reason(Some(137), Request::Stop),
            "stopped: killed by SIGKILL (status 137)"
        );
        assert!(exit_reason(Some(143), Request::None).contains("signal 15"));
        assert!(exit_reason(None, Request::None).contains("unknown"));
    }
}
