/*
 * console.js - magnetar's web console (served at / of the admin port, embedded in the binary).
 *
 * One page, navigated by the URL's fragment:
 *   #/                              cluster, brokers, bookies, tenants
 *   #/tenant/T                      the tenant's namespaces
 *   #/ns/T/N                        the namespace's topics (rates, backlog, storage), bundles
 *   #/topic/T/N/TOPIC               one topic: stats, producers, subscriptions and their
 *                                   consumers, a live chart of msg/s in and out
 * Everything shown is read from the admin REST API of the server that served the page, and
 * every action goes through that API (so through its authentication and authorization):
 * with a token typed in the header, each request carries "Authorization: Bearer <token>";
 * the token is kept in sessionStorage only (gone with the tab).
 *
 * Every name or value from the server reaches the page as text (textContent, or an
 * attribute through the DOM), never as markup: a topic named <script> shows as "<script>".
 * Each action asks for confirmation first.
 */
'use strict';

const POLL_MS = 2000;          /* how often the open view polls the REST API */
const CHART_WINDOW_MS = 5 * 60 * 1000; /* the chart's time span */
const MAX_TOPIC_ROWS = 500;    /* topics whose stats a namespace view reads */
const TOKEN_KEY = 'magnetar.token';

let viewGen = 0;    /* bumped on every navigation: a poll of an older view stops */
let pollTimer = null;

/* ---- DOM helpers: text only -------------------------------------------------------------- */

/* el('td', {class: 'num'}, 'text', childNode...): strings become text nodes */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'onclick') e.addEventListener('click', v);
    else if (k === 'onsubmit') e.addEventListener('submit', v);
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
  return e;
}

function link(text, hash) {
  return el('a', {href: hash}, text);
}

function hashOf(kind, ...names) {
  return '#/' + [kind, ...names.map(encodeURIComponent)].join('/');
}

function setStatus(text, isError) {
  const s = document.getElementById('status');
  s.textContent = text || '';
  s.className = isError ? 'error' : '';
}

function fmtNum(v, digits) {
  if (typeof v !== 'number' || !isFinite(v)) return '-';
  return v.toLocaleString('en-US', {maximumFractionDigits: digits === undefined ? 2 : digits});
}

function fmtBytes(v) {
  if (typeof v !== 'number' || !isFinite(v)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : String(v)) + ' ' + units[i];
}

function table(headers, rows, numeric) {
  const t = el('table');
  const hr = el('tr');
  headers.forEach((h, i) => hr.appendChild(el('th', numeric && numeric[i] ? {class: 'num'} : {}, h)));
  t.appendChild(el('thead', {}, hr));
  const tb = el('tbody');
  for (const r of rows) {
    const tr = el('tr');
    r.forEach((c, i) => tr.appendChild(
      el('td', numeric && numeric[i] ? {class: 'num'} : (i === 0 ? {class: 'name'} : {}), c)));
    tb.appendChild(tr);
  }
  t.appendChild(tb);
  return t;
}

function section(title, ...children) {
  return el('section', {}, el('h2', {}, title), ...children);
}

/* ---- REST API ---------------------------------------------------------------------------- */

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

class ApiError extends Error {
  constructor(status, reason) {
    super(status + ': ' + reason);
    this.status = status;
  }
}

/* One request to this server's REST API: the Response of a 2xx answer, else an ApiError with
 * Pulsar's {"reason"} (or the status line). */
async function request(method, path, body) {
  const headers = {};
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {method, headers,
                                 body: body === undefined ? undefined : JSON.stringify(body)});
  if (!res.ok) {
    const text = await res.text();
    let reason = res.statusText || 'error';
    try { reason = JSON.parse(text).reason || reason; } catch (e) { /* not JSON */ }
    if (res.status === 401 && !t) reason += ' (type a token above)';
    throw new ApiError(res.status, reason);
  }
  return res;
}

/* The parsed JSON (or text) of a 2xx answer. */
async function api(method, path, body) {
  const res = await request(method, path, body);
  const text = await res.text();
  const ct = res.headers.get('Content-Type') || '';
  if (text && ct.includes('json')) return JSON.parse(text);
  return text;
}

