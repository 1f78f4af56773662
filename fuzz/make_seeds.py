#!/usr/bin/env python3
"""Writes the seed corpus of the codec fuzz targets into fuzz/corpus/<target>/seed-*.

    python3 fuzz/make_seeds.py [TRANSCRIPTS_DIR]   # default crates/stompkit-session/tests/transcripts
    python3 fuzz/make_seeds.py --rename [TRANSCRIPTS_DIR]   # after cmin: name surviving seeds

- decode: each transcript's client->server and server->client byte streams (the `data` of
  its steps, latin-1, one char per byte), the STOMP 1.2 spec's example frames, and hand-made
  streams: escapes, CRLF, NULs in a content-length body, heart-beats, and malformed ones.
- decode_split: the hand-made streams and a few transcripts, behind a split plan (see
  `fuzzing::split_plan`: low 3 bits of byte 0 = how many chunk sizes follow).
- round_trip: frame descriptions in the format of `fuzzing::FrameInput::parse`.

Only seeds are written; the fuzzer and `cargo fuzz cmin` take it from there (docs/fuzzing.md).
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"
# The broker transcripts committed with the session's tests.
TRANSCRIPTS = ROOT.parent.parent / "crates" / "stompkit-session" / "tests" / "transcripts"


def b(text):
    """Bytes from a latin-1 string (one char per byte), like the transcripts."""
    return text.encode("latin-1")


def spec_error_frame():
    body = (
        "The message:\n-----\nMESSAGE\ndestined:/queue/a\nreceipt:message-12345\n\n"
        "Hello queue a!\n-----\nDid not contain a destination header, which is REQUIRED\n"
        "for message propagation.\n"
    )
    return b(
        "ERROR\nreceipt-id:message-12345\ncontent-type:text/plain\n"
        f"content-length:{len(body)}\nmessage:malformed frame received\n\n{body}\0"
    )


# Examples from the STOMP 1.2 specification.
SPEC = {
    "spec-connect": b("CONNECT\naccept-version:1.2\nhost:stomp.github.org\n\n\0"),
    "spec-stomp": b("STOMP\naccept-version:1.0,1.1,2.0\nhost:stomp.github.org\n\n\0"),
    "spec-connected": b("CONNECTED\nversion:1.2\n\n\0"),
    "spec-send": b("SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\n\0"),
    "spec-subscribe": b("SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0"),
    "spec-message": b(
        "MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\n"
        "content-type:text/plain\n\nhello queue a\0"
    ),
    "spec-receipt": b("RECEIPT\nreceipt-id:77\n\n\0"),
    "spec-error": spec_error_frame(),
    "spec-repeated-header": b("MESSAGE\nfoo:World\nfoo:Hello\n\n\0"),
    "spec-client-frames": b(
        "BEGIN\ntransaction:tx1\n\n\0"
        "ACK\nid:12345\ntransaction:tx1\n\n\0"
        "NACK\nid:12345\ntransaction:tx1\n\n\0"
        "COMMIT\ntransaction:tx1\n\n\0"
        "ABORT\ntransaction:tx1\n\n\0"
        "UNSUBSCRIBE\nid:0\n\n\0"
        "DISCONNECT\nreceipt:77\n\n\0"
    ),
}

HANDMADE = {
    "escapes": b("MESSAGE\ndestination:/queue/a\nkey\\cwith\\nlf:v\\\\al\\r\\nue\\c\n\n\0"),
    "crlf": b("SEND\r\ndestination:/queue/a\r\ncontent-type:text/plain\r\n\r\nbody\0\r\n\r\n"),
    "content-length-nuls": b("SEND\ndestination:/q\ncontent-length:5\n\na\0b\0c\0\n"),
    "content-length-zero-padded": b("MESSAGE\ncontent-length:0003\ncontent-length:x\n\nabc\0"),
    "heart-beats": b("\n\n\r\n\nSEND\ndestination:/q\n\n\0\n\r\n\n"),
    "raw-colons": b("CONNECTED\nsession:ID:host-1:9\nversion:1.2\n\n\0"),
    "empty-value": b("SEND\ndestination:\n\n\0"),
    "cr-in-1.1-value": b("SEND\ndestination:/q\r\n\n\0"),
    "connect-backslash": b("CONNECT\nlogin:dom\\user\npasscode:a\\b:c\n\n\0"),
    "undefined-escape": b("SEND\ndestination:/q\nx:\\t\n\n\0"),
    "trailing-backslash": b("SEND\ndestination:/q\nx:a\\\n\n\0"),
    "truncated-body": b("SEND\ndestination:/q\n\nhel"),
    "truncated-head": b("MESSAGE\ndestinat"),
    "truncated-content-length": b("MESSAGE\ncontent-length:10\n\n12345"),
    "huge-content-length": b("SEND\ncontent-length:99999999999\n\n\0"),
    "overflow-content-length": b("SEND\ncontent-length:184467440737095516160\n\n\0"),
    "negative-content-length": b("SEND\ncontent-length:-1\n\n\0"),
    "missing-nul": b("SEND\ncontent-length:2\n\nabc\0"),
    "bare-cr-command": b("SEND\rdestination:/q\n\n\0"),
    "bare-cr-header": b("SEND\ndestination:/q\r\r\n\n\0"),
    "bare-cr-heartbeat": b("\rX"),
    "lone-cr": b("\n\r"),
    "unknown-command": b("send\n\n\0"),
    "missing-colon": b("SEND\nnocolon\n\n\0"),
    "empty-name": b("SEND\n:value\n\n\0"),
    "body-on-subscribe": b("SUBSCRIBE\nid:1\n\nbody\0"),
    "content-length-on-ack": b("ACK\ncontent-length:1\n\nx\0"),
    "too-many-headers": b("SEND\n" + "".join(f"h{i}:{i}\n" for i in range(20)) + "\n\0"),
    "long-header-line": b("SEND\nx:" + "v" * 300 + "\n\n\0"),
    "big-body": b("SEND\ndestination:/q\n\n" + "0123456789abcdef" * 300 + "\0"),
}

DECODE_SPLIT_TRANSCRIPTS = [
    "activemq-client-individual-ack-s2c",
    "activemq-garbage-s2c",
    "rabbitmq-bad-passcode-s2c",
    "rabbitmq-heart-beats-s2c",
    "rabbitmq-transaction-s2c",
    "rabbitmq-nack-redelivery-s2c",
]

SPLIT_PLANS = [[1], [2, 7], [3, 1, 64], [5, 3, 0, 9, 200], [13, 1, 1, 2, 3, 5, 8]]

# Command indices in Command::ALL.
CMD = {name: i for i, name in enumerate(
    "CONNECT STOMP SEND SUBSCRIBE UNSUBSCRIBE ACK NACK BEGIN COMMIT ABORT DISCONNECT "
    "CONNECTED MESSAGE RECEIPT ERROR".split()
)}
VERSION = {"1.0": 0, "1.1": 1, "1.2": 2}
ALWAYS_LENGTH, ADD_LENGTH, LENGTH_FIRST = 4, 8, 16


def frame_input(version, command, headers, body=b"", flags=0):
    out = bytearray([VERSION[version] | flags, CMD[command], len(headers)])
    for name, value in headers:
        for part in (name, value):
            part = part if isinstance(part, bytes) else b(part)
            assert len(part) < 256
            out.append(len(part))
            out += part
    return bytes(out + body)


CONNECT = [("accept-version", "1.2"), ("host", "localhost"), ("login", "guest"),
           ("passcode", "guest"), ("heart-beat", "0,0")]
ACTIVEMQ_MESSAGE = [("expires", "0"), ("destination", "/queue/transcript-1"),
                    ("ack", "ID:broker-host-1795301228868-4:52"), ("subscription", "sub-1"),
                    ("x-path", "C:\\jobs\\new"),
                    ("message-id", "ID:broker-host-1795301228868-3:9:-1")]
JSON = b'{"type":"NEW_JOB_OFFER","jobId":123}'

ROUND_TRIP = {
    "connect-1.2": frame_input("1.2", "CONNECT", CONNECT),
    "connect-1.0": frame_input("1.0", "CONNECT", CONNECT[1:]),
    "stomp-1.1": frame_input("1.1", "STOMP", CONNECT),
    "connected-raw-colons": frame_input("1.2", "CONNECTED",
                                        [("session", "ID:broker-host-3:5"), ("version", "1.2")]),
    "message-escaped-1.2": frame_input("1.2", "MESSAGE", ACTIVEMQ_MESSAGE, JSON),
    "message-escaped-1.1": frame_input("1.1", "MESSAGE", ACTIVEMQ_MESSAGE, JSON),
    "message-1.0-raw-backslash": frame_input("1.0", "MESSAGE", ACTIVEMQ_MESSAGE, JSON),
    "send-nul-body": frame_input("1.2", "SEND", [("destination", "/q")], b"a\0b\0"),
    "send-nul-body-1.0": frame_input("1.0", "SEND", [("destination", "/q")], b"\0"),
    "send-content-length-last": frame_input("1.1", "SEND", [("destination", "/q")], b"x\0y",
                                            ADD_LENGTH),
    "send-content-length-first": frame_input("1.2", "SEND", [("destination", "/q")], b"xyz",
                                             ADD_LENGTH | LENGTH_FIRST),
    "send-always-length": frame_input("1.2", "SEND", [("destination", "/q")], b"text",
                                      ALWAYS_LENGTH),
    "error-with-body": frame_input("1.2", "ERROR",
                                   [("message", "Bad CONNECT"), ("content-type", "text/plain"),
                                    ("version", "1.0,1.1,1.2")],
                                   b"Access refused for user 'guest'\n", ADD_LENGTH),
    "escaped-specials-1.2": frame_input("1.2", "SEND",
                                        [("na:me\r\n\\", "va:l\r\nue\\"), ("x", "")]),
    "escaped-specials-1.1": frame_input("1.1", "MESSAGE",
                                        [("na:me\n\\", "va:l\r\nue\\"), ("cr", "a\r")]),
    "repeated-headers": frame_input("1.2", "MESSAGE", [("foo", "World"), ("foo", "Hello")]),
    "receipt": frame_input("1.2", "RECEIPT", [("receipt-id", "77")]),
    "ack": frame_input("1.2", "ACK", [("id", "ID:broker-host-4:52"), ("receipt", "r-ack")]),
    "nack-1.1": frame_input("1.1", "NACK", [("id", "T_s@@session-THGKKZ@@1"),
                                            ("subscription", "s")]),
    "transaction-frames": frame_input("1.2", "BEGIN", [("transaction", "tx1")]),
    "disconnect": frame_input("1.0", "DISCONNECT", [("receipt", "bye")]),
    "subscribe": frame_input("1.2", "SUBSCRIBE", [("id", "0"), ("destination", "/queue/foo"),
                                                  ("ack", "client-individual")]),
    "unsubscribe-latin1": frame_input("1.1", "UNSUBSCRIBE", [("id", b"\xff\xfe\x00")]),
    # Refused by the encoder.
    "refused-connect-lf": frame_input("1.2", "CONNECT", [("login", "a\nb")]),
    "refused-connect-colon-name": frame_input("1.1", "CONNECT", [("a:b", "c")]),
    "refused-connect-cr-1.2": frame_input("1.2", "CONNECTED", [("server", "x\r")]),
    "refused-empty-name": frame_input("1.2", "SEND", [("", "v")]),
    "refused-1.0-lf": frame_input("1.0", "SEND", [("x", "a\nb")]),
    "refused-body-on-subscribe": frame_input("1.2", "SUBSCRIBE", [("id", "1")], b"body"),
    "refused-length-mismatch": frame_input("1.2", "SEND", [("content-length", "3")], b"body"),
    "refused-length-not-decimal": frame_input("1.1", "MESSAGE", [("content-length", "+4")],
                                              b"body"),
}


def transcript_streams(transcripts):
    streams = {}
    for path in sorted(transcripts.glob("*.json")):
        steps = json.loads(path.read_text())["steps"]
        for direction in ("c2s", "s2c"):
            data = b"".join(b(s["data"]) for s in steps if s["dir"] == direction)
            if data:
                streams[f"{path.stem}-{direction}"] = data
    return streams


def seeds(transcripts):
    """{target: {name: bytes}}"""
    streams = transcript_streams(transcripts)
    decode, seen = {}, set()
    for name, data in {**streams, **SPEC, **HANDMADE}.items():
        if data not in seen:  # many CONNECT streams are byte-identical
            seen.add(data)
            decode[name] = data
    split_sources = {**{n: streams[n] for n in DECODE_SPLIT_TRANSCRIPTS}, **SPEC, **HANDMADE}
    decode_split = {}
    for i, (name, data) in enumerate(split_sources.items()):
        plan = SPLIT_PLANS[i % len(SPLIT_PLANS)]
        decode_split[name] = bytes([len(plan)] + plan) + data
    return {"decode": decode, "decode_split": decode_split, "round_trip": ROUND_TRIP}


def main():
    args = sys.argv[1:]
    rename_only = "--rename" in args
    args = [a for a in args if a != "--rename"]
    transcripts = pathlib.Path(args[0]) if args else TRANSCRIPTS
    for target, named in seeds(transcripts).items():
        directory = ROOT / target
        directory.mkdir(parents=True, exist_ok=True)
        if rename_only:
            # After `cargo fuzz cmin`, which names files by content hash: give the seeds that
            # survived their names back.
            by_content = {data: name for name, data in named.items()}
            for path in sorted(directory.iterdir()):
                name = by_content.get(path.read_bytes())
                if name and path.name != f"seed-{name}":
                    path.rename(directory / f"seed-{name}")
        else:
            for name, data in named.items():
                (directory / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    main()
