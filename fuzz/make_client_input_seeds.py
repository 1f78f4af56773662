#!/usr/bin/env python3
"""Writes the seeds of the `client_input` fuzz target into fuzz/corpus/client_input/seed-*.

    python3 fuzz/make_client_input_seeds.py [TRANSCRIPTS_DIR]
        # default crates/stompkit-session/tests/transcripts (copies of /work/shared/transcripts)

Input layout (fuzz/drive/client_input.rs): mode, plan, (size, kind) per plan step, stream.

- From each broker transcript: the server-to-client bytes after its CONNECTED (which the
  scripted broker sends itself, from the dialect table), or all of them when the broker
  answered with an ERROR. Over TCP in the chunks the socket returned them in (the plan has room
  for 7 of them, the rest in 255-byte chunks), a closed connection as a FIN; over WebSocket one
  message per chunk. Once verbatim, once with the transcript's subscription and receipt ids
  replaced by those the fuzzed client uses (sub-1 its client-individual subscription, sub-2 its
  auto one, rcpt-1 and rcpt-2 its receipted sends), so that the real frames reach its
  subscriptions and receipts.
- Hand-made hostile streams: garbage, an oversized frame, endless headers, heart-beats only,
  an ERROR storm across reconnects, a MESSAGE flood against a stalled subscription, stray
  messages and receipts, and WebSocket framing: fragments, pings, frames split across messages
  and packed into one, raw bytes, close.
"""

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "corpus" / "client_input"
TRANSCRIPTS = HERE.parent / "crates" / "stompkit-session" / "tests" / "transcripts"

# Mode bits (see client_input.rs).
WS, ECHO, HEART_BEAT, ACK_RECEIPTS, STARVE_AUTO = 1, 0x10, 0x20, 0x40, 0x80
# Dialect indices into DIALECTS; NONE: the stream answers CONNECT itself.
RABBIT_12, RABBIT_11, RABBIT_10, RABBIT_HB, ACTIVEMQ_12, ACTIVEMQ_HB, SPRING, NONE = range(8)
# Step kinds. TCP: WRITE, FIN, RST. WebSocket: TEXT .. CLOSE. PAUSE: pause after the step.
WRITE, FIN, RST = 0, 2, 3
TEXT, BINARY, FRAGMENT, PING, PONG, RAW, TCP_CLOSE, CLOSE = range(8)
PAUSE = 8


def b(text):
    """Bytes from a latin-1 string (one char per byte), like the transcripts."""
    return text.encode("latin-1")


def seed(mode, dialect, steps, stream, pause_units=0):
    """steps: [(size, kind)], at most 7; pause_units * 25 ms for steps with PAUSE."""
    assert 1 <= len(steps) <= 7 and 0 <= pause_units < 32
    out = bytearray([mode | dialect << 1, len(steps) | pause_units << 3])
    for size, kind in steps:
        assert 0 <= size < 256
        out += bytes([size, kind])
    return bytes(out + stream)


def dialect_of(connected):
    if "RabbitMQ" in connected:
        if "heart-beat:1000,1000" in connected:
            return RABBIT_HB
        return {"1.2": RABBIT_12, "1.1": RABBIT_11, "1.0": RABBIT_10}[connected.split("version:")[1][:3]]
    if "heart-beat:500,500" in connected:
        return ACTIVEMQ_HB
    return ACTIVEMQ_12


# Transcript ids -> the ids of the fuzzed client (scenario: what the transcript's client did).
REWRITES = [
    ("subscription:sub-1\n", "subscription:sub-1\n"),
    ("subscription:s\n", "subscription:sub-1\n"),
    ("subscription:t\n", "subscription:sub-2\n"),
    ("receipt-id:r-sub\n", "receipt-id:rcpt-1\n"),
    ("receipt-id:r-send\n", "receipt-id:rcpt-1\n"),
    ("receipt-id:r-commit\n", "receipt-id:rcpt-2\n"),
    ("receipt-id:r-ack\n", "receipt-id:rcpt-2\n"),
    ("receipt-id:bye\n", "receipt-id:rcpt-3\n"),
]


def adapt(text):
    for old, new in REWRITES:
        text = text.replace(old, new)
    return text


def transcript_seeds(directory):
    seeds = {}
    for path in sorted(directory.glob("*.json")):
        steps = [s for s in json.loads(path.read_text())["steps"] if s["dir"] == "s2c"]
        closed = any(s.get("closed") for s in steps)
        chunks = [s["data"] for s in steps if s["data"]]
        if chunks and chunks[0].startswith("CONNECTED"):
            dialect, chunks = dialect_of(chunks[0]), chunks[1:]
        else:
            dialect = NONE
        if not chunks and dialect != NONE:
            chunks = [""]  # nothing after CONNECTED: the broker holds the connection
        heart_beat = HEART_BEAT if "heart-beats" in path.stem else 0
        for variant, texts in (("", chunks), ("-adapted", [adapt(c) for c in chunks])):
            if variant and texts == chunks:
                continue
            stream = b("".join(texts))
            sizes = [len(t) for t in texts]
            fits = len(sizes) <= 7 and all(s < 256 for s in sizes)
            tcp_steps = [(s, WRITE) for s in sizes] if fits else [(255, WRITE)]
            if closed and fits:
                tcp_steps[-1] = (tcp_steps[-1][0], FIN)
            name = f"{path.stem}{variant}"
            seeds[f"{name}-tcp"] = seed(heart_beat | ECHO, dialect, tcp_steps[:7], stream)
            ws_steps = [(s, TEXT) for s in sizes] if fits else [(255, TEXT)]
            if closed and fits:
                ws_steps[-1] = (ws_steps[-1][0], CLOSE)
            seeds[f"{name}-ws"] = seed(WS | heart_beat, dialect, ws_steps[:7], stream)
    return seeds


