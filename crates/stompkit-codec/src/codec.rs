//! `tokio_util::codec` integration (feature `tokio-util`).

use bytes::BytesMut;

use crate::{Decoder, Encoder, Error, Frame, Item, Limits, Version};

/// A [`Decoder`] and an [`Encoder`] together, implementing `tokio_util::codec::{Decoder,
/// Encoder}` for use with `Framed`, `FramedRead` and `FramedWrite`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), stompkit_codec::Error> {
/// use futures::{SinkExt, StreamExt};
/// use stompkit_codec::{Command, Frame, Item, StompCodec, Version};
/// use tokio_util::codec::Framed;
///
/// let (client, server) = tokio::io::duplex(1024);
/// let mut client = Framed::new(client, StompCodec::new(Version::V1_2));
/// let mut server = Framed::new(server, StompCodec::new(Version::V1_2));
///
/// client.send(Frame::builder(Command::Send).header("destination", "/queue/a").body("hi").build()).await?;
/// let Some(Ok(Item::Frame(frame))) = server.next().await else { panic!() };
/// assert_eq!(frame.body(), b"hi");
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct StompCodec {
    decoder: Decoder,
    encoder: Encoder,
}

impl StompCodec {
    /// A codec for `version` with default limits.
    pub fn new(version: Version) -> Self {
        Self::with_limits(version, Limits::default())
    }

    /// A codec for `version` with the given decoder limits.
    pub fn with_limits(version: Version, limits: Limits) -> Self {
        Self {
            decoder: Decoder::with_limits(version, limits),
            encoder: Encoder::new(version),
        }
    }

    /// Switches both directions to `version` (call between frames).
    pub fn set_version(&mut self, version: Version) {
        self.decoder.set_version(version);
        self.encoder.set_version(version);
    }

    /// The decoding half.
    pub fn decoder_mut(&mut self) -> &mut Decoder {
        &mut self.decoder
    }

    /// The encoding half.
    pub fn encoder_mut(&mut self) -> &mut Encoder {
        &mut self.encoder
    }
}

impl tokio_util::codec::Decoder for StompCodec {
    type Item = Item;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Item>, Error> {
        self.decoder.decode(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Item>, Error> {
        self.decoder.decode_eof(src)
    }
}

impl tokio_util::codec::Encoder<&Frame> for StompCodec {
    type Error = Error;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), Error> {
        self.encoder.encode(frame, dst)
    }
}

impl tokio_util::codec::Encoder<Frame> for StompCodec {
    type Error = Error;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), Error> {
        self.encoder.encode(&frame, dst)
    }
}

impl tokio_util::codec::Encoder<Item> for StompCodec {
    type Error = Error;

    fn encode(&mut self, item: Item, dst: &mut BytesMut) -> Result<(), Error> {
        match item {
            Item::Frame(frame) => self.encoder.encode(&frame, dst),
            Item::Heartbeat => {
                self.encoder.encode_heartbeat(dst);
                Ok(())
            }
        }
    }
}
