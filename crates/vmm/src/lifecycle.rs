//! The states a machine goes through, and which requests each allows.
//!
//! One table, checked for every request, whether it comes from the API or
//! (later) a snapshot load: a caller cannot reach a state by a path the
//! table does not list.

use std::fmt;

use crate::request::{ActionError, VmmAction};

/// Where the guest is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmState {
    /// Configured (or being configured), not booted yet.
    NotStarted,
    /// The vCPUs run the guest.
    Running,
    /// Every vCPU and device worker is parked; nothing in the guest moves.
    Paused,
}

impl VmState {
    /// The name Firecracker's API gives the state.
    pub fn name(self) -> &'static str {
        match self {
            VmState::NotStarted => "Not started",
            VmState::Running => "Running",
            VmState::Paused => "Paused",
        }
    }

    /// The state `action` leads to from this one, or why it is refused.
    /// Asking for the state the machine is already in (a pause while
    /// paused, a resume while running) is allowed and changes nothing.
    pub fn after(self, action: &VmmAction) -> Result<VmState, ActionError> {
        use VmState::*;
        match (self, action) {
            (_, VmmAction::GetState | VmmAction::FlushMetrics) => Ok(self),
            (NotStarted, VmmAction::Start) => Ok(Running),
            (NotStarted, _) => Err(ActionError::new(
                "the requested operation is not supported before starting the microVM",
            )),
            (Running | Paused, VmmAction::Start) => Err(ActionError::new(
                "the microVM is already started: the requested operation is not supported after starting it",
            )),
            (Running | Paused, VmmAction::Pause) => Ok(Paused),
            (Running | Paused, VmmAction::Resume) => Ok(Running),
            (Running, VmmAction::SendCtrlAltDel) => Ok(Running),
            (Paused, VmmAction::SendCtrlAltDel) => Err(ActionError::new(
                "the microVM is paused: resume it before sending it keys",
            )),
            // A paused guest sees the change when it goes on.
            (
                Running | Paused,
                VmmAction::UpdateDrive { .. } | VmmAction::UpdateNetworkInterface { .. },
            ) => Ok(self),
        }
    }
}

impl fmt::Display for VmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::VmState::*;
    use super::*;

    #[test]
    fn the_lifecycle_table() {
        let ok = |from: VmState, action, to| {
            assert_eq!(from.after(&action).unwrap(), to, "{from} {action:?}")
        };
        let refused =
            |from: VmState, action| assert!(from.after(&action).is_err(), "{from} {action:?}");
        ok(NotStarted, VmmAction::GetState, NotStarted);
        ok(NotStarted, VmmAction::Start, Running);
        refused(NotStarted, VmmAction::Pause);
        refused(NotStarted, VmmAction::Resume);
        refused(NotStarted, VmmAction::SendCtrlAltDel);
        ok(Running, VmmAction::Pause, Paused);
        ok(Paused, VmmAction::Pause, Paused);
        ok(Paused, VmmAction::Resume, Running);
        ok(Running, VmmAction::Resume, Running);
        ok(Running, VmmAction::SendCtrlAltDel, Running);
        refused(Paused, VmmAction::SendCtrlAltDel);
        refused(Running, VmmAction::Start);
        refused(Paused, VmmAction::Start);
        let drive = VmmAction::UpdateDrive {
            id: "rootfs".into(),
            update: Default::default(),
        };
        let nic = VmmAction::UpdateNetworkInterface {
            id: "eth0".into(),
            update: Default::default(),
        };
        for update in [drive, nic] {
            refused(NotStarted, update.clone());
            ok(Running, update.clone(), Running);
            ok(Paused, update, Paused);
        }
    }

    #[test]
    fn state_names_are_firecrackers() {
        assert_eq!(NotStarted.to_string(), "Not started");
        assert_eq!(Running.to_string(), "Running");
        assert_eq!(Paused.to_string(), "Paused");
    }
}
