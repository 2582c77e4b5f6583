'use strict';
// Helpers for driving magnetar with the real pulsar-flex client (npm, 1.1.1).
//
// Environment (set by scripts/test.sh):
//   MAGNETAR_URL    pulsar://127.0.0.1:PORT   binary protocol service URL
//   MAGNETAR_ADMIN  http://127.0.0.1:PORT     admin HTTP
//   MAGNETAR_PID    broker pid (optional; RSS checks are skipped without it)
//   MAGNETAR_KEEPALIVE_SECONDS  the broker's keepAliveIntervalSeconds (default 2, as the
//                   harness starts it)
//   MAGNETAR_COMPAT_VERBOSE=1  print pulsar-flex's own log lines to stderr
//
// Facts about pulsar-flex 1.1.1 these helpers rely on (read from its src/):
// - Producer.create()/Consumer.subscribe() do LOOKUP on a throw-away connection to the
//   service URL, then open the client's own connection to brokerServiceUrl. A lookup
//   that fails without `error` is retried forever, so every call here is time-bounded.
// - Producer.close() sends CLOSE_PRODUCER but leaves the socket open (and its 60 s pinger
//   running); Consumer.unsubscribe() sends CLOSE_CONSUMER, then half-closes the socket.
//   Its cleanup only runs on the socket's 'close' event, i.e. when the broker answers the
//   client's FIN by closing. closeProducer()/closeConsumer() below half-close and wait for
//   that, and report a broker that never closes as an error.
// - Every request arms a 10 s response timer that is never cleared; we clear it on
//   resolution and unref it (nothing on the wire changes) so that a test file's process
//   exits as soon as its clients are closed instead of 10 s later.
// - Consumers receive through run({onMessage, autoAck}); with autoAck the ACK (with a
//   request_id) is sent and its ACK_RESPONSE awaited *before* onMessage is called.
//   An ACK that gets no ACK_RESPONSE parks the consumer forever (so waits here time out).
//   run() sends FLOW(receiveQueueSize=500), then FLOW(250) whenever fewer than 250 permits
//   remain; an empty queue is polled once a second.
// - Subscriptions are created at Latest (initialPosition is never sent): subscribe first,
//   then produce.

const net = require('node:net');
const http = require('node:http');
const crypto = require('node:crypto');
const assert = require('node:assert');
const { after } = require('node:test');
const { rssKb } = require('./proc');

// ---------------------------------------------------------------- instrumentation
// Must happen before pulsar-flex itself is loaded.
if (Object.keys(require.cache).some((k) => /[\\/]pulsar-flex[\\/]src[\\/]index\.js$/.test(k))) {
  throw new Error('lib/flex.js must be required before pulsar-flex');
}

// Every TCP socket opened in this process (pulsar-flex's and ours), so that leftovers
// can be destroyed after the last test of a file.
const liveSockets = new Set();
const origConnect = net.connect;
function trackedConnect(...args) {
  const s = origConnect.apply(net, args);
  liveSockets.add(s);
  s.once('close', () => liveSockets.delete(s));
  return s;
}
net.connect = trackedConnect;
net.createConnection = trackedConnect;

// Mark each pulsar-flex connection object with its close state.
const connPath = require.resolve('pulsar-flex/src/client/network/connection');
const origConnection = require(connPath);
require.cache[connPath].exports = async function trackedConnection(args) {
  const cnx = await origConnection(args);
  cnx.isClosed = false;
  cnx.closedPromise = new Promise((resolve) =>
    cnx.addCleanUpListener(() => {
      cnx.isClosed = true;
      resolve();
    })
  );
  return cnx;
};

require('./flex-timers');

const { Producer, Consumer, logLevel } = require('pulsar-flex');

after(() => {
  // Whatever a test could not close (e.g. after a failure) must not keep the file alive.
  for (const s of liveSockets) s.destroy();
  const t = setTimeout(() => {
    console.error('[compat] event loop still busy 20 s after the last test ' +
      '(a pulsar-flex client kept retrying); exiting with failure');
    process.exit(1);
  }, 20000);
  t.unref();
});

// ---------------------------------------------------------------- environment

