'use strict';
// Acceptance 5: 1 KB, 100 KB and 4.5 MB messages round-trip byte-identical.
const { test } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const f = require('./lib/flex');

const SIZES = [1024, 100 * 1024, Math.round(4.5 * 1024 * 1024)];
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex').slice(0, 16);

test('message sizes 1 KB, 100 KB and 4.5 MB round-trip byte-identical', { timeout: 120000 },
  () => f.withScope('sizes', async (s) => {
    const topic = f.uniqueTopic('sizes');
    const consumer = await s.consumer({ topic, subscription: 'sizes-sub' });
    const got = await f.collect(consumer);
    const producer = await s.producer(topic);
    const payloads = SIZES.map((n) => crypto.randomBytes(n));

    for (const [i, payload] of payloads.entries()) {
      await f.withTimeout(producer.sendMessage({ payload, properties: { size: String(payload.length) } }),
        30000, `send of the ${payload.length}-byte message`);
      await s.waitFor(() => got.length > i, 30000,
        () => `the ${payload.length}-byte message (received ${got.length} of ${i + 1})`);
    }
    await f.flushWithMarker(s, producer, got);

    assert.strictEqual(got.length, payloads.length, 'exactly one delivery per message');
    for (const [i, payload] of payloads.entries()) {
      const r = got[i];
      assert.strictEqual(r.payload.length, payload.length, `length of message ${i}`);
      assert.ok(r.payload.equals(payload),
        `message ${i} (${payload.length} B) differs: sha256 ${sha(r.payload)} != ${sha(payload)}`);
      assert.strictEqual(r.properties.size, String(payload.length));
    }
    assert.deepStrictEqual(s.problems(), [], 'pulsar-flex logged warnings/errors');
  }));
