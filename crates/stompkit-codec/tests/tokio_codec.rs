//! The `tokio_util::codec` integration over an in-memory pipe.

use futures::{SinkExt, StreamExt};
use stompkit_codec::{Command, Error, Frame, Item, StompCodec, Version};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Framed, FramedRead};

#[tokio::test]
async fn frames_and_heartbeats_cross_a_framed_pipe() {
    let (a, b) = tokio::io::duplex(64);
    let mut tx = Framed::new(a, StompCodec::new(Version::V1_2));
    let mut rx = Framed::new(b, StompCodec::new(Version::V1_2));
    let big = vec![7u8; 10_000];
    let sent = Frame::builder(Command::Send)
        .header("destination", "/q")
        .body(big)
        .build();
    // The pipe holds 64 bytes: write and read at the same time, as a socket would.
    let write = async {
        tx.send(&sent).await.unwrap();
        tx.send(Item::Heartbeat).await.unwrap();
    };
    let read = async {
        (
            rx.next().await.unwrap().unwrap(),
            rx.next().await.unwrap().unwrap(),
        )
    };
    let ((), (first, second)) = tokio::join!(write, read);
    assert_eq!(first, Item::Frame(sent.clone()));
    assert_eq!(second, Item::Heartbeat);
}

#[tokio::test]
async fn a_stream_ending_mid_frame_is_a_truncation_error() {
    let (mut a, b) = tokio::io::duplex(64);
    a.write_all(b"SEND\ndestination:/q\n\nhal").await.unwrap();
    drop(a);
    let mut rx = FramedRead::new(b, StompCodec::new(Version::V1_2));
    match rx.next().await {
        Some(Err(Error::Truncated {
            offset: 0,
            buffered: 24,
        })) => {}
        other => panic!("{other:?}"),
    }
}
