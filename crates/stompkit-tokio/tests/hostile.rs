//! The client against hostile brokers (scripted peers on loopback): each misbehaviour gives
//! a typed failure, the client stays within its limits, and it reconnects where that is
//! right with its backoff growing, or gives up where retrying cannot help.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use stompkit_tokio::session::codec::{Limit, Limits};
use stompkit_tokio::session::policy::Jitter;
use stompkit_tokio::session::{
    BackoffConfig, BreakerConfig, Error as SessionError, FailureKind, GiveUpReason,
    HandshakeFailure,
};
use stompkit_tokio::{Client, ClientEvent, Error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(30);
const FRAME_LIMIT: usize = 64 * 1024;

/// A broker that answers every connection with `script` after reading the CONNECT's first
/// bytes; counts connections.
async fn hostile<F, Fut>(script: F) -> (String, Arc<AtomicU32>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "stomp://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let connections = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut first = [0u8; 16];
            let _ = stream.read(&mut first).await;
            tokio::spawn(script(stream));
        }
    });
    (url, connections)
}

/// Writes `head`, then `chunk` until the client goes away (an empty `chunk`: holds the
/// connection). Bounded by the test's timeout.
async fn flood(mut stream: TcpStream, head: &'static [u8], chunk: &'static [u8]) {
    if stream.write_all(head).await.is_err() {
        return;
    }
    if chunk.is_empty() {
        // Nothing more to say: hold the connection until the client leaves.
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        return;
    }
    while stream.write_all(chunk).await.is_ok() {}
}

/// A client with a small frame limit and a short, jitter-free, growing backoff that gives
/// up after `attempts`.
fn client(url: &str, attempts: u32) -> Client {
    Client::builder(url)
        .unwrap()
        .session_with(move |c| {
            c.with_limits(Limits::default().with_max_frame_bytes(FRAME_LIMIT))
                .with_connect_timeout(Duration::from_millis(500))
                .with_healthy_after(Duration::from_secs(5))
                .with_backoff(
                    BackoffConfig::exponential(
                        Duration::from_millis(50),
                        2.0,
                        Duration::from_secs(2),
                    )
                    .jitter(Jitter::None)
                    .max_attempts(Some(attempts)),
                )
                .with_breaker(BreakerConfig::default().no_consecutive_failures())
        })
        .start()
        .unwrap()
}

/// Runs until the client gives up; returns the error and every failed attempt with the
/// time it was reported.
async fn until_gave_up(
    client: &Client,
) -> (Error, Vec<(Instant, stompkit_tokio::session::Failure)>) {
    let mut events = client.events();
    let collect = async {
        let mut failures = Vec::new();
        loop {
            match events.recv().await {
                Ok(ClientEvent::AttemptFailed { failure, .. }) => {
                    failures.push((Instant::now(), failure));
                }
                Ok(ClientEvent::GaveUp { .. }) => return failures,
                Ok(_) => {}
                Err(e) => panic!("events: {e}"),
            }
        }
    };
    let failures = timeout(LIMIT, collect).await.expect("gives up in time");
    let error = client.wait_connected().await.expect_err("gave up");
    (error, failures)
}

/// The gaps between failures never undercut the backoff's schedule (50, 100, 200 ms...):
/// a lower bound, so a slow machine cannot break it.
fn assert_backoff_grows(failures: &[(Instant, stompkit_tokio::session::Failure)]) {
    for (i, pair) in failures.windows(2).enumerate() {
        let gap = pair[1].0 - pair[0].0;
        let scheduled = Duration::from_millis(50 << i);
        assert!(gap >= scheduled, "gap {i}: {gap:?} < {scheduled:?}");
    }
}

