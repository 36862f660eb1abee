use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use super::*;
use crate::vsock::connection::BUF_ALLOC;
use crate::vsock::packet::{HOST_CID, SHUTDOWN_BOTH, TYPE_STREAM};
use crate::vsock::socket::HostSocket;

const GUEST: u64 = 3;

/// Records what the muxer watches, like the worker would.
#[derive(Default)]
struct Recorder {
    watched: RefCell<HashMap<usize, (bool, bool)>>,
    next: RefCell<usize>,
}

impl Watch for Recorder {
    fn add(&self, _fd: RawFd) -> std::io::Result<usize> {
        let mut next = self.next.borrow_mut();
        *next += 1;
        self.watched.borrow_mut().insert(*next, (true, false));
        Ok(*next)
    }
    fn remove(&self, index: usize) {
        assert!(
            self.watched.borrow_mut().remove(&index).is_some(),
            "removed twice"
        );
    }
    fn watch(&self, index: usize, readable: bool, writable: bool) {
        if index != LISTENER_SOURCE {
            let mut w = self.watched.borrow_mut();
            let slot = w.get_mut(&index).expect("watching a removed source");
            *slot = (readable, writable);
        }
    }
}

impl Recorder {
    fn sources(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.watched.borrow().keys().copied().collect();
        v.sort_unstable();
        v
    }
}

