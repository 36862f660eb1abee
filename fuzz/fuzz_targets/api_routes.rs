//! Requests that passed the HTTP layer, as a client on the API socket
//! can make them: any method, path and body. Routing them to the VMM's
//! requests (path ids, JSON bodies, Firecracker's resource types) must
//! never panic; a refusal is a 4xx with a `fault_message`, and only the
//! paths Pointsman answers by itself (`GET /version`) get a 2xx without
//! reaching the VMM.
//!
//! Raw paths rarely hit a served one, so the second byte picks a path
//! from Firecracker's (or leaves it raw) and the body follows a NUL.
#![no_main]

use api::firecracker::routes::{parse, Parsed};
use api::{ApiRequest, Method};
use libfuzzer_sys::fuzz_target;

const PATHS: &[&str] = &[
    "/",
    "/version",
    "/vm",
    "/vm/config",
    "/actions",
    "/boot-source",
    "/machine-config",
    "/drives/",
    "/network-interfaces/",
    "/vsock",
    "/entropy",
    "/balloon",
    "/balloon/statistics",
    "/balloon/hinting/start",
    "/logger",
    "/metrics",
    "/serial",
    "/mmds",
    "/snapshot/create",
    "/cpu-config",
];

const METHODS: [Method; 4] = [Method::Get, Method::Put, Method::Patch, Method::Delete];

fuzz_target!(|data: &[u8]| {
    let [method, path_pick, rest @ ..] = data else {
        return;
    };
    let (path_bytes, body) = match rest.iter().position(|&b| b == 0) {
        Some(nul) => (&rest[..nul], &rest[nul + 1..]),
        None => (rest, &[][..]),
    };
    let tail = String::from_utf8_lossy(path_bytes);
    let path = match PATHS.get(usize::from(*path_pick)) {
        Some(known) => format!("{known}{tail}"),
        None => tail.into_owned(),
    };
    let method = METHODS[usize::from(*method) % METHODS.len()];
    // The server refuses a GET with a body before routing.
    let body = if method == Method::Get { Vec::new() } else { body.to_vec() };
    let request = ApiRequest { method, path, body };
    if let Parsed::Answer(answer) = parse(&request) {
        let code = answer.status.code();
        assert!(
            (400..500).contains(&code) || (request.method, code) == (Method::Get, 200),
            "{request:?} answered {code}"
        );
    }
});
