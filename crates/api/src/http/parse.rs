//! Incremental HTTP/1.1 request parsing: bytes come in as the socket gives
//! them, whole requests come out.
//!
//! `httparse` reads the request line and headers; framing (only
//! `Content-Length`), the limits and keep-alive are decided here. Every
//! error is a framing error after which the byte stream cannot be trusted,
//! so the connection answers it and closes.

use thiserror::Error;

use super::response::StatusCode;

/// Most headers a request may carry; `httparse` needs a fixed array.
pub const MAX_HEADERS: usize = 32;

/// Default limit on a request's body, Firecracker's
/// `--http-api-max-payload-size` default.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 51_200;

/// Default limit on the request line plus headers.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 8_192;

/// A read buffer larger than this is freed once empty.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Sizes a request may not exceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest body accepted; a larger `Content-Length` is answered 413.
    pub max_payload_bytes: usize,
    /// Largest request line plus headers accepted.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// Why a byte stream is not a valid request. Each one ends the connection.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HttpError {
    #[error("malformed HTTP request: {0}")]
    Malformed(String),
    #[error("request line and headers are over the limit of {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("invalid Content-Length header: {0:?}")]
    BadContentLength(String),
    #[error("conflicting Content-Length headers")]
    ConflictingContentLength,
    #[error("Transfer-Encoding is not supported: send the body with a Content-Length header")]
    TransferEncoding,
    #[error("request body of {size} bytes is over the limit of {limit} bytes")]
    PayloadTooLarge { size: u64, limit: usize },
    #[error("request target {0:?} is not an absolute path")]
    BadTarget(String),
}

impl HttpError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::PayloadTooLarge { .. } => StatusCode::PayloadTooLarge,
            _ => StatusCode::BadRequest,
        }
    }
}

/// One complete request as it came off the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method token exactly as sent (`GET`, `PUT`, ...).
    pub method: String,
    /// The request target, an absolute path possibly with a query.
    pub target: String,
    pub body: Vec<u8>,
    /// The client wants the connection closed after the response
    /// (`Connection: close`, or HTTP/1.0 without `keep-alive`).
    pub close: bool,
    /// HTTP/1.0 client asking to keep the connection: the response must
    /// say `Connection: keep-alive`.
    pub http10_keep_alive: bool,
}

/// What the request line and headers said, kept while the body arrives so
/// that they are not parsed again on every read.
#[derive(Clone, Debug)]
struct Head {
    len: usize,
    method: String,
    target: String,
    content_length: usize,
    close: bool,
    http10_keep_alive: bool,
    expect_continue: bool,
}

/// Accumulates a connection's bytes and cuts them into requests.
#[derive(Debug)]
pub struct RequestReader {
    limits: Limits,
    buf: Vec<u8>,
    head: Option<Head>,
    continue_sent: bool,
}