const OP_TIMEOUT_MS = 20000; // create / subscribe / close
const FIN_CLOSE_TIMEOUT_MS = 5000; // broker must close after the client's FIN
const KEEPALIVE_S = Number(process.env.MAGNETAR_KEEPALIVE_SECONDS || 2);
const VERBOSE = !!process.env.MAGNETAR_COMPAT_VERBOSE;

function brokerAddress() {
  const url = process.env.MAGNETAR_URL;
  if (!url) throw new Error('MAGNETAR_URL is not set (expected pulsar://127.0.0.1:PORT)');
  const m = /^pulsar:\/\/([^/:]+):(\d+)\/?$/.exec(url);
  if (!m) throw new Error(`MAGNETAR_URL ${url} is not pulsar://HOST:PORT`);
  return { host: m[1], port: Number(m[2]) };
}

function adminBase() {
  const url = process.env.MAGNETAR_ADMIN;
  if (!url) throw new Error('MAGNETAR_ADMIN is not set (expected http://127.0.0.1:PORT)');
  return url.replace(/\/+$/, '');
}

function brokerPid() {
  const pid = Number(process.env.MAGNETAR_PID);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

// VmRSS of the broker in kB, or null if unknown.
function brokerRssKb(pid = brokerPid()) {
  return rssKb(pid);
}

function brokerAlive(pid = brokerPid()) {
  if (!pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

// ---------------------------------------------------------------- small utilities

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function uniqueName(tag) {
  return `${tag}-${Date.now().toString(36)}-${crypto.randomBytes(4).toString('hex')}`;
}

function uniqueTopic(tag) {
  return `persistent://public/default/compat-${uniqueName(tag)}`;
}

function localName(topic) {
  return topic.replace(/^persistent:\/\/[^/]+\/[^/]+\//, '');
}

const describeWhat = (what) => (typeof what === 'function' ? what() : what);

// Resolves/rejects like `promise`, or rejects after ms with a message naming `what`
// (a string, or a function evaluated at timeout for a fresh diagnosis).
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${ms} ms: ${describeWhat(what)}`)),
      ms
    );
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
}

// Polls cond() every 20 ms until it is truthy; rejects after ms.
async function waitFor(cond, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${describeWhat(what)}`);
    }
    await sleep(20);
  }
}

// n messages: payload `${tag}:${i}:<filler>`, properties {i, tag}.
function makeMessages(n, tag, { fill = 32 } = {}) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const filler = crypto.createHash('sha256').update(`${tag}/${i}`).digest('hex').repeat(4).slice(0, fill);
    out.push({ payload: Buffer.from(`${tag}:${i}:${filler}`), properties: { i: String(i), tag } });
  }
  return out;
}

// Sends all messages through one producer, keeping up to `window` sends outstanding.
// The wire order is the array order (each sendMessage writes its frame synchronously).
async function sendAll(producer, messages, { window = 32, timeoutMs = 60000, what = 'sendAll' } = {}) {
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < messages.length) {
      const i = next++;
      await producer.sendMessage(messages[i]);
      done++;
    }
  };
  const workers = Array.from({ length: Math.max(1, Math.min(window, messages.length)) }, worker);
  await withTimeout(
    Promise.all(workers),
    timeoutMs,
    () => `${what}: ${done}/${messages.length} send receipts`
  );
}

// Starts consumer.run() and records every message delivered to onMessage.
// Each record: { payload (Buffer copy), text, properties, messageId {ledgerid, entryid, ...},
//                redeliveryCount, ack(opts) }. `onEach(rec, got)` may be async; an exception
// it throws is stored in got.errors (pulsar-flex would just log it).
async function collect(consumer, { autoAck = true, onEach } = {}) {
  const got = [];
  got.errors = [];
  await withTimeout(
    consumer.run({
      autoAck,
      onMessage: async (m) => {
        const rec = {
          payload: Buffer.from(m.message),
          properties: m.properties,
          messageId: m.command.messageId,
          redeliveryCount: m.redeliveryCount || 0,
          ack: m.ack,
          at: Date.now(),
        };
        rec.text = rec.payload.length < 4096 ? rec.payload.toString('utf8') : null;
        got.push(rec);
        if (onEach) {
          try {
            await onEach(rec, got);
          } catch (e) {
            got.errors.push(e);
          }
        }
      },
    }),
    OP_TIMEOUT_MS,
    'consumer.run() (FLOW)'
  );
  return got;
}

