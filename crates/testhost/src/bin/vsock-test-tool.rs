//! Echo server and checking client for vsock tests, in the guest (vsock
//! sockets) and in the test host (Unix sockets, through Pointsman's
//! `CONNECT <port>` handshake). Busybox has neither; this is std + libc.
//!
//! ```text
//! vsock-test-tool echo-vsock PORT [COUNT]     echo COUNT connections on vsock PORT
//! vsock-test-tool echo-unix PATH [COUNT]      echo COUNT connections on Unix socket PATH
//! vsock-test-tool send-vsock CID PORT BYTES   send BYTES to CID:PORT, check the echo
//! vsock-test-tool send-unix PATH PORT BYTES   the same through PATH and CONNECT PORT
//! vsock-test-tool hold-vsock PORT SECONDS     accept one, read nothing for SECONDS,
//!                                             then read and check to EOF
//! vsock-test-tool hold-unix PATH SECONDS      the same on Unix socket PATH
//! vsock-test-tool push-unix PATH PORT         write through PATH and CONNECT PORT
//!                                             until writes block for 2 s
//! vsock-test-tool push-vsock CID PORT         the same to CID:PORT
//! ```
//!
//! Every result is one `@@<mode> ...` line on stdout; the status is 0 when
//! the echo came back intact.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::ExitCode;
use std::time::Instant;

/// `SO_VM_SOCKETS_CONNECT_TIMEOUT` (the timeval form, 64-bit time).
const SO_VM_SOCKETS_CONNECT_TIMEOUT: libc::c_int = 6;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["echo-vsock", port, rest @ ..] => echo_vsock(num(port), count(rest)),
        ["echo-unix", path, rest @ ..] => echo_unix(path, count(rest)),
        ["send-vsock", cid, port, bytes] => send_vsock(num(cid), num(port), num(bytes)),
        ["send-unix", path, port, bytes] => send_unix(path, num(port), num(bytes)),
        ["hold-vsock", port, seconds] => hold_vsock(num(port), num(seconds)),
        ["hold-unix", path, seconds] => hold_unix(path, num(seconds)),
        ["push-unix", path, port] => push_unix(path, num(port)),
        ["push-vsock", cid, port] => push_vsock(num(cid), num(port)),
        _ => {
            eprintln!("usage: see the top of crates/testhost/src/bin/vsock-test-tool.rs");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("@@{} failed: {e}", words[0]);
            ExitCode::FAILURE
        }
    }
}

fn num<T: std::str::FromStr>(text: &str) -> T {
    text.parse().unwrap_or_else(|_| {
        eprintln!("not a number: {text}");
        std::process::exit(2)
    })
}

fn count(rest: &[&str]) -> usize {
    rest.first().map_or(1, |c| num(c))
}

fn check(rc: libc::c_int) -> std::io::Result<libc::c_int> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn vsock_socket() -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket creation; the result is checked.
    let fd = check(unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) })?;
    // SAFETY: `fd` is a new socket that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn vsock_addr(cid: u32, port: u32) -> libc::sockaddr_vm {
    // SAFETY: sockaddr_vm is plain data, valid when zeroed.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::sa_family_t::try_from(libc::AF_VSOCK).unwrap_or_default();
    addr.svm_cid = cid;
    addr.svm_port = port;
    addr
}

/// `size_of::<T>()` as a socket API length.
fn len_of<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(std::mem::size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

/// A vsock socket listening on `port`, announced on stdout.
fn vsock_listen(mode: &str, port: u32) -> std::io::Result<OwnedFd> {
    let fd = vsock_socket()?;
    let addr = vsock_addr(libc::VMADDR_CID_ANY, port);
    // SAFETY: `addr` is a valid sockaddr_vm of the length given.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_vm).cast(),
            len_of::<libc::sockaddr_vm>(),
        )
    })?;
    // SAFETY: listen on a bound socket we own.
    check(unsafe { libc::listen(fd.as_raw_fd(), 8) })?;
    println!("@@{mode} listening {port}");
    Ok(fd)
}

