'use strict';
// Acceptance 8: a message bigger than the broker's max message size (5 MiB by default, the
// value CONNECTED.max_message_size advertises) is refused without harming other clients.
//
// Why a raw socket and not pulsar-flex: pulsar-flex ignores max_message_size and sends the
// frame anyway. If the broker answers SEND_ERROR it rejects with PulsarFlexProducerSendError,
// but if the broker closes the connection (what Pulsar does for a frame above
// maxMessageSize + 10 KiB) the send times out after 10 s, is parked in the client's pending
// queue, and is resent after every reconnect, forever (and the resend's rejection is
// unhandled, which kills the process). So the oversized SEND is made on a raw connection,
// and either refusal is accepted: SEND_ERROR for that sequence id, or the connection closed.
// What is never accepted: a SEND_RECEIPT for it, or the message reaching a consumer.
const { test } = require('node:test');
const assert = require('node:assert');
const f = require('./lib/flex');
const { cmd, TYPE, pb } = require('./lib/frames');

const DEFAULT_MAX = 5 * 1024 * 1024;

const isType = (type, pred = () => true) => (fr) => fr.type === type && pred(fr);
const seqIs = (n) => (fr) => pb.num(fr.cmd, 2) === n;

test('a message over the max message size is refused (SEND_ERROR or close), never stored or '
  + 'delivered, and other clients carry on', { timeout: 120000 },
  (t) => f.withScope('max-size', async (s) => {
    const topic = f.uniqueTopic('big');
    const other = f.uniqueTopic('big-other');

    // Watchers: a consumer on the topic the oversized message goes to, and an unrelated pair.
    const cBig = await s.consumer({ topic, subscription: 'big-sub' });
    const gotBig = await f.collect(cBig);
    const cOther = await s.consumer({ topic: other, subscription: 'other-sub' });
    const gotOther = await f.collect(cOther);
    const pOther = await s.producer(other);
    const otherMsgs = f.makeMessages(100, 'other');
    await f.sendAll(pOther, otherMsgs.slice(0, 50));

    // Raw producer.
    const r = await s.raw();
    r.write(cmd.connect());
    const connected = await r.waitFrame(isType(TYPE.CONNECTED), 10000, 'CONNECTED');
    const advertised = pb.num(connected.cmd, 3);
    const max = advertised || DEFAULT_MAX;
    t.diagnostic(`CONNECTED.max_message_size = ${advertised === undefined ? '(absent)' : advertised}`);
    if (advertised !== undefined) assert.strictEqual(advertised, DEFAULT_MAX, 'advertised max_message_size');

    r.write(cmd.producer({ topic, producerId: 1, requestId: 1 }));
    const ps = await r.waitFrame((fr) => (fr.type === TYPE.PRODUCER_SUCCESS || fr.type === TYPE.ERROR)
      && pb.num(fr.cmd, 1) === 1, 10000, 'PRODUCER_SUCCESS');
    assert.strictEqual(ps.typeName, 'PRODUCER_SUCCESS', `PRODUCER answered ${ps.typeName} ${pb.str(ps.cmd, 3)}`);
    const producerName = pb.str(ps.cmd, 2);
    assert.ok(producerName, 'PRODUCER_SUCCESS carries a producer_name');

    r.write(cmd.send({ producerId: 1, sequenceId: 0, producerName, payload: 'small-before' }));
    await r.waitFrame(isType(TYPE.SEND_RECEIPT, seqIs(0)), 10000, 'SEND_RECEIPT for the small message');

    const big = Buffer.alloc(max + 1024 * 1024, 0x61); // 6 MiB with the default limit
    r.write(cmd.send({ producerId: 1, sequenceId: 1, producerName, payload: big }));
    await s.waitFor(() => r.isClosed || r.frames.some((fr) => (fr.type === TYPE.SEND_ERROR || fr.type === TYPE.SEND_RECEIPT)
      && seqIs(1)(fr)), 20000, () => `SEND_ERROR or a close after the ${big.length}-byte SEND; got [${r.frameNames()}]`);

    const receipt = r.frames.find(isType(TYPE.SEND_RECEIPT, seqIs(1)));
    assert.ok(!receipt, `the broker accepted a ${big.length}-byte message (SEND_RECEIPT)`);
    const sendError = r.frames.find(isType(TYPE.SEND_ERROR, seqIs(1)));
    if (sendError) {
      t.diagnostic(`refused with SEND_ERROR error=${pb.num(sendError.cmd, 3)} "${pb.str(sendError.cmd, 4)}"`);
      // The connection survived: the producer must still work.
      r.write(cmd.send({ producerId: 1, sequenceId: 2, producerName, payload: 'small-after-raw' }));
      await r.waitFrame(isType(TYPE.SEND_RECEIPT, seqIs(2)), 10000, 'SEND_RECEIPT after the SEND_ERROR');
    } else {
      t.diagnostic(`refused by closing the connection (socket errors: ${r.errors.map((e) => e.code).join(',') || 'none'})`);
    }

    // Other clients are unaffected, and the topic still takes messages.
    const pBig = await s.producer(topic);
    await f.sendAll(pBig, [{ payload: Buffer.from('small-after'), properties: {} }]);
    await f.sendAll(pOther, otherMsgs.slice(50));
    const expectBig = sendError ? ['small-before', 'small-after-raw', 'small-after'] : ['small-before', 'small-after'];
    await s.waitFor(() => gotBig.length >= expectBig.length && gotOther.length >= 100, 30000,
      () => `watchers (big topic ${gotBig.length}/${expectBig.length}, other ${gotOther.length}/100)`);
    await f.flushWithMarker(s, pBig, gotBig); // the oversized message, if stored, would be in by then
    await f.flushWithMarker(s, pOther, gotOther);
    assert.deepStrictEqual(gotBig.map((m) => (m.payload.length > 64 ? `<${m.payload.length} bytes>` : m.text)),
      expectBig, 'what the consumer of the oversized message\'s topic received');
    f.checkExactSequence(gotOther, otherMsgs, 'unrelated topic');
    assert.deepStrictEqual(s.problems(), [], 'pulsar-flex logged warnings/errors');
    await f.checkHealth();
  }));
