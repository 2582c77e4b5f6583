'use strict';
// rate-probe.js - how long a broker takes to let a fixed number of messages in and out under
// its publish and dispatch rates (rates.test.sh). No wall-clock window: the test compares
// the durations with lower bounds that a slow machine only makes easier to meet.
//
// A Shared consumer subscribes to --topic (the subscription now keeps what comes) and closes.
// One producer then sends --count messages as fast as the broker takes them (16 sends
// outstanding). Once every receipt is in, a Shared consumer attaches to the subscription and
// takes the whole backlog. Prints one JSON line: {"sent", "received", "publishMs",
// "dispatchMs"}: from receipt number --skip-publish (0 = the first) to the last, and from
// message number --skip-dispatch received to the last (the backlog is all there before the
// consumer comes, so only the dispatch rate spaces the messages out). Skipping the first
// ones leaves out the bursts of the start (a full bucket, or two when the namespace's rate
// replaces the broker's once the policies are read) and the client's own start.
// Exits 1 when the sends or the receipts miss --deadline-s.
// Usage: node lib/rate-probe.js --url pulsar://H:P --topic T --count N --deadline-s D
//        [--skip-publish K] [--skip-dispatch K]
const f = require('./flex');

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

// ms from the (skip+1)-th time to the last
const spanFrom = (times, skip) => {
  const t = [...times].sort((a, b) => a - b);
  return t.length > skip ? t[t.length - 1] - t[skip] : 0;
};

async function main() {
  process.env.MAGNETAR_URL = arg('url');
  const topic = arg('topic');
  const count = Number(arg('count', '400'));
  const skipPublish = Number(arg('skip-publish', '0'));
  const skipDispatch = Number(arg('skip-dispatch', '0'));
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
    return { sent: receipts.length, received: received.length, publishMs: spanFrom(receipts, skipPublish),
      dispatchMs: spanFrom(received, skipDispatch) };
  });
  console.log(JSON.stringify(out));
}

main().then(() => process.exit(0), (e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
