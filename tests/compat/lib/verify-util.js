'use strict';
// Shared by verify-produce.js and verify-consume.js, the pulsar-flex clients of the crash and
// durability integration tests (tests/integration/{cluster,failover,fencing,standalone-crash}.test.sh).
// Not a node:test file: these run as plain scripts, print one JSON summary, exit 0/1.
//
// Must be required before pulsar-flex: it
// - clears and unrefs pulsar-flex's per-request response timers (as lib/flex.js does), so a
//   finished script is not kept alive, and lets us pick the send-receipt timeout;
// - remembers the TCP sockets each client opens (pulsar-flex hides them), so that a client
//   can be abandoned for good (destroy its sockets: no reconnect, no resend).

const net = require('node:net');
const fs = require('node:fs');

if (Object.keys(require.cache).some((k) => /[\\/]pulsar-flex[\\/]src[\\/]index\.js$/.test(k))) {
  throw new Error('lib/verify-util.js must be required before pulsar-flex');
}

// Every socket opened since the last takeSockets() call.
let openedSockets = [];
const origConnect = net.connect;
function trackedConnect(...args) {
  const s = origConnect.apply(net, args);
  openedSockets.push(s);
  return s;
}
net.connect = trackedConnect;
net.createConnection = trackedConnect;

function takeSockets() {
  const out = openedSockets;
  openedSockets = [];
  return out;
}

require('./flex-timers');

const flex = require('pulsar-flex');

// --key value / --flag command lines. spec: { key: default } (a boolean default = a flag).
function parseArgs(argv, spec, usage) {
  const out = { ...spec };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const m = /^--([a-z0-9-]+)$/.exec(a);
    if (!m || !(m[1] in spec)) die(`unknown argument ${a}\n${usage}`);
    const k = m[1];
    if (typeof spec[k] === 'boolean') {
      out[k] = true;
    } else {
      if (i + 1 >= argv.length) die(`${a} needs a value\n${usage}`);
      const v = argv[++i];
      if (typeof spec[k] === 'number') {
        if (!/^-?\d+(\.\d+)?$/.test(v)) die(`${a}: not a number: ${v}`);
        out[k] = Number(v);
      } else {
        out[k] = v;
      }
    }
  }
  return out;
}

// Run an async main: exit with its result (0 when it returns nothing), 1 (logged) if it throws.
function runMain(main) {
  main().then(
    (code) => process.exit(code || 0),
    (e) => {
      console.error(e);
      process.exit(1);
    }
  );
}

// A consumer script's command line: --url, --topic, --sub and --out (the last three required)
// and the script's own spec.
function consumerArgs(argv, spec, usage) {
  const o = parseArgs(argv, { url: '', topic: '', sub: '', out: '', ...spec }, usage);
  if (!o.topic || !o.sub || !o.out) die(usage);
  return o;
}

function die(msg) {
  process.stderr.write(`${process.argv[1].replace(/.*\//, '')}: ${msg}\n`);
  process.exit(2);
}

// pulsar://H:P or pulsar://H1:P1,H2:P2,... (a service URL naming several brokers) ->
// ["H:P", ...]. Lookups go to the first; servers(list, n) rotates it for the n-th attempt:
// pulsar-flex gives up at the first server it cannot connect to instead of trying the
// next, so a retry must start elsewhere when one of the brokers is down.
function hostPorts(url) {
  const m = /^pulsar:\/\/([^/]+?)\/?$/.exec(url || '');
  const list = m ? m[1].split(',') : [];
  if (!list.length || !list.every((hp) => /^[^/:,]+:\d+$/.test(hp))) {
    die(`--url must be pulsar://HOST:PORT[,HOST:PORT...], got ${url}`);
  }
  return list;
}

function hostPort(url) {
  return hostPorts(url)[0];
}

function servers(list, attempt) {
  const k = attempt % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Resolves like p, or rejects after ms.
function withTimeout(p, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([Promise.resolve(p), t]).finally(() => clearTimeout(timer));
}

// pulsar-flex log lines go to stderr with a timestamp (they end up in the test's log).
function logCreator(who) {
  return () => ({ label, log }) => {
    process.stderr.write(`${new Date().toISOString()} [flex ${who}] ${label} ${log.message}\n`);
  };
}

function log(who, msg) {
  process.stderr.write(`${new Date().toISOString()} [${who}] ${msg}\n`);
}

// Writes a file atomically (readers polling it never see half of it).
function writeAtomic(path, text) {
  const tmp = `${path}.tmp${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, path);
}

// Counters are encoded in the payload ("<tag>:<counter>:<filler>") and in property "c".
function payloadFor(tag, counter, size) {
  const head = `${tag}:${counter}:`;
  const fill = size > head.length ? 'x'.repeat(size - head.length) : '';
  return Buffer.from(head + fill);
}

function counterOf(payload, properties, tag) {
  const text = payload.subarray(0, 200).toString('latin1');
  const parts = text.split(':');
  if (parts.length < 2 || (tag && parts[0] !== tag)) return null;
  const c = Number(parts[1]);
  if (!Number.isInteger(c) || c < 0) return null;
  if (properties && properties.c !== undefined && Number(properties.c) !== c) return null;
  return c;
}

// Reads one or more produce summaries (comma-separated paths): every counter they list as
// acknowledged, and every counter they list as sent without a receipt ("failed"). A
// placeholder summary of a producer that wrote none may hold only {"acked": []}.
function readSummaries(paths) {
  const acked = [];
  const failed = [];
  for (const p of paths.split(',').filter(Boolean)) {
    const j = JSON.parse(fs.readFileSync(p, 'utf8'));
    if (!Array.isArray(j.acked)) die(`${p}: no "acked" array`);
    for (const c of j.acked) acked.push(c);
    for (const c of j.failed || []) failed.push(c);
  }
  return { acked, failed };
}

function readAcked(paths) {
  return readSummaries(paths).acked;
}

// A pulsar-flex consumer of topic / sub on the brokers of url (pulsar://H:P[,H:P..]), logging
// as who, subscribed within 20 s; opts: the other Consumer options (subType, consumerName,
// receiveQueueSize, ...). Returns { consumer, sockets: the sockets it opened }; throws when the
// subscribe fails or times out.
async function subscribeConsumer(url, topic, sub, who, opts) {
  takeSockets();
  const consumer = new flex.Consumer({
    topic,
    subscription: sub,
    discoveryServers: hostPorts(url),
    logLevel: flex.logLevel.WARN,
    logCreator: logCreator(who),
    ...opts,
  });
  let sockets = [];
  try {
    await withTimeout(consumer.subscribe(), 20000, `subscribe to ${topic} / ${sub}`);
  } finally {
    sockets = takeSockets(); // also on failure: none is handed to the next caller
  }
  return { consumer, sockets };
}

// A topic as the tests name it ("x" or a full "persistent://t/ns/x") in full.
function fullTopic(name) {
  return name.includes('://') ? name : `persistent://public/default/${name}`;
}

module.exports = {
  flex,
  fullTopic,
  Producer: flex.Producer,
  Consumer: flex.Consumer,
  logLevel: flex.logLevel,
  takeSockets,
  subscribeConsumer,
  parseArgs,
  runMain,
  consumerArgs,
  die,
  hostPort,
  hostPorts,
  servers,
  sleep,
  withTimeout,
  logCreator,
  log,
  writeAtomic,
  payloadFor,
  counterOf,
  readAcked,
  readSummaries,
};