const enc = encodeURIComponent;
function topicPath(t, n, topic) {
  return '/admin/v2/persistent/' + [t, n, topic].map(enc).join('/');
}
function subPath(t, n, topic, sub) {
  return topicPath(t, n, topic) + '/subscription/' + enc(sub);
}

/* "persistent://t/n/local" -> local */
function localName(full) {
  const rest = full.replace(/^[a-z-]+:\/\//, '');
  return rest.split('/').slice(2).join('/');
}

/* An action: confirm, run, report, then refresh the view. */
async function act(question, fn, done) {
  if (!window.confirm(question)) return;
  try {
    const r = await fn();
    if (done) done(r);
    else await route();
    setStatus('done: ' + question.replace(/\?$/, ''));
  } catch (e) {
    setStatus(e.message, true);
  }
}

/* ---- views ------------------------------------------------------------------------------- */

/* Thrown by show() when the user went elsewhere while a view was loading. */
class Stale extends Error {}

/* Replace the view's content, unless the view of generation gen is no longer current. */
function show(gen, ...nodes) {
  if (gen !== viewGen) throw new Stale();
  document.getElementById('view').replaceChildren(...nodes);
}

function crumbs(parts) {
  const c = document.getElementById('crumbs');
  c.replaceChildren();
  parts.forEach((p, i) => {
    if (i) c.appendChild(el('span', {class: 'sep'}, '/'));
    c.appendChild(p[1] ? link(p[0], p[1]) : el('span', {}, p[0]));
  });
}

/* Run fn now and every POLL_MS while the view of generation gen is shown. */
function poll(gen, fn) {
  const tick = async () => {
    if (gen !== viewGen) return;
    try {
      await fn();
    } catch (e) {
      if (gen === viewGen) setStatus(e.message, true);
    }
    if (gen === viewGen) pollTimer = setTimeout(tick, POLL_MS);
  };
  tick();
}

async function bookiesSection() {
  /* Pulsar's /admin/v2/bookies/all when the server has it; else the bookies this broker's
   * ledger client talks to, from /metrics */
  try {
    const all = await api('GET', '/admin/v2/bookies/all');
    const list = (all && all.bookies) || [];
    return section('Bookies', table(['bookie', 'state'],
      list.map(b => [b.bookieId || String(b), b.readOnly ? 'read-only' : 'writable'])));
  } catch (e) {
    if (!(e instanceof ApiError) || (e.status !== 404 && e.status !== 405)) throw e;
  }
  const text = await api('GET', '/metrics');
  const rows = [];
  const re = /^pulsar_managedLedger_client_bookie_connected\{[^}]*bookie="([^"]*)"[^}]*\} (\S+)$/gm;
  let m;
  while ((m = re.exec(text)) !== null) rows.push([m[1], Number(m[2]) > 0 ? 'connected' : 'not connected']);
  return section('Bookies', rows.length
    ? table(['bookie (as this broker\'s ledger client sees it)', 'connection'], rows)
    : el('p', {class: 'muted'}, 'No bookie known to this broker (standalone storage).'));
}

async function viewHome(gen) {
  crumbs([['cluster']]);
  const clusters = await api('GET', '/admin/v2/clusters');
  const parts = [];
  for (const c of clusters) {
    let brokers = [];
    try { brokers = await api('GET', '/admin/v2/brokers/' + enc(c)); } catch (e) { brokers = []; }
    parts.push(section('Cluster ' + c, table(['broker'], brokers.map(b => [b]))));
  }
  let leader = '-', version = '-';
  try { leader = (await api('GET', '/admin/v2/brokers/leaderBroker')).serviceUrl || '-'; } catch (e) { /* optional */ }
  try { version = await api('GET', '/admin/v2/brokers/version'); } catch (e) { /* optional */ }
  const info = el('dl', {class: 'kv'}, el('dt', {}, 'leader broker'), el('dd', {}, leader),
                  el('dt', {}, 'version'), el('dd', {}, String(version)));
  const tenants = await api('GET', '/admin/v2/tenants');
  const tsec = section('Tenants', table(['tenant'], tenants.map(t => [link(t, hashOf('tenant', t))])));
  const bookies = await bookiesSection().catch(e => section('Bookies', el('p', {class: 'muted'}, e.message)));
  show(gen, section('Brokers', info), ...parts, tsec, bookies);
}

