//! Metrics lines as Firecracker's clients read them: the `checks` test
//! guest reads from the entropy device and the disk, then prints through
//! COM1; `PUT /metrics` and `FlushMetrics` write what the VMM counted, each
//! line counting only what happened since the one before.

mod common;
use common::api_client::{Answer, ApiClient};
use common::*;

use serde_json::Value;

#[track_caller]
fn expect(answer: Answer, status: u16) -> Answer {
    answer.expect(status)
}

/// Writes a metrics line now and returns it.
fn flush(api: &mut ApiClient, metrics: &std::path::Path) -> Value {
    expect(
        api.put("/actions", r#"{"action_type": "FlushMetrics"}"#),
        204,
    );
    let text = std::fs::read_to_string(metrics).unwrap();
    let line = text.lines().last().expect("no metrics line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

#[track_caller]
fn count(line: &Value, group: &str, field: &str) -> u64 {
    line[group][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {group}.{field} in {line}"))
}

#[test]
fn device_groups_count_what_the_guest_did_since_the_last_line() {
    require_kvm();
    let dir = Scratch::new("metrics-devices");
    let kernel = dir.file("pvh.elf", guests::PVH);
    let disk = dir.file("scratch.img", &[0x5a; 65536]);
    let socket = dir.path().join("api.sock");
    let metrics = dir.path().join("metrics.json");
    let mut vm = Session::start(&["run", "--api-sock", socket.to_str().unwrap()]);
    let mut api = ApiClient::connect(&socket);
    let body = format!(r#"{{"metrics_path": "{}"}}"#, metrics.display());
    expect(api.put("/metrics", &body), 204);
    api.configure(&kernel, "checks");
    let drive = format!(
        r#"{{"drive_id": "scratch", "path_on_host": "{}", "is_root_device": false,
            "is_read_only": true}}"#,
        disk.display()
    );
    expect(api.put("/drives/scratch", &drive), 204);
    expect(api.put("/entropy", "{}"), 204);
    expect(
        api.put("/actions", r#"{"action_type": "InstanceStart"}"#),
        204,
    );
    vm.wait_for("rng ok");
    vm.wait_for("blk ok");
    vm.wait_for("count ");

    let first = flush(&mut api, &metrics);
    // The guest's one 16-byte entropy request and one 512-byte read.
    assert_eq!(
        count(&first, "entropy", "entropy_event_count"),
        1,
        "{first}"
    );
    assert_eq!(count(&first, "entropy", "entropy_bytes"), 16, "{first}");
    assert_eq!(count(&first, "block_scratch", "read_count"), 1, "{first}");
    assert_eq!(count(&first, "block_scratch", "read_bytes"), 512, "{first}");
    assert_eq!(count(&first, "block", "read_bytes"), 512, "the sum");
    assert!(count(&first, "block_scratch", "queue_event_count") >= 1);
    assert_eq!(count(&first, "block_scratch", "write_count"), 0);
    // Every byte printed is one port write.
    let printed = count(&first, "uart", "write_count");
    assert!(
        printed >= "rng ok\nblk ok\ncount 1\n".len() as u64,
        "{first}"
    );
    assert!(count(&first, "vcpu", "exit_io_out") >= printed, "{first}");
    // Each configuration request once, and the start (this flush counts
    // once answered, in the next line).
    for field in [
        "metrics_count",
        "boot_source_count",
        "machine_cfg_count",
        "drive_count",
        "actions_count",
    ] {
        assert_eq!(count(&first, "put_api_requests", field), 1, "{field}");
    }
    assert_eq!(count(&first, "put_api_requests", "drive_fails"), 0);

    expect(api.patch("/vm", r#"{"state": "Paused"}"#), 204);
    let paused = flush(&mut api, &metrics);
    assert_eq!(count(&paused, "vmm", "pauses"), 1, "{paused}");
    let pause_us = count(&paused, "latencies_us", "pause_vm");
    assert!(pause_us > 0, "{paused}");
    assert_eq!(count(&paused, "block_scratch", "read_count"), 0, "a delta");
    assert_eq!(count(&paused, "entropy", "entropy_bytes"), 0, "a delta");
    // The first flush and the pause (a request counts once answered).
    assert_eq!(count(&paused, "api_server", "requests"), 2, "{paused}");

    // Paused, the guest prints nothing: nothing to count.
    let still = flush(&mut api, &metrics);
    assert_eq!(count(&still, "uart", "write_count"), 0, "{still}");
    assert_eq!(count(&still, "vcpu", "exit_io_out"), 0, "{still}");
    assert_eq!(count(&still, "vmm", "pauses"), 0, "{still}");
    assert_eq!(count(&still, "api_server", "requests"), 1, "{still}");
    assert_eq!(count(&still, "put_api_requests", "actions_count"), 1);
    assert_eq!(count(&still, "put_api_requests", "drive_count"), 0);
    assert_eq!(
        count(&still, "latencies_us", "pause_vm"),
        pause_us,
        "the last pause's duration stays"
    );

    expect(api.patch("/vm", r#"{"state": "Resumed"}"#), 204);
    vm.wait_for("count ");
    let unknown = r#"{"drive_id": "nosuch", "path_on_host": "/nonexistent"}"#;
    expect(api.patch("/drives/nosuch", unknown), 400);
    let limits = r#"{"drive_id": "scratch",
        "rate_limiter": {"ops": {"size": 1000, "refill_time": 100}}}"#;
    expect(api.patch("/drives/scratch", limits), 204);
    let resumed = flush(&mut api, &metrics);
    assert_eq!(count(&resumed, "vmm", "resumes"), 1, "{resumed}");
    assert_eq!(count(&resumed, "patch_api_requests", "drive_count"), 2);
    assert_eq!(count(&resumed, "patch_api_requests", "drive_fails"), 1);
    assert_eq!(count(&resumed, "api_server", "request_fails"), 1);
    assert_eq!(count(&resumed, "block_scratch", "update_count"), 1);
    assert_eq!(count(&resumed, "block", "update_fails"), 0);
    assert!(count(&resumed, "uart", "write_count") > 0, "{resumed}");

    vm.type_text("P");
    let run = vm.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
}
