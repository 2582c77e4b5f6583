'use strict';
// Admin REST API and /metrics: every path pulsar-admin uses, with the status codes,
// JSON shapes and {"reason": ...} error bodies of docs/admin.md.
//
// In a cluster (tests/integration/admin-cluster.test.sh runs this file against each broker)
// a topic request may be redirected (307) to the broker that owns, or was just assigned,
// the topic's bundle; call() follows redirects as pulsar-admin does, and the answer after
// them is what is checked.
const { test } = require('node:test');
const assert = require('node:assert');
const http = require('node:http');
const f = require('./lib/flex');

const NS = '/admin/v2/namespaces';
const P = '/admin/v2/persistent/public/default';
const enc = (t) => encodeURIComponent(f.localName(t));
const MAX_REDIRECTS = 5;

// One HTTP request with the path sent exactly as given (no URL normalisation: "..", "%00"
// reach the broker), following 307s. Resolves {status, text, json, headers, hops}.
function call(method, path, body, { timeoutMs = 10000, base = process.env.MAGNETAR_ADMIN } = {}) {
  const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const once = (url, p) => new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({
      host: u.hostname, port: u.port, path: p, method, timeout: timeoutMs,
      headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode, text, json, headers: res.headers });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${p} got no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
  return (async () => {
    let url = base.replace(/\/+$/, '');
    let p = path;
    for (let hops = 0; ; hops++) {
      const r = await once(url, p);
      if (r.status !== 307 || hops === MAX_REDIRECTS) return { ...r, hops };
      assert.ok(r.headers.location, `${method} ${p}: 307 without Location`);
      const loc = new URL(r.headers.location);
      url = loc.origin;
      p = loc.pathname + loc.search;
    }
  })();
}

async function expect(method, path, status, body) {
  const r = await call(method, path, body);
  assert.strictEqual(r.status, status, `${method} ${path} -> HTTP ${r.status} ${r.text}`);
  if (status >= 400 && r.headers['content-type'] === 'application/json') {
    assert.ok(r.json && typeof r.json.reason === 'string', `${method} ${path}: no reason: ${r.text}`);
  }
  if (status === 204) assert.strictEqual(r.text, '', `${method} ${path}: 204 with a body`);
  return r;
}

async function expectReason(method, path, status, body) {
  const r = await expect(method, path, status, body);
  assert.ok(r.json && typeof r.json.reason === 'string' && r.json.reason.length > 0,
    `${method} ${path}: expected {"reason": ...}, got ${r.text}`);
  return r;
}

// Parse Prometheus text: { types: Map(name -> type), samples: [{name, labels, value}] }.
function parseMetrics(text) {
  const types = new Map();
  const typeCount = new Map();
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m) {
      types.set(m[1], m[2]);
      typeCount.set(m[1], (typeCount.get(m[1]) || 0) + 1);
      continue;
    }
    if (line.startsWith('#')) continue;
    const s = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(s, `unparsable metrics line: ${line}`);
    const labels = {};
    if (s[2]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(s[2]))) labels[l[1]] = l[2];
    }
    samples.push({ name: s[1], labels, value: Number(s[3]) });
  }
  return { types, typeCount, samples };
}

