// The end-to-end workload of `cargo xtask bench-e2e` on @stomp/stompjs over WebSocket (the
// `ws` package) in Node. Same command line and JSON summary as the Rust clients
// (benches/e2e/common.rs), URL a ws:// Web-STOMP address:
//
//   node stompjs_bench.mjs ws://[login:passcode@]127.0.0.1:15674/ws [--producers P]
//       [--consumers C] [--size BYTES] [--count N] [--ack auto|client|client-individual]
//       [--receipts] [--destination DEST] [--in-flight N] [--timeout SECS]
//
// Each producer and consumer is a Client of its own (its own WebSocket). stompjs's publish()
// writes at once with no backpressure, so a producer yields to the event loop every few
// messages and whenever its socket holds more than a few MiB unsent; with --receipts at most
// --in-flight messages wait for their receipt (watchForReceipt).

import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

const SENT_HEADER = 'bench-sent-ns';
const YIELD_EVERY = 64;
const MAX_UNSENT = 4 * 1024 * 1024;

function parseArgs(argv) {
  const args = {
    url: argv[0], producers: 1, consumers: 1, size: 200, count: 10000, ack: 'auto',
    receipts: false, destination: `/queue/stompkit-e2e-js-${process.pid}`, inFlight: 1024,
    timeout: 300,
  };
  if (!args.url) throw new Error('usage: URL [--producers P] ...');
  for (let i = 1; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--receipts') { args.receipts = true; continue; }
    const value = argv[++i];
    if (value === undefined) throw new Error(`${flag} takes a value`);
    switch (flag) {
      case '--producers': args.producers = Math.max(1, Number(value)); break;
      case '--consumers': args.consumers = Number(value); break;
      case '--size': args.size = Number(value); break;
      case '--count': args.count = Math.max(1, Number(value)); break;
      case '--in-flight': args.inFlight = Math.max(1, Number(value)); break;
      case '--timeout': args.timeout = Math.max(1, Number(value)); break;
      case '--destination': args.destination = value; break;
      case '--ack':
        if (!['auto', 'client', 'client-individual'].includes(value)) throw new Error(`--ack ${value}`);
        args.ack = value; break;
      default: throw new Error(`unknown flag ${flag}`);
    }
  }
  return args;
}

// Wall-clock nanoseconds (the header's unit), from a monotonic clock anchored once.
const anchorWall = BigInt(Date.now()) * 1000000n;
const anchorMono = process.hrtime.bigint();
const unixNanos = () => anchorWall + (process.hrtime.bigint() - anchorMono);
const monoNanos = () => process.hrtime.bigint();
const tick = () => new Promise((resolve) => setImmediate(resolve));

function quantiles(values) {
  if (values.length === 0) return null;
  values.sort((a, b) => a - b);
  const n = values.length;
  const at = (q) => values[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] / 1e6;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: values[n - 1] / 1e6 };
}

