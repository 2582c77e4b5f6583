#!/usr/bin/env node
'use strict';
// probe-produce.js - a raw producer that measures publish latency, for integration tests.
//
//   node tests/compat/lib/probe-produce.js --url pulsar://127.0.0.1:PORT --topic T
//        --out FILE [--stop-file F] [--deadline-s 120] [--send-timeout-ms 10000] [--size 64]
//        [--interval-ms 0] [--start-file F]
//
// One connection, CONNECT, PRODUCER, then one SEND at a time: each waits for its
// SEND_RECEIPT (or SEND_ERROR, or --send-timeout-ms) before the next goes out, so the
// latency of every send is the broker's answer time; --interval-ms waits that long between
// a receipt and the next send (a steady trickle instead of a load); --start-file holds the
// first send back (after PRODUCER_SUCCESS, "ready=1") until that file exists. Until --stop-file exists or the
// deadline passes. Every settled send appends a line "<epoch ms at send> <latency ms> <ok|
// error:REASON>" to FILE.lat; FILE.progress is rewritten every 100 ms:
// "ready=0|1 sent=S acked=A failed=F max_ms=M". At the end FILE gets one JSON object
// { sent, acked, failed, maxMs, errors: {reason: n}, firstError }.
// Exit 0 once it ran (whatever the outcome), 1 if it could not start, 2 on bad usage.
const fs = require('node:fs');
const { RawConn } = require('./raw');
const { cmd, TYPE, pb } = require('./frames');

function parse() {
  const o = { url: '', topic: '', out: '', 'stop-file': '', 'deadline-s': 120, 'send-timeout-ms': 10000, size: 64, 'interval-ms': 0, 'start-file': '' };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    const k = a[i].replace(/^--/, '');
    if (!(k in o) || i + 1 >= a.length) {
      console.error(`unknown or incomplete option ${a[i]}`);
      process.exit(2);
    }
    o[k] = typeof o[k] === 'number' ? Number(a[++i]) : a[++i];
  }
  const m = /^pulsar:\/\/([^/:]+):(\d+)\/?$/.exec(o.url);
  if (!m || !o.topic || !o.out) {
    console.error('usage: probe-produce.js --url pulsar://H:P --topic T --out FILE [options]');
    process.exit(2);
  }
  o.host = m[1];
  o.port = Number(m[2]);
  return o;
}

async function main() {
  const o = parse();
  const deadline = Date.now() + o['deadline-s'] * 1000;
  const st = { ready: 0, sent: 0, acked: 0, failed: 0, maxMs: 0, errors: {}, firstError: null };
  const lat = fs.openSync(`${o.out}.lat`, 'w');
  const progress = () => { // atomically: a reader never sees a half-written file
    fs.writeFileSync(`${o.out}.progress.tmp`,
      `ready=${st.ready} sent=${st.sent} acked=${st.acked} failed=${st.failed} max_ms=${st.maxMs}\n`);
    fs.renameSync(`${o.out}.progress.tmp`, `${o.out}.progress`);
  };
  const timer = setInterval(progress, 100);
  const fail = (why) => {
    st.failed++;
    st.errors[why] = (st.errors[why] || 0) + 1;
    if (!st.firstError) st.firstError = why;
  };
  let conn;
  try {
    conn = await RawConn.connect({ host: o.host, port: o.port, timeoutMs: 10000 });
    conn.write(cmd.connect());
    await conn.waitFrame((f) => f.type === TYPE.CONNECTED, 10000, 'CONNECTED');
    conn.write(cmd.producer({ topic: o.topic, producerId: 1, requestId: 1, producerName: 'probe' }));
    const r = await conn.waitFrame((f) => f.type === TYPE.PRODUCER_SUCCESS || f.type === TYPE.ERROR, 20000,
      'PRODUCER_SUCCESS');
    if (r.type !== TYPE.PRODUCER_SUCCESS) throw new Error(`PRODUCER refused: ${pb.str(r.cmd, 3)}`);
  } catch (e) {
    clearInterval(timer);
    progress();
    fs.writeFileSync(o.out, JSON.stringify({ ...st, startError: String(e.message || e) }));
    if (conn) conn.destroy();
    process.exit(1);
  }
  st.ready = 1;
  progress();
  while (o['start-file'] && !fs.existsSync(o['start-file']) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const payload = Buffer.alloc(o.size, 'p');
  for (let seq = 0; Date.now() < deadline && !(o['stop-file'] && fs.existsSync(o['stop-file'])); seq++) {
    if (conn.isClosed) {
      fail('connection closed');
      break;
    }
    conn.frames.length = 0; // only this send's answer matters
    const t0 = Date.now();
    conn.write(cmd.send({ producerId: 1, sequenceId: seq, producerName: 'probe', payload, numMessages: 1 }));
    st.sent++;
    let outcome = 'ok';
    try {
      const f = await conn.waitFrame(
        (x) => (x.type === TYPE.SEND_RECEIPT || x.type === TYPE.SEND_ERROR) && pb.num(x.cmd, 2) === seq,
        o['send-timeout-ms'], `receipt of ${seq}`);
      if (f.type === TYPE.SEND_RECEIPT) st.acked++;
      else {
        outcome = `error:SEND_ERROR ${pb.num(f.cmd, 3)}`;
        fail(outcome);
      }
    } catch (e) {
      outcome = `error:${/timed out/.test(e.message) ? 'timeout' : 'closed'}`;
      fail(outcome);
    }
    const ms = Date.now() - t0;
    if (ms > st.maxMs) st.maxMs = ms;
    fs.writeSync(lat, `${t0} ${ms} ${outcome}\n`);
    if (outcome !== 'ok' && conn.isClosed) break;
    if (o['interval-ms'] > 0) await new Promise((r) => setTimeout(r, o['interval-ms']));
  }
  clearInterval(timer);
  progress();
  fs.closeSync(lat);
  fs.writeFileSync(o.out, JSON.stringify(st));
  conn.destroy();
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
