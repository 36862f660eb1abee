//! The API server as the VMM's request source: requests the routes
//! answer themselves are answered at once, the others go to the VMM
//! thread with a reply that writes Firecracker's response.

use vmm::request::{Request, RequestSource};
use vmm_sys_util::eventfd::EventFd;

use super::answers::response;
use super::routes::{parse, Parsed};
use crate::RequestReceiver;

/// Firecracker's API, served by the server whose requests `receiver` gets.
pub struct FirecrackerApi {
    receiver: RequestReceiver,
    /// The instance id `GET /` shows (`--id`).
    id: String,
}

impl FirecrackerApi {
    pub fn new(receiver: RequestReceiver, id: String) -> Self {
        FirecrackerApi { receiver, id }
    }
}

impl RequestSource for FirecrackerApi {
    fn eventfd(&self) -> &EventFd {
        self.receiver.event_fd()
    }

    fn next_request(&mut self) -> Option<Request> {
        loop {
            let pending = self.receiver.try_take()?;
            match parse(&pending.request) {
                Parsed::Answer(answer) => pending.respond(answer),
                Parsed::Vmm(action) => {
                    let id = self.id.clone();
                    let responder = pending.responder;
                    return Some(Request {
                        action,
                        reply: Box::new(move |answer| responder.send(response(answer, &id))),
                    });
                }
            }
        }
    }
}
