'use strict';
// Acceptance 1: produce N / consume N in order on an Exclusive subscription.
const { test } = require('node:test');
const assert = require('node:assert');
const f = require('./lib/flex');

const N = 1000;

test(`Exclusive subscription: ${N} messages arrive once each, in order, payloads and properties intact`,
  { timeout: 120000 },
  () => f.withScope('exclusive-order', async (s) => {
    const topic = f.uniqueTopic('order');
    // pulsar-flex subscribes at Latest: subscribe before producing.
    const consumer = await s.consumer({ topic, subscription: 'order-sub', subType: f.SUB_TYPES.EXCLUSIVE });
    const got = await f.collect(consumer);
    const producer = await s.producer(topic);
    const msgs = f.makeMessages(N, 'order');

    await f.sendAll(producer, msgs, { window: 50 });
    await s.waitFor(() => got.length >= N, 60000, () => `${N} messages (received ${got.length})`);
    await f.flushWithMarker(s, producer, got); // duplicates or extras would be in by then

    f.checkExactSequence(got, msgs, 'Exclusive consumer');
    f.checkIdsIncrease(got, 'Exclusive consumer message ids');
    assert.ok(got.every((r) => r.redeliveryCount === 0), 'no message should be a redelivery');
    assert.deepStrictEqual(got.errors, []);
    assert.deepStrictEqual(s.problems(), [], 'pulsar-flex logged warnings/errors');
  }));
