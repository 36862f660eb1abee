//! Bad `--net` values get one clear line on stderr and exit status 2,
//! before any guest runs.

mod common;
use common::*;

fn refused(net: &[&str], expect: &str) {
    let mut args = vec!["run"];
    for spec in net {
        args.extend_from_slice(&["--net", spec]);
    }
    let run = run(&args, b"");
    assert_eq!(run.status, EXIT_BAD_INPUT, "{args:?}: {run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {}", run.stderr);
    assert!(lines[0].starts_with("pointsman: "), "{}", lines[0]);
    assert!(
        lines[0].contains(expect),
        "expected {expect:?} in {:?}",
        lines[0]
    );
    assert!(run.stdout.is_empty(), "no guest: {}", run.stdout);
}

#[test]
fn malformed_net_options_are_refused() {
    refused(&["tap="], "invalid TAP name");
    refused(&["tap=a-very-long-name"], "invalid TAP name");
    refused(&["mac=52:54:00:00:00:01"], "`tap=NAME` is required");
    refused(&["tap=t0,speed=10"], "unknown key \"speed\"");
    refused(&["tap=t0,mac=52:54:00:00:00"], "invalid MAC");
    refused(&["tap=t0,mac=01:00:5e:00:00:01"], "multicast");
    refused(&["tap=t0,bandwidth=fast"], "invalid bandwidth");
    refused(&["tap=t0,ops=0"], "invalid ops");
    refused(&["tap=t0,moderation=fast"], "expected on or off");
    refused(&["tap=t0,id=a b"], "invalid id");
    refused(&["tap=t0,rx_ops=0"], "invalid rx_ops");
    refused(
        &["tap=t0,ops=5,tx_ops=6"],
        "ops (both directions) and tx_ops",
    );
}

#[test]
fn two_nics_with_one_id_are_refused() {
    require_kvm();
    refused(&["tap=t0,id=x", "tap=t1,id=x"], "two devices have the id x");
    // The first NIC's id without one is eth0.
    refused(
        &["tap=t0", "tap=t1,id=eth0"],
        "two devices have the id eth0",
    );
}

#[test]
fn two_nics_on_one_tap_are_refused() {
    require_kvm();
    refused(&["tap=t0", "tap=t0"], "TAP t0 is given to two NICs");
}

#[test]
fn a_device_that_is_not_a_tap_is_refused() {
    require_kvm();
    // `lo` exists in every network namespace and is no TAP: TUNSETIFF
    // refuses it, and no interface is created.
    refused(&["tap=lo"], "cannot attach to TAP lo");
}
