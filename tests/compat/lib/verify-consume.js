'use strict';
// verify-consume.js - a pulsar-flex consumer for the crash/durability integration tests.
//
//   node tests/compat/lib/verify-consume.js --url pulsar://127.0.0.1:PORT[,H:P..] --topic T --sub S
//        --out FILE MODE [options]
//
// Modes:
//   --subscribe-only      subscribe (creates the durable subscription: pulsar-flex subscribes
//                         at Latest, so do this before producing) and close the consumer.
//   --ack-first K         receive; ack the first K messages received one by one, each after
//                         the previous ACK_RESPONSE (with --ack-holes H: except the even
//                         counters among the 2H messages after the first K/2, so the cursor
//                         holds H individually acked ranges past its mark-delete position;
//                         keep H under managedLedgerMaxUnackedRangesToPersist, 1000, or the
//                         broker rightly persists the mark-delete position only); once K are
//                         processed write
//                         --out (acked counters, acks that failed = uncertain, the first counter
//                         left unacked, time of the last ACK_RESPONSE) and stay connected
//                         (acking nothing more) until --hold-s passes or the process is killed:
//                         the test crashes the broker meanwhile.
//   (default) verify      --expect F1[,F2..]: the verify-produce.js summaries of EVERY producer
//                         of the topic; every counter they list as acked must be received,
//                         except those in --exclude F (an earlier --ack-first summary: acked by
//                         a consumer before a crash; its uncertain acks may or may not come
//                         again).
//                         Receives until all are in or --deadline-s, then --quiet-ms more (to
//                         see late duplicates), acks everything, closes, and checks:
//                           missing   expected counters not received            must be 0
//                           dups      counters received more than once          must be 0
//                           disorder  received counters not strictly increasing must be 0
//                           redelivered  received counters from --exclude  <= --max-redelivered
//                           phantom   received counters no summary lists as sent (neither
//                                     acked nor failed): nobody sent them       must be 0
//                           forbidden received counters in --forbid A-B        must be 0
//                           extra     received counters sent without a receipt (failed sends
//                                     that were stored anyway)            <= --max-extra
//                         (--max-extra -1, the default: any number, counted and reported; a
//                         failed send is one the producer gave up on, so it may or may not be
//                         stored).
// Options: --type Exclusive|Shared|Failover (Exclusive), --receive-queue 5000,
//          --deadline-s 120, --idle-s 60 (verify: give up after that long without any
//          message), --quiet-ms 2000, --hold-s 120, --tag m (payload tag),
//          --max-redelivered 0, --max-extra -1, --forbid A-B (counters A..B, e.g. the sends
//          of a writer that was fenced, must never be read).
// --out FILE gets one JSON object with the counts (and, for --ack-first, the acked list).
// Prints one summary line. Exit 0 = checks passed (or mode done), 1 = a check failed or the
// consumer could not subscribe, 2 = bad usage.

const fs = require('node:fs');
const u = require('./verify-util');

const USAGE = 'usage: verify-consume.js --url pulsar://H:P --topic T --sub S --out FILE ' +
  '[--subscribe-only | --ack-first K | --expect F[,F]] [options]';
const o = u.consumerArgs(process.argv.slice(2), {
  type: 'Exclusive',
  'subscribe-only': false,
  'ack-first': 0,
  'ack-holes': 0,
  expect: '',
  exclude: '',
  'max-redelivered': 0,
  'max-extra': -1,
  forbid: '',
  'receive-queue': 5000,
  'deadline-s': 120,
  'quiet-ms': 2000,
  'hold-s': 120,
  'idle-s': 60,
  tag: 'm',
}, USAGE);
const mode = o['subscribe-only'] ? 'subscribe-only' : o['ack-first'] > 0 ? 'ack-first' : 'verify';
if (mode === 'verify' && !o.expect) u.die('verify mode needs --expect');
const subType = { Exclusive: u.Consumer.SUB_TYPES.EXCLUSIVE, Shared: u.Consumer.SUB_TYPES.SHARED,
  Failover: u.Consumer.SUB_TYPES.FAILOVER }[o.type];
