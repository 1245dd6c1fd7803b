//! TLS on the client port: a node serves the same commands over TLS as over
//! plain TCP, to a bare rustls client and to `redis-cli --tls`; whoever
//! fails the handshake (plain text, an untrusted CA, no client certificate
//! where one is required) is closed without disturbing anyone else.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use keycafe_core::tls::test_pki::TestPki;
use keycafe_core::tls::{self, ClientStream, Connector};
use keycafe_core::{Frame, Limits, Protocol};
use keycafe_server::Config;
use keycafe_server::server::{Listeners, run_on};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Bound on every wait in these tests.
const PATIENCE: Duration = Duration::from_secs(10);

/// A node with a plain and a TLS listener (or TLS only), both on loopback
/// ports the OS picks.
struct TlsNode {
    plain: Option<SocketAddr>,
    tls: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

async fn loopback() -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap()
}

impl TlsNode {
    async fn start(config: Config, with_plain: bool) -> TlsNode {
        let plain = if with_plain {
            Some(loopback().await)
        } else {
            None
        };
        let tls = loopback().await;
        let (plain_addr, tls_addr) = (
            plain.as_ref().map(|l| l.local_addr().unwrap()),
            tls.local_addr().unwrap(),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = Listeners {
            plain,
            tls: Some(tls),
        };
        let task = tokio::spawn(run_on(config, listeners, async {
            let _ = stopped.await;
        }));
        TlsNode {
            plain: plain_addr,
            tls: tls_addr,
            stop,
            task,
        }
    }

    /// Stops the node and checks that it exits cleanly, with TLS
    /// connections still open.
    async fn stop(self) {
        let _ = self.stop.send(());
        let exit = tokio::time::timeout(PATIENCE, self.task).await;
        exit.expect("the node stops in time")
            .expect("the node task did not panic")
            .expect("the node exits cleanly");
    }
}

/// A configuration serving TLS with the test PKI's server certificate.
fn tls_config(pki: &TestPki) -> Config {
    Config {
        tls_cert_file: Some(pki.server_cert.clone()),
        tls_key_file: Some(pki.server_key.clone()),
        ..Config::default()
    }
}

/// A RESP2 client over plain TCP or TLS.
struct Client {
    stream: ClientStream,
    buf: BytesMut,
}

impl Client {
    async fn connect(addr: SocketAddr, tls: Option<&Connector>) -> std::io::Result<Client> {
        let stream = ClientStream::connect(&addr.to_string(), tls).await?;
        Ok(Client {
            stream,
            buf: BytesMut::new(),
        })
    }

