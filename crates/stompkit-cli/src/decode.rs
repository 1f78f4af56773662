//! `stompkit decode`: STOMP bytes on stdin to JSON Lines on stdout.

use std::io::{self, BufWriter, Read, Write};

use bytes::BytesMut;
use stompkit_codec::{Decoder, Error, Item, Limit, Limits};

use crate::json::OutLine;
use crate::{Failure, StompVersion};

/// How much `decode` asks stdin for at a time without `--chunk`.
const READ_SIZE: usize = 64 * 1024;

/// Decode STOMP bytes on stdin into JSON Lines on stdout, one object per frame
///
/// Each frame becomes one line such as
/// {"command":"MESSAGE","headers":[["destination","/queue/a"],["x","a:b"]],"body":"hello"}
/// with headers unescaped and in wire order. The body is "body" when it is valid UTF-8, else
/// "body_base64" (standard base64). A header whose name or value is not UTF-8 is written as an
/// object, e.g. {"name":"x","value_base64":"/w=="} ("name_base64" for a binary name).
///
/// Input is decoded as it arrives. On a protocol error or input that ends inside a frame, the
/// frames before it are printed, then "error: byte N: ..." goes to stderr and the exit status
/// is 2.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct Args {
    /// STOMP version whose framing rules apply (escapes, CRLF line ends)
    #[arg(long, value_enum, value_name = "VERSION", default_value = "1.2")]
    stomp_version: StompVersion,

    /// Feed the decoder exactly N bytes per round (for testing incremental decoding);
    /// by default it gets whatever each read of stdin returns
    #[arg(long, value_name = "N", value_parser = parse_chunk)]
    chunk: Option<usize>,

    /// Largest frame in bytes, from the command to the closing NUL
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_frame_bytes)]
    max_frame_bytes: usize,

    /// Most headers in one frame
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_headers)]
    max_headers: usize,

    /// Longest command or header line in bytes, without its line end
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_header_line_bytes)]
    max_header_line_bytes: usize,

    /// Also print {"heartbeat":true} for each heart-beat (an EOL between frames; brokers
    /// such as RabbitMQ and ActiveMQ also send one after every frame); by default they are
    /// skipped
    #[arg(long)]
    heartbeats: bool,
}

fn parse_chunk(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs `stompkit decode` on stdin and stdout.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let limits = Limits::default()
        .with_max_frame_bytes(args.max_frame_bytes)
        .with_max_headers(args.max_headers)
        .with_max_header_line_bytes(args.max_header_line_bytes);
    let mut decoder = Decoder::with_limits(args.stomp_version.into(), limits);
    let mut out = BufWriter::new(io::stdout().lock());
    let result = decode_stream(
        &mut decoder,
        io::stdin().lock(),
        &mut out,
        args.chunk,
        args.heartbeats,
    );
    // The frames decoded before an error are printed before the error is reported.
    let flushed = out.flush();
    result?;
    Ok(flushed?)
}

/// Decodes `input` to the end, writing one JSON line per item to `out`.
///
/// With `chunk`, the decoder is given exactly that many bytes per round (fewer only in the
/// last round); otherwise whatever one read returns. Output is flushed after each round that
/// printed something, so a live stream shows frames as they arrive.
fn decode_stream(
    decoder: &mut Decoder,
    mut input: impl Read,
    out: &mut impl Write,
    chunk: Option<usize>,
    heartbeats: bool,
) -> Result<(), Failure> {
    let mut buf = BytesMut::new();
    let mut scratch = vec![0; chunk.unwrap_or(READ_SIZE)];
    loop {
        let n = match chunk {
            Some(_) => read_full(&mut input, &mut scratch)?,
            None => read_some(&mut input, &mut scratch)?,
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&scratch[..n]);
        let mut printed = false;
        while let Some(item) = decoder.decode(&mut buf).map_err(protocol)? {
            printed |= print(out, &item, heartbeats)?;
        }
        if printed {
            out.flush()?;
        }
        if n < scratch.len() && chunk.is_some() {
            break; // `read_full` stopped short: end of input
        }
    }
    while let Some(item) = decoder.decode_eof(&mut buf).map_err(protocol)? {
        print(out, &item, heartbeats)?;
    }
    Ok(())
}