struct Setup {
    dir: PathBuf,
    _socket: HostSocket,
    muxer: Muxer,
    w: Recorder,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = std::env::temp_dir().join(format!("vsock-muxer-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = VsockConfig {
            cid: GUEST,
            socket: dir.join("v.sock"),
        };
        let socket = HostSocket::bind(&config.socket).unwrap();
        let muxer = Muxer::new(config, socket.listener().unwrap());
        Setup {
            dir,
            _socket: socket,
            muxer,
            w: Recorder::default(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("v.sock")
    }

    /// Wakes the muxer for every source, as a busy worker would.
    fn poke(&mut self) {
        self.muxer.on_source(LISTENER_SOURCE, &self.w);
        for s in self.w.sources() {
            self.muxer.on_source(s, &self.w);
        }
    }

    fn rx(&mut self) -> Vec<(Header, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some((h, p)) = self.muxer.next_rx(4096, &self.w) {
            out.push((h, p.to_vec()));
        }
        out
    }

    fn guest(&mut self, op: Op, src_port: u32, dst_port: u32, flags: u32, payload: &[u8]) {
        let h = Header {
            src_cid: GUEST,
            dst_cid: HOST_CID,
            src_port,
            dst_port,
            len: u32::try_from(payload.len()).unwrap(),
            type_: TYPE_STREAM,
            op: op as u16,
            flags,
            buf_alloc: 1 << 20,
            fwd_cnt: 0,
        };
        self.muxer.on_guest_packet(&h, op, payload, &self.w);
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_line(s: &mut UnixStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    String::from_utf8(line).unwrap()
}

#[test]
fn host_program_connects_with_connect_and_talks_to_the_guest() {
    let mut s = Setup::new("host-init");
    let mut host = UnixStream::connect(s.path()).unwrap();
    host.write_all(b"CONNECT 6000\nearly").unwrap();
    s.poke();
    let out = s.rx();
    assert_eq!(out.len(), 1, "{out:?}");
    let req = out[0].0;
    assert_eq!(req.op, Op::Request as u16);
    assert_eq!((req.src_cid, req.dst_cid), (HOST_CID, GUEST));
    assert_eq!((req.src_port, req.dst_port), (FIRST_LOCAL_PORT, 6000));
    assert_eq!(req.buf_alloc, BUF_ALLOC);
    assert_eq!(s.w.sources(), vec![1]);
    assert_eq!(
        s.w.watched.borrow()[&1],
        (false, false),
        "quiet until answered"
    );

    s.guest(Op::Response, 6000, FIRST_LOCAL_PORT, 0, &[]);
    assert_eq!(read_line(&mut host), format!("OK {FIRST_LOCAL_PORT}"));
    // Bytes written after the line were left in the socket for the guest.
    s.poke();
    let out = s.rx();
    assert_eq!(out[0].0.op, Op::Rw as u16);
    assert_eq!(out[0].1, b"early");
    s.guest(Op::Rw, 6000, FIRST_LOCAL_PORT, 0, b"from the guest");
    let mut got = [0u8; 14];
    host.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"from the guest");

    // The guest closes: the host program sees EOF, the guest gets RST.
    s.guest(Op::Shutdown, 6000, FIRST_LOCAL_PORT, SHUTDOWN_BOTH, &[]);
    let out = s.rx();
    assert_eq!(out.last().unwrap().0.op, Op::Rst as u16);
    let mut rest = Vec::new();
    host.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert_eq!(s.muxer.connections(), 0);
    assert!(s.w.sources().is_empty(), "unwatched before closing");
}

#[test]
fn refused_host_connection_is_closed_without_ok() {
    let mut s = Setup::new("refused");
    let mut host = UnixStream::connect(s.path()).unwrap();
    host.write_all(b"CONNECT 7\r\n").unwrap();
    s.poke();
    let req = s.rx()[0].0;
    // Nobody listens on guest port 7: the guest answers RST.
    s.guest(Op::Rst, 7, req.src_port, 0, &[]);
    assert!(s.rx().is_empty(), "no reply to a RST");
    let mut rest = Vec::new();
    host.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "EOF, no OK");
    assert_eq!(s.muxer.connections(), 0);
}

#[test]
fn bad_handshakes_are_closed() {
    let mut s = Setup::new("bad-handshake");
    let lines: [&[u8]; 4] = [
        b"HELLO 5\n",
        b"CONNECT x\n",
        b"CONNECT 99999999999\n",
        &[b'C'; 100],
    ];
    let mut hosts = Vec::new();
    for line in lines {
        let mut host = UnixStream::connect(s.path()).unwrap();
        host.write_all(line).unwrap();
        hosts.push(host);
    }
    // One that hangs up half-way.
    let mut quitter = UnixStream::connect(s.path()).unwrap();
    quitter.write_all(b"CONN").unwrap();
    drop(quitter);
    s.poke();
    s.poke();
    assert!(s.rx().is_empty());
    assert_eq!(s.muxer.connections(), 0);
    assert!(s.w.sources().is_empty());
    for mut host in hosts {
        let mut rest = Vec::new();
        let _ = host.read_to_end(&mut rest);
        assert!(rest.is_empty());
    }
}

#[test]
fn two_host_programs_to_one_guest_port_get_distinct_host_ports() {
    let mut s = Setup::new("two");
    let mut a = UnixStream::connect(s.path()).unwrap();
    let mut b = UnixStream::connect(s.path()).unwrap();
    a.write_all(b"CONNECT 80\n").unwrap();
    b.write_all(b"CONNECT 80\n").unwrap();
    s.poke();
    let out = s.rx();
    let mut ports: Vec<u32> = out.iter().map(|(h, _)| h.src_port).collect();
    ports.sort_unstable();
    assert_eq!(ports, vec![FIRST_LOCAL_PORT, FIRST_LOCAL_PORT + 1]);
}

#[test]
fn guest_reaches_host_program_on_path_port() {
    let mut s = Setup::new("guest-init");
    let server = UnixListener::bind(s.dir.join("v.sock_5000")).unwrap();
    s.guest(Op::Request, 1234, 5000, 0, &[]);
    let out = s.rx();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.op, Op::Response as u16);
    assert_eq!((out[0].0.src_port, out[0].0.dst_port), (5000, 1234));
    let (mut host, _) = server.accept().unwrap();
    s.guest(Op::Rw, 1234, 5000, 0, b"ping");
    let mut got = [0u8; 4];
    host.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    host.write_all(b"pong").unwrap();
    s.poke();
    let out = s.rx();
    assert_eq!(out[0].1, b"pong");
    // The host program leaves: SHUTDOWN, then the guest closes too.
    drop(host);
    s.poke();
    let out = s.rx();
    assert_eq!(out[0].0.op, Op::Shutdown as u16);
    s.guest(Op::Shutdown, 1234, 5000, SHUTDOWN_BOTH, &[]);
    assert_eq!(s.rx()[0].0.op, Op::Rst as u16);
    assert_eq!(s.muxer.connections(), 0);
}

#[test]
fn guest_connection_to_nobody_or_unknown_connection_gets_rst() {
    let mut s = Setup::new("nobody");
    s.guest(Op::Request, 1234, 7000, 0, &[]);
    s.guest(Op::Rw, 1235, 7001, 0, b"stray");
    s.guest(Op::CreditUpdate, 1236, 7002, 0, &[]);
    s.guest(Op::Rst, 1237, 7003, 0, &[]);
    let out = s.rx();
    let ports: Vec<(u16, u32)> = out.iter().map(|(h, _)| (h.op, h.dst_port)).collect();
    let rst = Op::Rst as u16;
    assert_eq!(ports, vec![(rst, 1234), (rst, 1235), (rst, 1236)]);
    assert_eq!(s.muxer.connections(), 0);
}

#[test]
fn queued_rsts_are_bounded() {
    let mut s = Setup::new("rst-bound");
    for port in 0..u32::try_from(MAX_QUEUED_RSTS).unwrap() {
        assert!(s.muxer.can_take_tx());
        s.guest(Op::Rw, port, 9, 0, b"x");
    }
    assert!(!s.muxer.can_take_tx());
    assert_eq!(s.rx().len(), MAX_QUEUED_RSTS);
    assert!(s.muxer.can_take_tx());
}

#[test]
fn guest_rst_closes_the_host_side() {
    let mut s = Setup::new("guest-rst");
    let server = UnixListener::bind(s.dir.join("v.sock_5001")).unwrap();
    s.guest(Op::Request, 1, 5001, 0, &[]);
    let (mut host, _) = server.accept().unwrap();
    s.guest(Op::Rst, 1, 5001, 0, &[]);
    let mut rest = Vec::new();
    host.read_to_end(&mut rest).unwrap();
    assert_eq!(s.muxer.connections(), 0);
    assert!(s.w.sources().is_empty());
    assert!(s.rx().iter().all(|(h, _)| h.op != Op::Rst as u16));
}

#[test]
fn slow_host_program_bounds_the_buffer_and_stops_the_guest() {
    let mut s = Setup::new("slow");
    let server = UnixListener::bind(s.dir.join("v.sock_5002")).unwrap();
    s.guest(Op::Request, 1, 5002, 0, &[]);
    let (mut host, _) = server.accept().unwrap();
    let _ = s.rx();
    let chunk = vec![9u8; 4096];
    // A guest that ignores its credit: it is reset once past BUF_ALLOC.
    let mut sent = 0usize;
    while s.muxer.connections() == 1 && sent < 64 << 20 {
        s.guest(Op::Rw, 1, 5002, 0, &chunk);
        sent += chunk.len();
        assert!(s.muxer.buffered() <= BUF_ALLOC as usize);
        if s.rx().iter().any(|(h, _)| h.op == Op::Rst as u16) {
            break;
        }
    }
    assert!(sent < 64 << 20, "the guest was never stopped");
    assert_eq!(s.muxer.buffered(), 0);
    // What reached the host program is a prefix of what was sent.
    host.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let _ = host.read_to_end(&mut got);
    assert!(got.len() < sent && got.iter().all(|b| *b == 9));
}

#[test]
fn writable_watch_follows_the_buffer() {
    let mut s = Setup::new("writable");
    let server = UnixListener::bind(s.dir.join("v.sock_5003")).unwrap();
    s.guest(Op::Request, 1, 5003, 0, &[]);
    let (mut host, _) = server.accept().unwrap();
    let _ = s.rx();
    let source = s.w.sources()[0];
    let chunk = vec![1u8; 4096];
    let mut total = 0usize;
    while !s.w.watched.borrow()[&source].1 {
        s.guest(Op::Rw, 1, 5003, 0, &chunk);
        total += chunk.len();
    }
    // The host program reads everything; the writable wake flushes.
    let mut got = vec![0u8; total];
    let reader = std::thread::spawn(move || {
        host.read_exact(&mut got).unwrap();
        got.len()
    });
    while s.muxer.buffered() > 0 {
        s.poke();
        std::thread::yield_now();
    }
    assert_eq!(reader.join().unwrap(), total);
    assert!(!s.w.watched.borrow()[&source].1);
    // The guest hears of the room it has again.
    let out = s.rx();
    assert!(out
        .iter()
        .any(|(h, _)| h.op == Op::CreditUpdate as u16 && h.fwd_cnt as usize == total));
}

/// A guest-initiated connection with host data waiting to be read.
fn connection_with_host_data(s: &mut Setup, data: &[u8]) -> UnixStream {
    let server = UnixListener::bind(s.dir.join("v.sock_5000")).unwrap();
    s.guest(Op::Request, 1234, 5000, 0, &[]);
    assert_eq!(s.rx()[0].0.op, Op::Response as u16);
    let (mut host, _) = server.accept().unwrap();
    host.write_all(data).unwrap();
    s.poke();
    host
}

/// Runs `f` on another thread; fails the test if it does not end soon
/// (a loop without progress would keep the test runner waiting forever).
fn ends_soon<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(f());
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the muxer spun without progress")
}