#[tokio::test]
async fn garbage_is_a_protocol_failure_retried_with_a_growing_backoff() {
    let (url, connections) =
        hostile(|stream| flood(stream, b"HTTP/1.1 400 Bad Request\r\n\r\n", b"")).await;
    let client = client(&url, 4);
    let (error, failures) = until_gave_up(&client).await;
    assert!(
        matches!(
            error,
            Error::GaveUp {
                reason: GiveUpReason::RetriesExhausted,
                ..
            }
        ),
        "{error:?}"
    );
    // The first attempt and the four retries the backoff allows.
    assert_eq!(failures.len(), 5);
    for (_, failure) in &failures {
        assert_eq!(failure.kind, FailureKind::Protocol, "{failure:?}");
        assert!(
            matches!(failure.error, Some(SessionError::Decode(_))),
            "typed: {failure:?}"
        );
    }
    assert_backoff_grows(&failures);
    assert_eq!(connections.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_never_ending_body_stops_at_the_frame_limit_and_gives_up_as_repeated() {
    // CONNECTED, then a MESSAGE whose body never ends: the same on every connection.
    let (url, connections) = hostile(|stream| {
        flood(
            stream,
            b"CONNECTED\nversion:1.2\n\n\0MESSAGE\nsubscription:sub-1\ndestination:/q\nmessage-id:1\n\n",
            &[b'x'; 4096],
        )
    })
    .await;
    let client = client(&url, 100);
    let (error, failures) = until_gave_up(&client).await;
    assert!(
        matches!(
            error,
            Error::GaveUp {
                reason: GiveUpReason::RepeatedFailure(FailureKind::Protocol),
                ..
            }
        ),
        "{error:?}"
    );
    for (_, failure) in &failures {
        assert!(
            matches!(
                &failure.error,
                Some(SessionError::Decode(
                    stompkit_tokio::session::codec::Error::LimitExceeded {
                        limit: Limit::FrameBytes,
                        ..
                    }
                ))
            ),
            "{failure:?}"
        );
    }
    // poison_after (3) connections, and no byte read past the limit plus one read chunk.
    assert_eq!(connections.load(Ordering::SeqCst), 3);
    let stats = client.stats().await.unwrap();
    assert!(
        stats.bytes_in <= 3 * (FRAME_LIMIT as u64 + 64 * 1024),
        "read {} bytes",
        stats.bytes_in
    );
}

#[tokio::test]
async fn endless_headers_stop_at_the_header_limits() {
    let (url, _) = hostile(|stream| {
        flood(
            stream,
            b"CONNECTED\nversion:1.2\n",
            b"x-pad:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
        )
    })
    .await;
    let client = client(&url, 2);
    let (_, failures) = until_gave_up(&client).await;
    assert!(!failures.is_empty());
    for (_, failure) in &failures {
        assert!(
            matches!(
                &failure.error,
                Some(SessionError::Decode(
                    stompkit_tokio::session::codec::Error::LimitExceeded { .. }
                ))
            ),
            "{failure:?}"
        );
    }
}

#[tokio::test]
async fn a_connected_naming_a_version_we_did_not_offer_is_not_retried() {
    let (url, connections) =
        hostile(|stream| flood(stream, b"CONNECTED\nversion:2.0\n\n\0", b"")).await;
    let client = client(&url, 10);
    let (error, _) = until_gave_up(&client).await;
    assert!(
        matches!(
            error,
            Error::GaveUp {
                reason: GiveUpReason::NonRetryable(FailureKind::Handshake(
                    HandshakeFailure::Version
                )),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn heart_beats_without_a_connected_time_out_the_attempt() {
    let (url, _) = hostile(|stream| async move {
        let mut stream = stream;
        for _ in 0..200 {
            if stream.write_all(b"\n").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let client = client(&url, 2);
    let (_, failures) = until_gave_up(&client).await;
    assert!(!failures.is_empty());
    for (_, failure) in &failures {
        assert_eq!(failure.kind, FailureKind::Timeout, "{failure:?}");
    }
}

#[tokio::test]
async fn an_error_storm_does_not_become_a_reconnect_storm() {
    // CONNECTED, then ERROR after ERROR: each connection ends on the first one.
    let (url, connections) = hostile(|stream| {
        flood(
            stream,
            b"CONNECTED\nversion:1.2\n\n\0",
            b"ERROR\nmessage:storm\n\n\0",
        )
    })
    .await;
    let client = client(&url, 5);
    let (error, failures) = until_gave_up(&client).await;
    assert!(
        matches!(
            error,
            Error::GaveUp {
                reason: GiveUpReason::RetriesExhausted,
                ..
            }
        ),
        "{error:?}"
    );
    for (_, failure) in &failures {
        assert_eq!(failure.kind, FailureKind::ServerError, "{failure:?}");
        assert!(
            matches!(&failure.error, Some(SessionError::Broker(f)) if f.header_str("message") == Some("storm"))
        );
    }
    // Never healthy, so the backoff never started over.
    assert_backoff_grows(&failures);
    assert_eq!(failures.len(), 6, "the first attempt and five retries");
    assert_eq!(connections.load(Ordering::SeqCst), 6);
}