impl RequestReader {
    pub fn new(limits: Limits) -> Self {
        RequestReader {
            limits,
            buf: Vec::new(),
            head: None,
            continue_sent: false,
        }
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received and not yet taken as part of a request.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// True if the client sent `Expect: 100-continue` for the request now
    /// being read and is waiting for a `100 Continue` before its body
    /// (curl does that for bodies over 1 KiB). Answers true once per request.
    pub fn take_continue(&mut self) -> bool {
        match &self.head {
            Some(head) if head.expect_continue && !self.continue_sent => {
                let body_missing = self.buf.len() < head.len.saturating_add(head.content_length);
                self.continue_sent = body_missing;
                body_missing
            }
            _ => false,
        }
    }

    /// The next complete request, `Ok(None)` if more bytes are needed.
    pub fn next_request(&mut self) -> Result<Option<HttpRequest>, HttpError> {
        let head = match self.head.take() {
            Some(head) => head,
            None => match parse_head(&self.buf, self.limits)? {
                Some(head) => head,
                None => return Ok(None),
            },
        };
        let end = head.len + head.content_length;
        if self.buf.len() < end {
            self.head = Some(head);
            return Ok(None);
        }
        let body = self.buf[head.len..end].to_vec();
        self.buf.drain(..end);
        // A large body's buffer is not kept while the connection idles.
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
        self.continue_sent = false;
        Ok(Some(HttpRequest {
            method: head.method,
            target: head.target,
            body,
            close: head.close,
            http10_keep_alive: head.http10_keep_alive,
        }))
    }
}

/// Parses the request line and headers at the start of `buf`, `Ok(None)`
/// if they are not all there yet.
fn parse_head(buf: &[u8], limits: Limits) -> Result<Option<Head>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    // Only the first `max_header_bytes` are looked at, so the verdict on a
    // head is the same however its bytes were cut by the socket (the
    // `http_request` fuzz target checks that).
    let window = &buf[..buf.len().min(limits.max_header_bytes)];
    let len = match request.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if buf.len() > window.len() {
                return Err(HttpError::HeadersTooLarge {
                    limit: limits.max_header_bytes,
                });
            }
            return Ok(None);
        }
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    // httparse fills all three once the head is complete.
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(HttpError::Malformed("incomplete request line".into()));
    };
    if !target.starts_with('/') {
        return Err(HttpError::BadTarget(target.to_string()));
    }

    let mut content_length: Option<u64> = None;
    let mut said_close = false;
    let mut said_keep_alive = false;
    let mut expect_continue = false;
    for header in request.headers.iter() {
        let value = String::from_utf8_lossy(header.value);
        let value = value.trim();
        if header.name.eq_ignore_ascii_case("content-length") {
            let length = parse_content_length(value)?;
            if content_length.is_some_and(|seen| seen != length) {
                return Err(HttpError::ConflictingContentLength);
            }
            content_length = Some(length);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::TransferEncoding);
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    said_close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    said_keep_alive = true;
                }
            }
        } else if header.name.eq_ignore_ascii_case("expect") {
            expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
    }
    // HTTP/1.0 closes unless asked not to; `close` wins over `keep-alive`.
    let http10_keep_alive = version == 0 && said_keep_alive && !said_close;
    let close = said_close || (version == 0 && !http10_keep_alive);

    let size = content_length.unwrap_or(0);
    let content_length = match usize::try_from(size) {
        Ok(n) if n <= limits.max_payload_bytes => n,
        _ => {
            return Err(HttpError::PayloadTooLarge {
                size,
                limit: limits.max_payload_bytes,
            })
        }
    };
    Ok(Some(Head {
        len,
        method: method.to_string(),
        target: target.to_string(),
        content_length,
        close,
        http10_keep_alive,
        expect_continue,
    }))
}

