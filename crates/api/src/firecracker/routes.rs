//! Firecracker's paths and bodies, turned into the VMM's requests.

use serde::de::DeserializeOwned;
use vmm::request::VmmAction;
use vmm::resources::{
    ActionType, Balloon, BalloonStatsUpdate, BalloonUpdate, BootSource, Drive, Entropy,
    InstanceActionInfo, Logger, MachineConfig, MachineConfigUpdate, Metrics, NetworkInterface,
    PartialDrive, PartialNetworkInterface, Serial, SnapshotCreateParams, SnapshotLoadParams,
    VmState, VmStateTarget, Vsock, FIRECRACKER_VERSION,
};

use crate::{check_body_id, parse_path, ApiRequest, ApiResponse, Method};

/// What a request comes to.
#[derive(Debug)]
pub enum Parsed {
    /// A request for the VMM thread.
    Vmm(VmmAction),
    /// Answered here: it needs nothing of the VMM (`GET /version`), or it
    /// is refused (bad path, bad body, a feature Pointsman lacks).
    Answer(ApiResponse),
}

/// The paths of Firecracker's API that Pointsman does not serve, and why.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "mmds",
        "the metadata service (MMDS) is not supported by Pointsman",
    ),
    (
        "cpu-config",
        "custom CPU templates are not supported by Pointsman",
    ),
    ("hotplug", "memory hotplug is not supported by Pointsman"),
    ("pmem", "virtio-pmem is not supported by Pointsman"),
];

/// Why Pointsman refuses `path`, if it belongs to a feature it lacks.
/// Decided on the first parts alone, since some of these paths
/// (`/balloon/hinting/start`) have more parts than served paths may.
fn unsupported(path: &str) -> Option<&'static str> {
    let mut parts = path.trim_start_matches('/').split('/');
    let resource = parts.next()?;
    if resource == "balloon" && parts.next() == Some("hinting") {
        return Some("free page hinting is not supported by Pointsman");
    }
    UNSUPPORTED
        .iter()
        .find(|(name, _)| *name == resource)
        .map(|(_, why)| *why)
}

fn body<T: DeserializeOwned>(request: &ApiRequest) -> Result<T, ApiResponse> {
    if request.body.is_empty() {
        return Err(ApiResponse::bad_request("the request needs a JSON body"));
    }
    serde_json::from_slice(&request.body)
        .map_err(|e| ApiResponse::bad_request(format!("invalid JSON body: {e}")))
}

fn invalid(request: &ApiRequest) -> ApiResponse {
    ApiResponse::bad_request(format!(
        "invalid request method and/or path: {} {}",
        request.method.as_str(),
        request.path
    ))
}

/// Turns `request` into what it asks for.
pub fn parse(request: &ApiRequest) -> Parsed {
    match route(request) {
        Ok(action) => Parsed::Vmm(action),
        Err(answer) => Parsed::Answer(answer),
    }
}

