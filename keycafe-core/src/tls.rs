//! TLS for Keycafe's links (feature `tls`): certificates and keys from PEM
//! files, turned into rustls settings, and a client stream that is plain TCP
//! or TLS.
//!
//! Every process that speaks TLS (the node's client port, the client library,
//! `keycafe-cli` and `keycafe-benchmark`, the bus and the coordinator link)
//! loads its files here, so that they all accept the same
//! files and fail the same way: at start-up, with an error that names the file
//! and what was wrong with it, never at the first connection.
//!
//! What is verified:
//!
//! - A client checks the server's certificate chain against the CA file it
//!   was given (no system roots: Keycafe's certificates come from the
//!   operator's own CA) and checks that the certificate names the host it
//!   connected to, or the name given instead (SNI). An IP address is matched
//!   against the certificate's IP subject alternative names.
//! - A server with a client CA file ([`server_config`]'s `client_ca_file`)
//!   requires every client to present a certificate signed by that CA, as
//!   Redis's `tls-auth-clients yes` does. Without one, any client may connect
//!   and authenticates (if at all) with AUTH.
//!
//! The crypto provider is rustls's `ring`, chosen explicitly rather than the
//! process-wide default so that a program that links a second provider still
//! builds the same configuration.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, crypto::CryptoProvider};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub use rustls::pki_types::ServerName;
pub use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

/// Why TLS settings could not be loaded. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read, or is not PEM.
    #[error("cannot read {what} from {}: {reason}", path.display())]
    Read {
        /// What the file was supposed to hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file is PEM but holds no item of the kind needed.
    #[error("no {what} found in {}", path.display())]
    Empty {
        /// What the file was supposed to hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the certificates or key (a key that does not match the
    /// certificate, an unsupported key type, a malformed CA certificate).
    #[error("{context}: {source}")]
    Rejected {
        /// Which files were being combined.
        context: String,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
    /// The name to verify the server's certificate against is not a valid
    /// DNS name or IP address.
    #[error("{0:?} is not a valid TLS server name (a DNS name or an IP address)")]
    ServerName(String),
}

/// The ring provider, shared by every configuration.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_error(what: &'static str, path: &Path, err: pem::Error) -> TlsError {
    let reason = match err {
        pem::Error::Io(io) => io.to_string(),
        other => format!("not valid PEM ({other:?})"),
    };
    TlsError::Read {
        what,
        path: path.to_path_buf(),
        reason,
    }
}

/// Every certificate in a PEM file, in order (a chain: leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    const WHAT: &str = "certificates";
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_error(WHAT, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(WHAT, path, e))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what: "certificate",
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|err| match err {
        pem::Error::NoItemsFound => TlsError::Empty {
            what: "private key",
            path: path.to_path_buf(),
        },
        other => read_error("a private key", path, other),
    })
}

/// The CA certificates in a PEM file, as trust anchors.
fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|source| TlsError::Rejected {
            context: format!("CA certificate in {}", path.display()),
            source,
        })?;
    }
    Ok(Arc::new(roots))
}

/// A server's settings: its certificate chain and key, and, when
/// `client_ca_file` is given, a requirement that clients present a
/// certificate signed by that CA.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca_file: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = load_certs(cert_file)?;
    let key = load_key(key_file)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let builder = match client_ca_file {
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(load_roots(ca)?, provider())
                .build()
                .map_err(|err| TlsError::Rejected {
                    context: format!("client CA {}", ca.display()),
                    source: rustls::Error::General(err.to_string()),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Rejected {
            context: format!(
                "certificate {} with key {}",
                cert_file.display(),
                key_file.display()
            ),
            source,
        })?;
    Ok(Arc::new(config))
}

/// A client's settings: the CA that signs the servers' certificates, and
/// optionally the client's own certificate and key (`identity`), for a
/// server that requires one.
pub fn client_config(
    ca_file: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(load_roots(ca_file)?);
    let config = match identity {
        Some((cert_file, key_file)) => builder
            .with_client_auth_cert(load_certs(cert_file)?, load_key(key_file)?)
            .map_err(|source| TlsError::Rejected {
                context: format!(
                    "client certificate {} with key {}",
                    cert_file.display(),
                    key_file.display()
                ),
                source,
            })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name a server's certificate must carry: a DNS name or an IP address
/// (an IPv6 address may be in brackets, as in `[::1]:9814`).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).map_err(|_| TlsError::ServerName(host.to_string()))
}

/// How a client opens TLS over a TCP connection: the loaded settings, and the
/// name to check the server's certificate against when it is not the host
/// connected to.
#[derive(Clone)]
pub struct Connector {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector with these settings, checking each server against the
    /// host it is reached at.
    pub fn new(config: Arc<rustls::ClientConfig>) -> Connector {
        Connector {
            connector: TlsConnector::from(config),
            server_name: None,
        }
    }

    /// Checks every server against `name` instead of the host connected to
    /// (and sends it as SNI): for nodes reached by an address their
    /// certificate does not list.
    pub fn with_server_name(mut self, name: &str) -> Result<Connector, TlsError> {
        self.server_name = Some(server_name(name)?);
        Ok(self)
    }

    /// Runs the TLS handshake over `tcp`, connected to `host`.
    pub async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> io::Result<client::TlsStream<TcpStream>> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => {
                server_name(host).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
            }
        };
        self.connector.connect(name, tcp).await
    }
}

/// The settings for the links between the members of a TLS cluster (the bus
/// and the coordinator link): mutual TLS. Each member presents its own
/// certificate, as a server and as a client, and accepts only a peer whose
/// certificate the cluster's CA signed. A node's certificate therefore needs
/// both the server and the client extended key usage.
#[derive(Clone)]
pub struct MemberTls {
    /// Accepts members only (a client certificate from the CA is required).
    pub acceptor: TlsAcceptor,
    /// Dials members, presenting this member's certificate.
    pub connector: Connector,
}

impl std::fmt::Debug for MemberTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberTls").finish_non_exhaustive()
    }
}

impl MemberTls {
    /// Loads this member's certificate and key and the cluster's CA.
    pub fn load(cert_file: &Path, key_file: &Path, ca_file: &Path) -> Result<MemberTls, TlsError> {
        let acceptor = TlsAcceptor::from(server_config(cert_file, key_file, Some(ca_file))?);
        let client = client_config(ca_file, Some((cert_file, key_file)))?;
        Ok(MemberTls {
            acceptor,
            connector: Connector::new(client),
        })
    }
}

/// A client's connection: plain TCP, or TLS over TCP.
///
/// An enum rather than a boxed trait object, so that the plain case costs one
/// branch per read or write and nothing else.
#[derive(Debug)]
pub enum ClientStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (boxed: the TLS state is large).
    Tls(Box<client::TlsStream<TcpStream>>),
}

impl ClientStream {
    /// Connects to `addr` (`host:port` as [`crate::addr`] reads it: a name,
    /// an IPv4 address, or an IPv6 one with or without brackets) with
    /// `TCP_NODELAY`, then runs the TLS handshake if `tls` is given.
    pub async fn connect(addr: &str, tls: Option<&Connector>) -> io::Result<ClientStream> {
        let (host, port) = crate::addr::split(addr).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{addr:?} is not host:port"),
            )
        })?;
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        match tls {
            None => Ok(ClientStream::Plain(tcp)),
            Some(connector) => {
                let stream = connector.connect(host, tcp).await?;
                Ok(ClientStream::Tls(Box::new(stream)))
            }
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Plain(s) => s.is_write_vectored(),
            ClientStream::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(feature = "test-pki")]
pub mod test_pki;
#[cfg(test)]
mod tests;
