//! The API as the VMM sees it: a request (method, path, body) in, a
//! response (status, JSON body) out, with no HTTP detail on either side.

use crate::http::{fault_body, StatusCode};

/// The methods Firecracker's API uses; any other is answered 405 by the
/// server before it reaches the VMM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Put,
    Patch,
    Delete,
}

impl Method {
    /// The method for an HTTP method token (case-sensitive, as HTTP is).
    pub fn from_token(token: &str) -> Option<Method> {
        match token {
            "GET" => Some(Method::Get),
            "PUT" => Some(Method::Put),
            "PATCH" => Some(Method::Patch),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One request for the VMM. A GET never has a body (the server refuses
/// one); for the others an empty body means none was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRequest {
    pub method: Method,
    /// The request target as sent, query string included: [`crate::parse_path`]
    /// splits and checks it.
    pub path: String,
    pub body: Vec<u8>,
}

/// The VMM's answer to an [`ApiRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: StatusCode,
    /// A JSON document (or text of [`ApiResponse::content_type`]), or
    /// `None` for an empty body.
    pub body: Option<String>,
    /// The body's `Content-Type`: JSON but for the host manager's
    /// Prometheus text.
    pub content_type: &'static str,
}

/// The `Content-Type` of every JSON body.
pub const JSON: &str = "application/json";

impl ApiResponse {
    /// `200 OK` with a JSON body (already serialized).
    pub fn json(body: String) -> Self {
        ApiResponse {
            status: StatusCode::Ok,
            body: Some(body),
            content_type: JSON,
        }
    }

    /// `200 OK` with a body of another type (`text/plain; version=0.0.4`
    /// for Prometheus).
    pub fn text(content_type: &'static str, body: String) -> Self {
        ApiResponse {
            status: StatusCode::Ok,
            body: Some(body),
            content_type,
        }
    }

    /// `204 No Content`: Firecracker's answer to a successful PUT or PATCH.
    pub fn no_content() -> Self {
        ApiResponse {
            status: StatusCode::NoContent,
            body: None,
            content_type: JSON,
        }
    }

    /// An error answered with `{"fault_message": "<message>"}`.
    pub fn fault(status: StatusCode, message: impl std::fmt::Display) -> Self {
        ApiResponse {
            status,
            body: Some(fault_body(&message.to_string())),
            content_type: JSON,
        }
    }

    /// `400 Bad Request` with a `fault_message`: most of the API's errors.
    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        Self::fault(StatusCode::BadRequest, message)
    }
}

/// Something that answers API requests, on the VMM's thread.
pub trait Handler {
    fn handle(&mut self, request: ApiRequest) -> ApiResponse;
}

impl<F: FnMut(ApiRequest) -> ApiResponse> Handler for F {
    fn handle(&mut self, request: ApiRequest) -> ApiResponse {
        self(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_round_trip_and_others_are_unknown() {
        for m in [Method::Get, Method::Put, Method::Patch, Method::Delete] {
            assert_eq!(Method::from_token(m.as_str()), Some(m));
        }
        for token in ["POST", "HEAD", "get", "OPTIONS", ""] {
            assert_eq!(Method::from_token(token), None, "{token}");
        }
    }

    #[test]
    fn fault_response_carries_the_message() {
        let r = ApiResponse::bad_request("no \"id\"");
        assert_eq!(r.status, StatusCode::BadRequest);
        assert_eq!(
            r.body.as_deref(),
            Some("{\"fault_message\": \"no \\\"id\\\"\"}")
        );
    }
}
