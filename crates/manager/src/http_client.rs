//! A minimal HTTP/1.1 client over a Unix socket: one request per
//! connection (`Connection: close`), read to the end. Enough for the
//! daemon's requests to a VMM's API and for `pointsman vm` to the daemon.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::ManagerError;

/// Largest answer read: a console log is cut well below this.
const MAX_RESPONSE_BYTES: u64 = 16 << 20;

/// An answer: its status code and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    /// The `fault_message` of an error body, or the body itself.
    pub fn fault_message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["fault_message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| self.body.trim().to_owned())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends `method path` with an optional JSON body to the server on
/// `socket` and returns its answer; `timeout` bounds each read and write.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<Response, ManagerError> {
    let body = body.map(|b| Body {
        content_type: "application/json",
        bytes: b.as_bytes(),
    });
    request_with(socket, method, path, body, timeout)
}

/// A request's body and what it is.
#[derive(Clone, Copy, Debug)]
pub struct Body<'a> {
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

/// [`request`] with a body of any type (the console's input is raw bytes).
pub fn request_with(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Body>,
    timeout: Duration,
) -> Result<Response, ManagerError> {
    let connect_error = |source| ManagerError::Connect {
        path: socket.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(connect_error)?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(connect_error)?;
    let mut message = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n"
    )
    .into_bytes();
    let bytes = body.map_or(&[][..], |b| b.bytes);
    if let Some(body) = body.filter(|b| !b.bytes.is_empty()) {
        message.extend_from_slice(
            format!(
                "Content-Type: {}\r\nContent-Length: {}\r\n",
                body.content_type,
                body.bytes.len()
            )
            .as_bytes(),
        );
    }
    message.extend_from_slice(b"\r\n");
    message.extend_from_slice(bytes);
    stream.write_all(&message).map_err(connect_error)?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut raw)
        .map_err(connect_error)?;
    parse_response(&raw).map_err(|what| ManagerError::BadResponse {
        path: socket.to_owned(),
        what,
    })
}

/// The status and body of a whole response (the server closed after it).
fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {} bytes", raw.len()))?;
    let status_line = head.lines().next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    Ok(Response {
        status,
        body: body.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse() {
        let r = parse_response(
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 26\r\n\r\n{\"fault_message\": \"no x\"}",
        )
        .unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(r.fault_message(), "no x");
        assert!(!r.is_success());
        let r = parse_response(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert!(r.is_success() && r.body.is_empty());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }
}
