//! One stream connection between a guest port and a host Unix socket:
//! its state, its credit in both directions, and the packets it owes the
//! guest.
//!
//! Flow control keeps memory bounded both ways. Guest to host: the guest
//! may send at most [`BUF_ALLOC`] bytes beyond what we forwarded, so the
//! buffer for a slow host program never grows past that. Host to guest:
//! bytes are read from the socket only into a guest receive buffer and
//! only within the guest's credit, so a slow guest leaves them in the
//! host socket, where the host program's writes block.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read};
use std::net::Shutdown;
use std::num::Wrapping;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use super::packet::{Header, Op, SHUTDOWN_BOTH, SHUTDOWN_RCV, SHUTDOWN_SEND};

/// Receive buffer we advertise per connection: the most we ever hold for
/// a host program that does not read.
pub const BUF_ALLOC: u32 = 64 * 1024;

/// A connection's addresses: the host side's port and the guest's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub host_port: u32,
    pub guest_port: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A host program asked for it: REQUEST to the guest, no RESPONSE yet.
    Connecting,
    Established,
}

/// Control packets owed to the guest: flags, so their number is bounded.
#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    request: bool,
    response: bool,
    credit_update: bool,
    credit_request: bool,
    /// The last packet: then the connection is gone.
    rst: bool,
}

impl Pending {
    fn any(&self) -> bool {
        self.request || self.response || self.credit_update || self.credit_request || self.rst
    }
}

/// What the muxer must do with a connection after a guest packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// The guest reset it: forget it without a reply.
    Forget,
}

pub struct Connection {
    key: ConnKey,
    guest_cid: u64,
    /// Open until the muxer drops the connection, after it stopped
    /// watching it; shut down once the connection is dead.
    stream: UnixStream,
    /// Reset: at most a RST is still owed to the guest.
    dead: bool,
    state: State,
    pending: Pending,
    /// Guest to host: payload not yet written to the host socket.
    to_host: VecDeque<u8>,
    /// Payload bytes forwarded to the host, as the guest counts them.
    fwd_cnt: Wrapping<u32>,
    /// `fwd_cnt` as the guest last heard it.
    fwd_cnt_told: Wrapping<u32>,
    /// SHUTDOWN flags the guest sent.
    guest_shutdown: u32,
    host_write_shut: bool,
    /// Host to guest: payload bytes sent to the guest.
    tx_cnt: Wrapping<u32>,
    peer_buf_alloc: u32,
    peer_fwd_cnt: Wrapping<u32>,
    /// The host socket may have bytes (or EOF) to read.
    readable: bool,
    /// The host program sent EOF; the guest is told with SHUTDOWN.
    host_eof: bool,
    /// CREDIT_REQUEST sent and not answered yet.
    credit_requested: bool,
    /// The guest shut both ways: RST once its data reached the host.
    closing: bool,
    /// Already queued for the receive queue.
    pub in_rx_queue: bool,
    /// What the worker watches the socket for (readable, writable).
    pub interest: (bool, bool),
    /// Ended by a reset the device chose (not a clean close), for the
    /// `conns_killed` metric.
    killed: bool,
}

impl Connection {
    fn new(key: ConnKey, guest_cid: u64, stream: UnixStream, state: State) -> Connection {
        Connection {
            key,
            guest_cid,
            stream,
            dead: false,
            state,
            pending: Pending::default(),
            to_host: VecDeque::new(),
            fwd_cnt: Wrapping(0),
            fwd_cnt_told: Wrapping(0),
            guest_shutdown: 0,
            host_write_shut: false,
            tx_cnt: Wrapping(0),
            peer_buf_alloc: 0,
            peer_fwd_cnt: Wrapping(0),
            readable: false,
            host_eof: false,
            credit_requested: false,
            closing: false,
            in_rx_queue: false,
            interest: (false, false),
            killed: false,
        }
    }

    /// A host program's connection to a guest port: REQUEST the guest.
    pub fn to_guest(key: ConnKey, guest_cid: u64, stream: UnixStream) -> Connection {
        let mut c = Connection::new(key, guest_cid, stream, State::Connecting);
        c.pending.request = true;
        c
    }

    /// A guest's connection that reached a host program: RESPONSE, with
    /// the credit the guest's REQUEST announced.
    pub fn from_guest(key: ConnKey, request: &Header, stream: UnixStream) -> Connection {
        let mut c = Connection::new(key, request.src_cid, stream, State::Established);
        c.pending.response = true;
        c.update_peer_credit(request);
        c.readable = true;
        c
    }

