//! Snapshots through Firecracker's API and `pointsman run --restore`: the
//! `stamp` test guest (a word in each page of 24 MiB of its RAM, checked
//! before each numbered line) is paused and snapshotted, its VMM killed,
//! and restored in a new process, where it goes on from the next number
//! with every page as it was; bad snapshot files are refused by name. The
//! `vio` test guest (an entropy request and a disk read per numbered
//! line) goes on using the same virtio queues after its restore. Diff
//! snapshots (dirty page tracking) hold only what changed since the
//! snapshot before, which `pointsman snapshot merge` lays over its memory.

mod common;
use common::api_client::{Answer, ApiClient};
use common::*;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A snapshot taken of a running test guest, and the last number the
/// guest printed before it.
struct Taken {
    dir: Scratch,
    state: PathBuf,
    memory: PathBuf,
    /// The guest's numbered lines start with this (`stamp `, `vio `).
    word: String,
    last: u64,
    /// The guest's whole console up to the snapshot: its last line may be
    /// one it had not finished, which a restored guest finishes.
    output: String,
}

/// The numbers of the `stamp N` lines in `output` (the last may be a line
/// the guest had not finished).
fn stamps(output: &str) -> Vec<u64> {
    numbers(output, "stamp ")
}

/// The numbers after each `word` in `output`.
fn numbers(output: &str, word: &str) -> Vec<u64> {
    output
        .split(word)
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

/// The number of the last whole `word N ok` line in `output`: a guest
/// paused in the middle of a line may have printed only part of its
/// number (`vio 2` of `vio 23`), which the restored guest finishes.
fn last_finished(output: &str, word: &str) -> u64 {
    output
        .split(word)
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            rest[digits.len()..]
                .starts_with(" ok")
                .then(|| digits.parse().ok())
                .flatten()
        })
        .last()
        .expect("no whole numbered line")
}

