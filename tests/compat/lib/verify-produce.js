'use strict';
// verify-produce.js - a pulsar-flex producer for the crash/durability integration tests.
//
//   node tests/compat/lib/verify-produce.js --url pulsar://127.0.0.1:PORT[,HOST:PORT..] --topic T --count N
//        --out FILE [--start 0] [--window 500] [--rate 0] [--size 64] [--tag m]
//        [--send-timeout-ms 30000] [--create-timeout-ms 20000] [--deadline-s 300]
//        [--progress FILE] [--no-recreate]
//        [--pause-after K --resume-file F [--resume-start S]]
//
// Sends counters start .. start+count-1, each exactly once, in increasing order: payload
// "<tag>:<counter>:xxx..." (--size bytes) with property c=<counter>. Up to --window sends are
// outstanding; --rate limits to that many sends per second (0 = as fast as receipts allow).
// A send that gets a SEND_RECEIPT within --send-timeout-ms is "acked". Any other outcome
// (SEND_ERROR, timeout, the broker closing the producer or the connection) marks that send
// and every other outstanding send of that producer "failed", and the producer is abandoned
// for good (its sockets destroyed: pulsar-flex can neither reconnect nor resend it, so a
// counter is never sent twice). The next counter goes out on a new producer (created with
// retries until the deadline; with several brokers in --url, each attempt looks the topic
// up through the next one) after a back-off, as a Pulsar client reconnects (100 ms, doubled
// after each failed producer up to 5 s, back to 100 ms at the next receipt), unless
// --no-recreate: then the remaining counters are "not sent".
//
// --pause-after K: after the first K counters, wait until every send settled, write
// "paused=1" into the progress file and wait (until the deadline) for --resume-file to exist;
// then send the remaining count-K counters from --resume-start (default: where it stopped)
// on the same producer: the fencing test lets another broker take the topic meanwhile.
//
// --out FILE gets one JSON object: { topic, start, count, sent, ackedCount, failedCount,
// notSent, acked: [counters], failed: [counters], failedSends: [[counter, sentAtMs,
// failedAtMs]] (epoch ms: when that send went out and when it was given up; the fault tests
// check each one overlaps a fault they caused), errors: {reason: n}, firstError, producers,
// elapsedMs, and with --pause-after: resumed: { sent, acked, failed, notSent, firstError } }.
// --progress FILE is rewritten every 100 ms: "sent=S acked=A failed=F producers=P".
// Exit 0 when the run completed (whatever was acked), 1 on an internal error, 2 on bad usage.

const u = require('./verify-util');

const USAGE = 'usage: verify-produce.js --url pulsar://H:P --topic T --count N --out FILE [options]';
const o = u.parseArgs(process.argv.slice(2), {
  url: '',
  topic: '',
  count: 0,
  start: 0,
  window: 500,
  rate: 0,
  size: 64,
  tag: 'm',
  'send-timeout-ms': 30000,
  'create-timeout-ms': 20000,
  'deadline-s': 300,
  out: '',
  progress: '',
  'no-recreate': false,
  'pause-after': 0,
  'resume-file': '',
  'resume-start': -1,
}, USAGE);
if (o['pause-after'] > 0 && !o['resume-file']) u.die('--pause-after needs --resume-file');
if (!o.topic || !o.out || o.count <= 0) u.die(USAGE);
const serverList = u.hostPorts(o.url);
const topic = u.fullTopic(o.topic);
const WHO = `produce ${o.tag}`;

const t0 = Date.now();
const deadline = t0 + o['deadline-s'] * 1000;
const acked = [];
const failed = [];
const failedSends = []; // [counter, sentAt, failedAt]
const errors = {};
let sent = 0;
let notSent = 0;
let producers = 0;
let inflight = 0;
let slotWaiters = [];
let paused = 0;
let firstError = null;
let resumedAt = null; // counts when resumed after --pause-after
let firstErrorResumed = null;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;
let backoffMs = BACKOFF_MIN_MS;

function noteError(why) {
  if (firstError === null) firstError = String(why);
  if (resumedAt && firstErrorResumed === null) firstErrorResumed = String(why);
  const k = String(why).replace(/\s+/g, ' ').slice(0, 160);
  errors[k] = (errors[k] || 0) + 1;
}

function progress() {
  if (!o.progress) return;
  u.writeAtomic(o.progress,
    `sent=${sent} acked=${acked.length} failed=${failed.length} producers=${producers} paused=${paused}\n`);
}

function releaseSlot() {
  inflight--;
  const w = slotWaiters;
  slotWaiters = [];
  for (const r of w) r();
}

// A producer generation: one pulsar-flex Producer and its sockets.
function abandon(gen, why) {
  if (gen.dead) return;
  gen.dead = true;
  u.log(WHO, `abandoning producer #${gen.n}: ${why} (${gen.outstanding.size} sends outstanding)`);
  const p = gen.p;
  p._created = false; // no reconnect
  p._connected = false;
  p._pendingMessageQueue.length = 0; // no resend
  for (const s of gen.sockets) s.destroy();
  for (const settle of [...gen.outstanding.values()]) settle(false, `abandoned: ${why}`);
}

