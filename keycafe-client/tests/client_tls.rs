//! The client over TLS against a real node whose client port speaks TLS
//! only: the commands work, the node's certificate is checked (CA and name),
//! a node that requires client certificates gets one, and bad files are
//! reported by name before anything is sent.

mod client_support;

use std::time::Duration;

use client_support::bounded;
use keycafe_client::{ClientConfig, Error, KeycafeCluster, TlsOptions};
use keycafe_core::tls::test_pki::TestPki;
use keycafe_server::Config;
use keycafe_server::test_util::TestServer;

fn node_config(pki: &TestPki) -> Config {
    Config {
        tls_cert_file: Some(pki.server_cert.clone()),
        tls_key_file: Some(pki.server_key.clone()),
        ..Config::default()
    }
}

/// Settings for a client of `server` that gives up quickly.
fn client(server: &TestServer, tls: TlsOptions) -> ClientConfig {
    ClientConfig::new([server.address()])
        .connect_timeout(Duration::from_secs(2))
        .max_retries(1)
        .tls(tls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_set_and_ping_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let server = TestServer::start_tls(node_config(&pki)).await;
    bounded(async {
        let kc = client(&server, TlsOptions::new(&pki.ca_cert))
            .connect()
            .await
            .unwrap();
        kc.ping().await.unwrap();
        kc.set("greeting", "over tls").await.unwrap();
        assert_eq!(
            kc.get_string("greeting").await.unwrap().as_deref(),
            Some("over tls")
        );
        let values = kc.mget(["greeting", "missing"]).await.unwrap();
        assert_eq!(values.len(), 2);
        assert!(values[1].is_none());

        // A plain client on the same port is not served.
        let plain = ClientConfig::new([server.address()])
            .connect_timeout(Duration::from_secs(2))
            .max_retries(0);
        assert!(KeycafeCluster::connect_with(plain).await.is_err());
        // ... and the TLS client still is.
        kc.ping().await.unwrap();
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_certificate_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let server = TestServer::start_tls(node_config(&pki)).await;
    bounded(async {
        // Signed by a CA the client does not trust.
        let untrusted = client(&server, TlsOptions::new(&pki.other_ca_cert));
        let Err(err) = untrusted.connect().await else {
            panic!("an untrusted certificate must be refused");
        };
        assert!(err.is_network(), "{err:?}");
        assert!(
            err.to_string().contains("invalid peer certificate"),
            "{err}"
        );

        // Checked against a name it does not carry, then one it does.
        let wrong_name = TlsOptions::new(&pki.ca_cert).server_name("elsewhere.example");
        let err = client(&server, wrong_name).connect().await.err();
        assert!(err.is_some_and(|e| e.to_string().contains("not valid for name")));
        let localhost = TlsOptions::new(&pki.ca_cert).server_name("localhost");
        let kc = client(&server, localhost).connect().await.unwrap();
        kc.ping().await.unwrap();
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_requires_client_certificates_gets_one() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let config = Config {
        tls_ca_cert_file: Some(pki.ca_cert.clone()),
        ..node_config(&pki)
    };
    let server = TestServer::start_tls(config).await;
    bounded(async {
        let anonymous = client(&server, TlsOptions::new(&pki.ca_cert));
        assert!(anonymous.connect().await.is_err());
        let foreign =
            TlsOptions::new(&pki.ca_cert).identity(&pki.other_client_cert, &pki.other_client_key);
        assert!(client(&server, foreign).connect().await.is_err());

        let identified = TlsOptions::new(&pki.ca_cert).identity(&pki.client_cert, &pki.client_key);
        let kc = client(&server, identified).connect().await.unwrap();
        kc.set("k", "v").await.unwrap();
        assert_eq!(kc.get_string("k").await.unwrap().as_deref(), Some("v"));
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn bad_files_are_configuration_errors_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    // Nothing listens there: the files are read before any connection.
    let config = |tls| ClientConfig::new(["127.0.0.1:1"]).tls(tls);
    let missing = dir.path().join("missing-ca.crt");
    let err = config(TlsOptions::new(&missing)).connect().await.err();
    assert!(
        matches!(&err, Some(Error::Config(text)) if text.contains("missing-ca.crt")),
        "{err:?}"
    );
    let mismatched = TlsOptions::new(&pki.ca_cert).identity(&pki.client_cert, &pki.server_key);
    let err = config(mismatched).connect().await.err();
    assert!(
        matches!(&err, Some(Error::Config(text)) if text.contains("client.crt")),
        "{err:?}"
    );
}
