//! Assembles the test guests from `asm/` with the system's `gcc`, `ld` and
//! `objcopy`, into `OUT_DIR`: `pvh.elf`, `elf64.elf` and `bzimage.bin`.
//!
//! The shared body is assembled twice, with `BITS=32` for the PVH image and
//! `BITS=64` for the two images entered in long mode.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Sources of the body every image runs, whatever its entry.
const BODY: &[&str] = &[
    "boot.S",
    "commands.S",
    "serial.S",
    "acpi.S",
    "power.S",
    "smp.S",
    "virtio.S",
    "checks.S",
    "vio.S",
    "hostile.S",
    "hostile_regs.S",
    "hostile_vsock.S",
];

/// Every file in `asm/`, for `rerun-if-changed`.
const SOURCES: &[&str] = &[
    "mode.h",
    "layout.h",
    "boot.S",
    "commands.S",
    "serial.S",
    "acpi.S",
    "power.S",
    "smp.S",
    "virtio.h",
    "virtio.S",
    "checks.S",
    "vio.S",
    "hostile.S",
    "hostile_regs.S",
    "hostile_vsock.S",
    "entry_pvh.S",
    "entry_linux.S",
    "bzimage.S",
    "pvh.ld",
    "elf64.ld",
    "bzimage.ld",
];

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let asm = manifest.join("asm");

    println!("cargo:rerun-if-changed=build.rs");
    for source in SOURCES {
        println!("cargo:rerun-if-changed={}", asm.join(source).display());
    }

    let body32 = assemble_all(&asm, &out, BODY, 32);
    let body64 = assemble_all(&asm, &out, BODY, 64);
    let entry_pvh = assemble(&asm, &out, "entry_pvh.S", 32);
    let entry_linux = assemble(&asm, &out, "entry_linux.S", 64);
    let bzimage_head = assemble(&asm, &out, "bzimage.S", 64);

    // PVH: the 32-bit body behind the PVH entry.
    let mut objects = vec![entry_pvh];
    objects.extend(body32);
    link(&asm.join("pvh.ld"), &objects, &out.join("pvh.elf"));

    // ELF64: the 64-bit body behind the boot_params entry.
    let mut objects = vec![entry_linux.clone()];
    objects.extend(body64.iter().cloned());
    link(&asm.join("elf64.ld"), &objects, &out.join("elf64.elf"));

    // bzImage: the same, behind the setup sectors, flattened to a file.
    let mut objects = vec![bzimage_head, entry_linux];
    objects.extend(body64);
    let bzimage_elf = out.join("bzimage.elf");
    link(&asm.join("bzimage.ld"), &objects, &bzimage_elf);
    run(Command::new("objcopy")
        .args(["-O", "binary"])
        .arg(&bzimage_elf)
        .arg(out.join("bzimage.bin")));
}

/// Assembles each of `sources` for a `bits`-bit body.
fn assemble_all(asm: &Path, out: &Path, sources: &[&str], bits: u32) -> Vec<PathBuf> {
    sources
        .iter()
        .map(|source| assemble(asm, out, source, bits))
        .collect()
}

/// Runs `source` through the C preprocessor and the assembler, with `BITS`
/// set to `bits`. Returns the object file.
fn assemble(asm: &Path, out: &Path, source: &str, bits: u32) -> PathBuf {
    let stem = source.trim_end_matches(".S");
    let object = out.join(format!("{stem}.{bits}.o"));
    run(Command::new("gcc")
        .args(["-c", "-nostdinc", "-x", "assembler-with-cpp"])
        .arg(format!("-DBITS={bits}"))
        .arg("-I")
        .arg(asm)
        .args(["-Wa,--fatal-warnings", "-Wa,--noexecstack"])
        .arg("-o")
        .arg(&object)
        .arg(asm.join(source)));
    object
}

/// Links `objects` with the linker script `script` into the stripped ELF `output`.
fn link(script: &Path, objects: &[PathBuf], output: &Path) {
    run(Command::new("ld")
        .args(["-nostdlib", "-static", "--build-id=none"])
        .args(["-z", "noexecstack", "-z", "max-page-size=0x1000"])
        .args(["--fatal-warnings", "--no-warn-rwx-segments"])
        .arg("-T")
        .arg(script)
        .arg("-o")
        .arg(output)
        .args(objects));
    run(Command::new("objcopy").arg("--strip-all").arg(output));
}

/// Runs a tool and fails the build, showing its output, if it fails.
fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    if !output.status.success() {
        panic!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
