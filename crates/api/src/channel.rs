//! The bridge between the API thread and the VMM thread: requests go one
//! way through a channel with an `EventFd` the VMM's event loop can watch,
//! answers come back through another. The API thread never touches VMM
//! state and never blocks on the VMM.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use vmm_sys_util::eventfd::EventFd;

use crate::api::{ApiRequest, ApiResponse, Handler};
use crate::http::StatusCode;

/// An answer on its way back to connection `conn`.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) conn: u64,
    pub(crate) response: ApiResponse,
}

/// Sends the answer to one request back to the API thread. Dropping it
/// unanswered answers `500`, so a client never waits forever.
#[derive(Debug)]
pub struct Responder {
    conn: u64,
    replies: Sender<Reply>,
    wake: Arc<EventFd>,
    answered: bool,
}

impl Responder {
    pub(crate) fn new(conn: u64, replies: Sender<Reply>, wake: Arc<EventFd>) -> Self {
        Responder {
            conn,
            replies,
            wake,
            answered: false,
        }
    }

    pub fn send(mut self, response: ApiResponse) {
        self.deliver(response);
    }

    fn deliver(&mut self, response: ApiResponse) {
        self.answered = true;
        // The API thread may be gone (server shut down): nobody to answer.
        if self
            .replies
            .send(Reply {
                conn: self.conn,
                response,
            })
            .is_ok()
        {
            let _ = self.wake.write(1);
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            self.deliver(ApiResponse::fault(
                StatusCode::InternalServerError,
                "the VMM did not answer the request",
            ));
        }
    }
}

/// A request waiting for the VMM's answer.
#[derive(Debug)]
pub struct PendingRequest {
    pub request: ApiRequest,
    pub responder: Responder,
}

impl PendingRequest {
    /// Answers the request.
    pub fn respond(self, response: ApiResponse) {
        self.responder.send(response);
    }
}

/// The VMM's end: poll [`RequestReceiver::event_fd`] (readable when
/// requests wait), then take them with [`RequestReceiver::handle_pending`]
/// or [`RequestReceiver::try_take`].
#[derive(Debug)]
pub struct RequestReceiver {
    requests: Receiver<PendingRequest>,
    ready: EventFd,
}

impl RequestReceiver {
    pub(crate) fn new(requests: Receiver<PendingRequest>, ready: EventFd) -> Self {
        RequestReceiver { requests, ready }
    }

    /// Readable while requests may be waiting (non-blocking, counts them).
    pub fn event_fd(&self) -> &EventFd {
        &self.ready
    }

    /// Clears the event fd: call before draining with [`Self::try_take`] so
    /// that a request sent during the drain wakes the loop again.
    pub fn clear_event(&self) {
        let _ = self.ready.read();
    }

    /// The next waiting request, if any, without blocking.
    pub fn try_take(&self) -> Option<PendingRequest> {
        self.requests.try_recv().ok()
    }

    /// Answers every waiting request with `handler`, in arrival order, and
    /// returns how many there were. Meant for the VMM loop's reaction to
    /// [`Self::event_fd`] being readable.
    pub fn handle_pending(&self, handler: &mut impl Handler) -> usize {
        self.clear_event();
        let mut handled = 0;
        while let Some(pending) = self.try_take() {
            let response = handler.handle(pending.request);
            pending.responder.send(response);
            handled += 1;
        }
        handled
    }

    /// Waits up to `timeout` for a request; `None` on timeout or once the
    /// server has stopped. For a VMM side with no event loop of its own.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<PendingRequest> {
        self.requests.recv_timeout(timeout).ok()
    }

    /// Waits for a request; `None` once the server has stopped.
    pub fn recv(&self) -> Option<PendingRequest> {
        self.requests.recv().ok()
    }
}

impl AsRawFd for RequestReceiver {
    fn as_raw_fd(&self) -> RawFd {
        self.ready.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;

    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    use super::*;
    use crate::api::Method;

    fn pending(conn: u64, replies: &Sender<Reply>, wake: &Arc<EventFd>) -> PendingRequest {
        PendingRequest {
            request: ApiRequest {
                method: Method::Get,
                path: format!("/{conn}"),
                body: Vec::new(),
            },
            responder: Responder::new(conn, replies.clone(), wake.clone()),
        }
    }

    #[test]
    fn handle_pending_answers_in_order_and_wakes_the_server() {
        let (req_tx, req_rx) = channel();
        let (reply_tx, reply_rx) = channel();
        let wake = Arc::new(EventFd::new(EFD_NONBLOCK).unwrap());
        let receiver = RequestReceiver::new(req_rx, EventFd::new(EFD_NONBLOCK).unwrap());
        for conn in [7, 9] {
            req_tx.send(pending(conn, &reply_tx, &wake)).unwrap();
            receiver.event_fd().write(1).unwrap();
        }
        let mut seen = Vec::new();
        let handled = receiver.handle_pending(&mut |request: ApiRequest| {
            seen.push(request.path.clone());
            ApiResponse::no_content()
        });
        assert_eq!(handled, 2);
        assert_eq!(seen, ["/7", "/9"]);
        assert_eq!(wake.read().unwrap(), 2);
        let conns: Vec<u64> = reply_rx.try_iter().map(|r| r.conn).collect();
        assert_eq!(conns, [7, 9]);
        // The event was cleared: nothing left to read.
        assert!(receiver.event_fd().read().is_err());
    }

    #[test]
    fn dropped_request_is_answered_500() {
        let (reply_tx, reply_rx) = channel();
        let wake = Arc::new(EventFd::new(EFD_NONBLOCK).unwrap());
        drop(pending(3, &reply_tx, &wake));
        let reply = reply_rx.try_recv().unwrap();
        assert_eq!(reply.conn, 3);
        assert_eq!(reply.response.status, StatusCode::InternalServerError);
        assert_eq!(wake.read().unwrap(), 1);
    }
}
