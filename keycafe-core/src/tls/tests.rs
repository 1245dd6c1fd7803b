use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::test_pki::TestPki;
use super::*;

fn pki() -> (tempfile::TempDir, TestPki) {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    (dir, pki)
}

#[test]
fn errors_name_the_file() {
    let (dir, pki) = pki();
    let missing = dir.path().join("missing.pem");
    let err = server_config(&missing, &pki.server_key, None).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.pem"), "{err}");

    // A key file where a certificate should be, and the other way round.
    let err = server_config(&pki.server_key, &pki.server_key, None).unwrap_err();
    assert!(matches!(err, TlsError::Empty { .. }), "{err:?}");
    assert!(err.to_string().contains("server.key"), "{err}");
    let err = server_config(&pki.server_cert, &pki.server_cert, None).unwrap_err();
    assert!(err.to_string().contains("private key"), "{err}");

    // A key that belongs to another certificate.
    let err = server_config(&pki.server_cert, &pki.client_key, None).unwrap_err();
    assert!(matches!(err, TlsError::Rejected { .. }), "{err:?}");
    assert!(err.to_string().contains("server.crt"), "{err}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let err = client_config(&garbage, None).unwrap_err();
    assert!(err.to_string().contains("garbage.pem"), "{err}");
}

#[test]
fn server_names() {
    assert!(matches!(
        server_name("127.0.0.1"),
        Ok(ServerName::IpAddress(_))
    ));
    assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
    assert!(matches!(
        server_name("localhost"),
        Ok(ServerName::DnsName(_))
    ));
    assert!(server_name("not a name").is_err());
}

/// Runs one TLS exchange: the server echoes one line back. Returns the
/// client's outcome (the server's is only logged).
async fn exchange(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    name: Option<&str>,
) -> io::Result<Vec<u8>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let acceptor = TlsAcceptor::from(server);
    let serve = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).await?;
        tls.write_all(&buf).await?;
        tls.shutdown().await
    });
    let mut connector = Connector::new(client);
    if let Some(name) = name {
        connector = connector.with_server_name(name).unwrap();
    }
    let result = async {
        let mut stream = ClientStream::connect(&addr, Some(&connector)).await?;
        stream.write_all(b"hello").await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok(answer)
    }
    .await;
    let _ = serve.await;
    result
}

fn ca_only(ca: &Path) -> Arc<rustls::ClientConfig> {
    client_config(ca, None).unwrap()
}

#[tokio::test]
async fn a_trusted_server_is_reached_by_address_or_by_name() {
    let (_dir, pki) = pki();
    let server = server_config(&pki.server_cert, &pki.server_key, None).unwrap();
    let answer = exchange(server.clone(), ca_only(&pki.ca_cert), None).await;
    assert_eq!(answer.unwrap(), b"hello");
    let answer = exchange(server, ca_only(&pki.ca_cert), Some("localhost")).await;
    assert_eq!(answer.unwrap(), b"hello");
}

#[tokio::test]
async fn an_untrusted_or_misnamed_server_is_refused() {
    let (_dir, pki) = pki();
    let server = server_config(&pki.server_cert, &pki.server_key, None).unwrap();
    let err = exchange(server.clone(), ca_only(&pki.other_ca_cert), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    let err = exchange(server, ca_only(&pki.ca_cert), Some("elsewhere.example"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn a_server_with_a_client_ca_requires_a_certificate_it_signed() {
    let (_dir, pki) = pki();
    let server = server_config(&pki.server_cert, &pki.server_key, Some(&pki.ca_cert)).unwrap();

    let with_cert = client_config(&pki.ca_cert, Some((&pki.client_cert, &pki.client_key)));
    let answer = exchange(server.clone(), with_cert.unwrap(), None).await;
    assert_eq!(answer.unwrap(), b"hello");

    // TLS 1.3: the client learns of the refusal on its first read.
    assert!(
        exchange(server.clone(), ca_only(&pki.ca_cert), None)
            .await
            .is_err()
    );
    let foreign = client_config(
        &pki.ca_cert,
        Some((&pki.other_client_cert, &pki.other_client_key)),
    );
    assert!(exchange(server, foreign.unwrap(), None).await.is_err());
}
