"""stomp.py (PyPI `stomp-py`) against a STOMP broker over TCP: the interop suite.

    python stomp_py_suite.py HOST:PORT

Written for `stompkit broker` (RabbitMQ dialect, any login, virtual host `/`); run by
`cargo xtask ci` (xtask/src/interop.rs). Each check prints PASS or FAIL with the reason; the
last line is "N passed, M failed" and the exit status is 1 when a check failed. Every wait is
bounded (WAIT seconds), so a broker that stays silent fails a check instead of hanging.
"""

import os
import queue
import sys
import time
import traceback

import stomp

WAIT = 10.0
PID = os.getpid()


class Recorder(stomp.ConnectionListener):
    """Everything the broker sends, in queues a check takes from with a bounded wait."""

    def __init__(self):
        self.connected = queue.Queue()
        self.messages = queue.Queue()
        self.receipts = queue.Queue()
        self.errors = queue.Queue()
        self.disconnected = queue.Queue()
        self.heartbeats = 0
        self.heartbeat_timeouts = 0

    def on_connected(self, frame):
        self.connected.put(frame)

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers.get("receipt-id"))

    def on_error(self, frame):
        self.errors.put(frame)

    def on_disconnected(self):
        self.disconnected.put(True)

    def on_heartbeat(self):
        self.heartbeats += 1

    def on_heartbeat_timeout(self):
        self.heartbeat_timeouts += 1


def take(q, what):
    try:
        return q.get(timeout=WAIT)
    except queue.Empty:
        raise AssertionError("no %s within %.0f s" % (what, WAIT)) from None


CLASSES = {
    "1.0": stomp.StompConnection10,
    "1.1": stomp.StompConnection11,
    "1.2": stomp.StompConnection12,
}


class Client:
    """One connection with its recorder."""

    def __init__(self, version="1.2", heartbeats=(0, 0)):
        cls = CLASSES[version]
        kwargs = {"reconnect_attempts_max": 1}
        if version != "1.0":
            # 1.0 has neither: its CONNECT names no host (the broker takes `/`).
            kwargs.update(vhost="/", heartbeats=heartbeats)
        self.conn = cls([ADDRESS], **kwargs)
        self.rec = Recorder()
        self.conn.set_listener("rec", self.rec)
        self.version = version
        self.conn.connect("guest", "guest", wait=True)
        self.connected = take(self.rec.connected, "CONNECTED")

    def receipt(self, name):
        got = take(self.rec.receipts, "RECEIPT %s" % name)
        assert got == name, "RECEIPT %r, expected %r" % (got, name)

    def send(self, dest, body, receipt=None, **headers):
        if receipt:
            headers["receipt"] = receipt
        self.conn.send(dest, body, headers=headers)
        if receipt:
            self.receipt(receipt)

    def subscribe(self, dest, sub_id, ack="auto", **headers):
        # A receipt, so the subscription is known to exist before anything is sent to it.
        name = "sub-%s" % sub_id
        headers["receipt"] = name
        self.conn.subscribe(dest, id=sub_id, ack=ack, headers=headers)
        self.receipt(name)

    def message(self):
        return take(self.rec.messages, "MESSAGE")

    def ack(self, frame, **kwargs):
        self._ack(self.conn.ack, frame, **kwargs)

    def nack(self, frame, **kwargs):
        self._ack(self.conn.nack, frame, **kwargs)

    def _ack(self, method, frame, transaction=None, receipt=None):
        h = frame.headers
        if self.version == "1.2":
            method(h["ack"], transaction=transaction, receipt=receipt)
        else:
            method(h["message-id"], h["subscription"], transaction=transaction, receipt=receipt)
        if receipt:
            self.receipt(receipt)

    def close(self):
        if self.conn.is_connected():
            self.conn.disconnect(receipt="bye")
        assert self.rec.errors.empty(), "unexpected ERROR: %s" % self.rec.errors.get().headers


def queue_name(test):
    return "/queue/interop-py-%s-%d" % (test, PID)


def bodies(client, n):
    return [client.message().body for _ in range(n)]


def expect_next(client, body):
    frame = client.message()
    assert frame.body == body, "got %r, expected %r" % (frame.body, body)
    return frame


# --- checks ---------------------------------------------------------------------------------


def check_connect_each_version():
    for version in ("1.0", "1.1", "1.2"):
        c = Client(version)
        got = c.connected.headers.get("version", "1.0")
        assert got == version, "CONNECTED version %r for %s" % (got, version)
        if version != "1.0":
            assert "server" in c.connected.headers, c.connected.headers
        c.close()
        take(c.rec.disconnected, "end of the connection")


