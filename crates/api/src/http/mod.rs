//! The HTTP/1.1 wire format: request parsing and response writing, with no
//! I/O inside so that unit tests and the fuzzer drive them with plain bytes.

pub mod parse;
pub mod response;

pub use parse::{HttpError, HttpRequest, Limits, RequestReader};
pub use response::{encode_response, fault_body, ConnectionHeader, StatusCode};
