//! Who may use the dashboard, and how every answer is wrapped.
//!
//! The dashboard listens on loopback, but "only this machine can reach it"
//! is weaker than it sounds:
//!
//! - **DNS rebinding.** A page on `evil.example` can make its own name
//!   resolve to 127.0.0.1 a moment after the browser loaded it; from then
//!   on the browser treats the dashboard as *same-origin with the attacker's
//!   page*, so `Origin` checks pass and the attacker reads and posts at will.
//!   What gives it away is `Host`: the browser still sends
//!   `Host: evil.example:9880`. [`guard`] answers only requests whose `Host`
//!   names one of [`Access::hosts`] (by default the loopback names and the
//!   bound address, with the dashboard's port or no port), and `421
//!   Misdirected Request` to the rest, reads included: the cluster view
//!   names every node.
//! - **Every local process is a client.** Reads stay open on loopback, but
//!   a write (asking a node to leave moves data and shrinks the cluster)
//!   needs the **admin token**: `Authorization: Bearer <token>` on the JSON
//!   API, or the token typed into the confirmation page's form (a password
//!   field, posted with the request: no cookie to steal or to ride on). The
//!   token comes from the configuration (`admin_token`, `--admin-token`,
//!   `KEYCAFE_ADMIN_TOKEN`); without one, [`Access::from_config`] draws 128
//!   random bits and logs them once at start, at INFO. Tokens are compared
//!   in constant time.
//!
//! [`guard`] also sets the same security headers as the example web app on
//! every answer, refusals included: a Content-Security-Policy that allows no
//! script and no outside resource, `X-Frame-Options: DENY`,
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin`, and
//! `Cache-Control: no-store`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keycafe_core::addr;
use subtle::ConstantTimeEq;
use tracing::info;

use crate::config::Config;

/// Random bytes in a generated admin token (128 bits).
const GENERATED_TOKEN_BYTES: usize = 16;

/// No scripts, no outside resources, no framing, forms only to this site.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The Host names the dashboard answers to, and the token writes need.
pub struct Access {
    hosts: Vec<String>,
    token: String,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("hosts", &self.hosts)
            .field("token", &"<set>")
            .finish()
    }
}

impl Access {
    /// The access rules for a dashboard listening on `bound`: the hosts from
    /// `config.http_hosts`, or the defaults for that port; the token from
    /// `config.admin_token`, or a new random one, logged once at INFO.
    pub fn from_config(config: &Config, bound: SocketAddr) -> Access {
        let hosts = if config.http_hosts.is_empty() {
            default_hosts(bound, config.announce_host.as_deref())
        } else {
            config.http_hosts.clone()
        };
        let token = match &config.admin_token {
            Some(token) => token.clone(),
            None => {
                let token = generate_token();
                info!(
                    "dashboard admin token (generated for this run; set admin_token to choose one): {token}"
                );
                token
            }
        };
        Access::new(hosts, token)
    }

    /// Access for exactly these `hosts` (`name:port`) and this `token`.
    pub fn new(hosts: Vec<String>, token: String) -> Access {
        let hosts = hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        Access { hosts, token }
    }

    /// The Host values (`name:port`, lower case) requests may carry.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// True if `host` (a `Host` header) names one of [`Access::hosts`]: the
    /// same name, and the same port or none (HTTP/1.0 scripts often leave it
    /// out; what gives a rebinding page away is the name).
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let Some((name, port)) = split_host(&host) else {
            return false;
        };
        self.hosts.iter().any(|allowed| {
            split_host(allowed).is_some_and(|(allowed_name, allowed_port)| {
                allowed_name == name && port.is_none_or(|port| Some(port) == allowed_port)
            })
        })
    }

    /// True if `offered` is the admin token. Constant time in the token's
    /// contents (a wrong length is refused at once; the length is no secret).
    pub fn token_matches(&self, offered: &str) -> bool {
        bool::from(offered.as_bytes().ct_eq(self.token.as_bytes()))
    }

    /// True if the headers carry `Authorization: Bearer <the admin token>`.
    pub fn bearer_matches(&self, headers: &HeaderMap) -> bool {
        headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().split_once(' '))
            .is_some_and(|(scheme, token)| {
                scheme.eq_ignore_ascii_case("bearer") && self.token_matches(token.trim())
            })
    }
}

/// `name[:port]` split in two; `None` if the port is not a number. An IPv6
/// name keeps its brackets.
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    if host.ends_with(']') || !host.contains(':') {
        return (!host.is_empty()).then_some((host, None));
    }
    let (name, port) = host.rsplit_once(':')?;
    Some((name, Some(port.parse().ok()?)))
}

/// `127.0.0.1:<port>`, `localhost:<port>`, `[::1]:<port>`, the bound
/// address itself unless it is every address (`0.0.0.0`, `::`), and the
/// announced host.
fn default_hosts(bound: SocketAddr, announced: Option<&str>) -> Vec<String> {
    let port = bound.port();
    let mut hosts = vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ];
    let own = (!bound.ip().is_unspecified()).then(|| bound.to_string());
    // A Host header writes an IPv6 address in brackets.
    let announced = announced.map(|host| match addr::unbracket(host) {
        v6 if v6.contains(':') => format!("[{v6}]:{port}"),
        name => format!("{name}:{port}"),
    });
    for host in own.into_iter().chain(announced) {
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts
}

/// 128 random bits from the operating system's generator, as hex.
fn generate_token() -> String {
    let bytes: [u8; GENERATED_TOKEN_BYTES] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The middleware around every route: refuses a foreign `Host`, then adds
/// the security headers to whatever the route answered.
pub async fn guard(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    // HTTP/1.1 carries the name in `Host`; HTTP/2 in the URI's authority.
    let host = request
        .headers()
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    let mut response = match host {
        Some(host) if access.host_allowed(host) => next.run(request).await,
        _ => misdirected(),
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (CONTENT_SECURITY_POLICY, CSP),
        (X_FRAME_OPTIONS, "DENY"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "same-origin"),
        (CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The answer to a request for a name the dashboard does not serve. It
/// does not echo the name or list the allowed ones.
fn misdirected() -> Response {
    (
        StatusCode::MISDIRECTED_REQUEST,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        "421 Misdirected Request: this coordinator's dashboard does not answer to that Host \
         name. Use http://127.0.0.1:<port>/ (or a name listed in the coordinator's \
         http_hosts setting).\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_hosts_are_the_loopback_names_and_the_bound_address() {
        let access = Access::from_config(
            &Config {
                admin_token: Some("t".into()),
                ..Config::default()
            },
            "127.0.0.1:9880".parse().unwrap(),
        );
        assert_eq!(
            access.hosts(),
            ["127.0.0.1:9880", "localhost:9880", "[::1]:9880"]
        );
        assert!(access.host_allowed("LOCALHOST:9880"));
        assert!(
            access.host_allowed("127.0.0.1"),
            "no port: the name decides"
        );
        assert!(access.host_allowed("[::1]"));
        for foreign in [
            "evil.example:9880",
            "evil.example",
            "localhost:9881",
            "localhost:x",
            "127.0.0.1.evil.example:9880",
            "",
        ] {
            assert!(!access.host_allowed(foreign), "{foreign}");
        }
        let bound_elsewhere =
            Access::from_config(&Config::default(), "10.1.2.3:9880".parse().unwrap());
        assert!(bound_elsewhere.host_allowed("10.1.2.3:9880"));
    }

    #[test]
    fn the_announced_host_is_a_default_and_every_address_is_not() {
        for (announced, header) in [("coord-1", "coord-1:9880"), ("fd00::5", "[fd00::5]:9880")] {
            let config = Config {
                announce_host: Some(announced.into()),
                ..Config::default()
            };
            let access = Access::from_config(&config, "0.0.0.0:9880".parse().unwrap());
            assert!(access.host_allowed(header), "{header}");
            assert!(!access.host_allowed("0.0.0.0:9880"));
            assert_eq!(access.hosts().len(), 4, "{:?}", access.hosts());
        }
    }

    #[test]
    fn configured_hosts_replace_the_defaults() {
        let config = Config {
            http_hosts: vec!["Dash.Example:443".into()],
            ..Config::default()
        };
        let access = Access::from_config(&config, "127.0.0.1:9880".parse().unwrap());
        assert!(access.host_allowed("dash.example:443"));
        assert!(!access.host_allowed("127.0.0.1:9880"));
    }

    #[test]
    fn generated_tokens_are_128_random_bits_in_hex() {
        let (a, b) = (generate_token(), generate_token());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn tokens_match_exactly() {
        let access = Access::new(vec![], "s3cret-token".into());
        assert!(access.token_matches("s3cret-token"));
        for wrong in ["", "s3cret", "s3cret-token ", "S3CRET-TOKEN"] {
            assert!(!access.token_matches(wrong), "{wrong:?}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("bearer s3cret-token"),
        );
        assert!(access.bearer_matches(&headers));
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret-token"),
        );
        assert!(!access.bearer_matches(&headers));
        assert!(!access.bearer_matches(&HeaderMap::new()));
        assert!(!format!("{access:?}").contains("s3cret"));
    }
}