def check_send_with_receipt():
    c = Client()
    q = queue_name("receipt")
    c.subscribe(q, "s1")
    for n in range(1, 4):
        c.send(q, "m%d" % n, receipt="r%d" % n)
    assert bodies(c, 3) == ["m1", "m2", "m3"]
    c.close()


def check_headers_survive():
    c = Client()
    q = queue_name("headers")
    c.subscribe(q, "s1")
    c.send(q, "x", receipt="r", **{"x-colon": "a:b", "content-type": "text/plain"})
    m = c.message()
    assert m.headers.get("x-colon") == "a:b", m.headers
    assert m.headers.get("destination") == q, m.headers
    assert m.headers.get("subscription") == "s1", m.headers
    assert "message-id" in m.headers, m.headers
    c.close()


def check_ack_auto():
    q = queue_name("auto")
    c = Client()
    c.subscribe(q, "s1", ack="auto")
    for n in range(3):
        c.send(q, "a%d" % n, receipt="r%d" % n)
    assert bodies(c, 3) == ["a0", "a1", "a2"]
    c.close()
    # Nothing left over: the next message a new consumer sees is one sent now.
    d = Client()
    d.subscribe(q, "s2", ack="client-individual")
    d.send(q, "marker", receipt="rm")
    m = expect_next(d, "marker")
    d.ack(m, receipt="ra")
    d.close()


def check_ack_client_individual_redelivers_unacked():
    q = queue_name("individual")
    c = Client()
    c.subscribe(q, "s1", ack="client-individual")
    c.send(q, "one", receipt="r1")
    c.send(q, "two", receipt="r2")
    one, two = c.message(), c.message()
    assert (one.body, two.body) == ("one", "two")
    c.ack(two, receipt="ack2")
    c.close()
    d = Client()
    d.subscribe(q, "s2", ack="client-individual")
    again = expect_next(d, "one")
    assert again.headers.get("redelivered") == "true", again.headers
    d.ack(again, receipt="ack1")
    d.send(q, "marker", receipt="rm")
    d.ack(expect_next(d, "marker"), receipt="ackm")
    d.close()


def check_ack_client_is_cumulative():
    q = queue_name("client")
    c = Client()
    c.subscribe(q, "s1", ack="client")
    for n in range(1, 4):
        c.send(q, "c%d" % n, receipt="r%d" % n)
    frames = [c.message() for _ in range(3)]
    assert [f.body for f in frames] == ["c1", "c2", "c3"]
    c.ack(frames[1], receipt="ack2")  # acknowledges c1 and c2
    c.close()
    d = Client()
    d.subscribe(q, "s2", ack="client")
    again = expect_next(d, "c3")
    assert again.headers.get("redelivered") == "true", again.headers
    d.ack(again, receipt="ack3")
    d.send(q, "marker", receipt="rm")
    d.ack(expect_next(d, "marker"), receipt="ackm")
    d.close()


def check_nack_redelivers():
    for version in ("1.1", "1.2"):
        q = queue_name("nack-" + version)
        c = Client(version)
        c.subscribe(q, "s1", ack="client-individual")
        c.send(q, "retry me", receipt="r1")
        first = c.message()
        assert first.headers.get("redelivered") != "true", first.headers
        c.nack(first, receipt="n1")
        again = expect_next(c, "retry me")
        assert again.headers.get("redelivered") == "true", again.headers
        c.ack(again, receipt="a1")
        c.send(q, "marker", receipt="rm")
        c.ack(expect_next(c, "marker"), receipt="am")
        c.close()


def check_prefetch_limits_unacked():
    q = queue_name("prefetch")
    c = Client()
    c.subscribe(q, "s1", ack="client-individual", **{"prefetch-count": "1"})
    c.send(q, "p1", receipt="r1")
    c.send(q, "p2", receipt="r2")
    first = expect_next(c, "p1")
    # p2 waits for the ack: the receipt for an unrelated frame comes back first.
    c.send(queue_name("prefetch-other"), "x", receipt="probe")
    assert c.rec.messages.empty(), "a second message beyond prefetch-count 1"
    c.ack(first, receipt="a1")
    c.ack(expect_next(c, "p2"), receipt="a2")
    c.close()