async function viewTenant(gen, t) {
  crumbs([['cluster', '#/'], [t]]);
  const nss = await api('GET', '/admin/v2/namespaces/' + enc(t));
  show(gen, section('Namespaces of ' + t,
    table(['namespace'], nss.map(full => {
      const n = full.split('/').slice(1).join('/');
      return [link(full, hashOf('ns', t, n))];
    }))));
}

function topicRow(t, n, full, s) {
  const subs = Object.values((s && s.subscriptions) || {});
  const backlog = subs.reduce((a, x) => a + (x.msgBacklog || 0), 0);
  const local = localName(full);
  return [link(local, hashOf('topic', t, n, local)), fmtNum(s && s.msgRateIn),
          fmtNum(s && s.msgRateOut), fmtNum(backlog, 0), fmtBytes(s && s.storageSize),
          fmtNum(s ? (s.publishers || []).length : NaN, 0), fmtNum(s ? subs.length : NaN, 0)];
}

async function viewNamespace(gen, t, n) {
  crumbs([['cluster', '#/'], [t, hashOf('tenant', t)], [n]]);
  const topicsBox = el('div', {id: 'topics'});
  const bundlesBox = el('div');
  const name = el('input', {type: 'text', id: 'new-topic', placeholder: 'topic name', required: ''});
  const create = el('form', {class: 'inline', id: 'create-topic', onsubmit: ev => {
    ev.preventDefault();
    const topic = name.value.trim();
    if (!topic) return;
    act('Create topic persistent://' + t + '/' + n + '/' + topic + '?',
        () => api('PUT', topicPath(t, n, topic)));
  }}, name, el('button', {type: 'submit'}, 'Create topic'));
  show(gen, section('Topics of ' + t + '/' + n, create, topicsBox),
                       section('Bundles', bundlesBox));
  const b = await api('GET', '/admin/v2/namespaces/' + enc(t) + '/' + enc(n) + '/bundles');
  const bounds = b.boundaries || [];
  const rows = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const range = bounds[i] + '_' + bounds[i + 1];
    rows.push([range, el('button', {onclick: () => act('Unload bundle ' + range + ' of ' + t + '/' + n + '?',
      () => api('PUT', '/admin/v2/namespaces/' + enc(t) + '/' + enc(n) + '/' + enc(range) + '/unload'))},
      'Unload')]);
  }
  bundlesBox.replaceChildren(table(['bundle', ''], rows));
  poll(gen, async () => {
    const topics = (await api('GET', '/admin/v2/persistent/' + enc(t) + '/' + enc(n))).slice(0, MAX_TOPIC_ROWS);
    const stats = await Promise.all(topics.map(full =>
      api('GET', topicPath(t, n, localName(full)) + '/stats').catch(() => null)));
    topicsBox.replaceChildren(table(
      ['topic', 'msg/s in', 'msg/s out', 'backlog', 'storage', 'producers', 'subscriptions'],
      topics.map((full, i) => topicRow(t, n, full, stats[i])),
      [false, true, true, true, true, true, true]));
    topicsBox.dataset.rows = String(topics.length);
  });
}

/* The live chart: msg/s in and out since the view opened, at most the last CHART_WINDOW_MS
 * (the time axis spans at least a minute), drawn on a canvas. */
