//! Codec benchmarks: stompkit-codec side by side with iridium-stomp 0.6 and tokio-stomp-2 0.3,
//! and a floor (a `memchr` scan of the same buffer for decoding, a `memcpy` of the output for
//! encoding), in one run.
//!
//! ```text
//! cargo bench -p stompkit-benches --bench codec -- --warm-up-time 1 --measurement-time 3
//! cargo run -p stompkit-benches --bin perf-report
//! ```
//!
//! Groups and bench names come from `stompkit_benches::ids`, the corpus from
//! `stompkit_benches::corpus`, the per-library code from `shared/drivers.rs`. One iteration
//! decodes (or encodes) a whole corpus item; throughput is counted in frames.
//!
//! Decoders get a fresh `BytesMut` copy of the stream and a fresh decoder from the setup of
//! `iter_batched` (not timed), and hand both back so that freeing them is not timed either.
//! Encoders that take frames by value get clones of the pre-built frames the same way.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};
use stompkit_benches::corpus::{ABSENT_BYTE, Corpus};
use stompkit_benches::ids::{self, Direction, Group};
use stompkit_codec::{Encoder, Version};

#[path = "../shared/drivers.rs"]
mod drivers;

/// Raises glibc's dynamic mmap threshold (to the size of the largest mmapped block freed so
/// far) above the largest buffer the benches allocate, as a long-running client's allocator
/// would be. Without it, whether the anchors' 1 MiB body copies come from fresh `mmap`ed,
/// page-faulting memory or from the heap depends on the allocation history of the process,
/// and their (b)/(c) times jump tenfold from one run to the next. Harmless elsewhere.
fn warm_allocator() {
    let block: Vec<u8> = Vec::with_capacity(16 * 1024 * 1024);
    drop(black_box(block));
}

fn decode(c: &mut Criterion) {
    warm_allocator();
    for spec in ids::GROUPS
        .iter()
        .filter(|g| g.direction == Direction::Decode)
    {
        let corpus = spec.corpus.build();
        let mut group = c.benchmark_group(spec.name);
        group.throughput(Throughput::Elements(corpus.frames() as u64));
        decode_group(&mut group, spec, &corpus);
        group.finish();
    }
}

fn decode_group(group: &mut BenchmarkGroup<'_, WallTime>, spec: &Group, corpus: &Corpus) {
    let wire = &corpus.wire[..];
    let fresh = || BytesMut::from(wire);

    if spec.measures(ids::STOMPKIT) {
        group.bench_function(ids::STOMPKIT, |b| {
            b.iter_batched(
                || (drivers::stompkit_decoder(), fresh()),
                |(mut decoder, mut buf)| {
                    let counts = drivers::decode_stompkit(&mut decoder, &mut buf);
                    (counts, decoder, buf)
                },
                BatchSize::LargeInput,
            );
        });
    }
    if spec.measures(ids::STOMPKIT_SLICE) {
        group.bench_function(ids::STOMPKIT_SLICE, |b| {
            b.iter_batched(
                || (drivers::stompkit_decoder(), fresh()),
                |(mut decoder, buf)| {
                    let counts = drivers::decode_stompkit_slice(&mut decoder, &buf);
                    (counts, decoder, buf)
                },
                BatchSize::LargeInput,
            );
        });
    }
    if spec.measures(ids::IRIDIUM_CODEC) {
        group.bench_function(ids::IRIDIUM_CODEC, |b| {
            b.iter_batched(
                || (drivers::iridium_codec(), fresh()),
                |(mut codec, mut buf)| {
                    let counts = drivers::decode_iridium_codec(&mut codec, &mut buf);
                    (counts, codec, buf)
                },
                BatchSize::LargeInput,
            );
        });
    }
    if spec.measures(ids::IRIDIUM_PARSER) {
        group.bench_function(ids::IRIDIUM_PARSER, |b| {
            b.iter_batched(
                fresh,
                |buf| (drivers::decode_iridium_parser(&buf), buf),
                BatchSize::LargeInput,
            );
        });
    }
    if spec.measures(ids::TOKIO_STOMP_2) {
        group.bench_function(ids::TOKIO_STOMP_2, |b| {
            b.iter_batched(
                || (tokio_stomp_2::client::ClientCodec, fresh()),
                |(mut codec, mut buf)| {
                    let counts = drivers::decode_tokio_stomp(&mut codec, &mut buf);
                    (counts, codec, buf)
                },
                BatchSize::LargeInput,
            );
        });
    }
    if spec.measures(ids::MEMCHR_SCAN) {
        group.bench_function(ids::MEMCHR_SCAN, |b| {
            b.iter(|| memchr::memchr(ABSENT_BYTE, black_box(wire)));
        });
    }
    if spec.measures(ids::MEMCHR_NUL_ITER) {
        group.bench_function(ids::MEMCHR_NUL_ITER, |b| {
            b.iter(|| memchr::memchr_iter(0, black_box(wire)).count());
        });
    }
}

