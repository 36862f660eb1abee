//! Starting a guest's VMM: `pointsman jail ... -- run ...` in a session of
//! its own, its console written straight to a file and read from a FIFO,
//! so that it outlives the daemon and nothing it prints passes through
//! the daemon.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};

use crate::ManagerError;

/// What the jail needs to start one guest.
#[derive(Clone, Debug)]
pub struct JailPlan {
    /// The pointsman binary.
    pub exe: PathBuf,
    /// The guest's name: its jail id and cgroup name.
    pub name: String,
    /// The guest's user id.
    pub uid: u32,
    /// Its group: its uid's number, or for a clone the group that may
    /// read its snapshot's files.
    pub gid: u32,
    pub chroot_base: PathBuf,
    pub parent_cgroup: String,
    pub cgroup_version: u8,
    /// `FILE=VALUE` cgroup settings.
    pub cgroups: Vec<String>,
    /// `pointsman jail --file` specs: files beyond the run arguments'.
    pub files: Vec<String>,
    /// The arguments of `pointsman run`.
    pub run_args: Vec<OsString>,
}

impl JailPlan {
    /// The arguments of `pointsman jail` that start the guest.
    pub fn args(&self) -> Vec<OsString> {
        let (uid, gid) = (self.uid.to_string(), self.gid.to_string());
        let mut args: Vec<OsString> = ["jail", "--id", &self.name, "--uid", &uid, "--gid", &gid]
            .iter()
            .map(OsString::from)
            .collect();
        args.push("--chroot-base".into());
        args.push(self.chroot_base.clone().into());
        args.push("--parent-cgroup".into());
        args.push(self.parent_cgroup.clone().into());
        args.push("--cgroup-version".into());
        args.push(self.cgroup_version.to_string().into());
        for setting in &self.cgroups {
            args.push("--cgroup".into());
            args.push(setting.into());
        }
        for file in &self.files {
            args.push("--file".into());
            args.push(file.into());
        }
        args.push("--".into());
        args.push("run".into());
        args.extend(self.run_args.iter().cloned());
        args
    }

    /// Starts the jailed VMM with `console` as its stdout and stderr and
    /// `input` (the console's input FIFO) as its stdin. It is the daemon's child (so the daemon can reap it and
    /// learn its exit status) but in a new session: a signal to the
    /// daemon's process group or terminal never reaches it, and it runs
    /// on when the daemon ends.
    pub fn spawn(&self, console: File, input: File) -> Result<Child, ManagerError> {
        let errors = console
            .try_clone()
            .map_err(ManagerError::io("duplicate", "the console log"))?;
        let mut command = Command::new(&self.exe);
        command
            .args(self.args())
            .stdin(input)
            .stdout(console)
            .stderr(errors)
            .env_clear();
        // SAFETY: the closure only calls setsid, which is async-signal-safe
        // and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
            .spawn()
            .map_err(ManagerError::io("start", self.exe.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jail_gets_the_guests_identity_and_limits() {
        let plan = JailPlan {
            exe: "/usr/bin/pointsman".into(),
            name: "web".into(),
            uid: 40001,
            gid: 40001,
            chroot_base: "/var/lib/pointsman/jails".into(),
            parent_cgroup: "pointsman".into(),
            cgroup_version: 1,
            cgroups: vec!["cpu.shares=1024".into()],
            files: Vec::new(),
            run_args: vec!["--kernel".into(), "/k".into()],
        };
        let args: Vec<String> = plan
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "jail --id web --uid 40001 --gid 40001 --chroot-base /var/lib/pointsman/jails \
             --parent-cgroup pointsman --cgroup-version 1 --cgroup cpu.shares=1024 -- run --kernel /k"
        );
    }
}