function find(metrics, name, labels) {
  return metrics.samples.filter((s) => s.name === name &&
    Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

test('clusters, brokers, health, readiness', { timeout: 30000 }, async () => {
  const c = await expect('GET', '/admin/v2/clusters', 200);
  assert.ok(Array.isArray(c.json) && c.json.length === 1, c.text);
  const cluster = c.json[0];
  const cd = await expect('GET', `/admin/v2/clusters/${cluster}`, 200);
  assert.ok(cd.json.serviceUrl && cd.json.brokerServiceUrl, cd.text);
  await expectReason('GET', '/admin/v2/clusters/no-such-cluster', 404);
  await expectReason('PUT', `/admin/v2/clusters/${cluster}`, 409, {});
  const b = await expect('GET', `/admin/v2/brokers/${cluster}`, 200);
  assert.ok(Array.isArray(b.json) && b.json.length >= 1, b.text);
  assert.ok(!b.json[0].includes('://'), `broker id has a scheme: ${b.text}`);
  const b2 = await expect('GET', '/admin/v2/brokers', 200);
  assert.deepStrictEqual(b2.json, b.json);
  const h = await expect('GET', '/admin/v2/brokers/health', 200);
  assert.strictEqual(h.text, 'ok');
  const ready = await expect('GET', '/admin/v2/brokers/ready', 200);
  assert.strictEqual(ready.text, 'ok');
  const leader = await expect('GET', '/admin/v2/brokers/leaderBroker', 200);
  assert.strictEqual(leader.json.brokerId, b.json[0]);
  await expect('GET', '/status.html', 200);
  await expect('GET', '/admin/v2/no-such-resource', 404);
});

test('tenants: create, list, get, update, delete and errors', { timeout: 30000 }, async () => {
  const cluster = (await call('GET', '/admin/v2/clusters')).json[0];
  const t = f.uniqueName('tenant');
  const info = { adminRoles: [], allowedClusters: [cluster] };
  await expectReason('PUT', `/admin/v2/tenants/${t}`, 412);                       // no body
  await expectReason('PUT', `/admin/v2/tenants/${t}`, 412, { allowedClusters: [] });
  await expectReason('PUT', `/admin/v2/tenants/${t}`, 412, { allowedClusters: ['nowhere'] });
  await expectReason('PUT', '/admin/v2/tenants/bad%20name', 412, info);
  await expect('PUT', `/admin/v2/tenants/${t}`, 204, info);
  const dup = await expectReason('PUT', `/admin/v2/tenants/${t}`, 409, info);
  assert.match(dup.json.reason, /already exist/);
  const list = await expect('GET', '/admin/v2/tenants', 200);
  assert.ok(list.json.includes(t) && list.json.includes('public'), list.text);
  assert.deepStrictEqual([...list.json].sort(), list.json, 'tenants are sorted');
  const got = await expect('GET', `/admin/v2/tenants/${t}`, 200);
  assert.deepStrictEqual(got.json, { adminRoles: [], allowedClusters: [cluster] });
  await expect('POST', `/admin/v2/tenants/${t}`, 204, info);
  await expectReason('POST', `/admin/v2/tenants/${t}-missing`, 404, info);
  await expectReason('GET', `/admin/v2/tenants/${t}-missing`, 404);
  // A tenant with a namespace cannot be deleted.
  await expect('PUT', `${NS}/${t}/ns1`, 204);
  await expectReason('DELETE', `/admin/v2/tenants/${t}`, 409);
  await expect('DELETE', `${NS}/${t}/ns1`, 204);
  await expect('DELETE', `/admin/v2/tenants/${t}`, 204);
  await expectReason('DELETE', `/admin/v2/tenants/${t}`, 404);
});

test('namespaces: create, list, policies, retention, bundles, delete and errors', { timeout: 30000 }, async () => {
  const cluster = (await call('GET', '/admin/v2/clusters')).json[0];
  const t = f.uniqueName('nst');
  await expect('PUT', `/admin/v2/tenants/${t}`, 204, { allowedClusters: [cluster] });
  const ns = `${t}/ns`;
  await expectReason('GET', `${NS}/${t}-missing`, 404);
  await expectReason('PUT', `${NS}/${t}-missing/ns`, 404);
  await expectReason('PUT', `${NS}/${t}/bad%20ns`, 412);
  await expect('PUT', `${NS}/${ns}`, 204, { bundles: { numBundles: 8 } });
  await expectReason('PUT', `${NS}/${ns}`, 409);
  const list = await expect('GET', `${NS}/${t}`, 200);
  assert.deepStrictEqual(list.json, [ns]);
  const pol = await expect('GET', `${NS}/${ns}`, 200);
  assert.deepStrictEqual(pol.json.replication_clusters, [cluster]);
  assert.strictEqual(pol.json.bundles.numBundles, 8);
  assert.strictEqual(pol.json.deleted, false);
  assert.strictEqual(pol.json.retention_policies, undefined, 'no retention set yet');
  const bundles = await expect('GET', `${NS}/${ns}/bundles`, 200);
  assert.strictEqual(bundles.json.numBundles, 8);
  assert.strictEqual(bundles.json.boundaries.length, 9);
  assert.strictEqual(bundles.json.boundaries[0], '0x00000000');
  assert.strictEqual(bundles.json.boundaries[1], '0x20000000');
  assert.strictEqual(bundles.json.boundaries[8], '0xffffffff');
  await expectReason('GET', `${NS}/${t}/missing`, 404);
  await expectReason('GET', `${NS}/${t}/missing/bundles`, 404);

  // Retention: 204 empty while never set; 400 for bad values; stored in the policies.
  await expect('GET', `${NS}/${ns}/retention`, 204);
  await expectReason('POST', `${NS}/${ns}/retention`, 400, { retentionTimeInMinutes: -2, retentionSizeInMB: 10 });
  await expectReason('POST', `${NS}/${ns}/retention`, 400, { retentionTimeInMinutes: 0, retentionSizeInMB: 10 });
  await expectReason('POST', `${NS}/${ns}/retention`, 400, 'not json');
  await expectReason('POST', `${NS}/${t}/missing/retention`, 404, { retentionTimeInMinutes: 1, retentionSizeInMB: 1 });
  const ret = { retentionTimeInMinutes: 60, retentionSizeInMB: 100 };
  await expect('POST', `${NS}/${ns}/retention`, 204, ret);
  assert.deepStrictEqual((await expect('GET', `${NS}/${ns}/retention`, 200)).json, ret);
  assert.deepStrictEqual((await expect('GET', `${NS}/${ns}`, 200)).json.retention_policies, ret);
  await expect('POST', `${NS}/${ns}/retention`, 204, { retentionTimeInMinutes: -1, retentionSizeInMB: -1 });
  assert.deepStrictEqual((await expect('GET', `${NS}/${ns}/retention`, 200)).json,
    { retentionTimeInMinutes: -1, retentionSizeInMB: -1 });
  await expect('DELETE', `${NS}/${ns}/retention`, 204);
  await expect('GET', `${NS}/${ns}/retention`, 204);

  // Message TTL: 204 while never set; a bare integer; 412 below 0; in the policies.
  await expect('GET', `${NS}/${ns}/messageTTL`, 204);
  await expect('POST', `${NS}/${ns}/messageTTL`, 204, 3600);
  assert.strictEqual((await expect('GET', `${NS}/${ns}/messageTTL`, 200)).json, 3600);
  assert.strictEqual((await expect('GET', `${NS}/${ns}`, 200)).json.message_ttl_in_seconds, 3600);
  await expectReason('POST', `${NS}/${ns}/messageTTL`, 412, -5);
  await expectReason('POST', `${NS}/${t}/missing/messageTTL`, 404, 5);
  await expect('DELETE', `${NS}/${ns}/messageTTL`, 204);
  await expect('GET', `${NS}/${ns}/messageTTL`, 204);

  // Backlog quotas: the map by type; POST/DELETE one type (destination_storage by default).
  assert.deepStrictEqual((await expect('GET', `${NS}/${ns}/backlogQuotaMap`, 200)).json, {});
  await expect('POST', `${NS}/${ns}/backlogQuota`, 204,
    { limitSize: 10485760, limitTime: -1, policy: 'consumer_backlog_eviction' });
  await expect('POST', `${NS}/${ns}/backlogQuota?backlogQuotaType=message_age`, 204,
    { limitSize: -1, limitTime: 600, policy: 'producer_exception' });
  const qm = (await expect('GET', `${NS}/${ns}/backlogQuotaMap`, 200)).json;
  assert.strictEqual(qm.destination_storage.limitSize, 10485760);
  assert.strictEqual(qm.destination_storage.policy, 'consumer_backlog_eviction');
  assert.strictEqual(qm.message_age.limitTime, 600);
  assert.deepStrictEqual((await expect('GET', `${NS}/${ns}`, 200)).json.backlog_quota_map, qm);
  await expectReason('POST', `${NS}/${ns}/backlogQuota`, 400, { limitSize: 1, policy: 'nope' });
  await expectReason('POST', `${NS}/${ns}/retention`, 412, { retentionTimeInMinutes: 5, retentionSizeInMB: 5 });
  await expect('DELETE', `${NS}/${ns}/backlogQuota?backlogQuotaType=message_age`, 204);
  await expect('DELETE', `${NS}/${ns}/backlogQuota`, 204);
  assert.deepStrictEqual((await expect('GET', `${NS}/${ns}/backlogQuotaMap`, 200)).json, {});

  // Unload (all bundles, one bundle, a bad bundle), topics list.
  await expect('PUT', `${NS}/${ns}/unload`, 204);
  await expect('PUT', `${NS}/${ns}/0x00000000_0x20000000/unload`, 204);
  await expectReason('PUT', `${NS}/${ns}/0x00000000_0x00000001/unload`, 412);
  await expect('PUT', `/admin/v2/persistent/${ns}/x1`, 204);
  const topics = await expect('GET', `${NS}/${ns}/topics`, 200);
  assert.deepStrictEqual(topics.json, [`persistent://${ns}/x1`]);

  // A namespace with topics cannot be deleted; force is refused (405).
  await expectReason('DELETE', `${NS}/${ns}`, 409);
  await expectReason('DELETE', `${NS}/${ns}?force=true`, 405);
  await expect('DELETE', `/admin/v2/persistent/${ns}/x1`, 204);
  await expect('DELETE', `${NS}/${ns}`, 204);
  await expectReason('DELETE', `${NS}/${ns}`, 404);
  await expect('DELETE', `/admin/v2/tenants/${t}`, 204);
});

test('topics: create, list, delete, partitioned create/update/metadata/delete and errors', { timeout: 30000 }, async () => {
  const t = f.uniqueTopic('adm');
  await expectReason('GET', `${P}/${enc(t)}/partitions`, 404);
  assert.deepStrictEqual((await expect('GET', `${P}/${enc(t)}/partitions?checkAllowAutoCreation=true`, 200)).json,
    { partitions: 0 });
  await expect('PUT', `${P}/${enc(t)}`, 204);
  const dup = await expectReason('PUT', `${P}/${enc(t)}`, 409);
  assert.strictEqual(dup.json.reason, 'This topic already exists');
  assert.ok((await expect('GET', P, 200)).json.includes(t));
  assert.deepStrictEqual((await expect('GET', `${P}/${enc(t)}/partitions`, 200)).json, { partitions: 0 });
  await expectReason('PUT', `${P}/${enc(t)}/partitions`, 409, '2');
  await expect('DELETE', `${P}/${enc(t)}`, 204);
  const gone = await expectReason('DELETE', `${P}/${enc(t)}`, 404);
  assert.strictEqual(gone.json.reason, `Topic ${t} not found`);
  assert.ok(!(await expect('GET', P, 200)).json.includes(t));
  await expectReason('GET', '/admin/v2/persistent/public/missing-ns', 404);
  await expectReason('PUT', `/admin/v2/persistent/public/missing-ns/x`, 404);

  // Partitioned.
  const p = f.uniqueTopic('admp');
  await expectReason('PUT', `${P}/${enc(p)}/partitions`, 406, '0');
  await expectReason('PUT', `${P}/${enc(p)}/partitions`, 406, '-3');
  await expectReason('PUT', `${P}/${enc(p)}/partitions`, 400, 'abc');
  await expectReason('PUT', `${P}/${enc(p)}-partition-1/partitions`, 412, '2');
  await expect('PUT', `${P}/${enc(p)}/partitions`, 204, '2');
  await expectReason('PUT', `${P}/${enc(p)}/partitions`, 409, '2');
  await expectReason('PUT', `${P}/${enc(p)}`, 409);
  assert.deepStrictEqual((await expect('GET', `${P}/${enc(p)}/partitions`, 200)).json, { partitions: 2 });
  const parted = await expect('GET', `${P}/partitioned`, 200);
  assert.ok(parted.json.includes(p), parted.text);
  const all = (await expect('GET', P, 200)).json;
  assert.ok(all.includes(`${p}-partition-0`) && all.includes(`${p}-partition-1`) && !all.includes(p));
  await expect('PUT', `${P}/${enc(p)}/subscription/keep`, 204);
  await expectReason('POST', `${P}/${enc(p)}/partitions`, 422, '1');
  await expect('POST', `${P}/${enc(p)}/partitions`, 204, '2');
  await expect('POST', `${P}/${enc(p)}/partitions`, 204, '3');
  assert.deepStrictEqual((await expect('GET', `${P}/${enc(p)}/partitions`, 200)).json, { partitions: 3 });
  // The new partition got the existing subscription.
  const subs = await expect('GET', `${P}/${enc(p)}-partition-2/subscriptions`, 200);
  assert.deepStrictEqual(subs.json, ['keep']);
  await expectReason('POST', `${P}/${enc(t)}/partitions`, 409, '3');
  await expectReason('DELETE', `${P}/${enc(p)}`, 409);
  const ps = await expect('GET', `${P}/${enc(p)}/partitioned-stats`, 200);
  assert.deepStrictEqual(ps.json.metadata, { partitions: 3 });
  assert.strictEqual(Object.keys(ps.json.partitions).length, 3);
  assert.ok(ps.json.subscriptions.keep, ps.text);
  const pis = await expect('GET', `${P}/${enc(p)}/partitioned-internalStats`, 200);
  assert.deepStrictEqual(pis.json.metadata, { partitions: 3 });
  await expectReason('GET', `${P}/${enc(t)}/partitioned-stats`, 404);
  await expect('DELETE', `${P}/${enc(p)}/partitions`, 204);
  await expectReason('DELETE', `${P}/${enc(p)}/partitions`, 404);
  assert.ok(!(await expect('GET', `${P}/partitioned`, 200)).json.includes(p));
});

test('stats, internal stats, subscriptions (create, skip, clear, reset, delete) with traffic', { timeout: 90000 },
  () => f.withScope('admin-stats', async (s) => {
    const t = f.uniqueTopic('adms');
    await expectReason('GET', `${P}/${enc(t)}/stats`, 404);
    await expectReason('GET', `${P}/${enc(t)}/internalStats`, 404);
    await expectReason('GET', `${P}/${enc(t)}/subscriptions`, 404);
    await expectReason('POST', `${P}/${enc(t)}/subscription/x/skip_all`, 404);
    const c = await s.consumer({ topic: t, subscription: 'live' });
    const got = await f.collect(c);
    const prod = await s.producer(t);
    await expect('PUT', `${P}/${enc(t)}/subscription/idle`, 204);
    await expectReason('PUT', `${P}/${enc(t)}/subscription/idle`, 409);
    await expect('PUT', `${P}/${enc(t)}/subscription/from-start`, 204, JSON.stringify('earliest'));
    const msgs = f.makeMessages(10, 'st');
    await f.sendAll(prod, msgs);
    await s.waitFor(() => got.length >= 10, 20000, 'consume 10');

    const st = (await expect('GET', `${P}/${enc(t)}/stats`, 200)).json;
    for (const k of ['msgRateIn', 'msgRateOut', 'msgThroughputIn', 'msgThroughputOut', 'averageMsgSize']) {
      assert.strictEqual(typeof st[k], 'number', `${k} in ${JSON.stringify(st)}`);
    }
    assert.strictEqual(st.msgInCounter, 10);
    assert.ok(st.bytesInCounter > 0 && st.storageSize > 0, JSON.stringify(st));
    assert.strictEqual(st.msgOutCounter, 10);
    assert.strictEqual(st.publishers.length, 1);
    assert.strictEqual(typeof st.publishers[0].producerName, 'string');
    assert.strictEqual(st.subscriptions.live.type, 'Exclusive');
    assert.strictEqual(st.subscriptions.live.consumers.length, 1);
    assert.strictEqual(st.subscriptions.live.msgBacklog, 0);
    assert.strictEqual(st.subscriptions.idle.type, 'None');
    assert.strictEqual(st.subscriptions.idle.msgBacklog, 10);
    assert.strictEqual(st.subscriptions.idle.isDurable, true);
    assert.strictEqual(st.subscriptions.idle.durable, true);
    assert.strictEqual(st.subscriptions['from-start'].msgBacklog, 10);
    assert.strictEqual(typeof st.ownerBroker, 'string');

    const subs = (await expect('GET', `${P}/${enc(t)}/subscriptions`, 200)).json;
    assert.deepStrictEqual([...subs].sort(), ['from-start', 'idle', 'live']);

    const is = (await expect('GET', `${P}/${enc(t)}/internalStats`, 200)).json;
    assert.strictEqual(is.numberOfEntries, 10);
    assert.ok(is.totalSize > 0);
    assert.strictEqual(is.state, 'LedgerOpened');
    assert.match(is.lastConfirmedEntry, /^\d+:9$/);
    assert.ok(Array.isArray(is.ledgers) && is.ledgers.length >= 1);
    assert.strictEqual(typeof is.cursors.idle.markDeletePosition, 'string');
    assert.strictEqual(is.cursors.idle.individuallyDeletedMessages, '[]');

    // skip 3 -> 7; clear -> 0; reset to the start (timestamp 0) -> 10; reset by id.
    const backlog = async (sub) => (await call('GET', `${P}/${enc(t)}/stats`)).json.subscriptions[sub].msgBacklog;
    await expect('POST', `${P}/${enc(t)}/subscription/idle/skip/3`, 204);
    assert.strictEqual(await backlog('idle'), 7);
    await expectReason('POST', `${P}/${enc(t)}/subscription/idle/skip/abc`, 400);
    await expectReason('POST', `${P}/${enc(t)}/subscription/nope/skip/1`, 404);
    await expect('POST', `${P}/${enc(t)}/subscription/idle/skip_all`, 204);
    assert.strictEqual(await backlog('idle'), 0);
    await expect('POST', `${P}/${enc(t)}/subscription/idle/resetcursor/0`, 204);
    assert.strictEqual(await backlog('idle'), 10);
    await expect('POST', `${P}/${enc(t)}/subscription/idle/resetcursor/${Date.now() + 60000}`, 204);
    assert.strictEqual(await backlog('idle'), 0);
    const [ledger, entry] = is.lastConfirmedEntry.split(':').map(Number);
    await expect('POST', `${P}/${enc(t)}/subscription/idle/resetcursor`, 204, { ledgerId: ledger, entryId: entry - 4 });
    assert.strictEqual(await backlog('idle'), 5);
    await expect('POST', `${P}/${enc(t)}/subscription/idle/resetcursor`, 204,
      { ledgerId: ledger, entryId: entry - 4, isExcluded: true });
    assert.strictEqual(await backlog('idle'), 4);

    // expireMessages (TTL by hand): a TTL longer than the messages' age expires nothing; 0 s
    // expires everything published before now, on one subscription or on all of them.
    await expect('POST', `${P}/${enc(t)}/subscription/idle/expireMessages/3600`, 204);
    assert.strictEqual(await backlog('idle'), 4);
    await expect('POST', `${P}/${enc(t)}/subscription/idle/expireMessages/0`, 204);
    assert.strictEqual(await backlog('idle'), 0);
    await expectReason('POST', `${P}/${enc(t)}/subscription/nope/expireMessages/0`, 404);
    await expect('POST', `${P}/${enc(t)}/subscription/idle/resetcursor/0`, 204);
    assert.strictEqual(await backlog('idle'), 10);
    await expect('POST', `${P}/${enc(t)}/all_subscription/expireMessages/0`, 204);
    assert.strictEqual(await backlog('idle'), 0);
    assert.strictEqual(await backlog('from-start'), 0);
    await expect('POST', `${P}/${enc(t)}/subscription/from-start/resetcursor/0`, 204);
    assert.strictEqual(await backlog('from-start'), 10);
    await expectReason('POST', `${P}/${enc(t)}/subscription/idle/resetcursor`, 400, { foo: 1 });
    await expectReason('POST', `${P}/${enc(t)}/subscription/nope/resetcursor/0`, 404);

    // Delete: 412 with a connected consumer, 404 when missing, 204 otherwise.
    await expectReason('DELETE', `${P}/${enc(t)}/subscription/live`, 412);
    await expect('DELETE', `${P}/${enc(t)}/subscription/idle`, 204);
    await expectReason('DELETE', `${P}/${enc(t)}/subscription/idle`, 404);
    await expectReason('DELETE', `${P}/${enc(t)}`, 412);

    // Lookup.
    const lk = await expect('GET', `/lookup/v2/topic/persistent/public/default/${enc(t)}`, 200);
    assert.match(lk.json.brokerUrl, /^pulsar:\/\//);
    assert.strictEqual(lk.json.nativeUrl, lk.json.brokerUrl);
    assert.strictEqual(lk.json.brokerUrlSsl, '');
    assert.match(lk.json.httpUrl, /^http:\/\//);
    assert.strictEqual(lk.json.brokerUrlTls, undefined);
    const bundle = await expect('GET', `/lookup/v2/topic/persistent/public/default/${enc(t)}/bundle`, 200);
    assert.match(bundle.text, /^0x[0-9a-f]{8}_0x[0-9a-f]{8}$/);
    await expectReason('GET', '/lookup/v2/topic/persistent/public/missing-ns/x', 404);

    // Metrics: one # TYPE per name, gauges, the topic's series with its labels (from the
    // broker that serves the topic).
    const owner = { base: lk.json.httpUrl };
    const res = await call('GET', '/metrics', undefined, owner);
    assert.strictEqual(res.status, 200);
    assert.match(res.headers['content-type'], /^text\/plain/);
    const m = parseMetrics(res.text);
    for (const [name, n] of m.typeCount) assert.strictEqual(n, 1, `# TYPE ${name} written ${n} times`);
    const labels = { cluster: (await call('GET', '/admin/v2/clusters')).json[0], namespace: 'public/default', topic: t };
    const one = (name) => {
      const v = find(m, name, labels);
      assert.strictEqual(v.length, 1, `${name}${JSON.stringify(labels)}: ${v.length} samples`);
      assert.strictEqual(m.types.get(name), 'gauge', `${name} type`);
      return v[0].value;
    };
    assert.strictEqual(one('pulsar_in_messages_total'), 10);
    assert.ok(one('pulsar_in_bytes_total') > 0);
    assert.ok(one('pulsar_storage_size') >= one('pulsar_storage_logical_size'));
    assert.ok(one('pulsar_storage_logical_size') > 0);
    assert.strictEqual(one('pulsar_producers_count'), 1);
    assert.strictEqual(one('pulsar_consumers_count'), 1);
    assert.strictEqual(one('pulsar_subscriptions_count'), 2);
    assert.strictEqual(one('pulsar_msg_backlog'), 10);
    for (const name of ['pulsar_rate_in', 'pulsar_rate_out', 'pulsar_throughput_in', 'pulsar_throughput_out',
      'pulsar_storage_write_rate', 'pulsar_storage_read_rate', 'pulsar_storage_backlog_size',
      'pulsar_storage_write_latency_le_0_5', 'pulsar_storage_write_latency_le_1000',
      'pulsar_storage_write_latency_overflow', 'pulsar_storage_write_latency_count',
      'pulsar_storage_write_latency_sum', 'pulsar_storage_ledger_write_latency_le_10',
      'pulsar_entry_size_le_128', 'pulsar_entry_size_le_1_mb', 'pulsar_entry_size_le_overflow',
      'pulsar_entry_size_count', 'pulsar_entry_size_sum', 'pulsar_average_msg_size']) {
      assert.ok(Number.isFinite(one(name)), name);
    }
    const sub = (name, subName) => {
      const v = find(m, name, { ...labels, subscription: subName });
      assert.strictEqual(v.length, 1, `${name} ${subName}`);
      return v[0].value;
    };
    assert.strictEqual(sub('pulsar_subscription_back_log', 'from-start'), 10);
    assert.strictEqual(sub('pulsar_subscription_back_log', 'live'), 0);
    assert.strictEqual(sub('pulsar_out_messages_total', 'live'), 10);
    assert.ok(sub('pulsar_out_bytes_total', 'live') > 0);
    for (const name of ['pulsar_subscription_msg_rate_out', 'pulsar_subscription_msg_throughput_out',
      'pulsar_subscription_unacked_messages', 'pulsar_subscription_delayed',
      'pulsar_subscription_msg_rate_redeliver', 'pulsar_subscription_blocked_on_unacked_messages']) {
      assert.ok(Number.isFinite(sub(name, 'live')), name);
    }
    const ns = find(m, 'pulsar_topics_count', { namespace: 'public/default' });
    assert.strictEqual(ns.length, 1);
    assert.ok(ns[0].value >= 1);
    for (const name of ['pulsar_broker_topics_count', 'pulsar_broker_msg_backlog', 'pulsar_broker_rate_in',
      'pulsar_broker_storage_size', 'pulsar_broker_producers_count', 'pulsar_active_connections']) {
      assert.strictEqual(find(m, name, { cluster: labels.cluster }).length >= 1, true, name);
    }
    assert.ok(find(m, 'pulsar_broker_publish_latency', { quantile: '0.99' }).length === 1);
    assert.ok(find(m, 'process_resident_memory_bytes', {})[0].value > 0);
    // Per-bookie add latency (standalone stores topics on its bookies).
    const bk = find(m, 'pulsar_managedLedger_client_bookie_add_latency_seconds_count', {});
    assert.ok(bk.length >= 1 && bk[0].labels.bookie && bk[0].value > 0, 'per-bookie add latency');
    assert.strictEqual(m.types.get('pulsar_managedLedger_client_bookie_add_latency_seconds'), 'histogram');

    // Counters move after producing more.
    await f.sendAll(prod, f.makeMessages(5, 'more'));
    const m2 = parseMetrics((await call('GET', '/metrics', undefined, owner)).text);
    assert.strictEqual(find(m2, 'pulsar_in_messages_total', labels)[0].value, 15);
    const bl = find(m2, 'pulsar_msg_backlog', labels)[0].value; // from-start 15 + live's unread
    assert.ok(bl >= 15 && bl <= 20, `pulsar_msg_backlog ${bl}`);
    await s.waitFor(() => got.length >= 15, 20000, 'consume 15');
  }));

test('create-subscription auto-creates a missing topic; unload; lastMessageId', { timeout: 30000 }, async () => {
  const t = f.uniqueTopic('admauto');
  await expect('PUT', `${P}/${enc(t)}/subscription/s`, 204);
  assert.deepStrictEqual((await expect('GET', `${P}/${enc(t)}/subscriptions`, 200)).json, ['s']);
  const last = await expect('GET', `${P}/${enc(t)}/lastMessageId`, 200);
  assert.strictEqual(typeof last.json.ledgerId, 'number');
  await expect('PUT', `${P}/${enc(t)}/unload`, 204);
  // Reloads on the next access, with its subscription.
  assert.deepStrictEqual((await expect('GET', `${P}/${enc(t)}/subscriptions`, 200)).json, ['s']);
  await expect('DELETE', `${P}/${enc(t)}/subscription/s`, 204);
  await expect('DELETE', `${P}/${enc(t)}`, 204);
});

// Item 10 of issue 9: names are checked as Pulsar's NamedEntity does, and bounded.
test('tenant, namespace and topic names: refused with Pulsar\'s 412 and reason, nothing created', { timeout: 30000 }, async () => {
  const cluster = (await call('GET', '/admin/v2/clusters')).json[0];
  const info = { allowedClusters: [cluster] };
  const long = 'n'.repeat(300);
  for (const bad of ['..', '.', '%2E%2E', long, 'a%00b', 'a%01b', 'a%0Ab', 'a%2Fb', 'a%20b', 'a%7Fb', '%C3%A9t%C3%A9']) {
    const r = await expectReason('PUT', `/admin/v2/tenants/${bad}`, 412, info);
    assert.strictEqual(r.json.reason, 'Tenant name is not valid', `tenant ${bad}`);
    await expectReason('GET', `${NS}/${bad}`, 412);
  }
  const tenants = (await expect('GET', '/admin/v2/tenants', 200)).json;
  assert.ok(tenants.every((t) => t.length <= 255 && /^[-=:.\w]+$/.test(t) && t !== '.' && t !== '..'), tenants.join(','));
  // The longest valid name is accepted.
  const t = f.uniqueName('nm');
  const max = t + 'x'.repeat(255 - t.length);
  await expect('PUT', `/admin/v2/tenants/${max}`, 204, info);
  await expect('GET', `/admin/v2/tenants/${max}`, 200);
  for (const bad of ['..', long, 'a%00b', 'a%09b']) {
    const r = await expectReason('PUT', `${NS}/${max}/${bad}`, 412);
    assert.strictEqual(r.json.reason, 'Namespace name is not valid', `namespace ${bad}`);
    await expectReason('GET', `${NS}/${max}/${bad}`, 412);
    await expectReason('GET', `/admin/v2/persistent/${max}/${bad}`, 412);
  }
  assert.deepStrictEqual((await expect('GET', `${NS}/${max}`, 200)).json, []);
  // A topic segment that decodes to NUL, or to another namespace's name, is refused.
  for (const bad of ['a%00b', 'x%2Fy']) {
    const r = await expectReason('PUT', `${P}/${bad}`, 412);
    assert.strictEqual(r.json.reason, 'Topic name is not valid', `topic ${bad}`);
  }
  await expectReason('GET', `${P}/a%00b/stats`, 412);
  await expectReason('PUT', `${P}/${enc(f.uniqueTopic('nul'))}/subscription/a%00b`, 412);
  await expect('DELETE', `/admin/v2/tenants/${max}`, 204);
});

test('namespace policies bodies are checked before anything is created', { timeout: 30000 }, async () => {
  const cluster = (await call('GET', '/admin/v2/clusters')).json[0];
  const t = f.uniqueName('nsb');
  await expect('PUT', `/admin/v2/tenants/${t}`, 204, { allowedClusters: [cluster] });
  // Bodies that do not map onto Policies: Jersey's 400 (no reason), as Pulsar.
  for (const body of ['[1]', '3', '"x"', 'not json', '{"bundles":5}', '{"bundles":{"numBundles":"x"}}',
    '{"bundles":{"numBundles":1.5}}', '{"bundles":{"boundaries":"0x0"}}', '{"replication_clusters":"x"}',
    '{"replication_clusters":[1]}', '{"retention_policies":[]}']) {
    const r = await call('PUT', `${NS}/${t}/ns`, body);
    assert.strictEqual(r.status, 400, `${body} -> HTTP ${r.status} ${r.text}`);
  }
  await expectReason('PUT', `${NS}/${t}/ns`, 400, { bundles: { numBundles: 100000 } });
  await expectReason('PUT', `${NS}/${t}/ns`, 400, { bundles: { numBundles: 2, boundaries: ['0x00000000', '0x10000000'] } });
  await expectReason('PUT', `${NS}/${t}/ns`, 400, { bundles: { numBundles: 2, boundaries: ['0x00000000', '0x10000000', '0xffffffff'] } });
  await expectReason('PUT', `${NS}/${t}/ns`, 403, { replication_clusters: ['nowhere'] });
  await expectReason('GET', `${NS}/${t}/ns`, 404);
  assert.deepStrictEqual((await expect('GET', `${NS}/${t}`, 200)).json, []);
  // Valid ones: numBundles <= 0 means the default (as Pulsar), equal boundaries, unknown fields.
  await expect('PUT', `${NS}/${t}/a`, 204, { bundles: { numBundles: 0 }, someFutureField: 1 });
  assert.strictEqual((await expect('GET', `${NS}/${t}/a/bundles`, 200)).json.numBundles >= 1, true);
  await expect('PUT', `${NS}/${t}/b`, 204, { bundles: { numBundles: 2, boundaries: ['0x00000000', '0x80000000', '0xffffffff'] }, replication_clusters: [cluster] });
  assert.strictEqual((await expect('GET', `${NS}/${t}/b/bundles`, 200)).json.numBundles, 2);
  await expect('DELETE', `${NS}/${t}/a`, 204);
  await expect('DELETE', `${NS}/${t}/b`, 204);
  await expect('DELETE', `/admin/v2/tenants/${t}`, 204);
});

test('tenant update stores adminRoles (and a bad TenantInfo changes nothing)', { timeout: 30000 }, async () => {
  const cluster = (await call('GET', '/admin/v2/clusters')).json[0];
  const t = f.uniqueName('roles');
  await expect('PUT', `/admin/v2/tenants/${t}`, 204, { adminRoles: ['alice'], allowedClusters: [cluster] });
  assert.deepStrictEqual((await expect('GET', `/admin/v2/tenants/${t}`, 200)).json,
    { adminRoles: ['alice'], allowedClusters: [cluster] });
  await expect('POST', `/admin/v2/tenants/${t}`, 204, { adminRoles: ['bob', 'carol', 'bob'], allowedClusters: [cluster] });
  assert.deepStrictEqual((await expect('GET', `/admin/v2/tenants/${t}`, 200)).json,
    { adminRoles: ['bob', 'carol'], allowedClusters: [cluster] });
  await expectReason('POST', `/admin/v2/tenants/${t}`, 412, { adminRoles: ['x'], allowedClusters: ['nowhere'] });
  assert.strictEqual((await call('POST', `/admin/v2/tenants/${t}`, { adminRoles: 'x', allowedClusters: [cluster] })).status, 400);
  assert.deepStrictEqual((await expect('GET', `/admin/v2/tenants/${t}`, 200)).json.adminRoles, ['bob', 'carol']);
  await expect('POST', `/admin/v2/tenants/${t}`, 204, { allowedClusters: [cluster] });
  assert.deepStrictEqual((await expect('GET', `/admin/v2/tenants/${t}`, 200)).json.adminRoles, []);
  await expect('DELETE', `/admin/v2/tenants/${t}`, 204);
});

// Item 3 of issue 9: every admin request completes exactly once, on every path. The broker
// counts the requests it routed and has not answered (magnetar_admin_requests_open, which
// includes the /metrics request that reports it): after a run of bad inputs on every path,
// each must have been answered and the count must be back to 1.
async function openRequests() {
  const m = parseMetrics((await call('GET', '/metrics')).text);
  const v = find(m, 'magnetar_admin_requests_open', {});
  assert.strictEqual(v.length, 1, 'magnetar_admin_requests_open is exported');
  assert.strictEqual(m.types.get('magnetar_admin_requests_open'), 'gauge');
  return v[0].value;
}

test('every path answers bad input, and no admin request is left open', { timeout: 120000 }, async () => {
  const t = f.uniqueName('bad');
  const tp = f.uniqueTopic('bad');
  const pp = f.uniqueTopic('badp');
  const x = enc(tp);
  await expect('PUT', `${P}/${enc(pp)}/partitions`, 204, '2');
  const paths = [];
  const methods = ['GET', 'PUT', 'POST', 'DELETE'];
  const bodies = [undefined, '', '[1]', '{', '"x"', '-1', '{"a":1}', '{"ledgerId":"x"}', '99999999999999999999'];
  const add = (p) => { for (const m of methods) for (const b of [bodies[0], bodies[2], bodies[3]]) paths.push([m, p, b]); };
  for (const p of ['/', '/x', '/admin', '/admin/v2', '/admin/v2/x', '/metrics', '/status.html', '/admin/v2/brokers/health',
    '/admin/v2/brokers/ready', '/admin/v2/brokers/x/y', '/admin/v2/brokers/leaderBroker', '/admin/v2/brokers/version',
    '/admin/v2/clusters', '/admin/v2/clusters/..', '/admin/v2/clusters/nowhere', '/admin/v2/clusters/a%00b',
    '/admin/v2/tenants', `/admin/v2/tenants/${t}`, '/admin/v2/tenants/..', '/admin/v2/tenants/a%00b', '/admin/v2/tenants/x/y',
    `${NS}/${t}`, `${NS}/${t}/ns`, `${NS}/..`, `${NS}/public/..`, `${NS}/public/missing/topics`, `${NS}/public/default/x`,
    `${NS}/public/default/retention`, `${NS}/public/missing/retention`, `${NS}/public/default/bundles`,
    `${NS}/public/missing/unload`, `${NS}/public/default/0x0_0x1/unload`, `${NS}/public/default/zz/unload`,
    '/admin/v2/persistent', '/admin/v2/persistent/public', '/admin/v2/persistent/public/missing',
    '/admin/v2/persistent/public/missing/x', `${P}/partitioned`, `${P}/a%2Fb`, `${P}/a%00b`, `${P}/%2F`, `${P}/x%2F..%2F..`,
    `${P}/${x}`, `${P}/${x}/partitions`, `${P}/${x}/stats`, `${P}/${x}/partitioned-stats`, `${P}/${x}/internalStats`,
    `${P}/${x}/partitioned-internalStats`, `${P}/${x}/subscriptions`, `${P}/${x}/unload`, `${P}/${x}/lastMessageId`,
    `${P}/${x}/subscription/s`, `${P}/${x}/subscription/s/skip/x`, `${P}/${x}/subscription/s/skip/-1`,
    `${P}/${x}/subscription/s/skip_all`, `${P}/${x}/subscription/s/resetcursor`, `${P}/${x}/subscription/s/resetcursor/x`,
    `${P}/${x}/subscription/s/x/y/z`, `${P}/${x}/x`, `${P}/${enc(pp)}`, `${P}/${enc(pp)}/partitions`,
    `${P}/${enc(pp)}/stats`, `${P}/${enc(pp)}/lastMessageId`, `${P}/${enc(pp)}/subscription/s/skip/1`,
    `${P}/${enc(pp)}/subscription/s/resetcursor`, `${P}/${enc(pp)}-partition-0/subscription/s/resetcursor/1`,
    '/admin/v2/non-persistent/public/default/x', '/lookup/v2/topic/persistent/public/default/a%2Fb',
    '/lookup/v2/topic/persistent/public/missing/x', '/lookup/v2/topic/persistent/public/default/a%00b',
    '/lookup/v2/topic/non-persistent/public/default/x', '/lookup/v2/topic/persistent/public/default/x/nobundle',
    '/lookup/v2/topic/persistent', `/a/${'b/'.repeat(20)}`]) add(p);
  for (const b of bodies) {
    paths.push(['PUT', `${P}/${enc(pp)}/partitions`, b], ['POST', `${P}/${enc(pp)}/partitions`, b],
      ['PUT', `${NS}/public/${t}`, b], ['POST', `${NS}/public/default/retention`, b],
      ['PUT', `/admin/v2/tenants/${t}`, b], ['POST', '/admin/v2/tenants/public', b],
      ['PUT', `${P}/${x}/subscription/s`, b], ['POST', `${P}/${x}/subscription/s/resetcursor`, b]);
  }
  // Deleting the partitioned topic races with itself when sent concurrently: those go last,
  // one at a time.
  const last = paths.filter(([m, p]) => m === 'DELETE' && p.includes(enc(pp)));
  const first = paths.filter((e) => !last.includes(e));
  const failures = [];
  for (const [i, n] of [...Array(Math.ceil(first.length / 16)).keys()].map((k) => [k * 16, 16]).concat(last.map((_, k) => [first.length + k, 1]))) {
    await Promise.all([...first, ...last].slice(i, i + n).map(async ([m, p, b]) => {
      try {
        const r = await call(m, p, b, { timeoutMs: 15000 });
        if (!(r.status >= 200 && r.status < 600)) failures.push(`${m} ${p}: HTTP ${r.status}`);
        if (r.status >= 500) failures.push(`${m} ${p} ${b}: HTTP ${r.status} ${r.text}`);
      } catch (e) {
        failures.push(`${m} ${p} ${b === undefined ? '' : b}: ${e.message}`);
      }
    }));
  }
  assert.deepStrictEqual(failures, [], `${failures.length} of ${paths.length} requests were not answered properly`);
  // Clean up what the valid ones among them created, then count.
  await call('DELETE', `${P}/${x}/subscription/s?force=true`);
  await call('DELETE', `${P}/${x}?force=true`);
  await call('DELETE', `${P}/${enc(pp)}/partitions?force=true`);
  await call('DELETE', `${NS}/public/${t}`);
  await call('DELETE', `/admin/v2/tenants/${t}`);
  assert.strictEqual(await openRequests(), 1, 'admin requests routed but never answered');
});

// Item 9 of issue 9: in a cluster, a topic call on a bundle nobody owns yet (or just
// unloaded) is served at once or redirected to the broker that takes it; never "503 retry".
// Runs when MAGNETAR_ADMIN_PEER names a second broker of the same cluster
// (tests/integration/admin-cluster.test.sh).
test('backlog quota: a producer is refused once the backlog reaches the namespace quota',
  { timeout: 60000 },
  () => f.withScope('admin-quota', async (s) => {
    const ns = `public/quota-${Date.now().toString(36)}`;
    await expect('PUT', `${NS}/${ns}`, 204);
    await expect('POST', `${NS}/${ns}/backlogQuota`, 204, { limitSize: 1, limitTime: -1, policy: 'producer_exception' });
    const topic = `persistent://${ns}/q`;
    const TP = `/admin/v2/persistent/${ns}/q`;
    await expect('PUT', TP, 204);
    await expect('PUT', `${TP}/subscription/idle`, 204);
    // The broker serving the topic may be another one: it learns the policy from the store.
    const deadline = Date.now() + 30000;
    let limit;
    while ((limit = (await expect('GET', `${TP}/stats`, 200)).json.backlogQuotaLimitSize) !== 1
      && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.strictEqual(limit, 1, 'the serving broker applies the namespace quota');
    const prod = await s.producer(topic); // backlog 0: under the quota
    await f.sendAll(prod, f.makeMessages(3, 'q'));
    const st = (await expect('GET', `${TP}/stats`, 200)).json;
    assert.ok(st.backlogSize >= 1, JSON.stringify(st));
    const refused = await f.withTimeout(s.producer(topic).then(() => null, (e) => e), 30000,
      'the refused producer.create() to settle');
    assert.ok(refused, 'a producer over the backlog quota must be refused, it was created');
    assert.match(String(refused.message || refused), /backlog quota exceeded/);
    // Consumed (skip_all): the backlog is gone and producers are welcome again.
    await expect('POST', `${TP}/subscription/idle/skip_all`, 204);
    await s.producer(topic);
  }));

const PEER = process.env.MAGNETAR_ADMIN_PEER;
test('cluster: topic calls on unowned and unloaded bundles are served or redirected, each once', { skip: PEER ? false : 'needs MAGNETAR_ADMIN_PEER; tests/integration/admin-cluster.test.sh runs it', timeout: 180000 }, async () => {
  const peer = { base: PEER };
  const both = [{}, peer];
  const cluster = (await call('GET', '/admin/v2/clusters')).json[0];
  const t = f.uniqueName('clu');
  await expect('PUT', `/admin/v2/tenants/${t}`, 204, { allowedClusters: [cluster] });
  const ns = `${t}/ns`;
  await expect('PUT', `${NS}/${ns}`, 204, { bundles: { numBundles: 16 } });
  const TP = `/admin/v2/persistent/${ns}`;
  let redirects = 0;
  const on = async (where, method, path, status, body) => {
    const r = await call(method, path, body, where);
    assert.strictEqual(r.status, status, `${method} ${path} via ${where.base || 'this broker'} -> HTTP ${r.status} ${r.text}`);
    redirects += r.hops;
    return r;
  };
  // Created through either broker, right after the namespace (created on this one).
  const names = [...Array(24).keys()].map((i) => `c${i}`);
  await Promise.all(names.map((n, i) => on(both[i % 2], 'PUT', `${TP}/${n}`, 204)));
  await Promise.all(names.map((n, i) => on(both[(i + 1) % 2], 'PUT', `${TP}/${n}`, 409)));
  for (const where of both) {
    const list = (await on(where, 'GET', TP, 200)).json;
    assert.deepStrictEqual(list, names.map((n) => `persistent://${ns}/${n}`).sort(), `list via ${where.base || 'this broker'}`);
  }
  const owners = async () => Promise.all(names.map(async (n) => {
    const a = (await on({}, 'GET', `${TP}/${n}/stats`, 200)).json.ownerBroker;
    const b = (await on(peer, 'GET', `${TP}/${n}/stats`, 200)).json.ownerBroker;
    assert.strictEqual(a, b, `${n}: served by ${a} through one broker and by ${b} through the other`);
    return a;
  }));
  await owners();
  // Half of the calls went to a broker that was not chosen for the bundle (whichever the
  // least-loaded choice was), so some were redirected.
  assert.ok(redirects > 0, 'some calls were redirected to the other broker');
  // Every bundle unloaded (through this broker, each by its owner), then read again at once.
  await on({}, 'PUT', `${NS}/${ns}/unload`, 204);
  await owners();
  // A partitioned topic whose partitions land on both brokers.
  await on({}, 'PUT', `${TP}/parted/partitions`, 204, '6');
  await on(peer, 'PUT', `${TP}/parted/subscription/keep`, 204);
  const ps = (await on({}, 'GET', `${TP}/parted/partitioned-stats`, 200)).json;
  assert.strictEqual(Object.keys(ps.partitions).length, 6);
  for (const [name, p] of Object.entries(ps.partitions)) {
    assert.ok(p.subscriptions.keep, JSON.stringify(p));
    const one = (await on(peer, 'GET', `${TP}/${encodeURIComponent(f.localName(name))}/stats`, 200)).json;
    assert.strictEqual(one.ownerBroker, p.ownerBroker, `${name} served by one broker`);
  }
  assert.deepStrictEqual((await on(peer, 'GET', `${TP}/parted/subscriptions`, 200)).json, ['keep']);
  await on(peer, 'POST', `${TP}/parted/partitions`, 204, '8');
  assert.deepStrictEqual((await on({}, 'GET', `${TP}/parted-partition-7/subscriptions`, 200)).json, ['keep']);
  await on({}, 'DELETE', `${TP}/parted/subscription/keep`, 204);
  await on(peer, 'DELETE', `${TP}/parted/partitions`, 204);
  await on({}, 'DELETE', `${TP}/parted/partitions`, 404);
  // Deleted through either broker, each once; then the namespace.
  await on({}, 'DELETE', `${NS}/${ns}`, 409);
  await Promise.all(names.map((n, i) => on(both[i % 2], 'DELETE', `${TP}/${n}`, 204)));
  await Promise.all(names.map((n, i) => on(both[(i + 1) % 2], 'DELETE', `${TP}/${n}`, 404)));
  for (const where of both) assert.deepStrictEqual((await on(where, 'GET', TP, 200)).json, []);
  await on({}, 'DELETE', `${NS}/${ns}`, 204);
  await on({}, 'DELETE', `/admin/v2/tenants/${t}`, 204);
  for (const where of both) {
    const m = parseMetrics((await call('GET', '/metrics', undefined, where)).text);
    assert.strictEqual(find(m, 'magnetar_admin_requests_open', {})[0].value, 1, `open requests on ${where.base || 'this broker'}`);
  }
});
