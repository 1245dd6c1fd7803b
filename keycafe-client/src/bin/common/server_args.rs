//! The flags that name the server, shared by `keycafe-cli` and
//! `keycafe-benchmark`: `-h`, `-p` and `-a`, as redis-cli and
//! redis-benchmark spell them (which is why neither tool has `-h` for help),
//! and the TLS flags `--tls`, `--cacert`, `--cert`, `--key` and `--sni`,
//! also as they spell them.

use std::path::PathBuf;

use anyhow::Context;
use keycafe_core::tls::{self, Connector};

use crate::wire::join_host_port;

/// Where to connect, and the password to AUTH with there.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Server hostname (in cluster mode, the first node asked).
    #[arg(short = 'h', long = "host", default_value = "127.0.0.1")]
    pub host: String,
    /// Server port.
    #[arg(short = 'p', long = "port", default_value_t = 9814)]
    pub port: u16,
    /// Password to AUTH with on every connection.
    #[arg(short = 'a', long = "pass")]
    pub password: Option<String>,
    /// Connect over TLS (needs --cacert).
    #[arg(long)]
    pub tls: bool,
    /// CA certificate (PEM) to verify the server's certificate with.
    #[arg(long, requires = "tls")]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM), for a server that requires one.
    #[arg(long, requires_all = ["tls", "key"])]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(long, requires_all = ["tls", "cert"])]
    pub key: Option<PathBuf>,
    /// Server name to verify the certificate against (and send as SNI)
    /// instead of the host.
    #[arg(long, requires = "tls")]
    pub sni: Option<String>,
}

impl ServerArgs {
    /// `host:port`, with an IPv6 host in brackets.
    pub fn addr(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// The TLS settings the flags ask for, with their files read; `None`
    /// without `--tls`.
    pub fn tls_connector(&self) -> anyhow::Result<Option<Connector>> {
        if !self.tls {
            return Ok(None);
        }
        let ca = self
            .cacert
            .as_deref()
            .context("--tls needs --cacert: the CA certificate that signed the server's")?;
        let identity = self.cert.as_deref().zip(self.key.as_deref());
        let mut connector = Connector::new(tls::client_config(ca, identity)?);
        if let Some(name) = &self.sni {
            connector = connector.with_server_name(name)?;
        }
        Ok(Some(connector))
    }
}
