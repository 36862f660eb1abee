//! The states a machine goes through, and which requests each allows.
//!
//! One table, checked for every request, whether it comes from the API or
//! (later) a snapshot load: a caller cannot reach a state by a path the
//! table does not list.

use std::fmt;

use crate::request::{ActionError, Phase, VmmAction};

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
        match (self, action.phase()) {
            (_, Phase::Any) => Ok(self),
            (NotStarted, Phase::BeforeStart) => Ok(self),
            (NotStarted, Phase::Start) => match action {
                VmmAction::LoadSnapshot(load) if !load.resume() => Ok(Paused),
                _ => Ok(Running),
            },
            (NotStarted, Phase::AfterStart) => Err(ActionError::new(
                "the requested operation is not supported before starting the microVM",
            )),
            (Running | Paused, Phase::BeforeStart | Phase::Start) => Err(ActionError::new(
                "the requested operation is not supported after starting the microVM",
            )),
            (_, Phase::AfterStart) => match action {
                VmmAction::Pause => Ok(Paused),
                VmmAction::Resume => Ok(Running),
                VmmAction::SendCtrlAltDel if self == Paused => Err(ActionError::new(
                    "the microVM is paused: resume it before sending it keys",
                )),
                VmmAction::CreateSnapshot(_) if self == Running => Err(ActionError::new(
                    "a snapshot is taken of a paused microVM: pause it first (PATCH /vm {\"state\": \"Paused\"})",
                )),
                _ => Ok(self),
            },
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
        let ok = |from: VmState, action: VmmAction, to| {
            assert_eq!(from.after(&action).unwrap(), to, "{from} {action:?}")
        };
        let refused = |from: VmState, action: VmmAction| {
            assert!(from.after(&action).is_err(), "{from} {action:?}")
        };
        let drive = VmmAction::PatchDrive(Default::default());
        let boot = VmmAction::PutBootSource(Default::default());
        ok(NotStarted, VmmAction::GetState, NotStarted);
        ok(NotStarted, boot.clone(), NotStarted);
        ok(NotStarted, VmmAction::Start, Running);
        ok(NotStarted, VmmAction::FlushMetrics, NotStarted);
        refused(NotStarted, VmmAction::Pause);
        refused(NotStarted, VmmAction::Resume);
        refused(NotStarted, VmmAction::SendCtrlAltDel);
        refused(NotStarted, drive.clone());
        ok(Running, VmmAction::Pause, Paused);
        ok(Paused, VmmAction::Pause, Paused);
        ok(Paused, VmmAction::Resume, Running);
        ok(Running, VmmAction::Resume, Running);
        ok(Running, VmmAction::SendCtrlAltDel, Running);
        ok(Running, drive.clone(), Running);
        ok(Paused, drive, Paused);
        ok(Paused, VmmAction::GetVmConfig, Paused);
        refused(Paused, VmmAction::SendCtrlAltDel);
        refused(Running, VmmAction::Start);
        refused(Paused, VmmAction::Start);
        refused(Running, boot);
        let load = |resume| {
            VmmAction::LoadSnapshot(crate::resources::SnapshotLoadParams {
                resume_vm: Some(resume),
                ..serde_json::from_str(r#"{"snapshot_path": "s"}"#).unwrap()
            })
        };
        ok(NotStarted, load(false), Paused);
        ok(NotStarted, load(true), Running);
        refused(Paused, load(true));
        let create = VmmAction::CreateSnapshot(
            serde_json::from_str(r#"{"snapshot_path": "s", "mem_file_path": "m"}"#).unwrap(),
        );
        refused(NotStarted, create.clone());
        refused(Running, create.clone());
        ok(Paused, create, Paused);
    }

    #[test]
    fn state_names_are_firecrackers() {
        assert_eq!(NotStarted.to_string(), "Not started");
        assert_eq!(Running.to_string(), "Running");
        assert_eq!(Paused.to_string(), "Paused");
    }
}
