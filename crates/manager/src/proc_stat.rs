//! A process told apart from a later one with the same pid: its start
//! time, field 22 of `/proc/PID/stat` (clock ticks since boot), never
//! changes while it lives and differs for whatever reuses the pid.

use std::path::Path;

/// The start time in `stat` (the text of `/proc/PID/stat`). The command
/// name (field 2) is in parentheses and may hold spaces or `)`, so fields
/// are counted from the last `)`.
pub fn start_time_from_stat(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields 3, 4, ... follow: field 22 is the 20th of them.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// The start time of process `pid`, `None` if there is none.
pub fn start_time(pid: u32) -> Option<u64> {
    start_time_in(Path::new("/proc"), pid)
}

fn start_time_in(proc_root: &Path, pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    // A zombie has ended: it runs no guest.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    if state == Some("Z") || state == Some("X") {
        return None;
    }
    start_time_from_stat(&stat)
}

/// Whether `pid` is still the process that started at `start`.
pub fn is_same_process(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(name: &str, state: &str, start: u64) -> String {
        format!("1234 ({name}) {state} 1 1234 1234 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 3 0 {start} 1000 200 18446744073709551615")
    }

    #[test]
    fn start_time_is_field_22_even_with_odd_names() {
        assert_eq!(
            start_time_from_stat(&stat("pointsman", "S", 4242)),
            Some(4242)
        );
        assert_eq!(start_time_from_stat(&stat("a) b (c", "R", 77)), Some(77));
        assert_eq!(start_time_from_stat("1 (x) S 1"), None);
        assert_eq!(start_time_from_stat("garbage"), None);
    }

    #[test]
    fn a_reused_pid_is_not_the_same_process() {
        let dir = std::env::temp_dir().join(format!("manager-proc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("77")).unwrap();
        std::fs::write(dir.join("77/stat"), stat("pointsman", "S", 500)).unwrap();
        assert_eq!(start_time_in(&dir, 77), Some(500));
        std::fs::write(dir.join("77/stat"), stat("pointsman", "Z", 500)).unwrap();
        assert_eq!(start_time_in(&dir, 77), None);
        assert_eq!(start_time_in(&dir, 78), None);
        std::fs::remove_dir_all(&dir).unwrap();
        let me = std::process::id();
        let mine = start_time(me).unwrap();
        assert!(is_same_process(me, mine));
        assert!(!is_same_process(me, mine + 1));
    }
}
