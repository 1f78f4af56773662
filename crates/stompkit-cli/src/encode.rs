//! `stompkit encode`: JSON Lines on stdin to STOMP bytes on stdout.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};

use bytes::BytesMut;
use stompkit_codec::{Encoder, Item};

use crate::json::InLine;
use crate::{Failure, StompVersion};

/// Encode JSON Lines on stdin into STOMP bytes on stdout (the reverse of decode)
///
/// Each line is a frame in the shape `decode` prints, e.g.
/// {"command":"SEND","headers":[["destination","/queue/a"]],"body":"hello"}
/// or {"heartbeat":true} for a heart-beat (one LF). Headers are given unescaped and are
/// escaped for the version; "body_base64" replaces "body" for binary bodies, and a header may
/// be {"name":..,"value_base64":..} (or "name_base64") for bytes that are not UTF-8. Blank
/// lines are skipped.
///
/// A body holding a NUL gets a content-length header. On invalid JSON or a frame the encoder
/// refuses (e.g. a line feed in a CONNECT header), the frames before it are written, then
/// "error: line N: ..." goes to stderr and the exit status is 2.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub(crate) struct Args {
    /// STOMP version whose escaping rules apply
    #[arg(long, value_enum, value_name = "VERSION", default_value = "1.2")]
    stomp_version: StompVersion,

    /// Add a content-length header to every frame with a body (a frame that sets one keeps
    /// it; by default only bodies holding a NUL get one)
    #[arg(long)]
    content_length: bool,
}

/// Runs `stompkit encode` on stdin and stdout.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let encoder = Encoder::new(args.stomp_version.into()).with_content_length(args.content_length);
    let mut out = BufWriter::new(io::stdout().lock());
    let input = BufReader::with_capacity(64 * 1024, io::stdin().lock());
    let result = encode_stream(&encoder, input, &mut out);
    // The frames encoded before an error are written before the error is reported.
    let flushed = out.flush();
    result?;
    Ok(flushed?)
}

/// Encodes every line of `input` to `out`, flushing whenever no more input is buffered (so
/// frames piped in one at a time go out one at a time).
fn encode_stream(
    encoder: &Encoder,
    mut input: BufReader<impl Read>,
    out: &mut impl Write,
) -> Result<(), Failure> {
    let mut line = Vec::new();
    let mut wire = BytesMut::new();
    let mut number = 0u64;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let at_line = |message: String| Failure::Input(format!("line {number}{message}"));
        let parsed: InLine = serde_json::from_slice(&line).map_err(|e| at_line(json_error(&e)))?;
        match parsed.into_item().map_err(|m| at_line(format!(": {m}")))? {
            Item::Frame(frame) => encoder
                .encode(&frame, &mut wire)
                .map_err(|e| at_line(format!(": {e}")))?,
            Item::Heartbeat => encoder.encode_heartbeat(&mut wire),
        }
        out.write_all(&wire)?;
        wire.clear();
        if input.buffer().is_empty() {
            out.flush()?;
        }
    }
}

/// `, column C: message` for a JSON error in a single line (serde_json's own text ends with
/// "at line 1 column C", which would be confusing next to the input's line number).
fn json_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&position) {
        Some(message) if error.line() == 1 => {
            format!(", column {}: invalid JSON: {message}", error.column())
        }
        _ => format!(": invalid JSON: {text}"),
    }
}

#[cfg(test)]
mod tests {
    use stompkit_codec::Version;

    use super::*;

    fn encode(input: &str) -> (Result<(), Failure>, Vec<u8>) {
        let mut out = Vec::new();
        let input = BufReader::new(input.as_bytes());
        let result = encode_stream(&Encoder::new(Version::V1_2), input, &mut out);
        (result, out)
    }

    fn failure(result: Result<(), Failure>) -> String {
        match result {
            Err(Failure::Input(message)) => message,
            other => panic!("expected an input failure, got {other:?}"),
        }
    }

    #[test]
    fn lines_become_frames_and_heartbeats() {
        let (result, out) = encode(
            "{\"command\":\"SEND\",\"headers\":[[\"a\",\"b:c\"]],\"body\":\"hi\"}\n\n  \n\
             {\"heartbeat\":true}\r\n{\"command\":\"DISCONNECT\"}",
        );
        assert!(result.is_ok());
        assert_eq!(out, b"SEND\na:b\\cc\n\nhi\0\nDISCONNECT\n\n\0");
    }

    #[test]
    fn json_errors_name_line_and_column() {
        let (result, out) = encode("{\"heartbeat\":true}\n\n{\"command\":\"SEND\",}\n");
        assert_eq!(out, b"\n");
        let message = failure(result);
        assert!(
            message.starts_with("line 3, column 19: invalid JSON: "),
            "{message}"
        );
        assert!(!message.contains("at line"), "{message}");
    }

    #[test]
    fn frame_errors_name_the_line() {
        for (input, expected) in [
            (r#"{"command":"send"}"#, "line 1: unknown command \"send\""),
            (
                r#"{"command":"SEND","body":"","body_base64":""}"#,
                "line 1: give either",
            ),
            (
                r#"{"command":"SEND","body_base64":"***"}"#,
                "line 1: invalid body_base64",
            ),
            (
                r#"{"heartbeat":false}"#,
                "line 1: \"heartbeat\" must be true",
            ),
            (r#"{"headers":[]}"#, "line 1: missing field `command`"),
            (
                r#"{"command":"ACK","body":"x"}"#,
                "line 1: a ACK frame must not have a body",
            ),
        ] {
            let message = failure(encode(input).0);
            assert!(message.starts_with(expected), "{input}: {message}");
        }
    }
}
