#!/usr/bin/env node
'use strict';
// dedup-produce.js - a raw producer that chooses its sequence ids, for the deduplication test.
//
//   node tests/compat/lib/dedup-produce.js --url pulsar://127.0.0.1:PORT --topic T --name P
//        --count N --out FILE [--start 0] [--window 100] [--rate 0] [--size 64] [--tag m]
//        [--progress FILE] [--deadline-s 120]
//
// One connection, CONNECT, PRODUCER named --name, then counters start .. start+count-1, each
// sent with sequence_id = counter, payload "<tag>:<counter>:xxx..." (--size bytes) and
// property c=<counter> (what verify-consume.js reads back), at most --window unanswered and
// (--rate > 0) at most --rate new counters per second.
// A SEND_RECEIPT with message id (-1, -1) is the broker's answer for a duplicate (not stored
// again); another id: stored. A SEND_ERROR for a counter (the broker cannot tell yet whether
// it is a duplicate: its original is being written) sends it again after 100 ms, as a
// Pulsar client does after reconnecting. The run ends when every counter is answered, the
// connection closes (the broker was killed) or the deadline passes.
//
// --out FILE gets one JSON object: { topic, name, start, count, lastSequenceId (from
// PRODUCER_SUCCESS), sent, ackedCount, acked: [counters answered by a receipt], failed:
// [counters sent without one], stored: [counters], dups: [counters], errors: {reason: n},
// firstError, closed }. --progress FILE is rewritten every 100 ms: "ready=0|1 sent=S
// acked=A stored=X dups=D failed=F". Exit 0 once it ran, 1 if it could not start, 2 on bad
// usage.
const fs = require('node:fs');
const { RawConn } = require('./raw');
const { cmd, TYPE, pb } = require('./frames');
const u = require('./verify-util');

const USAGE = 'usage: dedup-produce.js --url pulsar://H:P --topic T --name P --count N --out FILE [options]';

function parse() {
  const o = u.parseArgs(process.argv.slice(2), { url: '', topic: '', name: '', out: '', progress: '', start: 0,
    count: 0, window: 100, rate: 0, size: 64, tag: 'm', 'deadline-s': 120 }, USAGE);
  if (!o.topic || !o.name || !o.out || !(o.count > 0) || !(o.window > 0)) u.die(USAGE);
  const [host, port] = u.hostPort(o.url).split(':');
  return { ...o, host, port: Number(port) };
}

const signed = (v) => (v === undefined ? undefined : Number(BigInt.asIntN(64, BigInt(v))));

async function main() {
  const o = parse();
  const deadline = Date.now() + o['deadline-s'] * 1000;
  const st = { ready: 0, sent: 0, errors: {}, firstError: null, lastSequenceId: null, closed: false };
  const outstanding = new Set(); // counters sent and not answered
  const stored = new Set();
  const dups = new Set();
  const retry = []; // counters to send again
  let next = o.start;
  const end = o.start + o.count;
  const progress = () => {
    if (!o.progress) return;
    fs.writeFileSync(`${o.progress}.tmp`, `ready=${st.ready} sent=${st.sent} acked=${stored.size + dups.size} ` +
      `stored=${stored.size} dups=${dups.size} failed=${outstanding.size}\n`);
    fs.renameSync(`${o.progress}.tmp`, o.progress);
  };
  const timer = setInterval(progress, 100);
  const error = (why) => {
    st.errors[why] = (st.errors[why] || 0) + 1;
    if (!st.firstError) st.firstError = why;
  };
  let wake = () => {};
  const onFrame = (f) => {
    if (f.type === TYPE.SEND_RECEIPT) {
      const c = pb.num(f.cmd, 2);
      const id = pb.msg(f.cmd, 3);
      if (!outstanding.delete(c)) return;
      if (signed(pb.big(id, 1)) === -1 && signed(pb.big(id, 2)) === -1) dups.add(c);
      else stored.add(c);
    } else if (f.type === TYPE.SEND_ERROR) {
      const c = pb.num(f.cmd, 2);
      if (!outstanding.delete(c)) return;
      error(`SEND_ERROR ${pb.num(f.cmd, 3)}: ${pb.str(f.cmd, 4)}`);
      setTimeout(() => { retry.push(c); wake(); }, 100);
    } else {
      conn.frames.push(f);
    }
    wake();
  };
  let conn;
  try {
    conn = await RawConn.connect({ host: o.host, port: o.port, timeoutMs: 10000, onFrame });
    conn.write(cmd.connect());
    await conn.waitFrame((f) => f.type === TYPE.CONNECTED, 10000, 'CONNECTED');
    conn.write(cmd.producer({ topic: o.topic, producerId: 1, requestId: 1, producerName: o.name }));
    const r = await conn.waitFrame((f) => f.type === TYPE.PRODUCER_SUCCESS || f.type === TYPE.ERROR, 30000,
      'PRODUCER_SUCCESS');
    if (r.type !== TYPE.PRODUCER_SUCCESS) throw new Error(`PRODUCER refused: ${pb.str(r.cmd, 3)}`);
    st.lastSequenceId = signed(pb.big(r.cmd, 3, -1n));
  } catch (e) {
    clearInterval(timer);
    fs.writeFileSync(o.out, JSON.stringify({ ...st, startError: String(e.message || e) }));
    if (conn) conn.destroy();
    process.exit(1);
  }
  st.ready = 1;
  progress();
  conn.closed.then(() => wake());
  const payloadOf = (c) => u.payloadFor(o.tag, c, o.size);
  const send = (c) => {
    outstanding.add(c);
    st.sent++;
    conn.write(cmd.send({ producerId: 1, sequenceId: c, producerName: o.name, payload: payloadOf(c),
      properties: { c }, numMessages: 1 }));
  };
  const t0 = Date.now();
  const due = (c) => o.rate <= 0 || Date.now() >= t0 + ((c - o.start) * 1000) / o.rate;
  while (Date.now() < deadline && !conn.isClosed) {
    while (outstanding.size < o.window && (retry.length || (next < end && due(next)))) {
      send(retry.length ? retry.shift() : next++);
    }
    if (next >= end && outstanding.size === 0 && retry.length === 0) break;
    await new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, o.rate > 0 ? 5 : 200);
    });
  }
  st.closed = conn.isClosed;
  if (conn.isClosed) error('connection closed');
  else if (outstanding.size || retry.length || next < end) error('deadline');
  clearInterval(timer);
  progress();
  const sorted = (s) => [...s].sort((a, b) => a - b);
  const acked = sorted(new Set([...stored, ...dups]));
  fs.writeFileSync(o.out, JSON.stringify({
    topic: o.topic, name: o.name, start: o.start, count: o.count, lastSequenceId: st.lastSequenceId,
    sent: st.sent, ackedCount: acked.length, acked, failed: sorted(new Set([...outstanding, ...retry])),
    notSent: Math.max(0, end - next), stored: sorted(stored), dups: sorted(dups), errors: st.errors,
    firstError: st.firstError, closed: st.closed,
  }));
  conn.destroy();
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
