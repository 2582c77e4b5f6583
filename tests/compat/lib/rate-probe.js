'use strict';
// rate-probe.js - measures the publish and dispatch rates a broker allows (rates.test.sh).
//
// A Shared consumer subscribes to --topic; one producer then sends --count messages as fast as
// the broker takes them (16 sends outstanding) while the consumer takes everything. Prints
// one JSON line: {"sent", "received", "publishRate", "dispatchRate"}: the receipts and the
// messages received per second in the window [--skip-ms, --skip-ms + --window-ms) after the
// first of each, divided by the window's length (no exact timing).
// Usage: node lib/rate-probe.js --url pulsar://H:P --topic T --count N --skip-ms S
//        --window-ms W --deadline-s D
const f = require('./flex');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

function rateIn(times, from, to) {
  if (times.length === 0) return 0;
  const t0 = Math.min(...times);
  return times.filter((at) => at >= t0 + from && at < t0 + to).length / ((to - from) / 1000);
}

async function main() {
  process.env.MAGNETAR_URL = arg('url');
  const topic = arg('topic');
  const count = Number(arg('count', '400'));
  const skipMs = Number(arg('skip-ms', '1500'));
  const windowMs = Number(arg('window-ms', '3000'));
  const deadline = Date.now() + Number(arg('deadline-s', '60')) * 1000;
  const out = await f.withScope('rate-probe', async (s) => {
    const c = await s.consumer({ topic, subscription: 'rate', subType: f.SUB_TYPES.SHARED });
    const received = [];
    await f.collect(c, { onEach: (r) => { received.push(r.at); } });
    const producer = await s.producer(topic);
    const msgs = f.makeMessages(count, 'rate');
    const receipts = [];
    let next = 0;
    const worker = async () => {
      while (next < msgs.length) {
        await producer.sendMessage(msgs[next++]);
        receipts.push(Date.now());
      }
    };
    await f.withTimeout(Promise.all(Array.from({ length: 16 }, worker)), deadline - Date.now(), 'the sends');
    await s.waitFor(() => received.length >= count || Date.now() >= Math.min(...received) + skipMs + windowMs,
      Math.max(1000, deadline - Date.now()), 'the dispatch window');
    return {
      sent: receipts.length,
      received: received.length,
      publishRate: rateIn(receipts, skipMs, skipMs + windowMs),
      dispatchRate: rateIn(received, skipMs, skipMs + windowMs),
    };
  });
  console.log(JSON.stringify(out));
}

main().then(() => process.exit(0), (e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
