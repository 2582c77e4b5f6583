'use strict';
// Acceptance 9: malformed input on raw TCP connections is dropped by the broker (it closes
// those connections) while a pulsar-flex producer/consumer pair keeps working: every
// message arrives, in order, with no error, no reconnect; the broker stays healthy.
//
// The harness starts the broker with keepAliveIntervalSeconds=2 (override with
// MAGNETAR_KEEPALIVE_SECONDS): a connection that never completes the handshake is closed
// after one keepalive tick, so every raw connection below must be closed within a few ticks.
const { test } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const f = require('./lib/flex');
const { cmd, TYPE, pb, simpleFrame, PbWriter } = require('./lib/frames');

const N = 2000;
const FIN_WAIT_MS = 5000;
const CLOSE_DEADLINE_MS = Math.max(10000, 3 * f.KEEPALIVE_S * 1000 + 5000);

function u32(...values) {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, 4 * i));
  return b;
}

// Each attack: open a raw connection, misbehave, and report whether the broker closed it.
// `check(r)` may add assertions on what the broker sent before closing.
const ATTACKS = [
  {
    name: 'random garbage (64 KiB)',
    async run(r) {
      r.write(crypto.randomBytes(64 * 1024));
    },
  },
  {
    name: 'valid-looking frame header, truncated body, then FIN',
    async run(r) {
      const connect = cmd.connect();
      r.write(Buffer.concat([u32(200, 196), connect.subarray(8, 30)]));
      await f.sleep(100);
      r.end();
    },
  },
  {
    name: 'valid-looking frame header, truncated body, then idle (keepalive must close it)',
    async run(r) {
      const connect = cmd.connect();
      r.write(Buffer.concat([u32(200, 196), connect.subarray(8, 30)]));
    },
  },
  {
    name: 'declared frame size 0x7fffffff',
    async run(r) {
      r.write(Buffer.concat([u32(0x7fffffff, 0x10), crypto.randomBytes(64)]));
    },
  },
  {
    name: 'declared frame size 0xffffffff',
    async run(r) {
      r.write(Buffer.concat([u32(0xffffffff, 0xfffffff0), crypto.randomBytes(64)]));
    },
  },
  {
    name: 'cmdSize larger than totalSize',
    async run(r) {
      r.write(Buffer.concat([u32(12, 1000), Buffer.alloc(8, 0x08)]));
    },
  },
  {
    name: 'zero-length frame',
    async run(r) {
      r.write(u32(0, 0));
    },
  },
  {
    name: 'first command LOOKUP instead of CONNECT',
    async run(r) {
      r.write(cmd.lookup({ topic: f.uniqueTopic('robust-lookup'), requestId: 1 }));
    },
    check(r) {
      assert.ok(!r.frames.some((fr) => fr.type === TYPE.LOOKUP_RESPONSE && pb.num(fr.cmd, 3) !== 2),
        `LOOKUP before CONNECT was answered: [${r.frameNames()}]`);
    },
  },
  {
    name: 'first command SEND (with payload) instead of CONNECT',
    async run(r) {
      r.write(cmd.send({ producerId: 0, sequenceId: 0, payload: 'pre-handshake' }));
    },
    check(r) {
      assert.ok(!r.frames.some((fr) => fr.type === TYPE.SEND_RECEIPT), 'SEND before CONNECT got a receipt');
    },
  },
  {
    name: 'CONNECT, then SEND for an unknown producer',
    async run(r) {
      r.write(cmd.connect());
      await r.waitFrame((fr) => fr.type === TYPE.CONNECTED, 10000, 'CONNECTED');
      r.write(cmd.send({ producerId: 4242, sequenceId: 0, payload: 'nobody' }));
    },
    check(r) {
      assert.strictEqual(r.frames[0] && r.frames[0].typeName, 'CONNECTED', 'first frame from the broker');
      assert.ok(!r.frames.some((fr) => fr.type === TYPE.SEND_RECEIPT), 'SEND for an unknown producer got a receipt');
    },
  },
  {
    name: 'CONNECT, then a frame whose BaseCommand is not protobuf',
    async run(r) {
      r.write(cmd.connect());
      await r.waitFrame((fr) => fr.type === TYPE.CONNECTED, 10000, 'CONNECTED');
      r.write(Buffer.concat([u32(24, 20), Buffer.alloc(20, 0xff)]));
    },
  },
  {
    name: 'CONNECT, then a BaseCommand of unknown type 999',
    async run(r) {
      r.write(cmd.connect());
      await r.waitFrame((fr) => fr.type === TYPE.CONNECTED, 10000, 'CONNECTED');
      r.write(simpleFrame(999, new PbWriter().varint(1, 1)));
      await f.sleep(200);
      r.end(); // an unknown command may be ignored or refused; either way FIN must close it
    },
  },
];

