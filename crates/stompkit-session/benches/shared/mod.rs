//! What the session benches share: a connected session and a batch of MESSAGE frames.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use stompkit_codec::{Decoder, Item, Version};
use stompkit_session::{Credentials, Event, Session, SessionConfig, Subscribe};

/// MESSAGE frames per iteration.
pub(crate) const BATCH: usize = 256;

/// A session connected (STOMP 1.2, no heart-beats) and subscribed to the messages' queue,
/// with its transmits and events drained.
pub(crate) fn connected() -> (Session, Instant) {
    connected_with(|config| config)
}

/// [`connected`], with the configuration changed by `tune` first.
pub(crate) fn connected_with(
    tune: impl FnOnce(SessionConfig) -> SessionConfig,
) -> (Session, Instant) {
    let now = Instant::now();
    let config = tune(SessionConfig::default().with_heart_beat(Duration::ZERO, Duration::ZERO));
    let mut session = Session::new(config, now).expect("valid config");
    session.connect(now);
    let attempt = session.attempt().expect("started");
    session.transport_connected(now, attempt, Credentials::login("guest", "guest"));
    session.handle_input(
        now,
        attempt,
        b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0\n",
    );
    session
        .subscribe(now, Subscribe::new("/queue/job-offers-7"))
        .unwrap();
    while session.poll_event().is_some() {}
    while session.poll_transmit().is_some() {}
    (session, now)
}

/// [`BATCH`] job-offer MESSAGEs for that subscription, as RabbitMQ sends them.
pub(crate) fn messages() -> Vec<u8> {
    let mut wire = Vec::new();
    for i in 0..BATCH {
        wire.extend_from_slice(
            format!(
                "MESSAGE\nsubscription:sub-1\ndestination:/queue/job-offers-7\nmessage-id:T_sub-1@@session-w__QHTR_jUQJTczXrnVt3w@@{i}\nredelivered:false\ncontent-type:application/json\ncontent-length:36\n\n{{\"type\":\"NEW_JOB_OFFER\",\"jobId\":123}}\0\n"
            )
            .as_bytes(),
        );
    }
    wire
}

/// The codec alone on `wire`: a fresh decoder and buffer, every item decoded and looked at;
/// returns the frames.
pub(crate) fn codec_input(wire: &[u8]) -> usize {
    let mut decoder = Decoder::new(Version::V1_2);
    let mut buf = BytesMut::from(wire);
    let mut frames = 0;
    while let Some(item) = decoder.decode(&mut buf).unwrap() {
        frames += usize::from(matches!(item, Item::Frame(_)));
        black_box(item);
    }
    frames
}

/// The session on `wire`: `handle_input`, then every event polled and looked at; returns the
/// `Event::Message`s.
pub(crate) fn session_input(session: &mut Session, now: Instant, wire: &[u8]) -> usize {
    let attempt = session.attempt().expect("connected");
    session.handle_input(now, attempt, black_box(wire));
    let mut messages = 0;
    while let Some(event) = session.poll_event() {
        messages += usize::from(matches!(event, Event::Message { .. }));
        black_box(event);
    }
    messages
}
