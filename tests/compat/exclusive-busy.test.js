'use strict';
// Acceptance 6: a second consumer on an Exclusive subscription is refused (ConsumerBusy).
//
// How pulsar-flex reports it: the broker answers SUBSCRIBE with ERROR{request_id,
// error=ConsumerBusy(5), message}; subscribe() rejects with a PulsarFlexSubscribeError whose
// message is the broker's text (the error code itself is dropped by the client, so the
// test also listens to the client's raw 'error' events to check the code).
const { test } = require('node:test');
const assert = require('node:assert');
const f = require('./lib/flex');
const { SERVER_ERROR } = require('./lib/frames');

// Subscribes `c` expecting a refusal; returns { err, codes } (codes = ServerError values seen).
async function expectRefused(c) {
  const codes = [];
  c._client.getResponseEvents().on('error', ({ command }) => codes.push(command.error));
  const err = await f.withTimeout(
    c.subscribe().then(() => null, (e) => e),
    f.OP_TIMEOUT_MS,
    'the refused subscribe() to settle'
  );
  return { err, codes };
}

test('a second consumer on an Exclusive subscription gets ConsumerBusy; the first keeps working; '
  + 'the subscription is free again once the first closes', { timeout: 90000 },
  () => f.withScope('exclusive-busy', async (s) => {
    const topic = f.uniqueTopic('busy');
    const sub = 'busy-sub';
    const c1 = await s.consumer({ topic, subscription: sub, subType: f.SUB_TYPES.EXCLUSIVE, name: 'first' });
    const got1 = await f.collect(c1);

    const c2 = s.newConsumer({ topic, subscription: sub, subType: f.SUB_TYPES.EXCLUSIVE, name: 'second' });
    const { err, codes } = await expectRefused(c2);
    assert.ok(err, 'second Exclusive subscribe() must be refused, it succeeded');
    assert.strictEqual(err.name, 'PulsarFlexSubscribeError', `refusal surfaced as ${err && err.stack}`);
    assert.deepStrictEqual(codes, [SERVER_ERROR.ConsumerBusy], 'broker error code(s) for the refused SUBSCRIBE');
    assert.strictEqual(c2._isSubscribed, false);

    // The first consumer is unaffected.
    const producer = await s.producer(topic);
    const msgs = f.makeMessages(10, 'busy');
    await f.sendAll(producer, msgs.slice(0, 5));
    await s.waitFor(() => got1.length >= 5, 20000, () => `5 messages on the first consumer (got ${got1.length})`);

    // Once the first consumer closes, a new Exclusive consumer may attach and gets the rest.
    await s.closeOne(c1);
    const c3 = await s.consumer({ topic, subscription: sub, subType: f.SUB_TYPES.EXCLUSIVE, name: 'third' });
    const got3 = await f.collect(c3);
    await f.sendAll(producer, msgs.slice(5));
    await s.waitFor(() => got3.length >= 5, 20000, () => `5 messages on the third consumer (got ${got3.length})`);
    await f.flushWithMarker(s, producer, got3);
    f.checkExactSequence(got1, msgs.slice(0, 5), 'first consumer');
    f.checkExactSequence(got3, msgs.slice(5), 'third consumer');
  }));

test('a Shared consumer cannot join a subscription held by an Exclusive consumer (ConsumerBusy)',
  { timeout: 60000 },
  () => f.withScope('type-mismatch', async (s) => {
    const topic = f.uniqueTopic('busy-type');
    const sub = 'busy-type-sub';
    await s.consumer({ topic, subscription: sub, subType: f.SUB_TYPES.EXCLUSIVE, name: 'excl' });
    const c2 = s.newConsumer({ topic, subscription: sub, subType: f.SUB_TYPES.SHARED, name: 'shared' });
    const { err, codes } = await expectRefused(c2);
    assert.ok(err, 'a Shared subscribe() on an Exclusive-held subscription must be refused, it succeeded');
    assert.strictEqual(err.name, 'PulsarFlexSubscribeError');
    assert.deepStrictEqual(codes, [SERVER_ERROR.ConsumerBusy]);
  }));
