#!/usr/bin/env node
'use strict';
// delayed-probe.js - delayed delivery as a Pulsar client sees it, for delayed.test.sh.
//
//   node tests/compat/lib/delayed-probe.js --mode produce --url pulsar://H:P --topic T --count N
//        --kinds none,past,neg,delay --delay-ms D [--first 0] [--far] --out FILE
//   node tests/compat/lib/delayed-probe.js --mode consume --url pulsar://H:P --topic T --sub S
//        [--type Shared|Exclusive|Key_Shared] --count N --out FILE [--deadline-s 60]
//
// produce: one raw connection and producer; message i (counter first+i) is sent unbatched,
// as the Java client sends a message with deliverAt, with MessageMetadata.deliver_at_time by
// the i-th kind of --kinds (cycled): none (no field), past (an hour ago), neg (-1), delay
// (now + --delay-ms); --far adds one more message due in a day. The payload is
// "c:<counter>:at:<deliver_at or 0>". --out: { sent, acked, firstError }.
// consume: SUBSCRIBE (existing or new subscription, Earliest is not needed: the test creates
// it first), FLOW, and for every MESSAGE its arrival (epoch ms), acknowledged at once, until
// --count messages came or the deadline. --out: { received, messages: [{ c, at, arrived }] }.
// Exit 0 once it ran, 1 if it could not start, 2 on bad usage.
const fs = require('node:fs');
const { RawConn } = require('./raw');
const { cmd, TYPE, SUB_TYPE, pb } = require('./frames');
const u = require('./verify-util');

const USAGE = 'usage: delayed-probe.js --mode produce|consume --url pulsar://H:P --topic T --out FILE [options]';

async function connect(o) {
  const [host, port] = u.hostPort(o.url).split(':');
  const conn = await RawConn.connect({ host, port: Number(port), timeoutMs: 10000 });
  conn.write(cmd.connect());
  await conn.waitFrame((f) => f.type === TYPE.CONNECTED, 10000, 'CONNECTED');
  return conn;
}

function deliverAt(kind, now, o) {
  switch (kind) {
    case 'none': return undefined;
    case 'past': return now - 3600000;
    case 'neg': return -1;
    case 'delay': return now + o['delay-ms'];
    default: return u.die(`unknown kind ${kind}`);
  }
}

async function produce(o) {
  const conn = await connect(o);
  conn.write(cmd.producer({ topic: o.topic, producerId: 1, requestId: 1, producerName: `delayed-${process.pid}` }));
  const r = await conn.waitFrame((f) => f.type === TYPE.PRODUCER_SUCCESS || f.type === TYPE.ERROR, 30000, 'PRODUCER');
  if (r.type !== TYPE.PRODUCER_SUCCESS) throw new Error(`PRODUCER refused: ${pb.str(r.cmd, 3)}`);
  const kinds = o.kinds.split(',');
  const plan = [];
  for (let i = 0; i < o.count; i++) plan.push(deliverAt(kinds[i % kinds.length], Date.now(), o));
  if (o.far) plan.push(Date.now() + 86400000);
  plan.forEach((at, i) => {
    const c = o.first + i;
    conn.write(cmd.send({ producerId: 1, sequenceId: i, payload: Buffer.from(`c:${c}:at:${at === undefined ? 0 : at}`),
      numMessages: 1, deliverAtTime: at }));
  });
  const st = { sent: plan.length, acked: 0, firstError: null };
  await conn.waitFrame(() => {
    st.acked = conn.frames.filter((f) => f.type === TYPE.SEND_RECEIPT).length;
    const err = conn.frames.find((f) => f.type === TYPE.SEND_ERROR);
    if (err) st.firstError = pb.str(err.cmd, 4);
    return st.acked === plan.length || err;
  }, 30000, 'receipts').catch((e) => { st.firstError = st.firstError || String(e.message || e); });
  conn.destroy();
  return st;
}

// The payload of a MESSAGE frame: after magic (2), checksum (4), metadata size (4), metadata.
function payloadOf(f) {
  const b = f.payloadBytes;
  const mdLen = b.readUInt32BE(6);
  return b.subarray(10 + mdLen).toString('utf8');
}

async function consume(o) {
  const conn = await connect(o);
  const deadline = Date.now() + o['deadline-s'] * 1000;
  conn.write(cmd.subscribe({ topic: o.topic, subscription: o.sub, subType: SUB_TYPE[o.type], consumerId: 1,
    requestId: 1, consumerName: `c-${process.pid}` }));
  const s = await conn.waitFrame((f) => f.type === TYPE.SUCCESS || f.type === TYPE.ERROR, 30000, 'SUBSCRIBE');
  if (s.type !== TYPE.SUCCESS) throw new Error(`SUBSCRIBE refused: ${pb.str(s.cmd, 3)}`);
  conn.write(cmd.flow({ consumerId: 1, permits: 1000 }));
  const st = { received: 0, messages: [] };
  let seen = 0;
  while (st.received < o.count && Date.now() < deadline && !conn.isClosed) {
    await conn.waitFrame(() => conn.frames.length > seen, Math.max(1, deadline - Date.now()), 'frames').catch(() => {});
    for (; seen < conn.frames.length; seen++) {
      const f = conn.frames[seen];
      if (f.type !== TYPE.MESSAGE) continue;
      const arrived = Date.now();
      const [, c, , at] = payloadOf(f).split(':');
      st.messages.push({ c: Number(c), at: Number(at), arrived });
      st.received++;
      const id = pb.msg(f.cmd, 2);
      conn.write(cmd.ack({ consumerId: 1, ledgerId: pb.big(id, 1), entryId: pb.big(id, 2), requestId: 0 }));
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 100)); // let the acks go out
  conn.destroy();
  return st;
}

async function main() {
  const o = u.parseArgs(process.argv.slice(2), { mode: '', url: '', topic: '', sub: '', type: 'Shared', out: '',
    count: 0, kinds: 'none', 'delay-ms': 5000, first: 0, far: false, 'deadline-s': 60 }, USAGE);
  if (!o.topic || !o.out || !(o.count >= 0) || !['produce', 'consume'].includes(o.mode)) u.die(USAGE);
  if (o.mode === 'consume' && (!o.sub || SUB_TYPE[o.type] === undefined)) u.die(USAGE);
  let st;
  try {
    st = o.mode === 'produce' ? await produce(o) : await consume(o);
  } catch (e) {
    fs.writeFileSync(o.out, JSON.stringify({ error: String(e.message || e) }));
    return 1;
  }
  fs.writeFileSync(o.out, JSON.stringify(st));
  return 0;
}

u.runMain(main);
