//! The HTTP server on a real Unix socket, with an echo VMM thread behind it:
//! keep-alive, limits, malformed input and clients that misbehave.

mod common;

use std::net::Shutdown;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use api::{start, ApiResponse, ServerOptions};
use common::{Client, EchoServer};
use vmm_sys_util::tempdir::TempDir;

fn small_payload(bytes: usize) -> ServerOptions {
    ServerOptions::default().with_max_payload_bytes(bytes)
}

/// Sends `wire` on a fresh connection; expects a 400 that closes it.
fn assert_refused_and_closed(server: &EchoServer, wire: &[u8], needle: &str) {
    let mut client = server.client();
    client.send(wire);
    let response = client.response();
    let shown = String::from_utf8_lossy(wire);
    assert_eq!(response.status, 400, "{shown:?}");
    assert!(
        response.fault_message().contains(needle),
        "{shown:?}: {:?}",
        response.fault_message()
    );
    assert_eq!(response.header("connection"), Some("close"), "{shown:?}");
    assert!(
        client.closed_by_server(),
        "{shown:?} left the connection open"
    );
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = EchoServer::start(ServerOptions::default());
    let mut client = server.client();
    let get = client.request("GET", "/machine-config", "");
    assert_eq!(get.status, 200);
    assert_eq!(get.header("content-type"), Some("application/json"));
    assert_eq!(
        get.body_text(),
        "{\"method\": \"GET\", \"path\": \"/machine-config\", \"body_len\": 0}"
    );
    let put = client.request("PUT", "/drives/rootfs", "{\"drive_id\": \"rootfs\"}");
    assert_eq!(put.status, 200);
    assert!(put.body_text().contains("\"body_len\": 22"));
    let patch = client.request("PATCH", "/vm", "");
    assert_eq!(patch.status, 204);
    assert_eq!(patch.header("content-length"), None);
    assert!(patch.body.is_empty());
    let delete = client.request("DELETE", "/drives/rootfs", "");
    assert_eq!(delete.status, 204);
    assert_eq!(
        server.paths_seen(),
        ["/machine-config", "/drives/rootfs", "/vm", "/drives/rootfs"]
    );

    client.send(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    let last = client.response();
    assert_eq!(last.status, 200);
    assert_eq!(last.header("connection"), Some("close"));
    assert!(client.closed_by_server());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = EchoServer::start(ServerOptions::default());
    let mut client = server.client();
    client.send(
        b"GET /a HTTP/1.1\r\n\r\nPUT /b HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET /c HTTP/1.1\r\n\r\n",
    );
    for path in ["/a", "/b", "/c"] {
        let response = client.response();
        assert!(response.body_text().contains(path), "{path}");
    }
}

#[test]
fn http10_closes_unless_asked_to_keep_alive() {
    let server = EchoServer::start(ServerOptions::default());
    let mut client = server.client();
    client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(client.response().header("connection"), Some("keep-alive"));
    client.send(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(client.response().header("connection"), Some("close"));
    assert!(client.closed_by_server());
}

#[test]
fn body_over_the_payload_limit_is_413() {
    let server = EchoServer::start(small_payload(100));
    let mut client = server.client();
    let at_limit = "x".repeat(100);
    assert_eq!(client.request("PUT", "/at", &at_limit).status, 200);

    let over = "x".repeat(101);
    let response = client.request("PUT", "/over", &over);
    assert_eq!(response.status, 413);
    assert!(response.fault_message().contains("101 bytes"));
    assert!(response.fault_message().contains("limit of 100 bytes"));
    assert_eq!(response.header("connection"), Some("close"));
    assert!(client.closed_by_server());
    assert_eq!(server.paths_seen(), ["/at"]);
}

#[test]
fn default_payload_limit_is_firecrackers() {
    let server = EchoServer::start(ServerOptions::default());
    let mut client = server.client();
    assert_eq!(
        client.request("PUT", "/ok", &"y".repeat(51_200)).status,
        200
    );
    // 413 before the body is sent: the head alone says it is too big.
    client.send(b"PUT /big HTTP/1.1\r\nContent-Length: 51201\r\n\r\n");
    assert_eq!(client.response().status, 413);
}

#[test]
fn expect_continue_gets_100_before_the_body() {
    let server = EchoServer::start(ServerOptions::default());
    let mut client = server.client();
    client.send(b"PUT /drives/x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    assert_eq!(client.response().status, 100);
    client.send(b"{}{}");
    let response = client.response();
    assert_eq!(response.status, 200);
    assert!(response.body_text().contains("\"body_len\": 4"));
}

#[test]
fn malformed_requests_are_400_and_close_the_connection() {
    let server = EchoServer::start(ServerOptions::default());
    let cases: [(&[u8], &str); 9] = [
        (b"HELLO\r\n\r\n", "malformed"),
        (b"GET / HTTP/2.0\r\n\r\n", "malformed"),
        (b"GET /\r\n\r\n", "malformed"),
        (b"GET / HTTP/1.1\r\nNoColonHere\r\n\r\n", "malformed"),
        (b"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", "malformed"),
        (b"GET http://x/ HTTP/1.1\r\n\r\n", "not an absolute path"),
        (
            b"PUT /x HTTP/1.1\r\nContent-Length: ten\r\n\r\n",
            "Content-Length",
        ),
        (
            b"PUT /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "Content-Length",
        ),
        (
            b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            "Transfer-Encoding",
        ),
    ];
    for (wire, needle) in cases {
        assert_refused_and_closed(&server, wire, needle);
    }
    let conflicting = b"PUT /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}";
    assert_refused_and_closed(&server, conflicting, "conflicting");
    let huge_header = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    assert_refused_and_closed(&server, huge_header.as_bytes(), "limit of 8192 bytes");
    assert!(server.paths_seen().is_empty());
}

#[test]
fn get_with_body_and_unknown_method_keep_the_connection() {
    let server = EchoServer::start(ServerOptions::default());
    let mut client = server.client();
    let response = client.request("GET", "/", "{}");
    assert_eq!(response.status, 400);
    assert_eq!(
        response.fault_message(),
        "a GET request must not have a body"
    );
    assert_eq!(response.header("connection"), None);
    let response = client.request("POST", "/actions", "{}");
    assert_eq!(response.status, 405);
    assert!(response.fault_message().contains("POST"));
    assert_eq!(client.request("GET", "/after", "").status, 200);
    assert_eq!(server.paths_seen(), ["/after"]);
}

#[test]
fn truncated_body_then_disconnect_is_dropped() {
    let server = EchoServer::start(ServerOptions::default());
    let mut quitter = server.client();
    quitter.send(b"PUT /truncated HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"half\":");
    drop(quitter);
    let mut half_closer = server.client();
    half_closer.send(b"PUT /half-closed HTTP/1.1\r\nContent-Length: 100\r\n\r\n{");
    half_closer.stream.shutdown(Shutdown::Write).unwrap();
    assert!(half_closer.closed_by_server());
    assert_eq!(server.client().request("GET", "/next", "").status, 200);
    assert_eq!(server.paths_seen(), ["/next"]);
}

#[test]
fn complete_request_then_half_close_is_answered() {
    let server = EchoServer::start(ServerOptions::default());
    let mut client = server.client();
    client.send(b"GET /last HTTP/1.1\r\n\r\n");
    client.stream.shutdown(Shutdown::Write).unwrap();
    let response = client.response();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    assert!(client.closed_by_server());
}

#[test]
fn silent_and_half_sent_clients_do_not_block_others() {
    let server = EchoServer::start(ServerOptions::default());
    let mut silent = server.client();
    let mut half = server.client();
    half.send(b"GET /never-finished HT");
    let started = Instant::now();
    for i in 0..5 {
        let path = format!("/other/{i}");
        assert_eq!(server.client().request("GET", &path, "").status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // Both are still open and usable: nothing timed them out.
    half.send(b"TP/1.1\r\n\r\n");
    assert_eq!(half.response().status, 200);
    assert_eq!(silent.request("GET", "/late", "").status, 200);
}

#[test]
fn fifty_clients_at_once() {
    let server = EchoServer::start(ServerOptions::default());
    let clients: Vec<Client> = (0..50).map(|_| server.client()).collect();
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            std::thread::spawn(move || {
                for round in 0..3 {
                    let path = format!("/client/{i}/{round}");
                    let response = client.request("PUT", &path, "{\"n\": 1}");
                    assert_eq!(response.status, 200);
                    assert!(response.body_text().contains(&path));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(server.paths_seen().len(), 150);
}

#[test]
fn clients_over_the_connection_limit_get_503() {
    let options = ServerOptions {
        max_connections: 2,
        ..ServerOptions::default()
    };
    let server = EchoServer::start(options);
    let mut first = server.client();
    let mut second = server.client();
    assert_eq!(first.request("GET", "/1", "").status, 200);
    assert_eq!(second.request("GET", "/2", "").status, 200);
    let mut third = server.client();
    let refused = third.response();
    assert_eq!(refused.status, 503);
    assert!(refused.fault_message().contains("limit is 2"));
    drop(first);
    // The freed slot is taken again (the server notices the hang-up).
    let deadline = Instant::now() + common::TIMEOUT;
    loop {
        let mut retry = server.client();
        let response = retry.request("GET", "/3", "");
        if response.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn slow_reader_of_a_large_response_does_not_block_others() {
    let server = EchoServer::start(ServerOptions::default());
    let size = 4 * 1024 * 1024;
    let mut slow = server.client();
    slow.send(format!("GET /big/{size} HTTP/1.1\r\n\r\n").as_bytes());
    // Make sure the VMM answered before others are served: the answer now
    // sits in the server's buffer, far larger than the socket's.
    let deadline = Instant::now() + common::TIMEOUT;
    while server.paths_seen().is_empty() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    for i in 0..10 {
        assert_eq!(
            server
                .client()
                .request("GET", &format!("/fast/{i}"), "")
                .status,
            200
        );
    }
    let response = slow.response();
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), size + 2);
    assert!(response.body[1..=size].iter().all(|&b| b == b'x'));
    assert_eq!(slow.request("GET", "/after", "").status, 200);
}

#[test]
fn a_busy_vmm_does_not_stop_the_server_from_reading() {
    let dir = TempDir::new().unwrap();
    let path = dir.as_path().join("api.sock");
    let (handle, receiver) = start(&path, ServerOptions::default()).unwrap();
    let (release, wait) = channel::<()>();
    let vmm = std::thread::spawn(move || {
        let pending = receiver.recv().unwrap();
        wait.recv().unwrap();
        pending.respond(ApiResponse::no_content());
        // A request dropped unanswered is answered 500.
        drop(receiver.recv().unwrap());
    });
    let mut waiting = Client::connect(&path);
    waiting.send(b"PATCH /vm HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
    // While the VMM holds that request, the server still answers framing
    // errors and refusals on other connections.
    let mut other = Client::connect(&path);
    assert_eq!(other.request("GET", "/", "{}").status, 400);
    let mut bad = Client::connect(&path);
    bad.send(b"NOT HTTP\r\n\r\n");
    assert_eq!(bad.response().status, 400);
    release.send(()).unwrap();
    assert_eq!(waiting.response().status, 204);
    let dropped = waiting.request("GET", "/dropped", "");
    assert_eq!(dropped.status, 500);
    assert!(dropped.fault_message().contains("did not answer"));
    vmm.join().unwrap();
    drop(handle);
}

#[test]
fn vmm_event_fd_signals_waiting_requests() {
    let dir = TempDir::new().unwrap();
    let path = dir.as_path().join("api.sock");
    let (_handle, receiver) = start(&path, ServerOptions::default()).unwrap();
    let client = std::thread::spawn(move || Client::connect(&path).request("GET", "/", ""));
    // As a VMM loop would: wait for the event fd, then drain.
    let mut fds = [libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&receiver),
        events: libc::POLLIN,
        revents: 0,
    }];
    let mut handled = 0;
    let deadline = Instant::now() + common::TIMEOUT;
    while handled == 0 {
        assert!(Instant::now() < deadline, "no request signalled");
        // SAFETY: `fds` is a valid array of one pollfd for the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, 1000) };
        assert!(ready >= 0);
        if ready == 1 {
            handled += receiver.handle_pending(&mut |request: api::ApiRequest| {
                ApiResponse::json(format!("{{\"path\": \"{}\"}}", request.path))
            });
        }
    }
    let response = client.join().unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body_text(), "{\"path\": \"/\"}");
}

#[test]
fn requests_without_a_vmm_side_are_answered_500() {
    let dir = TempDir::new().unwrap();
    let path = dir.as_path().join("api.sock");
    let (_handle, receiver) = start(&path, ServerOptions::default()).unwrap();
    drop(receiver);
    let mut client = Client::connect(&path);
    let response = client.request("GET", "/", "");
    assert_eq!(response.status, 500);
    assert!(response.fault_message().contains("did not answer"));
    // The connection stays usable.
    assert_eq!(client.request("GET", "/", "").status, 500);
}
