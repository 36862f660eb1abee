//! Feeds arbitrary bytes to the API server's request parser, cut into
//! fuzzer-chosen pieces as a socket might deliver them: it must never
//! panic, and whatever the cuts, it must yield the same requests and stop
//! at the same error as when it gets all the bytes at once.
//!
//! Raw bytes rarely get past the request line in a short run, so half the
//! inputs are read as a list of HTTP fragments (methods, paths, header
//! names, CRLFs) mixed with raw bytes: valid and nearly valid requests,
//! pipelined ones and bodies come within the fuzzer's reach at once.
#![no_main]

use api::http::{HttpError, HttpRequest, Limits, RequestReader};
use libfuzzer_sys::fuzz_target;

/// Small limits, so the fuzzer reaches them.
const LIMITS: Limits = Limits {
    max_payload_bytes: 128,
    max_header_bytes: 512,
};

/// How many leading bytes choose the cuts; the first also the mode.
const CUT_BYTES: usize = 4;

/// What a request is made of; a fragment byte below 0x80 picks one.
const FRAGMENTS: &[&[u8]] = &[
    b"GET ",
    b"PUT ",
    b"PATCH ",
    b"DELETE ",
    b"POST ",
    b"/",
    b"/drives/rootfs",
    b"/vm/config",
    b"/machine-config?x=1",
    b" HTTP/1.1",
    b" HTTP/1.0",
    b"\r\n",
    b"\r\n\r\n",
    b"Content-Length: ",
    b"Content-Length: 5\r\n",
    b"Content-Length: 200\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"Host: localhost\r\n",
    b": ",
    b"0",
    b"7",
    b"{\"a\": 1}",
];

/// Expands fragment bytes: below 0x80 a fragment, otherwise the next byte
/// as it is.
fn from_fragments(data: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut bytes = data.iter();
    while let Some(&b) = bytes.next() {
        if b < 0x80 {
            wire.extend_from_slice(FRAGMENTS[usize::from(b) % FRAGMENTS.len()]);
        } else if let Some(&raw) = bytes.next() {
            wire.push(raw);
        }
    }
    wire
}

/// Every request `reader` can give now, then how it stopped: `None` for
/// "needs more bytes", `Some(error)` for a refused stream.
fn drain(reader: &mut RequestReader, out: &mut Vec<HttpRequest>) -> Option<HttpError> {
    loop {
        // Asked as the server asks, between requests; must not panic.
        let _ = reader.take_continue();
        match reader.next_request() {
            Ok(Some(request)) => {
                assert!(request.body.len() <= LIMITS.max_payload_bytes);
                assert!(request.target.starts_with('/'));
                if let Ok(route) = api::parse_path(&request.target) {
                    let _ = route.id();
                }
                out.push(request);
            }
            Ok(None) => return None,
            Err(error) => return Some(error),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (cuts, rest) = data.split_at(data.len().min(CUT_BYTES));
    let wire = match cuts.first() {
        Some(first) if first & 1 == 1 => from_fragments(rest),
        _ => rest.to_vec(),
    };
    let wire = wire.as_slice();

    let mut whole = RequestReader::new(LIMITS);
    whole.push(wire);
    let mut expected = Vec::new();
    let expected_end = drain(&mut whole, &mut expected);

    let mut pieces = RequestReader::new(LIMITS);
    let mut got = Vec::new();
    let mut got_end = None;
    let mut rest = wire;
    let mut i = 0;
    while !rest.is_empty() {
        // A cut byte of 0 sends the rest at once; otherwise 1..=255 bytes.
        let size = match cuts.get(i % CUT_BYTES).copied().unwrap_or(0) {
            0 => rest.len(),
            n => usize::from(n).min(rest.len()),
        };
        i += 1;
        let (piece, tail) = rest.split_at(size);
        rest = tail;
        pieces.push(piece);
        got_end = drain(&mut pieces, &mut got);
        if got_end.is_some() {
            break;
        }
    }
    assert_eq!(got, expected);
    assert_eq!(got_end, expected_end);
});