// Ends a check of "these messages and nothing more": sends one marker message through the
// same producer, waits until the consumer has it, and takes it out of `got`. A consumer
// that is alone on its subscription gets the messages in order, redeliveries first, so
// whatever the broker would wrongly deliver before it (a duplicate, a redelivery of an
// acked message) is in `got` by then: no fixed wait for late arrivals. (`s` is the scope,
// for its waitFor.)
async function flushWithMarker(s, producer, got, opts) {
  await flushAllWithMarkers(s, producer, [got], opts);
}

// The same for the consumers of one Shared subscription (`gots`, one record list each): a
// marker reaches one of them, so markers are sent one at a time until every consumer has had
// one (at most 100, within timeoutMs); each consumer's late deliveries are in before its
// marker. Every marker is taken out.
async function flushAllWithMarkers(s, producer, gots, { timeoutMs = 30000 } = {}) {
  const tag = uniqueName('marker');
  const isMarker = (r) => r.properties && typeof r.properties.marker === 'string' && r.properties.marker.startsWith(tag);
  const deadline = Date.now() + timeoutMs;
  for (let k = 0; gots.some((g) => !g.some(isMarker)); k++) {
    if (k >= 100) throw new Error(`100 markers sent and not every consumer got one (${gots.map((g) => g.filter(isMarker).length)})`);
    const id = `${tag}-${k}`;
    await sendAll(producer, [{ payload: Buffer.from(id), properties: { marker: id } }], { what: 'marker' });
    await s.waitFor(() => gots.some((g) => g.some((r) => r.properties && r.properties.marker === id)),
      Math.max(1, deadline - Date.now()), () => `marker ${k} (after ${gots.map((g) => g.length)} others)`);
  }
  for (const g of gots) {
    for (let i = g.findIndex(isMarker); i >= 0; i = g.findIndex(isMarker)) g.splice(i, 1);
  }
}

// Asserts that `got` (records from collect) carries exactly `expected` (from makeMessages)
// in order, byte for byte, with their properties. Throws with the first difference.
function checkExactSequence(got, expected, what = 'messages') {
  if (got.length !== expected.length) {
    assert.fail(`${what}: received ${got.length}, expected ${expected.length}` +
      ` (first few: ${got.slice(0, 5).map((r) => r.text).join(' | ')})`);
  }
  for (let i = 0; i < expected.length; i++) {
    if (!got[i].payload.equals(expected[i].payload)) {
      assert.fail(`${what}: message #${i} is ${JSON.stringify(got[i].text)}, expected ` +
        `${JSON.stringify(expected[i].payload.toString())}`);
    }
    for (const [k, v] of Object.entries(expected[i].properties || {})) {
      if (got[i].properties[k] !== v) {
        assert.fail(`${what}: message #${i} property ${k}=${JSON.stringify(got[i].properties[k])}, ` +
          `expected ${JSON.stringify(v)}`);
      }
    }
  }
}

// Message ids of `got` must strictly increase by (ledgerId, entryId).
function checkIdsIncrease(got, what = 'message ids') {
  for (let i = 1; i < got.length; i++) {
    const a = got[i - 1].messageId;
    const b = got[i].messageId;
    const inc = b.ledgerid > a.ledgerid || (b.ledgerid === a.ledgerid && b.entryid > a.entryid);
    if (!inc) {
      assert.fail(`${what}: #${i} (${b.ledgerid}:${b.entryid}) does not follow #${i - 1} (${a.ledgerid}:${a.entryid})`);
    }
  }
}

// ---------------------------------------------------------------- admin HTTP

