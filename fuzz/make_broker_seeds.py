#!/usr/bin/env python3
"""Writes the seeds of the `broker` fuzz target into fuzz/corpus/broker/seed-*.

    python3 fuzz/make_broker_seeds.py [TRANSCRIPTS_DIR]
        # default crates/stompkit-session/tests/transcripts (copies of /work/shared/transcripts)

Input layout (crates/stompkit-testkit/src/fuzzing.rs, `drive`): byte 0 picks the dialect (odd:
SpringSimple, even: RabbitMq); then operations, one byte each, the high nibble picking an open
connection: 0-1 open, 2-7 a canned frame (next byte indexes FRAMES), 8-9 raw input (next byte a
length, then that many bytes), 10-11 advance the clock by 4 ms per unit of the next byte and
handle timeouts, 12 the peer closes, 13 publish to /queue/q, 14 kill every connection.

- From each transcript: the client-to-broker bytes, in the chunks the client wrote them, with
  the clock advanced between them as in the transcript. Once verbatim (RabbitMQ dialect, and
  SpringSimple for the 1.x connects), once with the ack ids replaced by those the testkit broker
  gives (`T_<sub>@@session-00000001@@<n>`), so that ACK and NACK find their message.
- Hand-made: every version's CONNECT and STOMP, each client command with receipts, heart-beat
  EOLs against heart-beat deadlines, escapes, content-length bodies with NULs, CRLF, several
  connections sharing a queue, the queue, unacked, transaction and connection limits, garbage,
  an oversized frame and endless headers, and the canned frames in bulk.
"""

import json
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "corpus" / "broker"
TRANSCRIPTS = HERE.parent / "crates" / "stompkit-session" / "tests" / "transcripts"

RABBIT, SPRING = 0, 1
# Indices into fuzzing.rs's FRAMES.
(CONNECT_ALL, CONNECT_11, STOMP_10, SUB_A, SUB_B, SUB_C, SEND_RECEIPT, SEND_TOPIC, SEND_TX,
 BEGIN, COMMIT, ABORT, ACK_A1, NACK_B2, ACK_B1_11, UNSUB_A, DISCONNECT, EOL) = range(18)


def b(text):
    """Bytes from a latin-1 string (one char per byte), like the transcripts."""
    return text.encode("latin-1")


