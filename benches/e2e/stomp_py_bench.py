"""The end-to-end workload of `cargo xtask bench-e2e` on stomp.py (PyPI `stomp-py`).

Same command line and JSON summary as the Rust clients (benches/e2e/common.rs):

    stomp_py_bench.py URL [--producers P] [--consumers C] [--size BYTES] [--count N]
                      [--ack auto|client|client-individual] [--receipts]
                      [--destination DEST] [--in-flight N] [--timeout SECS]

Each producer and consumer has its own connection (StompConnection12). Producers send from
threads of their own; with --receipts at most --in-flight messages per producer wait for their
receipt. Every message carries its send time in nanoseconds since the Unix epoch in the
`bench-sent-ns` header.
"""

import argparse
import json
import math
import os
import sys
import threading
import time
from urllib.parse import urlparse

import stomp

SENT_HEADER = "bench-sent-ns"


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--producers", type=int, default=1)
    p.add_argument("--consumers", type=int, default=1)
    p.add_argument("--size", type=int, default=200)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--ack", choices=["auto", "client", "client-individual"], default="auto")
    p.add_argument("--receipts", action="store_true")
    p.add_argument("--destination", default=None)
    p.add_argument("--in-flight", type=int, default=1024)
    p.add_argument("--timeout", type=int, default=300)
    args = p.parse_args()
    if args.destination is None:
        args.destination = "/queue/stompkit-e2e-py-%d" % os.getpid()
    return args


