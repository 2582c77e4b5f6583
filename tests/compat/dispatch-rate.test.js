'use strict';
// Dispatch and publish rate limits (issue 15) measured with pulsar-flex clients: a namespace's
// subscriptionDispatchRate, dispatchRate and publishRate (set through the admin paths
// pulsar-admin uses). No wall-clock window: a limit of R msg/s, a bucket holding one period
// (R), cannot let M messages through in less than (M - R) / R seconds. Each test leaves out
// the bursts of the start (a full bucket per subscription, one more when the namespace's
// rate replaces the broker's once its policies are read) and checks how long the rest took
// against that lower bound, with one more period of slack (the sends in flight when the
// producer's connection is paused); slowness only lengthens it, while without the limit the
// same messages take a fraction of it. The upper bound is an order of magnitude out
// (10 N / R s): it only catches a limiter that lets (almost) nothing through. The exact
// bucket behaviour is tested on the simulated clock in check_topic (test_dispatch_rate,
// test_publish_rate).
const { test } = require('node:test');
const assert = require('node:assert');
const f = require('./lib/flex');

async function ok(method, path, body, status = 204) {
  const r = await f.admin(method, path, body);
  assert.strictEqual(r.status, status, `${method} ${path} -> HTTP ${r.status} ${r.text}`);
  return r;
}

// times: when each of n messages came under a limit of rate msg/s whose start may burst
// `bursts` periods: those after the bursts took in bounds.
function assertPaced(what, times, n, rate, bursts) {
  const skip = bursts * rate;
  const t = [...times].sort((a, b) => a - b);
  const ms = t[t.length - 1] - t[skip];
  const lo = ((n - skip - 2 * rate) * 1000) / rate;
  const hi = (10 * n * 1000) / rate;
  console.log(`figure: ${what}: the last ${n - skip} of ${n} took ${ms} ms (bound ${lo} ms)`);
  assert.ok(ms >= lo && ms <= hi,
    `${what}: the last ${n - skip} of ${n} messages at ${rate} msg/s took ${ms} ms (want ${lo}..${hi} ms)`);
}

// A namespace with the dispatch rate `path`; the subscriptions are made first, the backlog of
// `count` messages is stored, then one Shared consumer per subscription takes it all.
async function measure(s, { tag, path, rate, subs, count }) {
  const ns = `public/${f.uniqueName(tag)}`;
  await ok('PUT', `/admin/v2/namespaces/${ns}`);
  await ok('POST', `/admin/v2/namespaces/${ns}/${path}`,
    { dispatchThrottlingRateInMsg: rate, dispatchThrottlingRateInByte: -1, ratePeriodInSecond: 1 });
  const topic = `persistent://${ns}/t`;
  for (const sub of subs) await s.closeOne(await s.consumer({ topic, subscription: sub, subType: f.SUB_TYPES.SHARED }));
  await f.sendAll(await s.producer(topic), f.makeMessages(count, tag));
  const all = [];
  for (const sub of subs) {
    const c = await s.consumer({ topic, subscription: sub, subType: f.SUB_TYPES.SHARED });
    await f.collect(c, { onEach: (r) => { all.push(r.at); } });
  }
  const total = count * subs.length;
  await s.waitFor(() => all.length >= total, (20 * total * 1000) / rate, () => `${total} messages (${all.length} so far)`);
  assertPaced(`${path}=${rate} msg/s, ${subs.length} subscription(s)`, all, total, rate, subs.length + 1);
}

test('subscriptionDispatchRate: one subscription\'s backlog comes no faster than its rate', { timeout: 120000 },
  () => f.withScope('sub-dispatch-rate', (s) =>
    measure(s, { tag: 'sdr', path: 'subscriptionDispatchRate', rate: 50, subs: ['a'], count: 400 })));

test('dispatchRate: two subscriptions together get no more than the topic\'s rate', { timeout: 120000 },
  () => f.withScope('topic-dispatch-rate', (s) =>
    measure(s, { tag: 'tdr', path: 'dispatchRate', rate: 40, subs: ['a', 'b'], count: 160 })));

test('publishRate: a producer sending as fast as it can gets its receipts no faster than the '
  + 'namespace\'s publish rate', { timeout: 120000 },
  () => f.withScope('publish-rate', async (s) => {
    const rate = 60;
    const count = 400;
    const ns = `public/${f.uniqueName('pr')}`;
    await ok('PUT', `/admin/v2/namespaces/${ns}`);
    await ok('POST', `/admin/v2/namespaces/${ns}/publishRate`,
      { publishThrottlingRateInMsg: rate, publishThrottlingRateInByte: -1 });
    const producer = await s.producer(`persistent://${ns}/t`);
    const receipts = [];
    const msgs = f.makeMessages(count, 'pr');
    let next = 0;
    const worker = async () => {
      while (next < msgs.length) {
        await producer.sendMessage(msgs[next++]);
        receipts.push(Date.now());
      }
    };
    await f.withTimeout(Promise.all(Array.from({ length: 16 }, worker)), (20 * count * 1000) / rate,
      () => `${count} receipts (${receipts.length} so far)`);
    assertPaced(`publishRate=${rate} msg/s`, receipts, count, rate, 2);
  }));
