#!/usr/bin/env node
'use strict';
// bench-flex.js - quick throughput run with the pure-JavaScript client pulsar-flex.
// Prints figures only, asserts nothing.
//
// N producers (default 1) each send M messages (default 20000) of S bytes (default 1024)
// to one topic as fast as the client allows, each keeping W sends outstanding (default
// 100); one Exclusive consumer (subscribed first, receiveQueueSize Q, default 1000) receives
// them all, acking each message without waiting for the ACK_RESPONSE before taking the next.
// Note: pulsar-flex's consumer polls its queue once a second when it finds it empty and asks
// for Q/2 more messages when half the queue is consumed, so the consume rate it can reach is
// about Q/2..Q messages per second whatever the broker does; raise -q to measure the broker.
//
// usage: node scripts/bench-flex.js [pulsar://HOST:PORT] [-n N] [-m M] [-s S] [-w W] [-q Q] [-t TIMEOUT_S]
//        (the URL defaults to $MAGNETAR_URL; pulsar-flex is taken from tests/compat/node_modules,
//         so run `npm ci` in tests/compat first)
const path = require('node:path');
const crypto = require('node:crypto');

const compatDir = path.join(__dirname, '..', 'tests', 'compat');
let flex;
try {
  flex = require(require.resolve('pulsar-flex', { paths: [compatDir] }));
} catch (e) {
  console.error(`bench-flex: pulsar-flex not found; run \`npm ci\` in ${compatDir}`);
  process.exit(2);
}
const { Producer, Consumer, logLevel } = flex;

function parseArgs() {
  const o = { url: process.env.MAGNETAR_URL, n: 1, m: 20000, s: 1024, w: 100, q: 1000, t: 300 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (/^pulsar:\/\//.test(a)) o.url = a;
    else if (/^-[nmswqt]$/.test(a)) o[a[1]] = Number(argv[++i]);
    else {
      console.error(`bench-flex: unknown argument ${a}`);
      process.exit(2);
    }
  }
  const m = /^pulsar:\/\/([^/:]+):(\d+)\/?$/.exec(o.url || '');
  if (!m) {
    console.error('bench-flex: give the service URL as pulsar://HOST:PORT or in MAGNETAR_URL');
    process.exit(2);
  }
  o.server = `${m[1]}:${m[2]}`;
  return o;
}

const fmt = (x, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

async function main() {
  const o = parseArgs();
  const total = o.n * o.m;
  const topic = `persistent://public/default/bench-flex-${Date.now().toString(36)}-${crypto.randomBytes(3).toString('hex')}`;
  const common = { topic, discoveryServers: [o.server], logLevel: logLevel.ERROR };
  console.log(`bench-flex: ${o.n} producer(s) x ${o.m} messages of ${o.s} B, window ${o.w}, consumer queue ${o.q}, topic ${topic}`);

  const consumer = new Consumer({
    ...common,
    subscription: 'bench',
    subType: Consumer.SUB_TYPES.EXCLUSIVE,
    consumerName: 'bench-consumer',
    receiveQueueSize: o.q,
  });
  await consumer.subscribe();
  let received = 0;
  let receivedBytes = 0;
  let firstRecv = 0;
  let lastRecv = 0;
  let ackErrors = 0;
  let allReceived;
  const allReceivedP = new Promise((r) => (allReceived = r));
  await consumer.run({
    autoAck: false,
    onMessage: async ({ message, ack }) => {
      if (!firstRecv) firstRecv = Date.now();
      received++;
      receivedBytes += message.length;
      lastRecv = Date.now();
      ack().catch(() => ackErrors++);
      if (received >= total) allReceived();
    },
  });

  const producers = [];
  for (let i = 0; i < o.n; i++) {
    const p = new Producer({ ...common, producerAccessMode: Producer.ACCESS_MODES.SHARED });
    await p.create();
    producers.push(p);
  }
  const payload = crypto.randomBytes(o.s);
  let sent = 0;
  const t0 = Date.now();
  const produceOne = async (p) => {
    let next = 0;
    const worker = async () => {
      while (next < o.m) {
        next++;
        await p.sendMessage({ payload });
        sent++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(o.w, o.m) }, worker));
  };
  const progress = setInterval(() => {
    console.log(`  ${((Date.now() - t0) / 1000).toFixed(0)} s: ${sent} receipts, ${received} received`);
  }, 5000);
  let timer;
  const timeout = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error(`timed out after ${o.t} s`)), o.t * 1000);
  });
  let produceMs = null;
  let failure = null;
  try {
    await Promise.race([Promise.all(producers.map(produceOne)), timeout]);
    produceMs = Date.now() - t0;
    await Promise.race([allReceivedP, timeout]);
  } catch (e) {
    failure = e;
  }
  clearInterval(progress);
  clearTimeout(timer);
  const consumeMs = (lastRecv || Date.now()) - t0;
  const mb = (bytes) => bytes / (1024 * 1024);

  console.log('');
  if (produceMs !== null) {
    console.log(`produced: ${fmt(sent)} msgs in ${fmt(produceMs / 1000, 2)} s = ${fmt(sent / (produceMs / 1000))} msg/s, `
      + `${fmt(mb(sent * o.s) / (produceMs / 1000), 2)} MB/s`);
  } else {
    console.log(`produced: ${fmt(sent)} of ${fmt(total)} msgs (unfinished)`);
  }
  console.log(`consumed: ${fmt(received)} msgs in ${fmt(consumeMs / 1000, 2)} s (from the first send) = `
    + `${fmt(received / (consumeMs / 1000))} msg/s, ${fmt(mb(receivedBytes) / (consumeMs / 1000), 2)} MB/s`);
  if (ackErrors) console.log(`ack errors: ${ackErrors}`);
  if (failure) console.log(`incomplete: ${failure.message}`);
  return failure ? 1 : 0;
}

// pulsar-flex leaves timers and sockets behind; exit explicitly.
main().then((rc) => process.exit(rc), (e) => {
  console.error(`bench-flex: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
