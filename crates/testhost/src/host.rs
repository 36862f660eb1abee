//! Booting the test host under QEMU and running a test script in it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::initramfs::INIT_PROLOGUE;
use crate::qemu_inside::add_qemu;
use crate::{Assets, Error, Initramfs, Result};

/// Helpers every test script can use: drive a VM through a FIFO on its
/// stdin, wait for its console to show something, collect its status.
const HELPERS: &str = r#"
# start_vm ARGS...: pointsman run ARGS in the background; its console goes
# to /tmp/vm.out and its stdin comes from what `send` writes.
start_vm() {
    rm -f /tmp/vm.in /tmp/vm.out /tmp/vm.err
    mkfifo /tmp/vm.in
    : > /tmp/vm.out
    pointsman run "$@" < /tmp/vm.in > /tmp/vm.out 2> /tmp/vm.err &
    VM_PID=$!
    exec 3> /tmp/vm.in
}
# start_qemu ARGS...: the same as start_vm for qemu-system-x86_64 ARGS (the
# test host must be built with_qemu).
start_qemu() {
    rm -f /tmp/vm.in /tmp/vm.out /tmp/vm.err
    mkfifo /tmp/vm.in
    : > /tmp/vm.out
    /usr/bin/qemu-system-x86_64 "$@" < /tmp/vm.in > /tmp/vm.out 2> /tmp/vm.err &
    VM_PID=$!
    exec 3> /tmp/vm.in
}
# wait_for TEXT [COUNT] [SECONDS]: until TEXT shows COUNT times on the console.
wait_for() {
    n=${2:-1}; left=$(( ${3:-300} * 5 ))
    while [ "$(grep -c -- "$1" /tmp/vm.out)" -lt "$n" ]; do
        if ! kill -0 $VM_PID 2>/dev/null; then echo "@@vm exited while waiting for $1"; return 1; fi
        left=$((left - 1)); [ $left -gt 0 ] || { echo "@@timeout waiting for $1"; return 1; }
        sleep 0.2
    done
}
# send TEXT: types TEXT and a newline on the VM's console.
send() { printf '%s\n' "$*" >&3; }
# finish_vm: closes the console input, waits for the VMM, prints what it
# showed and "@@vm-status N".
finish_vm() {
    exec 3>&-
    wait $VM_PID; VM_STATUS=$?
    echo "@@vm-console-begin"; cat /tmp/vm.out; echo "@@vm-console-end"
    cat /tmp/vm.err
    echo "@@vm-status $VM_STATUS"
}
# finish_vm_within SECONDS: finish_vm, but a VMM still running after
# SECONDS (a hung guest or VMM) is killed first, with "@@vm-hung".
finish_vm_within() {
    exec 3>&-
    left=$(( $1 * 5 ))
    while kill -0 $VM_PID 2>/dev/null; do
        left=$((left - 1))
        if [ $left -le 0 ]; then echo "@@vm-hung"; kill -9 $VM_PID; break; fi
        sleep 0.2
    done
    finish_vm
}
# vm_watchdog PID: once PID has run ${VM_LIMIT:-900} s, shows what each of
# its threads waits on and kills it, so a hung VMM says where it hung and
# does not hold the test host to the end of its own time limit.
vm_watchdog() {
    left=${VM_LIMIT:-900}
    while kill -0 "$1" 2>/dev/null; do
        if [ "$left" -le 0 ]; then
            echo "@@vm-timeout after ${VM_LIMIT:-900} s"
            for t in /proc/$1/task/*; do
                echo "@@vm-thread $(cat $t/comm) state=$(cut -d' ' -f3 $t/stat) wchan=$(cat $t/wchan)"
                sed 's/^/@@vm-stack /' $t/stack 2>/dev/null
            done
            kill -9 "$1"
            return
        fi
        sleep 5; left=$((left - 5))
    done
}
# run_limited PROGRAM ARGS...: runs PROGRAM to the end with no input (at
# most VM_LIMIT seconds), printing its console between markers and then
# "@@vm-status N".
run_limited() {
    echo "@@vm-console-begin"
    "$@" < /dev/null &
    vm_pid=$!
    vm_watchdog $vm_pid &
    wait $vm_pid; s=$?
    echo "@@vm-console-end"
    echo "@@vm-status $s"
}
# run_vm ARGS...: run_limited pointsman run ARGS.
run_vm() { run_limited pointsman run "$@"; }
# run_qemu ARGS...: the same for qemu-system-x86_64 ARGS (the test host
# must be built with_qemu).
run_qemu() { run_limited /usr/bin/qemu-system-x86_64 "$@"; }
"#;

const READY: &str = "@@testhost-ready";
/// What `pointsman` prints when its guest triple-faults.
const GUEST_TRIPLE_FAULT: &str = "the guest triple-faulted";
/// Where the runs that were tried again are recorded, in the cache.
const RETRY_LOG: &str = "retried-runs.log";
const DONE: &str = "@@testhost-done ";

/// What a test host run printed.
#[derive(Debug, Clone)]
pub struct HostRun {
    /// Everything on the test host's console.
    pub console: String,
    /// Exit status of the test script, if it got to finish.
    pub script_status: Option<i32>,
}

/// The last `count` lines of `text`.
fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().rev().take(count).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

impl HostRun {
    /// The last `count` lines of the console: where a failed run stopped.
    pub fn console_tail(&self, count: usize) -> String {
        last_lines(&self.console, count)
    }

    /// Each VM run's console output (between the helpers' markers) and
    /// exit status, in order.
    pub fn vm_runs(&self) -> Vec<(String, i32)> {
        let mut runs = Vec::new();
        let mut current: Option<String> = None;
        let mut last: Option<String> = None;
        for line in self.console.lines() {
            let line = line.trim_end_matches('\r');
            if line.ends_with("@@vm-console-begin") {
                current = Some(String::new());
            } else if line.starts_with("@@vm-console-end") {
                last = current.take();
            } else if let Some(status) = line.strip_prefix("@@vm-status ") {
                let status = status.trim().parse().unwrap_or(-1);
                runs.push((last.take().unwrap_or_default(), status));
            } else if let Some(out) = current.as_mut() {
                out.push_str(line);
                out.push('\n');
            }
        }
        runs
    }
}

/// A QEMU test host that runs Pointsman.
pub struct TestHost {
    assets: Assets,
    pointsman: PathBuf,
    memory_mib: u32,
    cpus: u32,
    timeout: Duration,
    qemu: bool,
    /// Whether a guest's triple fault is what the test looks for, rather
    /// than the rare fault of the test host that earns a second run.
    triple_faults_expected: bool,
    /// Modules loaded besides KVM (see `host_modules.rs`).
    pub(crate) host_modules: Vec<String>,
}

impl TestHost {
    /// A test host for the `pointsman` binary at `pointsman`.
    pub fn new(pointsman: &Path) -> Result<TestHost> {
        Ok(TestHost {
            assets: Assets::prepare()?,
            pointsman: pointsman.to_owned(),
            memory_mib: 4096,
            cpus: 2,
            timeout: Duration::from_secs(600),
            qemu: false,
            triple_faults_expected: false,
            host_modules: Vec::new(),
        })
    }

    pub fn assets(&self) -> &Assets {
        &self.assets
    }

    /// Longest the whole run may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Also puts Debian's QEMU in the test host, for `run_qemu`.
    pub fn with_qemu(mut self) -> Self {
        self.qemu = true;
        self
    }

    /// Guests triple-fault on purpose in this run: a triple fault is then
    /// a result to check, not a reason to run the test host again.
    pub fn triple_faults_expected(mut self) -> Self {
        self.triple_faults_expected = true;
        self
    }

    /// The initramfs of the test host: busybox, KVM modules, pointsman and
    /// its libraries, the test's files and script.
    fn host_initramfs(&self, files: &[(&str, &Path)], script: &str) -> Result<Initramfs> {
        let mut image = Initramfs::new();
        image.busybox(&self.assets.busybox);
        image.modules(&self.assets.cloud, &self.host_module_names())?;
        image.file("bin/pointsman", &self.pointsman, 0o755);
        for lib in shared_libraries(&self.pointsman)? {
            let inside = lib.to_string_lossy().into_owned();
            image.file(&inside, &lib, 0o755);
        }
        if self.qemu {
            add_qemu(&mut image)?;
        }
        for (inside, host) in files {
            image.file(inside, host, 0o644);
        }
        image.script("lib/testhost.sh", HELPERS);
        image.script("test.sh", script);
        image.script(
            "init",
            &format!(
                "{INIT_PROLOGUE}\
                 [ -e /dev/kvm ] || echo '@@testhost: no /dev/kvm'\n\
                 echo {READY}\n\
                 cd /\n\
                 sh -c '. /lib/testhost.sh; . /test.sh'\n\
                 echo {DONE}$?\n\
                 poweroff -f\n"
            ),
        );
        Ok(image)
    }

    /// Boots the test host with `files` (path inside, path on the host)
    /// and runs `script` there; returns its console.
    pub fn run(&self, files: &[(&str, &Path)], script: &str) -> Result<HostRun> {
        // One test host at a time: each wants both cores of the machine.
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());

        let work = self
            .assets
            .cache
            .join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&work).map_err(Error::io(&work))?;
        let initrd = work.join("host.cpio");
        self.host_initramfs(files, script)?.write(&initrd)?;
        let mut result = self.boot(&initrd);
        if let Some(reason) = emulation_fault(&result, self.triple_faults_expected) {
            record_retry(&self.assets.cache, reason, &result);
            eprintln!(
                "testhost: {reason} (a rare fault of this nested, emulated test host: see \
                 docs/guests.md); running the test host once more"
            );
            result = self.boot(&initrd);
        }
        let _ = std::fs::remove_file(&initrd);
        let _ = std::fs::remove_dir(&work);
        result
    }

    fn boot(&self, initrd: &Path) -> Result<HostRun> {
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args(["-accel", "tcg", "-cpu", "max", "-M", "q35"])
            .args(["-smp", &self.cpus.to_string()])
            .args(["-m", &self.memory_mib.to_string()])
            .args(["-nodefaults", "-no-user-config", "-nographic", "-no-reboot"])
            .args(["-serial", "stdio", "-kernel"])
            .arg(&self.assets.cloud.vmlinuz)
            .arg("-initrd")
            .arg(initrd)
            // no_timer_check: on a loaded machine TCG's timer can look dead
            // to the boot-time IO-APIC check, which then panics.
            .args(["-append", "console=ttyS0 panic=-1 quiet no_timer_check"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = qemu.spawn().map_err(|e| Error::Command {
            command: "qemu-system-x86_64 (install Debian's qemu-system-x86)".into(),
            detail: e.to_string(),
        })?;
        let console = Arc::new(Mutex::new(String::new()));
        let reader = {
            let console = console.clone();
            let mut stdout = child.stdout.take().ok_or_else(|| Error::Command {
                command: "qemu-system-x86_64".into(),
                detail: "no stdout".into(),
            })?;
            // TESTHOST_CONSOLE=FILE: also appends the console to FILE as it
            // comes, to follow a long run (the result has it only at the end).
            let mut tee = std::env::var_os("TESTHOST_CONSOLE").and_then(|path| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .ok()
            });
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stdout.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Some(file) = tee.as_mut() {
                        use std::io::Write as _;
                        let _ = file.write_all(&buf[..n]);
                    }
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    console
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push_str(&text);
                }
            })
        };
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().map_err(Error::io("qemu"))? {
                break Some(status);
            }
            if start.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = reader.join();
        let console = console.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if status.is_none() {
            return Err(Error::Timeout {
                seconds: self.timeout.as_secs(),
                tail: last_lines(&console, 30),
            });
        }
        let script_status = console
            .lines()
            .find_map(|l| l.trim_end_matches('\r').strip_prefix(DONE))
            .and_then(|s| s.trim().parse().ok());
        if !console.contains(READY) {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut stderr);
            }
            return Err(Error::Command {
                command: "qemu-system-x86_64 (test host)".into(),
                detail: format!("the test host did not come up\n{console}\n{stderr}"),
            });
        }
        Ok(HostRun {
            console,
            script_status,
        })
    }
}

/// Why a test host run failed in one of the ways seen, rarely and never
/// twice in a row, in the nested emulated test host (docs/guests.md): a
/// guest triple fault, the test host stopping before its script ended, or
/// the test host hanging. `None` for runs that ended as their script said.
fn emulation_fault(result: &Result<HostRun>, triple_faults_expected: bool) -> Option<&'static str> {
    match result {
        Ok(run) if !triple_faults_expected && run.console.contains(GUEST_TRIPLE_FAULT) => {
            Some("a guest triple-faulted")
        }
        Ok(run) if run.script_status.is_none() => Some("the test host stopped mid-script"),
        Ok(_) => None,
        Err(Error::Timeout { .. }) => Some("the test host hung"),
        Err(_) => None,
    }
}

/// Appends a run that is tried again to a log in the cache, so that the
/// rare faults stay on record after the retry hides them (best effort: a
/// failure to write loses only the log).
fn record_retry(cache: &Path, reason: &str, result: &Result<HostRun>) {
    use std::io::Write as _;
    let path = cache.join(RETRY_LOG);
    let Ok(mut log) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    else {
        return;
    };
    let when = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let what = match result {
        Ok(run) => run.console.clone(),
        Err(e) => e.to_string(),
    };
    let _ = writeln!(log, "==== {reason}, at {when} s since the epoch\n{what}");
}

/// The shared libraries a binary needs, from `ldd`.
pub(crate) fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(Error::io("ldd"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => l.split_whitespace().next(),
            }?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_tail_keeps_the_last_lines_in_order() {
        let run = HostRun {
            console: "a\nb\nc\nd".into(),
            script_status: Some(0),
        };
        assert_eq!(run.console_tail(2), "c\nd");
        assert_eq!(run.console_tail(9), "a\nb\nc\nd");
    }

    #[test]
    fn run_qemu_starts_the_qemu_that_with_qemu_installs() {
        assert!(HELPERS.contains(&format!("{} \"$@\"", crate::QEMU_BINARY)));
    }

    #[test]
    fn vm_runs_are_split_by_markers() {
        let run = HostRun {
            console: "noise\n@@vm-console-begin\nhello\r\nworld\n@@vm-console-end\n@@vm-status 0\n\
                      @@vm-console-begin\n@@vm-console-end\n@@vm-status 3\n"
                .into(),
            script_status: Some(0),
        };
        assert_eq!(
            run.vm_runs(),
            vec![("hello\nworld\n".to_owned(), 0), (String::new(), 3)]
        );
    }

    #[test]
    fn only_faults_of_the_emulation_are_tried_again() {
        let run = |console: &str, script_status| {
            Ok(HostRun {
                console: console.into(),
                script_status,
            })
        };
        assert_eq!(
            emulation_fault(&run("@@vm-status 0\n", Some(0)), false),
            None
        );
        // A failing script or VM is the test's business.
        assert_eq!(
            emulation_fault(&run("@@vm-status 1\n", Some(1)), false),
            None
        );
        let triple = run(
            "pointsman: the guest triple-faulted on vCPU 0\n@@vm-status 3\n",
            Some(0),
        );
        assert!(emulation_fault(&triple, false).is_some());
        // ...unless the test made the guest triple-fault.
        assert_eq!(emulation_fault(&triple, true), None);
        assert!(emulation_fault(&run("@@testhost-ready\n", None), true).is_some());
        let hung = Err(Error::Timeout {
            seconds: 1,
            tail: String::new(),
        });
        assert!(emulation_fault(&hung, false).is_some());
        let broken = Err(Error::Command {
            command: "qemu".into(),
            detail: "missing".into(),
        });
        assert_eq!(emulation_fault(&broken, false), None);
    }
}
