#!/usr/bin/env node
'use strict';
// terminate-probe.js - what a client sees of a terminated topic, for terminate.test.sh.
//
//   node tests/compat/lib/terminate-probe.js --url pulsar://127.0.0.1:PORT --topic T --sub S
//        --count N --out FILE [--deadline-s 60]
//
// One raw connection: CONNECT; SUBSCRIBE to the existing durable subscription S (Exclusive),
// FLOW N+10, acknowledge every MESSAGE as it comes, and wait for REACHED_END_OF_TOPIC (the
// broker sends it once the topic is terminated and everything is acknowledged: the clients'
// hasReachedEndOfTopic); then PRODUCER on the topic, which a terminated topic refuses.
// --out FILE gets { received, reachedEnd, reachedEndAfter (messages received by then),
// producerError (ServerError code or null), producerMessage, error }. Exit 0 once it ran
// (the JSON says what happened), 1 if it could not connect, 2 on bad usage.
const fs = require('node:fs');
const { RawConn } = require('./raw');
const { cmd, TYPE, pb } = require('./frames');
const u = require('./verify-util');

const USAGE = 'usage: terminate-probe.js --url pulsar://H:P --topic T --sub S --count N --out FILE';

async function main() {
  const o = u.parseArgs(process.argv.slice(2), { url: '', topic: '', sub: '', out: '', count: 0,
    'deadline-s': 60 }, USAGE);
  if (!o.topic || !o.sub || !o.out || !(o.count >= 0)) u.die(USAGE);
  const [host, port] = u.hostPort(o.url).split(':');
  const deadline = Date.now() + o['deadline-s'] * 1000;
  const st = { received: 0, reachedEnd: false, reachedEndAfter: null, producerError: null,
    producerMessage: null, error: null };
  let conn;
  try {
    conn = await RawConn.connect({ host, port: Number(port), timeoutMs: 10000 });
  } catch (e) {
    fs.writeFileSync(o.out, JSON.stringify({ ...st, error: String(e.message || e) }));
    return 1;
  }
  try {
    conn.write(cmd.connect());
    await conn.waitFrame((f) => f.type === TYPE.CONNECTED, 10000, 'CONNECTED');
    conn.write(cmd.subscribe({ topic: o.topic, subscription: o.sub, consumerId: 1, requestId: 1 }));
    const s = await conn.waitFrame((f) => (f.type === TYPE.SUCCESS || f.type === TYPE.ERROR), 30000,
      'SUBSCRIBE answer');
    if (s.type !== TYPE.SUCCESS) throw new Error(`SUBSCRIBE refused: ${pb.str(s.cmd, 3)}`);
    conn.write(cmd.flow({ consumerId: 1, permits: o.count + 10 }));
    let seen = 0;
    while (!st.reachedEnd && Date.now() < deadline && !conn.isClosed) {
      await conn.waitFrame(() => conn.frames.length > seen, Math.max(1, deadline - Date.now()), 'frames')
        .catch(() => {});
      for (; seen < conn.frames.length; seen++) {
        const f = conn.frames[seen];
        if (f.type === TYPE.MESSAGE) {
          st.received++;
          const id = pb.msg(f.cmd, 2);
          conn.write(cmd.ack({ consumerId: 1, ledgerId: pb.big(id, 1), entryId: pb.big(id, 2), requestId: 0 }));
        } else if (f.type === TYPE.REACHED_END_OF_TOPIC) {
          st.reachedEnd = true;
          st.reachedEndAfter = st.received;
        }
      }
    }
    conn.write(cmd.producer({ topic: o.topic, producerId: 2, requestId: 2, producerName: 'after-terminate' }));
    const r = await conn.waitFrame((f) => f.type === TYPE.PRODUCER_SUCCESS || f.type === TYPE.ERROR, 30000,
      'PRODUCER answer');
    if (r.type === TYPE.ERROR) {
      st.producerError = pb.num(r.cmd, 2);
      st.producerMessage = pb.str(r.cmd, 3);
    }
  } catch (e) {
    st.error = String(e.message || e);
  }
  conn.destroy();
  fs.writeFileSync(o.out, JSON.stringify(st));
  return 0;
}

u.runMain(main);
