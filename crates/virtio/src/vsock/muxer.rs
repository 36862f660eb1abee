//! The host side of the device: the listening socket, host programs'
//! `CONNECT <port>` handshakes, and the connections, each with its own
//! Unix socket watched by the worker.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;

use metrics::VsockMetrics;

use super::config::VsockConfig;
use super::connection::{ConnKey, Connection, Verdict};
use super::packet::{Header, Op, MAX_PAYLOAD};
use super::socket::connect_nonblocking;

/// Most connections (handshakes included) at once; each may hold up to
/// `BUF_ALLOC` bytes for its host program.
pub const MAX_CONNECTIONS: usize = 1024;
/// Most RSTs waiting for receive buffers; past that the transmit queue
/// waits, so a guest flooding unknown ports cannot grow this.
const MAX_QUEUED_RSTS: usize = 64;
/// Most host connections accepted per wake-up of the listener.
const ACCEPTS_PER_WAKE: usize = 64;
/// Longest handshake line: `CONNECT 4294967295\n` with some slack.
const MAX_HANDSHAKE: usize = 32;
/// Host ports handed to host-initiated connections start here, away
/// from the ports host programs listen on.
const FIRST_LOCAL_PORT: u32 = 1 << 30;
/// The listening socket's source index: the worker's first source.
pub const LISTENER_SOURCE: usize = 0;

/// Where the device's sockets are watched: the worker's sources, or a
/// stand-in for tests and fuzzing.
pub trait Watch {
    /// Starts watching `fd` for reading; returns its source index.
    fn add(&self, fd: RawFd) -> std::io::Result<usize>;
    /// Stops watching source `index` (before its fd is closed).
    fn remove(&self, index: usize);
    /// Watches source `index` for reading and/or writing, or neither.
    fn watch(&self, index: usize, readable: bool, writable: bool);
}

impl Watch for crate::Sources {
    fn add(&self, fd: RawFd) -> std::io::Result<usize> {
        crate::Sources::add(self, fd)
    }
    fn remove(&self, index: usize) {
        crate::Sources::remove(self, index)
    }
    fn watch(&self, index: usize, readable: bool, writable: bool) {
        crate::Sources::watch(self, index, readable, writable)
    }
}

/// A [`Watch`] that watches nothing: for driving the device by hand.
#[derive(Debug, Default)]
pub struct Unwatched {
    next: Cell<usize>,
}

impl Watch for Unwatched {
    fn add(&self, _fd: RawFd) -> std::io::Result<usize> {
        let index = self.next.get() + 1;
        self.next.set(index);
        Ok(index)
    }
    fn remove(&self, _index: usize) {}
    fn watch(&self, _index: usize, _readable: bool, _writable: bool) {}
}

/// A host program that connected and has not finished its
/// `CONNECT <port>\n` line.
struct Handshake {
    stream: UnixStream,
    line: Vec<u8>,
}

struct Entry {
    source: usize,
    conn: Connection,
}

pub struct Muxer {
    config: VsockConfig,
    listener: UnixListener,
    listener_paused: bool,
    handshakes: HashMap<usize, Handshake>,
    conns: HashMap<ConnKey, Entry>,
    by_source: HashMap<usize, ConnKey>,
    /// Connections with something for the guest, in turn.
    rx_queue: VecDeque<ConnKey>,
    /// RSTs for packets that belong to no connection.
    rsts: VecDeque<Header>,
    next_port: u32,
    scratch: Vec<u8>,
    metrics: Arc<VsockMetrics>,
}

impl Muxer {
    /// `listener` must be non-blocking; the worker watches it as source
    /// [`LISTENER_SOURCE`].
    pub fn new(config: VsockConfig, listener: UnixListener) -> Muxer {
        Muxer {
            config,
            listener,
            listener_paused: false,
            handshakes: HashMap::new(),
            conns: HashMap::new(),
            by_source: HashMap::new(),
            rx_queue: VecDeque::new(),
            rsts: VecDeque::new(),
            next_port: FIRST_LOCAL_PORT,
            scratch: vec![0; MAX_PAYLOAD],
            metrics: Arc::default(),
        }
    }

    /// Counts in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<VsockMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// What the device counted.
    pub fn metrics(&self) -> &Arc<VsockMetrics> {
        &self.metrics
    }

