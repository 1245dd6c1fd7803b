//! `http-probe`: a container health check for an HTTP service, in an image
//! that has no shell and no curl.
//!
//! ```text
//! http-probe http://127.0.0.1:8080/healthz
//! ```
//!
//! It sends one `GET` (HTTP/1.0, `Host` as written in the URL, no body) and
//! exits 0 if the status is 2xx, 1 for any other status or any failure to
//! connect, send or read within the time limit (5 s in all), and 2 for a URL
//! it cannot use. It prints one line saying what it found, which the
//! container engine keeps in the health log.
//!
//! Only plain `http://` to an address: the probes run inside the container,
//! against the service's own loopback port. It needs nothing but the
//! standard library, so the images build it with `rustc` alone
//! (`deploy/Containerfile.*`) and it is not a member of the workspace.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The whole probe, connect to last byte, must fit in this.
const TIME_LIMIT: Duration = Duration::from_secs(5);

/// The most of the reply that is read: the status line is all that counts.
const MAX_HEAD: usize = 4096;

/// Where to send the request: from `http://host:port/path`.
#[derive(Debug, PartialEq)]
struct Target {
    /// `host:port` as written, for `Host:` and for resolving.
    authority: String,
    /// The path and query, `/` when the URL has none.
    path: String,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url] = args.as_slice() else {
        eprintln!("usage: http-probe http://HOST:PORT/PATH   (exit 0 on a 2xx status)");
        return ExitCode::from(2);
    };
    let target = match parse_url(url) {
        Ok(target) => target,
        Err(reason) => {
            eprintln!("http-probe: {reason}");
            return ExitCode::from(2);
        }
    };
    match probe(&target) {
        Ok(status) if (200..300).contains(&status) => {
            println!("{url}: {status}");
            ExitCode::SUCCESS
        }
        Ok(status) => {
            println!("{url}: {status}, unhealthy");
            ExitCode::FAILURE
        }
        Err(reason) => {
            println!("{url}: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// Splits `http://host:port/path`; the port is required, since a probe
/// that silently used port 80 would test the wrong thing.
fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?} is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !has_port {
        return Err(format!(
            "{url:?} needs a host and a port (http://HOST:PORT/PATH)"
        ));
    }
    if path.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{url:?}: the path may not contain spaces or control characters"
        ));
    }
    Ok(Target {
        authority: authority.to_string(),
        path: path.to_string(),
    })
}

/// Sends the request and returns the reply's status code.
fn probe(target: &Target) -> Result<u16, String> {
    let deadline = Instant::now() + TIME_LIMIT;
    let addr = resolve(&target.authority)?;
    let mut stream = TcpStream::connect_timeout(&addr, TIME_LIMIT)
        .map_err(|err| format!("cannot connect to {addr}: {err}"))?;
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: http-probe\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream
        .set_write_timeout(Some(left(deadline)?))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|err| format!("cannot send the request: {err}"))?;
    let head = read_head(&mut stream, deadline)?;
    parse_status(&head)
}

/// The first address `authority` resolves to.
fn resolve(authority: &str) -> Result<SocketAddr, String> {
    authority
        .to_socket_addrs()
        .map_err(|err| format!("cannot resolve {authority}: {err}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to no address"))
}

/// Time left before `deadline`, or an error once it has passed.
fn left(deadline: Instant) -> Result<Duration, String> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("no answer within {} s", TIME_LIMIT.as_secs()))
}

/// Reads until the end of the status line (or of the reply), at most
/// [`MAX_HEAD`] bytes, before `deadline`.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < MAX_HEAD {
        stream
            .set_read_timeout(Some(left(deadline)?))
            .map_err(|err| format!("cannot set a read timeout: {err}"))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(err) => return Err(format!("cannot read the reply: {err}")),
        }
    }
    Ok(head)
}

/// The status code of `HTTP/1.x NNN ...`.
fn parse_status(head: &[u8]) -> Result<u16, String> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let version = words.next().unwrap_or_default();
    let code = words.next().and_then(|code| code.parse::<u16>().ok());
    match code {
        Some(code) if version.starts_with("HTTP/") && (100..600).contains(&code) => Ok(code),
        _ => Err(format!("not an HTTP reply: {:?}", line.trim_end())),
    }
}
