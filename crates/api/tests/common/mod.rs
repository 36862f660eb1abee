//! A small HTTP client and an echo "VMM" for the server tests.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use api::{start, ApiRequest, ApiResponse, ApiServerHandle, Method, ServerOptions};
use vmm_sys_util::tempdir::TempDir;

/// Long enough for a loaded machine, short enough that a hang fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A server whose VMM side echoes each request as JSON and records it.
/// `/big/N` answers a JSON string of N bytes' worth.
pub struct EchoServer {
    pub handle: Option<ApiServerHandle>,
    pub path: PathBuf,
    pub seen: Arc<Mutex<Vec<ApiRequest>>>,
    vmm: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl EchoServer {
    pub fn start(options: ServerOptions) -> Self {
        let dir = TempDir::new().unwrap();
        let path = dir.as_path().join("api.sock");
        let (handle, receiver) = start(&path, options).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let vmm = std::thread::spawn(move || {
            while let Some(pending) = receiver.recv() {
                log.lock().unwrap().push(pending.request.clone());
                let response = echo(&pending.request);
                pending.respond(response);
            }
        });
        EchoServer {
            handle: Some(handle),
            path,
            seen,
            vmm: Some(vmm),
            _dir: dir,
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.path)
    }

    pub fn paths_seen(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.path.clone())
            .collect()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        drop(self.handle.take());
        if let Some(vmm) = self.vmm.take() {
            let _ = vmm.join();
        }
    }
}

fn echo(request: &ApiRequest) -> ApiResponse {
    if let Some(size) = request.path.strip_prefix("/big/") {
        let size: usize = size.parse().unwrap();
        return ApiResponse::json(format!("\"{}\"", "x".repeat(size)));
    }
    if request.method != Method::Get && request.body.is_empty() {
        return ApiResponse::no_content();
    }
    ApiResponse::json(format!(
        "{{\"method\": \"{}\", \"path\": \"{}\", \"body_len\": {}}}",
        request.method.as_str(),
        request.path,
        request.body.len()
    ))
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `fault_message` of an error body, checked to be exactly
    /// `{"fault_message": "..."}`.
    pub fn fault_message(&self) -> String {
        let text = self.body_text();
        let inner = text
            .strip_prefix("{\"fault_message\": \"")
            .and_then(|t| t.strip_suffix("\"}"))
            .unwrap_or_else(|| panic!("not a fault body: {text:?}"));
        assert_eq!(self.header("content-type"), Some("application/json"));
        inner.to_string()
    }
}

/// One client connection, with its own buffer so responses are cut
/// exactly where they end.
pub struct Client {
    pub stream: UnixStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(path: &Path) -> Self {
        let stream = UnixStream::connect(path).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends raw bytes; a server that already closed is not an error here
    /// (the test looks at what it answered).
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    pub fn request(&mut self, method: &str, path: &str, body: &str) -> Response {
        let mut wire = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
        if !body.is_empty() {
            wire.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        wire.push_str("\r\n");
        wire.push_str(body);
        self.send(wire.as_bytes());
        self.response()
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("reading a response: {e}"),
        }
    }

    /// Reads one whole response.
    pub fn response(&mut self) -> Response {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = parsed.parse(&self.buf).unwrap() {
                let status = parsed.code.unwrap();
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let length = headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse::<usize>().unwrap());
                let length = match (status, length) {
                    (100 | 204, None) => 0,
                    (_, Some(length)) => length,
                    (_, None) => panic!("response {status} without Content-Length"),
                };
                while self.buf.len() < head_len + length {
                    assert!(self.fill() > 0, "connection closed inside a response");
                }
                let body = self.buf[head_len..head_len + length].to_vec();
                self.buf.drain(..head_len + length);
                return Response {
                    status,
                    headers,
                    body,
                };
            }
            assert!(self.fill() > 0, "connection closed before a response");
        }
    }

    /// True if the server closed the connection (EOF) with nothing more sent.
    pub fn closed_by_server(&mut self) -> bool {
        self.buf.is_empty() && self.fill() == 0
    }
}
