#!/usr/bin/env node
'use strict';
// chunk-probe.js - chunked messages through the broker, for chunking.test.sh.
//
//   node tests/compat/lib/chunk-probe.js --url pulsar://127.0.0.1:PORT --topic T --sub S
//        --mode exclusive|shared --size BYTES --messages M --out FILE
//        [--permits P] [--bad] [--close-first N | --redeliver-first N] [--linger-s S]
//        [--deadline-s 120]
//
// Consumers first (one on Exclusive, two on Shared, each on its own connection, each keeping
// at most P permits out, topped up one per MESSAGE as a client's receiver queue does), then
// two producers on one connection send M messages each of BYTES random bytes, split as a
// Pulsar client splits a message larger than CONNECTED.max_message_size: chunks of at most
// max_message_size - 1024 bytes sharing a uuid (producerName-sequenceId) and one sequence
// id, the two producers' chunks interleaved. With --bad a third producer adds a run with a
// missing chunk (chunk ids 0, 1, 3 of 4) and a lone chunk of a foreign uuid (id 1 of 3).
// Each consumer acknowledges what it gets and reassembles each uuid from its chunks as
// the clients do (chunk ids 0..n-1 in order at one consumer). With --close-first N (Shared)
// the first consumer acknowledges nothing and closes its connection once it has N chunks:
// the broker gives them back, and what the second one gets is judged (perConsumer still
// counts both). With --redeliver-first N (Shared) the first consumer, once it has N chunks
// (neither acknowledged nor topped up), asks for all its unacked messages again
// (REDELIVER_UNACKNOWLEDGED_MESSAGES), forgets the chunks it had (as a client drops its
// incomplete chunked messages then) and goes on as the other. --linger-s S: after writing FILE, keep the producers and consumers
// connected (their stats stay visible) until FILE.done exists or S seconds passed.
// --out FILE gets { maxMessageSize, chunkSize, sent: [{uuid, chunks, sha256}], receipts,
// perConsumer: [count], messages: [{uuid, consumers, inOrder, complete, sha256ok}],
// bad: [{uuid, chunkId, numChunks, deliveries}], error }. Exit 0 once it ran (the JSON says
// what happened), 1 if it could not connect, 2 on bad usage.
const crypto = require('node:crypto');
const fs = require('node:fs');
const { RawConn } = require('./raw');
const { cmd, TYPE, SUB_TYPE, pb, messagePayload } = require('./frames');
const u = require('./verify-util');

const USAGE = 'usage: chunk-probe.js --url pulsar://H:P --topic T --sub S --mode exclusive|shared ' +
  '--size BYTES --messages M --out FILE [--permits P] [--bad] [--close-first N | --redeliver-first N] [--linger-s S] [--deadline-s S]';

const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

async function connected(host, port) {
  const conn = await RawConn.connect({ host, port: Number(port), timeoutMs: 10000 });
  conn.write(cmd.connect());
  const f = await conn.waitFrame((x) => x.type === TYPE.CONNECTED || x.type === TYPE.ERROR, 10000, 'CONNECTED');
  if (f.type !== TYPE.CONNECTED) throw new Error(`CONNECT refused: ${pb.str(f.cmd, 3)}`);
  return { conn, maxMessageSize: pb.num(f.cmd, 3, 5 * 1024 * 1024) };
}

async function answered(conn, requestId, okType, what) {
  const f = await conn.waitFrame((x) => (x.type === okType || x.type === TYPE.ERROR) &&
    pb.num(x.cmd, 1) === requestId, 30000, what);
  if (f.type === TYPE.ERROR) throw new Error(`${what} refused: ${pb.str(f.cmd, 3)}`);
  return f;
}

// The chunks of one message: [{uuid, chunkId, numChunks, totalSize, payload}].
function split(producerName, sequenceId, body, chunkSize) {
  const n = Math.max(1, Math.ceil(body.length / chunkSize));
  const uuid = `${producerName}-${sequenceId}`;
  return Array.from({ length: n }, (_, i) => ({ uuid, chunkId: i, numChunks: n, totalSize: body.length,
    payload: body.subarray(i * chunkSize, Math.min(body.length, (i + 1) * chunkSize)) }));
}

