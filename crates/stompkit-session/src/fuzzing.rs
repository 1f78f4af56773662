//! Drives a session with arbitrary bytes and checks its invariants. For the cargo-fuzz
//! target and the fixed-input tests; not a public API.

use std::time::{Duration, Instant};

use crate::{
    AckMode, AckOptions, Attempt, BackoffConfig, CloseReason, Credentials, Directive, Event,
    Message, MessageHandle, Session, SessionConfig, State, Subscribe, TransactionId,
};
use stompkit_codec::Limits;

/// Canned broker frames, so the fuzzer gets past the handshake quickly.
const FRAMES: &[&[u8]] = &[
    b"CONNECTED\nversion:1.2\nheart-beat:100,100\n\n\0\n",
    b"CONNECTED\nversion:1.1\nheart-beat:0,50\n\n\0",
    b"CONNECTED\nserver:x\n\n\0",
    b"MESSAGE\nsubscription:sub-1\ndestination:/q\nmessage-id:m1\nack:a\\c1\n\nhi\0\n",
    b"MESSAGE\nsubscription:sub-2\ndestination:/q\nmessage-id:m2\nack:a2\nredelivered:true\n\n\0",
    b"RECEIPT\nreceipt-id:rcpt-1\n\n\0",
    b"RECEIPT\nreceipt-id:rcpt-2\n\n\0",
    b"RECEIPT\nreceipt-id:rcpt-3\n\n\0",
    b"ERROR\nmessage:boom\nreceipt-id:rcpt-2\n\nbody\0",
    b"ERROR\nmessage:refused\n\n\0\n",
    b"MESSAGE\nsubscription:sub-1\ndestination:/q\nmessage-id:m3\nstompkit-id:c-1\n\n\0",
    b"CONNECTED\nversion:1.0\nheart-beat:99999999999999999999,18446744073709551615\n\n\0",
    b"\n",
    b"\r\n",
];

