'use strict';
// Acceptance 3: messages left unacked by a consumer that closes are delivered to the next
//               consumer of the subscription.
// Acceptance 7: a negative ack (REDELIVER_UNACKNOWLEDGED_MESSAGES with one message id, which
//               is what pulsar-flex's ack({type: NEGATIVE}) sends) brings that message back.
const { test } = require('node:test');
const assert = require('node:assert');
const f = require('./lib/flex');

const idOf = (r) => `${r.messageId.ledgerid}:${r.messageId.entryid}`;
const indexOf = (r) => Number(r.properties.i);

for (const [typeName, subType] of [['Exclusive', f.SUB_TYPES.EXCLUSIVE], ['Shared', f.SUB_TYPES.SHARED]]) {
  test(`${typeName}: unacked messages of a closed consumer go to the next consumer; acked ones do not`,
    { timeout: 90000 },
    () => f.withScope(`redeliver-${typeName}`, async (s) => {
      const topic = f.uniqueTopic(`unacked-${typeName.toLowerCase()}`);
      const sub = 'handover';
      const ACKED = 5;
      const msgs = f.makeMessages(30, 'handover');
      const first = msgs.slice(0, 20);

      // Consumer A acks the first 5 messages (waiting for each ACK_RESPONSE) and leaves 15 unacked.
      const a = await s.consumer({ topic, subscription: sub, subType, name: 'A' });
      let acked = 0;
      const gotA = await f.collect(a, {
        autoAck: false,
        onEach: async (rec) => {
          if (indexOf(rec) < ACKED) {
            await rec.ack();
            acked++;
          }
        },
      });
      const producer = await s.producer(topic);
      await f.sendAll(producer, first);
      await s.waitFor(() => gotA.length >= first.length && acked >= ACKED, 30000,
        () => `A to receive 20 and ack 5 (received ${gotA.length}, acked ${acked})`);
      f.checkExactSequence(gotA, first, 'consumer A');
      await s.closeOne(a);

      // Consumer B on the same subscription gets the 15 unacked ones, then new ones.
      const b = await s.consumer({ topic, subscription: sub, subType, name: 'B' });
      const gotB = await f.collect(b);
      await s.waitFor(() => gotB.length >= first.length - ACKED, 30000,
        () => `B to receive the ${first.length - ACKED} unacked messages (got ${gotB.length}: ` +
          `${gotB.map(indexOf).join(',')})`);
      await f.sendAll(producer, msgs.slice(20));
      await s.waitFor(() => gotB.length >= msgs.length - ACKED, 30000,
        () => `B to receive ${msgs.length - ACKED} messages (got ${gotB.length}: ${gotB.map(indexOf).join(',')})`);
      await f.flushWithMarker(s, producer, gotB);

      const indexes = gotB.map(indexOf);
      const ackedSeen = indexes.filter((i) => i < ACKED);
      assert.deepStrictEqual(ackedSeen, [], 'messages acked by A were delivered again to B');
      assert.strictEqual(new Set(indexes).size, indexes.length, `duplicates in B: ${indexes.join(',')}`);
      if (subType === f.SUB_TYPES.EXCLUSIVE) {
        f.checkExactSequence(gotB, msgs.slice(ACKED), 'consumer B');
      } else {
        assert.deepStrictEqual([...indexes].sort((x, y) => x - y),
          msgs.slice(ACKED).map((m) => Number(m.properties.i)), 'consumer B got the wrong set');
        for (const r of gotB) assert.ok(r.payload.equals(msgs[indexOf(r)].payload), `payload of #${indexOf(r)}`);
      }
      // Redelivered copies keep their message ids.
      const idsA = new Map(gotA.map((r) => [indexOf(r), idOf(r)]));
      for (const r of gotB) {
        if (idsA.has(indexOf(r))) assert.strictEqual(idOf(r), idsA.get(indexOf(r)), `id of #${indexOf(r)}`);
      }
      assert.deepStrictEqual([...gotA.errors, ...gotB.errors], []);
      assert.deepStrictEqual(s.problems(), [], 'pulsar-flex logged warnings/errors');
    }));
}

test('Shared: a negative ack redelivers exactly that message (same id, redeliveryCount >= 1); '
  + 'once acked it does not come back', { timeout: 90000 },
  () => f.withScope('nack', async (s) => {
    const topic = f.uniqueTopic('nack');
    const sub = 'nack-sub';
    const NACKED = 3;
    const msgs = f.makeMessages(10, 'nack');
    const c = await s.consumer({ topic, subscription: sub, subType: f.SUB_TYPES.SHARED, name: 'nacker' });
    let nacked = 0;
    let ackedCount = 0;
    const got = await f.collect(c, {
      autoAck: false,
      onEach: async (rec) => {
        if (indexOf(rec) === NACKED && nacked === 0) {
          nacked++;
          await rec.ack({ type: f.ACK_TYPES.NEGATIVE });
        } else {
          await rec.ack();
          ackedCount++;
        }
      },
    });
    const producer = await s.producer(topic);
    await f.sendAll(producer, msgs);
    await s.waitFor(() => ackedCount >= msgs.length, 30000,
      () => `all 10 acked, #${NACKED} after its redelivery (deliveries: ${got.map(indexOf).join(',')})`);
    await f.flushWithMarker(s, producer, got);

    const copies = got.filter((r) => indexOf(r) === NACKED);
    assert.strictEqual(copies.length, 2, `#${NACKED} should be delivered twice, got ${copies.length}`);
    assert.strictEqual(idOf(copies[1]), idOf(copies[0]), 'the redelivered copy has another message id');
    assert.ok(copies[1].payload.equals(msgs[NACKED].payload), 'the redelivered copy has another payload');
    const others = got.filter((r) => indexOf(r) !== NACKED).map(indexOf);
    assert.deepStrictEqual([...others].sort((x, y) => x - y), [0, 1, 2, 4, 5, 6, 7, 8, 9],
      'every other message exactly once');
    assert.ok(copies[1].redeliveryCount >= 1,
      `redeliveryCount of the redelivered copy is ${copies[1].redeliveryCount}, expected >= 1`);

    // Everything is acked now: a fresh consumer on the subscription gets nothing but a new
    // message (the marker), which is dispatched after anything the subscription would
    // redeliver: once the marker is in, any wrong redelivery is too.
    await s.closeOne(c);
    const again = await s.consumer({ topic, subscription: sub, subType: f.SUB_TYPES.SHARED, name: 'after' });
    const gotAgain = await f.collect(again);
    const marker = f.makeMessages(11, 'nack')[10];
    await f.sendAll(producer, [marker]);
    await s.waitFor(() => gotAgain.some((r) => indexOf(r) === 10), 30000,
      () => `the marker message (got ${gotAgain.map(indexOf).join(',')})`);
    assert.deepStrictEqual(gotAgain.map(indexOf), [10], 'acked messages were delivered again');
    assert.deepStrictEqual(got.errors, []);
    assert.deepStrictEqual(s.problems(), [], 'pulsar-flex logged warnings/errors');
  }));
