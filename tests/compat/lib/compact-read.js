'use strict';
// compact-read.js - a pulsar-flex consumer with readCompacted, for compaction.test.sh.
//
//   node tests/compat/lib/compact-read.js --url pulsar://127.0.0.1:PORT --topic T --sub S
//        --out FILE [--compacted true|false] [--expect N] [--quiet-ms 2000] [--deadline-s 60]
//
// Subscribes (Exclusive, Earliest, readCompacted as --compacted says) and receives until
// --expect messages came (then --quiet-ms more, to see anything extra) or nothing came for
// --quiet-ms, or --deadline-s passed; acknowledges nothing; closes. --out gets one JSON object:
// {"count": N, "messages": [{"key": K, "value": V}, ...]} in delivery order (key null: none).
// Exit 0 = subscribed and wrote --out, 1 = could not subscribe, 2 = bad usage.

const u = require('./verify-util');

const USAGE = 'usage: compact-read.js --url pulsar://H:P --topic T --sub S --out FILE ' +
  '[--compacted true|false] [--expect N] [--quiet-ms 2000] [--deadline-s 60]';
const o = u.consumerArgs(process.argv.slice(2), {
  compacted: 'true',
  expect: 0,
  'quiet-ms': 2000,
  'deadline-s': 60,
}, USAGE);
const topic = u.fullTopic(o.topic);
const WHO = `compact-read ${o.sub}`;

async function main() {
  const t0 = Date.now();
  const deadline = t0 + o['deadline-s'] * 1000;
  let consumer;
  let sockets;
  try {
    ({ consumer, sockets } = await u.subscribeConsumer(o.url, topic, o.sub, WHO, {
      subType: u.Consumer.SUB_TYPES.EXCLUSIVE,
      consumerName: `compact-read-${process.pid}`,
      initialPosition: u.Consumer.INITIAL_POSITION.EARLIEST,
      readCompacted: o.compacted === 'true',
      receiveQueueSize: 1000,
    }));
  } catch (e) {
    u.log(WHO, `subscribe failed: ${e.message}`);
    process.exit(1);
  }
  const messages = [];
  let last = Date.now();
  await u.withTimeout(consumer.run({
    autoAck: false,
    onMessage: async (m) => {
      const md = m.metadata || {};
      messages.push({ key: md.partitionKey === undefined ? null : md.partitionKey,
        value: Buffer.from(m.message).toString() });
      last = Date.now();
    },
  }), 20000, 'consumer.run() (FLOW)');
  for (;;) {
    const now = Date.now();
    if (now >= deadline) break;
    if (o.expect > 0 && messages.length >= o.expect && now - last >= o['quiet-ms']) break;
    if (o.expect <= 0 && now - last >= o['quiet-ms']) break;
    await u.sleep(50);
  }
  u.writeAtomic(o.out, JSON.stringify({ count: messages.length, messages }) + '\n');
  console.log(`${WHO}: ${messages.length} messages in ${Date.now() - t0} ms`);
  for (const s of sockets) s.destroy();
  process.exit(0);
}

main().catch((e) => {
  u.log(WHO, `error: ${e.stack || e.message}`);
  process.exit(1);
});
