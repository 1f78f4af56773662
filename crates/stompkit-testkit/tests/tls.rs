//! The embedded broker over TLS, with a raw tokio-rustls client that trusts the generated CA.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use stompkit_testkit::EmbeddedBroker;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Bound on any one wait (a hang fails the test instead of stalling it).
const BOUND: Duration = Duration::from_secs(30);

/// A rustls client (`ring`) that trusts only the CA certificates in `ca_pem`.
fn connector(ca_pem: &str) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("PEM")).expect("a usable CA");
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn connect_tls(
    broker: &EmbeddedBroker,
    ca_pem: &str,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let addr = broker.tls_addr().expect("a TLS listener");
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).expect("a server name");
    tokio::time::timeout(BOUND, connector(ca_pem).connect(name, tcp))
        .await
        .expect("the handshake ends within the bound")
}

/// Reads until `buf` holds a whole frame (up to its NUL) and returns that frame's text.
async fn read_frame(stream: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> String {
    tokio::time::timeout(BOUND, async {
        loop {
            // Heart-beat EOLs between frames are skipped.
            let start = buf.iter().position(|b| *b != b'\n' && *b != b'\r');
            if let Some(start) = start {
                if let Some(end) = buf[start..].iter().position(|b| *b == 0) {
                    let frame = String::from_utf8_lossy(&buf[start..start + end]).into_owned();
                    buf.drain(..start + end + 1);
                    return frame;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read");
            assert_ne!(n, 0, "closed before a whole frame; got {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("a frame within the bound")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_subscribe_and_receive_over_tls_verified_by_the_generated_ca() {
    let broker = EmbeddedBroker::builder()
        .ws_addr(None)
        .tls(true)
        .start()
        .await
        .unwrap();
    let url = broker.tls_url().expect("a TLS URL");
    let port = broker.tls_addr().unwrap().port();
    assert_eq!(url, format!("stomp+ssl://127.0.0.1:{port}"));
    assert_ne!(broker.tls_addr(), Some(broker.tcp_addr()));
    let ca = broker.ca_pem().expect("the CA").to_owned();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");

    // The certificate names the IP address and `localhost`; both verify.
    for name in ["127.0.0.1", "localhost"] {
        let mut tls = connect_tls(&broker, &ca, name).await.expect("handshake");
        let mut buf = Vec::new();
        tls.write_all(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
            .await
            .unwrap();
        let connected = read_frame(&mut tls, &mut buf).await;
        assert!(connected.starts_with("CONNECTED\n"), "{connected}");
        assert!(connected.contains("\nversion:1.2\n"), "{connected}");

        tls.write_all(b"SUBSCRIBE\nid:0\ndestination:/queue/tls\nreceipt:r1\n\n\0")
            .await
            .unwrap();
        let receipt = read_frame(&mut tls, &mut buf).await;
        assert!(receipt.starts_with("RECEIPT\nreceipt-id:r1\n"), "{receipt}");
        broker
            .publish("/queue/tls", format!("to {name}"))
            .await
            .unwrap();
        let message = read_frame(&mut tls, &mut buf).await;
        assert!(message.starts_with("MESSAGE\n"), "{message}");
        assert!(message.ends_with(&format!("\n\nto {name}")), "{message}");
        tls.write_all(b"DISCONNECT\nreceipt:bye\n\n\0")
            .await
            .unwrap();
        let bye = read_frame(&mut tls, &mut buf).await;
        assert!(bye.starts_with("RECEIPT\nreceipt-id:bye\n"), "{bye}");
    }
    assert_eq!(broker.stats().await.unwrap().delivered, 2);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_brokers_ca_and_a_wrong_name_are_refused() {
    let broker = EmbeddedBroker::builder()
        .ws_addr(None)
        .tls(true)
        .start()
        .await
        .unwrap();
    let other = EmbeddedBroker::builder()
        .ws_addr(None)
        .tls(true)
        .start()
        .await
        .unwrap();
    // Each start makes its own CA.
    assert_ne!(broker.ca_pem(), other.ca_pem());
    let foreign = other.ca_pem().unwrap().to_owned();
    let err = connect_tls(&broker, &foreign, "127.0.0.1")
        .await
        .expect_err("a certificate from another CA");
    assert!(err.to_string().contains("certificate"), "{err}");
    let own = broker.ca_pem().unwrap().to_owned();
    let err = connect_tls(&broker, &own, "stomp.example.com")
        .await
        .expect_err("a name the certificate does not carry");
    assert!(err.to_string().contains("certificate"), "{err}");
    broker.shutdown().await;
    other.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_starts_its_handshake_is_dropped() {
    let broker = EmbeddedBroker::builder()
        .ws_addr(None)
        .tls(true)
        .handshake_timeout(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut silent = TcpStream::connect(broker.tls_addr().unwrap())
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(BOUND, silent.read(&mut byte))
        .await
        .expect("the broker gives up within the bound");
    // Closed (or reset): nothing is ever sent to a client that did not finish a handshake.
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(broker.connections().await.unwrap().is_empty());
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_is_not_answered_on_the_tls_port_and_tls_is_off_by_default() {
    let plain = EmbeddedBroker::builder().start().await.unwrap();
    assert_eq!(plain.tls_url(), None);
    assert_eq!(plain.ca_pem(), None);
    plain.shutdown().await;

    let broker = EmbeddedBroker::builder()
        .ws_addr(None)
        .tls(true)
        .start()
        .await
        .unwrap();
    let mut tcp = TcpStream::connect(broker.tls_addr().unwrap())
        .await
        .unwrap();
    tcp.write_all(b"CONNECT\naccept-version:1.2\n\n\0")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(BOUND, tcp.read_to_end(&mut reply))
        .await
        .expect("the broker closes within the bound");
    // A TLS alert at most, never a STOMP frame.
    assert!(
        !String::from_utf8_lossy(&reply).contains("CONNECTED"),
        "{read:?} {reply:?}"
    );
    assert!(broker.connections().await.unwrap().is_empty());
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_refuses_tls_clients_as_it_does_tcp_ones() {
    let broker = EmbeddedBroker::builder()
        .ws_addr(None)
        .tls(true)
        .start()
        .await
        .unwrap();
    let ca = broker.ca_pem().unwrap().to_owned();
    let mut before = connect_tls(&broker, &ca, "localhost").await.unwrap();
    let mut buf = Vec::new();
    before
        .write_all(b"CONNECT\naccept-version:1.2\n\n\0")
        .await
        .unwrap();
    assert!(
        read_frame(&mut before, &mut buf)
            .await
            .starts_with("CONNECTED\n")
    );

    // Down for longer than the test can take: every attempt below meets a refusing broker.
    broker.restart(Duration::from_secs(600)).await.unwrap();
    // Ended (cleanly or not) within the bound, with no frame after CONNECTED.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(BOUND, before.read_to_end(&mut rest))
        .await
        .expect("the connection ends within the bound");
    assert!(!rest.contains(&0), "{rest:?}");
    let refused = connect_tls(&broker, &ca, "localhost").await;
    assert!(refused.is_err(), "a TLS handshake while restarting");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_serves_stomp_over_websocket_over_tls_with_the_same_ca() {
    let broker = EmbeddedBroker::builder()
        .ws_addr(None)
        .wss_addr(Some("127.0.0.1:0".parse().unwrap()))
        .start()
        .await
        .unwrap();
    // Only what was asked for listens.
    assert_eq!((broker.tls_url(), broker.ws_url()), (None, None));
    let url = broker.wss_url().expect("a wss listener");
    let port = broker.wss_addr().unwrap().port();
    assert_eq!(url, format!("wss://127.0.0.1:{port}/ws"));
    let ca = broker.ca_pem().expect("the CA").to_owned();

    let tcp = TcpStream::connect(broker.wss_addr().unwrap())
        .await
        .unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector(&ca).connect(name, tcp).await.expect("TLS");
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v10.stomp, v11.stomp, v12.stomp".parse().unwrap(),
    );
    let (mut ws, response) =
        tokio::time::timeout(BOUND, tokio_tungstenite::client_async(request, tls))
            .await
            .expect("the upgrade within the bound")
            .expect("upgraded");
    assert_eq!(response.headers()["sec-websocket-protocol"], "v12.stomp");
    ws.send(Message::text("CONNECT\naccept-version:1.2\nhost:/\n\n\0"))
        .await
        .unwrap();
    let reply = tokio::time::timeout(BOUND, ws.next())
        .await
        .expect("a reply within the bound")
        .expect("a message")
        .unwrap();
    let text = reply.into_text().unwrap();
    assert!(text.starts_with("CONNECTED\nserver:"), "{text}");
    assert!(text.contains("\nversion:1.2\n"), "{text}");
    broker.shutdown().await;
}
