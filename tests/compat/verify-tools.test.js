'use strict';
// The checkers of the fault tests (lib/verify-consume.js, lib/verify-failed.js) catch what
// they exist to catch. The fault tests only ever see them pass; here each one is fed a
// deliberately broken input and must fail, naming the defect:
//   - an acknowledged counter missing from the topic (a summary listing a counter that was
//     never sent)                                                    -> missing 1
//   - a counter received twice (the same counter produced again)     -> dups 1
//   - a counter received that no summary lists as sent (one removed from a summary)
//                                                                    -> phantom 1
//   - a counter in a --forbid range received                         -> forbidden 1
//   - a stored send without a receipt beyond --max-extra             -> extra over the bound
//   - a failed send outside every fault window, or more than --max   -> verify-failed exit 1
// and the intact input passes. Runs against MAGNETAR_URL like the other compat tests.
const { test } = require('node:test');
const assert = require('node:assert');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const f = require('./lib/flex');

const LIB = path.join(__dirname, 'lib');
const N = 100;

// Runs a lib script; resolves { code, out (its JSON file, parsed), stdout, stderr }.
function runLib(script, args, outFile, timeoutMs = 60000) {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(LIB, script), ...args],
      { cwd: __dirname, timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        let out = null;
        try {
          out = JSON.parse(fs.readFileSync(outFile, 'utf8'));
        } catch {
          // no summary: the caller's assertions report the exit code and stderr
        }
        resolve({ code: err ? (err.code ?? 'killed') : 0, out, stdout, stderr });
      });
  });
}

function writeJson(file, obj) {
  fs.writeFileSync(file, JSON.stringify(obj) + '\n');
  return file;
}

