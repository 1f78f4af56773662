// @stomp/stompjs with `ws` on Node against a STOMP broker over WebSocket: the interop suite.
//
//     node stompjs_suite.mjs ws://127.0.0.1:PORT/ws
//
// Written for `stompkit broker` (RabbitMQ dialect, any login, virtual host `/`); run by
// `cargo xtask ci` (xtask/src/interop.rs), which copies it next to its node_modules. Each
// check prints PASS or FAIL with the reason; the last line is "N passed, M failed" and the
// exit status is 1 when a check failed. Every wait is bounded (WAIT_MS), so a broker that
// stays silent fails a check instead of hanging.

import { Client, Versions } from '@stomp/stompjs';
import WebSocket from 'ws';

const WAIT_MS = 10_000;
const URL = process.argv[2];
const PID = process.pid;

/** Values pushed by callbacks, taken by checks with a bounded wait. */
class Inbox {
  constructor(what) {
    this.what = what;
    this.items = [];
    this.waiters = [];
  }
  push(item) {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.items.push(item);
  }
  get size() {
    return this.items.length;
  }
  take() {
    if (this.items.length > 0) return Promise.resolve(this.items.shift());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        reject(new Error(`no ${this.what} within ${WAIT_MS} ms`));
      }, WAIT_MS);
      const done = (item) => {
        clearTimeout(timer);
        resolve(item);
      };
      this.waiters.push(done);
    });
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One connection: the stompjs client, what it received, and the socket it used. */
class Conn {
  static async open({ versions = ['1.2', '1.1', '1.0'], heartbeat = 0 } = {}) {
    const c = new Conn();
    const stompVersions = new Versions(versions);
    c.pongs = 0;
    c.lost = 0;
    c.errors = new Inbox('ERROR');
    c.closed = new Inbox('close of the WebSocket');
    const connected = new Inbox('CONNECTED');
    c.client = new Client({
      webSocketFactory: () => {
        c.socket = new WebSocket(URL, stompVersions.protocolVersions());
        return c.socket;
      },
      stompVersions,
      connectHeaders: { login: 'guest', passcode: 'guest', host: '/' },
      heartbeatIncoming: heartbeat,
      heartbeatOutgoing: heartbeat,
      reconnectDelay: 0,
      debug: (line) => {
        if (line === '<<< PONG') c.pongs += 1;
      },
      onConnect: (frame) => connected.push(frame),
      onStompError: (frame) => c.errors.push(frame),
      onWebSocketClose: (event) => c.closed.push(event),
    });
    c.client.onHeartbeatLost = () => {
      c.lost += 1;
    };
    c.client.activate();
    c.connected = await connected.take();
    return c;
  }

  /** Resolves when the broker's RECEIPT for `id` arrives (after `send` sent the frame). */
  async receipt(id, send) {
    const got = new Inbox(`RECEIPT ${id}`);
    this.client.watchForReceipt(id, (frame) => got.push(frame));
    send();
    await got.take();
  }

  async publish(destination, body, headers = {}) {
    const id = `r-${Math.random().toString(36).slice(2)}`;
    await this.receipt(id, () =>
      this.client.publish({ destination, body, headers: { ...headers, receipt: id } }),
    );
  }

  async subscribe(destination, ack = 'auto', headers = {}) {
    const messages = new Inbox(`MESSAGE from ${destination}`);
    const id = `s-${Math.random().toString(36).slice(2)}`;
    await this.receipt(id, () =>
      this.client.subscribe(destination, (m) => messages.push(m), { ack, receipt: id, ...headers }),
    );
    return messages;
  }

  async ack(message, headers = {}) {
    const id = `a-${Math.random().toString(36).slice(2)}`;
    await this.receipt(id, () => message.ack({ ...headers, receipt: id }));
  }

  async nack(message) {
    const id = `n-${Math.random().toString(36).slice(2)}`;
    await this.receipt(id, () => message.nack({ receipt: id }));
  }

  async close() {
    if (this.errors.size > 0) {
      throw new Error(`unexpected ERROR: ${JSON.stringify((await this.errors.take()).headers)}`);
    }
    await this.client.deactivate();
  }
}

const queue = (name) => `/queue/interop-js-${name}-${PID}`;

async function expectNext(messages, body) {
  const m = await messages.take();
  assert(m.body === body, `got ${JSON.stringify(m.body)}, expected ${JSON.stringify(body)}`);
  return m;
}

// --- checks ------------------------------------------------------------------------------

