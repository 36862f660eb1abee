//! Writing responses on the wire, and the `{"fault_message": ...}` body
//! Firecracker's clients expect on every error.

use std::fmt::Write as _;

/// The statuses the API answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusCode {
    Ok,
    NoContent,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    InternalServerError,
    /// Only for a client over the connection limit.
    ServiceUnavailable,
}

impl StatusCode {
    pub fn code(self) -> u16 {
        match self {
            StatusCode::Ok => 200,
            StatusCode::NoContent => 204,
            StatusCode::BadRequest => 400,
            StatusCode::NotFound => 404,
            StatusCode::MethodNotAllowed => 405,
            StatusCode::PayloadTooLarge => 413,
            StatusCode::InternalServerError => 500,
            StatusCode::ServiceUnavailable => 503,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            StatusCode::Ok => "OK",
            StatusCode::NoContent => "No Content",
            StatusCode::BadRequest => "Bad Request",
            StatusCode::NotFound => "Not Found",
            StatusCode::MethodNotAllowed => "Method Not Allowed",
            StatusCode::PayloadTooLarge => "Payload Too Large",
            StatusCode::InternalServerError => "Internal Server Error",
            StatusCode::ServiceUnavailable => "Service Unavailable",
        }
    }
}

/// What the response's `Connection` header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// HTTP/1.1 default: no header.
    None,
    /// HTTP/1.0 client that asked to keep the connection.
    KeepAlive,
    /// The server closes after this response.
    Close,
}

/// Appends a whole response to `out`, a body as `content_type` (JSON but
/// for the host manager's metrics). A 204 carries
/// neither body nor `Content-Length` (RFC 9110 8.6 forbids the header
/// there); every other response has a `Content-Length`, 0 if no body.
pub fn encode_response(
    status: StatusCode,
    body: Option<&[u8]>,
    content_type: &str,
    connection: ConnectionHeader,
    out: &mut Vec<u8>,
) {
    let mut head = String::with_capacity(128);
    // Writing to a String cannot fail.
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\nServer: Pointsman API\r\n",
        status.code(),
        status.reason()
    );
    match connection {
        ConnectionHeader::None => {}
        ConnectionHeader::KeepAlive => head.push_str("Connection: keep-alive\r\n"),
        ConnectionHeader::Close => head.push_str("Connection: close\r\n"),
    }
    let body = if status == StatusCode::NoContent {
        None
    } else {
        Some(body.unwrap_or_default())
    };
    if let Some(body) = body {
        if !body.is_empty() {
            let _ = write!(head, "Content-Type: {content_type}\r\n");
        }
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
}

/// The interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// `{"fault_message": "<message>"}` with the message escaped as a JSON string.
pub fn fault_body(message: &str) -> String {
    let mut body = String::with_capacity(message.len() + 24);
    body.push_str("{\"fault_message\": \"");
    for c in message.chars() {
        match c {
            '"' => body.push_str("\\\""),
            '\\' => body.push_str("\\\\"),
            '\n' => body.push_str("\\n"),
            '\r' => body.push_str("\\r"),
            '\t' => body.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(body, "\\u{:04x}", c as u32);
            }
            c => body.push(c),
        }
    }
    body.push_str("\"}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(status: StatusCode, body: Option<&[u8]>, connection: ConnectionHeader) -> String {
        let mut out = Vec::new();
        encode_response(status, body, "application/json", connection, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ok_with_json_body() {
        let text = encode(StatusCode::Ok, Some(b"{}"), ConnectionHeader::None);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nServer: Pointsman API\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn another_content_type_is_named() {
        let mut out = Vec::new();
        let text = "text/plain; version=0.0.4";
        encode_response(
            StatusCode::Ok,
            Some(b"up 1\n"),
            text,
            ConnectionHeader::None,
            &mut out,
        );
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("\r\nContent-Type: text/plain; version=0.0.4\r\n"));
        assert!(out.ends_with("Content-Length: 5\r\n\r\nup 1\n"));
    }

    #[test]
    fn no_content_has_no_body_and_no_length() {
        let text = encode(
            StatusCode::NoContent,
            Some(b"ignored"),
            ConnectionHeader::Close,
        );
        assert_eq!(
            text,
            "HTTP/1.1 204 No Content\r\nServer: Pointsman API\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn empty_error_still_has_a_length() {
        let text = encode(StatusCode::NotFound, None, ConnectionHeader::KeepAlive);
        assert!(text.contains("Connection: keep-alive\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
        assert!(!text.contains("Content-Type"));
    }

    #[test]
    fn fault_message_is_escaped() {
        assert_eq!(
            fault_body("bad \"id\"\\\n\u{1}é"),
            "{\"fault_message\": \"bad \\\"id\\\"\\\\\\n\\u0001é\"}"
        );
    }
}
