//! The API thread: one epoll loop over the listening socket, every client
//! connection, the VMM's answers and the stop signal. It blocks on nothing
//! else, so no client and not even the VMM can stall it.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::api::ApiRequest;
use crate::channel::{PendingRequest, Reply, RequestReceiver, Responder};
use crate::connection::{send_nosignal, Connection};
use crate::error::ApiError;
use crate::http::{encode_response, fault_body, ConnectionHeader, Limits, StatusCode};
use crate::socket::{self, SocketFile};

/// Name of the API thread, as Firecracker's `fc_api`.
pub const THREAD_NAME: &str = "pointsman-api";

/// The API thread does little and keeps no deep frames.
const THREAD_STACK_BYTES: usize = 256 * 1024;

/// Default cap on open connections; one over it is answered 503 and closed.
pub const DEFAULT_MAX_CONNECTIONS: usize = 128;

/// How long the listener rests after `accept` failed for lack of fds.
const LISTENER_PAUSE_MS: i32 = 100;

const LISTENER: u64 = 0;
const STOP: u64 = 1;
const REPLIES: u64 = 2;
const FIRST_CONNECTION: u64 = 3;

/// How the server is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    pub limits: Limits,
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            limits: Limits::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ServerOptions {
    /// Firecracker's `--http-api-max-payload-size`.
    pub fn with_max_payload_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_payload_bytes = bytes;
        self
    }
}

/// The running server. Dropping it stops the thread and removes the
/// socket file.
#[derive(Debug)]
pub struct ApiServerHandle {
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
    socket: SocketFile,
}

impl ApiServerHandle {
    pub fn socket_path(&self) -> &Path {
        self.socket.path()
    }
}

impl Drop for ApiServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the API thread panicked");
            }
        }
        self.socket.remove();
    }
}

/// Binds `path` and starts the API thread. The VMM side takes requests
/// from the returned [`RequestReceiver`]; errors binding the socket are
/// reported here, before any thread starts.
pub fn start(
    path: impl AsRef<Path>,
    options: ServerOptions,
) -> Result<(ApiServerHandle, RequestReceiver), ApiError> {
    let setup = |what| move |source| ApiError::Setup { what, source };
    let (listener, socket) = socket::bind(path.as_ref())?;
    // From here on the socket file is ours: remove it on any failure.
    let started = (|| {
        let stop = EventFd::new(EFD_NONBLOCK).map_err(setup("stop event"))?;
        let requests_ready = EventFd::new(EFD_NONBLOCK).map_err(setup("request event"))?;
        let replies_ready = Arc::new(EventFd::new(EFD_NONBLOCK).map_err(setup("reply event"))?);
        let epoll = Epoll::new().map_err(setup("epoll"))?;
        for (fd, token) in [
            (listener.as_raw_fd(), LISTENER),
            (stop.as_raw_fd(), STOP),
            (replies_ready.as_raw_fd(), REPLIES),
        ] {
            epoll
                .ctl(
                    ControlOperation::Add,
                    fd,
                    EpollEvent::new(EventSet::IN, token),
                )
                .map_err(setup("epoll"))?;
        }
        let (to_vmm, from_api) = channel();
        let (reply_tx, replies) = channel();
        let server = Server {
            epoll,
            listener,
            stop: stop.try_clone().map_err(setup("stop event"))?,
            to_vmm,
            requests_ready: requests_ready.try_clone().map_err(setup("request event"))?,
            reply_tx,
            replies,
            replies_ready,
            connections: HashMap::new(),
            next_id: FIRST_CONNECTION,
            options,
            listener_paused: false,
        };
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || {
                seccomp::install_in_thread(seccomp::ThreadKind::Api);
                server.run()
            })
            .map_err(ApiError::Spawn)?;
        Ok((stop, thread, RequestReceiver::new(from_api, requests_ready)))
    })();
    match started {
        Ok((stop, thread, receiver)) => Ok((
            ApiServerHandle {
                stop,
                thread: Some(thread),
                socket,
            },
            receiver,
        )),
        Err(e) => {
            socket.remove();
            Err(e)
        }
    }
}

struct Server {
    epoll: Epoll,
    listener: UnixListener,
    stop: EventFd,
    to_vmm: Sender<PendingRequest>,
    requests_ready: EventFd,
    reply_tx: Sender<Reply>,
    replies: Receiver<Reply>,
    replies_ready: Arc<EventFd>,
    connections: HashMap<u64, Connection>,
    next_id: u64,
    options: ServerOptions,
    /// The listener is out of epoll after a failed accept.
    listener_paused: bool,
}