def check_topic_fan_out():
    t = "/topic/interop-py-%d" % PID
    a, b = Client(), Client()
    a.subscribe(t, "ta")
    b.subscribe(t, "tb")
    a.send(t, "news", receipt="r")
    assert a.message().body == "news"
    assert b.message().body == "news"
    a.close()
    b.close()


def check_transaction_commit():
    q = queue_name("commit")
    c = Client()
    c.subscribe(q, "s1")
    c.conn.begin("tx1")
    c.send(q, "in-tx-1", transaction="tx1")
    c.send(q, "in-tx-2", transaction="tx1")
    c.send(q, "outside", receipt="r-out")
    # The transaction's messages are held until COMMIT.
    expect_next(c, "outside")
    c.conn.commit("tx1", headers={"receipt": "r-commit"})
    c.receipt("r-commit")
    assert bodies(c, 2) == ["in-tx-1", "in-tx-2"]
    c.close()


def check_transaction_abort():
    q = queue_name("abort")
    c = Client()
    c.subscribe(q, "s1")
    c.conn.begin("tx1")
    c.send(q, "dropped", transaction="tx1")
    c.conn.abort("tx1", headers={"receipt": "r-abort"})
    c.receipt("r-abort")
    c.send(q, "after", receipt="r-after")
    expect_next(c, "after")
    c.close()


def check_ack_in_transaction():
    q = queue_name("tx-ack")
    c = Client()
    c.subscribe(q, "s1", ack="client-individual")
    c.send(q, "kept", receipt="r1")
    c.send(q, "done", receipt="r2")
    kept, done = c.message(), c.message()
    c.conn.begin("aborted")
    c.ack(kept, transaction="aborted")
    c.conn.abort("aborted", headers={"receipt": "r-abort"})
    c.receipt("r-abort")
    c.conn.begin("committed")
    c.ack(done, transaction="committed")
    c.conn.commit("committed", headers={"receipt": "r-commit"})
    c.receipt("r-commit")
    c.close()
    # The aborted ack did not count: "kept" comes back; "done" does not.
    d = Client()
    d.subscribe(q, "s2", ack="client-individual")
    again = expect_next(d, "kept")
    assert again.headers.get("redelivered") == "true", again.headers
    d.ack(again, receipt="a1")
    d.send(q, "marker", receipt="rm")
    d.ack(expect_next(d, "marker"), receipt="am")
    d.close()


def check_heart_beats():
    c = Client(heartbeats=(1000, 1000))
    hb = c.connected.headers.get("heart-beat", "0,0")
    sx, sy = (int(v) for v in hb.split(","))
    assert sx > 0 and sy > 0, "CONNECTED heart-beat %r" % hb
    # Idle for more than two of the broker's intervals: it hears our heart-beats and we
    # hear its own, and nobody declares the other gone.
    deadline = time.monotonic() + WAIT
    while c.rec.heartbeats < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert c.rec.heartbeats >= 3, "%d heart-beats from the broker" % c.rec.heartbeats
    time.sleep(2.5 * max(sx, sy) / 1000.0)
    assert c.conn.is_connected(), "the broker closed an idle connection that sends heart-beats"
    assert c.rec.heartbeat_timeouts == 0, "the broker's heart-beats stopped"
    q = queue_name("heartbeat")
    c.subscribe(q, "s1")
    c.send(q, "still here", receipt="r")
    expect_next(c, "still here")
    c.close()


def check_error_then_close():
    c = Client()
    c.conn.send("/nowhere/at-all", "x")
    err = take(c.rec.errors, "ERROR")
    assert err.headers.get("message"), err.headers
    take(c.rec.disconnected, "close after the ERROR")


def main():
    global ADDRESS
    if len(sys.argv) != 2 or ":" not in sys.argv[1]:
        print(__doc__, file=sys.stderr)
        return 2
    host, port = sys.argv[1].rsplit(":", 1)
    ADDRESS = (host, int(port))
    checks = [(name, f) for name, f in globals().items() if name.startswith("check_")]
    passed = failed = 0
    for name, check in checks:
        try:
            check()
        except Exception as e:  # noqa: BLE001 - every failure is reported the same way
            failed += 1
            print("FAIL %s: %s" % (name[6:], e or type(e).__name__), flush=True)
            traceback.print_exc(limit=3, file=sys.stdout)
        else:
            passed += 1
            print("PASS %s" % name[6:], flush=True)
    print("stomp.py %s: %d passed, %d failed" % (stomp.__version__, passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