/// The codec's message, except that a limit is named by the flag that sets it: the codec
/// names its `Limits` field, which a CLI user never sees.
fn protocol(error: Error) -> Failure {
    if let Error::LimitExceeded { offset, limit, max } = &error {
        let flag = match limit {
            Limit::FrameBytes => Some("--max-frame-bytes"),
            Limit::Headers => Some("--max-headers"),
            Limit::HeaderLineBytes => Some("--max-header-line-bytes"),
            _ => None,
        };
        if let Some(flag) = flag {
            return Failure::Input(format!(
                "byte {offset}: frame exceeds {flag} {max}; raise {flag} if the input is trusted"
            ));
        }
    }
    Failure::Input(error.to_string())
}

/// Writes `item`'s line unless it is a heart-beat that is not wanted; whether it wrote.
fn print(out: &mut impl Write, item: &Item, heartbeats: bool) -> io::Result<bool> {
    if matches!(item, Item::Heartbeat) && !heartbeats {
        return Ok(false);
    }
    serde_json::to_writer(&mut *out, &OutLine::from_item(item))?;
    out.write_all(b"\n")?;
    Ok(true)
}

/// One read, retried if interrupted; 0 at end of input.
fn read_some(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// Reads until `buf` is full or the input ends; how many bytes were read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match read_some(input, &mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use stompkit_codec::Version;

    use super::*;

    /// A reader that returns at most `max` bytes per read, to check `--chunk` does not
    /// depend on how the input arrives.
    struct Trickle<'a> {
        data: &'a [u8],
        max: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.max).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// A writer that records the length of the output at each flush.
    #[derive(Default)]
    struct Recorder {
        out: Vec<u8>,
        flushes: Vec<usize>,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.out.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            self.flushes.push(self.out.len());
            Ok(())
        }
    }

    const TWO_FRAMES: &[u8] = b"RECEIPT\nreceipt-id:1\n\n\0\nRECEIPT\nreceipt-id:2\n\n\0";

    fn decode(input: impl Read, chunk: Option<usize>) -> (Result<(), Failure>, Recorder) {
        let mut decoder = Decoder::new(Version::V1_2);
        let mut out = Recorder::default();
        let result = decode_stream(&mut decoder, input, &mut out, chunk, true);
        (result, out)
    }

    #[test]
    fn chunked_rounds_are_exactly_n_bytes_however_input_arrives() {
        // The first frame is 23 bytes and is followed by a heart-beat. Fed 12 bytes per
        // round from a reader returning 5 bytes per read, it completes in round 2 (24
        // bytes fed), together with the heart-beat, so the first flush holds both lines.
        let (result, out) = decode(
            Trickle {
                data: TWO_FRAMES,
                max: 5,
            },
            Some(12),
        );
        assert!(result.is_ok());
        let first = br#"{"command":"RECEIPT","headers":[["receipt-id","1"]],"body":""}"#;
        assert_eq!(
            out.flushes[0],
            first.len() + 1 + r#"{"heartbeat":true}"#.len() + 1
        );
        assert!(out.out.starts_with(first));
        assert_eq!(out.out.split(|&b| b == b'\n').count(), 4); // 3 lines and the final LF
    }

    #[test]
    fn without_chunk_each_read_is_decoded_at_once() {
        let (result, out) = decode(
            Trickle {
                data: TWO_FRAMES,
                max: 23,
            },
            None,
        );
        assert!(result.is_ok());
        // Read 1 completes frame 1, read 2 the heart-beat, read 3 frame 2: one flush each.
        assert_eq!(out.flushes.len(), 3);
    }

    #[test]
    fn truncation_is_an_input_failure_after_the_complete_frames() {
        let (result, out) = decode(&TWO_FRAMES[..30], Some(7));
        let Err(Failure::Input(message)) = result else {
            panic!("expected an input failure, got {result:?}");
        };
        assert!(message.contains("byte 24"), "{message}");
        assert_eq!(out.out.split(|&b| b == b'\n').count(), 3); // frame, heart-beat, ""
    }
}