function drawChart(canvas, samples) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const g = canvas.getContext('2d');
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const pad = {l: 56, r: 12, t: 10, b: 22};
  const now = Date.now();
  const span = Math.min(CHART_WINDOW_MS, Math.max(60000, samples.length ? now - samples[0].ts : 0));
  const t0 = now - span;
  const max = Math.max(1, ...samples.map(s => Math.max(s.in, s.out))) * 1.15;
  const x = ts => pad.l + (w - pad.l - pad.r) * (ts - t0) / span;
  const y = v => h - pad.b - (h - pad.t - pad.b) * v / max;
  g.font = '11px system-ui, sans-serif';
  g.strokeStyle = '#d9dde5';
  g.fillStyle = '#5b6475';
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = max * i / 4;
    g.beginPath(); g.moveTo(pad.l, y(v)); g.lineTo(w - pad.r, y(v)); g.stroke();
    g.fillText(fmtNum(v, v < 10 ? 1 : 0), 4, y(v) + 4);
  }
  const step = span > 120000 ? 60000 : 15000;
  g.textAlign = 'center';
  for (let ago = 0; ago <= span; ago += step) {
    const label = ago === 0 ? 'now' : step === 60000 ? '-' + ago / 60000 + ' min' : '-' + ago / 1000 + ' s';
    g.fillText(label, Math.max(pad.l, x(now - ago)), h - 6);
  }
  for (const [key, color] of [['in', '#1f8a4c'], ['out', '#c2410c']]) {
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.setLineDash(key === 'out' ? [6, 4] : []); /* both visible when equal */
    g.beginPath();
    samples.forEach((s, i) => (i ? g.lineTo(x(s.ts), y(s[key])) : g.moveTo(x(s.ts), y(s[key]))));
    g.stroke();
  }
  canvas.dataset.samples = String(samples.length);
  canvas.dataset.maxIn = String(Math.max(0, ...samples.map(s => s.in)));
  canvas.dataset.maxOut = String(Math.max(0, ...samples.map(s => s.out)));
}

/* ---- peeked messages: Pulsar's X-Pulsar-* headers and the raw payload ------------------- */

/* The fields of a protobuf message (bytes): [field number, value] with value a number
 * (varint) or a Uint8Array (length-delimited); throws on bytes that do not parse. */
function protoFields(b) {
  const out = [];
  let i = 0;
  const varint = () => {
    let v = 0, mul = 1;
    for (;;) {
      if (i >= b.length) throw new Error('truncated');
      const x = b[i++];
      v += (x & 0x7f) * mul;
      if (!(x & 0x80)) return v;
      mul *= 128;
    }
  };
  while (i < b.length) {
    const key = varint(), wire = key % 8;
    if (wire === 0) out.push([Math.floor(key / 8), varint()]);
    else if (wire === 2) {
      const n = varint();
      if (i + n > b.length) throw new Error('truncated');
      out.push([Math.floor(key / 8), b.subarray(i, i + n)]);
      i += n;
    } else if (wire === 1 || wire === 5) i += wire === 1 ? 8 : 4;
    else throw new Error('wire type ' + wire);
  }
  return out;
}

/* A batch payload's messages ([u32 size][SingleMessageMetadata][payload] each): {key,
 * props, payload}. */
function batchMessages(bytes) {
  const msgs = [], utf8 = new TextDecoder();
  for (let off = 0; off + 4 <= bytes.length;) {
    const size = new DataView(bytes.buffer, bytes.byteOffset + off, 4).getUint32(0);
    const md = protoFields(bytes.subarray(off + 4, off + 4 + size));
    const m = {key: null, props: [], payload: null};
    let plen = 0;
    for (const [f, v] of md) {
      if (f === 1) {
        const kv = protoFields(v);
        const get = k => { const e = kv.find(x => x[0] === k); return e ? utf8.decode(e[1]) : ''; };
        m.props.push([get(1), get(2)]);
      } else if (f === 2) m.key = utf8.decode(v);
      else if (f === 3) plen = v;
    }
    off += 4 + size;
    m.payload = bytes.subarray(off, off + plen);
    off += plen;
    msgs.push(m);
  }
  return msgs;
}

/* The payload as text when it is UTF-8 without control characters, else a hex dump. */
function payloadText(bytes) {
  try {
    const s = new TextDecoder('utf-8', {fatal: true}).decode(bytes);
    if (!/[\u0000-\u0008\u000e-\u001f\u007f]/.test(s)) return s;
  } catch (e) { /* not UTF-8 */ }
  const rows = [];
  for (let o = 0; o < bytes.length; o += 16) {
    const row = Array.from(bytes.subarray(o, o + 16));
    rows.push(o.toString(16).padStart(8, '0') + '  ' +
              row.map(x => x.toString(16).padStart(2, '0')).join(' ').padEnd(48) + ' |' +
              row.map(x => (x >= 32 && x < 127 ? String.fromCharCode(x) : '.')).join('') + '|');
  }
  return rows.join('\n');
}

