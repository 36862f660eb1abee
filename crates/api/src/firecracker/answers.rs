//! The VMM's answers as Firecracker's responses: `204` for a change,
//! `200` with JSON for a read, `400` with a `fault_message` for a refusal.

use vmm::lifecycle::VmState;
use vmm::request::{ActionError, VmmData};
use vmm::resources::{InstanceInfo, InstanceState};

use crate::ApiResponse;

/// What `GET /` names the application.
pub const APP_NAME: &str = "Firecracker";

/// The response for the VMM's `answer`, for the instance `id`.
pub fn response(answer: Result<VmmData, ActionError>, id: &str) -> ApiResponse {
    let json = |value: Result<String, serde_json::Error>| match value {
        Ok(text) => ApiResponse::json(text),
        Err(e) => ApiResponse::fault(crate::StatusCode::InternalServerError, e),
    };
    match answer {
        Err(refused) => ApiResponse::bad_request(refused),
        Ok(VmmData::Empty) => ApiResponse::no_content(),
        Ok(VmmData::State(state)) => json(serde_json::to_string(&InstanceInfo {
            id: id.to_owned(),
            state: instance_state(state),
            vmm_version: vmm::resources::FIRECRACKER_VERSION.to_owned(),
            app_name: APP_NAME.to_owned(),
        })),
        Ok(VmmData::VmConfig(resources)) => json(serde_json::to_string(&resources)),
        Ok(VmmData::MachineConfig(machine)) => json(serde_json::to_string(&machine)),
        Ok(VmmData::Balloon(balloon)) => json(serde_json::to_string(&balloon)),
        Ok(VmmData::BalloonStats(stats)) => json(serde_json::to_string(&stats)),
    }
}

fn instance_state(state: VmState) -> InstanceState {
    match state {
        VmState::NotStarted => InstanceState::NotStarted,
        VmState::Running => InstanceState::Running,
        VmState::Paused => InstanceState::Paused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StatusCode;

    #[test]
    fn answers_take_firecrackers_forms() {
        let empty = response(Ok(VmmData::Empty), "vm1");
        assert_eq!((empty.status, empty.body), (StatusCode::NoContent, None));
        let info = response(Ok(VmmData::State(VmState::Paused)), "vm1");
        assert_eq!(info.status, StatusCode::Ok);
        let body: serde_json::Value = serde_json::from_str(&info.body.unwrap()).unwrap();
        assert_eq!(body["id"], "vm1");
        assert_eq!(body["state"], "Paused");
        assert_eq!(body["app_name"], APP_NAME);
        let refused = response(Err(ActionError::new("no")), "vm1");
        assert_eq!(refused.status, StatusCode::BadRequest);
        let body: serde_json::Value = serde_json::from_str(&refused.body.unwrap()).unwrap();
        assert_eq!(body["fault_message"], "no");
    }
}