fn encode(c: &mut Criterion) {
    warm_allocator();
    for spec in ids::GROUPS
        .iter()
        .filter(|g| g.direction == Direction::Encode)
    {
        let corpus = spec.corpus.build();
        let mut group = c.benchmark_group(spec.name);
        group.throughput(Throughput::Elements(corpus.frames() as u64));
        encode_group(&mut group, spec, &corpus);
        group.finish();
    }
}

fn encode_group(group: &mut BenchmarkGroup<'_, WallTime>, spec: &Group, corpus: &Corpus) {
    // Room for every library's output, escapes included, so no run grows the buffer.
    let capacity = corpus.wire.len() * 2;
    let encoder = Encoder::new(Version::V1_2);
    let stompkit_frames: Vec<_> = corpus
        .messages
        .iter()
        .map(drivers::stompkit_frame)
        .collect();

    if spec.measures(ids::STOMPKIT) {
        let mut dst = BytesMut::with_capacity(capacity);
        group.bench_function(ids::STOMPKIT, |b| {
            b.iter(|| {
                dst.clear();
                drivers::encode_stompkit(&encoder, black_box(&stompkit_frames), &mut dst);
                black_box(dst.len())
            });
        });
    }
    if spec.measures(ids::IRIDIUM_CODEC) {
        let frames: Vec<_> = corpus.messages.iter().map(drivers::iridium_frame).collect();
        let mut codec = drivers::iridium_codec();
        let mut dst = BytesMut::with_capacity(capacity);
        group.bench_function(ids::IRIDIUM_CODEC, |b| {
            b.iter_batched(
                || frames.clone(),
                |frames| {
                    dst.clear();
                    drivers::encode_iridium(&mut codec, frames, &mut dst);
                    dst.len()
                },
                BatchSize::LargeInput,
            );
        });
    }
    if spec.measures(ids::TOKIO_STOMP_2) {
        let sends: Vec<_> = corpus
            .messages
            .iter()
            .map(drivers::tokio_stomp_send)
            .collect();
        let mut codec = tokio_stomp_2::client::ClientCodec;
        let mut dst = BytesMut::with_capacity(capacity);
        group.bench_function(ids::TOKIO_STOMP_2, |b| {
            b.iter_batched(
                || sends.clone(),
                |sends| {
                    dst.clear();
                    drivers::encode_tokio_stomp(&mut codec, sends, &mut dst);
                    dst.len()
                },
                BatchSize::LargeInput,
            );
        });
    }
    if spec.measures(ids::MEMCPY) {
        let mut encoded = BytesMut::with_capacity(capacity);
        drivers::encode_stompkit(&encoder, &stompkit_frames, &mut encoded);
        let mut dst = BytesMut::with_capacity(capacity);
        group.bench_function(ids::MEMCPY, |b| {
            b.iter(|| {
                dst.clear();
                dst.extend_from_slice(black_box(&encoded));
                black_box(dst.len())
            });
        });
    }
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
