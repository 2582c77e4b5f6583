'use strict';
// rate-probe.js - how long a broker takes to let a fixed number of messages in and out under
// its publish and dispatch rates (rates.test.sh). No wall-clock window: the test compares
// the durations with lower bounds that a slow machine only makes easier to meet.
//
// A Shared consumer subscribes to --topic (the subscription now keeps what comes) and closes.
// One producer then sends --count messages as fast as the broker takes them (16 sends
// outstanding). Once every receipt is in, a Shared consumer attaches to the subscription and
// takes the whole backlog. Prints one JSON line: {"sent", "received", "publishMs",
// "dispatchMs"}: from the first receipt to the last, and from the first message received to
// the last (the backlog is all there before the consumer comes, so only the dispatch rate
// spaces the messages out). Exits 1 when the sends or the receipts miss --deadline-s.
// Usage: node lib/rate-probe.js --url pulsar://H:P --topic T --count N --deadline-s D
const f = require('./flex');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

const span = (times) => (times.length ? Math.max(...times) - Math.min(...times) : 0);

async function main() {
  process.env.MAGNETAR_URL = arg('url');
  const topic = arg('topic');
  const count = Number(arg('count', '400'));
  const deadline = Date.now() + Number(arg('deadline-s', '60')) * 1000;
  const left = () => Math.max(1000, deadline - Date.now());
  const out = await f.withScope('rate-probe', async (s) => {
    await s.closeOne(await s.consumer({ topic, subscription: 'rate', subType: f.SUB_TYPES.SHARED }));
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
    await f.withTimeout(Promise.all(Array.from({ length: 16 }, worker)), left(), 'the sends');
    const c = await s.consumer({ topic, subscription: 'rate', subType: f.SUB_TYPES.SHARED });
    const received = [];
    await f.collect(c, { onEach: (r) => { received.push(r.at); } });
    await s.waitFor(() => received.length >= count, left(), () => `${count} messages (${received.length} so far)`);
    return { sent: receipts.length, received: received.length, publishMs: span(receipts), dispatchMs: span(received) };
  });
  console.log(JSON.stringify(out));
}

main().then(() => process.exit(0), (e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