class Ops:
    """Builds a `drive` input, one operation at a time."""

    def __init__(self, dialect=RABBIT):
        self.out = bytearray([dialect])

    def open(self):
        self.out.append(0)
        return self

    def frame(self, index, conn=0):
        self.out += bytes([conn << 4 | 2, index])
        return self

    def raw(self, data, conn=0):
        """Raw input, in chunks of at most 255 bytes (the length is one byte)."""
        data = b(data) if isinstance(data, str) else data
        for at in range(0, len(data), 255):
            chunk = data[at:at + 255]
            self.out += bytes([conn << 4 | 8, len(chunk)]) + chunk
        return self

    def wait(self, ms):
        """Advances the clock by about `ms`, in steps of at most 1020 ms."""
        units = max(1, ms // 4) if ms > 0 else 0
        while units > 0:
            step = min(units, 255)
            self.out += bytes([10, step])
            units -= step
        return self

    def close(self, conn=0):
        self.out.append(conn << 4 | 12)
        return self

    def publish(self):
        self.out.append(13)
        return self

    def kill(self):
        self.out.append(14)
        return self

    def bytes(self):
        return bytes(self.out)


def adapt(steps):
    """The client's ACK/NACK ids replaced by the ids the testkit broker gives its messages."""
    subs = []
    acked = 0
    out = []
    for data in steps:
        subs += re.findall(r"SUBSCRIBE\nid:([^\n]*)\n", data)
        def ack_id(match):
            nonlocal acked
            acked += 1
            sub = subs[-1] if subs else "sub-1"
            return f"{match.group(1)}\nid:T_{sub}@@session-00000001@@{acked}\n"
        out.append(re.sub(r"((?:^|\x00)(?:ACK|NACK))\nid:[^\n]*\n", ack_id, data))
    return out


def transcript_seeds(directory):
    seeds = {}
    for path in sorted(directory.glob("*.json")):
        steps = [s for s in json.loads(path.read_text())["steps"] if s["dir"] == "c2s"]
        chunks = [s["data"] for s in steps]
        variants = [("", RABBIT, chunks)]
        adapted = adapt(chunks)
        if adapted != chunks:
            variants.append(("-adapted", RABBIT, adapted))
        if "connect-1." in path.stem:
            variants.append(("-spring", SPRING, chunks))
        for suffix, dialect, texts in variants:
            ops = Ops(dialect).open()
            at = 0
            for step, text in zip(steps, texts):
                ops.wait(step["at_ms"] - at)
                at = step["at_ms"]
                ops.raw(text)
                if step.get("closed"):
                    ops.close()
            ops.wait(600)
            seeds[f"{path.stem}{suffix}"] = ops.bytes()
    return seeds


CONNECT = {
    "1.0": "CONNECT\nlogin:guest\npasscode:guest\n\n\0",
    "1.1": "CONNECT\naccept-version:1.1\nhost:/\n\n\0",
    "1.2": "CONNECT\naccept-version:1.2\nhost:/\n\n\0",
}
SUB = "SUBSCRIBE\nid:s\ndestination:/queue/q\nack:{ack}\nreceipt:r-sub\n\n\0"


def connected(version="1.2", dialect=RABBIT, heart_beat=None):
    frame = CONNECT[version]
    if heart_beat:
        frame = frame.replace("\n\n", f"\nheart-beat:{heart_beat}\n\n", 1)
    return Ops(dialect).open().raw(frame)


def handmade():
    seeds = {}
    # Every version, CONNECT and STOMP, in both dialects, then a round of each command.
    for version in ("1.0", "1.1", "1.2"):
        for dialect, name in ((RABBIT, "rabbit"), (SPRING, "spring")):
            ack = "client" if version == "1.0" else "client-individual"
            ack_frame = ("ACK\nmessage-id:T_s@@session-00000001@@1\nsubscription:s\n"
                         if version != "1.2" else "ACK\nid:T_s@@session-00000001@@1\n")
            if dialect == SPRING:
                ack_frame = ack_frame.replace("T_s@@session-00000001@@1", "session-00000001-1")
            seeds[f"commands-{version}-{name}"] = (
                connected(version, dialect)
                .raw(SUB.format(ack=ack))
                .raw("SEND\ndestination:/queue/q\nreceipt:r1\n\nfirst\0")
                .raw(ack_frame + "receipt:r-ack\n\n\0")
                .raw("SEND\ndestination:/queue/q\n\nsecond\0")
                .raw(ack_frame.replace("ACK", "NACK").replace("@@1", "@@2").replace("-1\n", "-2\n")
                     + "\n\0")
                .raw("BEGIN\ntransaction:t\n\n\0SEND\ndestination:/queue/q\ntransaction:t\n\nx\0"
                     "COMMIT\ntransaction:t\nreceipt:r-commit\n\n\0")
                .raw("BEGIN\ntransaction:u\n\n\0ABORT\ntransaction:u\n\n\0")
                .raw("UNSUBSCRIBE\nid:s\nreceipt:r-unsub\n\n\0")
                .raw("DISCONNECT\nreceipt:bye\n\n\0")
                .bytes()
            )
        stomp = CONNECT[version].replace("CONNECT", "STOMP", 1)
        seeds[f"stomp-frame-{version}"] = Ops().open().raw(stomp).raw("DISCONNECT\n\n\0").bytes()
    seeds["accept-version-none-shared"] = Ops().open().raw(
        "CONNECT\naccept-version:2.0,3.1\n\n\0").bytes()
    seeds["accept-version-list"] = Ops(SPRING).open().raw(
        "STOMP\naccept-version:1.0,1.1,1.2,2.0\nhost:stomp.github.org\n\n\0").bytes()
    seeds["frame-before-connect"] = Ops().open().raw(
        "SEND\ndestination:/queue/q\n\nearly\0").bytes()
    seeds["connect-twice"] = connected().raw(CONNECT["1.2"]).bytes()

    # Heart-beats: EOLs in time, then silence past the deadline; CRLF EOLs.
    hb = connected("1.2", heart_beat="100,100")
    for _ in range(6):
        hb.wait(80).raw("\n")
    seeds["heart-beats-then-silence"] = hb.wait(1000).wait(1000).bytes()
    seeds["heart-beats-crlf-1.2"] = (
        connected("1.2", heart_beat="60,0").raw("\r\n").wait(50).raw("\r\n\r\n").wait(400).bytes())
    seeds["heart-beats-1.1-both"] = (
        connected("1.1", SPRING, heart_beat="0,60").wait(200).raw("\n\n").wait(200).bytes())
    seeds["heart-beat-malformed"] = connected("1.2", heart_beat="x,-1").wait(100).bytes()
    seeds["heart-beat-below-floor"] = connected("1.2", heart_beat="1,1").wait(30).raw("\n").wait(
        200).bytes()

    # Header escapes and bodies.
    seeds["escapes-1.2"] = connected().raw(
        "SEND\ndestination:/queue/q\nkey\\cwith\\nlf:v\\\\al\\r\\nue\\c\nreceipt:r\\c1\n\n\0"
    ).raw(SUB.format(ack="auto")).bytes()
    seeds["escapes-1.0-raw"] = connected("1.0").raw(
        "SEND\ndestination:/queue/q\nk:a\\b:c\n\nraw\0").raw(SUB.format(ack="auto")).bytes()
    seeds["undefined-escape"] = connected().raw("SEND\ndestination:/queue/q\nx:\\t\n\n\0").bytes()
    seeds["content-length-nuls"] = connected().raw(SUB.format(ack="auto")).raw(
        "SEND\ndestination:/queue/q\ncontent-length:5\n\na\0b\0c\0\n").bytes()
    seeds["content-length-wrong"] = connected().raw(
        "SEND\ndestination:/queue/q\ncontent-length:2\n\nabc\0").bytes()
    seeds["content-length-huge"] = connected().raw(
        "SEND\ndestination:/queue/q\ncontent-length:99999999\n\nabc").bytes()
    seeds["crlf-frames"] = connected().raw(
        "SEND\r\ndestination:/queue/q\r\nreceipt:r\r\n\r\nbody\0\r\n\r\n").bytes()
    split = connected()
    for byte in b(SUB.format(ack="client")):
        split.raw(bytes([byte]))
    seeds["split-byte-by-byte"] = split.bytes()

    # Several connections on one queue and topic.
    multi = Ops().open().open().open()
    for conn in range(3):
        multi.raw(CONNECT["1.2"], conn)
    multi.raw("SUBSCRIBE\nid:a\ndestination:/queue/q\nack:client\n\n\0", 0)
    multi.raw("SUBSCRIBE\nid:b\ndestination:/topic/t\n\n\0", 1)
    multi.raw("SEND\ndestination:/queue/q\n\none\0SEND\ndestination:/topic/t\n\ntwo\0", 2)
    seeds["three-connections"] = multi.close(0).publish().kill().bytes()

    # Limits: five connections (four allowed), a full queue, unacked, transaction frames.
    five = Ops()
    for conn in range(5):
        five.open().raw(CONNECT["1.2"], conn)
    seeds["too-many-connections"] = five.bytes()
    flood = connected()
    for n in range(12):
        flood.raw(f"SEND\ndestination:/queue/q\n\nm{n}\0")
    seeds["queue-full"] = flood.raw(SUB.format(ack="client-individual")).publish().bytes()
    unacked = connected().raw(SUB.format(ack="client"))
    for _ in range(6):
        unacked.publish()
    seeds["unacked-limit"] = unacked.raw("ACK\nid:T_s@@session-00000001@@3\n\n\0").bytes()
    tx = connected().raw("BEGIN\ntransaction:t\n\n\0")
    for n in range(6):
        tx.raw(f"SEND\ndestination:/queue/q\ntransaction:t\n\n{n}\0")
    seeds["transaction-limit"] = tx.raw("COMMIT\ntransaction:t\n\n\0").bytes()
    seeds["transaction-unknown"] = connected().raw(
        "COMMIT\ntransaction:nope\n\n\0ABORT\ntransaction:nope\n\n\0").bytes()
    backlog = connected().raw(SUB.format(ack="auto"))
    for _ in range(20):
        backlog.publish()
    seeds["output-backlog"] = backlog.bytes()

    # Garbage and oversize.
    seeds["garbage-http"] = Ops().open().raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n").bytes()
    seeds["garbage-after-connect"] = connected().raw("HELLO\nthis:is\nnot stomp\n\n\0").bytes()
    seeds["garbage-binary"] = Ops().open().raw(bytes(range(256))).bytes()
    seeds["oversized-frame"] = connected().raw(
        b("SEND\ndestination:/queue/q\n\n") + b"x" * 2100 + b"\0").bytes()
    seeds["endless-headers"] = connected().raw("SEND\n" + "x-pad:aaaaaaaaaaaaaaaa\n" * 40).bytes()
    seeds["missing-headers"] = connected().raw(
        "SEND\n\nno destination\0SUBSCRIBE\nid:x\n\n\0ACK\n\n\0UNSUBSCRIBE\n\n\0BEGIN\n\n\0"
    ).bytes()
    seeds["server-frame-from-client"] = connected().raw(
        "MESSAGE\ndestination:/queue/q\n\n\0").bytes()

    # The canned frames, every one of them, on two connections, with clock steps and closes.
    canned = Ops().open().open()
    for index in range(18):
        canned.frame(index, index % 2).wait(40)
    seeds["canned-all"] = canned.close(1).wait(2000).bytes()
    spring = Ops(SPRING).open()
    for index in (CONNECT_ALL, SUB_A, SUB_B, SEND_RECEIPT, ACK_A1, NACK_B2, SEND_TX, BEGIN,
                  SEND_TX, COMMIT, UNSUB_A, DISCONNECT):
        spring.frame(index)
    seeds["canned-spring"] = spring.bytes()
    return seeds


def main():
    directory = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else TRANSCRIPTS
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in {**transcript_seeds(directory), **handmade()}.items():
        (OUT / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    main()
