//! The daemon's REST API: paths and bodies turned into [`Daemon`] calls,
//! answers and errors into JSON (errors as `{"fault_message": ...}`, as
//! the VMM's API gives them). `docs/openapi-manager.yaml` describes it.

use std::time::Duration;

use api::{ApiRequest, ApiResponse, Method};
use serde::Deserialize;
use serde_json::Value;

use crate::console;
use crate::daemon::Daemon;
use crate::guest::GuestConfig;
use crate::limits_update::LimitsChange;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotTarget {
    dir: std::path::PathBuf,
}

/// Answers one request.
pub fn handle(daemon: &mut Daemon, request: &ApiRequest) -> ApiResponse {
    // Prometheus' text, not JSON.
    if request.method == Method::Get && request.path.split('?').next() == Some("/metrics") {
        return ApiResponse::text(crate::prometheus::CONTENT_TYPE, daemon.metrics());
    }
    match route(daemon, request) {
        Ok(Some(value)) => ApiResponse::json(value.to_string()),
        Ok(None) => ApiResponse::no_content(),
        Err(e) => ApiResponse::fault(e.status(), e),
    }
}

fn route(daemon: &mut Daemon, request: &ApiRequest) -> Result<Option<Value>, ManagerError> {
    let (path, query) = match request.path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (request.path.as_str(), None),
    };
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let body = &request.body;
    match (request.method, parts.as_slice()) {
        (Method::Get, [] | [""]) => Ok(Some(daemon.info())),
        (Method::Get, ["vms"]) => Ok(Some(daemon.list())),
        (Method::Get, ["stats"]) => Ok(Some(serde_json::json!(daemon.stats()))),
        (Method::Get, ["vms", name]) => daemon.show(name).map(Some),
        (Method::Get, ["vms", name, "logs"]) => match console::offset_query(query)? {
            Some(query) => console::read_from(daemon, name, query).map(Some),
            None => daemon.logs(name).map(Some),
        },
        (Method::Put, ["vms", name, "console"]) => console::send(daemon, name, body).map(Some),
        (Method::Put, ["vms", name]) => {
            daemon.create(name, GuestConfig::from_json(body)?).map(Some)
        }
        // The body decides: a new state, or new limits (`vm set`).
        (Method::Patch, ["vms", name]) if !names_a_state(body) => daemon
            .set_limits(name, LimitsChange::from_json(body)?)
            .map(Some),
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
        (Method::Put, ["vms", name, "snapshot"]) => {
            let target: SnapshotTarget = parse(body)?;
            daemon.snapshot(name, &target.dir).map(Some)
        }
        (Method::Put, ["vms", name, "clone"]) => daemon.clone_guest(name, parse(body)?).map(Some),
        _ => Err(ManagerError::BadGuest(format!(
            "no such request: {} {path}",
            request.method.as_str()
        ))),
    }
}

/// Whether a PATCH body is a change of state (`{"state": ...}`).
fn names_a_state(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v.get("state").is_some())
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ManagerError> {
    serde_json::from_slice(body).map_err(|e| ManagerError::BadJson(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::StatusCode;

    /// A daemon over `root` whose VMMs all exit at once with status 1.
    fn open(root: &std::path::Path) -> Daemon {
        crate::test_daemon::open(root, "/bin/false")
    }

    /// A daemon in a fresh state directory.
    fn daemon(tag: &str) -> (Daemon, std::path::PathBuf) {
        let root = crate::test_daemon::fresh_dir("routes", tag);
        (open(&root), root)
    }

    fn call(daemon: &mut Daemon, method: Method, path: &str, body: &str) -> ApiResponse {
        let request = ApiRequest {
            method,
            path: path.into(),
            body: body.as_bytes().to_vec(),
        };
        handle(daemon, &request)
    }

    fn fault(response: &ApiResponse) -> String {
        let body: Value = serde_json::from_str(response.body.as_deref().unwrap()).unwrap();
        body["fault_message"].as_str().unwrap().to_owned()
    }

    #[test]
    fn requests_are_routed_and_bad_ones_answered_with_a_fault() {
        let (mut d, root) = daemon("routes");
        let list = call(&mut d, Method::Get, "/vms", "");
        assert_eq!(
            (list.status, list.body.as_deref()),
            (StatusCode::Ok, Some("[]"))
        );
        let info = call(&mut d, Method::Get, "/", "");
        assert!(info.body.unwrap().contains("\"memory_mib\":256"));
        let unknown = call(&mut d, Method::Get, "/vms/nobody", "");
        assert_eq!(unknown.status, StatusCode::NotFound);
        assert_eq!(fault(&unknown), "no guest named \"nobody\"");
        let bad_name = call(&mut d, Method::Put, "/vms/a.b", "{}");
        assert_eq!(bad_name.status, StatusCode::BadRequest);
        assert!(fault(&bad_name).contains("\"a.b\""));
        let bad_json = call(&mut d, Method::Put, "/vms/a", "{\"cpus\": \"two\"}");
        assert!(fault(&bad_json).contains("not a guest description"));
        let bad_state = call(&mut d, Method::Patch, "/vms/a", r#"{"state": "Frozen"}"#);
        assert!(fault(&bad_state).contains("\"Frozen\""));
        let bad_action = call(
            &mut d,
            Method::Put,
            "/vms/a/actions",
            r#"{"action_type": "Nap"}"#,
        );
        assert!(fault(&bad_action).contains("\"Nap\""));
        let nowhere = call(&mut d, Method::Delete, "/elsewhere", "");
        assert!(fault(&nowhere).contains("no such request"));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_refused_or_failed_create_leaves_nothing() {
        let (mut d, root) = daemon("create");
        let big = call(
            &mut d,
            Method::Put,
            "/vms/big",
            r#"{"kernel": "/k", "memory": "512M"}"#,
        );
        assert_eq!(
            fault(&big),
            "memory: 512 MiB asked, 256 MiB left of 256 MiB"
        );
        assert!(!root.join("guests/big").exists());
        // `/bin/false` as the VMM: it exits at once, with status 1.
        let dead = call(&mut d, Method::Put, "/vms/dead", r#"{"kernel": "/k"}"#);
        assert_eq!(dead.status, StatusCode::BadRequest);
        assert!(
            fault(&dead).contains("exited at once with status 1"),
            "{}",
            fault(&dead)
        );
        assert!(!root.join("guests/dead").exists());
        assert_eq!(
            call(&mut d, Method::Get, "/vms", "").body.as_deref(),
            Some("[]")
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn metrics_are_prometheus_text_and_stats_json() {
        let (mut d, root) = daemon("metrics");
        let metrics = call(&mut d, Method::Get, "/metrics", "");
        assert_eq!(metrics.content_type, "text/plain; version=0.0.4");
        let text = metrics.body.unwrap();
        assert!(text.contains("\npointsman_guests 0\n"), "{text}");
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
        let stats = call(&mut d, Method::Get, "/stats", "");
        assert_eq!(stats.content_type, "application/json");
        let report: crate::report::StatsReport =
            serde_json::from_str(&stats.body.unwrap()).unwrap();
        assert_eq!(report.host.capacity_memory_bytes, 256 * crate::size::MIB);
        assert!(report.guests.is_empty());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_half_made_guest_is_cleared_at_start() {
        let (d, root) = daemon("half");
        let dir = root.join("guests/half");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        drop(d);
        let mut d = open(&root);
        assert!(!dir.exists());
        assert_eq!(
            call(&mut d, Method::Get, "/vms", "").body.as_deref(),
            Some("[]")
        );
        std::fs::remove_dir_all(root).unwrap();
    }
}
