'use strict';
// auth-flex.js - pulsar-flex with a token: it sends the token as CONNECT's auth_data with
// auth_method_name "token" (pulsar-flex's `jwt` option, src/commands/connect.js).
//
//   node tests/compat/lib/auth-flex.js --url pulsar://127.0.0.1:PORT --topic T --count N
//        [--token JWT] [--timeout-ms 20000]
//
// Subscribes (Exclusive), creates a producer, sends N messages and waits until the consumer
// received all N, in order. Prints one JSON line: { ok, sent, received, inOrder, error }.
// Exit 0 when all N went through, 1 when any step failed or timed out (a refused
// credential: pulsar-flex gets ERROR AuthenticationError and the step fails or never
// completes), 2 on bad usage.

const u = require('./verify-util');

const USAGE = 'usage: auth-flex.js --url pulsar://H:P --topic T --count N [--token JWT] [--timeout-ms MS]';
const o = u.parseArgs(process.argv.slice(2), {
  url: '', topic: '', count: 0, token: '', 'timeout-ms': 20000,
}, USAGE);
if (!o.topic || o.count <= 0) u.die(USAGE);
const server = u.hostPort(o.url);
const jwt = o.token || undefined;

async function main() {
  const out = { ok: false, sent: 0, received: 0, inOrder: true, error: null };
  const got = [];
  try {
    const consumer = new u.flex.Consumer({
      topic: o.topic, subscription: 'auth-sub', subType: u.flex.Consumer.SUB_TYPES.EXCLUSIVE,
      discoveryServers: [server], jwt, logLevel: u.flex.logLevel.ERROR,
      logCreator: u.logCreator('consumer'),
    });
    await u.withTimeout(consumer.subscribe(), o['timeout-ms'], 'consumer.subscribe()');
    const done = new Promise((resolve) => {
      consumer.run({
        autoAck: true,
        onMessage: async (m) => {
          got.push(Buffer.from(m.message).toString());
          if (got.length >= o.count) resolve();
        },
      });
    });
    const producer = new u.flex.Producer({
      topic: o.topic, discoveryServers: [server], jwt, logLevel: u.flex.logLevel.ERROR,
      logCreator: u.logCreator('producer'),
    });
    await u.withTimeout(producer.create(), o['timeout-ms'], 'producer.create()');
    for (let i = 0; i < o.count; i++) {
      await u.withTimeout(producer.sendMessage({ payload: Buffer.from(`auth-${i}`) }),
        o['timeout-ms'], `send ${i}`);
      out.sent++;
    }
    await u.withTimeout(done, o['timeout-ms'], `receiving ${o.count} messages`);
    out.received = got.length;
    out.inOrder = got.every((p, i) => p === `auth-${i}`);
    out.ok = out.received === o.count && out.inOrder;
  } catch (e) {
    out.received = got.length;
    out.error = e && e.message ? e.message : String(e);
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(out.ok ? 0 : 1);
}

main();
