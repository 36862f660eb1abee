//! `api-test-tool SOCKET METHOD PATH [BODY]`: one request to Pointsman's
//! API over its Unix socket, for test scripts in the test host (whose
//! busybox has no HTTP client for Unix sockets). Prints
//! `@@api <status> <body>` and exits 0 for a 2xx answer, 1 otherwise.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(socket), Some(method), Some(path)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: api-test-tool SOCKET METHOD PATH [BODY]");
        return ExitCode::from(2);
    };
    match request(socket, method, path, args.get(4).map(String::as_str)) {
        Ok((status, body)) => {
            println!("@@api {status} {body}");
            if (200..300).contains(&status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            println!("@@api-error {e}");
            ExitCode::FAILURE
        }
    }
}

fn request(
    socket: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    // Connection: close: the body is what follows the headers.
    let mut rest = String::new();
    reader.read_to_string(&mut rest)?;
    let body = rest
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}