if (subType === undefined) u.die(`--type ${o.type}: Exclusive, Shared or Failover`);
let forbidLo = null;
let forbidHi = null;
if (o.forbid) {
  const fm = /^(\d+)-(\d+)$/.exec(o.forbid);
  if (!fm) u.die(`--forbid A-B, got ${o.forbid}`);
  forbidLo = Number(fm[1]);
  forbidHi = Number(fm[2]);
}
const topic = u.fullTopic(o.topic);
const WHO = `consume ${o.sub}`;
const t0 = Date.now();
const deadline = t0 + o['deadline-s'] * 1000;

let consumer = null;
let sockets = [];

async function subscribe() {
  ({ consumer, sockets } = await u.subscribeConsumer(o.url, topic, o.sub, `consumer ${o.sub}`, {
    subType,
    consumerName: `verify-${process.pid}`,
    receiveQueueSize: o['receive-queue'],
  }));
  consumer._client.getCnx().addCleanUpListener(() => {
    if (!closing) u.log(WHO, 'connection closed by the broker');
  });
}

let closing = false;
async function closeConsumer() {
  closing = true;
  if (!consumer) return;
  try {
    if (consumer._isSubscribed) await u.withTimeout(consumer.unsubscribe(), 10000, 'CLOSE_CONSUMER');
  } catch (e) {
    u.log(WHO, `close: ${e.message}`);
  }
  consumer._cleanState();
  consumer._consumerState = u.Consumer.CONSUMER_STATES.UNSUBSCRIBED;
  // Give the broker a moment to close its side after our FIN, then drop everything.
  const open = sockets.filter((s) => !s.destroyed);
  await Promise.race([
    Promise.all(open.map((s) => new Promise((r) => s.once('close', r)))),
    u.sleep(3000),
  ]);
  for (const s of sockets) s.destroy();
}

function finish(summary, ok) {
  u.writeAtomic(o.out, JSON.stringify(summary) + '\n');
  const { ackedByConsumer: _x, ...short } = summary;
  console.log(JSON.stringify(short));
  process.exit(ok ? 0 : 1);
}

// One record per MESSAGE handed to onMessage.
const received = []; // counters, in delivery order (null: not one of ours)
const ledgers = {}; // ledger id -> messages received from it
let foreign = 0;

function record(m) {
  const c = u.counterOf(Buffer.from(m.message), m.properties, o.tag);
  const id = m.command.messageId;
  ledgers[id.ledgerid] = (ledgers[id.ledgerid] || 0) + 1;
  if (c === null) foreign++;
  else received.push(c);
  return c;
}

async function modeSubscribeOnly() {
  await subscribe();
  await closeConsumer();
  finish({ mode, topic, sub: o.sub, subscribed: true }, true);
}