async function newProducer() {
  for (let attempt = 1; Date.now() < deadline; attempt++) {
    const n = ++producers;
    u.takeSockets();
    const p = new u.Producer({
      topic,
      discoveryServers: u.servers(serverList, attempt - 1),
      producerAccessMode: u.Producer.ACCESS_MODES.SHARED,
      logLevel: u.logLevel.WARN,
      logCreator: u.logCreator(`producer#${n}`),
    });
    // Our own send timeout decides; pulsar-flex's must not fire first (it would queue a resend).
    p._sendResponseMediator._timeout = o['send-timeout-ms'] + 60000;
    const gen = { n, p, sockets: [], outstanding: new Map(), dead: false };
    try {
      await u.withTimeout(p.create(), Math.min(o['create-timeout-ms'], Math.max(1, deadline - Date.now())),
        `producer.create() on ${topic}`);
      gen.sockets = u.takeSockets();
      const cnx = p._client.getCnx();
      cnx.addCleanUpListener(() => abandon(gen, 'connection closed'));
      // The broker closing the producer (CLOSE_PRODUCER): pulsar-flex then ends the socket.
      p._client.getResponseEvents().on('closeProducer', () => abandon(gen, 'CLOSE_PRODUCER from broker'));
      u.log(WHO, `producer #${n} created (attempt ${attempt})`);
      return gen;
    } catch (e) {
      gen.sockets = u.takeSockets();
      noteError(`create: ${e.message}`);
      u.log(WHO, `producer #${n} create failed: ${e.message}`);
      abandon(gen, 'create failed');
      await u.sleep(1000);
    }
  }
  return null;
}

function sendOne(gen, c) {
  inflight++;
  sent++;
  let done = false;
  let timer = null;
  const sentAt = Date.now();
  const settle = (ok, why) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    gen.outstanding.delete(c);
    if (ok) {
      acked.push(c);
      backoffMs = BACKOFF_MIN_MS;
    } else {
      failed.push(c);
      failedSends.push([c, sentAt, Date.now()]);
      noteError(why);
      abandon(gen, `send of ${c} failed: ${why}`);
    }
    releaseSlot();
  };
  gen.outstanding.set(c, settle);
  timer = setTimeout(() => settle(false, `no receipt within ${o['send-timeout-ms']} ms`),
    o['send-timeout-ms']);
  let promise;
  try {
    promise = gen.p.sendMessage({ payload: u.payloadFor(o.tag, c, o.size), properties: { c: String(c) } });
  } catch (e) {
    promise = Promise.reject(e);
  }
  promise.then(
    () => settle(true),
    (e) => settle(false, `${e.name || 'Error'}: ${e.message || JSON.stringify(e)}`)
  );
}

async function main() {
  const ticker = setInterval(progress, 100);
  let gen = null;
  const K = o['pause-after'] > 0 ? Math.min(o['pause-after'], o.count) : o.count;
  const resumeStart = o['resume-start'] >= 0 ? o['resume-start'] : o.start + K;
  const plan = (i) => (i < K ? o.start + i : resumeStart + (i - K));
  let rateBase = t0;
  for (let i = 0; i < o.count; i++) {
    const c = plan(i);
    if (i === K && K < o.count) {
      while (inflight > 0) await new Promise((r) => slotWaiters.push(r));
      paused = 1;
      progress();
      u.log(WHO, `paused after ${K} counters; waiting for ${o['resume-file']}`);
      while (!require('node:fs').existsSync(o['resume-file']) && Date.now() < deadline) await u.sleep(50);
      paused = 0;
      resumedAt = { sent, acked: acked.length, failed: failed.length, notSent };
      rateBase = Date.now() - (i * 1000) / (o.rate || 1);
      u.log(WHO, `resuming at counter ${c}`);
    }
    if (Date.now() >= deadline) {
      notSent += o.count - i;
      noteError('deadline reached before sending');
      break;
    }
    if (o.rate > 0) {
      const due = rateBase + (i * 1000) / o.rate;
      if (Date.now() < due) await u.sleep(due - Date.now());
    }
    while (inflight >= o.window) await new Promise((r) => slotWaiters.push(r));
    if (!gen || gen.dead) {
      if (gen && o['no-recreate']) {
        notSent += o.count - i;
        break;
      }
      if (gen) {
        await u.sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
      }
      gen = await newProducer();
      if (!gen) {
        notSent += o.count - i;
        noteError('no producer could be created before the deadline');
        break;
      }
    }
    sendOne(gen, c);
  }
  // Every outstanding send settles by its own timer at the latest.
  while (inflight > 0) await new Promise((r) => slotWaiters.push(r));
  clearInterval(ticker);
  progress();
  acked.sort((a, b) => a - b);
  failed.sort((a, b) => a - b);
  failedSends.sort((a, b) => a[0] - b[0]);
  const summary = {
    topic,
    start: o.start,
    count: o.count,
    sent,
    ackedCount: acked.length,
    failedCount: failed.length,
    notSent,
    errors,
    firstError,
    producers,
    elapsedMs: Date.now() - t0,
    acked,
    failed,
    failedSends,
  };
  if (resumedAt) {
    summary.resumed = {
      sent: sent - resumedAt.sent,
      acked: acked.length - resumedAt.acked,
      failed: failed.length - resumedAt.failed,
      notSent: notSent - resumedAt.notSent,
      firstError: firstErrorResumed,
    };
  }
  u.writeAtomic(o.out, JSON.stringify(summary) + '\n');
  const { acked: _a, failed: _f, failedSends: _fs, ...short } = summary;
  console.log(JSON.stringify(short));
  // Close the last producer politely (bounded); then exit whatever pulsar-flex still holds.
  if (gen && !gen.dead) {
    try {
      gen.p._created = false;
      await u.withTimeout(gen.p.close(), 5000, 'producer.close()');
    } catch (e) {
      u.log(WHO, `close: ${e.message}`);
    }
    abandon(gen, 'done');
  }
  process.exit(0);
}

main().catch((e) => {
  u.log(WHO, `internal error: ${e.stack || e}`);
  process.exit(1);
});
