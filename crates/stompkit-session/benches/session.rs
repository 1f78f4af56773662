//! Frames per second through the session, beside the codec alone on the same frames.
//!
//! - `input`: MESSAGE bytes in, `Event::Message` out (session) vs `Decoder::decode` (codec).
//! - `send`: `Session::send` + `poll_transmit` (session) vs `Encoder::encode` of the same
//!   frame (codec).
//! - `timers`: `poll_timeout` and a receipt confirmed with 100 000 receipted sends in
//!   flight (the deadlines are kept in order, so neither scans them).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use stompkit_codec::{Command, Encoder, Frame, Version};
use stompkit_session::Message;

#[path = "shared/mod.rs"]
mod shared;

use shared::{BATCH, codec_input, connected, connected_with, messages, session_input};

fn input(c: &mut Criterion) {
    let wire = messages();
    let mut group = c.benchmark_group("input");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("codec_decode", |b| {
        b.iter(|| assert_eq!(codec_input(&wire), BATCH));
    });
    group.bench_function("session_handle_input", |b| {
        let (mut session, now) = connected();
        b.iter(|| assert_eq!(session_input(&mut session, now, &wire), BATCH));
    });
    group.finish();
}

fn send(c: &mut Criterion) {
    let body = bytes::Bytes::from_static(br#"{"type":"NEW_JOB_OFFER","jobId":123}"#);
    let frame = Frame::builder(Command::Send)
        .header("destination", "/queue/job-offers-7")
        .header("content-type", "application/json")
        .body(body.clone())
        .build();
    let mut group = c.benchmark_group("send");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("codec_encode", |b| {
        let encoder = Encoder::new(Version::V1_2);
        let mut out = BytesMut::with_capacity(64 * 1024);
        b.iter(|| {
            out.clear();
            for _ in 0..BATCH {
                encoder.encode(black_box(&frame), &mut out).unwrap();
            }
            black_box(&out);
        });
    });
    group.bench_function("codec_build_and_encode", |b| {
        // What a caller without the session would do: build the frame, encode it.
        let encoder = Encoder::new(Version::V1_2);
        let mut out = BytesMut::with_capacity(64 * 1024);
        b.iter(|| {
            out.clear();
            for _ in 0..BATCH {
                let frame = Frame::builder(Command::Send)
                    .header("destination", "/queue/job-offers-7")
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .build();
                encoder.encode(black_box(&frame), &mut out).unwrap();
            }
            black_box(&out);
        });
    });
    group.bench_function("session_send", |b| {
        let (mut session, now) = connected();
        // The caller builds its messages; measured: send + poll_transmit.
        let batch = || {
            (0..BATCH)
                .map(|_| {
                    Message::new("/queue/job-offers-7", body.clone())
                        .header("content-type", "application/json")
                })
                .collect::<Vec<_>>()
        };
        b.iter_batched(
            batch,
            |messages| {
                for message in messages {
                    session.send(now, message).unwrap();
                }
                black_box(session.poll_transmit());
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn timers(c: &mut Criterion) {
    const IN_FLIGHT: u64 = 100_000;
    let mut group = c.benchmark_group("timers");
    let (mut session, now) = connected_with(|config| config.with_send_window(IN_FLIGHT as usize));
    for _ in 0..IN_FLIGHT {
        session
            .send(now, Message::new("/queue/a", "x").receipt())
            .unwrap();
    }
    while session.poll_transmit().is_some() {}
    assert_eq!(session.unconfirmed(), IN_FLIGHT as usize);
    group.bench_function("poll_timeout_100k_in_flight", |b| {
        b.iter(|| black_box(session.poll_timeout()));
    });
    // Confirm them in order, one per iteration (receipt numbers start after CONNECTED's
    // subscription, which took rcpt-1).
    let attempt = session.attempt().unwrap();
    let mut next = 2u64;
    group.bench_function("receipt_100k_in_flight", |b| {
        b.iter(|| {
            let frame = format!("RECEIPT\nreceipt-id:rcpt-{next}\n\n\0");
            next += 1;
            session.handle_input(now, attempt, frame.as_bytes());
            black_box(session.poll_event());
        });
    });
    group.finish();
}

criterion_group!(benches, input, send, timers);
criterion_main!(benches);