fn vsock_accept(listener: &OwnedFd) -> std::io::Result<File> {
    // SAFETY: accept without a peer address; the result is checked.
    let conn = check(unsafe {
        libc::accept(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    })?;
    // SAFETY: `conn` is a new socket that nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(conn) }))
}

fn echo_vsock(port: u32, count: usize) -> std::io::Result<()> {
    let listener = vsock_listen("echo-vsock", port)?;
    for _ in 0..count {
        let n = echo(vsock_accept(&listener)?)?;
        println!("@@echo-vsock echoed {n}");
    }
    Ok(())
}

/// A reader that stalls: the writer's side must block, not the VMM
/// buffer; then every byte must still arrive in order.
fn hold_vsock(port: u32, seconds: u64) -> std::io::Result<()> {
    let listener = vsock_listen("hold-vsock", port)?;
    hold("hold-vsock", vsock_accept(&listener)?, seconds)
}

fn hold_unix(path: &str, seconds: u64) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    println!("@@hold-unix listening {path}");
    let (conn, _) = listener.accept()?;
    hold("hold-unix", File::from(OwnedFd::from(conn)), seconds)
}

fn hold(mode: &str, mut conn: File, seconds: u64) -> std::io::Result<()> {
    println!("@@{mode} holding");
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    let (got, mismatch, _) = read_checked(&mut conn)?;
    let verdict = if mismatch.is_none() { "ok" } else { "bad" };
    println!("@@{mode} {verdict} received={got} first-mismatch={mismatch:?}");
    Ok(())
}

fn echo_unix(path: &str, count: usize) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    println!("@@echo-unix listening {path}");
    for _ in 0..count {
        let (conn, _) = listener.accept()?;
        let n = echo(File::from(OwnedFd::from(conn)))?;
        println!("@@echo-unix echoed {n}");
    }
    Ok(())
}

/// Writes back what it reads until EOF, then closes; returns the bytes.
fn echo(mut conn: File) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        conn.write_all(&buf[..n])?;
        total += n as u64;
    }
}

fn send_vsock(cid: u32, port: u32, bytes: u64) -> std::io::Result<()> {
    let conn = vsock_connect("send-vsock", cid, port)?;
    exchange("send-vsock", conn, bytes)
}

fn push_vsock(cid: u32, port: u32) -> std::io::Result<()> {
    push("push-vsock", vsock_connect("push-vsock", cid, port)?)
}

fn vsock_connect(mode: &str, cid: u32, port: u32) -> std::io::Result<File> {
    let fd = vsock_socket()?;
    let timeout = libc::timeval {
        tv_sec: 60,
        tv_usec: 0,
    };
    // SAFETY: `timeout` is a valid timeval of the size given.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::AF_VSOCK,
            SO_VM_SOCKETS_CONNECT_TIMEOUT,
            (&timeout as *const libc::timeval).cast(),
            len_of::<libc::timeval>(),
        )
    })?;
    let addr = vsock_addr(cid, port);
    // SAFETY: `addr` is a valid sockaddr_vm of the length given.
    let rc = check(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_vm).cast(),
            len_of::<libc::sockaddr_vm>(),
        )
    });
    if let Err(e) = rc {
        println!("@@{mode} refused: {e}");
        return Err(e);
    }
    Ok(File::from(fd))
}

fn send_unix(path: &str, port: u32, bytes: u64) -> std::io::Result<()> {
    let conn = connect_unix("send-unix", path, port)?;
    exchange("send-unix", File::from(OwnedFd::from(conn)), bytes)
}

/// Connects through Pointsman's socket at `path` to guest port `port`.
fn connect_unix(mode: &str, path: &str, port: u32) -> std::io::Result<UnixStream> {
    let mut conn = UnixStream::connect(path)?;
    conn.write_all(format!("CONNECT {port}\n").as_bytes())?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while conn.read(&mut b)? == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    let line = String::from_utf8_lossy(&line).into_owned();
    if !line.starts_with("OK ") {
        println!("@@{mode} refused: {line:?}");
        return Err(std::io::Error::other("no OK line"));
    }
    println!("@@{mode} connected: {line}");
    Ok(conn)
}

