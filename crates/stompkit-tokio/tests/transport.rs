//! Transports against servers built in the test, all on 127.0.0.1 with ephemeral ports.
//! Every wait is bounded by `within` (a hang fails the test, it is not a timing assertion).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use stompkit_tokio::{
    Endpoint, Error, Scheme, TlsConfig, TransportConfig, TransportReader, WsConfig, connect,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Fails the test instead of hanging it.
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("the test did not finish in 20 s")
}

async fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn with_tls(tls: TlsConfig) -> TransportConfig {
    TransportConfig::default().with_tls(tls)
}

fn endpoint(url: &str) -> Endpoint {
    url.parse().unwrap()
}

/// Reads until `n` bytes are in `buf` (or the end).
async fn read_at_least(reader: &mut TransportReader, buf: &mut BytesMut, n: usize) {
    while buf.len() < n {
        if reader.read(buf).await.unwrap() == 0 {
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------
// URL parsing

/// url, scheme, host, port, path, login, passcode
type GoodUrl<'a> = (
    &'a str,
    Scheme,
    &'a str,
    u16,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

#[test]
fn good_urls() {
    let cases: &[GoodUrl<'_>] = &[
        (
            "stomp://127.0.0.1",
            Scheme::Tcp,
            "127.0.0.1",
            61613,
            None,
            None,
            None,
        ),
        (
            "stomp://guest:guest@127.0.0.1:61613",
            Scheme::Tcp,
            "127.0.0.1",
            61613,
            None,
            Some("guest"),
            Some("guest"),
        ),
        ("STOMP://h:1/", Scheme::Tcp, "h", 1, None, None, None),
        (
            "stomp+ssl://broker.example",
            Scheme::Tls,
            "broker.example",
            61614,
            None,
            None,
            None,
        ),
        ("ssl://h", Scheme::Tls, "h", 61614, None, None, None),
        ("stomp+tls://h:7", Scheme::Tls, "h", 7, None, None, None),
        ("ws://h", Scheme::Ws, "h", 80, Some("/"), None, None),
        (
            "ws://h:15674/ws",
            Scheme::Ws,
            "h",
            15674,
            Some("/ws"),
            None,
            None,
        ),
        (
            "ws://h/ws?x=1&y=2",
            Scheme::Ws,
            "h",
            80,
            Some("/ws?x=1&y=2"),
            None,
            None,
        ),
        ("ws://h?x=1", Scheme::Ws, "h", 80, Some("/?x=1"), None, None),
        ("wss://h", Scheme::Wss, "h", 443, Some("/"), None, None),
        (
            "stomp://[::1]:61613",
            Scheme::Tcp,
            "::1",
            61613,
            None,
            None,
            None,
        ),
        (
            "wss://[::1]/stomp",
            Scheme::Wss,
            "::1",
            443,
            Some("/stomp"),
            None,
            None,
        ),
        (
            "stomp://us%40er:p%3Ass%2Cw@h",
            Scheme::Tcp,
            "h",
            61613,
            None,
            Some("us@er"),
            Some("p:ss,w"),
        ),
        (
            "stomp://u:p@ss@h",
            Scheme::Tcp,
            "h",
            61613,
            None,
            Some("u"),
            Some("p@ss"),
        ),
        (
            "stomp://only@h",
            Scheme::Tcp,
            "h",
            61613,
            None,
            Some("only"),
            None,
        ),
        (
            "stomp://u:@h",
            Scheme::Tcp,
            "h",
            61613,
            None,
            Some("u"),
            Some(""),
        ),
        ("  stomp://h  ", Scheme::Tcp, "h", 61613, None, None, None),
    ];
    for &(url, scheme, host, port, path, login, passcode) in cases {
        let e: Endpoint = url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(e.scheme(), scheme, "{url}");
        assert_eq!(e.host(), host, "{url}");
        assert_eq!(e.port(), port, "{url}");
        assert_eq!(e.path(), path, "{url}");
        assert_eq!(e.login(), login, "{url}");
        assert_eq!(e.passcode(), passcode, "{url}");
        // Display parses back to the same endpoint, less the passcode.
        let shown = e.to_string();
        let back: Endpoint = shown.parse().unwrap_or_else(|e| panic!("{shown}: {e}"));
        assert_eq!(
            back,
            e.clone().with_credentials(login.map(String::from), None)
        );
    }
}

#[test]
fn display_and_debug_never_show_the_passcode() {
    let e = endpoint("ws://guest:s3cr%65t@[::1]:15674/ws");
    assert_eq!(e.passcode(), Some("s3cret"));
    assert_eq!(e.to_string(), "ws://guest@[::1]:15674/ws");
    let debug = format!("{e:?}");
    assert!(!debug.contains("s3cr"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    assert_eq!(e.authority(), "[::1]:15674");
}

#[test]
fn bad_urls() {
    // (url, a piece of the reason)
    let cases = [
        ("127.0.0.1:61613", "expected scheme://"),
        ("://h", "scheme"),
        ("stomp://", "missing host"),
        ("stomp://:61613", "missing host"),
        ("stomp://h:", "empty port"),
        ("stomp://h:0", "port"),
        ("stomp://h:65536", "port"),
        ("stomp://h:+1", "port"),
        ("stomp://h:12ab", "port"),
        ("stomp://::1", "brackets"),
        ("stomp://[::1", "missing `]`"),
        ("stomp://[nope]:1", "IPv6"),
        ("stomp://[::1]x", "`:port`"),
        ("stomp://h/queue", "no path"),
        ("stomp://h?x=1", "no path"),
        ("ws://h/a#frag", "fragment"),
        ("ws://h/a b", "blank"),
        ("ws://h/\u{e9}", "ASCII"),
        ("stomp://h o", "host may hold"),
        ("stomp://@h", "empty user information"),
        ("stomp://us%zzer:pw@h", "login"),
        ("stomp://user:s3cret%@h", "passcode"),
        ("stomp://user:s3cret%FF@h", "passcode"),
    ];
    for (url, why) in cases {
        match url.parse::<Endpoint>() {
            Err(Error::InvalidUrl { reason, url: shown }) => {
                assert!(reason.contains(why), "{url}: `{reason}` lacks `{why}`");
                assert!(!shown.contains("s3cret"), "{shown}");
            }
            other => panic!("{url}: expected InvalidUrl, got {other:?}"),
        }
    }
}

#[test]
fn errors_never_echo_the_passcode() {
    for url in [
        "stomp://user:s3cret@h:99999",
        "stomp://user:s3cret@",
        "stomp://user:s3cret%zz@h",
        "stomp://user:s3/cret@h",
        "ws://user:s3cret@h/a#b",
        "stomp://user:s3cret@h/path",
    ] {
        let e = url.parse::<Endpoint>().unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains("s3"), "{url}: {text}");
    }
}

#[test]
fn unknown_scheme_lists_the_known_ones() {
    let e = "http://h".parse::<Endpoint>().unwrap_err();
    assert!(
        matches!(&e, Error::UnknownScheme { scheme } if scheme == "http"),
        "{e:?}"
    );
    let text = e.to_string();
    for known in ["stomp://", "stomp+ssl://", "ws://", "wss://"] {
        assert!(text.contains(known), "{text}");
    }
}

#[test]
fn failover_lists() {
    let list = Endpoint::parse_list("stomp://a:1, stomp+ssl://u:p%2Cq@b ,ws://[::1]:2/ws").unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0].host(), "a");
    assert_eq!(list[1].scheme(), Scheme::Tls);
    assert_eq!(list[1].passcode(), Some("p,q"));
    assert_eq!(list[2].path(), Some("/ws"));

    for bad in ["", " ", "stomp://a,", "stomp://a,,stomp://b"] {
        assert!(
            matches!(Endpoint::parse_list(bad), Err(Error::InvalidUrl { .. })),
            "{bad:?}"
        );
    }
    let e = Endpoint::parse_list("stomp://a, ftp://u:s3cret@b").unwrap_err();
    assert!(matches!(e, Error::UnknownScheme { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains("s3cret"));
}

#[test]
fn ws_config_debug_redacts_header_values() {
    let mut ws = WsConfig::default();
    ws.headers
        .push(("Authorization".into(), "Bearer s3cret".into()));
    let mut config = TransportConfig::default();
    config.ws = ws;
    let debug = format!("{config:?}");
    assert!(debug.contains("Authorization"), "{debug}");
    assert!(!debug.contains("s3cret"), "{debug}");
}

#[test]
fn halves_and_errors_can_move_between_tasks() {
    fn send_static<T: Send + 'static>() {}
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    send_static::<TransportReader>();
    send_static::<stompkit_tokio::TransportWriter>();
    shareable::<Error>();
    shareable::<TransportConfig>();
    shareable::<Endpoint>();
}

// ---------------------------------------------------------------------------------------
// TCP

#[tokio::test]
async fn tcp_round_trip_and_clean_eof() {
    within(async {
        let (l, port) = listener().await;
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            // The client shuts its sending side down after one frame: read to the end.
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(b"CONNECTED\nversion:1.2\n\n\0\n")
                .await
                .unwrap();
            got
        });

        let (mut reader, mut writer) = connect(
            &endpoint(&format!("stomp://127.0.0.1:{port}")),
            &TransportConfig::default(),
        )
        .await
        .unwrap();
        assert_eq!(reader.ws_subprotocol(), None);
        assert_eq!(writer.addr(), format!("127.0.0.1:{port}"));
        let frame = Bytes::from_static(b"CONNECT\naccept-version:1.2\n\n\0");
        writer.send(frame.clone(), &[frame.len()]).await.unwrap();
        writer.close().await.unwrap();

        let mut buf = BytesMut::new();
        while reader.read(&mut buf).await.unwrap() != 0 {}
        assert_eq!(&buf[..], b"CONNECTED\nversion:1.2\n\n\0\n");
        // The end stays the end.
        assert_eq!(reader.read(&mut buf).await.unwrap(), 0);
        assert_eq!(server.await.unwrap(), frame);
    })
    .await;
}

#[test]
fn endpoints_built_by_hand() {
    let e = Endpoint::new(Scheme::Ws, "::1", 15674, Some("ws"))
        .with_credentials(Some("guest".into()), Some("s3cret".into()));
    assert_eq!(e.path(), Some("/ws"));
    assert_eq!(e.to_string(), "ws://guest@[::1]:15674/ws");
    assert_eq!(e.to_string().parse::<Endpoint>().unwrap().host(), "::1");
    let tcp = Endpoint::new(Scheme::Tcp, "127.0.0.1", 61613, Some("/ignored"));
    assert_eq!(tcp.path(), None);
    assert_eq!(tcp, endpoint("stomp://127.0.0.1"));
}

#[tokio::test]
async fn a_silent_server_hits_the_connect_timeout() {
    within(async {
        let (l, port) = listener().await;
        // Accepts the TCP connection and never answers the WebSocket upgrade.
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
        });
        let mut config = TransportConfig::default();
        config.connect_timeout = Some(Duration::from_millis(200));
        let e = connect(&endpoint(&format!("ws://127.0.0.1:{port}")), &config)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::ConnectTimeout { addr, after }
                if addr == &format!("127.0.0.1:{port}") && *after == Duration::from_millis(200)),
            "{e:?}"
        );
        // The client gave up and closed: the server's read ends.
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn tcp_refused_names_the_address() {
    within(async {
        let (l, port) = listener().await;
        drop(l);
        let e = connect(
            &endpoint(&format!("stomp://127.0.0.1:{port}")),
            &TransportConfig::default(),
        )
        .await
        .unwrap_err();
        match &e {
            Error::Connect { addr, .. } => assert_eq!(addr, &format!("127.0.0.1:{port}")),
            other => panic!("expected Connect, got {other:?}"),
        }
        assert!(std::error::Error::source(&e).is_some());
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")));
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// TLS

/// A CA and a server certificate it signed for `localhost` and `127.0.0.1`.
struct Pki {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

fn make_pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "stompkit test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert: cert.der().clone(),
        key: key.serialize_der(),
    }
}

fn acceptor(pki: &Pki) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![pki.cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key.clone())),
        )
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// A temporary file, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> Self {
        let path =
            std::env::temp_dir().join(format!("stompkit-tokio-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A TLS echo server for one connection: answers each read with the same bytes, until the
/// client closes.
async fn tls_echo_server(pki: &Pki) -> (u16, tokio::task::JoinHandle<()>) {
    let (l, port) = listener().await;
    let acceptor = acceptor(pki);
    let task = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        // A client that refuses the certificate ends the handshake: nothing more to do.
        let Ok(mut tls) = acceptor.accept(s).await else {
            return;
        };
        let mut buf = [0u8; 1024];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => tls.write_all(&buf[..n]).await.unwrap(),
            }
        }
        let _ = tls.shutdown().await;
    });
    (port, task)
}