    /// Bytes held for the host program.
    pub fn buffered(&self) -> usize {
        self.to_host.len()
    }

    /// Resets the connection: the host program sees EOF, the guest is
    /// owed a RST and nothing else.
    pub fn kill(&mut self) {
        if !self.dead {
            self.killed = true;
        }
        self.end_with_rst();
    }

    /// Whether [`Connection::kill`] ended it.
    pub fn was_killed(&self) -> bool {
        self.killed
    }

    /// Ends the connection owing the guest a RST and nothing else.
    fn end_with_rst(&mut self) {
        if !self.dead {
            self.forget();
            self.pending.rst = true;
        }
    }

    /// Ends the connection with nothing owed to the guest.
    pub fn forget(&mut self) {
        self.dead = true;
        let _ = self.stream.shutdown(Shutdown::Both);
        self.to_host = VecDeque::new();
        self.pending = Pending::default();
    }

    fn update_peer_credit(&mut self, h: &Header) {
        self.peer_buf_alloc = h.buf_alloc;
        self.peer_fwd_cnt = Wrapping(h.fwd_cnt);
        self.credit_requested = false;
    }

    /// Bytes the guest can take now.
    fn peer_credit(&self) -> u32 {
        let in_flight = (self.tx_cnt - self.peer_fwd_cnt).0;
        self.peer_buf_alloc.saturating_sub(in_flight)
    }

    fn may_read_host(&self) -> bool {
        !self.dead
            && self.state == State::Established
            && !self.host_eof
            && self.guest_shutdown & SHUTDOWN_RCV == 0
    }

    /// A packet from the guest for this connection (already checked by
    /// [`Header::check_from_guest`]); `payload` is its data for RW.
    pub fn on_guest_packet(&mut self, h: &Header, op: Op, payload: &[u8]) -> Verdict {
        if op == Op::Rst {
            return Verdict::Forget;
        }
        if self.dead {
            // A RST is on its way: nothing more to do.
            return Verdict::Keep;
        }
        self.update_peer_credit(h);
        match op {
            Op::Response if self.state == State::Connecting => {
                self.state = State::Established;
                self.readable = true;
                let reply = format!("OK {}\n", self.key.host_port);
                // A fresh socket's buffer has room for a line; if not, the
                // host program gets nothing rather than half a reply.
                if self.send(reply.as_bytes()).ok() != Some(reply.len()) {
                    self.kill();
                }
            }
            Op::Request | Op::Response => self.kill(),
            Op::Rw => self.take_guest_data(payload),
            Op::Shutdown => {
                self.guest_shutdown |= h.flags & SHUTDOWN_BOTH;
                if self.guest_shutdown == SHUTDOWN_BOTH {
                    self.closing = true;
                }
                self.flush();
            }
            Op::CreditRequest => self.pending.credit_update = true,
            Op::CreditUpdate | Op::Rst => {}
        }
        self.refresh();
        Verdict::Keep
    }

    fn take_guest_data(&mut self, data: &[u8]) {
        let room = BUF_ALLOC as usize - self.to_host.len();
        if self.state != State::Established
            || self.guest_shutdown & SHUTDOWN_SEND != 0
            || data.len() > room
        {
            // Data before the connection, after its shutdown, or beyond
            // the credit we gave: the guest broke the protocol.
            self.kill();
            return;
        }
        self.to_host.extend(data);
        self.flush();
    }

