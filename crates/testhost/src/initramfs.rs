//! newc cpio archives for the test host and its guests.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, KernelPackage, Result};

enum Content {
    Dir,
    Bytes(Vec<u8>),
    File(PathBuf),
    Symlink(String),
}

/// An initramfs being put together: paths inside it mapped to content.
#[derive(Default)]
pub struct Initramfs {
    entries: BTreeMap<String, (u32, Content)>,
    modules: Vec<String>,
}

impl Initramfs {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, path: &str, mode: u32, content: Content) -> &mut Self {
        let path = path.trim_start_matches('/').to_owned();
        // Parent directories first: the kernel unpacks in archive order.
        let mut parent = Path::new(&path).parent();
        while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
            self.entries
                .entry(dir.to_string_lossy().into_owned())
                .or_insert((0o755, Content::Dir));
            parent = dir.parent();
        }
        self.entries.insert(path, (mode, content));
        self
    }

    pub fn dir(&mut self, path: &str) -> &mut Self {
        self.add(path, 0o755, Content::Dir)
    }

    /// A file with `bytes` as its content.
    pub fn bytes(&mut self, path: &str, bytes: &[u8], mode: u32) -> &mut Self {
        self.add(path, mode, Content::Bytes(bytes.to_vec()))
    }

    /// An executable shell script.
    pub fn script(&mut self, path: &str, text: &str) -> &mut Self {
        self.bytes(path, text.as_bytes(), 0o755)
    }

    /// A copy of a host file.
    pub fn file(&mut self, path: &str, source: &Path, mode: u32) -> &mut Self {
        self.add(path, mode, Content::File(source.to_owned()))
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.add(path, 0o777, Content::Symlink(target.to_owned()))
    }

    /// A dynamically linked program of the host at `path`, with the
    /// shared libraries `ldd` lists for it at their host paths.
    pub fn program(&mut self, path: &str, binary: &Path) -> Result<&mut Self> {
        for lib in crate::host::shared_libraries(binary)? {
            self.file(&lib.to_string_lossy(), &lib, 0o755);
        }
        Ok(self.file(path, binary, 0o755))
    }

    /// busybox at `/bin/busybox`, with `/bin/sh` pointing at it; `init`
    /// scripts run `busybox --install -s` for the other applets.
    pub fn busybox(&mut self, busybox: &Path) -> &mut Self {
        self.file("bin/busybox", busybox, 0o755)
            .symlink("bin/sh", "busybox")
            .dir("proc")
            .dir("sys")
            .dir("dev")
            .dir("tmp")
            .dir("root")
    }

    /// Kernel modules `names` (file names without `.ko`, e.g. `kvm-amd`)
    /// and their dependencies, in `/lib/modules`, with `/lib/modules/order`
    /// listing them in an order `insmod` accepts.
    pub fn modules(&mut self, kernel: &KernelPackage, names: &[&str]) -> Result<&mut Self> {
        let mut order = Vec::new();
        for name in names {
            add_with_dependencies(kernel, name, &mut order)?;
        }
        for (name, path) in &order {
            if !self.modules.contains(name) {
                self.modules.push(name.clone());
                self.file(&format!("lib/modules/{name}.ko"), path, 0o644);
            }
        }
        let list = self.modules.join("\n") + "\n";
        Ok(self.bytes("lib/modules/order", list.as_bytes(), 0o644))
    }

    /// Writes the archive to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        let file = std::fs::File::create(path).map_err(Error::io(path))?;
        let mut out = std::io::BufWriter::new(file);
        for (ino, (name, (mode, content))) in (1u32..).zip(&self.entries) {
            write_entry(&mut out, ino, name, *mode, content).map_err(Error::io(path))?;
        }
        let out = cpio::newc::trailer(out).map_err(Error::io(path))?;
        out.into_inner()
            .map_err(|e| Error::io(path)(e.into_error()))?
            .sync_all()
            .map_err(Error::io(path))
    }
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