fn route(request: &ApiRequest) -> Result<VmmAction, ApiResponse> {
    use Method::*;
    if let Some(why) = unsupported(&request.path) {
        return Err(ApiResponse::bad_request(why));
    }
    let path = parse_path(&request.path).map_err(|e| e.to_response())?;
    let method = request.method;
    let action = match (path.resource, path.sub, method) {
        ("", None, Get) => VmmAction::GetState,
        ("version", None, Get) => {
            return Err(ApiResponse::json(
                serde_json::json!({ "firecracker_version": FIRECRACKER_VERSION }).to_string(),
            ))
        }
        ("vm", Some("config"), Get) => VmmAction::GetVmConfig,
        ("vm", None, Patch) => match body::<VmState>(request)?.state {
            VmStateTarget::Paused => VmmAction::Pause,
            VmStateTarget::Resumed => VmmAction::Resume,
        },
        ("actions", None, Put) => match body::<InstanceActionInfo>(request)?.action_type {
            ActionType::InstanceStart => VmmAction::Start,
            ActionType::SendCtrlAltDel => VmmAction::SendCtrlAltDel,
            ActionType::FlushMetrics => VmmAction::FlushMetrics,
        },
        ("boot-source", None, Put) => VmmAction::PutBootSource(body::<BootSource>(request)?),
        ("machine-config", None, Get) => VmmAction::GetMachineConfig,
        ("machine-config", None, Put) => {
            VmmAction::PutMachineConfig(body::<MachineConfig>(request)?)
        }
        ("machine-config", None, Patch) => {
            VmmAction::PatchMachineConfig(body::<MachineConfigUpdate>(request)?)
        }
        ("drives", Some(_), Put) => {
            let id = path.id().map_err(|e| e.to_response())?;
            let drive = body::<Drive>(request)?;
            check_body_id(id, &drive.drive_id).map_err(|e| e.to_response())?;
            VmmAction::PutDrive(drive)
        }
        ("drives", Some(_), Patch) => {
            let id = path.id().map_err(|e| e.to_response())?;
            let drive = body::<PartialDrive>(request)?;
            check_body_id(id, &drive.drive_id).map_err(|e| e.to_response())?;
            VmmAction::PatchDrive(drive)
        }
        ("network-interfaces", Some(_), Put) => {
            let id = path.id().map_err(|e| e.to_response())?;
            let iface = body::<NetworkInterface>(request)?;
            check_body_id(id, &iface.iface_id).map_err(|e| e.to_response())?;
            VmmAction::PutNetworkInterface(iface)
        }
        ("network-interfaces", Some(_), Patch) => {
            let id = path.id().map_err(|e| e.to_response())?;
            let iface = body::<PartialNetworkInterface>(request)?;
            check_body_id(id, &iface.iface_id).map_err(|e| e.to_response())?;
            VmmAction::PatchNetworkInterface(iface)
        }
        ("vsock", None, Put) => VmmAction::PutVsock(body::<Vsock>(request)?),
        ("entropy", None, Put) => VmmAction::PutEntropy(body::<Entropy>(request)?),
        ("balloon", None, Get) => VmmAction::GetBalloon,
        ("balloon", None, Put) => VmmAction::PutBalloon(body::<Balloon>(request)?),
        ("balloon", None, Patch) => VmmAction::PatchBalloon(body::<BalloonUpdate>(request)?),
        ("balloon", Some("statistics"), Get) => VmmAction::GetBalloonStats,
        ("balloon", Some("statistics"), Patch) => {
            VmmAction::PatchBalloonStats(body::<BalloonStatsUpdate>(request)?)
        }
        ("logger", None, Put) => VmmAction::PutLogger(body::<Logger>(request)?),
        ("metrics", None, Put) => VmmAction::PutMetrics(body::<Metrics>(request)?),
        ("serial", None, Put) => VmmAction::PutSerial(body::<Serial>(request)?),
        ("snapshot", Some("create"), Put) => {
            VmmAction::CreateSnapshot(body::<SnapshotCreateParams>(request)?)
        }
        ("snapshot", Some("load"), Put) => {
            VmmAction::LoadSnapshot(body::<SnapshotLoadParams>(request)?)
        }
        _ => return Err(invalid(request)),
    };
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str, body: &str) -> ApiRequest {
        ApiRequest {
            method,
            path: path.into(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn action(method: Method, path: &str, body: &str) -> VmmAction {
        match parse(&request(method, path, body)) {
            Parsed::Vmm(action) => action,
            Parsed::Answer(answer) => panic!("{method:?} {path}: {answer:?}"),
        }
    }

    fn refused(method: Method, path: &str, body: &str) -> String {
        match parse(&request(method, path, body)) {
            Parsed::Answer(answer) => {
                assert_eq!(answer.status, crate::StatusCode::BadRequest, "{answer:?}");
                answer.body.unwrap_or_default()
            }
            Parsed::Vmm(action) => panic!("{method:?} {path} accepted as {action:?}"),
        }
    }

    #[test]
    fn every_firecracker_path_reaches_its_action() {
        use Method::*;
        assert_eq!(action(Get, "/", ""), VmmAction::GetState);
        assert_eq!(action(Get, "/vm/config", ""), VmmAction::GetVmConfig);
        assert_eq!(
            action(Patch, "/vm", r#"{"state":"Paused"}"#),
            VmmAction::Pause
        );
        assert_eq!(
            action(Patch, "/vm", r#"{"state":"Resumed"}"#),
            VmmAction::Resume
        );
        assert_eq!(
            action(Put, "/actions", r#"{"action_type":"InstanceStart"}"#),
            VmmAction::Start
        );
        assert_eq!(
            action(Put, "/actions", r#"{"action_type":"SendCtrlAltDel"}"#),
            VmmAction::SendCtrlAltDel
        );
        assert_eq!(
            action(Put, "/actions", r#"{"action_type":"FlushMetrics"}"#),
            VmmAction::FlushMetrics
        );
        assert!(matches!(
            action(Put, "/boot-source", r#"{"kernel_image_path":"/k"}"#),
            VmmAction::PutBootSource(_)
        ));
        assert!(matches!(
            action(
                Put,
                "/machine-config",
                r#"{"vcpu_count":2,"mem_size_mib":256}"#
            ),
            VmmAction::PutMachineConfig(_)
        ));
        assert!(matches!(
            action(Patch, "/machine-config", r#"{"vcpu_count":1}"#),
            VmmAction::PatchMachineConfig(_)
        ));
        assert!(matches!(
            action(
                Put,
                "/drives/rootfs",
                r#"{"drive_id":"rootfs","path_on_host":"/d","is_root_device":true,"is_read_only":false}"#
            ),
            VmmAction::PutDrive(_)
        ));
        assert!(matches!(
            action(
                Patch,
                "/drives/rootfs",
                r#"{"drive_id":"rootfs","path_on_host":"/e"}"#
            ),
            VmmAction::PatchDrive(_)
        ));
        assert!(matches!(
            action(
                Put,
                "/network-interfaces/eth0",
                r#"{"iface_id":"eth0","host_dev_name":"tap0"}"#
            ),
            VmmAction::PutNetworkInterface(_)
        ));
        assert!(matches!(
            action(Patch, "/network-interfaces/eth0", r#"{"iface_id":"eth0"}"#),
            VmmAction::PatchNetworkInterface(_)
        ));
        assert!(matches!(
            action(Put, "/vsock", r#"{"guest_cid":3,"uds_path":"/v.sock"}"#),
            VmmAction::PutVsock(_)
        ));
        assert!(matches!(
            action(Put, "/entropy", "{}"),
            VmmAction::PutEntropy(_)
        ));
        assert_eq!(action(Get, "/balloon", ""), VmmAction::GetBalloon);
        assert!(matches!(
            action(
                Put,
                "/balloon",
                r#"{"amount_mib":0,"deflate_on_oom":false}"#
            ),
            VmmAction::PutBalloon(_)
        ));
        assert!(matches!(
            action(Patch, "/balloon", r#"{"amount_mib":64}"#),
            VmmAction::PatchBalloon(_)
        ));
        assert_eq!(
            action(Get, "/balloon/statistics", ""),
            VmmAction::GetBalloonStats
        );
        assert!(matches!(
            action(
                Patch,
                "/balloon/statistics",
                r#"{"stats_polling_interval_s":2}"#
            ),
            VmmAction::PatchBalloonStats(_)
        ));
        assert!(matches!(
            action(Put, "/logger", r#"{"log_path":"/l"}"#),
            VmmAction::PutLogger(_)
        ));
        assert!(matches!(
            action(Put, "/metrics", r#"{"metrics_path":"/m"}"#),
            VmmAction::PutMetrics(_)
        ));
        assert!(matches!(
            action(Put, "/serial", "{}"),
            VmmAction::PutSerial(_)
        ));
    }

    #[test]
    fn version_is_answered_without_the_vmm() {
        match parse(&request(Method::Get, "/version", "")) {
            Parsed::Answer(answer) => {
                assert_eq!(answer.status, crate::StatusCode::Ok);
                assert!(answer.body.unwrap().contains("firecracker_version"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_requests_say_what_was_wrong() {
        use Method::*;
        assert!(refused(Get, "/nowhere", "").contains("invalid request method and/or path"));
        assert!(refused(Delete, "/boot-source", "").contains("invalid request"));
        assert!(refused(Put, "/boot-source", "").contains("needs a JSON body"));
        assert!(refused(Put, "/boot-source", "{").contains("invalid JSON"));
        assert!(
            refused(Put, "/boot-source", r#"{"kernel_image_path":"/k","x":1}"#)
                .contains("unknown field")
        );
        assert!(refused(
            Put,
            "/machine-config",
            r#"{"vcpu_count":"two","mem_size_mib":1}"#
        )
        .contains("invalid"));
        assert!(refused(
            Put,
            "/drives/a",
            r#"{"drive_id":"b","path_on_host":"/d","is_root_device":false,"is_read_only":false}"#
        )
        .contains("does not match"));
        assert!(refused(Put, "/drives/bad-id", r#"{"drive_id":"bad-id"}"#).contains("invalid id"));
        assert!(refused(Put, "/actions", r#"{"action_type":"Explode"}"#).contains("invalid JSON"));
        assert!(refused(Put, "/mmds", "{}").contains("MMDS"));
        assert!(refused(Get, "/mmds", "").contains("MMDS"));
        assert!(
            refused(Put, "/snapshot/create", r#"{"snapshot_path":"s"}"#).contains("mem_file_path")
        );
        assert!(
            refused(Put, "/snapshot/load", r#"{"mem_file_path":"m"}"#).contains("snapshot_path")
        );
        assert!(matches!(
            action(
                Put,
                "/snapshot/create",
                r#"{"snapshot_path":"s","mem_file_path":"m"}"#
            ),
            VmmAction::CreateSnapshot(_)
        ));
        assert!(matches!(
            action(
                Put,
                "/snapshot/load",
                r#"{"snapshot_path":"s","mem_backend":{"backend_type":"File","backend_path":"m"}}"#
            ),
            VmmAction::LoadSnapshot(_)
        ));
        assert!(refused(Patch, "/balloon/hinting", "{}").contains("hinting"));
        // Firecracker's hinting paths have three parts.
        assert!(refused(Patch, "/balloon/hinting/start", "{}").contains("free page hinting"));
        assert!(refused(Get, "/balloon/hinting/status", "").contains("free page hinting"));
        assert!(refused(Put, "/mmds/config/x", "{}").contains("MMDS"));
    }
}