/// Interprets `data` as a sequence of session inputs and commands, checking after each:
/// no panic, no bytes without a transport, nothing written after `DISCONNECT`, the deadline
/// never in the past (and after `handle_timeout`, in the future), bounded queue, frame
/// boundaries that cover each transmit, callbacks of an old attempt without effect.
pub fn drive(data: &[u8]) {
    let start = Instant::now();
    let mut now = start;
    let config = SessionConfig::default()
        .with_heart_beat(Duration::from_millis(100), Duration::from_millis(100))
        .with_connect_timeout(Duration::from_millis(500))
        .with_receipt_timeout(Duration::from_millis(700))
        .with_disconnect_timeout(Duration::from_millis(300))
        .with_queue(8, 4096)
        .with_duplicate_filter(4)
        .with_history(4)
        .with_limits(
            Limits::default()
                .with_max_frame_bytes(4096)
                .with_max_headers(16),
        )
        .with_healthy_after(Duration::from_millis(200))
        .with_poison_after(2)
        .with_send_window(3)
        .with_backoff(BackoffConfig::constant(Duration::from_millis(50)).max_attempts(Some(20)));
    let mut session = Session::new(config, now).expect("valid config");
    let mut transport = false;
    // The attempt whose transport is open (or being opened), and the one before it.
    let mut attempt = Attempt(0);
    let mut old_attempt = Attempt(0);
    let mut handles: Vec<MessageHandle> = Vec::new();
    let mut transactions: Vec<TransactionId> = Vec::new();
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();

    while let Some(op) = next() {
        // DISCONNECT was written (and drained) in an earlier step: nothing may follow it.
        let disconnecting = session.state() == State::Disconnecting;
        let mut timed_out = false;
        match op % 16 {
            0 => session.connect(now),
            1 if !transport => {} // nothing to report
            1 => session.transport_connected(now, attempt, Credentials::login("u", "p")),
            2 if transport => {
                transport = false;
                session.transport_closed(now, attempt, CloseReason::PeerClosed);
            }
            3 => {
                let len = usize::from(next().unwrap_or(0) % 64);
                let chunk: Vec<u8> = (0..len).map_while(|_| next()).collect();
                session.handle_input(now, attempt, &chunk);
            }
            4 | 5 => {
                let frame = FRAMES[usize::from(next().unwrap_or(0)) % FRAMES.len()];
                let split = usize::from(next().unwrap_or(255)).min(frame.len());
                session.handle_input(now, attempt, &frame[..split]);
                session.handle_input(now, attempt, &frame[split..]);
            }
            6 | 7 => {
                now += Duration::from_millis(u64::from(next().unwrap_or(1)) * 7);
                session.handle_timeout(now);
                timed_out = true;
            }
            8 => {
                let ack = match next().unwrap_or(0) % 3 {
                    0 => AckMode::Auto,
                    1 => AckMode::Client,
                    _ => AckMode::ClientIndividual,
                };
                let _ = session.subscribe(now, Subscribe::new("/q").ack(ack));
            }
            9 | 10 => {
                let flags = next().unwrap_or(0);
                let mut m =
                    Message::new("/q", vec![b'x'; usize::from(flags % 32)]).priority(flags % 3);
                if flags & 0x20 != 0 {
                    m = m.receipt();
                }
                if flags & 0x40 != 0 {
                    m = m.expires_at(now + Duration::from_millis(u64::from(flags)));
                }
                if flags & 0x80 != 0 {
                    if let Some(tx) = transactions.last() {
                        m = m.transaction(*tx);
                    }
                }
                let _ = session.send(now, m);
            }
            11 => {
                if let Some(h) =
                    handles.get(usize::from(next().unwrap_or(0)) % handles.len().max(1))
                {
                    let h = h.clone();
                    let opts = AckOptions {
                        transaction: transactions.last().copied(),
                        receipt: true,
                    };
                    let _ = if op & 0x10 != 0 {
                        session.nack_with(now, &h, opts)
                    } else {
                        session.ack_with(now, &h, opts)
                    };
                }
            }
            12 => match next().unwrap_or(0) % 3 {
                0 => {
                    if let Ok(tx) = session.begin(now, true) {
                        transactions.push(tx);
                    }
                }
                1 => {
                    if let Some(tx) = transactions.pop() {
                        let _ = session.commit(now, tx, true);
                    }
                }
                _ => {
                    if let Some(tx) = transactions.pop() {
                        let _ = session.abort(now, tx, false);
                    }
                }
            },
            13 if op & 0x10 != 0 => session.reconnect_now(now),
            13 => session.disconnect(now),
            14 => {
                let first = session.subscriptions().next().map(|(id, _)| id);
                if let Some(id) = first {
                    let _ = session.unsubscribe(now, id, true);
                }
            }
            15 if old_attempt != attempt => {
                // A late callback from an abandoned attempt's socket changes nothing.
                let state = session.state();
                let counts =
                    |s: &Session| (s.stats().bytes_in, s.stats().frames_in, s.stats().failures);
                let stats = counts(&session);
                match next().unwrap_or(0) % 3 {
                    0 => session.transport_connected(now, old_attempt, Credentials::anonymous()),
                    1 => session.handle_input(now, old_attempt, FRAMES[0]),
                    _ => session.transport_closed(now, old_attempt, CloseReason::PeerClosed),
                }
                assert_eq!(session.state(), state, "a stale callback changed the state");
                assert_eq!(
                    counts(&session),
                    stats,
                    "a stale callback changed the stats"
                );
                assert!(session.poll_event().is_none() && session.poll_directive().is_none());
            }
            _ => {}
        }

        // The driver's part, with the invariants.
        loop {
            let mut moved = false;
            while let Some(directive) = session.poll_directive() {
                moved = true;
                match directive {
                    Directive::Open(a) => {
                        assert!(!transport, "Open while a transport is open");
                        assert!(a > attempt, "attempts must grow");
                        transport = true;
                        old_attempt = attempt;
                        attempt = a;
                    }
                    Directive::Close(a) => {
                        assert_eq!(a, attempt, "Close names another attempt");
                        transport = false;
                    }
                }
            }
            while let Some(event) = session.poll_event() {
                moved = true;
                if let Event::Message { handle, .. } = event {
                    handles.push(handle);
                    if handles.len() > 16 {
                        handles.remove(0);
                    }
                }
            }
            if let Some(out) = session.poll_transmit() {
                moved = true;
                assert_eq!(out.frame_ends().last(), Some(&out.len()));
                assert!(out.frame_ends().windows(2).all(|w| w[0] < w[1]));
                assert!(transport, "bytes written without a transport");
                if disconnecting {
                    panic!("bytes written after DISCONNECT: {out:?}");
                }
            }
            if !moved {
                break;
            }
        }
        if let Some(t) = session.poll_timeout() {
            assert!(t >= now, "deadline in the past");
            if timed_out {
                assert!(t > now, "deadline not in the future after handle_timeout");
            }
        }
        assert!(session.queued() <= 8 && session.queued_bytes() <= 4096);
        assert!(session.attempts().len() <= 4);
    }
}