async function main() {
  const o = u.parseArgs(process.argv.slice(2), { url: '', topic: '', sub: '', mode: 'exclusive', out: '',
    size: 20 * 1024 * 1024, messages: 2, permits: 2, bad: false, 'close-first': 0, 'redeliver-first': 0, 'linger-s': 0,
    'deadline-s': 120 }, USAGE);
  const closeFirst = o.mode === 'shared' ? o['close-first'] : 0;
  let redeliverFirst = o.mode === 'shared' ? o['redeliver-first'] : 0;
  if (!o.topic || !o.sub || !o.out || !['exclusive', 'shared'].includes(o.mode) || !(o.size > 0) ||
      !(o.messages > 0) || !(o.permits > 0)) u.die(USAGE);
  const [host, port] = u.hostPort(o.url).split(':');
  const deadline = Date.now() + o['deadline-s'] * 1000;
  const st = { maxMessageSize: null, chunkSize: null, sent: [], receipts: 0, perConsumer: [], messages: [],
    bad: [], error: null };
  const conns = [];
  try {
    // ---- consumers
    const nCons = o.mode === 'shared' ? 2 : 1;
    const got = []; // per consumer: [{uuid, chunkId, numChunks, payload}]
    for (let i = 0; i < nCons; i++) {
      const { conn } = await connected(host, port);
      conns.push(conn);
      conn.write(cmd.subscribe({ topic: o.topic, subscription: o.sub, consumerId: 1, requestId: 1,
        subType: o.mode === 'shared' ? SUB_TYPE.Shared : SUB_TYPE.Exclusive, consumerName: `c${i}` }));
      await answered(conn, 1, TYPE.SUCCESS, 'SUBSCRIBE');
      conn.write(cmd.flow({ consumerId: 1, permits: o.permits }));
      const mine = [];
      got.push(mine);
      conn.onFrame = (f) => {
        if (f.type !== TYPE.MESSAGE) return conn.frames.push(f);
        const { metadata, payload } = messagePayload(f.payloadBytes);
        mine.push({ uuid: pb.str(metadata, 26), chunkId: pb.num(metadata, 29), numChunks: pb.num(metadata, 27),
          payload: Buffer.from(payload) });
        if (i === 0 && closeFirst > 0) {
          if (mine.length >= closeFirst) conn.destroy();
          return undefined;
        }
        if (i === 0 && redeliverFirst > 0) {
          if (mine.length >= redeliverFirst) {
            redeliverFirst = 0;
            mine.length = 0;
            conn.write(cmd.redeliverAll({ consumerId: 1 }));
            conn.write(cmd.flow({ consumerId: 1, permits: o.permits }));
          }
          return undefined;
        }
        const id = pb.msg(f.cmd, 2);
        conn.write(cmd.ack({ consumerId: 1, ledgerId: pb.big(id, 1), entryId: pb.big(id, 2), requestId: 0 }));
        conn.write(cmd.flow({ consumerId: 1, permits: 1 }));
        return undefined;
      };
    }
    // ---- producers
    const { conn: pc, maxMessageSize } = await connected(host, port);
    conns.push(pc);
    st.maxMessageSize = maxMessageSize;
    st.chunkSize = maxMessageSize - 1024;
    const names = ['chunk-a', 'chunk-b', 'chunk-bad'];
    for (let p = 0; p < (o.bad ? 3 : 2); p++) {
      pc.write(cmd.producer({ topic: o.topic, producerId: p, requestId: 10 + p, producerName: names[p] }));
      await answered(pc, 10 + p, TYPE.PRODUCER_SUCCESS, 'PRODUCER');
    }
    const runs = [[], []]; // per producer: chunk lists, in send order
    const bodies = new Map();
    for (let m = 0; m < o.messages; m++) {
      for (let p = 0; p < 2; p++) {
        const body = crypto.randomBytes(o.size);
        const chunks = split(names[p], m, body, st.chunkSize);
        bodies.set(chunks[0].uuid, body);
        st.sent.push({ uuid: chunks[0].uuid, chunks: chunks.length, sha256: sha256(body) });
        runs[p].push(...chunks.map((c) => ({ ...c, producerId: p, sequenceId: m })));
      }
    }
    // the two producers' chunks interleaved, each producer's in order
    const order = [];
    for (let i = 0; i < Math.max(runs[0].length, runs[1].length); i++)
      for (const r of runs) if (i < r.length) order.push(r[i]);
    if (o.bad) {
      const partial = split('chunk-bad', 0, crypto.randomBytes(4 * 1024), 1024).filter((c) => c.chunkId !== 2);
      const foreign = { uuid: 'somebody-else-7', chunkId: 1, numChunks: 3, totalSize: 3000,
        payload: crypto.randomBytes(1000) };
      for (const [i, c] of [...partial, foreign].entries()) {
        order.push({ ...c, producerId: 2, sequenceId: i });
        st.bad.push({ uuid: c.uuid, chunkId: c.chunkId, numChunks: c.numChunks, deliveries: 0 });
      }
    }
    for (const c of order) {
      pc.write(cmd.send({ producerId: c.producerId, sequenceId: c.sequenceId, producerName: names[c.producerId],
        payload: c.payload, chunk: c }));
    }
    const total = order.length;
    for (;;) {
      st.receipts = pc.frames.filter((f) => f.type === TYPE.SEND_RECEIPT).length;
      const errors = pc.frames.filter((f) => f.type === TYPE.SEND_ERROR);
      if (errors.length) throw new Error(`SEND_ERROR: ${pb.str(errors[0].cmd, 4)}`);
      const delivered = got.slice(closeFirst > 0 ? 1 : 0).reduce((a, g) => a + g.length, 0);
      if ((st.receipts >= total && delivered >= total) || Date.now() > deadline || pc.isClosed) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    // ---- reassemble per consumer, as a client does
    st.perConsumer = got.map((g) => g.length);
    const judged = closeFirst > 0 ? [[], ...got.slice(1)] : got;
    for (const s of st.sent) {
      const at = judged.map((g) => g.filter((c) => c.uuid === s.uuid));
      const consumers = at.map((g, i) => (g.length ? i : -1)).filter((i) => i >= 0);
      const chunks = consumers.length === 1 ? at[consumers[0]] : [];
      const inOrder = chunks.every((c, i) => c.chunkId === i);
      const complete = chunks.length === s.chunks;
      const body = complete && inOrder ? Buffer.concat(chunks.map((c) => c.payload)) : null;
      st.messages.push({ uuid: s.uuid, consumers, inOrder, complete,
        sha256ok: !!body && sha256(body) === s.sha256 && body.length === bodies.get(s.uuid).length });
    }
    for (const b of st.bad)
      b.deliveries = judged.flat().filter((c) => c.uuid === b.uuid && c.chunkId === b.chunkId &&
        c.numChunks === b.numChunks).length;
  } catch (e) {
    st.error = String(e.message || e);
  }
  u.writeAtomic(o.out, JSON.stringify(st));
  for (const until = Date.now() + o['linger-s'] * 1000; Date.now() < until && !fs.existsSync(`${o.out}.done`);)
    await new Promise((r) => setTimeout(r, 100));
  for (const c of conns) c.destroy();
  return 0;
}

u.runMain(main);