def quantiles(values):
    """p50, p90, p99 and max in milliseconds (nearest rank), or None without samples."""
    if not values:
        return None
    values.sort()
    n = len(values)

    def rank(q):
        return values[min(n - 1, max(0, math.ceil(q * n) - 1))] / 1e6

    return {"p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99), "max": values[-1] / 1e6}


class Shared:
    def __init__(self, fan_out, consumers):
        self.lock = threading.Lock()
        self.sent = 0
        self.receipted = 0
        self.received = 0
        self.expected = None
        self.last_delivery = 0
        self.delivery_latency = []
        self.receipt_latency = []
        self.done = threading.Event()
        self.failure = None
        self.started = None
        self.fan_out = fan_out
        self.consumers = consumers

    def check_done(self):
        if self.expected is not None and self.received >= self.expected:
            self.done.set()

    def fail(self, why):
        with self.lock:
            if self.failure is None:
                self.failure = why
        self.done.set()


class Consumer(stomp.ConnectionListener):
    def __init__(self, shared, conn, ack):
        self.shared = shared
        self.conn = conn
        self.ack = ack
        self.subscribed = threading.Event()

    def on_receipt(self, frame):
        self.subscribed.set()

    def on_error(self, frame):
        self.shared.fail("ERROR from the broker: %s" % frame.headers.get("message"))

    def on_disconnected(self):
        if not self.shared.done.is_set():
            self.shared.fail("a consumer's connection ended")

    def on_message(self, frame):
        now = time.time_ns()
        if self.ack != "auto":
            self.conn.ack(frame.headers["ack"])
        sent = frame.headers.get(SENT_HEADER)
        s = self.shared
        with s.lock:
            if sent is not None:
                s.delivery_latency.append(now - int(sent))
            s.received += 1
            s.last_delivery = time.monotonic_ns() - s.started
            s.check_done()


class Producer(stomp.ConnectionListener):
    def __init__(self, shared, in_flight):
        self.shared = shared
        self.window = threading.Semaphore(in_flight)
        self.sent_at = {}
        self.all_receipted = threading.Event()
        self.expected_receipts = None
        self.receipts = 0

    def on_receipt(self, frame):
        now = time.monotonic_ns()
        at = self.sent_at.pop(frame.headers["receipt-id"], None)
        s = self.shared
        with s.lock:
            if at is not None:
                s.receipt_latency.append(now - at)
            s.receipted += 1
            self.receipts += 1
            if self.expected_receipts is not None and self.receipts >= self.expected_receipts:
                self.all_receipted.set()
        self.window.release()

    def on_error(self, frame):
        self.shared.fail("ERROR from the broker: %s" % frame.headers.get("message"))


def connect(args, listener_name, listener):
    url = urlparse(args.url)
    conn = stomp.StompConnection12(
        [(url.hostname, url.port or 61613)], heartbeats=(10000, 10000), vhost="/",
        auto_decode=False)
    conn.set_listener(listener_name, listener)
    conn.connect(url.username or "guest", url.password or "guest", wait=True)
    return conn


def main():
    args = parse_args()
    fan_out = args.destination.startswith(("/topic/", "/exchange/"))
    shared = Shared(fan_out, args.consumers)
    body = b"x" * args.size
    deadline = time.monotonic() + args.timeout
    connections = []

    consumers = []
    for i in range(args.consumers):
        listener = Consumer(shared, None, args.ack)
        conn = connect(args, "bench", listener)
        listener.conn = conn
        conn.subscribe(args.destination, id="sub-%d" % i, ack=args.ack,
                       headers={"receipt": "subscribed-%d" % i})
        if not listener.subscribed.wait(max(0.1, deadline - time.monotonic())):
            print("error: no receipt for SUBSCRIBE", file=sys.stderr)
            return 2
        consumers.append(listener)
        connections.append(conn)

    producers = []
    for i in range(args.producers):
        listener = Producer(shared, args.in_flight)
        conn = connect(args, "bench", listener)
        producers.append((conn, listener))
        connections.append(conn)

    def produce(i, conn, listener):
        n = args.count // args.producers + (1 if i < args.count % args.producers else 0)
        listener.expected_receipts = n if args.receipts else None
        if n == 0:
            listener.all_receipted.set()
        try:
            for k in range(n):
                if shared.done.is_set() and shared.failure:
                    return
                headers = {SENT_HEADER: str(time.time_ns())}
                if args.receipts:
                    while not listener.window.acquire(timeout=1):
                        if shared.failure or time.monotonic() > deadline:
                            return
                    rid = "%d-%d" % (i, k)
                    headers["receipt"] = rid
                    listener.sent_at[rid] = time.monotonic_ns()
                conn.send(args.destination, body, headers=headers)
                with shared.lock:
                    shared.sent += 1
        except Exception as e:  # noqa: BLE001 - any failure ends the run with its text
            shared.fail("producer %d: %s" % (i, e))

    shared.started = time.monotonic_ns()
    threads = [threading.Thread(target=produce, args=(i, c, l)) for i, (c, l) in enumerate(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    if args.receipts:
        for _, listener in producers:
            listener.all_receipted.wait(max(0.1, deadline - time.monotonic()))
    producers_done = time.monotonic_ns() - shared.started
    with shared.lock:
        shared.expected = shared.sent * (args.consumers if fan_out else 1) if args.consumers else 0
        shared.check_done()
    shared.done.wait(max(0.1, deadline - time.monotonic()))
    if shared.failure:
        print("error: %s" % shared.failure, file=sys.stderr)
        return 2
    with shared.lock:
        if not shared.done.is_set() or any(t.is_alive() for t in threads):
            print("error: --timeout %d: %d sent, %d received" %
                  (args.timeout, shared.sent, shared.received), file=sys.stderr)
            return 2
        elapsed_ns = shared.last_delivery if args.consumers else producers_done
        secs = max(elapsed_ns / 1e9, 1e-9)
        summary = {
            "client": "stomp.py",
            "destination": args.destination,
            "producers": args.producers,
            "consumers": args.consumers,
            "size": args.size,
            "ack": args.ack,
            "receipts": args.receipts,
            "sent": shared.sent,
            "receipted": shared.receipted,
            "received": shared.received,
            "expected": shared.expected,
            "elapsed_s": secs,
            "msgs_per_s": shared.sent / secs,
            "deliveries_per_s": shared.received / secs,
            "receipt_latency_ms": quantiles(shared.receipt_latency) if args.receipts else None,
            "delivery_latency_ms": quantiles(shared.delivery_latency) if args.consumers else None,
        }
    for conn in connections:
        try:
            conn.disconnect()
        except Exception:  # noqa: BLE001 - the summary is what counts now
            pass
    print(json.dumps(summary))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