fn write_entry<W: Write>(
    out: &mut W,
    ino: u32,
    name: &str,
    mode: u32,
    content: &Content,
) -> std::io::Result<()> {
    let (kind, data): (u32, Vec<u8>) = match content {
        Content::Dir => (S_IFDIR, Vec::new()),
        Content::Bytes(b) => (S_IFREG, b.clone()),
        Content::File(p) => (S_IFREG, std::fs::read(p)?),
        Content::Symlink(t) => (S_IFLNK, t.as_bytes().to_vec()),
    };
    let size = u32::try_from(data.len())
        .map_err(|_| std::io::Error::other(format!("{name} is over 4 GiB")))?;
    let builder = cpio::newc::Builder::new(name)
        .ino(ino)
        .mode(kind | mode)
        .nlink(if kind == S_IFDIR { 2 } else { 1 });
    let mut writer = builder.write(out, size);
    writer.write_all(&data)?;
    writer.finish()?;
    Ok(())
}

/// The module's `depends=` list, from its `.modinfo` section: NUL-separated
/// `key=value` strings, which a byte search finds without an ELF parser.
fn module_dependencies(ko: &[u8]) -> Vec<String> {
    ko.split(|b| *b == 0)
        .filter_map(|s| s.strip_prefix(b"depends="))
        .flat_map(|deps| deps.split(|b| *b == b','))
        .filter(|d| !d.is_empty())
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .collect()
}

/// Finds `name.ko` under the package's module tree (module names use `_`
/// and `-` interchangeably).
fn find_module(kernel: &KernelPackage, name: &str) -> Result<PathBuf> {
    let wanted = format!("{}.ko", name.replace('-', "_"));
    let mut stack = vec![kernel.modules.clone()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(Error::io(&dir))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.replace('-', "_") == wanted)
            {
                return Ok(path);
            }
        }
    }
    Err(Error::ModuleMissing(name.to_owned()))
}

fn add_with_dependencies(
    kernel: &KernelPackage,
    name: &str,
    order: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    let path = find_module(kernel, name)?;
    let canonical = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(name)
        .to_owned();
    if order.iter().any(|(n, _)| *n == canonical) {
        return Ok(());
    }
    let ko = std::fs::read(&path).map_err(Error::io(&path))?;
    for dep in module_dependencies(&ko) {
        add_with_dependencies(kernel, &dep, order)?;
    }
    order.push((canonical, path));
    Ok(())
}

/// The usual start of an `init`: busybox applets, /proc, /sys, /dev, and
/// the modules listed in `/lib/modules/order`.
pub const INIT_PROLOGUE: &str = r#"#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
if [ -f /lib/modules/order ]; then
    for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko || echo "insmod $m failed"; done
fi
"#;

/// A Linux guest's initramfs: busybox, `modules` and an `init` that runs
/// [`INIT_PROLOGUE`] then `body`.
pub fn linux_guest_initramfs(
    busybox: &Path,
    kernel: &KernelPackage,
    modules: &[&str],
    body: &str,
) -> Result<Initramfs> {
    let mut initramfs = Initramfs::new();
    initramfs.busybox(busybox);
    initramfs.modules(kernel, modules)?;
    initramfs.script("init", &format!("{INIT_PROLOGUE}{body}\n"));
    Ok(initramfs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_come_from_modinfo() {
        let ko = b"\x7fELF....\0license=GPL\0depends=kvm,irqbypass\0vermagic=6.1\0";
        assert_eq!(module_dependencies(ko), vec!["kvm", "irqbypass"]);
        assert!(module_dependencies(b"\0depends=\0").is_empty());
    }

    #[test]
    fn archive_lists_parents_before_children() {
        let mut i = Initramfs::new();
        i.bytes("a/b/c.txt", b"hi", 0o644)
            .symlink("bin/sh", "busybox");
        let dir = std::env::temp_dir().join(format!("initramfs-test-{}", std::process::id()));
        i.write(&dir).unwrap();
        let data = std::fs::read(&dir).unwrap();
        let _ = std::fs::remove_file(&dir);
        let text = String::from_utf8_lossy(&data);
        let pos = |s: &str| text.find(s).unwrap();
        assert!(pos("a\0") < pos("a/b\0"));
        assert!(pos("a/b\0") < pos("a/b/c.txt\0"));
        assert!(text.contains("TRAILER!!!"));
        assert!(data.starts_with(b"070701"));
    }
}
