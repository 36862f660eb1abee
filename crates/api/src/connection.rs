//! One client connection: its own read buffer and write buffer, so that a
//! client that sends half a request, or reads its answer slowly, only ever
//! waits for itself.
//!
//! One request at a time: while the VMM has a request of this connection,
//! or an answer is not fully written, nothing more is read from it. That
//! bounds its buffers (head + body limits + one read) and keeps a client
//! that pipelines without reading from growing them.

use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use vmm_sys_util::epoll::EventSet;

use crate::api::{ApiRequest, ApiResponse, Method};
use crate::http::{
    encode_response, fault_body, response::CONTINUE, ConnectionHeader, HttpRequest, Limits,
    RequestReader, StatusCode,
};

/// Most bytes read from one connection per wake-up, so that one fast
/// client does not starve the others.
const READ_BUDGET: usize = 64 * 1024;

/// Buffers larger than this are freed once empty: the API idles small.
const KEEP_CAPACITY: usize = 16 * 1024;

#[derive(Debug)]
pub(crate) struct Connection {
    stream: UnixStream,
    reader: RequestReader,
    out: Vec<u8>,
    written: usize,
    /// A request of this connection is with the VMM.
    waiting: bool,
    /// What the answer to the current request says about the connection.
    current: ConnectionHeader,
    /// The client shut its writing side: answer what is complete, then close.
    eof: bool,
    /// Close once `out` is written.
    closing: bool,
    /// The socket failed or the peer is gone: drop without writing.
    broken: bool,
    /// The interest last given to epoll, to skip needless updates.
    pub(crate) registered: EventSet,
}

impl Connection {
    pub(crate) fn new(stream: UnixStream, limits: Limits) -> Self {
        Connection {
            stream,
            reader: RequestReader::new(limits),
            out: Vec::new(),
            written: 0,
            waiting: false,
            current: ConnectionHeader::None,
            eof: false,
            closing: false,
            broken: false,
            registered: EventSet::IN,
        }
    }

    pub(crate) fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Acts on what epoll reported for this connection.
    pub(crate) fn on_event(&mut self, events: EventSet) {
        if events.intersects(EventSet::HANG_UP | EventSet::ERROR) {
            // Both directions are gone (a half-close shows as READ_HANG_UP
            // with IN): nobody is left to answer.
            self.broken = true;
            return;
        }
        if events.contains(EventSet::OUT) {
            self.flush();
        }
        if events.contains(EventSet::IN) && self.wants_input() {
            self.read_available();
        }
    }

    fn wants_input(&self) -> bool {
        !self.waiting && !self.eof && !self.closing && !self.broken && self.out.is_empty()
    }

    fn read_available(&mut self) {
        let mut chunk = [0u8; 4096];
        let mut total = 0;
        while total < READ_BUDGET {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return;
                }
                Ok(n) => {
                    self.reader.push(&chunk[..n]);
                    total += n;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.broken = true;
                    return;
                }
            }
        }
    }

    /// The next request for the VMM, if the connection is ready for one.
    /// Requests the VMM must never see (bad framing, a method the API does
    /// not have, a body on a GET) are answered here.
    pub(crate) fn next_request(&mut self) -> Option<ApiRequest> {
        while self.wants_request() {
            match self.reader.next_request() {
                Ok(Some(request)) => {
                    if let Some(request) = self.accept(request) {
                        self.waiting = true;
                        return Some(request);
                    }
                }
                Ok(None) => {
                    if self.reader.take_continue() {
                        self.out.extend_from_slice(CONTINUE);
                        self.flush();
                    }
                    if self.eof {
                        // Whatever is left is half a request: drop it.
                        self.closing = true;
                    }
                    return None;
                }
                Err(e) => {
                    self.current = ConnectionHeader::Close;
                    self.queue(
                        e.status(),
                        Some(fault_body(&e.to_string()).as_bytes()),
                        crate::api::JSON,
                    );
                    return None;
                }
            }
        }
        None
    }

    fn wants_request(&self) -> bool {
        !self.waiting && !self.closing && !self.broken && self.out.is_empty()
    }

    /// Checks what the VMM relies on; answers and returns `None` otherwise.
    fn accept(&mut self, request: HttpRequest) -> Option<ApiRequest> {
        self.current = if request.close || self.eof {
            ConnectionHeader::Close
        } else if request.http10_keep_alive {
            ConnectionHeader::KeepAlive
        } else {
            ConnectionHeader::None
        };
        let refusal = match Method::from_token(&request.method) {
            None => ApiResponse::fault(
                StatusCode::MethodNotAllowed,
                format!("unsupported HTTP method {:?}", request.method),
            ),
            Some(Method::Get) if !request.body.is_empty() => {
                ApiResponse::bad_request("a GET request must not have a body")
            }
            Some(method) => {
                return Some(ApiRequest {
                    method,
                    path: request.target,
                    body: request.body,
                })
            }
        };
        self.respond(&refusal);
        None
    }

    /// Writes the VMM's answer to the current request.
    pub(crate) fn respond(&mut self, response: &ApiResponse) {
        self.waiting = false;
        if self.eof {
            self.current = ConnectionHeader::Close;
        }
        self.queue(
            response.status,
            response.body.as_ref().map(|body| body.as_bytes()),
            response.content_type,
        );
    }

    fn queue(&mut self, status: StatusCode, body: Option<&[u8]>, content_type: &str) {
        if self.current == ConnectionHeader::Close {
            self.closing = true;
        }
        encode_response(status, body, content_type, self.current, &mut self.out);
        self.flush();
    }

    /// Writes as much of `out` as the socket takes now.
    fn flush(&mut self) {
        while self.written < self.out.len() && !self.broken {
            match send_nosignal(&self.stream, &self.out[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => self.broken = true,
            }
        }
        if self.written >= self.out.len() {
            self.out.clear();
            self.written = 0;
            if self.out.capacity() > KEEP_CAPACITY {
                self.out = Vec::new();
            }
        }
    }

    /// What to ask epoll for next. Empty still reports hang-ups.
    pub(crate) fn interest(&self) -> EventSet {
        if !self.out.is_empty() {
            EventSet::OUT
        } else if self.wants_input() {
            EventSet::IN
        } else {
            EventSet::empty()
        }
    }

    /// Nothing more will happen on this connection.
    pub(crate) fn is_done(&self) -> bool {
        self.broken || (self.closing && self.out.is_empty())
    }
}

/// Writes without blocking. MSG_NOSIGNAL: a peer that left gives EPIPE, not
/// a SIGPIPE that would kill the VMM.
pub(crate) fn send_nosignal(stream: &UnixStream, bytes: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `bytes` is a live slice of `bytes.len()` bytes and the fd is
    // open for as long as `stream` is borrowed.
    let sent = unsafe {
        libc::send(
            stream.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(sent).map_err(|_| std::io::Error::last_os_error())
}