    pub fn listener_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Connections and handshakes open.
    pub fn connections(&self) -> usize {
        self.conns.len() + self.handshakes.len()
    }

    /// Bytes held for host programs, over all connections.
    pub fn buffered(&self) -> usize {
        self.conns.values().map(|e| e.conn.buffered()).sum()
    }

    /// Whether one more guest packet can be taken: its answer has room.
    pub fn can_take_tx(&self) -> bool {
        self.rsts.len() < MAX_QUEUED_RSTS
    }

    /// Whether something waits for a receive buffer.
    pub fn has_rx(&self) -> bool {
        !self.rsts.is_empty() || !self.rx_queue.is_empty()
    }

    /// Source `index` woke the worker.
    pub fn on_source(&mut self, index: usize, w: &dyn Watch) {
        if index == LISTENER_SOURCE {
            self.accept(w);
        } else if self.handshakes.contains_key(&index) {
            self.handshake(index, w);
        } else if let Some(&key) = self.by_source.get(&index) {
            if let Some(e) = self.conns.get_mut(&key) {
                e.conn.on_host_event();
            }
            self.after(key, w);
        }
    }

    fn accept(&mut self, w: &dyn Watch) {
        // Host programs connecting without pause would keep this loop
        // going; the listener stays readable and wakes us for the rest.
        for _ in 0..ACCEPTS_PER_WAKE {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    // Over the limit the host program sees EOF at once.
                    if self.connections() >= MAX_CONNECTIONS
                        || stream.set_nonblocking(true).is_err()
                    {
                        continue;
                    }
                    match w.add(stream.as_raw_fd()) {
                        Ok(index) => {
                            self.handshakes.insert(
                                index,
                                Handshake {
                                    stream,
                                    line: Vec::new(),
                                },
                            );
                        }
                        Err(e) => crate::log_limit::warn_limited!(
                            "vsock: cannot watch a host connection: {e}"
                        ),
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Out of fds, say: stop listening until one closes,
                    // instead of waking for the same error forever.
                    crate::log_limit::warn_limited!("vsock: cannot accept a host connection: {e}");
                    w.watch(LISTENER_SOURCE, false, false);
                    self.listener_paused = true;
                    return;
                }
            }
        }
    }

    /// Something closed: listen again if we had stopped.
    fn closed_one(&mut self, w: &dyn Watch) {
        if self.listener_paused {
            self.listener_paused = false;
            w.watch(LISTENER_SOURCE, true, false);
        }
    }

    /// Reads the handshake line a byte at a time, so nothing after it is
    /// taken from the socket before the connection exists.
    fn handshake(&mut self, index: usize, w: &dyn Watch) {
        let Some(hs) = self.handshakes.get_mut(&index) else {
            return;
        };
        let mut byte = [0u8; 1];
        let port = loop {
            match hs.stream.read(&mut byte) {
                Ok(1) if byte[0] == b'\n' => break parse_connect(&hs.line),
                Ok(1) if hs.line.len() < MAX_HANDSHAKE => hs.line.push(byte[0]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // EOF, an error, or a line too long.
                _ => break None,
            }
        };
        let Some(hs) = self.handshakes.remove(&index) else {
            return;
        };
        let Some(guest_port) = port else {
            w.remove(index);
            drop(hs);
            self.closed_one(w);
            return;
        };
        let key = ConnKey {
            host_port: self.free_local_port(guest_port),
            guest_port,
        };
        let conn = Connection::to_guest(key, self.config.cid, hs.stream);
        self.insert(key, index, conn, w);
    }

    fn free_local_port(&mut self, guest_port: u32) -> u32 {
        loop {
            let port = self.next_port;
            self.next_port = port.checked_add(1).unwrap_or(FIRST_LOCAL_PORT);
            let key = ConnKey {
                host_port: port,
                guest_port,
            };
            // At most MAX_CONNECTIONS ports are taken: this ends.
            if !self.conns.contains_key(&key) {
                return port;
            }
        }
    }

    /// Adds a connection whose socket `w` watches for reading as `source`.
    fn insert(&mut self, key: ConnKey, source: usize, mut conn: Connection, w: &dyn Watch) {
        conn.interest = (true, false);
        self.metrics.conns_added.inc();
        self.by_source.insert(source, key);
        self.conns.insert(key, Entry { source, conn });
        self.after(key, w);
    }

    /// Brings the watch and the receive turn of connection `key` in line
    /// with its state, and drops it once it is over.
    fn after(&mut self, key: ConnKey, w: &dyn Watch) {
        let Some(e) = self.conns.get_mut(&key) else {
            return;
        };
        if e.conn.is_gone() {
            self.metrics.conns_removed.inc();
            if e.conn.was_killed() {
                self.metrics.conns_killed.inc();
            }
            let source = e.source;
            w.remove(source);
            self.by_source.remove(&source);
            // The socket closes only now, after the watch is gone: its fd
            // number cannot be reused under a stale watch.
            self.conns.remove(&key);
            self.closed_one(w);
            return;
        }
        let want = e.conn.wanted_interest();
        if want != e.conn.interest {
            w.watch(e.source, want.0, want.1);
            e.conn.interest = want;
        }
        if e.conn.wants_rx() && !e.conn.in_rx_queue {
            e.conn.in_rx_queue = true;
            self.rx_queue.push_back(key);
        }
    }

    /// Answers a guest packet with RST (never a RST with a RST).
    pub fn reset_peer(&mut self, h: &Header) {
        if h.op != Op::Rst as u16 && self.rsts.len() < MAX_QUEUED_RSTS {
            self.rsts.push_back(h.rst_reply());
        }
    }

    /// A checked packet from the guest; `payload` is its data for RW.
    pub fn on_guest_packet(&mut self, h: &Header, op: Op, payload: &[u8], w: &dyn Watch) {
        let key = ConnKey {
            host_port: h.dst_port,
            guest_port: h.src_port,
        };
        if let Some(e) = self.conns.get_mut(&key) {
            if e.conn.on_guest_packet(h, op, payload) == Verdict::Forget {
                e.conn.forget();
            }
            self.after(key, w);
            return;
        }
        match op {
            Op::Request => self.connect_to_host(key, h, w),
            Op::Rst => {}
            _ => self.reset_peer(h),
        }
    }

    /// A guest connecting to host port P reaches `PATH_P`, or gets RST.
    fn connect_to_host(&mut self, key: ConnKey, h: &Header, w: &dyn Watch) {
        if self.connections() >= MAX_CONNECTIONS {
            self.reset_peer(h);
            return;
        }
        let path = self.config.port_path(key.host_port);
        let stream = match connect_nonblocking(&path) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("vsock: guest connection to {}: {e}", path.display());
                self.reset_peer(h);
                return;
            }
        };
        match w.add(stream.as_raw_fd()) {
            Ok(source) => self.insert(key, source, Connection::from_guest(key, h, stream), w),
            Err(_) => self.reset_peer(h),
        }
    }

    /// The next packet for the guest, whose receive buffer takes `room`
    /// payload bytes: a header and its payload. `None` with [`has_rx`]
    /// still true means what waits is data this buffer has no room for.
    ///
    /// [`has_rx`]: Muxer::has_rx
    pub fn next_rx(&mut self, room: usize, w: &dyn Watch) -> Option<(Header, &[u8])> {
        if let Some(h) = self.rsts.pop_front() {
            return Some((h, &[]));
        }
        // Each connection in line gets one try: one whose data does not
        // fit (a header-only buffer) goes back in line for a bigger
        // buffer, and must not be tried again in this call.
        for _ in 0..self.rx_queue.len() {
            let Some(key) = self.rx_queue.pop_front() else {
                break;
            };
            let Some(e) = self.conns.get_mut(&key) else {
                continue;
            };
            e.conn.in_rx_queue = false;
            let packet = e.conn.next_packet(room, &mut self.scratch);
            self.after(key, w);
            if let Some((h, n)) = packet {
                return Some((h, &self.scratch[..n]));
            }
        }
        None
    }
}

/// `CONNECT <port>` (a trailing `\r` allowed) to the port.
fn parse_connect(line: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(line).ok()?;
    let port = text.trim_end_matches('\r').strip_prefix("CONNECT ")?;
    port.trim().parse().ok()
}

#[cfg(test)]
mod tests;