function admin(method, path, body, { timeoutMs = 10000 } = {}) {
  const url = new URL(adminBase() + path);
  const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method,
        headers: data
          ? { 'content-type': 'application/json', 'content-length': data.length }
          : {},
        timeout: timeoutMs,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, text, json, headers: res.headers });
        });
        res.on('error', reject);
      }
    );
    req.on('timeout', () => req.destroy(new Error(`admin ${method} ${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

async function checkHealth() {
  const r = await admin('GET', '/admin/v2/brokers/health');
  if (r.status !== 200 || r.text.trim() !== 'ok') {
    throw new Error(`broker health: HTTP ${r.status} ${JSON.stringify(r.text)}, expected 200 "ok"`);
  }
}

// ---------------------------------------------------------------- clients

// Closes a pulsar-flex connection by half-closing it (what the client itself does)
// and waiting for the broker to close its side.
async function endCnx(cnx, what) {
  if (!cnx || cnx.isClosed) return;
  cnx.close();
  await withTimeout(
    cnx.closedPromise,
    FIN_CLOSE_TIMEOUT_MS,
    `broker did not close the ${what} connection after the client's FIN`
  );
}

async function closeProducer(p, errors) {
  const cnx = p._client.getCnx();
  const wasConnected = p._connected;
  p._created = false; // no reconnect when the socket closes
  if (wasConnected && cnx && !cnx.isClosed) {
    try {
      await withTimeout(p.close(), OP_TIMEOUT_MS, `producer.close() on ${p._topic}`);
    } catch (e) {
      errors.push(e);
    }
  }
  try {
    await endCnx(cnx, `producer (${p._topic})`);
  } catch (e) {
    errors.push(e);
  }
}

async function closeConsumer(c, errors) {
  const cnx = c._client.getCnx();
  if (c._isSubscribed && cnx && !cnx.isClosed) {
    try {
      await withTimeout(c.unsubscribe(), OP_TIMEOUT_MS, `consumer.unsubscribe() on ${c._topic}`);
    } catch (e) {
      errors.push(e);
    }
  }
  // Whatever happened, stop its processing loop and keep it from resubscribing.
  c._cleanState();
  c._consumerState = Consumer.CONSUMER_STATES.UNSUBSCRIBED;
  try {
    await endCnx(cnx, `consumer (${c._topic})`);
  } catch (e) {
    errors.push(e);
  }
}

// A Scope owns the clients and raw sockets a test opens, and closes them all.
class Scope {
  constructor(name = 'test') {
    this.name = name;
    this.producers = [];
    this.consumers = [];
    this.raws = [];
    this.logs = []; // pulsar-flex log lines: { level, message, client, at }
    this.closed = false;
  }

  _logCreator(client) {
    return () => ({ label, log }) => {
      const entry = { level: label, message: log.message, client, at: Date.now() };
      this.logs.push(entry);
      if (VERBOSE) console.error(`[flex ${client}] ${label} ${log.message}`);
    };
  }

  // waitFor() whose timeout message also tells what the consumers' connections received and
  // what pulsar-flex complained about (e.g. ACKs left without ACK_RESPONSE).
  async waitFor(cond, ms, what) {
    try {
      await waitFor(cond, ms, what);
    } catch (e) {
      const frames = this.consumers.map((c) => `${c._consumerName}:${c.framesIn}`).join(' ');
      const problems = this.problems().slice(0, 3).map((l) => `${l.level} ${l.client}: ${l.message}`);
      e.message += ` [MESSAGE frames received per consumer: ${frames || 'none'}]` +
        (problems.length ? ` [pulsar-flex: ${problems.join(' | ').replace(/\s+/g, ' ')}]` : '');
      throw e;
    }
  }

  // Warnings and errors pulsar-flex logged since `since` (ms timestamp).
  problems(since = 0) {
    return this.logs.filter((l) => l.at >= since && (l.level === 'ERROR' || l.level === 'WARN'));
  }

  async producer(topic, { accessMode = Producer.ACCESS_MODES.SHARED, ...opts } = {}) {
    const { host, port } = brokerAddress();
    const p = new Producer({
      topic,
      discoveryServers: [`${host}:${port}`],
      producerAccessMode: accessMode,
      logLevel: logLevel.WARN,
      logCreator: this._logCreator(`producer ${localName(topic)}`),
      ...opts,
    });
    this.producers.push(p);
    await withTimeout(p.create(), OP_TIMEOUT_MS, `producer.create() on ${topic}`);
    return p;
  }

  // Creates and subscribes a consumer. `c.states` records its state changes.
  async consumer({ topic, subscription, subType = Consumer.SUB_TYPES.EXCLUSIVE, name, ...opts }) {
    const c = this.newConsumer({ topic, subscription, subType, name, ...opts });
    await withTimeout(c.subscribe(), OP_TIMEOUT_MS, `consumer.subscribe() on ${topic} / ${subscription}`);
    return c;
  }

  // Creates a consumer without subscribing (to observe a refused subscribe).
  newConsumer({ topic, subscription, subType = Consumer.SUB_TYPES.EXCLUSIVE, name, ...opts }) {
    const { host, port } = brokerAddress();
    const consumerName = name || uniqueName('c');
    const c = new Consumer({
      topic,
      subscription: subscription || uniqueName('sub'),
      subType,
      consumerName,
      discoveryServers: [`${host}:${port}`],
      logLevel: logLevel.WARN,
      logCreator: this._logCreator(`consumer ${consumerName} ${localName(topic)}`),
      ...opts,
    });
    c.states = [];
    c.framesIn = 0; // MESSAGE frames that reached the client (delivered to onMessage or not)
    c._client.getResponseEvents().on('message', () => c.framesIn++);
    c.onStateChange(({ previousState, newState }) => c.states.push(`${previousState}->${newState}`));
    this.consumers.push(c);
    return c;
  }

  async raw() {
    const { RawConn } = require('./raw');
    const r = await RawConn.connect(brokerAddress());
    this.raws.push(r);
    return r;
  }

  // Closes one producer or consumer now (e.g. to hand its subscription over); throws if
  // the broker does not let it close cleanly.
  async closeOne(client) {
    const errors = [];
    if (client instanceof Producer) {
      await closeProducer(client, errors);
      this.producers = this.producers.filter((p) => p !== client);
    } else {
      await closeConsumer(client, errors);
      this.consumers = this.consumers.filter((c) => c !== client);
    }
    if (errors.length) throw new Error(`closing failed: ${errors.map((e) => e.message).join('; ')}`);
  }

  // Closes everything; returns the errors met (broker misbehaviour on close included).
  async close() {
    if (this.closed) return [];
    this.closed = true;
    const errors = [];
    await Promise.all([
      ...this.consumers.map((c) => closeConsumer(c, errors)),
      ...this.producers.map((p) => closeProducer(p, errors)),
    ]);
    for (const r of this.raws) r.destroy();
    return errors;
  }
}

// Runs body(scope) and closes the scope. A body failure wins; otherwise a failure to
// close cleanly (e.g. the broker ignoring CLOSE_* or the client's FIN) fails the test.
async function withScope(name, body) {
  const scope = new Scope(name);
  let result;
  try {
    result = await body(scope);
  } catch (e) {
    const errs = await scope.close();
    for (const ce of errs) console.error(`[compat ${name}] also failed to close cleanly: ${ce.message}`);
    throw e;
  }
  const errs = await scope.close();
  if (errs.length) {
    const err = new Error(`closing clients failed: ${errs.map((e) => e.message).join('; ')}`);
    err.causes = errs;
    throw err;
  }
  return result;
}

module.exports = {
  flushWithMarker,
  flushAllWithMarkers,
  Producer,
  Consumer,
  logLevel,
  SUB_TYPES: Consumer.SUB_TYPES,
  ACK_TYPES: Consumer.ACK_TYPES,
  OP_TIMEOUT_MS,
  KEEPALIVE_S,
  brokerAddress,
  brokerPid,
  brokerRssKb,
  brokerAlive,
  adminBase,
  admin,
  checkHealth,
  sleep,
  uniqueName,
  uniqueTopic,
  localName,
  withTimeout,
  waitFor,
  makeMessages,
  sendAll,
  collect,
  checkExactSequence,
  checkIdsIncrease,
  Scope,
  withScope,
  liveSockets,
};
