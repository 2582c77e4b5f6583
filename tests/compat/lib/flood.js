#!/usr/bin/env node
'use strict';
// Memory-bound check helper for scripts/bench-rss.sh (prints figures, asserts nothing).
//
// One topic; its only consumer (raw socket) does CONNECT, SUBSCRIBE, FLOW(1000) and then
// never reads its socket again (socket.pause()). A raw producer floods the topic with 1 KiB
// messages, keeping --window sends outstanding, for --seconds. Every second the broker's
// VmRSS (/proc/PID/status) is sampled and a row printed: time, messages sent, receipts,
// RSS kB. A broker with bounded memory shows a flat RSS column.
//
// usage: node tests/compat/lib/flood.js --url pulsar://127.0.0.1:6650 --pid PID
//                                       [--seconds 20] [--size 1024] [--window 1000]
//                                       [--consumer stalled|none]
// (--consumer none: no subscription at all, to tell the stalled consumer's share of the RSS
//  from the storage path's own)
const crypto = require('node:crypto');
const { rssKb } = require('./proc');
const { RawConn } = require('./raw');
const { cmd, TYPE, pb } = require('./frames');

function args() {
  const a = { url: process.env.MAGNETAR_URL, pid: process.env.MAGNETAR_PID, seconds: 20, size: 1024, window: 1000, consumer: 'stalled' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in a)) throw new Error(`unknown option ${argv[i]}`);
    a[k] = argv[++i];
  }
  for (const k of ['seconds', 'size', 'window']) a[k] = Number(a[k]);
  a.pid = a.pid ? Number(a.pid) : null;
  const m = /^pulsar:\/\/([^/:]+):(\d+)\/?$/.exec(a.url || '');
  if (!m) throw new Error('--url pulsar://HOST:PORT (or MAGNETAR_URL) is required');
  a.host = m[1];
  a.port = Number(m[2]);
  return a;
}

async function stalledConsumer(a, topic) {
  const cons = await RawConn.connect({ host: a.host, port: a.port });
  cons.write(cmd.connect());
  await cons.waitFrame((f) => f.type === TYPE.CONNECTED, 10000, 'CONNECTED (consumer)');
  cons.write(cmd.subscribe({ topic, subscription: 'stalled', consumerId: 1, requestId: 1, consumerName: 'stalled' }));
  const sub = await cons.waitFrame((f) => (f.type === TYPE.SUCCESS || f.type === TYPE.ERROR) && pb.num(f.cmd, 1) === 1,
    10000, 'SUBSCRIBE answer');
  if (sub.type !== TYPE.SUCCESS) throw new Error(`SUBSCRIBE refused: ${pb.str(sub.cmd, 3)}`);
  cons.write(cmd.flow({ consumerId: 1, permits: 1000 }));
  await new Promise((r) => setTimeout(r, 200));
  cons.socket.pause(); // never read again: the kernel buffers fill, then the broker's.
  return cons;
}

async function main() {
  const a = args();
  const topic = `persistent://public/default/flood-${Date.now().toString(36)}-${crypto.randomBytes(3).toString('hex')}`;

  if (!['stalled', 'none'].includes(a.consumer)) throw new Error('--consumer stalled|none');
  // The stalled consumer (unless --consumer none).
  const cons = a.consumer === 'none' ? null : await stalledConsumer(a, topic);

  // The flooding producer.
  let sent = 0;
  let acked = 0;
  let errors = 0;
  let prod = null;
  const onFrame = (f) => {
    if (f.type === TYPE.SEND_RECEIPT) {
      acked++;
      pump();
    } else if (f.type === TYPE.SEND_ERROR) {
      errors++;
      pump();
    } else if (prod) {
      prod.frames.push(f);
    } else {
      early.push(f);
    }
  };
  const early = [];
  prod = await RawConn.connect({ host: a.host, port: a.port, onFrame });
  prod.frames.push(...early);
  prod.write(cmd.connect());
  await prod.waitFrame((f) => f.type === TYPE.CONNECTED, 10000, 'CONNECTED (producer)');
  prod.write(cmd.producer({ topic, producerId: 1, requestId: 1 }));
  const ps = await prod.waitFrame((f) => (f.type === TYPE.PRODUCER_SUCCESS || f.type === TYPE.ERROR)
    && pb.num(f.cmd, 1) === 1, 10000, 'PRODUCER answer');
  if (ps.type !== TYPE.PRODUCER_SUCCESS) throw new Error(`PRODUCER refused: ${pb.str(ps.cmd, 3)}`);
  const producerName = pb.str(ps.cmd, 2);
  const payload = crypto.randomBytes(a.size);

  let flooding = true;
  function pump() {
    while (flooding && sent - acked - errors < a.window && !prod.isClosed) {
      // Writes are buffered by node; stop filling when its buffer is large.
      if (prod.socket.writableLength > 8 * 1024 * 1024) break;
      prod.write(cmd.send({ producerId: 1, sequenceId: sent, producerName, payload }));
      sent++;
    }
  }
  prod.socket.on('drain', pump);

  const t0 = Date.now();
  const rss0 = rssKb(a.pid);
  console.log(`flood: topic ${topic}, ${a.size}-byte messages, window ${a.window}, ${a.seconds} s, consumer ${a.consumer}, broker pid ${a.pid || '?'}`);
  console.log(`${'time_s'.padStart(6)} ${'sent'.padStart(10)} ${'receipts'.padStart(10)} ${'msg/s'.padStart(9)} ${'rss_kB'.padStart(10)} ${'delta_kB'.padStart(9)}`);
  const row = (prevAcked) => {
    const rss = rssKb(a.pid);
    const t = ((Date.now() - t0) / 1000).toFixed(1);
    console.log(`${t.padStart(6)} ${String(sent).padStart(10)} ${String(acked).padStart(10)} `
      + `${String(acked - prevAcked).padStart(9)} ${String(rss ?? '?').padStart(10)} `
      + `${String(rss !== null && rss0 !== null ? rss - rss0 : '?').padStart(9)}`);
  };
  row(0);
  pump();
  let prevAcked = 0;
  for (let s = 1; s <= a.seconds; s++) {
    await new Promise((r) => setTimeout(r, t0 + s * 1000 - Date.now()));
    row(prevAcked);
    prevAcked = acked;
    if (prod.isClosed) {
      console.log('producer connection closed by the broker; stopping');
      break;
    }
  }
  flooding = false;
  console.log(`done: ${sent} sent, ${acked} receipts, ${errors} send errors, consumer connection ` +
    `${!cons ? 'none' : cons.isClosed ? 'closed by broker' : 'still open'}; RSS ${rss0 ?? '?'} -> ${rssKb(a.pid) ?? '?'} kB`);
  prod.destroy();
  if (cons) cons.destroy();
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`flood: ${e.message}`);
    process.exit(1);
  }
);