test('the fault tests\' checkers fail on a lost, duplicated, unsent, forbidden or unbounded message',
  { timeout: 180000 },
  async () => {
    const url = process.env.MAGNETAR_URL;
    assert.ok(url, 'MAGNETAR_URL is not set');
    f.brokerAddress(); // validates it
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'verify-tools-'));
    const topic = f.uniqueTopic('verify-tools');
    const subs = ['intact', 'lost', 'dup', 'phantom', 'forbid', 'extra'];
    const consume = (sub, extra) => runLib('verify-consume.js',
      ['--url', url, '--topic', topic, '--sub', sub, '--out', path.join(dir, `${sub}.json`),
        '--deadline-s', '30', '--idle-s', '3', '--quiet-ms', '500', ...extra],
      path.join(dir, `${sub}.json`));
    try {
      // pulsar-flex subscribes at Latest: every subscription first.
      for (const r of await Promise.all(subs.map((s) => consume(s, ['--subscribe-only'])))) {
        assert.strictEqual(r.code, 0, `subscribe: ${r.stderr}`);
      }
      const produced = path.join(dir, 'produced.json');
      const p = await runLib('verify-produce.js', ['--url', url, '--topic', topic, '--count', String(N),
        '--out', produced], produced);
      assert.strictEqual(p.code, 0, `produce: ${p.stderr}`);
      assert.strictEqual(p.out.ackedCount, N, `all ${N} acknowledged: ${p.stdout}`);
      const sum = p.out;
      const lostSum = writeJson(path.join(dir, 'lost-sum.json'), { ...sum, acked: [...sum.acked, 1000] });
      const phantomSum = writeJson(path.join(dir, 'phantom-sum.json'),
        { ...sum, acked: sum.acked.filter((c) => c !== 42) });
      const extraSum = writeJson(path.join(dir, 'extra-sum.json'),
        { ...sum, acked: sum.acked.filter((c) => c !== 43), failed: [43], failedSends: [[43, 1, 2]] });

      const [intact, lost, phantom, forbid, extraAllowed] = await Promise.all([
        consume('intact', ['--expect', produced]),
        consume('lost', ['--expect', lostSum]),
        consume('phantom', ['--expect', phantomSum]),
        consume('forbid', ['--expect', produced, '--forbid', '50-59']),
        consume('extra', ['--expect', extraSum, '--max-extra', '0']),
      ]);
      assert.strictEqual(intact.code, 0, `intact input: ${intact.stdout} ${intact.stderr}`);
      assert.deepStrictEqual([intact.out.missing, intact.out.dups, intact.out.phantom, intact.out.extra],
        [0, 0, 0, 0]);
      assert.strictEqual(lost.code, 1, `a lost acknowledged message passed: ${lost.stdout}`);
      assert.strictEqual(lost.out.missing, 1);
      assert.deepStrictEqual(lost.out.missingFirst, [1000]);
      assert.strictEqual(phantom.code, 1, `a message no summary lists as sent passed: ${phantom.stdout}`);
      assert.strictEqual(phantom.out.phantom, 1);
      assert.deepStrictEqual(phantom.out.phantomFirst, [42]);
      assert.strictEqual(forbid.code, 1, `messages of a forbidden range passed: ${forbid.stdout}`);
      assert.strictEqual(forbid.out.forbidden, 10);
      assert.strictEqual(extraAllowed.code, 1, `a stored failed send beyond --max-extra 0 passed: ${extraAllowed.stdout}`);
      assert.strictEqual(extraAllowed.out.extra, 1);

      // The same counter produced again: received twice.
      const again = path.join(dir, 'again.json');
      const p2 = await runLib('verify-produce.js', ['--url', url, '--topic', topic, '--start', '7',
        '--count', '1', '--out', again], again);
      assert.strictEqual(p2.code, 0, `produce again: ${p2.stderr}`);
      const dup = await consume('dup', ['--expect', `${produced},${again}`]);
      assert.strictEqual(dup.code, 1, `a duplicated message passed: ${dup.stdout}`);
      assert.strictEqual(dup.out.dups, 1);
      assert.deepStrictEqual(dup.out.dupsFirst, ['7x2']);

      // verify-failed: a failed send inside a fault window passes, outside it fails.
      const t0 = 1700000000000;
      const failedSum = writeJson(path.join(dir, 'failed-sum.json'), {
        acked: [0, 3], failed: [1, 2], notSent: 0, errors: { x: 2 },
        failedSends: [[1, t0 + 1000, t0 + 31000], [2, t0 + 90000, t0 + 90500]],
      });
      const vf = (name, args) => runLib('verify-failed.js',
        ['--expect', failedSum, '--out', path.join(dir, `${name}.json`), ...args], path.join(dir, `${name}.json`));
      const [both, one, none, bound, perFault] = await Promise.all([
        vf('both', ['--faults', `stop@${t0 + 20000}-${t0 + 30000},kill@${t0 + 85000}-${t0 + 85000}`, '--heal-ms', '6000']),
        vf('one', ['--faults', `stop@${t0 + 20000}-${t0 + 30000}`, '--heal-ms', '6000']),
        vf('none', []),
        vf('bound', ['--faults', `stop@${t0 + 20000}-${t0 + 30000},kill@${t0 + 85000}-${t0 + 85000}`,
          '--heal-ms', '6000', '--max', '1']),
        vf('per-fault', ['--faults', `stop@${t0 + 20000}-${t0 + 30000}:0,kill@${t0 + 85000}-${t0 + 85000}`,
          '--heal-ms', '6000']),
      ]);
      assert.strictEqual(both.code, 0, `failed sends inside fault windows: ${both.stdout}`);
      assert.deepStrictEqual(both.out.byFault, { stop: 1, kill: 1 });
      assert.strictEqual(one.code, 1, `a failed send outside every fault window passed: ${one.stdout}`);
      assert.strictEqual(one.out.unexplained, 1);
      assert.strictEqual(one.out.unexplainedFirst[0][0], 2);
      assert.strictEqual(none.code, 1, `failed sends without any fault passed: ${none.stdout}`);
      assert.strictEqual(none.out.unexplained, 2);
      assert.strictEqual(bound.code, 1, `more failed sends than --max passed: ${bound.stdout}`);
      assert.strictEqual(perFault.code, 1, `more failed sends than a fault's bound passed: ${perFault.stdout}`);
      assert.deepStrictEqual(perFault.out.byFault, { stop: 1, kill: 1 });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