const checks = {
  async connect_each_subprotocol() {
    for (const version of ['1.0', '1.1', '1.2']) {
      const c = await Conn.open({ versions: [version] });
      const wanted = `v${version.replace('.', '')}.stomp`;
      assert(c.socket.protocol === wanted, `subprotocol ${c.socket.protocol}, expected ${wanted}`);
      const got = c.connected.headers.version ?? '1.0';
      assert(got === version, `CONNECTED version ${got} for ${version}`);
      await c.close();
    }
  },

  async highest_version_is_chosen() {
    const c = await Conn.open();
    assert(c.socket.protocol === 'v12.stomp', `subprotocol ${c.socket.protocol}`);
    assert(c.connected.headers.version === '1.2', `version ${c.connected.headers.version}`);
    await c.close();
  },

  async send_with_receipt() {
    const c = await Conn.open();
    const q = queue('receipt');
    const messages = await c.subscribe(q);
    for (const n of [1, 2, 3]) await c.publish(q, `m${n}`);
    for (const n of [1, 2, 3]) await expectNext(messages, `m${n}`);
    await c.close();
  },

  async binary_body_round_trip() {
    const c = await Conn.open();
    const q = queue('binary');
    const messages = await c.subscribe(q);
    const body = new Uint8Array([0, 1, 2, 0xff, 0xfe, 10, 0]);
    const id = 'bin';
    await c.receipt(id, () =>
      c.client.publish({ destination: q, binaryBody: body, headers: { receipt: id } }),
    );
    const m = await messages.take();
    assert(Buffer.from(m.binaryBody).equals(Buffer.from(body)), `body ${Buffer.from(m.binaryBody).toString('hex')}`);
    await c.close();
  },

  async ack_auto() {
    const q = queue('auto');
    const c = await Conn.open();
    const messages = await c.subscribe(q, 'auto');
    for (const n of [0, 1, 2]) await c.publish(q, `a${n}`);
    for (const n of [0, 1, 2]) await expectNext(messages, `a${n}`);
    await c.close();
    // Nothing left over: the next message a new consumer sees is one sent now.
    const d = await Conn.open();
    const again = await d.subscribe(q, 'client-individual');
    await d.publish(q, 'marker');
    await d.ack(await expectNext(again, 'marker'));
    await d.close();
  },

  async ack_client_individual_redelivers_unacked() {
    const q = queue('individual');
    const c = await Conn.open();
    const messages = await c.subscribe(q, 'client-individual');
    await c.publish(q, 'one');
    await c.publish(q, 'two');
    await expectNext(messages, 'one');
    await c.ack(await expectNext(messages, 'two'));
    await c.close();
    const d = await Conn.open();
    const again = await d.subscribe(q, 'client-individual');
    const one = await expectNext(again, 'one');
    assert(one.headers.redelivered === 'true', `headers ${JSON.stringify(one.headers)}`);
    await d.ack(one);
    await d.publish(q, 'marker');
    await d.ack(await expectNext(again, 'marker'));
    await d.close();
  },

  async ack_client_is_cumulative() {
    const q = queue('client');
    const c = await Conn.open();
    const messages = await c.subscribe(q, 'client');
    for (const n of [1, 2, 3]) await c.publish(q, `c${n}`);
    await expectNext(messages, 'c1');
    const second = await expectNext(messages, 'c2');
    await expectNext(messages, 'c3');
    await c.ack(second); // acknowledges c1 and c2
    await c.close();
    const d = await Conn.open();
    const again = await d.subscribe(q, 'client');
    const third = await expectNext(again, 'c3');
    assert(third.headers.redelivered === 'true', `headers ${JSON.stringify(third.headers)}`);
    await d.ack(third);
    await d.publish(q, 'marker');
    await d.ack(await expectNext(again, 'marker'));
    await d.close();
  },

  async nack_redelivers() {
    for (const version of ['1.1', '1.2']) {
      const q = queue(`nack-${version}`);
      const c = await Conn.open({ versions: [version] });
      const messages = await c.subscribe(q, 'client-individual');
      await c.publish(q, 'retry me');
      const first = await expectNext(messages, 'retry me');
      assert(first.headers.redelivered !== 'true', `first delivery ${JSON.stringify(first.headers)}`);
      await c.nack(first);
      const again = await expectNext(messages, 'retry me');
      assert(again.headers.redelivered === 'true', `headers ${JSON.stringify(again.headers)}`);
      await c.ack(again);
      await c.close();
    }
  },

  async topic_fan_out() {
    const t = `/topic/interop-js-${PID}`;
    const a = await Conn.open();
    const b = await Conn.open();
    const ma = await a.subscribe(t);
    const mb = await b.subscribe(t);
    await a.publish(t, 'news');
    await expectNext(ma, 'news');
    await expectNext(mb, 'news');
    await a.close();
    await b.close();
  },

  async transaction_commit() {
    const q = queue('commit');
    const c = await Conn.open();
    const messages = await c.subscribe(q);
    const tx = c.client.begin('tx-commit');
    c.client.publish({ destination: q, body: 'in-tx-1', headers: { transaction: tx.id } });
    c.client.publish({ destination: q, body: 'in-tx-2', headers: { transaction: tx.id } });
    await c.publish(q, 'outside');
    // The transaction's messages are held until COMMIT.
    await expectNext(messages, 'outside');
    tx.commit();
    await expectNext(messages, 'in-tx-1');
    await expectNext(messages, 'in-tx-2');
    await c.close();
  },

  async transaction_abort() {
    const q = queue('abort');
    const c = await Conn.open();
    const messages = await c.subscribe(q);
    const tx = c.client.begin('tx-abort');
    c.client.publish({ destination: q, body: 'dropped', headers: { transaction: tx.id } });
    tx.abort();
    // Frames are handled in order: once this one is received, the abort was too.
    await c.publish(q, 'after');
    await expectNext(messages, 'after');
    await c.close();
  },

  async ack_in_transaction() {
    const q = queue('tx-ack');
    const c = await Conn.open();
    const messages = await c.subscribe(q, 'client-individual');
    await c.publish(q, 'kept');
    await c.publish(q, 'done');
    const kept = await expectNext(messages, 'kept');
    const done = await expectNext(messages, 'done');
    const aborted = c.client.begin('tx-aborted');
    kept.ack({ transaction: aborted.id });
    aborted.abort();
    const committed = c.client.begin('tx-committed');
    done.ack({ transaction: committed.id });
    committed.commit();
    // stompjs sends COMMIT and ABORT without a receipt; DISCONNECT's receipt comes after them.
    await c.close();
    // The aborted ack did not count: "kept" comes back; "done" does not.
    const d = await Conn.open();
    const again = await d.subscribe(q, 'client-individual');
    const k = await expectNext(again, 'kept');
    assert(k.headers.redelivered === 'true', `headers ${JSON.stringify(k.headers)}`);
    await d.ack(k);
    await d.publish(q, 'marker');
    await d.ack(await expectNext(again, 'marker'));
    await d.close();
  },

  async heart_beats() {
    const c = await Conn.open({ heartbeat: 1000 });
    const [sx, sy] = (c.connected.headers['heart-beat'] ?? '0,0').split(',').map(Number);
    assert(sx > 0 && sy > 0, `CONNECTED heart-beat ${c.connected.headers['heart-beat']}`);
    const deadline = Date.now() + WAIT_MS;
    while (c.pongs < 3 && Date.now() < deadline) await sleep(100);
    assert(c.pongs >= 3, `${c.pongs} heart-beats from the broker`);
    // Idle for more than two of the broker's intervals: neither side declares the other gone.
    await sleep(2.5 * Math.max(sx, sy));
    assert(c.lost === 0, 'stompjs lost the broker\'s heart-beats');
    assert(c.closed.size === 0, 'the broker closed an idle connection that sends heart-beats');
    const q = queue('heartbeat');
    const messages = await c.subscribe(q);
    await c.publish(q, 'still here');
    await expectNext(messages, 'still here');
    await c.close();
  },

  async error_then_close() {
    const c = await Conn.open();
    c.client.publish({ destination: '/nowhere/at-all', body: 'x' });
    const error = await c.errors.take();
    assert(error.headers.message, `ERROR headers ${JSON.stringify(error.headers)}`);
    await c.closed.take();
    await c.client.deactivate();
  },
};

async function main() {
  if (!URL || !URL.startsWith('ws')) {
    console.error('usage: node stompjs_suite.mjs ws://HOST:PORT/ws');
    process.exit(2);
  }
  let passed = 0;
  let failed = 0;
  for (const [name, check] of Object.entries(checks)) {
    try {
      await check();
      passed += 1;
      console.log(`PASS ${name}`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL ${name}: ${e.stack ?? e}`);
    }
  }
  console.log(`@stomp/stompjs: ${passed} passed, ${failed} failed`);
  // Sockets of failed checks may still be open: leave without waiting for them.
  process.exit(failed ? 1 : 0);
}

main();
