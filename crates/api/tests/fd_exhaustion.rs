//! Out of file descriptors, the server cannot accept a waiting client: it
//! must rest rather than spin on the still-readable listener, and accept
//! the client once fds are free again. Alone in its binary, because it
//! lowers the whole process's fd limit.

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use api::ServerOptions;
use common::EchoServer;

/// The `stat` file of the thread named `name`, opened now: it is read
/// again later, when no fd is left to open it.
fn thread_stat(name: &str) -> File {
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return File::open(task.join("stat")).unwrap();
        }
    }
    panic!("no thread named {name}");
}

/// User plus system CPU ticks the thread has used so far.
fn cpu_ticks(stat: &File) -> u64 {
    let mut buf = [0u8; 1024];
    let n = stat.read_at(&mut buf, 0).unwrap();
    let stat = String::from_utf8_lossy(&buf[..n]);
    // Fields after the parenthesised name: utime and stime are the 12th
    // and 13th.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn set_fd_limit(soft: u64) -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `old` is a valid rlimit for getrlimit to fill.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: `new` is a valid rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) }, 0);
    old
}

#[test]
fn accept_without_fds_rests_and_recovers() {
    let server = EchoServer::start(ServerOptions::default());
    let mut first = server.client();
    assert_eq!(first.request("GET", "/first", "").status, 200);

    let stat = thread_stat(api::server::THREAD_NAME);
    let highest = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    let old = set_fd_limit(highest + 32);
    let mut fillers = Vec::new();
    while let Ok(file) = File::open("/dev/null") {
        fillers.push(file);
    }
    // One free slot: the client's end takes it, the server's accept fails.
    fillers.pop();
    let mut waiting = server.client();
    waiting.send(b"GET /waiting HTTP/1.1\r\n\r\n");

    let before = cpu_ticks(&stat);
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(&stat) - before;
    fillers.clear();
    set_fd_limit(old.rlim_cur);
    assert!(
        spent < 20,
        "the API thread spun for {spent} ticks out of fds"
    );

    let response = waiting.response();
    assert_eq!(response.status, 200);
    assert!(response.body_text().contains("/waiting"));
    assert_eq!(first.request("GET", "/still", "").status, 200);
}
