'use strict';
// Non-persistent topics (issue 15) with the real client: messages go only to the consumers
// connected now, nothing is stored, every message id is Pulsar's (0, 0), and a consumer
// that connects later sees nothing of what was sent before; the admin API lists the topic
// under /admin/v2/non-persistent/ and shows its stats.
const { test } = require('node:test');
const assert = require('node:assert');
const f = require('./lib/flex');

const NPT = '/admin/v2/non-persistent/public/default';

function npTopic(tag) {
  return `non-persistent://public/default/compat-${f.uniqueName(tag)}`;
}

function npLocal(topic) {
  return topic.replace(/^non-persistent:\/\/[^/]+\/[^/]+\//, '');
}

async function npStats(topic) {
  const r = await f.admin('GET', `${NPT}/${encodeURIComponent(npLocal(topic))}/stats`);
  assert.strictEqual(r.status, 200, `stats of ${topic}: HTTP ${r.status} ${r.text}`);
  return r.json;
}

// A message sent before a consumer's FLOW reached the broker is dropped (no permits), so
// wait until every subscription named has a consumer with permits before producing.
async function waitForPermits(s, topic, subs) {
  let last = null;
  await s.waitFor(async () => {
    last = await npStats(topic);
    return subs.every((name) => {
      const sub = last.subscriptions && last.subscriptions[name];
      return sub && sub.consumers.length > 0 && sub.consumers.every((c) => c.availablePermits > 0);
    });
  }, 20000, () => `permits on ${subs.join(', ')} (stats: ${JSON.stringify(last && last.subscriptions)})`);
}

test('non-persistent topic: the connected consumer gets every message with id 0:0, a later one nothing from before',
  { timeout: 120000 },
  () => f.withScope('np-late', async (s) => {
    const topic = npTopic('np');
    const early = await s.consumer({ topic, subscription: 'early' });
    const got1 = await f.collect(early);
    await waitForPermits(s, topic, ['early']);
    const producer = await s.producer(topic);
    const before = f.makeMessages(200, 'before');
    await f.sendAll(producer, before, { window: 20 });
    await s.waitFor(() => got1.length >= before.length, 30000,
      () => `${before.length} messages on the early consumer (got ${got1.length})`);
    f.checkExactSequence(got1, before, 'early consumer');
    for (const r of got1) {
      assert.ok(Number(r.messageId.ledgerid) === 0 && Number(r.messageId.entryid) === 0,
        `message id ${r.messageId.ledgerid}:${r.messageId.entryid}, expected 0:0`);
    }

    // A consumer that connects now gets only what comes next.
    const late = await s.consumer({ topic, subscription: 'late' });
    const got2 = await f.collect(late);
    await waitForPermits(s, topic, ['early', 'late']);
    const after = f.makeMessages(30, 'after');
    await f.sendAll(producer, after, { window: 10 });
    await s.waitFor(() => got2.length >= after.length && got1.length >= before.length + after.length,
      30000, () => `the later messages on both (late ${got2.length}, early ${got1.length})`);
    f.checkExactSequence(got2, after, 'late consumer');
    f.checkExactSequence(got1, [...before, ...after], 'early consumer');

    // Admin: listed in its domain (not among the persistent topics), stats of both
    // subscriptions, nothing dropped and no backlog.
    const list = await f.admin('GET', NPT);
    assert.strictEqual(list.status, 200, `GET ${NPT}: ${list.text}`);
    assert.ok(list.json.includes(topic), `${topic} not in ${list.text}`);
    const plist = await f.admin('GET', '/admin/v2/persistent/public/default');
    assert.ok(!plist.json.includes(topic), `${topic} listed among the persistent topics`);
    const st = await npStats(topic);
    assert.strictEqual(st.msgInCounter, before.length + after.length);
    assert.strictEqual(st.publishers.length, 1);
    for (const name of ['early', 'late']) {
      assert.ok(st.subscriptions[name], `no subscription ${name} in the stats`);
      assert.strictEqual(st.subscriptions[name].msgBacklog, 0);
      assert.strictEqual(typeof st.subscriptions[name].msgDropRate, 'number');
    }
    assert.deepStrictEqual([...got1.errors, ...got2.errors], []);
    assert.deepStrictEqual(s.problems(), [], 'pulsar-flex logged warnings/errors');
  }));

test('non-persistent topic, Shared subscription with two consumers: together they get every message once',
  { timeout: 120000 },
  () => f.withScope('np-shared', async (s) => {
    const topic = npTopic('np-shared');
    const c1 = await s.consumer({ topic, subscription: 'sh', subType: f.SUB_TYPES.SHARED, name: 'c1' });
    const c2 = await s.consumer({ topic, subscription: 'sh', subType: f.SUB_TYPES.SHARED, name: 'c2' });
    const got1 = await f.collect(c1);
    const got2 = await f.collect(c2);
    await waitForPermits(s, topic, ['sh']);
    const producer = await s.producer(topic);
    // fewer than the permits the two consumers hold together: nothing is dropped
    const msgs = f.makeMessages(300, 'np-shared');
    await f.sendAll(producer, msgs, { window: 20 });
    await s.waitFor(() => got1.length + got2.length >= msgs.length, 30000,
      () => `${msgs.length} messages in total (c1 ${got1.length}, c2 ${got2.length})`);
    const seen = new Set([...got1, ...got2].map((r) => r.text));
    assert.strictEqual(seen.size, msgs.length, 'duplicates or missing messages');
    for (const m of msgs) assert.ok(seen.has(m.payload.toString()), `missing ${m.payload}`);
    assert.ok(got1.length > 0 && got2.length > 0, `c1 ${got1.length}, c2 ${got2.length}`);
    assert.deepStrictEqual(s.problems(), [], 'pulsar-flex logged warnings/errors');
  }));
