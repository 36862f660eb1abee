//! `GET /`, `PUT /actions` and `PATCH /vm`: the instance and its state.

use serde::{Deserialize, Serialize};

/// The Firecracker release whose API, config file and command line
/// Pointsman follows: what `firecracker --version` reports first, in
/// Firecracker's words, for the tools that check it.
pub const FIRECRACKER_VERSION: &str = "1.16.0";
/// Firecracker's instance id when `--id` gives none.
pub const DEFAULT_INSTANCE_ID: &str = "anonymous-instance";

/// Where the guest is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceState {
    #[default]
    #[serde(rename = "Not started")]
    NotStarted,
    Running,
    Paused,
}

/// `GET /`: who this VMM is and what its guest is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceInfo {
    /// `--id` (`anonymous-instance` by default, as in Firecracker).
    pub id: String,
    pub state: InstanceState,
    pub vmm_version: String,
    pub app_name: String,
}

/// `PUT /actions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionType {
    /// Boot the configured guest.
    InstanceStart,
    /// Ctrl+Alt+Del through the i8042: the guest's init decides what
    /// follows (a Linux guest usually reboots, which ends a Firecracker
    /// VMM).
    SendCtrlAltDel,
    /// Write the metrics now.
    FlushMetrics,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceActionInfo {
    pub action_type: ActionType,
}

/// The state `PATCH /vm` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmStateTarget {
    Paused,
    Resumed,
}

/// `PATCH /vm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmState {
    pub state: VmStateTarget,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_info_spells_its_states_as_firecracker() {
        let mut info = InstanceInfo {
            id: "anonymous-instance".into(),
            state: InstanceState::NotStarted,
            vmm_version: "0.1.0".into(),
            app_name: "Firecracker".into(),
        };
        assert_eq!(
            serde_json::to_string(&info).unwrap(),
            r#"{"id":"anonymous-instance","state":"Not started","vmm_version":"0.1.0","app_name":"Firecracker"}"#
        );
        info.state = InstanceState::Paused;
        assert!(serde_json::to_string(&info)
            .unwrap()
            .contains(r#""state":"Paused""#));
    }

    #[test]
    fn actions_and_states() {
        for (text, action) in [
            ("InstanceStart", ActionType::InstanceStart),
            ("SendCtrlAltDel", ActionType::SendCtrlAltDel),
            ("FlushMetrics", ActionType::FlushMetrics),
        ] {
            let body = format!(r#"{{"action_type": "{text}"}}"#);
            let info: InstanceActionInfo = serde_json::from_str(&body).unwrap();
            assert_eq!(info.action_type, action);
        }
        for bad in [
            r#"{"action_type": "Reboot"}"#,
            r#"{"action_type": "InstanceStart", "now": true}"#,
            "{}",
        ] {
            assert!(
                serde_json::from_str::<InstanceActionInfo>(bad).is_err(),
                "{bad}"
            );
        }
        let paused: VmState = serde_json::from_str(r#"{"state": "Paused"}"#).unwrap();
        assert_eq!(paused.state, VmStateTarget::Paused);
        let resumed: VmState = serde_json::from_str(r#"{"state": "Resumed"}"#).unwrap();
        assert_eq!(resumed.state, VmStateTarget::Resumed);
        for bad in [r#"{"state": "Running"}"#, r#"{"state": "paused"}"#, "{}"] {
            assert!(serde_json::from_str::<VmState>(bad).is_err(), "{bad}");
        }
    }
}