impl Server {
    fn run(mut self) {
        let mut events = vec![EpollEvent::default(); 64];
        loop {
            let timeout = if self.listener_paused {
                LISTENER_PAUSE_MS
            } else {
                -1
            };
            let n = self.epoll.wait(timeout, &mut events);
            if self.listener_paused {
                self.resume_listener();
            }
            let n = match n {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::error!("the API server cannot wait for events: {e}");
                    return;
                }
            };
            for event in &events[..n] {
                match event.data() {
                    LISTENER => self.accept_all(),
                    STOP => {
                        let _ = self.stop.read();
                        return;
                    }
                    REPLIES => self.deliver_replies(),
                    id => {
                        if let Some(connection) = self.connections.get_mut(&id) {
                            connection.on_event(event.event_set());
                            self.service(id);
                        }
                    }
                }
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Out of fds or memory: the client stays in the
                    // backlog, and the listener, which stays readable, is
                    // left out of epoll for a while rather than spun on.
                    tracing::warn!("the API server cannot accept a connection: {e}");
                    self.pause_listener();
                    return;
                }
            };
            if self.connections.len() >= self.options.max_connections {
                refuse(stream, self.options.max_connections);
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            let event = EpollEvent::new(EventSet::IN, id);
            if let Err(e) = self
                .epoll
                .ctl(ControlOperation::Add, stream.as_raw_fd(), event)
            {
                tracing::warn!("the API server cannot watch a connection: {e}");
                continue;
            }
            self.connections
                .insert(id, Connection::new(stream, self.options.limits));
        }
    }

    fn pause_listener(&mut self) {
        let fd = self.listener.as_raw_fd();
        let none = EpollEvent::default();
        self.listener_paused = self.epoll.ctl(ControlOperation::Delete, fd, none).is_ok();
    }

    fn resume_listener(&mut self) {
        let fd = self.listener.as_raw_fd();
        let event = EpollEvent::new(EventSet::IN, LISTENER);
        self.listener_paused = self.epoll.ctl(ControlOperation::Add, fd, event).is_err();
    }

    /// Hands the answers the VMM sent back to their connections.
    fn deliver_replies(&mut self) {
        let _ = self.replies_ready.read();
        while let Ok(reply) = self.replies.try_recv() {
            // The client may have left while the VMM worked.
            if let Some(connection) = self.connections.get_mut(&reply.conn) {
                connection.respond(&reply.response);
                self.service(reply.conn);
            }
        }
    }

    /// Moves connection `id` on after anything happened to it: a new
    /// request goes to the VMM, a finished connection is closed, and epoll
    /// is told what to wait for next.
    fn service(&mut self, id: u64) {
        let Some(connection) = self.connections.get_mut(&id) else {
            return;
        };
        if let Some(request) = connection.next_request() {
            self.dispatch(id, request);
        }
        let Some(connection) = self.connections.get_mut(&id) else {
            return;
        };
        let fd = connection.stream().as_raw_fd();
        if connection.is_done() {
            let _ = self
                .epoll
                .ctl(ControlOperation::Delete, fd, EpollEvent::default());
            let _ = connection.stream().shutdown(std::net::Shutdown::Both);
            self.connections.remove(&id);
            return;
        }
        let interest = connection.interest();
        if interest != connection.registered {
            let event = EpollEvent::new(interest, id);
            if self.epoll.ctl(ControlOperation::Modify, fd, event).is_ok() {
                connection.registered = interest;
            }
        }
    }

    fn dispatch(&mut self, id: u64, request: ApiRequest) {
        let responder = Responder::new(id, self.reply_tx.clone(), self.replies_ready.clone());
        // If the VMM side is gone the request comes back and its dropped
        // responder answers 500 through the reply channel.
        if self
            .to_vmm
            .send(PendingRequest { request, responder })
            .is_ok()
        {
            let _ = self.requests_ready.write(1);
        }
    }
}

/// Tells a client over the connection limit why it is closed (best effort:
/// the socket is fresh, so the short answer fits in its buffer).
fn refuse(stream: std::os::unix::net::UnixStream, limit: usize) {
    let body = fault_body(&format!(
        "too many API connections (the limit is {limit}): retry later"
    ));
    let mut out = Vec::new();
    encode_response(
        StatusCode::ServiceUnavailable,
        Some(body.as_bytes()),
        crate::api::JSON,
        ConnectionHeader::Close,
        &mut out,
    );
    let _ = send_nosignal(&stream, &out);
}