/// Digits only: a sign, spaces inside or a list would let two parsers
/// disagree on where the body ends.
fn parse_content_length(value: &str) -> Result<u64, HttpError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::BadContentLength(value.to_string()));
    }
    value
        .parse::<u64>()
        .map_err(|_| HttpError::BadContentLength(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> RequestReader {
        RequestReader::new(Limits::default())
    }

    fn parse_all(bytes: &[u8]) -> Result<Option<HttpRequest>, HttpError> {
        let mut r = reader();
        r.push(bytes);
        r.next_request()
    }

    #[test]
    fn get_without_body() {
        let req = parse_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(req.target, "/");
        assert!(req.body.is_empty());
        assert!(!req.close);
    }

    #[test]
    fn put_with_body_arrives_in_pieces() {
        let wire = b"PUT /drives/root HTTP/1.1\r\nContent-Length: 11\r\n\r\n{\"a\": true}";
        let mut r = reader();
        for (i, byte) in wire.iter().enumerate() {
            assert_eq!(r.next_request(), Ok(None), "complete too early at {i}");
            r.push(&[*byte]);
        }
        let req = r.next_request().unwrap().unwrap();
        assert_eq!(req.body, b"{\"a\": true}");
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn pipelined_requests_come_out_in_order() {
        let mut r = reader();
        r.push(b"GET /a HTTP/1.1\r\n\r\nPUT /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /c HTTP/1.1\r\n");
        assert_eq!(r.next_request().unwrap().unwrap().target, "/a");
        let b = r.next_request().unwrap().unwrap();
        assert_eq!((b.target.as_str(), b.body.as_slice()), ("/b", &b"hi"[..]));
        assert_eq!(r.next_request(), Ok(None));
        r.push(b"\r\n");
        assert_eq!(r.next_request().unwrap().unwrap().target, "/c");
    }

    #[test]
    fn connection_close_and_http10() {
        let req = parse_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(req.close);
        let req = parse_all(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(req.close && !req.http10_keep_alive);
        let req = parse_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!req.close && req.http10_keep_alive);
    }

    #[test]
    fn header_without_colon_is_malformed() {
        let err = parse_all(b"GET / HTTP/1.1\r\nNoColonHere\r\n\r\n").unwrap_err();
        assert!(matches!(err, HttpError::Malformed(_)), "{err:?}");
        assert_eq!(err.status(), StatusCode::BadRequest);
    }

    #[test]
    fn bad_request_lines() {
        for wire in [
            &b"GARBAGE\r\n\r\n"[..],
            b"GET / HTTP/9.9\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET /\r\n\r\n",
            b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                parse_all(wire).is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        assert_eq!(
            parse_all(b"GET http://localhost/ HTTP/1.1\r\n\r\n"),
            Err(HttpError::BadTarget("http://localhost/".into()))
        );
    }

    #[test]
    fn bad_content_lengths() {
        for value in [
            "abc",
            "-1",
            "+5",
            "1 2",
            "",
            "5,5",
            "99999999999999999999999",
        ] {
            let wire = format!("PUT /x HTTP/1.1\r\nContent-Length: {value}\r\n\r\n");
            let err = parse_all(wire.as_bytes()).unwrap_err();
            assert!(
                matches!(err, HttpError::BadContentLength(_)),
                "{value:?}: {err:?}"
            );
        }
        let wire = b"PUT /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(parse_all(wire), Err(HttpError::ConflictingContentLength));
        let wire = b"PUT /x HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab";
        assert_eq!(parse_all(wire).unwrap().unwrap().body, b"ab");
    }

    #[test]
    fn chunked_is_refused() {
        let wire = b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n";
        assert_eq!(parse_all(wire), Err(HttpError::TransferEncoding));
    }

    #[test]
    fn payload_limit_is_checked_before_the_body_arrives() {
        let mut r = RequestReader::new(Limits {
            max_payload_bytes: 10,
            max_header_bytes: 1024,
        });
        r.push(b"PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789");
        assert_eq!(r.next_request().unwrap().unwrap().body.len(), 10);
        r.push(b"PUT /x HTTP/1.1\r\nContent-Length: 11\r\n\r\n");
        let err = r.next_request().unwrap_err();
        assert_eq!(
            err,
            HttpError::PayloadTooLarge {
                size: 11,
                limit: 10
            }
        );
        assert_eq!(err.status(), StatusCode::PayloadTooLarge);
    }

    #[test]
    fn header_limit_holds_for_partial_and_complete_heads() {
        let limits = Limits {
            max_payload_bytes: 100,
            max_header_bytes: 64,
        };
        let mut r = RequestReader::new(limits);
        r.push(b"GET / HTTP/1.1\r\nX-Long: ");
        assert_eq!(r.next_request(), Ok(None));
        r.push(&[b'a'; 64]);
        assert_eq!(
            r.next_request(),
            Err(HttpError::HeadersTooLarge { limit: 64 })
        );
        let mut r = RequestReader::new(limits);
        r.push(format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "b".repeat(50)).as_bytes());
        assert_eq!(
            r.next_request(),
            Err(HttpError::HeadersTooLarge { limit: 64 })
        );
    }

    #[test]
    fn verdict_on_a_long_head_does_not_depend_on_how_it_arrives() {
        let limits = Limits {
            max_payload_bytes: 100,
            max_header_bytes: 64,
        };
        // Over the limit before the bad header name: too large, whether
        // it comes at once or the first 65 bytes come alone.
        let wire = format!(
            "GET / HTTP/1.1\r\nX-Long: {}\r\nBad Name: v\r\n\r\n",
            "a".repeat(60)
        );
        let mut whole = RequestReader::new(limits);
        whole.push(wire.as_bytes());
        let mut cut = RequestReader::new(limits);
        cut.push(&wire.as_bytes()[..65]);
        let expected = Err(HttpError::HeadersTooLarge { limit: 64 });
        assert_eq!(cut.next_request(), expected);
        assert_eq!(whole.next_request(), expected);
    }

    #[test]
    fn too_many_headers_is_malformed() {
        let mut wire = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            wire.push_str(&format!("X-{i}: v\r\n"));
        }
        wire.push_str("\r\n");
        assert!(matches!(
            parse_all(wire.as_bytes()),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn expect_continue_is_announced_once_while_the_body_is_missing() {
        let mut r = reader();
        r.push(b"PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(r.next_request(), Ok(None));
        assert!(r.take_continue());
        assert!(!r.take_continue());
        r.push(b"abc");
        assert_eq!(r.next_request().unwrap().unwrap().body, b"abc");
        // The body came with the head: no 100 Continue needed.
        r.push(b"PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz");
        assert_eq!(r.next_request().unwrap().unwrap().body, b"z");
        assert!(!r.take_continue());
    }
}
