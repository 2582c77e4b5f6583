'use strict';
// Acceptance 2: a Shared subscription with two consumers splits the stream.
const { test } = require('node:test');
const assert = require('node:assert');
const f = require('./lib/flex');

const N = 1000;

test(`Shared subscription, two consumers: together they get all ${N} messages, no duplicates, both get some`,
  { timeout: 120000 },
  () => f.withScope('shared', async (s) => {
    const topic = f.uniqueTopic('shared');
    const sub = 'shared-sub';
    const c1 = await s.consumer({ topic, subscription: sub, subType: f.SUB_TYPES.SHARED, name: 'c1' });
    const c2 = await s.consumer({ topic, subscription: sub, subType: f.SUB_TYPES.SHARED, name: 'c2' });
    const got1 = await f.collect(c1);
    const got2 = await f.collect(c2);
    const producer = await s.producer(topic);
    const msgs = f.makeMessages(N, 'shared');

    await f.sendAll(producer, msgs, { window: 50 });
    await s.waitFor(() => got1.length + got2.length >= N, 60000,
      () => `${N} messages in total (c1 ${got1.length}, c2 ${got2.length})`);
    // Late duplicates: each consumer's come before a marker it gets (markers until both had one).
    await f.flushAllWithMarkers(s, producer, [got1, got2]);

    const seen = new Map();
    for (const r of [...got1, ...got2]) seen.set(r.text, (seen.get(r.text) || 0) + 1);
    const dups = [...seen].filter(([, n]) => n > 1).map(([t]) => t);
    assert.deepStrictEqual(dups.slice(0, 10), [], `${dups.length} messages were delivered more than once`);
    const expected = new Set(msgs.map((m) => m.payload.toString()));
    const missing = [...expected].filter((t) => !seen.has(t));
    assert.deepStrictEqual(missing.slice(0, 10), [], `${missing.length} messages never arrived`);
    const extra = [...seen.keys()].filter((t) => !expected.has(t));
    assert.deepStrictEqual(extra, [], 'unexpected payloads');
    assert.strictEqual(got1.length + got2.length, N);
    assert.ok(got1.length > 0, `consumer c1 got nothing (c2 got ${got2.length})`);
    assert.ok(got2.length > 0, `consumer c2 got nothing (c1 got ${got1.length})`);
    assert.deepStrictEqual([...got1.errors, ...got2.errors], []);
    assert.deepStrictEqual(s.problems(), [], 'pulsar-flex logged warnings/errors');
  }));