function connect(args, fail) {
  const url = new URL(args.url);
  const login = decodeURIComponent(url.username) || 'guest';
  const passcode = decodeURIComponent(url.password) || 'guest';
  url.username = '';
  url.password = '';
  const brokerURL = url.toString();
  return new Promise((resolve, reject) => {
    const client = new Client({
      webSocketFactory: () => new WebSocket(brokerURL, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
      connectHeaders: { login, passcode, host: '/' },
      // Off: RabbitMQ 3.10's Web-STOMP heart-beater crashes ({unexpected_message,resume})
      // when flow control pauses a busy connection, and the connection dies with it.
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      reconnectDelay: 0,
      onConnect: () => resolve(client),
      onStompError: (frame) => fail(`ERROR from the broker: ${frame.headers.message}`),
      onWebSocketError: (e) => reject(new Error(`WebSocket: ${e.message || e}`)),
      onWebSocketClose: (e) => fail(`a connection closed (${e.code} ${e.reason || ''})`),
      debug: process.env.STOMPJS_DEBUG ? (m) => process.stderr.write(`${m}\n`) : () => {},
    });
    client.activate();
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const fanOut = args.destination.startsWith('/topic/') || args.destination.startsWith('/exchange/');
  const s = {
    sent: 0, receipted: 0, received: 0, expected: Infinity, lastDelivery: 0n,
    deliveryLatency: [], receiptLatency: [], failure: null, started: 0n, finishing: false,
  };
  let onDone;
  const done = new Promise((resolve) => { onDone = resolve; });
  const fail = (why) => {
    if (s.finishing) return;
    if (s.failure === null) s.failure = why;
    onDone();
  };
  const checkDone = () => { if (s.received >= s.expected) onDone(); };
  const timer = setTimeout(() => fail(`--timeout ${args.timeout}: ${s.sent} sent, ${s.received} received`),
    args.timeout * 1000);

  const clients = [];
  for (let i = 0; i < args.consumers; i++) {
    const client = await connect(args, fail);
    clients.push(client);
    await new Promise((resolve) => {
      const receipt = `subscribed-${i}`;
      client.watchForReceipt(receipt, resolve);
      client.subscribe(args.destination, (message) => {
        const now = unixNanos();
        if (args.ack !== 'auto') message.ack();
        const sent = message.headers[SENT_HEADER];
        if (sent !== undefined) s.deliveryLatency.push(Number(now - BigInt(sent)));
        s.received += 1;
        s.lastDelivery = monoNanos() - s.started;
        checkDone();
      }, { id: `sub-${i}`, ack: args.ack, receipt });
    });
  }
  const producers = [];
  for (let i = 0; i < args.producers; i++) producers.push(await connect(args, fail));
  clients.push(...producers);

  const body = new Uint8Array(args.size).fill(0x78);
  s.started = monoNanos();
  const produce = async (client, i) => {
    const n = Math.floor(args.count / args.producers) + (i < args.count % args.producers ? 1 : 0);
    let waiting = 0;
    let freed = null;
    for (let k = 0; k < n && s.failure === null; k++) {
      const headers = { [SENT_HEADER]: unixNanos().toString() };
      if (args.receipts) {
        while (waiting >= args.inFlight && s.failure === null) {
          await new Promise((resolve) => { freed = resolve; });
        }
        const receipt = `${i}-${k}`;
        const at = monoNanos();
        waiting += 1;
        client.watchForReceipt(receipt, () => {
          s.receiptLatency.push(Number(monoNanos() - at));
          s.receipted += 1;
          waiting -= 1;
          if (freed) { const f = freed; freed = null; f(); }
        });
        headers.receipt = receipt;
      }
      client.publish({ destination: args.destination, binaryBody: body, headers });
      s.sent += 1;
      if (k % YIELD_EVERY === 0 || client.webSocket.bufferedAmount > MAX_UNSENT) {
        do { await tick(); } while (client.webSocket.bufferedAmount > MAX_UNSENT && s.failure === null);
      }
    }
    while (waiting > 0 && s.failure === null) {
      await new Promise((resolve) => { freed = resolve; });
    }
    // Everything is written once the socket's buffer is empty.
    while (client.webSocket.bufferedAmount > 0 && s.failure === null) await tick();
  };
  await Promise.race([Promise.all(producers.map(produce)), done]);
  const producersDone = monoNanos() - s.started;
  s.expected = args.consumers === 0 ? 0 : s.sent * (fanOut ? args.consumers : 1);
  checkDone();
  await done;
  clearTimeout(timer);
  s.finishing = true;
  if (s.failure !== null) {
    process.stderr.write(`error: ${s.failure}\n`);
    process.exit(2);
  }
  const elapsed = args.consumers === 0 ? producersDone : s.lastDelivery;
  const secs = Math.max(Number(elapsed) / 1e9, 1e-9);
  const summary = {
    client: 'stompjs', destination: args.destination, producers: args.producers,
    consumers: args.consumers, size: args.size, ack: args.ack, receipts: args.receipts,
    sent: s.sent, receipted: s.receipted, received: s.received, expected: s.expected,
    elapsed_s: secs, msgs_per_s: s.sent / secs, deliveries_per_s: s.received / secs,
    receipt_latency_ms: args.receipts ? quantiles(s.receiptLatency) : null,
    delivery_latency_ms: args.consumers > 0 ? quantiles(s.deliveryLatency) : null,
  };
  // A broker slow to close does not hold the summary back for long.
  await Promise.race([Promise.all(clients.map((c) => c.deactivate())), new Promise((r) => setTimeout(r, 5000))]);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  process.exit(0);
}

main().catch((e) => {
  process.stderr.write(`error: ${e.message || e}\n`);
  process.exit(2);
});