    /// Non-blocking `send` without SIGPIPE.
    fn send(&self, buf: &[u8]) -> std::io::Result<usize> {
        if self.dead {
            return Err(ErrorKind::NotConnected.into());
        }
        // SAFETY: `buf` is valid for `buf.len()` bytes and the kernel only
        // reads it; the fd is the open socket we own.
        let n = unsafe {
            libc::send(
                self.stream.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
    }

    /// Writes what the host program can take; called when the socket may
    /// be writable.
    pub fn flush(&mut self) {
        while !self.to_host.is_empty() {
            let (front, _) = self.to_host.as_slices();
            match self.send(front) {
                Ok(0) => break,
                Ok(n) => {
                    self.to_host.drain(..n);
                    self.fwd_cnt += Wrapping(u32::try_from(n).unwrap_or(u32::MAX));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.kill();
                    return;
                }
            }
        }
        if !self.to_host.is_empty() {
            self.refresh();
            return;
        }
        if self.guest_shutdown & SHUTDOWN_SEND != 0 && !self.host_write_shut {
            self.host_write_shut = true;
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        if self.closing {
            // Clean close: everything reached the host; the RST ends it.
            self.end_with_rst();
        }
        self.refresh();
    }

    /// The host socket woke the worker.
    pub fn on_host_event(&mut self) {
        if self.may_read_host() {
            self.readable = true;
        }
        self.flush();
    }

    /// Recomputes the control packets that follow from the state.
    fn refresh(&mut self) {
        if self.dead {
            return;
        }
        // The guest thinks it may send BUF_ALLOC - (received - fwd_cnt_told)
        // more; tell it once that falls under half while we have more room.
        let held = u32::try_from(self.to_host.len()).unwrap_or(BUF_ALLOC);
        let received = self.fwd_cnt.0.wrapping_add(held);
        let guest_view = BUF_ALLOC.saturating_sub(received.wrapping_sub(self.fwd_cnt_told.0));
        if guest_view < BUF_ALLOC / 2 && self.fwd_cnt != self.fwd_cnt_told {
            self.pending.credit_update = true;
        }
        if self.readable
            && self.may_read_host()
            && self.peer_credit() == 0
            && !self.credit_requested
        {
            self.pending.credit_request = true;
            self.credit_requested = true;
        }
    }

    /// Whether the connection has a packet for the guest's receive queue.
    pub fn wants_rx(&self) -> bool {
        self.pending.any() || (self.readable && self.may_read_host() && self.peer_credit() > 0)
    }

    /// What to watch the socket for: readable while we may read and have
    /// not seen it readable yet, writable while bytes wait for the host.
    pub fn wanted_interest(&self) -> (bool, bool) {
        if self.dead {
            return (false, false);
        }
        (
            !self.readable && self.may_read_host(),
            !self.to_host.is_empty(),
        )
    }

    /// Whether the connection is over: its RST was sent.
    pub fn is_gone(&self) -> bool {
        self.dead && !self.pending.rst
    }

    fn header(&mut self, op: Op) -> Header {
        let mut h = Header::to_guest(self.guest_cid, self.key.host_port, self.key.guest_port, op);
        h.buf_alloc = BUF_ALLOC;
        h.fwd_cnt = self.fwd_cnt.0;
        self.fwd_cnt_told = self.fwd_cnt;
        h
    }

    /// The next packet for the guest, with up to `room` payload bytes
    /// read from the host socket into `buf`. `None` when it has nothing.
    pub fn next_packet(&mut self, room: usize, buf: &mut [u8]) -> Option<(Header, usize)> {
        let p = &mut self.pending;
        let op = if std::mem::take(&mut p.rst) {
            Op::Rst
        } else if std::mem::take(&mut p.request) {
            Op::Request
        } else if std::mem::take(&mut p.response) {
            Op::Response
        } else if std::mem::take(&mut p.credit_request) {
            Op::CreditRequest
        } else if std::mem::take(&mut p.credit_update) {
            Op::CreditUpdate
        } else {
            return self.read_data(room, buf);
        };
        Some((self.header(op), 0))
    }

    /// An RW packet from the host socket, or the SHUTDOWN its EOF means.
    fn read_data(&mut self, room: usize, buf: &mut [u8]) -> Option<(Header, usize)> {
        if !self.readable || !self.may_read_host() {
            return None;
        }
        let credit = usize::try_from(self.peer_credit()).unwrap_or(usize::MAX);
        let want = room.min(credit).min(buf.len());
        if want == 0 {
            self.refresh();
            return None;
        }
        match self.stream.read(&mut buf[..want]) {
            Ok(0) => {
                self.host_eof = true;
                self.readable = false;
                let mut h = self.header(Op::Shutdown);
                h.flags = SHUTDOWN_SEND;
                Some((h, 0))
            }
            Ok(n) => {
                let len = u32::try_from(n).unwrap_or(u32::MAX);
                self.tx_cnt += Wrapping(len);
                let mut h = self.header(Op::Rw);
                h.len = len;
                self.refresh();
                Some((h, n))
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                self.readable = false;
                None
            }
            Err(_) => {
                self.kill();
                self.pending.rst = false;
                Some((self.header(Op::Rst), 0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vsock::packet::{HOST_CID, TYPE_STREAM};
    use std::io::Write;

    const GUEST: u64 = 3;

    fn guest(op: Op, flags: u32, buf_alloc: u32, fwd_cnt: u32) -> Header {
        Header {
            src_cid: GUEST,
            dst_cid: HOST_CID,
            src_port: 1000,
            dst_port: 52,
            type_: TYPE_STREAM,
            op: op as u16,
            flags,
            buf_alloc,
            fwd_cnt,
            ..Header::default()
        }
    }

    fn key() -> ConnKey {
        ConnKey {
            host_port: 52,
            guest_port: 1000,
        }
    }

    /// A guest-initiated connection and the host program's end.
    fn established(guest_buf: u32) -> (Connection, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let req = guest(Op::Request, 0, guest_buf, 0);
        let mut c = Connection::from_guest(key(), &req, ours);
        let mut buf = [0u8; 64];
        let (h, n) = c.next_packet(64, &mut buf).unwrap();
        assert_eq!((h.op, n), (Op::Response as u16, 0));
        (c, theirs)
    }

    fn drain(c: &mut Connection) -> Vec<(Header, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 4096];
        while let Some((h, n)) = c.next_packet(4096, &mut buf) {
            out.push((h, buf[..n].to_vec()));
        }
        out
    }

    #[test]
    fn host_data_goes_out_within_the_guest_credit() {
        let (mut c, mut host) = established(10);
        host.write_all(b"0123456789abcdef").unwrap();
        let out = drain(&mut c);
        assert_eq!(out[0].0.op, Op::Rw as u16);
        assert_eq!(out[0].1, b"0123456789");
        assert_eq!(out[1].0.op, Op::CreditRequest as u16, "out of credit");
        assert_eq!(out.len(), 2);
        assert!(!c.wants_rx());
        assert_eq!(c.wanted_interest(), (false, false), "no spinning");
        // The guest consumed 4 bytes.
        c.on_guest_packet(&guest(Op::CreditUpdate, 0, 10, 4), Op::CreditUpdate, &[]);
        let out = drain(&mut c);
        assert_eq!(out[0].1, b"abcd");
        assert_eq!(out[0].0.len, 4);
    }

    #[test]
    fn host_eof_becomes_shutdown_after_the_data() {
        let (mut c, mut host) = established(1 << 20);
        host.write_all(b"bye").unwrap();
        host.shutdown(Shutdown::Write).unwrap();
        let out = drain(&mut c);
        assert_eq!(out[0].1, b"bye");
        assert_eq!(out[1].0.op, Op::Shutdown as u16);
        assert_eq!(out[1].0.flags, SHUTDOWN_SEND);
        assert_eq!(out.len(), 2);
        assert_eq!(c.wanted_interest(), (false, false));
    }

    #[test]
    fn guest_data_is_buffered_up_to_buf_alloc_for_a_slow_host() {
        let (mut c, host) = established(1 << 20);
        // Fill the socket buffer first, then our buffer to the brim.
        let chunk = vec![7u8; 4096];
        let mut sent = 0usize;
        while c.buffered() == 0 {
            c.on_guest_packet(&guest(Op::Rw, 0, 1 << 20, 0), Op::Rw, &chunk);
            sent += chunk.len();
            assert!(sent < 64 << 20, "the socket never filled");
        }
        while c.buffered() + chunk.len() <= BUF_ALLOC as usize {
            c.on_guest_packet(&guest(Op::Rw, 0, 1 << 20, 0), Op::Rw, &chunk);
        }
        assert!(c.wanted_interest().1, "waits for writability");
        // One more byte than the credit allows: RST, the buffer is freed.
        let over = vec![1u8; BUF_ALLOC as usize - c.buffered() + 1];
        c.on_guest_packet(&guest(Op::Rw, 0, 1 << 20, 0), Op::Rw, &over);
        assert_eq!(c.buffered(), 0);
        let out = drain(&mut c);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.op, Op::Rst as u16);
        assert!(c.is_gone());
        drop(host);
    }

    #[test]
    fn credit_updates_follow_the_host_reading() {
        let (mut c, mut host) = established(1 << 20);
        let half = vec![1u8; BUF_ALLOC as usize / 2 + 1];
        c.on_guest_packet(&guest(Op::Rw, 0, 1 << 20, 0), Op::Rw, &half);
        // Written straight through: the guest may have forgotten its credit.
        let out = drain(&mut c);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].0.op, Op::CreditUpdate as u16);
        assert_eq!(out[0].0.fwd_cnt as usize, half.len());
        assert_eq!(out[0].0.buf_alloc, BUF_ALLOC);
        let mut got = vec![0u8; half.len()];
        host.read_exact(&mut got).unwrap();
        // A small write does not need one.
        c.on_guest_packet(&guest(Op::Rw, 0, 1 << 20, 0), Op::Rw, b"x");
        assert!(drain(&mut c).is_empty());
        c.on_guest_packet(
            &guest(Op::CreditRequest, 0, 1 << 20, 0),
            Op::CreditRequest,
            &[],
        );
        let out = drain(&mut c);
        assert_eq!(out[0].0.op, Op::CreditUpdate as u16);
    }

    #[test]
    fn guest_shutdown_both_ways_ends_with_rst_after_the_data() {
        let (mut c, mut host) = established(1 << 20);
        c.on_guest_packet(&guest(Op::Rw, 0, 1 << 20, 0), Op::Rw, b"last words");
        c.on_guest_packet(
            &guest(Op::Shutdown, SHUTDOWN_BOTH, 1 << 20, 0),
            Op::Shutdown,
            &[],
        );
        let mut got = Vec::new();
        host.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"last words");
        let out = drain(&mut c);
        assert_eq!(out.last().unwrap().0.op, Op::Rst as u16);
        assert!(c.is_gone());
        assert!(!c.was_killed(), "a clean close");
    }

    #[test]
    fn half_close_from_the_guest_shuts_the_host_write_side() {
        let (mut c, mut host) = established(1 << 20);
        c.on_guest_packet(
            &guest(Op::Shutdown, SHUTDOWN_SEND, 1 << 20, 0),
            Op::Shutdown,
            &[],
        );
        let mut got = Vec::new();
        host.read_to_end(&mut got).unwrap();
        assert!(got.is_empty());
        // The other way still works.
        host.write_all(b"reply").unwrap();
        assert_eq!(drain(&mut c)[0].1, b"reply");
        // Data after its shutdown is a protocol error.
        c.on_guest_packet(&guest(Op::Rw, 0, 1 << 20, 0), Op::Rw, b"late");
        assert_eq!(drain(&mut c)[0].0.op, Op::Rst as u16);
    }

    fn host_initiated() -> (Connection, UnixStream, Header) {
        let (ours, host) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let key = ConnKey {
            host_port: 1 << 30,
            guest_port: 6000,
        };
        let mut c = Connection::to_guest(key, GUEST, ours);
        let out = drain(&mut c);
        assert_eq!(out.len(), 1);
        let req = out[0].0;
        assert_eq!(req.op, Op::Request as u16);
        assert_eq!((req.src_port, req.dst_port), (1 << 30, 6000));
        assert_eq!((req.src_cid, req.dst_cid), (HOST_CID, GUEST));
        // The guest's answers: addresses swapped.
        let answer = Header {
            src_cid: GUEST,
            dst_cid: HOST_CID,
            src_port: 6000,
            dst_port: 1 << 30,
            type_: TYPE_STREAM,
            buf_alloc: 4096,
            ..Header::default()
        };
        (c, host, answer)
    }

    #[test]
    fn host_initiated_connection_answers_ok_on_response() {
        let (mut c, mut host, answer) = host_initiated();
        c.on_guest_packet(&answer, Op::Response, &[]);
        let mut line = [0u8; 14];
        host.read_exact(&mut line).unwrap();
        assert_eq!(&line, b"OK 1073741824\n");
        host.write_all(b"hi").unwrap();
        let out = drain(&mut c);
        assert_eq!(out[0].1, b"hi");
        assert_eq!(c.on_guest_packet(&answer, Op::Rst, &[]), Verdict::Forget);
    }

    #[test]
    fn data_before_the_response_resets() {
        let (mut c, mut host, answer) = host_initiated();
        c.on_guest_packet(&answer, Op::Rw, b"early");
        assert_eq!(drain(&mut c)[0].0.op, Op::Rst as u16);
        assert!(c.was_killed());
        let mut got = Vec::new();
        host.read_to_end(&mut got).unwrap();
        assert!(got.is_empty(), "no OK line: closed");
    }

    #[test]
    fn a_second_response_or_request_resets() {
        let (mut c, _host) = established(100);
        c.on_guest_packet(&guest(Op::Response, 0, 1 << 20, 0), Op::Response, &[]);
        assert_eq!(drain(&mut c)[0].0.op, Op::Rst as u16);
        assert!(c.is_gone());
    }

    #[test]
    fn host_gone_while_data_waits_resets() {
        let (mut c, host) = established(100);
        drop(host);
        c.on_guest_packet(&guest(Op::Rw, 0, 1 << 20, 0), Op::Rw, b"nobody reads this");
        let out = drain(&mut c);
        assert_eq!(out[0].0.op, Op::Rst as u16);
        assert!(c.is_gone());
    }
}
