//! A small HTTP/1.1 client for the API socket, as Firecracker's clients
//! talk to it: one request at a time on a kept-alive connection, bodies
//! framed by `Content-Length`. The tests panic on any I/O error through
//! the plain methods; the benches (`benches/api.rs`, `benches/snapshot.rs`,
//! which include this file) get the errors through the `try_` ones.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// An answer: its status and its body (empty for 204).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// Asserts the answer's status, showing the answer otherwise.
    #[track_caller]
    pub fn expect(self, status: u16) -> Answer {
        assert_eq!(self.status, status, "{self:?}");
        self
    }

    /// The `fault_message` of an error answer (empty if there is none).
    pub fn fault(&self) -> String {
        self.json()["fault_message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The body as JSON (`null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// A kept-alive connection to the API socket.
pub struct ApiClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// How long [`ApiClient::connect`] waits for the VMM to create the socket.
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// How often it tries meanwhile: often enough that the bench's start-up
/// wall time through the API is not the client's sleep.
const CONNECT_RETRY: Duration = Duration::from_millis(1);

impl ApiClient {
    /// Connects to `socket`, waiting up to 10 s for the VMM to create it.
    pub fn connect(socket: &Path) -> ApiClient {
        ApiClient::try_connect(socket)
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", socket.display()))
    }

    /// [`ApiClient::connect`], with the last error when it cannot.
    pub fn try_connect(socket: &Path) -> io::Result<ApiClient> {
        let deadline = Instant::now() + CONNECT_WAIT;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline => std::thread::sleep(CONNECT_RETRY),
                Err(e) => return Err(e),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        Ok(ApiClient {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one request and reads its answer.
    pub fn send(&mut self, method: &str, path: &str, body: Option<&str>) -> Answer {
        self.try_send(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// [`ApiClient::send`], with the error when the exchange fails.
    pub fn try_send(&mut self, method: &str, path: &str, body: Option<&str>) -> io::Result<Answer> {
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n");
        if let Some(body) = body {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        } else {
            request.push_str("\r\n");
        }
        self.writer.write_all(request.as_bytes())?;
        self.read_answer()
    }

    /// [`ApiClient::try_send`], checking the answer's status: the error
    /// names the request and the answer it got instead.
    pub fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        status: u16,
    ) -> Result<Answer, String> {
        let answer = self
            .try_send(method, path, body)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if answer.status == status {
            Ok(answer)
        } else {
            Err(format!(
                "{method} {path}: {} (not {status}): {}",
                answer.status, answer.body
            ))
        }
    }

    pub fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, None)
    }

    pub fn put(&mut self, path: &str, body: &str) -> Answer {
        self.send("PUT", path, Some(body))
    }

    pub fn patch(&mut self, path: &str, body: &str) -> Answer {
        self.send("PATCH", path, Some(body))
    }

    /// `PUT /boot-source` with `kernel` and `boot_args` (for the test
    /// guests, the command), then `PUT /machine-config` with one vCPU and
    /// 64 MiB, as Firecracker's getting-started guide configures a guest.
    pub fn configure(&mut self, kernel: &Path, boot_args: &str) {
        let boot = format!(
            r#"{{"kernel_image_path": "{}", "boot_args": "{boot_args}"}}"#,
            kernel.display()
        );
        self.put("/boot-source", &boot).expect(204);
        self.put(
            "/machine-config",
            r#"{"vcpu_count": 1, "mem_size_mib": 64}"#,
        )
        .expect(204);
    }

    /// Writes raw bytes, for malformed requests.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Answer {
        let answer = self
            .writer
            .write_all(bytes)
            .and_then(|()| self.read_answer());
        answer.unwrap_or_else(|e| panic!("raw request: {e}"))
    }

    fn read_answer(&mut self) -> io::Result<Answer> {
        let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line)?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("bad header {line:?}")))?;
                }
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body)?;
        let body = String::from_utf8(body).map_err(|e| bad(format!("body not UTF-8: {e}")))?;
        Ok(Answer { status, body })
    }
}
