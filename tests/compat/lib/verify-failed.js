'use strict';
// verify-failed.js - bounds the failed sends of the crash/durability integration tests.
//
//   node tests/compat/lib/verify-failed.js --expect F1[,F2..] --out FILE
//        [--faults NAME@START-END[:MAX][,NAME@START-END[:MAX]..]] [--heal-ms 10000] [--max -1]
//
// --expect: verify-produce.js summaries. Each failed send (one that got no receipt: an error,
// the client's send timeout, or its producer closed) is listed there with the time it went
// out and the time it was given up. A send may fail only because of a fault the test caused:
// it must have been given up while one of the --faults was on: inside START-END (epoch ms,
// when the test started and ended the fault: the SIGKILL, SIGSTOP to SIGCONT, ...) extended
// by --heal-ms after END (the cluster needs a moment to notice that a process is back: a
// bookie registers again, a ledger is created). It counts for the latest such fault; at most
// MAX may count for a fault (no MAX: any number). A send given up while no fault was on is
// a defect ("unexplained"). --max N: at most N failed sends in all (-1: no count bound).
// No --faults: no send may fail at all.
// --out FILE gets one JSON object: { failed, notSent, max, byFault: {NAME: n}, faultMax:
// {NAME: MAX}, unexplained,
// unexplainedFirst: [[counter, sentAt, failedAt]], errors: {reason: n} (merged) }.
// Prints it as one line. Exit 0 = every failed send explained and within --max, 1 = not,
// 2 = bad usage.

const fs = require('node:fs');

function die(msg) {
  process.stderr.write(`verify-failed.js: ${msg}\n`);
  process.exit(2);
}

const o = { expect: '', out: '', faults: '', 'heal-ms': 10000, max: -1 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const m = /^--([a-z-]+)$/.exec(argv[i]);
  if (!m || !(m[1] in o) || i + 1 >= argv.length) die(`bad argument ${argv[i]}`);
  const v = argv[++i];
  if (typeof o[m[1]] === 'number') {
    if (!/^-?\d+$/.test(v)) die(`--${m[1]}: not a number: ${v}`);
    o[m[1]] = Number(v);
  } else {
    o[m[1]] = v;
  }
}
if (!o.expect || !o.out) die('usage: verify-failed.js --expect F1[,F2] --out FILE [--faults NAME@S-E,..]');

const faults = [];
for (const f of o.faults.split(',').filter(Boolean)) {
  const m = /^([^@]+)@(\d+)-(\d+)(?::(\d+))?$/.exec(f);
  if (!m) die(`--faults: NAME@START-END[:MAX] (epoch ms), got ${f}`);
  faults.push({ name: m[1], start: Number(m[2]), end: Number(m[3]) + o['heal-ms'],
    max: m[4] === undefined ? -1 : Number(m[4]) });
}
faults.sort((a, b) => b.start - a.start); // the latest fault first

const sends = [];
const errors = {};
let failedCount = 0;
let notSent = 0;
for (const p of o.expect.split(',').filter(Boolean)) {
  const j = JSON.parse(fs.readFileSync(p, 'utf8'));
  const failed = j.failed || [];
  const timed = j.failedSends || [];
  if (timed.length !== failed.length) die(`${p}: ${failed.length} failed sends but ${timed.length} with times`);
  failedCount += failed.length;
  notSent += j.notSent || 0;
  for (const s of timed) sends.push(s);
  for (const [k, n] of Object.entries(j.errors || {})) errors[k] = (errors[k] || 0) + n;
}

const byFault = {};
const faultMax = {};
for (const f of faults) {
  byFault[f.name] = 0;
  faultMax[f.name] = f.max;
}
const unexplained = [];
for (const [c, sentAt, failedAt] of sends) {
  const f = faults.find((w) => failedAt >= w.start && failedAt <= w.end);
  if (f) byFault[f.name]++;
  else unexplained.push([c, sentAt, failedAt]);
}
unexplained.sort((a, b) => a[1] - b[1]);
const summary = {
  failed: failedCount, notSent, max: o.max, healMs: o['heal-ms'], byFault, faultMax,
  unexplained: unexplained.length, unexplainedFirst: unexplained.slice(0, 10), errors,
};
const problems = [];
if (unexplained.length) {
  problems.push(`${unexplained.length} send(s) failed while no fault was on (first: ` +
    `${unexplained.slice(0, 5).map(([c, s, e]) => `#${c} sent ${new Date(s).toISOString()} failed ` +
      `${new Date(e).toISOString()}`).join('; ')})`);
}
for (const f of faults) {
  if (f.max >= 0 && byFault[f.name] > f.max) {
    problems.push(`${byFault[f.name]} sends failed during ${f.name}, more than its bound ${f.max}`);
  }
}
if (o.max >= 0 && failedCount > o.max) problems.push(`${failedCount} failed sends, more than the bound ${o.max}`);
summary.problems = problems;
fs.writeFileSync(o.out, JSON.stringify(summary) + '\n');
console.log(JSON.stringify(summary));
process.exit(problems.length ? 1 : 0);
