//! The serial console: output to stdout, stdin to the guest.

mod common;
use common::*;

#[test]
fn typed_input_reaches_the_guest_and_comes_back() {
    require_kvm();
    let dir = Scratch::new("echo");
    let kernel = dir.file("pvh", guests::PVH);
    let mut session = Session::start(&[
        "run",
        "--kernel",
        kernel.to_str().unwrap(),
        "--cmdline",
        "echo",
    ]);
    session.wait_for("ready");
    session.type_text("hello pointsman");
    session.wait_for("hello pointsman");
    session.type_text("P");
    let run = session.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
}

#[test]
fn input_larger_than_the_uart_fifo_arrives_whole() {
    require_kvm();
    let dir = Scratch::new("echo-long");
    let kernel = dir.file("elf64", guests::ELF64);
    let text: String = (0..300)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut input = text.clone().into_bytes();
    input.push(b'P');
    let run = run(
        &[
            "run",
            "--kernel",
            kernel.to_str().unwrap(),
            "--cmdline",
            "echo",
        ],
        &input,
    );
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert!(run.stdout.contains(&text), "{run:?}");
}

#[test]
fn vmm_prints_nothing_of_its_own_in_a_normal_run() {
    require_kvm();
    let dir = Scratch::new("quiet");
    let kernel = dir.file("bz", guests::BZIMAGE);
    let run = boot(&kernel, "demo", &[]);
    assert_eq!(run.status, EXIT_OK);
    assert!(run.stderr.is_empty(), "stderr: {}", run.stderr);
    assert!(run.stdout.starts_with("Pointsman demo guest"), "{run:?}");
}
