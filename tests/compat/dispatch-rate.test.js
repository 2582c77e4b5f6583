'use strict';
// Dispatch rate limits (issue 15) measured with pulsar-flex consumers: a namespace's
// subscriptionDispatchRate and dispatchRate (set through the admin paths pulsar-admin uses)
// hold what a subscription, or all subscriptions of a topic together, receive per second to
// the limit within 20 %, counted over a window of several seconds after the first
// period's burst (no exact timing: the count is divided by the window's measured length).
const { test } = require('node:test');
const assert = require('node:assert');
const f = require('./lib/flex');

async function ok(method, path, body, status = 204) {
  const r = await f.admin(method, path, body);
  assert.strictEqual(r.status, status, `${method} ${path} -> HTTP ${r.status} ${r.text}`);
  return r;
}

// Messages per second among `records` (from every consumer) received in [from, to) ms after t0.
function rateIn(records, t0, from, to) {
  const n = records.filter((r) => r.at >= t0 + from && r.at < t0 + to).length;
  return n / ((to - from) / 1000);
}

async function measure(s, { tag, path, rate, subs, skipMs, windowMs }) {
  const ns = `public/${f.uniqueName(tag)}`;
  await ok('PUT', `/admin/v2/namespaces/${ns}`);
  await ok('POST', `/admin/v2/namespaces/${ns}/${path}`,
    { dispatchThrottlingRateInMsg: rate, dispatchThrottlingRateInByte: -1, ratePeriodInSecond: 1 });
  const topic = `persistent://${ns}/t`;
  const all = [];
  const consumers = [];
  for (const sub of subs) {
    const c = await s.consumer({ topic, subscription: sub, subType: f.SUB_TYPES.SHARED });
    consumers.push(c);
  }
  const producer = await s.producer(topic);
  const total = Math.ceil(rate * (skipMs + windowMs) / 1000) * 2;
  await f.sendAll(producer, f.makeMessages(total, tag));
  for (const c of consumers) await f.collect(c, { onEach: (r) => { all.push(r); } });
  await s.waitFor(() => all.length > 0, 20000, 'a first message');
  const t0 = Math.min(...all.map((r) => r.at));
  await s.waitFor(() => Date.now() >= t0 + skipMs + windowMs, skipMs + windowMs + 20000,
    'the measuring window to pass');
  const measured = rateIn(all, t0, skipMs, skipMs + windowMs);
  assert.ok(measured >= rate * 0.8 && measured <= rate * 1.2,
    `${path}=${rate} msg/s: measured ${measured.toFixed(1)} msg/s over ${windowMs} ms ` +
    `(${all.length} received in all of ${total * subs.length})`);
  assert.ok(all.length < total * subs.length, 'the backlog must outlast the window');
}

test('subscriptionDispatchRate: one subscription receives its rate within 20 %', { timeout: 60000 },
  () => f.withScope('sub-dispatch-rate', (s) =>
    measure(s, { tag: 'sdr', path: 'subscriptionDispatchRate', rate: 50, subs: ['a'], skipMs: 1500, windowMs: 4000 })));

test('dispatchRate: two subscriptions together receive the topic\'s rate within 20 %', { timeout: 60000 },
  () => f.withScope('topic-dispatch-rate', (s) =>
    measure(s, { tag: 'tdr', path: 'dispatchRate', rate: 40, subs: ['a', 'b'], skipMs: 2500, windowMs: 4000 })));

test('publishRate: a producer sending as fast as it can gets its receipts at the namespace\'s '
  + 'publish rate within 20 %', { timeout: 60000 },
  () => f.withScope('publish-rate', async (s) => {
    const rate = 60;
    const ns = `public/${f.uniqueName('pr')}`;
    await ok('PUT', `/admin/v2/namespaces/${ns}`);
    await ok('POST', `/admin/v2/namespaces/${ns}/publishRate`,
      { publishThrottlingRateInMsg: rate, publishThrottlingRateInByte: -1 });
    const producer = await s.producer(`persistent://${ns}/t`);
    const receipts = [];
    const total = rate * 6;
    const msgs = f.makeMessages(total, 'pr');
    let next = 0;
    const worker = async () => {
      while (next < msgs.length) {
        await producer.sendMessage(msgs[next++]);
        receipts.push(Date.now());
      }
    };
    const t0 = Date.now();
    const sending = Promise.all(Array.from({ length: 16 }, worker));
    const skipMs = 1500;
    const windowMs = 3000;
    await s.waitFor(() => Date.now() >= t0 + skipMs + windowMs, skipMs + windowMs + 20000,
      'the measuring window to pass');
    const n = receipts.filter((at) => at >= t0 + skipMs && at < t0 + skipMs + windowMs).length;
    const measured = n / (windowMs / 1000);
    assert.ok(measured >= rate * 0.8 && measured <= rate * 1.2,
      `publishRate=${rate} msg/s: measured ${measured.toFixed(1)} receipts/s (${receipts.length} of ${total} so far)`);
    assert.ok(receipts.length < total, 'the producer must still have messages to send');
    await f.withTimeout(sending, 30000, 'the remaining sends');
  }));
