//! `--config-file FILE`: a guest described in Firecracker's JSON format.

use std::path::{Path, PathBuf};

use vmm::{ResourceError, VmConfig, VmResources};

/// Why a config file cannot be used. Each is bad input (status 2), told
/// in one line that names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("--config-file {}: cannot read it: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--config-file {}: {source}", path.display())]
    Invalid {
        path: PathBuf,
        source: ResourceError,
    },
}

/// The guest a config file describes: its resources as written (for the
/// logger, the metrics and `GET /vm/config`) and the VM to boot. Every
/// host file it names is opened once, so that a missing one is refused
/// here, by name, before anything starts.
pub fn load(path: &Path) -> Result<(VmResources, VmConfig), ConfigFileError> {
    let invalid = |source| ConfigFileError::Invalid {
        path: path.to_owned(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let resources = VmResources::from_json(&text).map_err(invalid)?;
    let config = resources.to_vm_config().map_err(invalid)?;
    resources.check_files().map_err(invalid)?;
    Ok((resources, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "pointsman-config-file-{}-{name}.json",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_good_file_loads() {
        let path = scratch_file(
            "good",
            r#"{"boot-source": {"kernel_image_path": "/proc/self/exe", "boot_args": "exit"},
                "machine-config": {"vcpu_count": 2, "mem_size_mib": 64}}"#,
        );
        let (resources, config) = load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            (config.cpus, config.memory, config.cmdline.as_str()),
            (2, 64 << 20, "exit")
        );
        assert!(resources.machine_config.is_some());
    }

    #[test]
    fn refusals_name_the_file_and_the_problem() {
        let missing = load(Path::new("/nonexistent/vm.json")).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("--config-file /nonexistent/vm.json: cannot read it:"),
            "{missing}"
        );
        let no_kernel = scratch_file(
            "nokernel",
            r#"{"boot-source": {"kernel_image_path": "/nonexistent/vmlinux"}}"#,
        );
        let e = load(&no_kernel).unwrap_err().to_string();
        std::fs::remove_file(&no_kernel).unwrap();
        assert!(
            e.contains("cannot open kernel_image_path /nonexistent/vmlinux"),
            "{e}"
        );
        let no_boot = scratch_file("noboot", "{}");
        let e = load(&no_boot).unwrap_err().to_string();
        std::fs::remove_file(&no_boot).unwrap();
        assert!(e.contains("boot-source is missing"), "{e}");
    }
}