/* The message(s) of one peek answer, as elements (text only). */
async function peekedMessages(res) {
  const h = res.headers, bytes = new Uint8Array(await res.arrayBuffer());
  const id = h.get('X-Pulsar-Message-ID') || '?';
  const props = [];
  h.forEach((v, k) => { if (k.toLowerCase().startsWith('x-pulsar-property-')) props.push([k.slice(18), v]); });
  let msgs = [{id, key: h.get('X-Pulsar-partition-key'), props, payload: bytes}];
  if (h.get('X-Pulsar-num-batch-message')) {
    try {
      msgs = batchMessages(bytes).map((m, i) => ({...m, id: id + ':' + i}));
    } catch (e) { /* not a batch we can read: shown whole */ }
  }
  return msgs.map(m => el('div', {class: 'peek-msg'},
    el('dl', {class: 'kv'},
      el('dt', {}, 'message id'), el('dd', {class: 'msg-id'}, m.id),
      el('dt', {}, 'publish time'), el('dd', {}, h.get('X-Pulsar-publish-time') || '-'),
      el('dt', {}, 'key'), el('dd', {class: 'msg-key'}, m.key === null ? '-' : m.key),
      el('dt', {}, 'properties'),
      el('dd', {class: 'msg-props'}, m.props.map(([k, v]) => k + '=' + v).join(', ') || '-')),
    el('pre', {class: 'peek'}, payloadText(m.payload))));
}

function subActions(t, n, topic, sub, peekBox) {
  const count = el('input', {type: 'number', min: '1', value: '1', class: 'count', 'aria-label': 'messages'});
  const minutes = el('input', {type: 'number', min: '0', value: '10', class: 'minutes',
                               'aria-label': 'minutes ago'});
  const p = subPath(t, n, topic, sub);
  const what = 'subscription ' + sub + ' of ' + topic;
  return el('span', {},
    el('button', {class: 'danger clear-backlog', onclick: () => act('Clear the backlog of ' + what + '?',
      () => api('POST', p + '/skip_all'))}, 'Clear backlog'),
    count,
    el('button', {onclick: () => act('Skip ' + count.value + ' messages of ' + what + '?',
      () => api('POST', p + '/skip/' + enc(count.value)))}, 'Skip'),
    el('button', {class: 'peek-action', onclick: () => act('Peek message ' + count.value + ' of ' + what + '?',
      async () => peekedMessages(await request('GET', p + '/position/' + enc(count.value))), msgs => {
        peekBox.replaceChildren(el('h2', {}, 'Message ' + count.value + ' of ' + sub), ...msgs);
      })}, 'Peek'),
    minutes,
    el('button', {onclick: () => {
      const ts = Date.now() - Number(minutes.value) * 60000;
      act('Reset the cursor of ' + what + ' to ' + new Date(ts).toISOString() + '?',
          () => api('POST', p + '/resetcursor/' + ts));
    }}, 'Reset cursor (min ago)'));
}

