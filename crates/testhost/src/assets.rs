//! Debian packages the test host is made of, downloaded once with
//! `apt-get download` and unpacked (never installed) into the cache.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::{Error, Result};

/// A kernel package, unpacked.
#[derive(Clone, Debug)]
pub struct KernelPackage {
    /// The bzImage, `/boot/vmlinuz-*`.
    pub vmlinuz: PathBuf,
    /// `/lib/modules/<version>/kernel`.
    pub modules: PathBuf,
    pub version: String,
}

/// Paths of everything the test host is built from.
#[derive(Clone, Debug)]
pub struct Assets {
    pub cache: PathBuf,
    /// Debian's cloud kernel: the test host's kernel, and the default guest.
    pub cloud: KernelPackage,
    /// `busybox` from `busybox-static`.
    pub busybox: PathBuf,
}

/// The workspace's `.cache/testhost`, which `.gitignore` covers.
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.cache/testhost")
        .components()
        .collect()
}

/// Runs `command` to the end; its stdout, or an error with its stderr.
pub(crate) fn run(command: &mut Command) -> Result<String> {
    let shown = format!("{command:?}");
    let out = command.output().map_err(|e| Error::Command {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: shown,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The concrete package a metapackage such as `linux-image-cloud-amd64`
/// depends on (`linux-image-6.1.0-NN-cloud-amd64`).
fn resolve_kernel_package(meta: &str) -> Result<String> {
    let deps = run(Command::new("apt-cache").args(["depends", meta]))
        .or_else(|_| {
            apt_update()?;
            run(Command::new("apt-cache").args(["depends", meta]))
        })
        .map_err(|_| Error::PackageMissing(meta.to_owned()))?;
    deps.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_owned)
        .ok_or_else(|| Error::PackageMissing(meta.to_owned()))
}

fn apt_update() -> Result<()> {
    run(Command::new("apt-get").args(["update", "-qq"])).map(drop)
}

/// Downloads `package` into `dir` unless a `.deb` of it is there; returns
/// the `.deb`'s path.
fn download(package: &str, dir: &Path) -> Result<PathBuf> {
    let find = || -> Option<PathBuf> {
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
            })
    };
    if let Some(deb) = find() {
        return Ok(deb);
    }
    let fetch = || {
        run(Command::new("apt-get")
            .args(["download", "-qq", package])
            .current_dir(dir))
    };
    if fetch().is_err() {
        apt_update()?;
        fetch()?;
    }
    find().ok_or_else(|| Error::PackageMissing(package.to_owned()))
}

/// Unpacks a `.deb` into `dir/<package>` once.
fn unpack(deb: &Path, dir: &Path, name: &str) -> Result<PathBuf> {
    let root = dir.join(name);
    let done = root.join(".unpacked");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).map_err(Error::io(&root))?;
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))?;
        std::fs::write(&done, b"").map_err(Error::io(&done))?;
    }
    Ok(root)
}

fn kernel_package(meta: &str, cache: &Path) -> Result<KernelPackage> {
    let package = resolve_kernel_package(meta)?;
    let version = package
        .strip_prefix("linux-image-")
        .unwrap_or(&package)
        .to_owned();
    let root = unpack(&download(&package, cache)?, cache, &package)?;
    Ok(KernelPackage {
        vmlinuz: root.join(format!("boot/vmlinuz-{version}")),
        modules: root.join(format!("lib/modules/{version}/kernel")),
        version,
    })
}

impl Assets {
    /// Fetches and unpacks what is missing from the cache. Tests share one
    /// cache, so this takes a lock.
    pub fn prepare() -> Result<Assets> {
        static LOCK: Mutex<()> = Mutex::new(());
        let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let cache = cache_dir();
        std::fs::create_dir_all(&cache).map_err(Error::io(&cache))?;
        let cloud = kernel_package("linux-image-cloud-amd64", &cache)?;
        let busybox_root = unpack(
            &download("busybox-static", &cache)?,
            &cache,
            "busybox-static",
        )?;
        Ok(Assets {
            cloud,
            busybox: busybox_root.join("bin/busybox"),
            cache,
        })
    }

    /// Debian's generic kernel (`linux-image-amd64`), for guests.
    pub fn generic_kernel(&self) -> Result<KernelPackage> {
        static LOCK: Mutex<()> = Mutex::new(());
        let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        kernel_package("linux-image-amd64", &self.cache)
    }
}
