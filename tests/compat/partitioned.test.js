'use strict';
// Acceptance 10: a partitioned topic created through the admin API. pulsar-flex has no
// partitioned-topic support (it never sends PARTITIONED_METADATA), so it produces to and
// consumes from `<topic>-partition-<i>` directly.
const { test } = require('node:test');
const assert = require('node:assert');
const f = require('./lib/flex');

const PARTITIONS = 3;

test('admin PUT .../partitions=3, GET returns {"partitions":3}, each -partition-<i> works on its own',
  { timeout: 90000 },
  () => f.withScope('partitioned', async (s) => {
    const topic = f.uniqueTopic('parts');
    const path = `/admin/v2/persistent/public/default/${encodeURIComponent(f.localName(topic))}/partitions`;

    const put = await f.admin('PUT', path, String(PARTITIONS));
    assert.ok(put.status >= 200 && put.status < 300, `PUT ${path} -> HTTP ${put.status} ${put.text}`);
    const get = await f.admin('GET', path);
    assert.strictEqual(get.status, 200, `GET ${path} -> HTTP ${get.status} ${get.text}`);
    assert.ok(get.json && typeof get.json === 'object', `GET ${path} body is not JSON: ${get.text}`);
    assert.strictEqual(get.json.partitions, PARTITIONS, `GET ${path} -> ${get.text}`);

    const parts = Array.from({ length: PARTITIONS }, (_, i) => `${topic}-partition-${i}`);
    const consumers = await Promise.all(parts.map((t) => s.consumer({ topic: t, subscription: 'parts-sub' })));
    const gots = await Promise.all(consumers.map((c) => f.collect(c)));
    const producers = await Promise.all(parts.map((t) => s.producer(t)));
    const msgs = parts.map((_, i) => f.makeMessages(20, `p${i}`));
    await Promise.all(producers.map((p, i) => f.sendAll(p, msgs[i])));
    await s.waitFor(() => gots.every((g) => g.length >= 20), 30000,
      () => `20 messages on every partition (got ${gots.map((g) => g.length).join('/')})`);
    await Promise.all(producers.map((p, i) => f.flushWithMarker(s, p, gots[i])));
    for (let i = 0; i < PARTITIONS; i++) f.checkExactSequence(gots[i], msgs[i], `partition ${i}`);
    assert.deepStrictEqual(s.problems(), [], 'pulsar-flex logged warnings/errors');
  }));

test('admin PUT .../partitions on an existing partitioned topic is refused with 409', { timeout: 30000 },
  async () => {
    const topic = f.uniqueTopic('parts-dup');
    const path = `/admin/v2/persistent/public/default/${encodeURIComponent(f.localName(topic))}/partitions`;
    const first = await f.admin('PUT', path, '2');
    assert.ok(first.status >= 200 && first.status < 300, `first PUT -> HTTP ${first.status} ${first.text}`);
    const second = await f.admin('PUT', path, '2');
    assert.strictEqual(second.status, 409, `second PUT -> HTTP ${second.status} ${second.text}`);
    const get = await f.admin('GET', path);
    assert.strictEqual(get.status, 200);
    assert.strictEqual(get.json && get.json.partitions, 2, get.text);
  });
