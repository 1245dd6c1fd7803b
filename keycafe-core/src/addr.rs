//! Addresses as Keycafe writes them: one `host:port` word, split at its
//! **last** colon, with an IPv6 host written without brackets (`::1:9814`)
//! as Redis writes it in `MOVED`, `ASK` and `CLUSTER NODES`. A host may
//! also be a name (`node-1:9814`), resolved when connecting.
//!
//! Brackets are accepted on the way in (`[::1]:9814`, as a person or a
//! URL writes it) and never written.

use std::net::IpAddr;

/// `host:port` → `(host, port)`: split at the last colon, brackets around
/// the host removed. `None` unless the host is non-empty and the port a
/// number from 1 to 65535.
pub fn split(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let host = unbracket(host);
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port > 0).then_some((host, port))
}

/// `(host, port)` → `host:port`, the form a node announces (no brackets).
pub fn join(host: &str, port: u16) -> String {
    format!("{}:{port}", unbracket(host))
}

/// `[::1]` → `::1`; anything else unchanged.
pub fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host)
}

/// The IP address a `bind` setting names (`127.0.0.1`, `::`, `[::1]`).
pub fn parse_ip(host: &str) -> Option<IpAddr> {
    unbracket(host).parse().ok()
}

/// True for a host that can be announced: a name (letters, digits, `-`,
/// `_`, `.`) or an IP address (IPv6 with or without brackets), and not one
/// that names every address ([`is_unspecified`]).
pub fn is_announceable(host: &str) -> bool {
    let host = unbracket(host);
    let name = host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    (name || parse_ip(host).is_some()) && !is_unspecified(host)
}

/// True for a host that names no single machine: `0.0.0.0`, `::` (which a
/// server binds to listen everywhere) and the empty host. Such a host must
/// never be announced: other machines cannot reach a node by it.
pub fn is_unspecified(host: &str) -> bool {
    let host = unbracket(host);
    host.is_empty() || parse_ip(host).is_some_and(|ip| ip.is_unspecified())
}

/// True for a host that only this machine reaches: `127.0.0.0/8`, `::1`
/// and `localhost`.
pub fn is_loopback(host: &str) -> bool {
    let host = unbracket(host);
    host.eq_ignore_ascii_case("localhost") || parse_ip(host).is_some_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_last_colon() {
        assert_eq!(split("127.0.0.1:9814"), Some(("127.0.0.1", 9814)));
        assert_eq!(split("::1:9814"), Some(("::1", 9814)));
        assert_eq!(split("[::1]:9814"), Some(("::1", 9814)));
        assert_eq!(split("fe80::2:7000"), Some(("fe80::2", 7000)));
        assert_eq!(split("node-1:9814"), Some(("node-1", 9814)));
        for bad in [
            "",
            "9814",
            ":9814",
            "host:",
            "host:0",
            "host:65536",
            "host:x",
        ] {
            assert_eq!(split(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn joins_without_brackets_and_round_trips() {
        assert_eq!(join("::1", 9814), "::1:9814");
        assert_eq!(join("[::1]", 9814), "::1:9814");
        assert_eq!(join("10.0.0.5", 7000), "10.0.0.5:7000");
        for (host, port) in [("::1", 1), ("2001:db8::7", 65535), ("a.example", 80)] {
            assert_eq!(split(&join(host, port)), Some((host, port)));
        }
    }

    #[test]
    fn tells_unspecified_and_loopback_hosts() {
        for host in ["0.0.0.0", "::", "[::]", ""] {
            assert!(is_unspecified(host), "{host:?}");
        }
        for host in ["127.0.0.1", "::1", "10.0.0.1", "node-1"] {
            assert!(!is_unspecified(host), "{host:?}");
        }
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "localhost",
            "LocalHost",
        ] {
            assert!(is_loopback(host), "{host:?}");
        }
        for host in ["0.0.0.0", "::", "10.0.0.1", "node-1", "localhost.example"] {
            assert!(!is_loopback(host), "{host:?}");
        }
    }

    #[test]
    fn announceable_hosts_are_names_and_addresses() {
        for host in [
            "node-1",
            "db.example.com",
            "10.0.0.7",
            "fd00::7",
            "[fd00::7]",
            "::1",
        ] {
            assert!(is_announceable(host), "{host:?}");
        }
        for host in [
            "", "0.0.0.0", "::", "[::]", "a b", "[::1", "fd00::7]", "a/b", "x:y", "ü",
        ] {
            assert!(!is_announceable(host), "{host:?}");
        }
    }
}