async function viewTopic(gen, t, n, topic) {
  crumbs([['cluster', '#/'], [t, hashOf('tenant', t)], [n, hashOf('ns', t, n)], [topic]]);
  const kv = el('dl', {class: 'kv', id: 'topic-stats'});
  const canvas = el('canvas', {id: 'chart'});
  const prodBox = el('div'), subBox = el('div', {id: 'subscriptions'}), peekBox = el('div');
  const full = 'persistent://' + t + '/' + n + '/' + topic;
  show(gen,
    section('Topic ' + full, el('div', {class: 'split'}, el('div', {}, kv,
      el('p', {},
        el('button', {onclick: () => act('Unload topic ' + full + '?',
          () => api('PUT', topicPath(t, n, topic) + '/unload'))}, 'Unload'),
        el('button', {class: 'danger', id: 'delete-topic', onclick: () => act('Delete topic ' + full + '?',
          () => api('DELETE', topicPath(t, n, topic)), () => { location.hash = hashOf('ns', t, n); })},
        'Delete topic'))),
      el('div', {}, el('div', {class: 'legend'}, el('b', {}, 'messages per second '),
        el('span', {class: 'in'}, '\u2014 in'), el('span', {class: 'out'}, '- - out')), canvas))),
    section('Producers', prodBox), section('Subscriptions', subBox, peekBox));
  const samples = [];
  let subsShown = '';
  poll(gen, async () => {
    const s = await api('GET', topicPath(t, n, topic) + '/stats');
    const subs = s.subscriptions || {};
    const backlog = Object.values(subs).reduce((a, x) => a + (x.msgBacklog || 0), 0);
    const items = [['msg/s in', fmtNum(s.msgRateIn)], ['msg/s out', fmtNum(s.msgRateOut)],
                   ['bytes/s in', fmtBytes(s.msgThroughputIn)], ['bytes/s out', fmtBytes(s.msgThroughputOut)],
                   ['messages in (total)', fmtNum(s.msgInCounter, 0)], ['backlog', fmtNum(backlog, 0)],
                   ['storage size', fmtBytes(s.storageSize)], ['backlog size', fmtBytes(s.backlogSize)]];
    kv.replaceChildren(...items.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    const now = Date.now();
    samples.push({ts: now, in: s.msgRateIn || 0, out: s.msgRateOut || 0});
    while (samples.length && samples[0].ts < now - CHART_WINDOW_MS) samples.shift();
    drawChart(canvas, samples);
    prodBox.replaceChildren(table(['producer', 'msg/s in', 'address', 'connected since'],
      (s.publishers || []).map(p => [p.producerName || String(p.producerId), fmtNum(p.msgRateIn),
                                     p.address || '-', p.connectedSince || '-']), [false, true, false, false]));
    /* the rows (with their inputs) are rebuilt only when the subscriptions change; the
     * numbers in them every poll */
    const names = Object.keys(subs).sort();
    if (names.join('\u0000') !== subsShown) {
      subsShown = names.join('\u0000');
      subBox.replaceChildren(...names.map(name => el('div', {class: 'sub', 'data-name': name},
        el('h2', {}, 'Subscription ' + name), el('div', {class: 'sub-stats'}),
        subActions(t, n, topic, name, peekBox))));
    }
    for (const box of subBox.querySelectorAll('div.sub')) {
      const x = subs[box.dataset.name];
      const cons = x.consumers || [];
      box.querySelector('.sub-stats').replaceChildren(
        table(['type', 'backlog', 'unacked', 'msg/s out', 'consumers'],
              [[x.type || '-', fmtNum(x.msgBacklog, 0), fmtNum(x.unackedMessages, 0),
                fmtNum(x.msgRateOut), fmtNum(cons.length, 0)]], [false, true, true, true, true]),
        cons.length ? table(['consumer', 'unacked', 'permits', 'msg/s out', 'address'],
          cons.map(c => [c.consumerName || '-', fmtNum(c.unackedMessages, 0), fmtNum(c.availablePermits, 0),
                         fmtNum(c.msgRateOut), c.address || '-']), [false, true, true, true, false]) : null);
    }
  });
}

/* ---- navigation -------------------------------------------------------------------------- */

async function route() {
  const gen = ++viewGen;
  clearTimeout(pollTimer);
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(p => p !== '');
  let names;
  try {
    names = parts.slice(1).map(decodeURIComponent);
  } catch (e) {
    setStatus('bad address: ' + location.hash, true);
    return;
  }
  setStatus('');
  try {
    if (parts[0] === 'tenant' && names.length === 1) await viewTenant(gen, ...names);
    else if (parts[0] === 'ns' && names.length === 2) await viewNamespace(gen, ...names);
    else if (parts[0] === 'topic' && names.length === 3) await viewTopic(gen, ...names);
    else await viewHome(gen);
  } catch (e) {
    if (!(e instanceof Stale) && gen === viewGen) setStatus(e.message, true);
  }
}

function init() {
  const tok = document.getElementById('token');
  tok.value = token();
  tok.addEventListener('change', () => {
    if (tok.value === token()) return;
    if (tok.value) sessionStorage.setItem(TOKEN_KEY, tok.value);
    else sessionStorage.removeItem(TOKEN_KEY);
    route();
  });
  window.addEventListener('hashchange', route);
  route();
}

document.addEventListener('DOMContentLoaded', init);
