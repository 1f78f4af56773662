//! Frames per second through the session, beside the codec alone on the same frames.
//!
//! - `input`: MESSAGE bytes in, `Event::Message` out (session) vs `Decoder::decode` (codec).
//! - `send`: `Session::send` + `poll_transmit` (session) vs `Encoder::encode` of the same
//!   frame (codec).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use stompkit_codec::{Command, Encoder, Frame, Version};
use stompkit_session::Message;

#[path = "shared/mod.rs"]
mod shared;

use shared::{BATCH, codec_input, connected, messages, session_input};

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

criterion_group!(benches, input, send);
criterion_main!(benches);