fn socket_in(dir: &Scratch, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Boots `stamp` through the API, lets it print a few lines, pauses it,
/// snapshots it and kills its VMM (SIGKILL: nothing of it is left to
/// help the restore).
fn take_snapshot(name: &str) -> Taken {
    take_snapshot_of(name, "stamp", |_, _| {})
}

/// Boots test guest `command` through the API, its devices added by
/// `add_devices`, lets it print three `command N ok` lines, pauses it,
/// snapshots it and kills its VMM; `last` is its last N.
fn take_snapshot_of(
    name: &str,
    command: &str,
    add_devices: impl FnOnce(&mut ApiClient, &Scratch),
) -> Taken {
    take_snapshot_with(name, command, &[], add_devices)
}

/// [`take_snapshot_of`], the VMM started with `args` besides its socket.
fn take_snapshot_with(
    name: &str,
    command: &str,
    args: &[&str],
    add_devices: impl FnOnce(&mut ApiClient, &Scratch),
) -> Taken {
    let dir = Scratch::new(name);
    let kernel = dir.file("pvh.elf", guests::PVH);
    let socket = socket_in(&dir, "first.sock");
    let mut run = vec!["run", "--api-sock", socket.to_str().unwrap()];
    run.extend_from_slice(args);
    let mut vm = Session::start(&run);
    let mut api = ApiClient::connect(&socket);
    api.configure(&kernel, command);
    add_devices(&mut api, &dir);
    api.put("/actions", r#"{"action_type": "InstanceStart"}"#)
        .expect(204);
    vm.wait_for(&format!("{command} 3 ok"));
    api.patch("/vm", r#"{"state": "Paused"}"#).expect(204);
    let (state, memory) = (dir.path().join("vm.snap"), dir.path().join("vm.mem"));
    let body = format!(
        r#"{{"snapshot_path": "{}", "mem_file_path": "{}", "snapshot_type": "Full"}}"#,
        state.display(),
        memory.display()
    );
    api.put("/snapshot/create", &body).expect(204);
    // Still paused, and still answering.
    assert_eq!(api.get("/").expect(200).json()["state"], "Paused");
    vm.send_signal(libc::SIGKILL);
    // The whole console: the paused guest wrote nothing after the snapshot.
    let (run, _) = vm.finish_with_status();
    let output = run.stdout;
    assert!(!output.contains("bad"), "{output}");
    assert!(!output.contains("FAILED"), "{output}");
    let word = format!("{command} ");
    let last = last_finished(&output, &word);
    Taken {
        dir,
        state,
        memory,
        word,
        last,
        output,
    }
}

/// Checks a restored guest's console: read after the console up to the
/// snapshot (the restored guest finishes a line it had begun), its
/// numbered lines count on one by one from 1, every page still holding
/// its word and every device answering.
#[track_caller]
fn goes_on_from(taken: &Taken, restored: &str) {
    let whole = format!("{}{restored}", taken.output);
    let numbers = numbers(&whole, &taken.word);
    let one_by_one: Vec<u64> = (1..).take(numbers.len()).collect();
    assert_eq!(
        numbers, one_by_one,
        "the restored guest did not go on where it stopped:\n{whole}"
    );
    assert!(
        numbers.last() > Some(&taken.last),
        "the restored guest printed nothing:\n{whole}"
    );
    assert!(!restored.contains("bad"), "RAM changed:\n{restored}");
    assert!(!restored.contains("FAILED"), "a device failed:\n{restored}");
}

#[test]
fn a_guest_restored_in_a_new_process_goes_on_with_its_memory() {
    require_kvm();
    let taken = take_snapshot("snapshot-restore");
    let (state, memory) = (
        taken.state.to_str().unwrap(),
        taken.memory.to_str().unwrap(),
    );
    let mut vm = Session::start(&["run", "--restore", state, "--mem-file", memory, "--resume"]);
    let next = format!("stamp {} ok", taken.last + 3);
    vm.wait_for(&next);
    vm.type_text("P");
    let run = vm.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    goes_on_from(&taken, &run.stdout);
    // The memory file is the restored guest's only through a private
    // mapping: restoring it again gives the same start.
    let mut again = Session::start(&["run", "--restore", state, "--mem-file", memory, "--resume"]);
    again.wait_for(&format!("stamp {} ok", taken.last + 1));
    again.type_text("P");
    let run = again.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    goes_on_from(&taken, &run.stdout);
}

/// An entropy device and a disk, which `vio` uses on every line.
fn add_rng_and_disk(api: &mut ApiClient, dir: &Scratch) {
    api.put("/entropy", "{}").expect(204);
    let disk = dir.file("disk.img", &[0x5a; 64 * 1024]);
    let drive = format!(
        r#"{{"drive_id": "disk", "path_on_host": "{}", "is_root_device": false, "is_read_only": false}}"#,
        disk.display()
    );
    api.put("/drives/disk", &drive).expect(204);
}

/// The guest's rings are in the memory file and the devices' positions in
/// them in the snapshot: a restored guest that had its devices answer
/// before gets every later request answered too, on the same queues.
#[test]
fn a_restored_guest_goes_on_using_its_entropy_device_and_disk() {
    require_kvm();
    let taken = take_snapshot_of("snapshot-virtio", "vio", add_rng_and_disk);
    let (state, memory) = (
        taken.state.to_str().unwrap(),
        taken.memory.to_str().unwrap(),
    );
    for _ in 0..2 {
        let mut vm = Session::start(&["run", "--restore", state, "--mem-file", memory, "--resume"]);
        vm.wait_for(&format!("vio {} ok", taken.last + 3));
        vm.type_text("P");
        let run = vm.finish();
        assert_eq!(run.status, EXIT_OK, "{run:?}");
        goes_on_from(&taken, &run.stdout);
    }
}

/// On PCI (`--pci`) the guest's view of each function comes back too: its
/// configuration space (command, BAR, MSI-X control), MSI-X table and
/// pending bits, and the common configuration, so the same driver goes
/// on with the same queues behind the same BARs.
#[test]
fn a_restored_guest_goes_on_using_its_devices_on_pci() {
    require_kvm();
    let taken = take_snapshot_with("snapshot-pci", "vio", &["--pci"], add_rng_and_disk);
    // Each line's entropy request leaves its interrupt pending on its
    // masked MSI-X vector, which the guest then unmasks to deliver it.
    assert!(taken.output.contains("vio msix on"), "{}", taken.output);
    let (state, memory) = (
        taken.state.to_str().unwrap(),
        taken.memory.to_str().unwrap(),
    );
    for _ in 0..2 {
        let mut vm = Session::start(&["run", "--restore", state, "--mem-file", memory, "--resume"]);
        vm.wait_for(&format!("vio {} ok", taken.last + 3));
        vm.type_text("P");
        let run = vm.finish();
        assert_eq!(run.status, EXIT_OK, "{run:?}");
        goes_on_from(&taken, &run.stdout);
    }
}

/// A snapshot file's state changed by `edit`, its checksum made right
/// again: what someone who crafts a file can hand over.
fn tampered(dir: &Scratch, from: &Path, name: &str, edit: impl FnOnce(&mut [u8])) -> PathBuf {
    use crc::{Crc, CRC_64_ECMA_182};
    edited(dir, from, name, |bytes| {
        let body_end = bytes.len() - 8;
        edit(&mut bytes[20..body_end]);
        let crc = Crc::<u64>::new(&CRC_64_ECMA_182).checksum(&bytes[..body_end]);
        bytes[body_end..].copy_from_slice(&crc.to_le_bytes());
    })
}

/// A PCI function's saved state is checked against the function the
/// configuration builds: a configuration space no guest could have left
/// (another vendor ID) is refused by name, before anything runs.
#[test]
fn a_made_up_pci_state_is_refused() {
    require_kvm();
    let taken = take_snapshot_with("snapshot-pci-bad", "vio", &["--pci"], add_rng_and_disk);
    // The entropy device's configuration space: 256 bytes (length 0x80
    // 0x02 as a varint), starting with its vendor and device IDs.
    let space = [0x80, 0x02, 0xf4, 0x1a, 0x44, 0x10];
    let bad = tampered(&taken.dir, &taken.state, "bad.snap", |body| {
        let at = body
            .windows(space.len())
            .position(|w| w == space)
            .expect("the rng's configuration space");
        body[at + 2] = 0xf5;
    });
    let run = run(
        &[
            "run",
            "--restore",
            bad.to_str().unwrap(),
            "--mem-file",
            taken.memory.to_str().unwrap(),
            "--resume",
        ],
        b"",
    );
    assert_eq!(run.status, EXIT_BAD_INPUT, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    for words in ["virtio device of type 4", "byte 0x0 is 0xf5"] {
        assert!(run.stderr.contains(words), "no {words:?} in {run:?}");
    }
    assert!(!run.stdout.contains("vio "), "{run:?}");
}

/// Restored devices wait with their paused machine: nothing is served
/// until the resume, and the paused machine can be snapshotted again (its
/// devices' workers parked), that snapshot restoring in turn.
#[test]
fn a_loaded_guest_with_virtio_devices_waits_paused_and_snapshots_again() {
    require_kvm();
    let taken = take_snapshot_of("snapshot-virtio-load", "vio", add_rng_and_disk);
    waits_paused_and_snapshots_again(&taken);
}

/// The same on PCI: a restored function saves as the original did.
#[test]
fn a_loaded_guest_on_pci_waits_paused_and_snapshots_again() {
    require_kvm();
    let taken = take_snapshot_with("snapshot-pci-load", "vio", &["--pci"], add_rng_and_disk);
    waits_paused_and_snapshots_again(&taken);
}

/// Loads `taken` (a `vio` guest's) through the API, checks that nothing
/// runs before the resume, snapshots the loaded machine again, resumes
/// it, and restores the second snapshot: both go on.
fn waits_paused_and_snapshots_again(taken: &Taken) {
    let socket = socket_in(&taken.dir, "second.sock");
    let mut vm = Session::start(&["run", "--api-sock", socket.to_str().unwrap()]);
    let mut api = ApiClient::connect(&socket);
    let body = format!(
        r#"{{"snapshot_path": "{}", "mem_file_path": "{}"}}"#,
        taken.state.display(),
        taken.memory.display()
    );
    api.put("/snapshot/load", &body).expect(204);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!vm.output().contains("vio "), "{}", vm.output());
    let (again_state, again_memory) = (
        taken.dir.path().join("again.snap"),
        taken.dir.path().join("again.mem"),
    );
    let again = format!(
        r#"{{"snapshot_path": "{}", "mem_file_path": "{}"}}"#,
        again_state.display(),
        again_memory.display()
    );
    api.put("/snapshot/create", &again).expect(204);
    api.patch("/vm", r#"{"state": "Resumed"}"#).expect(204);
    vm.wait_for(&format!("vio {} ok", taken.last + 2));
    vm.type_text("P");
    let run = vm.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    goes_on_from(taken, &run.stdout);
    // The second snapshot holds the same guest, at the same point.
    let mut vm = Session::start(&[
        "run",
        "--restore",
        again_state.to_str().unwrap(),
        "--mem-file",
        again_memory.to_str().unwrap(),
        "--resume",
    ]);
    vm.wait_for(&format!("vio {} ok", taken.last + 2));
    vm.type_text("P");
    let run = vm.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    goes_on_from(taken, &run.stdout);
}

#[test]
fn a_snapshot_loaded_through_the_api_waits_paused_for_its_resume() {
    require_kvm();
    let taken = take_snapshot("snapshot-load");
    let socket = socket_in(&taken.dir, "second.sock");
    let mut vm = Session::start(&["run", "--api-sock", socket.to_str().unwrap()]);
    let mut api = ApiClient::connect(&socket);
    assert_eq!(api.get("/").expect(200).json()["state"], "Not started");
    let body = format!(
        r#"{{"snapshot_path": "{}", "mem_backend": {{"backend_type": "File", "backend_path": "{}"}}, "resume_vm": false}}"#,
        taken.state.display(),
        taken.memory.display()
    );
    api.put("/snapshot/load", &body).expect(204);
    assert_eq!(api.get("/").expect(200).json()["state"], "Paused");
    let config = api.get("/vm/config").expect(200).json();
    assert_eq!(config["boot-source"]["boot_args"], "stamp", "{config}");
    assert_eq!(config["machine-config"]["mem_size_mib"], 64, "{config}");
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        stamps(&vm.output()).is_empty(),
        "the paused guest ran: {}",
        vm.output()
    );
    // Loaded once: a second load, or a boot, is refused.
    refused(api.put("/snapshot/load", &body), "after starting");
    refused(
        api.put("/actions", r#"{"action_type": "InstanceStart"}"#),
        "after starting",
    );
    api.patch("/vm", r#"{"state": "Resumed"}"#).expect(204);
    vm.wait_for(&format!("stamp {} ok", taken.last + 2));
    // And it can be snapshotted again, in its new life.
    api.patch("/vm", r#"{"state": "Paused"}"#).expect(204);
    let body = format!(
        r#"{{"snapshot_path": "{}", "mem_file_path": "{}"}}"#,
        taken.dir.path().join("again.snap").display(),
        taken.dir.path().join("again.mem").display()
    );
    api.put("/snapshot/create", &body).expect(204);
    api.patch("/vm", r#"{"state": "Resumed"}"#).expect(204);
    vm.type_text("P");
    let run = vm.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    goes_on_from(&taken, &run.stdout);
}

#[track_caller]
fn refused(answer: Answer, text: &str) {
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(answer.fault().contains(text), "no {text:?} in {answer:?}");
}

/// A copy of `from` in `dir` as `name`, changed by `edit`.
fn edited(dir: &Scratch, from: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(from).unwrap();
    edit(&mut bytes);
    dir.file(name, &bytes)
}

#[test]
fn bad_snapshot_files_are_refused_by_name_and_nothing_runs() {
    require_kvm();
    let taken = take_snapshot("snapshot-bad");
    let dir = &taken.dir;
    let state = &taken.state;
    let missing = dir.path().join("missing.snap");
    let truncated = edited(dir, state, "truncated.snap", |b| b.truncate(b.len() / 2));
    let flipped = edited(dir, state, "flipped.snap", |b| {
        let middle = b.len() / 2;
        b[middle] ^= 0x10;
    });
    let other_version = edited(dir, state, "version.snap", |b| {
        b[8..12].copy_from_slice(&99u32.to_le_bytes())
    });
    let not_a_snapshot = dir.file("kernel.snap", guests::PVH);
    let short_memory = dir.path().join("short.mem");
    std::fs::copy(&taken.memory, &short_memory).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&short_memory)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    let memory = taken.memory.clone();
    let endless = Path::new("/dev/zero");
    let cases: [(&Path, &Path, &str); 7] = [
        (&missing, &memory, "missing.snap"),
        (endless, &memory, "larger than a snapshot"),
        (&not_a_snapshot, &memory, "not a Pointsman snapshot"),
        (&truncated, &memory, "truncated"),
        (&flipped, &memory, "corrupted"),
        (&other_version, &memory, "version 99"),
        (state, &short_memory, "has 33554432 bytes"),
    ];

    let socket = socket_in(dir, "bad.sock");
    let vm = Session::start(&["run", "--api-sock", socket.to_str().unwrap()]);
    let mut api = ApiClient::connect(&socket);
    for (snapshot, memory, why) in cases {
        let body = format!(
            r#"{{"snapshot_path": "{}", "mem_file_path": "{}", "resume_vm": true}}"#,
            snapshot.display(),
            memory.display()
        );
        refused(api.put("/snapshot/load", &body), why);
        assert_eq!(api.get("/").expect(200).json()["state"], "Not started");
        // The command line refuses it the same way: one line, status 2.
        let run = run(
            &[
                "run",
                "--restore",
                snapshot.to_str().unwrap(),
                "--mem-file",
                memory.to_str().unwrap(),
                "--resume",
            ],
            b"",
        );
        assert_eq!(run.status, EXIT_BAD_INPUT, "{why}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{why}: {run:?}");
        assert!(run.stderr.contains(why), "{why}: {run:?}");
    }
    let uffd = format!(
        r#"{{"snapshot_path": "{}", "mem_backend": {{"backend_type": "Uffd", "backend_path": "/x"}}}}"#,
        state.display()
    );
    refused(api.put("/snapshot/load", &uffd), "Uffd");
    assert!(stamps(&vm.output()).is_empty(), "{}", vm.output());
    // After all that, the good snapshot still loads in the same VMM.
    let good = format!(
        r#"{{"snapshot_path": "{}", "mem_file_path": "{}", "resume_vm": true}}"#,
        state.display(),
        taken.memory.display()
    );
    api.put("/snapshot/load", &good).expect(204);
    let mut vm = vm;
    vm.wait_for(&format!("stamp {} ok", taken.last + 1));
    vm.type_text("P");
    assert_eq!(vm.finish().status, EXIT_OK);
}

#[test]
fn snapshots_are_refused_while_running_before_the_start_and_as_diffs_untracked() {
    require_kvm();
    let dir = Scratch::new("snapshot-refused");
    let kernel = dir.file("pvh.elf", guests::PVH);
    let socket = socket_in(&dir, "api.sock");
    let mut vm = Session::start(&["run", "--api-sock", socket.to_str().unwrap()]);
    let mut api = ApiClient::connect(&socket);
    // Refused before the start.
    let body = format!(
        r#"{{"snapshot_path": "{}", "mem_file_path": "{}"}}"#,
        dir.path().join("s").display(),
        dir.path().join("m").display()
    );
    refused(api.put("/snapshot/create", &body), "before starting");
    api.configure(&kernel, "count");
    api.put("/entropy", "{}").expect(204);
    api.put("/actions", r#"{"action_type": "InstanceStart"}"#)
        .expect(204);
    vm.wait_for("count 2");
    refused(api.put("/snapshot/create", &body), "paused");
    api.patch("/vm", r#"{"state": "Paused"}"#).expect(204);
    let diff = body.replace('}', r#", "snapshot_type": "Diff"}"#);
    refused(
        api.put("/snapshot/create", &diff),
        "needs dirty page tracking",
    );
    assert!(
        !dir.path().join("s").exists(),
        "a refused snapshot left a file"
    );
    api.patch("/vm", r#"{"state": "Resumed"}"#).expect(204);
    vm.wait_for("count ");
    vm.type_text("P");
    assert_eq!(vm.finish().status, EXIT_OK);

    // An entropy device is saved on virtio-pci as on virtio-mmio.
    let socket = socket_in(&dir, "pci.sock");
    let mut vm = Session::start(&["run", "--api-sock", socket.to_str().unwrap(), "--pci"]);
    let mut api = ApiClient::connect(&socket);
    api.configure(&kernel, "checks");
    api.put("/entropy", "{}").expect(204);
    api.put("/actions", r#"{"action_type": "InstanceStart"}"#)
        .expect(204);
    vm.wait_for("count 2");
    api.patch("/vm", r#"{"state": "Paused"}"#).expect(204);
    api.put("/snapshot/create", &body).expect(204);
    assert!(dir.path().join("s").exists());
    api.patch("/vm", r#"{"state": "Resumed"}"#).expect(204);
    vm.type_text("P");
    assert_eq!(vm.finish().status, EXIT_OK);
}

/// A Full snapshot of a test guest booted with dirty page tracking, then
/// a Diff of the same guest some lines later, each with the console up
/// to it (in two scratch directories).
struct FullThenDiff {
    full: Taken,
    diff: Taken,
}

/// Boots test guest `command` through the API with `track_dirty_pages`,
/// its devices added by `add_devices`; pauses it after its third line for
/// a Full snapshot and, resumed, three lines later for a Diff; then kills
/// its VMM.
fn take_full_then_diff(
    name: &str,
    command: &str,
    add_devices: impl FnOnce(&mut ApiClient, &Scratch),
) -> FullThenDiff {
    let (full_dir, diff_dir) = (Scratch::new(name), Scratch::new(&format!("{name}-diff")));
    let kernel = full_dir.file("pvh.elf", guests::PVH);
    let socket = socket_in(&full_dir, "first.sock");
    let mut vm = Session::start(&["run", "--api-sock", socket.to_str().unwrap()]);
    let mut api = ApiClient::connect(&socket);
    api.configure(&kernel, command);
    api.patch("/machine-config", r#"{"track_dirty_pages": true}"#)
        .expect(204);
    add_devices(&mut api, &full_dir);
    api.put("/actions", r#"{"action_type": "InstanceStart"}"#)
        .expect(204);
    let word = format!("{command} ");
    let snapshot = |vm: &mut Session, api: &mut ApiClient, dir: Scratch, line, kind| {
        vm.wait_for(&format!("{word}{line} ok"));
        api.patch("/vm", r#"{"state": "Paused"}"#).expect(204);
        let (state, memory) = (dir.path().join("vm.snap"), dir.path().join("vm.mem"));
        let body = format!(
            r#"{{"snapshot_path": "{}", "mem_file_path": "{}", "snapshot_type": "{kind}"}}"#,
            state.display(),
            memory.display()
        );
        api.put("/snapshot/create", &body).expect(204);
        // The paused guest prints nothing more: its console up to here.
        let output = vm.output();
        let last = last_finished(&output, &word);
        Taken {
            dir,
            state,
            memory,
            word: word.clone(),
            last,
            output,
        }
    };
    let full = snapshot(&mut vm, &mut api, full_dir, 3, "Full");
    api.patch("/vm", r#"{"state": "Resumed"}"#).expect(204);
    let diff = snapshot(&mut vm, &mut api, diff_dir, full.last + 3, "Diff");
    vm.send_signal(libc::SIGKILL);
    let (run, _) = vm.finish_with_status();
    assert!(!run.stdout.contains("bad"), "{}", run.stdout);
    assert!(!run.stdout.contains("FAILED"), "{}", run.stdout);
    FullThenDiff { full, diff }
}

/// Bytes of disk the file at `path` takes (its allocated blocks).
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// Whether the file at `path` holds data (not a hole) at `offset`.
fn data_at(path: &Path, offset: u64) -> bool {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    let at = libc::off_t::try_from(offset).unwrap();
    // SAFETY: lseek on a file this test opened.
    unsafe { libc::lseek(file.as_raw_fd(), at, libc::SEEK_DATA) == at }
}

/// A copy of the memory file `from`, as `name` in `dir`, merged with the
/// Diff memory files `diffs` by `pointsman snapshot merge`.
fn merged(dir: &Scratch, from: &Path, name: &str, diffs: &[&Path]) -> PathBuf {
    let base = dir.path().join(name);
    std::fs::copy(from, &base).unwrap();
    let mut args = vec!["snapshot", "merge", base.to_str().unwrap()];
    args.extend(diffs.iter().map(|d| d.to_str().unwrap()));
    let run = run(&args, b"");
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    base
}

/// Restores `state` over `memory` in a new process and waits for `line`.
fn restore_until(state: &Path, memory: &Path, line: &str) -> Run {
    let mut vm = Session::start(&[
        "run",
        "--restore",
        state.to_str().unwrap(),
        "--mem-file",
        memory.to_str().unwrap(),
        "--resume",
    ]);
    vm.wait_for(line);
    vm.type_text("P");
    let run = vm.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    run
}

/// `stamp` keeps its line count in RAM and, after its first lines, writes
/// nothing else but its stack: its Diff holds a few pages against the
/// Full's 24 MiB of stamps. Merged over the Full memory, the Diff's state
/// goes on from the Diff's count with every stamp intact; over the Full
/// memory alone it counts on from the Full's: the Diff holds what changed.
#[test]
fn a_diff_snapshot_holds_what_changed_since_the_full_one() {
    require_kvm();
    let FullThenDiff { full, diff } = take_full_then_diff("snapshot-diff", "stamp", |_, _| {});
    let full_size = std::fs::metadata(&full.memory).unwrap().len();
    assert_eq!(std::fs::metadata(&diff.memory).unwrap().len(), full_size);
    let (full_disk, diff_disk) = (allocated(&full.memory), allocated(&diff.memory));
    assert!(full_disk >= 24 << 20, "the Full takes {full_disk} bytes");
    assert!(
        diff_disk * 50 < full_disk,
        "the Diff takes {diff_disk} bytes, the Full {full_disk}"
    );

    let memory = merged(&diff.dir, &full.memory, "merged.mem", &[&diff.memory]);
    let run = restore_until(&diff.state, &memory, &format!("stamp {} ok", diff.last + 2));
    goes_on_from(&diff, &run.stdout);

    // The Diff's state over the Full's memory: the count is the Full's.
    let stale = restore_until(
        &diff.state,
        &full.memory,
        &format!("stamp {} ok", full.last + 2),
    );
    assert!(
        !stale.stdout.contains(&format!("stamp {} ", diff.last + 1)),
        "the Full memory already held the Diff's count:\n{}",
        stale.stdout
    );
}

/// What the VMM wrote into the guest after the Full snapshot, which KVM's
/// dirty log does not see, is in the Diff: the used rings of the disk and
/// the entropy device and the entropy buffer, pages the `vio` guest only
/// reads. Restored from the merged memory, the guest goes on using both.
#[test]
fn a_diff_snapshot_holds_what_the_devices_wrote() {
    require_kvm();
    let FullThenDiff { full, diff } =
        take_full_then_diff("snapshot-diff-vio", "vio", add_rng_and_disk);
    // virtio.h: the disk's ring area VQ(0) and the rng's VQ(4), each used
    // ring 0x2000 in; BUF, where the rng's bytes go.
    for (page, what) in [
        (0x42000, "the disk's used ring"),
        (0x52000, "the entropy device's used ring"),
        (0x60000, "the entropy buffer"),
    ] {
        assert!(data_at(&diff.memory, page), "{what} is not in the Diff");
    }
    let memory = merged(&diff.dir, &full.memory, "merged.mem", &[&diff.memory]);
    let run = restore_until(&diff.state, &memory, &format!("vio {} ok", diff.last + 2));
    goes_on_from(&diff, &run.stdout);
}

/// A merge of memory files of different sizes is refused and changes
/// nothing: one line, status 2.
#[test]
fn merging_memory_files_of_different_sizes_is_refused() {
    let dir = Scratch::new("snapshot-merge-sizes");
    let base = dir.file("base.mem", &[1; 8192]);
    let diff = dir.file("diff.mem", &[2; 4096]);
    let run = run(
        &[
            "snapshot",
            "merge",
            base.to_str().unwrap(),
            diff.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(run.status, EXIT_BAD_INPUT, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains("4096 bytes"), "{run:?}");
    assert_eq!(std::fs::read(&base).unwrap(), [1; 8192]);
}

/// Runs a paused, restored guest on `api` until `line`, pauses it and takes
/// a Diff into `dir`; the console before this VMM's is `before`.
fn diff_of_restored(
    vm: &mut Session,
    api: &mut ApiClient,
    dir: Scratch,
    before: &str,
    line: u64,
) -> Taken {
    api.patch("/vm", r#"{"state": "Resumed"}"#).expect(204);
    vm.wait_for(&format!("stamp {line} ok"));
    api.patch("/vm", r#"{"state": "Paused"}"#).expect(204);
    let (state, memory) = (dir.path().join("vm.snap"), dir.path().join("vm.mem"));
    let body = format!(
        r#"{{"snapshot_path": "{}", "mem_file_path": "{}", "snapshot_type": "Diff"}}"#,
        state.display(),
        memory.display()
    );
    api.put("/snapshot/create", &body).expect(204);
    let output = format!("{before}{}", vm.output());
    let last = last_finished(&output, "stamp ");
    Taken {
        dir,
        state,
        memory,
        word: "stamp ".into(),
        last,
        output,
    }
}

/// A restored guest tracks dirty pages only if its load asks: then its
/// Diffs hold what changed since the restore, to lay over the memory file
/// it came from, and a Diff of a guest restored from that merge goes on
/// the chain (`track_dirty_pages` on `PUT /snapshot/load`, then
/// `--track-dirty-pages` with `--restore`).
#[test]
fn a_restored_guest_takes_diffs_against_the_memory_file_it_came_from() {
    require_kvm();
    let taken = take_snapshot("snapshot-diff-load");
    let (state, memory) = (
        taken.state.to_str().unwrap(),
        taken.memory.to_str().unwrap(),
    );
    let diff_body = |dir: &Scratch| {
        format!(
            r#"{{"snapshot_path": "{}", "mem_file_path": "{}", "snapshot_type": "Diff"}}"#,
            dir.path().join("s").display(),
            dir.path().join("m").display()
        )
    };

    // Restored without tracking: no Diff.
    let socket = socket_in(&taken.dir, "untracked.sock");
    let sock = socket.to_str().unwrap();
    let vm = Session::start(&[
        "run",
        "--restore",
        state,
        "--mem-file",
        memory,
        "--api-sock",
        sock,
    ]);
    let mut api = ApiClient::connect(&socket);
    refused(
        api.put("/snapshot/create", &diff_body(&taken.dir)),
        "track_dirty_pages",
    );
    vm.send_signal(libc::SIGKILL);
    vm.finish();

    // Loaded with tracking through the API.
    let socket = socket_in(&taken.dir, "tracked.sock");
    let mut vm = Session::start(&["run", "--api-sock", socket.to_str().unwrap()]);
    let mut api = ApiClient::connect(&socket);
    let load = format!(
        r#"{{"snapshot_path": "{state}", "mem_file_path": "{memory}", "track_dirty_pages": true}}"#
    );
    api.put("/snapshot/load", &load).expect(204);
    let config = api.get("/vm/config").expect(200).json();
    assert_eq!(
        config["machine-config"]["track_dirty_pages"], true,
        "{config}"
    );
    let first = Scratch::new("snapshot-diff-load-1");
    let first = diff_of_restored(&mut vm, &mut api, first, &taken.output, taken.last + 3);
    vm.send_signal(libc::SIGKILL);
    vm.finish();
    let once = merged(&first.dir, &taken.memory, "merged.mem", &[&first.memory]);

    // Restored from the merge with --track-dirty-pages: a second Diff.
    let socket = socket_in(&first.dir, "again.sock");
    let mut vm = Session::start(&[
        "run",
        "--restore",
        first.state.to_str().unwrap(),
        "--mem-file",
        once.to_str().unwrap(),
        "--track-dirty-pages",
        "--api-sock",
        socket.to_str().unwrap(),
    ]);
    let mut api = ApiClient::connect(&socket);
    let second = Scratch::new("snapshot-diff-load-2");
    let second = diff_of_restored(&mut vm, &mut api, second, &first.output, first.last + 3);
    vm.send_signal(libc::SIGKILL);
    vm.finish();

    // The Full's memory with both Diffs goes on from the second.
    let chain = merged(
        &second.dir,
        &taken.memory,
        "chain.mem",
        &[&first.memory, &second.memory],
    );
    let run = restore_until(
        &second.state,
        &chain,
        &format!("stamp {} ok", second.last + 2),
    );
    goes_on_from(&second, &run.stdout);
}

/// A vsock device and a balloon (whose drivers this guest never starts)
/// are saved with the guest and built anew on the restore, the vsock
/// device listening again on its socket, which the killed VMM left behind.
#[test]
fn a_guest_with_vsock_and_balloon_devices_is_snapshotted_and_restored() {
    require_kvm();
    let taken = take_snapshot_of("snapshot-vsock-balloon", "stamp", |api, dir| {
        let vsock = format!(
            r#"{{"guest_cid": 3, "uds_path": "{}"}}"#,
            dir.path().join("v.sock").display()
        );
        api.put("/vsock", &vsock).expect(204);
        let balloon =
            r#"{"amount_mib": 1, "deflate_on_oom": false, "stats_polling_interval_s": 5}"#;
        api.put("/balloon", balloon).expect(204);
    });
    let (state, memory) = (
        taken.state.to_str().unwrap(),
        taken.memory.to_str().unwrap(),
    );
    let socket = socket_in(&taken.dir, "second.sock");
    let mut vm = Session::start(&[
        "run",
        "--api-sock",
        socket.to_str().unwrap(),
        "--restore",
        state,
        "--mem-file",
        memory,
        "--resume",
    ]);
    vm.wait_for(&format!("stamp {} ok", taken.last + 2));
    let mut api = ApiClient::connect(&socket);
    let balloon = api.get("/balloon").expect(200).json();
    assert_eq!(balloon["amount_mib"], 1, "{balloon}");
    assert!(std::os::unix::net::UnixStream::connect(taken.dir.path().join("v.sock")).is_ok());
    vm.type_text("P");
    let run = vm.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    goes_on_from(&taken, &run.stdout);
}

/// A guest connected to a host program through its vsock device is
/// snapshotted and restored: the connection ended with the old VMM, and
/// the restored device says so with a transport reset in the event
/// buffer the guest posted before the snapshot.
#[test]
fn a_restored_vsock_device_tells_its_guest_its_connections_are_gone() {
    use std::io::{BufRead, BufReader, Write};
    require_kvm();
    let dir = Scratch::new("snapshot-vsock-reset");
    let kernel = dir.file("pvh.elf", guests::PVH);
    let uds = dir.path().join("v.sock");
    let listener =
        std::os::unix::net::UnixListener::bind(format!("{}_5000", uds.display())).unwrap();
    // The host program: answers the guest's line, then holds the
    // connection until the test ends.
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut line = String::new();
        let _ = BufReader::new(stream.try_clone().unwrap()).read_line(&mut line);
        let _ = stream.write_all(b"pong\n");
        std::thread::sleep(Duration::from_secs(60));
    });
    let socket = socket_in(&dir, "first.sock");
    let mut vm = Session::start(&["run", "--api-sock", socket.to_str().unwrap()]);
    let mut api = ApiClient::connect(&socket);
    api.configure(&kernel, "hostile_vsock");
    let vsock = format!(r#"{{"guest_cid": 3, "uds_path": "{}"}}"#, uds.display());
    api.put("/vsock", &vsock).expect(204);
    api.put("/actions", r#"{"action_type": "InstanceStart"}"#)
        .expect(204);
    vm.wait_for("vsock waiting");
    api.patch("/vm", r#"{"state": "Paused"}"#).expect(204);
    let (state, memory) = (dir.path().join("vm.snap"), dir.path().join("vm.mem"));
    let body = format!(
        r#"{{"snapshot_path": "{}", "mem_file_path": "{}"}}"#,
        state.display(),
        memory.display()
    );
    api.put("/snapshot/create", &body).expect(204);
    vm.send_signal(libc::SIGKILL);
    let (first, _) = vm.finish_with_status();
    assert!(first.stdout.contains("vsock connected"), "{}", first.stdout);
    let mut vm = Session::start(&[
        "run",
        "--restore",
        state.to_str().unwrap(),
        "--mem-file",
        memory.to_str().unwrap(),
        "--resume",
    ]);
    vm.type_text("E");
    let run = vm.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert!(
        run.stdout.contains("vsock transport reset"),
        "{}",
        run.stdout
    );
}

/// `pointsman snapshot describe` and Firecracker's `--describe-snapshot`
/// read a snapshot as a restore would, and refuse what is not one.
#[test]
fn snapshot_files_are_described() {
    require_kvm();
    let taken = take_snapshot("snapshot-describe");
    let state = taken.state.to_str().unwrap();
    let json = run(&["snapshot", "describe", state, "--json"], b"");
    assert_eq!(json.status, EXIT_OK, "{json:?}");
    let info: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(info["vcpus"], 1, "{info}");
    assert_eq!(info["memory_bytes"], 64 << 20, "{info}");
    let version = info["format_version"].as_u64().unwrap();
    assert!(info["config"]["boot-source"].is_object(), "{info}");
    let text = run(&["snapshot", "describe", state], b"");
    assert!(text.stdout.contains("vCPUs: 1"), "{text:?}");
    let firecracker = run(&["firecracker", "--describe-snapshot", state], b"");
    assert_eq!(firecracker.stdout.trim(), format!("v{version}.0.0"));
    for bad in ["/dev/zero", taken.memory.to_str().unwrap(), "/nonexistent"] {
        let refused = run(&["snapshot", "describe", bad], b"");
        assert_eq!(refused.status, 2, "{bad}: {refused:?}");
        assert_eq!(refused.stderr.lines().count(), 1, "{refused:?}");
    }
}

/// A guest paused part-way through printing a number: the last whole
/// line counts, not the digits it had printed (the snapshot test of a
/// busy CI machine took `vio 2` of `vio 23` for line 2).
#[test]
fn the_last_whole_line_is_the_one_a_restore_goes_on_from() {
    assert_eq!(last_finished("vio 21 ok\nvio 22 ok\nvio 2", "vio "), 22);
    assert_eq!(last_finished("vio 8 ok\nvio ", "vio "), 8);
    assert_eq!(last_finished("stamp 3 ok\n", "stamp "), 3);
}