    /// Sends one command; the reply, or the error that ended the
    /// connection (a TLS 1.3 client learns of a refused certificate here).
    async fn call(&mut self, line: &str) -> std::io::Result<Frame> {
        let args: Vec<&str> = line.split_whitespace().collect();
        let mut out = BytesMut::new();
        Protocol::Resp2.encode_request(&args, &mut out);
        self.stream.write_all(&out).await?;
        loop {
            if let Some(frame) = Protocol::Resp2
                .decode_frame(&mut self.buf, &Limits::DEFAULT)
                .expect("well-formed reply")
            {
                return Ok(frame);
            }
            let read = tokio::time::timeout(PATIENCE, self.stream.read_buf(&mut self.buf));
            if read.await.expect("the node answers in time")? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

fn trusting(ca: &Path) -> Connector {
    Connector::new(tls::client_config(ca, None).unwrap())
}

fn simple(text: &str) -> Frame {
    Frame::Simple(text.as_bytes().to_vec().into())
}

fn bulk(text: &str) -> Frame {
    Frame::Bulk(text.as_bytes().to_vec().into())
}

/// Checks that a TLS client trusting the right CA is served on `node`.
async fn served_over_tls(node: &TlsNode, connector: &Connector) {
    let mut client = Client::connect(node.tls, Some(connector)).await.unwrap();
    assert_eq!(client.call("PING").await.unwrap(), simple("PONG"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_node_serves_the_same_data_on_both_ports() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let node = TlsNode::start(tls_config(&pki), true).await;
    let connector = trusting(&pki.ca_cert);

    let mut secure = Client::connect(node.tls, Some(&connector)).await.unwrap();
    assert_eq!(secure.call("PING").await.unwrap(), simple("PONG"));
    assert_eq!(secure.call("SET k over-tls").await.unwrap(), simple("OK"));
    assert_eq!(secure.call("GET k").await.unwrap(), bulk("over-tls"));

    let mut plain = Client::connect(node.plain.unwrap(), None).await.unwrap();
    assert_eq!(plain.call("GET k").await.unwrap(), bulk("over-tls"));
    assert_eq!(plain.call("SET k plain").await.unwrap(), simple("OK"));
    assert_eq!(secure.call("GET k").await.unwrap(), bulk("plain"));

    // A node with a plain port announces it; the TLS port is beside it.
    let Frame::Array(slots) = secure.call("CLUSTER SLOTS").await.unwrap() else {
        panic!("CLUSTER SLOTS answers an array");
    };
    let announced = format!("{slots:?}");
    assert!(
        announced.contains(&format!("Integer({})", node.plain.unwrap().port())),
        "{announced}"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_only_node_announces_its_tls_port() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let node = TlsNode::start(tls_config(&pki), false).await;
    let connector = trusting(&pki.ca_cert);
    let mut client = Client::connect(node.tls, Some(&connector)).await.unwrap();
    let Frame::Array(slots) = client.call("CLUSTER SLOTS").await.unwrap() else {
        panic!("CLUSTER SLOTS answers an array");
    };
    let announced = format!("{slots:?}");
    assert!(
        announced.contains(&format!("Integer({})", node.tls.port())),
        "{announced}"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_stalled_and_untrusted_clients_are_closed_and_others_served() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let node = TlsNode::start(tls_config(&pki), true).await;
    let connector = trusting(&pki.ca_cert);

    // A client that connects and says nothing holds up nobody.
    let _stalled = TcpStream::connect(node.tls).await.unwrap();
    served_over_tls(&node, &connector).await;

    // Plain RESP on the TLS port: the node closes the connection.
    let mut plain = TcpStream::connect(node.tls).await.unwrap();
    plain.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(PATIENCE, plain.read_to_end(&mut answer)).await;
    let closed = read.expect("the node closes a plain-text client in time");
    assert!(
        closed.is_err() || !answer.starts_with(b"+PONG"),
        "a plain-text client must not be served on the TLS port: {answer:?}"
    );
    served_over_tls(&node, &connector).await;

    // A client that trusts another CA refuses the node's certificate.
    let untrusted = Client::connect(node.tls, Some(&trusting(&pki.other_ca_cert))).await;
    let Err(err) = untrusted else {
        panic!("the handshake with an untrusted certificate must fail");
    };
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    served_over_tls(&node, &connector).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_only_its_certificates_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let config = Config {
        tls_ca_cert_file: Some(pki.ca_cert.clone()),
        ..tls_config(&pki)
    };
    let node = TlsNode::start(config, false).await;
    let identity = Some((pki.client_cert.as_path(), pki.client_key.as_path()));
    let with_cert = Connector::new(tls::client_config(&pki.ca_cert, identity).unwrap());

    // No certificate: the handshake or the first exchange fails.
    let refused = match Client::connect(node.tls, Some(&trusting(&pki.ca_cert))).await {
        Err(_) => true,
        Ok(mut client) => client.call("PING").await.is_err(),
    };
    assert!(refused, "a client without a certificate must be refused");

    // A certificate from a CA the node does not trust: refused too.
    let foreign = Some((
        pki.other_client_cert.as_path(),
        pki.other_client_key.as_path(),
    ));
    let foreign = Connector::new(tls::client_config(&pki.ca_cert, foreign).unwrap());
    let refused = match Client::connect(node.tls, Some(&foreign)).await {
        Err(_) => true,
        Ok(mut client) => client.call("PING").await.is_err(),
    };
    assert!(refused, "a certificate from another CA must be refused");

    served_over_tls(&node, &with_cert).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_count_against_maxclients() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let config = Config {
        maxclients: 1,
        ..tls_config(&pki)
    };
    let node = TlsNode::start(config, false).await;
    let connector = trusting(&pki.ca_cert);
    let mut first = Client::connect(node.tls, Some(&connector)).await.unwrap();
    assert_eq!(first.call("PING").await.unwrap(), simple("PONG"));
    // Over the limit: closed at accept, before the handshake.
    let refused = match Client::connect(node.tls, Some(&connector)).await {
        Ok(mut second) => second.call("PING").await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a second TLS client was served over maxclients 1");
    assert_eq!(first.call("PING").await.unwrap(), simple("PONG"));
    node.stop().await;
}

#[tokio::test]
async fn a_bad_certificate_file_stops_the_node_at_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let config = Config {
        tls_cert_file: Some(dir.path().join("absent.crt")),
        ..tls_config(&pki)
    };
    let listeners = Listeners {
        plain: None,
        tls: Some(loopback().await),
    };
    let err = run_on(config, listeners, std::future::pending())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("absent.crt"), "{err:#}");
}

/// Runs `redis-cli --tls` against the node's TLS port; its standard output.
async fn redis_cli_tls(port: u16, tls_args: &[&Path], args: &[&str]) -> String {
    let mut command = Command::new("redis-cli");
    command.args(["-h", "127.0.0.1", "-p", &port.to_string(), "--tls"]);
    for (flag, path) in ["--cacert", "--cert", "--key"].iter().zip(tls_args) {
        command.arg(flag).arg(path);
    }
    let output = tokio::time::timeout(PATIENCE, command.args(args).output())
        .await
        .expect("redis-cli finishes in time")
        .expect("redis-cli is installed (test.sh installs redis-tools)");
    String::from_utf8(output.stdout).expect("utf-8 output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_speaks_tls_to_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let node = TlsNode::start(tls_config(&pki), true).await;
    let port = node.tls.port();
    let ca = [pki.ca_cert.as_path()];
    assert_eq!(redis_cli_tls(port, &ca, &["PING"]).await, "PONG\n");
    assert_eq!(redis_cli_tls(port, &ca, &["SET", "k", "v"]).await, "OK\n");
    assert_eq!(redis_cli_tls(port, &ca, &["GET", "k"]).await, "v\n");
    // Trusting another CA, redis-cli cannot connect and prints no reply.
    let other = [pki.other_ca_cert.as_path()];
    assert_eq!(redis_cli_tls(port, &other, &["GET", "k"]).await, "");
    node.stop().await;

    // With client certificates required, redis-cli presents its own.
    let config = Config {
        tls_ca_cert_file: Some(pki.ca_cert.clone()),
        ..tls_config(&pki)
    };
    let node = TlsNode::start(config, false).await;
    let port = node.tls.port();
    let identity = [
        pki.ca_cert.as_path(),
        pki.client_cert.as_path(),
        pki.client_key.as_path(),
    ];
    assert_eq!(redis_cli_tls(port, &identity, &["PING"]).await, "PONG\n");
    assert_eq!(redis_cli_tls(port, &ca, &["PING"]).await, "");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_the_demo_script_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/tls-certs.sh");
    let made = tokio::time::timeout(PATIENCE, Command::new(&script).arg(dir.path()).output())
        .await
        .expect("the script finishes in time")
        .expect("bash and openssl are installed (test.sh installs openssl)");
    assert!(made.status.success(), "{made:?}");
    let file = |name: &str| dir.path().join(name);
    let config = Config {
        tls_cert_file: Some(file("server.crt")),
        tls_key_file: Some(file("server.key")),
        tls_ca_cert_file: Some(file("ca.crt")),
        ..Config::default()
    };
    let node = TlsNode::start(config, false).await;
    let identity = Some((file("client.crt"), file("client.key")));
    let identity = identity.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let with_cert = Connector::new(tls::client_config(&file("ca.crt"), identity).unwrap());
    served_over_tls(&node, &with_cert).await;
    let [ca, cert, key] = ["ca.crt", "client.crt", "client.key"].map(file);
    let port = node.tls.port();
    let args = [ca.as_path(), cert.as_path(), key.as_path()];
    assert_eq!(redis_cli_tls(port, &args, &["PING"]).await, "PONG\n");
    node.stop().await;
}