async function modeAckFirst() {
  const K = o['ack-first'];
  const holes = o['ack-holes'];
  const ackedByConsumer = [];
  const leftUnacked = []; // of the first K, not acked on purpose (--ack-holes)
  const ackUncertain = []; // acks that failed or timed out: the broker may have them or not
  let processed = 0;
  let lastAckAt = 0;
  let written = false;
  await subscribe();
  const summary = () => {
    const maxAcked = ackedByConsumer.length ? Math.max(...ackedByConsumer) : -1;
    return {
      mode, topic, sub: o.sub, holes, received: received.length, processed,
      ackedCount: ackedByConsumer.length, ackErrors: ackUncertain.length, lastAckAt,
      first: received.length ? received[0] : null,
      firstUnacked: Math.min(maxAcked + 1, ...leftUnacked, ...ackUncertain),
      leftUnacked: leftUnacked.length, ledgers, ackedByConsumer, ackUncertain,
    };
  };
  await u.withTimeout(consumer.run({
    autoAck: false,
    onMessage: async (m) => {
      const c = record(m);
      if (processed >= K) return;
      const idx = processed++;
      if (idx >= Math.floor(K / 2) && idx < Math.floor(K / 2) + 2 * holes && c % 2 === 0) {
        leftUnacked.push(c);
      } else {
        try {
          await u.withTimeout(m.ack(), 10000, 'ACK_RESPONSE');
          ackedByConsumer.push(c);
          lastAckAt = Date.now();
        } catch (e) {
          ackUncertain.push(c);
          u.log(WHO, `ack of ${c} failed: ${e.message}`);
        }
      }
      if (processed >= K && !written) {
        written = true;
        const s = summary();
        u.writeAtomic(o.out, JSON.stringify(s) + '\n');
        u.log(WHO, `processed ${K}: acked ${s.ackedCount}, left ${s.leftUnacked} unacked, ` +
          `${s.ackErrors} ack errors, first unacked ${s.firstUnacked}; holding`);
      }
    },
  }), 20000, 'consumer.run() (FLOW)');
  const holdUntil = Math.min(deadline, t0 + o['hold-s'] * 1000);
  while (Date.now() < holdUntil) await u.sleep(100);
  if (!written) {
    u.log(WHO, `only ${processed} of ${K} received before the deadline`);
    finish(summary(), false);
  }
  process.exit(0);
}

