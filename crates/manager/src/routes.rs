//! The daemon's REST API: paths and bodies turned into [`Daemon`] calls,
//! answers and errors into JSON (errors as `{"fault_message": ...}`, as
//! the VMM's API gives them). `docs/openapi-manager.yaml` describes it.

use std::time::Duration;

use api::{ApiRequest, ApiResponse, Method};
use serde::Deserialize;
use serde_json::Value;

use crate::daemon::Daemon;
use crate::guest::GuestConfig;
use crate::ManagerError;

/// `vm stop`'s grace period when the request gives none.
pub const DEFAULT_GRACE_SECONDS: u64 = 10;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateChange {
    state: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Action {
    action_type: String,
    #[serde(default)]
    grace_seconds: Option<u64>,
}

/// Answers one request.
pub fn handle(daemon: &mut Daemon, request: &ApiRequest) -> ApiResponse {
    match route(daemon, request) {
        Ok(Some(value)) => ApiResponse::json(value.to_string()),
        Ok(None) => ApiResponse::no_content(),
        Err(e) => ApiResponse::fault(e.status(), e),
    }
}

fn route(daemon: &mut Daemon, request: &ApiRequest) -> Result<Option<Value>, ManagerError> {
    let path = request.path.split('?').next().unwrap_or("");
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let body = &request.body;
    match (request.method, parts.as_slice()) {
        (Method::Get, [] | [""]) => Ok(Some(daemon.info())),
        (Method::Get, ["vms"]) => Ok(Some(daemon.list())),
        (Method::Get, ["vms", name]) => daemon.show(name).map(Some),
        (Method::Get, ["vms", name, "logs"]) => daemon.logs(name).map(Some),
        (Method::Put, ["vms", name]) => {
            daemon.create(name, GuestConfig::from_json(body)?).map(Some)
        }
        (Method::Patch, ["vms", name]) => {
            let change: StateChange = parse(body)?;
            let paused = match change.state.as_str() {
                "Paused" => true,
                "Resumed" => false,
                other => {
                    return Err(ManagerError::BadGuest(format!(
                        "state {other:?}: expected \"Paused\" or \"Resumed\""
                    )))
                }
            };
            daemon.set_paused(name, paused).map(|()| None)
        }
        (Method::Put, ["vms", name, "actions"]) => {
            let action: Action = parse(body)?;
            match action.action_type.as_str() {
                "Stop" => {
                    let grace = action.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
                    daemon.stop(name, Duration::from_secs(grace)).map(|()| None)
                }
                "Kill" => daemon.kill(name).map(|()| None),
                other => Err(ManagerError::BadGuest(format!(
                    "action_type {other:?}: expected \"Stop\" or \"Kill\""
                ))),
            }
        }
        (Method::Delete, ["vms", name]) => daemon.remove(name).map(|()| None),
        _ => Err(ManagerError::BadGuest(format!(
            "no such request: {} {path}",
            request.method.as_str()
        ))),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ManagerError> {
    serde_json::from_slice(body).map_err(|e| ManagerError::BadJson(e.to_string()))
}
