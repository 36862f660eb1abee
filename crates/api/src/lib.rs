//! Firecracker's API for Pointsman, in two layers. The transport (every
//! module but [`firecracker`]) is an HTTP/1.1 server on a Unix socket that
//! turns requests into [`ApiRequest`]s and writes back [`ApiResponse`]s;
//! it knows nothing of the VMM. [`firecracker`] gives them their meaning:
//! Firecracker's paths and bodies become the VMM's requests, and its
//! answers Firecracker's responses.
//!
//! # Threads
//! [`start`] binds the socket and starts one thread, `pointsman-api`. It
//! runs an epoll loop over the listening socket, every connection, the
//! VMM's answers and a stop event, all non-blocking, so a client that sends
//! nothing, sends half a request, or reads its answer slowly holds up no
//! one else. Each complete request goes to the VMM thread through a channel
//! and an [`EventFd`](vmm_sys_util::eventfd::EventFd) its own event loop
//! watches ([`RequestReceiver::event_fd`]); the VMM answers through
//! [`RequestReceiver::handle_pending`] with a [`Handler`] (or
//! [`PendingRequest::respond`]), and the answer comes back through another
//! channel and event fd. As in Firecracker, the API thread never touches
//! VMM state; unlike Firecracker's, it never blocks waiting for the VMM
//! either, so other clients are still read and refused while the VMM works.
//! A request the VMM drops unanswered is answered `500`. Dropping the
//! [`ApiServerHandle`] stops the thread and removes the socket file.
//!
//! # Why no async runtime and no HTTP framework
//! The VMM's idle RSS must stay under 3 MiB. An async runtime brings its
//! own worker threads, allocator pressure and hundreds of KiB of code for a
//! socket that carries a handful of small JSON requests; one thread with
//! its own epoll costs a small stack and a few buffers. `httparse` parses
//! the request line and headers; framing, limits and keep-alive, about the
//! only parts of HTTP/1.1 this API needs, are written here by hand.
//!
//! # What the server accepts
//! - HTTP/1.1 (and 1.0), one request at a time per connection, keep-alive
//!   by default, `Connection: close` honoured; pipelined requests are
//!   answered in order. `Expect: 100-continue` gets its `100 Continue`.
//! - Bodies framed by `Content-Length` only: `Transfer-Encoding` (chunked
//!   or any other) is refused with `400`, since no Firecracker client sends
//!   it.
//! - A body of at most [`Limits::max_payload_bytes`] (51 200 by default,
//!   Firecracker's `--http-api-max-payload-size`), else `413`, decided from
//!   the header before any of the body is read; request line plus headers
//!   of at most [`Limits::max_header_bytes`] (8 KiB) and
//!   [`http::parse::MAX_HEADERS`] headers, else `400`.
//! - Methods `GET`, `PUT`, `PATCH`, `DELETE`; any other is `405`. A `GET`
//!   with a body is `400`. The VMM never sees these.
//! - At most [`ServerOptions::max_connections`] clients at once; one more
//!   is answered `503` and closed.
//!
//! Every error is a JSON `{"fault_message": "..."}`. A framing error (bad
//! request line or header, bad `Content-Length`, over a limit) leaves the
//! byte stream unusable, so its answer carries `Connection: close` and the
//! connection is closed once it is written. A client that disconnects
//! mid-request is dropped; one that shuts only its writing side still gets
//! the answer to its complete request. Responses always carry a
//! `Content-Length`, except `204`, where HTTP forbids it.

pub mod api;
pub mod channel;
mod connection;
pub mod error;
#[cfg(feature = "firecracker")]
pub mod firecracker;
pub mod http;
pub mod route;
pub mod server;
mod socket;

pub use api::{ApiRequest, ApiResponse, Handler, Method};
pub use channel::{PendingRequest, RequestReceiver, Responder};
pub use error::ApiError;
pub use http::{Limits, StatusCode};
pub use route::{check_body_id, check_id, parse_path, Route, RouteError};
pub use server::{start, ApiServerHandle, ServerOptions};
