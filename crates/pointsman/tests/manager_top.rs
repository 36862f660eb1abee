//! Seeing who gets what: the daemon's `GET /metrics` (Prometheus text)
//! and `GET /stats`, and `pointsman top` driven in a tmux terminal. Each
//! test has its own daemon, uid range (44000-44099) and guest names.
//! Needs root (as CI is), /dev/kvm and tmux.

mod common;
use common::manager_host::*;
use common::*;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use manager::prometheus::parse::{samples, Line};

/// `GET path` as raw HTTP over the daemon's socket: the head and body.
fn get(socket: &Path, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
    (head.to_owned(), body.to_owned())
}

fn scrape(host: &Host) -> Vec<Line> {
    let (head, body) = get(&host.socket, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4\r\n"),
        "{head}"
    );
    samples(&body).unwrap_or_else(|line| panic!("not the text format: {line:?}\n{body}"))
}

fn value(lines: &[Line], name: &str, guest: &str) -> f64 {
    lines
        .iter()
        .find(|l| l.name == name && l.label("guest") == Some(guest))
        .unwrap_or_else(|| panic!("no {name} for {guest}"))
        .value
}

#[test]
fn metrics_show_each_guests_cpu_growing_and_memory_under_its_limit() {
    let host = Host::start("mgr-metrics", "44000-44009", &[]);
    let busy = unique("met-busy");
    let capped = unique("met-capped");
    for (name, extra) in [(&busy, &[][..]), (&capped, &["--cpu-max", "20"][..])] {
        let run = host.create(name, extra);
        assert_eq!(run.status, 0, "{run:?}\n{}", host.serve_log());
    }
    host.wait_for_log(&busy, "count ");
    host.wait_for_log(&capped, "count ");

    let first = scrape(&host);
    std::thread::sleep(Duration::from_millis(1500));
    let second = scrape(&host);
    for name in [&busy, &capped] {
        let info = second
            .iter()
            .find(|l| l.name == "pointsman_guest_info" && l.label("guest") == Some(name))
            .expect("each guest has its info");
        assert_eq!(info.label("state"), Some("running"));
        assert_eq!(value(&second, "pointsman_guest_vcpus", name), 1.0);
        let memory = value(&second, "pointsman_guest_memory_bytes", name);
        let limit = value(&second, "pointsman_guest_memory_limit_bytes", name);
        assert_eq!(limit, (192u64 << 20) as f64, "128 MiB guest + 64 MiB");
        assert!(
            memory > 0.0 && memory < limit,
            "{name}: {memory} of {limit}"
        );
        assert!(value(&second, "pointsman_guest_uptime_seconds", name) > 0.0);
        let pid = value(&second, "pointsman_guest_pid", name);
        assert_eq!(pid, f64::from(pid_of(&host.show(name))));
    }
    // The counting guest is CPU-bound: its CPU time grows by most of the
    // 1.5 s between the scrapes (on the two shared CPUs, at least a
    // quarter of it); the capped one's by at most its 20% and a margin.
    let cpu = "pointsman_guest_cpu_seconds_total";
    let busy_grew = value(&second, cpu, &busy) - value(&first, cpu, &busy);
    assert!(busy_grew > 0.3, "{busy}'s CPU time grew {busy_grew} s");
    let capped_grew = value(&second, cpu, &capped) - value(&first, cpu, &capped);
    assert!(
        capped_grew > 0.0 && capped_grew < 0.6,
        "{capped}: {capped_grew} s"
    );
    assert_eq!(value(&second, "pointsman_guest_cpu_max_cpus", &capped), 0.2);
    let throttled = "pointsman_guest_cpu_throttled_seconds_total";
    assert!(value(&second, throttled, &capped) > 0.0);
    // The host's and the daemon's own figures.
    let host_figure = |name: &str| {
        second
            .iter()
            .find(|l| l.name == name && l.labels.is_empty())
            .unwrap_or_else(|| panic!("no {name}"))
            .value
    };
    assert_eq!(host_figure("pointsman_guests"), 2.0);
    assert_eq!(host_figure("pointsman_host_used_cpus"), 2.0);
    assert_eq!(
        host_figure("pointsman_host_used_memory_bytes"),
        (256u64 << 20) as f64
    );
    assert!(host_figure("process_resident_memory_bytes") > 0.0);

    // GET /stats: the same figures as JSON, with rates.
    let (head, body) = get(&host.socket, "/stats");
    assert!(head.contains("Content-Type: application/json"), "{head}");
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    let entry = stats["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == busy.as_str())
        .unwrap()
        .clone();
    let percent = entry["rates"]["cpu_percent"].as_f64().expect("a CPU rate");
    assert!(percent > 0.0 && percent < 210.0, "{entry}");
    assert_eq!(entry["cpu_weight"], 100);
}

/// A tmux server of the test's own (`-L`), so that tests and people
/// using tmux on the same machine do not meet.
struct Tmux {
    server: String,
}

impl Tmux {
    fn command(&self, args: &[&str]) -> std::process::Output {
        let output = Command::new("tmux")
            .arg("-L")
            .arg(&self.server)
            .args(args)
            .output()
            .expect("tmux is installed (CI's .ci/run installs it)");
        assert!(output.status.success(), "tmux {args:?}: {output:?}");
        output
    }

    fn screen(&self) -> String {
        let output = self.command(&["capture-pane", "-p", "-t", "top"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until the screen shows every one of `texts`.
    fn wait_for(&self, texts: &[&str]) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if texts.iter().all(|t| screen.contains(t)) {
                return screen;
            }
            assert!(
                start.elapsed() < TIME_LIMIT,
                "the screen never showed {texts:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, keys: &str) {
        self.command(&["send-keys", "-t", "top", keys]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.server, "kill-server"])
            .output();
    }
}

/// The row of guest `name` on `screen`.
fn row<'a>(screen: &'a str, name: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("no row for {name}:\n{screen}"))
}

#[test]
fn top_shows_the_guests_and_pauses_resumes_and_stops_the_selected_one() {
    let host = Host::start("mgr-top", "44010-44019", &[]);
    let first = unique("top-a");
    let second = unique("top-b");
    for name in [&first, &second] {
        let run = host.create(name, &[]);
        assert_eq!(run.status, 0, "{run:?}\n{}", host.serve_log());
    }
    let status_file = host.dir.path().join("top-status");
    let script = format!(
        "{} top --socket {}; echo $? > {}",
        env!("CARGO_BIN_EXE_pointsman"),
        host.socket.display(),
        status_file.display()
    );
    let tmux = Tmux {
        server: unique("pointsman-top-test"),
    };
    tmux.command(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "160",
        "-y",
        "30",
        "sh",
        "-c",
        &script,
    ]);

    let screen = tmux.wait_for(&[&first, &second, "NAME", "STATE", "CPU%", "MEM/LIMIT"]);
    assert!(row(&screen, &first).contains("running"), "{screen}");
    assert!(row(&screen, &second).contains("running"), "{screen}");
    // At the next refresh the rates are there (a `-` until then).
    let screen = tmux.wait_for(&["s stop", "0B/s"]);
    assert!(screen.contains("192M"), "each guest's limit:\n{screen}");
    for name in [&first, &second] {
        // NAME STATE VCPUS CPU% ...: a figure, for a counting guest.
        let cells: Vec<&str> = row(&screen, name).split_whitespace().collect();
        let at = cells.iter().position(|c| c == name).unwrap();
        let cpu = cells[at + 3];
        assert!(cpu.parse::<f64>().is_ok(), "CPU% {cpu:?}:\n{screen}");
    }

    // By name, the first guest at the top, selected: `p` pauses it.
    tmux.keys("n");
    tmux.keys("Home");
    tmux.keys("p");
    let start = Instant::now();
    while host.show(&first)["state"] != "paused" {
        assert!(
            start.elapsed() < TIME_LIMIT,
            "p did not pause {first}:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(host.show(&second)["state"], "running");
    let screen = tmux.wait_for(&["paused"]);
    assert!(row(&screen, &first).contains("paused"), "{screen}");
    assert!(row(&screen, &second).contains("running"), "{screen}");

    // `r` resumes it; down to the second guest, `s` stops that one.
    tmux.keys("r");
    let start = Instant::now();
    while host.show(&first)["state"] != "running" {
        assert!(start.elapsed() < TIME_LIMIT, "r did not resume {first}");
        std::thread::sleep(Duration::from_millis(100));
    }
    tmux.keys("j");
    tmux.keys("s");
    let start = Instant::now();
    while host.show(&second)["state"] == "running" {
        assert!(start.elapsed() < TIME_LIMIT, "s did not stop {second}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(host.show(&first)["state"], "running");

    // `q` ends top with status 0.
    tmux.keys("q");
    let start = Instant::now();
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if !text.is_empty() {
                break text;
            }
        }
        assert!(start.elapsed() < TIME_LIMIT, "q did not end top");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.trim(), "0");
    host.vm(&["kill", &second]);
}
