//! `docs/openapi.yaml` against the running server: every operation it
//! documents is served (or refused as documented), and every route the
//! server has is documented.

mod common;
use common::api_client::ApiClient;
use common::*;

use std::collections::BTreeSet;

/// The routes of `crates/api/src/firecracker/routes.rs`: its match arms,
/// and the paths its `UNSUPPORTED` table and the hinting arm refuse (as
/// Firecracker names them). A route added there must be added here and to
/// the document.
const SERVED: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/version"),
    ("get", "/vm/config"),
    ("patch", "/vm"),
    ("put", "/actions"),
    ("put", "/boot-source"),
    ("get", "/machine-config"),
    ("put", "/machine-config"),
    ("patch", "/machine-config"),
    ("put", "/drives/{drive_id}"),
    ("patch", "/drives/{drive_id}"),
    ("put", "/network-interfaces/{iface_id}"),
    ("patch", "/network-interfaces/{iface_id}"),
    ("put", "/vsock"),
    ("put", "/entropy"),
    ("get", "/balloon"),
    ("put", "/balloon"),
    ("patch", "/balloon"),
    ("get", "/balloon/statistics"),
    ("patch", "/balloon/statistics"),
    ("put", "/logger"),
    ("put", "/metrics"),
    ("put", "/serial"),
    ("put", "/snapshot/create"),
    ("put", "/snapshot/load"),
];

/// Routes that always answer 400 because Pointsman lacks the feature.
const REFUSED: &[(&str, &str)] = &[
    ("get", "/mmds"),
    ("put", "/mmds"),
    ("patch", "/mmds"),
    ("put", "/mmds/config"),
    ("put", "/cpu-config"),
    ("get", "/hotplug/memory"),
    ("put", "/hotplug/memory"),
    ("patch", "/hotplug/memory"),
    ("put", "/pmem/{id}"),
    ("patch", "/pmem/{id}"),
    ("patch", "/balloon/hinting/start"),
    ("get", "/balloon/hinting/status"),
    ("patch", "/balloon/hinting/stop"),
];

const METHODS: &[&str] = &["get", "put", "patch", "delete", "post", "head", "options"];

/// One documented operation.
struct Operation {
    method: String,
    path: String,
    unsupported: bool,
}

fn documented() -> Vec<Operation> {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");
    let text = std::fs::read_to_string(file).unwrap();
    let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let paths = doc["paths"].as_mapping().expect("no paths in the document");
    let mut operations = Vec::new();
    for (path, item) in paths {
        let path = path.as_str().unwrap();
        let item = item.as_mapping().unwrap();
        for (key, operation) in item {
            let key = key.as_str().unwrap();
            if !METHODS.contains(&key) {
                assert!(
                    key == "parameters" || key.starts_with("x-"),
                    "{path}: unexpected key {key}"
                );
                continue;
            }
            let unsupported = operation["x-pointsman-unsupported"].as_bool() == Some(true);
            operations.push(Operation {
                method: key.to_owned(),
                path: path.to_owned(),
                unsupported,
            });
        }
    }
    operations
}

#[test]
fn every_route_is_documented_and_nothing_else() {
    let operations = documented();
    let documented: BTreeSet<(String, String)> = operations
        .iter()
        .map(|o| (o.method.clone(), o.path.clone()))
        .collect();
    assert_eq!(documented.len(), operations.len(), "an operation twice");
    let routes: BTreeSet<(String, String)> = SERVED
        .iter()
        .chain(REFUSED)
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = routes.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(
        missing.is_empty(),
        "routes not in the document: {missing:?}"
    );
    assert!(extra.is_empty(), "documented but not routes: {extra:?}");
    for operation in &operations {
        let refused = REFUSED.contains(&(operation.method.as_str(), operation.path.as_str()));
        assert_eq!(
            operation.unsupported, refused,
            "{} {}: x-pointsman-unsupported is wrong",
            operation.method, operation.path
        );
    }
}

/// Sends every documented operation to a VMM that has not started a guest
/// (where every method is valid, if not every state): none may be an
/// unknown route, and the refused ones say the feature is missing.
#[test]
fn every_documented_operation_is_served() {
    require_kvm();
    let dir = Scratch::new("openapi");
    let socket = dir.path().join("api.sock");
    let vm = Session::start(&["run", "--api-sock", socket.to_str().unwrap()]);
    let mut api = ApiClient::connect(&socket);
    for operation in documented() {
        let path = operation
            .path
            .replace("{drive_id}", "doc_drive")
            .replace("{iface_id}", "doc_iface")
            .replace("{id}", "doc_pmem");
        let method = operation.method.to_uppercase();
        // An empty object parses as JSON; where fields are required the
        // answer is a 400 about the body, which is fine here.
        let body = (method != "GET").then_some("{}");
        let answer = api.send(&method, &path, body);
        let what = format!("{method} {path}: {answer:?}");
        assert_ne!(answer.status, 404, "{what}");
        assert_ne!(answer.status, 405, "{what}");
        let fault = answer.fault();
        assert!(
            !fault.contains("invalid request method and/or path")
                && !fault.contains("invalid path"),
            "{what}"
        );
        if operation.unsupported {
            assert_eq!(answer.status, 400, "{what}");
            assert!(fault.contains("not supported"), "{what}");
        } else {
            assert!(matches!(answer.status, 200 | 204 | 400), "{what}");
        }
        // The server is still there, and still has no guest.
        let info = api.get("/").json();
        assert_eq!(info["state"], "Not started", "after {what}");
    }
    drop(vm);
}