/// Writes the test stream until the reader's side stops taking it.
fn push_unix(path: &str, port: u32) -> std::io::Result<()> {
    let conn = connect_unix("push-unix", path, port)?;
    push("push-unix", File::from(OwnedFd::from(conn)))
}

/// Writes the test stream until writes block for 2 s, then half-closes
/// and waits for the reader to finish.
fn push(mode: &str, mut conn: File) -> std::io::Result<()> {
    let timeout = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    // SAFETY: `timeout` is a valid timeval of the size given.
    check(unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&timeout as *const libc::timeval).cast(),
            len_of::<libc::timeval>(),
        )
    })?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent = 0u64;
    loop {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = pattern(sent + i as u64);
        }
        match conn.write(&buf) {
            Ok(n) => sent += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
        if sent > 1 << 30 {
            break;
        }
    }
    println!("@@{mode} stalled-at={sent}");
    // SAFETY: shutdown on a socket we hold open.
    check(unsafe { libc::shutdown(conn.as_raw_fd(), libc::SHUT_WR) })?;
    // Stay until the reader is done, so the connection stays up.
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest);
    Ok(())
}

/// The byte at `offset` of the test stream: varied, and the same on
/// both sides without sharing anything.
fn pattern(offset: u64) -> u8 {
    let x = offset.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (offset >> 7);
    x.to_be_bytes()[0]
}

/// FNV-1a over `bytes`, continuing from `hash`.
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Reads to EOF, checking the test stream: bytes, first wrong offset,
/// checksum.
fn read_checked(reader: &mut File) -> std::io::Result<(u64, Option<u64>, u64)> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    let mut hash = FNV_START;
    let mut mismatch = None;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok((got, mismatch, hash));
        }
        for (i, b) in buf[..n].iter().enumerate() {
            let at = got + i as u64;
            if mismatch.is_none() && *b != pattern(at) {
                mismatch = Some(at);
            }
        }
        hash = fnv(hash, &buf[..n]);
        got += n as u64;
    }
}

/// Sends `bytes` of the test stream while reading the echo, then half-
/// closes and reads to EOF; checks every byte that came back.
fn exchange(mode: &str, conn: File, bytes: u64) -> std::io::Result<()> {
    let start = Instant::now();
    let mut writer = conn.try_clone()?;
    let sender = std::thread::spawn(move || -> std::io::Result<u64> {
        let mut buf = vec![0u8; 16 * 1024];
        let mut sent = 0u64;
        let mut hash = FNV_START;
        while sent < bytes {
            let n = usize::try_from(bytes - sent).map_or(buf.len(), |left| left.min(buf.len()));
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = pattern(sent + i as u64);
            }
            writer.write_all(&buf[..n])?;
            hash = fnv(hash, &buf[..n]);
            sent += n as u64;
        }
        // SAFETY: shutdown on a socket we hold open.
        check(unsafe { libc::shutdown(writer.as_raw_fd(), libc::SHUT_WR) })?;
        Ok(hash)
    });
    let mut reader = conn;
    let (got, mismatch, hash) = read_checked(&mut reader)?;
    let sent_hash = sender
        .join()
        .map_err(|_| std::io::Error::other("sender panicked"))??;
    let ms = start.elapsed().as_millis();
    let verdict = if got == bytes && mismatch.is_none() && hash == sent_hash {
        "ok"
    } else {
        "bad"
    };
    println!(
        "@@{mode} {verdict} sent={bytes} received={got} sent-sum={sent_hash:016x} received-sum={hash:016x} first-mismatch={mismatch:?} ms={ms}"
    );
    if verdict == "ok" {
        Ok(())
    } else {
        Err(std::io::Error::other("the echo differs"))
    }
}
