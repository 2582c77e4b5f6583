#!/usr/bin/env node
'use strict';
// conn-flood.js - open many idle TCP connections to one port and hold them (integration
// tests of descriptor exhaustion and connection limits).
//
//   node tests/compat/lib/conn-flood.js --port P --count N --status FILE --hold-file F
//        [--host 127.0.0.1] [--connect-timeout-ms 5000] [--deadline-s 120] [--pulsar]
//        [--local-address 127.0.0.2]
//
// Starts N connects at once. A connect that does not complete within --connect-timeout-ms
// counts as timed out (the peer's backlog is full). With --pulsar each connected socket
// sends CONNECT and counts CONNECTED answers and ERROR answers (with their messages).
// FILE is rewritten every 100 ms: "connected=C timedout=T failed=E closed_by_peer=P
// connected_answers=A error_answers=R done=0|1". When --hold-file exists (or at the
// deadline) every socket is destroyed, done=1 is written and the process exits 0.
// The first ERROR message seen goes to FILE.error.
const net = require('node:net');
const fs = require('node:fs');
const { FrameReader, TYPE, cmd, pb } = require('./frames');

const o = { host: '127.0.0.1', port: 0, count: 0, status: '', 'hold-file': '', 'connect-timeout-ms': 5000, 'deadline-s': 120, pulsar: false, 'local-address': '' };
const a = process.argv.slice(2);
for (let i = 0; i < a.length; i++) {
  const k = a[i].replace(/^--/, '');
  if (!(k in o)) {
    console.error(`unknown option ${a[i]}`);
    process.exit(2);
  }
  if (typeof o[k] === 'boolean') o[k] = true;
  else o[k] = typeof o[k] === 'number' ? Number(a[++i]) : a[++i];
}
if (!o.port || !o.count || !o.status || !o['hold-file']) {
  console.error('usage: conn-flood.js --port P --count N --status FILE --hold-file F [options]');
  process.exit(2);
}

const st = { connected: 0, timedout: 0, failed: 0, closed_by_peer: 0, connected_answers: 0, error_answers: 0, done: 0 };
const sockets = [];
let firstError = null;
const write = () => { // atomically: a reader never sees a half-written file
  fs.writeFileSync(`${o.status}.tmp`, `${Object.entries(st).map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
  fs.renameSync(`${o.status}.tmp`, o.status);
};

for (let i = 0; i < o.count; i++) {
  const s = net.connect({ host: o.host, port: o.port, ...(o['local-address'] ? { localAddress: o['local-address'] } : {}) });
  sockets.push(s);
  let connected = false;
  let destroying = false;
  const t = setTimeout(() => {
    if (!connected) {
      st.timedout++;
      destroying = true;
      s.destroy();
    }
  }, o['connect-timeout-ms']);
  s.on('connect', () => {
    connected = true;
    clearTimeout(t);
    st.connected++;
    if (o.pulsar) {
      const reader = new FrameReader();
      s.on('data', (chunk) => {
        try {
          for (const f of reader.push(chunk)) {
            if (f.type === TYPE.CONNECTED) st.connected_answers++;
            if (f.type === TYPE.ERROR) {
              st.error_answers++;
              if (!firstError) {
                firstError = `${pb.num(f.cmd, 2)} ${pb.str(f.cmd, 3)}`;
                fs.writeFileSync(`${o.status}.error`, `${firstError}\n`);
              }
            }
          }
        } catch (e) {
          /* undecodable: ignore */
        }
      });
      s.write(cmd.connect());
    }
  });
  s.on('error', () => {
    if (!connected && !destroying) {
      clearTimeout(t);
      st.failed++;
    }
  });
  s.on('close', () => {
    if (connected && !destroying) st.closed_by_peer++;
  });
  s.on('end', () => s.end());
  s.destroyAll = () => {
    destroying = true;
    clearTimeout(t);
    s.destroy();
  };
}

const deadline = Date.now() + o['deadline-s'] * 1000;
const tick = setInterval(() => {
  write();
  if (fs.existsSync(o['hold-file']) || Date.now() > deadline) {
    clearInterval(tick);
    for (const s of sockets) s.destroyAll();
    st.done = 1;
    write();
    setTimeout(() => process.exit(0), 100);
  }
}, 100);
write();