def message(sub, n, body="hello", extra=""):
    return b(f"MESSAGE\nsubscription:sub-{sub}\ndestination:/queue/x\nmessage-id:m-{n}\n"
             f"ack:a-{n}\n{extra}\n{body}\0\n")


RECEIPTS = b("RECEIPT\nreceipt-id:rcpt-1\n\n\0RECEIPT\nreceipt-id:rcpt-2\n\n\0")


def handmade():
    flood = b"".join(message(2, n) for n in range(40))
    storm = b("ERROR\nmessage:storm\n\n\0") * 12
    return {
        "garbage": seed(0, NONE, [(255, WRITE)], b("HTTP/1.1 400 Bad Request\r\n\r\n")),
        "garbage-after-connected": seed(ECHO, RABBIT_12, [(255, WRITE)],
                                        b("HELLO WORLD\nthis:is\nnot stomp\n\n\0")),
        "oversized-frame": seed(0, RABBIT_12, [(200, WRITE)],
                                b("MESSAGE\nsubscription:sub-1\nmessage-id:1\n\n") + b"x" * 1100 + b"\0"),
        "oversized-content-length": seed(0, ACTIVEMQ_12, [(255, WRITE)],
                                         b("MESSAGE\nsubscription:sub-1\ncontent-length:99999\n\n")),
        "endless-headers": seed(0, RABBIT_12, [(64, WRITE)],
                                b("MESSAGE\n") + b("x-pad:aaaaaaaaaaaaaaaaaaaaaaaaa\n") * 120),
        "heart-beats-only": seed(HEART_BEAT, RABBIT_HB, [(1, WRITE | PAUSE)], b"\n" * 12, 12),
        "heart-beats-then-silence": seed(HEART_BEAT, ACTIVEMQ_HB, [(1, WRITE | PAUSE)], b"\n" * 3, 8),
        "heart-beats-no-connected": seed(HEART_BEAT, NONE, [(1, WRITE | PAUSE)], b"\n" * 20, 4),
        "error-storm": seed(0, RABBIT_12, [(len(storm) // 12, FIN)], storm),
        "error-storm-ws": seed(WS, ACTIVEMQ_12, [(len(storm) // 12, CLOSE)], storm),
        "flood-starved": seed(STARVE_AUTO | HEART_BEAT, RABBIT_HB, [(255, WRITE | PAUSE)], flood, 4),
        "flood-ws": seed(WS | STARVE_AUTO, RABBIT_12, [(60, BINARY), (200, TEXT)], flood),
        "individual-acks-with-receipts": seed(
            ECHO | ACK_RECEIPTS, RABBIT_12, [(255, WRITE)],
            b"".join(message(1, n) for n in range(6)) + RECEIPTS),
        "nul-body": seed(ECHO, ACTIVEMQ_12, [(255, WRITE)],
                         b("MESSAGE\nsubscription:sub-1\nmessage-id:n\nack:n\ncontent-length:5\n\n"
                           "a\0b\0c\0\n")),
        "stray-and-unknown-receipt": seed(0, RABBIT_11, [(255, WRITE)],
                                          message(9, 1) + b("RECEIPT\nreceipt-id:rcpt-77\n\n\0")
                                          + b("RECEIPT\nreceipt-id:nope\n\n\0") + RECEIPTS + RECEIPTS),
        "send-refused": seed(0, RABBIT_12, [(255, WRITE)],
                             b("ERROR\nreceipt-id:rcpt-1\nmessage:refused\ncontent-length:4\n\nnope\0\n")),
        "reconnect-redelivery": seed(ECHO, RABBIT_12, [(len(message(1, 1)), RST), (255, WRITE)],
                                     message(1, 1) + message(1, 1, extra="redelivered:true\n")),
        "spring-ws": seed(WS | ECHO, SPRING, [(255, TEXT)], message(2, 1, '{"a":1}') + RECEIPTS),
        "ws-fragments": seed(WS, RABBIT_12, [(10, FRAGMENT), (10, FRAGMENT), (255, BINARY)],
                             message(1, 1) + message(2, 2)),
        "ws-split-and-packed": seed(WS | ECHO, ACTIVEMQ_12, [(7, TEXT), (150, BINARY), (3, TEXT)],
                                    message(1, 1) * 3 + RECEIPTS),
        "ws-ping-pong": seed(WS, RABBIT_12, [(4, PING), (4, PONG), (255, TEXT)],
                             b"ping" + b"pong" + message(2, 1)),
        "ws-raw-bytes": seed(WS, RABBIT_12, [(6, RAW)], b"\x81\x7f\xff\xff\xff\xff"),
        "ws-tcp-close": seed(WS | ECHO, RABBIT_10, [(len(message(1, 1)), TCP_CLOSE), (255, TEXT)],
                             message(1, 1) + message(1, 2)),
        "ws-invalid-utf8-text": seed(WS, RABBIT_12, [(255, TEXT)], message(2, 1, "\xff\xfe")),
    }


def main():
    directory = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else TRANSCRIPTS
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in {**transcript_seeds(directory), **handmade()}.items():
        (OUT / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    main()