#[test]
fn data_waits_for_a_buffer_with_room_instead_of_spinning() {
    let mut s = Setup::new("room0");
    let _host = connection_with_host_data(&mut s, b"reply");
    // A header-only buffer: the data does not fit, and the call ends.
    let (none, mut s) = ends_soon(move || (s.muxer.next_rx(0, &s.w).is_none(), s));
    assert!(none, "no packet fits a header-only buffer");
    assert!(s.muxer.has_rx(), "the data still waits");
    // A buffer with room gets it.
    let out = s.rx();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].1, b"reply");
    assert!(!s.muxer.has_rx());
}

#[test]
fn a_connection_waiting_for_room_does_not_hold_back_control_packets() {
    let mut s = Setup::new("room0-rst");
    let _host = connection_with_host_data(&mut s, b"reply");
    // A packet for nobody: its RST needs no room.
    s.guest(Op::Request, 99, 77, 0, &[]);
    let (h, payload) = s.muxer.next_rx(0, &s.w).unwrap();
    assert_eq!((h.op, payload.len()), (Op::Rst as u16, 0));
    let (none, mut s) = ends_soon(move || (s.muxer.next_rx(0, &s.w).is_none(), s));
    assert!(none);
    assert_eq!(s.rx()[0].1, b"reply");
}

#[test]
fn a_connection_flood_is_accepted_in_bounded_turns() {
    let mut s = Setup::new("accept-flood");
    let hosts: Vec<UnixStream> = (0..ACCEPTS_PER_WAKE + 10)
        .map(|_| UnixStream::connect(s.path()).unwrap())
        .collect();
    s.muxer.on_source(LISTENER_SOURCE, &s.w);
    assert_eq!(s.muxer.connections(), ACCEPTS_PER_WAKE);
    s.muxer.on_source(LISTENER_SOURCE, &s.w);
    assert_eq!(s.muxer.connections(), hosts.len());
}
