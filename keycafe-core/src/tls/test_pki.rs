//! Certificates for tests (feature `test-pki`): a throw-away CA, a server
//! certificate for `localhost` and `127.0.0.1` signed by it, a client
//! certificate, and a second CA that nobody trusts, written as PEM files.
//!
//! Tests of every crate that speaks TLS make their certificates here, in
//! their own temporary directory, so that none depends on `openssl` or on
//! files checked into the repository that expire. (`scripts/tls-certs.sh`
//! makes the same set with openssl for the demo and for people.)

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The PEM files of one test PKI, all in one directory.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA that signed the server and client certificates.
    pub ca_cert: PathBuf,
    /// The server's certificate (names `localhost`, `127.0.0.1` and the
    /// hosts given to [`TestPki::generate_for`]). It may also be presented
    /// as a client certificate, as a node of a TLS cluster presents its own
    /// to the peers it dials.
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
    /// A client certificate signed by the same CA.
    pub client_cert: PathBuf,
    /// The client certificate's private key.
    pub client_key: PathBuf,
    /// A CA that signed nothing here: trusting it instead of `ca_cert`
    /// must make every handshake fail.
    pub other_ca_cert: PathBuf,
    /// A certificate and key for `localhost` signed by the other CA: a
    /// client certificate a server trusting only `ca_cert` must refuse.
    pub other_client_cert: PathBuf,
    /// The key of `other_client_cert`.
    pub other_client_key: PathBuf,
}

impl TestPki {
    /// Generates the whole set into `dir` (which must exist).
    pub fn generate(dir: &Path) -> TestPki {
        TestPki::generate_for(dir, &[])
    }

    /// [`TestPki::generate`], with the server's certificate naming `hosts`
    /// (names or IP addresses) besides `localhost` and `127.0.0.1`: for
    /// members on other hosts.
    pub fn generate_for(dir: &Path, hosts: &[&str]) -> TestPki {
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        names.extend(hosts.iter().map(|host| host.to_string()));
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("the test directory is writable");
            path
        };
        let ca = new_ca("Keycafe test CA");
        let other_ca = new_ca("Untrusted test CA");
        let (server_cert, server_key) = leaf(
            &ca,
            &names,
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        let (client_cert, client_key) = leaf(&ca, &names, &[ExtendedKeyUsagePurpose::ClientAuth]);
        let (other_client_cert, other_client_key) = leaf(
            &other_ca,
            &names,
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        TestPki {
            ca_cert: write("ca.crt", ca.pem()),
            server_cert: write("server.crt", server_cert),
            server_key: write("server.key", server_key),
            client_cert: write("client.crt", client_cert),
            client_key: write("client.key", client_key),
            other_ca_cert: write("other-ca.crt", other_ca.pem()),
            other_client_cert: write("other-client.crt", other_client_cert),
            other_client_key: write("other-client.key", other_client_key),
        }
    }
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("ring generates a key pair");
    CertifiedIssuer::self_signed(params, key).expect("a CA certificate can be self-signed")
}

/// A certificate for `names` (the first is its common name), and its key,
/// as PEM.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[String],
    usages: &[ExtendedKeyUsagePurpose],
) -> (String, String) {
    let mut params =
        CertificateParams::new(names.to_vec()).expect("valid subject alternative names");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = usages.to_vec();
    let key = KeyPair::generate().expect("ring generates a key pair");
    let cert = params
        .signed_by(&key, ca)
        .expect("the test CA signs a certificate");
    (cert.pem(), key.serialize_pem())
}