#[tokio::test]
async fn tls_verified_with_the_ca_file() {
    within(async {
        let pki = make_pki();
        let ca = TempFile::new("ca-ok.pem", pki.ca_pem.as_bytes());
        let (port, server) = tls_echo_server(&pki).await;
        let config = with_tls(TlsConfig::with_ca_file(&ca.0));
        let (mut reader, mut writer) =
            connect(&endpoint(&format!("stomp+ssl://127.0.0.1:{port}")), &config)
                .await
                .unwrap();
        writer
            .send(Bytes::from_static(b"SEND\n\nhi\0"), &[])
            .await
            .unwrap();
        let mut buf = BytesMut::new();
        read_at_least(&mut reader, &mut buf, 9).await;
        assert_eq!(&buf[..], b"SEND\n\nhi\0");
        writer.close().await.unwrap();
        while reader.read(&mut buf).await.unwrap() != 0 {}
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn tls_with_ca_pem_bytes() {
    within(async {
        let pki = make_pki();
        let (port, server) = tls_echo_server(&pki).await;
        let config = with_tls(TlsConfig::with_ca_pem(pki.ca_pem.clone()));
        let (mut reader, mut writer) =
            connect(&endpoint(&format!("stomp+ssl://127.0.0.1:{port}")), &config)
                .await
                .unwrap();
        writer.send(Bytes::from_static(b"\n"), &[1]).await.unwrap();
        let mut buf = BytesMut::new();
        read_at_least(&mut reader, &mut buf, 1).await;
        assert_eq!(&buf[..], b"\n");
        writer.close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn tls_another_ca_is_a_certificate_error() {
    within(async {
        let pki = make_pki();
        let other = make_pki();
        let (port, server) = tls_echo_server(&pki).await;
        let config = with_tls(TlsConfig::with_ca_pem(other.ca_pem));
        let e = connect(&endpoint(&format!("stomp+ssl://127.0.0.1:{port}")), &config)
            .await
            .unwrap_err();
        assert!(e.is_certificate_error(), "{e:?}");
        assert!(matches!(&e, Error::TlsCertificate { host, .. } if host == "127.0.0.1"));
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn tls_dangerous_mode_connects_without_the_ca() {
    within(async {
        let pki = make_pki();
        let (port, server) = tls_echo_server(&pki).await;
        let tls = TlsConfig::system_roots().dangerous_accept_any_certificate();
        assert!(tls.accepts_any_certificate());
        let config = with_tls(tls);
        let (mut reader, mut writer) =
            connect(&endpoint(&format!("stomp+ssl://127.0.0.1:{port}")), &config)
                .await
                .unwrap();
        writer.send(Bytes::from_static(b"x"), &[1]).await.unwrap();
        let mut buf = BytesMut::new();
        read_at_least(&mut reader, &mut buf, 1).await;
        assert_eq!(&buf[..], b"x");
        writer.close().await.unwrap();
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn ca_file_problems_are_reported_before_connecting() {
    within(async {
        // Nothing listens here: a configuration error must come first.
        let e = endpoint("stomp+ssl://127.0.0.1:9");
        let missing = std::env::temp_dir().join("stompkit-tokio-no-such-ca.pem");
        let err = connect(&e, &with_tls(TlsConfig::with_ca_file(&missing)))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::CaFile { path, .. } if path == &missing),
            "{err:?}"
        );

        let empty = TempFile::new("ca-empty.pem", b"no certificate here\n");
        let err = connect(&e, &with_tls(TlsConfig::with_ca_file(&empty.0)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::CaCertificates { .. }), "{err:?}");

        let garbage = b"-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n";
        let err = connect(&e, &with_tls(TlsConfig::with_ca_pem(garbage.to_vec())))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::CaCertificates { .. }), "{err:?}");
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// WebSocket

/// What the WS test server saw of the upgrade request.
#[derive(Debug, Default, Clone)]
struct SeenRequest {
    path: String,
    subprotocols: Option<String>,
    authorization: Option<String>,
}

/// Accepts one WebSocket over `stream`, records the request, answers with `pick` as the
/// subprotocol (or refuses with `refuse`).
async fn ws_accept<S>(
    stream: S,
    pick: Option<&'static str>,
    refuse: Option<StatusCode>,
    max: Option<usize>,
) -> (Option<WebSocketStream<S>>, SeenRequest)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let seen = Arc::new(std::sync::Mutex::new(SeenRequest::default()));
    let seen2 = Arc::clone(&seen);
    // tungstenite's callback signature, not ours.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let header = |name| {
            req.headers()
                .get(name)
                .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
        };
        *seen2.lock().unwrap() = SeenRequest {
            path: req.uri().to_string(),
            subprotocols: header("sec-websocket-protocol"),
            authorization: header("authorization"),
        };
        if let Some(status) = refuse {
            let mut e = ErrorResponse::new(Some("go away".to_owned()));
            *e.status_mut() = status;
            return Err(e);
        }
        if let Some(p) = pick {
            resp.headers_mut()
                .insert("sec-websocket-protocol", HeaderValue::from_static(p));
        }
        Ok(resp)
    };
    let config = max.map(|m| {
        WebSocketConfig::default()
            .max_message_size(Some(m))
            .max_frame_size(Some(m))
    });
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, config)
        .await
        .ok();
    let seen = seen.lock().unwrap().clone();
    (ws, seen)
}

fn ws_config_with_token() -> TransportConfig {
    let mut config = TransportConfig::default();
    config
        .ws
        .headers
        .push(("Authorization".to_owned(), "Bearer t0k3n".to_owned()));
    config
}

/// The payload bytes of a data message, and whether it was text.
fn payload(m: &Message) -> (Vec<u8>, bool) {
    match m {
        Message::Text(t) => (t.as_bytes().to_vec(), true),
        Message::Binary(b) => (b.to_vec(), false),
        other => panic!("expected a data message, got {other:?}"),
    }
}

const F1: &[u8] = b"SEND\ndestination:/queue/a\n\none\0";
const F2: &[u8] = b"SEND\ndestination:/queue/b\n\ntwo\0";
const F3: &[u8] = b"SUBSCRIBE\nid:0\ndestination:/queue/c\n\n\0";

#[tokio::test]
async fn ws_one_message_per_frame_and_reassembly() {
    within(async {
        let (l, port) = listener().await;
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let (ws, seen) = ws_accept(s, Some("v12.stomp"), None, None).await;
            let mut ws = ws.unwrap();
            let mut got = Vec::new();
            while got.len() < 4 {
                let m = ws.next().await.unwrap().unwrap();
                if m.is_text() || m.is_binary() {
                    got.push(payload(&m));
                }
            }
            // A frame split across two messages, then two frames packed in one.
            let (a, b) = F1.split_at(10);
            ws.send(Message::binary(a.to_vec())).await.unwrap();
            ws.send(Message::text(String::from_utf8(b.to_vec()).unwrap()))
                .await
                .unwrap();
            ws.send(Message::binary([F2, F3].concat())).await.unwrap();
            ws.send(Message::Close(None)).await.unwrap();
            // Drive the close handshake to its end.
            while let Some(Ok(_)) = ws.next().await {}
            (seen, got)
        });

        let e = endpoint(&format!("ws://guest:guest@127.0.0.1:{port}/ws?v=1"));
        let (mut reader, mut writer) = connect(&e, &ws_config_with_token()).await.unwrap();
        assert_eq!(reader.ws_subprotocol(), Some("v12.stomp"));

        let data = Bytes::from([F1, F2, F3, b"\n"].concat());
        let ends = [
            F1.len(),
            F1.len() + F2.len(),
            F1.len() + F2.len() + F3.len(),
            data.len(),
        ];
        writer.send(data, &ends).await.unwrap();

        let mut buf = BytesMut::new();
        while reader.read(&mut buf).await.unwrap() != 0 {}
        assert_eq!(&buf[..], [F1, F2, F3].concat());
        assert_eq!(reader.read(&mut buf).await.unwrap(), 0);

        let (seen, got) = server.await.unwrap();
        assert_eq!(seen.path, "/ws?v=1");
        assert_eq!(
            seen.subprotocols.as_deref(),
            Some("v12.stomp, v11.stomp, v10.stomp")
        );
        assert_eq!(seen.authorization.as_deref(), Some("Bearer t0k3n"));
        let expected: Vec<(Vec<u8>, bool)> = [F1, F2, F3, b"\n"]
            .iter()
            .map(|f| (f.to_vec(), true))
            .collect();
        assert_eq!(got, expected);
    })
    .await;
}

#[tokio::test]
async fn ws_binary_mode_and_non_utf8_frames() {
    within(async {
        let (l, port) = listener().await;
        let server = tokio::spawn(async move {
            let mut all = Vec::new();
            for _ in 0..2 {
                let (s, _) = l.accept().await.unwrap();
                let (ws, _) = ws_accept(s, Some("v12.stomp"), None, None).await;
                let mut ws = ws.unwrap();
                let m = ws.next().await.unwrap().unwrap();
                all.push(payload(&m));
            }
            all
        });
        let e = endpoint(&format!("ws://127.0.0.1:{port}/"));
        let binary_body = Bytes::from_static(b"SEND\ndestination:/q\n\n\xff\xfe\0");

        // Text mode, but the body is not UTF-8: a binary message.
        let (_r, mut w) = connect(&e, &TransportConfig::default()).await.unwrap();
        w.send(binary_body.clone(), &[binary_body.len()])
            .await
            .unwrap();

        // Binary mode: even a UTF-8 frame goes as binary.
        let mut config = TransportConfig::default();
        config.ws.binary = true;
        let (_r2, mut w2) = connect(&e, &config).await.unwrap();
        w2.send(Bytes::from_static(F1), &[]).await.unwrap();

        let all = server.await.unwrap();
        assert_eq!(
            all,
            vec![(binary_body.to_vec(), false), (F1.to_vec(), false)]
        );
    })
    .await;
}

#[tokio::test]
async fn ws_server_picking_no_subprotocol_is_accepted() {
    within(async {
        let (l, port) = listener().await;
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            // The first attempt (with the offer) fails on the client's side; the second
            // comes without the offer.
            for _ in 0..2 {
                let (s, _) = l.accept().await.unwrap();
                let (ws, request) = ws_accept(s, None, None, None).await;
                seen.push(request.subprotocols);
                if let Some(mut ws) = ws {
                    if let Some(Ok(m)) = ws.next().await {
                        seen.push(Some(String::from_utf8(payload(&m).0).unwrap()));
                    }
                }
            }
            seen
        });
        let e = endpoint(&format!("ws://127.0.0.1:{port}"));
        let (reader, mut writer) = connect(&e, &TransportConfig::default()).await.unwrap();
        assert_eq!(reader.ws_subprotocol(), None);
        writer.send(Bytes::from_static(b"\n"), &[1]).await.unwrap();
        let seen = server.await.unwrap();
        assert_eq!(seen[0].as_deref(), Some("v12.stomp, v11.stomp, v10.stomp"));
        assert_eq!(seen[1..], [None, Some("\n".to_owned())]);
    })
    .await;
}

#[tokio::test]
async fn ws_handshake_refused_gives_the_status() {
    within(async {
        let (l, port) = listener().await;
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            ws_accept(s, None, Some(StatusCode::FORBIDDEN), None)
                .await
                .1
        });
        let e = endpoint(&format!("ws://u:s3cret@127.0.0.1:{port}/stomp"));
        let err = connect(&e, &ws_config_with_token()).await.unwrap_err();
        match &err {
            Error::WsHandshakeRefused { status, url } => {
                assert_eq!(*status, 403);
                assert_eq!(url, &format!("ws://127.0.0.1:{port}/stomp"));
            }
            other => panic!("expected WsHandshakeRefused, got {other:?}"),
        }
        assert!(!format!("{err} {err:?}").contains("s3cret"));
        assert_eq!(
            server.await.unwrap().authorization.as_deref(),
            Some("Bearer t0k3n")
        );
    })
    .await;
}

#[tokio::test]
async fn ws_message_over_the_limit_is_a_typed_error() {
    within(async {
        let (l, port) = listener().await;
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let (ws, _) = ws_accept(s, Some("v12.stomp"), None, None).await;
            let mut ws = ws.unwrap();
            ws.send(Message::binary(vec![b'x'; 2048])).await.unwrap();
            // Wait for the client to go away.
            while let Some(Ok(_)) = ws.next().await {}
        });
        let mut config = TransportConfig::default();
        config.ws.max_message_bytes = 1024;
        let (mut reader, _writer) = connect(&endpoint(&format!("ws://127.0.0.1:{port}")), &config)
            .await
            .unwrap();
        let mut buf = BytesMut::new();
        let err = reader.read(&mut buf).await.unwrap_err();
        assert!(
            matches!(err, Error::WsMessageTooLarge { max: 1024, size } if size > 1024),
            "{err:?}"
        );
        assert!(buf.is_empty());
        drop((reader, _writer));
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn ws_pings_are_answered_while_the_writer_is_idle() {
    within(async {
        let (l, port) = listener().await;
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let (ws, _) = ws_accept(s, Some("v12.stomp"), None, None).await;
            let mut ws = ws.unwrap();
            ws.send(Message::Ping(Bytes::from_static(b"are you there")))
                .await
                .unwrap();
            let pong = loop {
                match ws.next().await.unwrap().unwrap() {
                    Message::Pong(p) => break p,
                    _ => continue,
                }
            };
            ws.send(Message::text("\n")).await.unwrap();
            pong
        });
        let (mut reader, _writer) = connect(
            &endpoint(&format!("ws://127.0.0.1:{port}")),
            &TransportConfig::default(),
        )
        .await
        .unwrap();
        // Only the reader runs; the server sends its EOL only after the pong came.
        let mut buf = BytesMut::new();
        assert_eq!(reader.read(&mut buf).await.unwrap(), 1);
        assert_eq!(&buf[..], b"\n");
        assert_eq!(&server.await.unwrap()[..], b"are you there");
    })
    .await;
}