test(`raw-socket garbage and malformed frames are closed by the broker while a pulsar-flex pair moves ${N} messages`,
  { timeout: 180000 },
  (t) => f.withScope('robustness', async (s) => {
    const topic = f.uniqueTopic('robust');
    const rssBefore = f.brokerRssKb();
    const consumer = await s.consumer({ topic, subscription: 'robust-sub' });
    const got = await f.collect(consumer);
    const producer = await s.producer(topic);
    const statesBefore = [...consumer.states];
    const since = Date.now();
    const msgs = f.makeMessages(N, 'robust');

    // Produce 2000 messages over a few seconds: 40 bursts of 50, 100 ms apart.
    const produce = (async () => {
      for (let k = 0; k < N / 50; k++) {
        await f.sendAll(producer, msgs.slice(k * 50, (k + 1) * 50), { window: 50, what: `burst ${k}` });
        await f.sleep(100);
      }
    })();

    // Meanwhile, the attacks, staggered.
    const results = await Promise.all(ATTACKS.map(async (attack, i) => {
      await f.sleep(150 * i);
      const r = await s.raw();
      try {
        await attack.run(r);
      } catch (e) {
        return { attack, r, error: e };
      }
      const closed = await r.waitClosed(CLOSE_DEADLINE_MS);
      return { attack, r, closed, ms: r.closedAt ? r.closedAt - r.openedAt : null };
    }));

    // And a churn of connections that open and close at once.
    const churn = await Promise.all(Array.from({ length: 100 }, async () => {
      const r = await s.raw();
      r.end();
      return r.waitClosed(FIN_WAIT_MS);
    }));

    await produce;
    await s.waitFor(() => got.length >= N, 60000, () => `${N} messages (received ${got.length})`);
    await f.flushWithMarker(s, producer, got);

    for (const { attack, r, closed, ms, error } of results) {
      t.diagnostic(`${attack.name}: ${error ? `failed: ${error.message}` : closed ? `closed after ${ms} ms` : 'NOT closed'}`
        + ` (received [${r.frameNames()}])`);
    }
    const notClosed = results.filter((x) => !x.error && !x.closed).map((x) => x.attack.name);
    const failed = results.filter((x) => x.error).map((x) => `${x.attack.name}: ${x.error.message}`);
    assert.deepStrictEqual(failed, [], 'attacks that could not be carried out');
    assert.deepStrictEqual(notClosed, [], `connections the broker left open for ${CLOSE_DEADLINE_MS} ms`);
    for (const { attack, r } of results) if (attack.check) attack.check(r);
    assert.strictEqual(churn.filter((c) => !c).length, 0, 'churn connections the broker did not close after FIN');

    // The pulsar-flex pair saw nothing of it.
    f.checkExactSequence(got, msgs, 'flex consumer');
    f.checkIdsIncrease(got);
    assert.deepStrictEqual(got.errors, []);
    assert.deepStrictEqual(s.problems(since), [], 'pulsar-flex logged warnings/errors during the attacks');
    assert.deepStrictEqual(consumer.states, statesBefore, 'the consumer changed state (reconnected?)');
    assert.strictEqual(producer._connected, true, 'the producer lost its connection');

    // The broker is alive, healthy, accepts new connections and did not balloon.
    assert.ok(f.brokerAlive(), 'broker process is gone');
    await f.checkHealth();
    const fresh = await s.raw();
    fresh.write(cmd.connect());
    await fresh.waitFrame((fr) => fr.type === TYPE.CONNECTED, 10000, 'CONNECTED on a fresh connection');
    const rssAfter = f.brokerRssKb();
    if (f.brokerPid() === null) {
      t.diagnostic('broker RSS NOT checked: MAGNETAR_PID is not set (scripts/test.sh sets it)');
    } else {
      assert.ok(rssBefore !== null && rssAfter !== null, `cannot read the RSS of broker pid ${f.brokerPid()}`);
      t.diagnostic(`broker VmRSS ${rssBefore} kB -> ${rssAfter} kB`);
      assert.ok(rssAfter - rssBefore < 256 * 1024,
        `broker RSS grew by ${rssAfter - rssBefore} kB during the attacks`);
    }
  }));