async function modeVerify() {
  const sums = u.readSummaries(o.expect);
  const expected = new Set(sums.acked);
  const sentFailed = new Set(sums.failed.filter((c) => !expected.has(c)));
  const excluded = new Set();
  const uncertain = new Set();
  if (o.exclude) {
    const j = JSON.parse(fs.readFileSync(o.exclude, 'utf8'));
    for (const c of j.ackedByConsumer || []) excluded.add(c);
    for (const c of j.ackUncertain || []) uncertain.add(c);
  }
  const needed = new Set([...expected].filter((c) => !excluded.has(c) && !uncertain.has(c)));
  const seen = new Map(); // counter -> times
  let neededLeft = needed.size;
  const ackPromises = [];
  let ackErrors = 0;
  await subscribe();
  const runStarted = Date.now();
  let firstAt = 0;
  let allAt = 0;
  await u.withTimeout(consumer.run({
    autoAck: false,
    onMessage: async (m) => {
      const c = record(m);
      if (!firstAt) firstAt = Date.now();
      if (c !== null) {
        const n = (seen.get(c) || 0) + 1;
        seen.set(c, n);
        if (n === 1 && needed.has(c)) {
          neededLeft--;
          if (neededLeft === 0) allAt = Date.now();
        }
      }
      ackPromises.push(u.withTimeout(m.ack(), 30000, 'ACK_RESPONSE').catch(() => ackErrors++));
    },
  }), 20000, 'consumer.run() (FLOW)');
  // Until everything needed is in, the deadline, or --idle-s without any message.
  let lastCount = 0;
  let lastChange = Date.now();
  while (neededLeft > 0 && Date.now() < deadline) {
    await u.sleep(50);
    if (received.length + foreign !== lastCount) {
      lastCount = received.length + foreign;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > o['idle-s'] * 1000) {
      u.log(WHO, `nothing received for ${o['idle-s']} s with ${neededLeft} messages missing: giving up`);
      break;
    }
  }
  // A quiet period: late duplicates would show here.
  let last = received.length;
  let quietSince = Date.now();
  while (Date.now() - quietSince < o['quiet-ms'] && Date.now() < deadline + o['quiet-ms']) {
    await u.sleep(50);
    if (received.length !== last) {
      last = received.length;
      quietSince = Date.now();
    }
  }
  await Promise.race([Promise.all(ackPromises), u.sleep(15000)]);
  const acksPending = ackPromises.length; // for the record
  await closeConsumer();

  const missing = [...needed].filter((c) => !seen.has(c)).sort((a, b) => a - b);
  const dups = [...seen.entries()].filter(([, n]) => n > 1).map(([c, n]) => `${c}x${n}`);
  let disorder = 0;
  const disorderAt = [];
  for (let i = 1; i < received.length; i++) {
    if (received[i] <= received[i - 1]) {
      disorder++;
      if (disorderAt.length < 10) disorderAt.push(`${received[i - 1]}->${received[i]}@${i}`);
    }
  }
  const redelivered = [...seen.keys()].filter((c) => excluded.has(c)).sort((a, b) => a - b);
  const unexpected = [...seen.keys()].filter((c) => !expected.has(c) && !excluded.has(c) && !uncertain.has(c));
  const extra = unexpected.filter((c) => sentFailed.has(c)).length;
  const phantom = unexpected.filter((c) => !sentFailed.has(c)).sort((a, b) => a - b);
  const forbidden = forbidLo === null ? []
    : [...seen.keys()].filter((c) => c >= forbidLo && c <= forbidHi).sort((a, b) => a - b);
  const summary = {
    mode, topic, sub: o.sub,
    expectedAcked: expected.size, excluded: excluded.size, needed: needed.size,
    received: received.length, unique: seen.size,
    missing: missing.length, missingFirst: missing.slice(0, 20),
    dups: dups.length, dupsFirst: dups.slice(0, 20),
    disorder, disorderFirst: disorderAt,
    redelivered: redelivered.length, redeliveredFirst: redelivered.slice(0, 20),
    maxRedelivered: o['max-redelivered'],
    sentWithoutReceipt: sentFailed.size, extra, maxExtra: o['max-extra'],
    phantom: phantom.length, phantomFirst: phantom.slice(0, 20),
    forbidden: forbidden.length, forbiddenFirst: forbidden.slice(0, 20),
    foreign,
    first: received.length ? received[0] : null,
    last: received.length ? received[received.length - 1] : null,
    ledgers, ackErrors, acks: acksPending,
    msToFirst: firstAt ? firstAt - runStarted : null,
    msToAll: allAt ? allAt - runStarted : null,
  };
  const problems = [];
  if (missing.length) problems.push(`${missing.length} acknowledged message(s) missing (first: ${missing.slice(0, 10).join(',')})`);
  if (dups.length) problems.push(`${dups.length} counter(s) received more than once (${dups.slice(0, 10).join(',')})`);
  if (disorder) problems.push(`${disorder} out-of-order deliveries (${disorderAt.join(' ')})`);
  if (redelivered.length > o['max-redelivered']) {
    problems.push(`${redelivered.length} messages acked before the crash delivered again ` +
      `(allowed ${o['max-redelivered']}; first: ${redelivered.slice(0, 10).join(',')})`);
  }
  if (phantom.length) {
    problems.push(`${phantom.length} message(s) received that no producer summary lists as sent ` +
      `(first: ${phantom.slice(0, 10).join(',')})`);
  }
  if (forbidden.length) {
    problems.push(`${forbidden.length} message(s) of the forbidden range ${o.forbid} received ` +
      `(first: ${forbidden.slice(0, 10).join(',')})`);
  }
  if (o['max-extra'] >= 0 && extra > o['max-extra']) {
    problems.push(`${extra} sends without a receipt were stored (allowed ${o['max-extra']})`);
  }
  if (foreign) problems.push(`${foreign} messages without a counter of tag ${o.tag}`);
  summary.problems = problems;
  finish(summary, problems.length === 0);
}

const modes = { 'subscribe-only': modeSubscribeOnly, 'ack-first': modeAckFirst, verify: modeVerify };
modes[mode]().catch((e) => {
  u.log(WHO, `failed: ${e.stack || e}`);
  try {
    u.writeAtomic(o.out, JSON.stringify({ mode, topic, sub: o.sub, error: String(e.message || e) }) + '\n');
  } catch {
    // nothing more to do
  }
  process.exit(1);
});
