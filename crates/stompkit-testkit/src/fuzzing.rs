//! Drives the broker core with arbitrary bytes and checks its invariants. For the cargo-fuzz
//! target and the fixed-input test; not a public API.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use stompkit_codec::{Command, Decoder, Item, Limits, Version};

use crate::{Broker, BrokerConfig, BrokerLimits, ConnectionId, Dialect};

/// Canned client frames, so the fuzzer gets past the handshake and into the interesting
/// states quickly.
const FRAMES: &[&[u8]] = &[
    b"CONNECT\naccept-version:1.0,1.1,1.2\nhost:/\nheart-beat:100,100\n\n\0",
    b"CONNECT\naccept-version:1.1\n\n\0",
    b"STOMP\naccept-version:1.0\n\n\0",
    b"SUBSCRIBE\nid:a\ndestination:/queue/q\nack:client\n\n\0",
    b"SUBSCRIBE\nid:b\ndestination:/queue/q\nack:client-individual\nprefetch-count:1\n\n\0",
    b"SUBSCRIBE\nid:c\ndestination:/topic/t\n\n\0",
    b"SEND\ndestination:/queue/q\nreceipt:r\n\nhello\0",
    b"SEND\ndestination:/topic/t\nk:v\\c\n\n\0",
    b"SEND\ndestination:/queue/q\ntransaction:x\n\nin tx\0",
    b"BEGIN\ntransaction:x\n\n\0",
    b"COMMIT\ntransaction:x\n\n\0",
    b"ABORT\ntransaction:x\n\n\0",
    b"ACK\nid:T_a@@session-00000001@@1\n\n\0",
    b"NACK\nid:T_b@@session-00000001@@2\n\n\0",
    b"ACK\nmessage-id:T_b@@session-00000001@@1\nsubscription:b\n\n\0",
    b"UNSUBSCRIBE\nid:a\n\n\0",
    b"DISCONNECT\nreceipt:bye\n\n\0",
    b"\n",
];

/// The next byte of the input, or `None` at its end.
fn next(data: &mut &[u8]) -> Option<u8> {
    let (&b, rest) = data.split_first()?;
    *data = rest;
    Some(b)
}

/// Interprets `data` as connection events, inputs and clock steps, checking after each: no
/// panic, output that decodes as STOMP in the connection's version, no output after a
/// close, deadlines that move on after `handle_timeout`, and held messages within limits.
pub fn drive(mut data: &[u8]) {
    let dialect = match next(&mut data) {
        Some(b) if b & 1 == 1 => Dialect::SpringSimple,
        _ => Dialect::RabbitMq,
    };
    let limits = BrokerLimits::default()
        .with_frame(
            Limits::default()
                .with_max_frame_bytes(2048)
                .with_max_headers(16),
        )
        .with_max_connections(4)
        .with_max_queue_messages(8)
        .with_max_unacked(3)
        .with_max_output_bytes(512)
        .with_max_transaction_frames(4);
    let config = BrokerConfig::new(dialect)
        .with_heart_beat_floor(Duration::from_millis(50))
        .with_limits(limits);
    let mut broker = Broker::new(config).expect("valid config");
    let mut now = Instant::now();
    // Per open connection: its id, a decoder of what it receives, and whether it closed.
    let mut conns: Vec<(ConnectionId, Decoder, BytesMut, bool)> = Vec::new();
    while let Some(op) = next(&mut data) {
        let pick = usize::from(op >> 4);
        match op & 0x0f {
            0 | 1 => {
                if let Ok(id) = broker.open(now) {
                    conns.push((id, Decoder::new(Version::V1_2), BytesMut::new(), false));
                }
            }
            2..=7 => {
                if let Some((id, ..)) = conns.get(pick % conns.len().max(1)) {
                    let frame = FRAMES[usize::from(next(&mut data).unwrap_or(0)) % FRAMES.len()];
                    broker.handle_input(now, *id, frame);
                }
            }
            8 | 9 => {
                let len = usize::from(next(&mut data).unwrap_or(0)).min(data.len());
                let (raw, rest) = data.split_at(len);
                data = rest;
                if let Some((id, ..)) = conns.get(pick % conns.len().max(1)) {
                    broker.handle_input(now, *id, raw);
                }
            }
            10 | 11 => {
                now += Duration::from_millis(u64::from(next(&mut data).unwrap_or(0)) * 4);
                broker.handle_timeout(now);
                if let Some(at) = broker.poll_timeout() {
                    assert!(at > now, "a deadline at or before now after handle_timeout");
                }
            }
            12 if !conns.is_empty() => {
                let (id, ..) = conns.remove(pick % conns.len());
                broker.closed(now, id);
            }
            13 => {
                let _ = broker.publish("/queue/q", &[("k", "v")], "published");
            }
            14 => broker.kill_connections(now),
            _ => {}
        }
        drain(&mut broker, &mut conns, now);
    }
}

/// Takes every output and close, decoding what each client would read.
fn drain(
    broker: &mut Broker,
    conns: &mut Vec<(ConnectionId, Decoder, BytesMut, bool)>,
    now: Instant,
) {
    for (id, decoder, buf, closed) in conns.iter_mut() {
        while let Some(bytes) = broker.poll_transmit(*id) {
            assert!(!*closed, "output after close");
            buf.extend_from_slice(&bytes);
            loop {
                match decoder.decode(buf) {
                    Ok(Some(Item::Frame(frame))) => {
                        if frame.command() == Command::Connected {
                            let version = frame
                                .header_str("version")
                                .and_then(|v| v.parse().ok())
                                .expect("CONNECTED names a version");
                            decoder.set_version(version);
                        }
                        assert!(
                            !frame.command().is_client_command(),
                            "the broker sent a client frame"
                        );
                    }
                    Ok(Some(Item::Heartbeat)) => {}
                    Ok(None) => break,
                    Err(e) => panic!("broker output does not decode: {e}"),
                }
            }
        }
    }
    while let Some(id) = broker.poll_close() {
        for conn in conns.iter_mut().filter(|c| c.0 == id) {
            while let Some(bytes) = broker.poll_transmit(id) {
                conn.2.extend_from_slice(&bytes);
            }
            conn.3 = true;
        }
        broker.closed(now, id);
        conns.retain(|c| c.0 != id);
    }
    for held in broker.held("/queue/q") {
        assert!(held.body.len() <= 2048, "a message larger than a frame");
    }
    assert!(
        broker.held("/queue/q").len() <= 8 + 4 * 1024,
        "held beyond the limits"
    );
}