#[tokio::test]
async fn ws_close_from_the_client() {
    within(async {
        let (l, port) = listener().await;
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let (ws, _) = ws_accept(s, Some("v12.stomp"), None, None).await;
            let mut ws = ws.unwrap();
            let mut closed = false;
            while let Some(Ok(m)) = ws.next().await {
                closed |= m.is_close();
            }
            closed
        });
        let (mut reader, mut writer) = connect(
            &endpoint(&format!("ws://127.0.0.1:{port}")),
            &TransportConfig::default(),
        )
        .await
        .unwrap();
        writer.close().await.unwrap();
        let mut buf = BytesMut::new();
        assert_eq!(reader.read(&mut buf).await.unwrap(), 0);
        assert!(server.await.unwrap(), "the server saw no close message");
    })
    .await;
}

#[tokio::test]
async fn wss_round_trip_with_the_test_ca() {
    within(async {
        let pki = make_pki();
        let acceptor = acceptor(&pki);
        let (l, port) = listener().await;
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let tls = acceptor.accept(s).await.unwrap();
            let (ws, seen) = ws_accept(tls, Some("v11.stomp"), None, None).await;
            let mut ws = ws.unwrap();
            let m = ws.next().await.unwrap().unwrap();
            ws.send(Message::text("CONNECTED\nversion:1.1\n\n\0"))
                .await
                .unwrap();
            ws.send(Message::Close(None)).await.unwrap();
            while let Some(Ok(_)) = ws.next().await {}
            (seen, payload(&m))
        });
        let mut config = ws_config_with_token();
        config.tls = TlsConfig::with_ca_pem(pki.ca_pem.clone());
        let (mut reader, mut writer) =
            connect(&endpoint(&format!("wss://127.0.0.1:{port}/ws")), &config)
                .await
                .unwrap();
        assert_eq!(reader.ws_subprotocol(), Some("v11.stomp"));
        writer
            .send(Bytes::from_static(F3), &[F3.len()])
            .await
            .unwrap();
        let mut buf = BytesMut::new();
        while reader.read(&mut buf).await.unwrap() != 0 {}
        assert_eq!(&buf[..], b"CONNECTED\nversion:1.1\n\n\0");
        let (seen, got) = server.await.unwrap();
        assert_eq!(seen.authorization.as_deref(), Some("Bearer t0k3n"));
        assert_eq!(got, (F3.to_vec(), true));
    })
    .await;
}

#[tokio::test]
async fn wss_with_another_ca_is_a_certificate_error() {
    within(async {
        let pki = make_pki();
        let acceptor = acceptor(&pki);
        let (l, port) = listener().await;
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            acceptor.accept(s).await.is_err()
        });
        let mut config = TransportConfig::default();
        config.tls = TlsConfig::with_ca_pem(make_pki().ca_pem);
        let err = connect(&endpoint(&format!("wss://127.0.0.1:{port}/ws")), &config)
            .await
            .unwrap_err();
        assert!(err.is_certificate_error(), "{err:?}");
        assert!(server.await.unwrap());
    })
    .await;
}
