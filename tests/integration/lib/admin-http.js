'use strict';
// admin-http.js - limits and timeouts of the admin HTTP server, over raw sockets.
//
//   node admin-http.js --port P --read-timeout S --idle-timeout S --header-limit BYTES
//
// Prints one "PASS: ..." or "FAIL: ..." line per check and a "FIGURES: ..." line; exits 1 if
// any check failed. Every wait is bounded (a generous deadline); no check asserts on how
// fast something happened, only that it happened before its deadline.
const net = require('node:net');
const http = require('node:http');

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const PORT = Number(arg('port'));
const READ_S = Number(arg('read-timeout', 10));
const IDLE_S = Number(arg('idle-timeout', 30));
const LIMIT = Number(arg('header-limit', 8192));
let failed = 0;
const figures = [];
const pass = (m) => console.log(`PASS: ${m}`);
const fail = (m) => { failed++; console.log(`FAIL: ${m}`); };

// A raw connection: collects what the server sends, notes when it closes.
function open() {
  return new Promise((resolve, reject) => {
    const s = net.connect(PORT, '127.0.0.1');
    const c = { s, data: '', closed: false, error: null, t0: Date.now(), closedAt: 0 };
    c.done = new Promise((r) => { c.markClosed = r; });
    s.on('data', (d) => { c.data += d.toString('latin1'); });
    s.on('error', (e) => { c.error = e.code || e.message; });
    s.on('close', () => { c.closed = true; c.closedAt = Date.now(); c.markClosed(); });
    s.once('connect', () => resolve(c));
    s.once('error', reject);
  });
}

// Resolves true when c is closed by the server within ms, false otherwise.
function closedWithin(c, ms) {
  return Promise.race([c.done.then(() => true), new Promise((r) => setTimeout(() => r(false), ms))]);
}

function status(c) {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(c.data);
  return m ? Number(m[1]) : 0;
}

// Write a big buffer in chunks, respecting back-pressure; stops quietly if the socket fails.
function writeAll(c, total, chunk) {
  return new Promise((resolve) => {
    let sent = 0;
    const buf = Buffer.alloc(chunk, 'a');
    const pump = () => {
      while (sent < total && !c.closed && !c.error) {
        sent += chunk;
        if (!c.s.write(buf)) return c.s.once('drain', pump);
      }
      resolve(sent);
    };
    c.s.on('error', () => resolve(sent));
    c.s.on('close', () => resolve(sent));
    pump();
  });
}

// An ordinary request on its own connection; resolves the status (0 on failure).
function get(path, timeoutMs = 5000) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: PORT, path, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => { req.destroy(); resolve(0); });
    req.on('error', () => resolve(0));
  });
}

async function metric(name, labels = '') {
  const text = await new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port: PORT, path: '/metrics', agent: false }, (res) => {
      let d = '';
      res.on('data', (x) => { d += x; });
      res.on('end', () => resolve(d));
    }).on('error', () => resolve(''));
  });
  const re = new RegExp(`^${name}${labels.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : NaN;
}

async function bigHeader(mb) {
  // A header of mb MB while another client keeps asking for /status.html: the big one is
  // refused (431, or closed if the server had to stop reading), the other is answered.
  const c = await open();
  const t0 = Date.now();
  c.s.write('GET /status.html HTTP/1.1\r\nHost: x\r\nX-Big: ');
  const sending = writeAll(c, mb << 20, 64 << 10);
  const others = [];
  let busy = true;
  sending.then(() => { busy = false; });
  const poll = (async () => {
    do {
      others.push(await get('/admin/v2/brokers/ready', 5000));
    } while (busy && others.length < 50);
  })();
  await sending;
  if (!c.closed && !c.error) c.s.write('\r\n\r\n');
  const closed = await closedWithin(c, 15000);
  await poll;
  const st = status(c);
  figures.push(`${mb}MB header: ${st || 'closed'} in ${Date.now() - t0} ms`);
  if ((st === 431 || (st === 0 && (closed || c.error))) && closed)
    pass(`a ${mb} MB header is refused (${st ? '431' : `closed: ${c.error || 'EOF'}`}) and the connection closed`);
  else fail(`a ${mb} MB header: status ${st}, closed ${closed}, error ${c.error}, got ${JSON.stringify(c.data.slice(0, 80))}`);
  if (others.length > 0 && others.every((x) => x === 200))
    pass(`another client was answered meanwhile (${others.length} requests, all 200)`);
  else fail(`another client during the ${mb} MB header: ${others.join(',')}`);
}

async function main() {
  const fds0 = await metric('process_open_fds');
  // Baseline: a normal request, and a header just under the limit.
  if ((await get('/status.html')) === 200) pass('a plain request is answered 200');
  else fail('a plain request is not answered');
  {
    const c = await open();
    const pad = 'a'.repeat(LIMIT - 200);
    c.s.write(`GET /status.html HTTP/1.1\r\nHost: x\r\nX-Pad: ${pad}\r\nConnection: close\r\n\r\n`);
    await closedWithin(c, 5000);
    if (status(c) === 200) pass(`a ${LIMIT - 200}-byte header field is accepted`);
    else fail(`a header under the limit: ${JSON.stringify(c.data.slice(0, 80))}`);
  }

  await bigHeader(1);
  await bigHeader(64);

  // Just over the limit in a single write.
  {
    const c = await open();
    c.s.write(`GET /status.html HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(LIMIT)}\r\n\r\n`);
    await closedWithin(c, 5000);
    const body = c.data.slice(c.data.indexOf('\r\n\r\n') + 4);
    if (status(c) === 431 && /"reason":"Request header is larger than/.test(body) && c.closed)
      pass(`a head of ${LIMIT + 40} bytes gets 431 with a reason, then the close`);
    else fail(`a head just over the limit: ${JSON.stringify(c.data.slice(0, 200))} closed ${c.closed}`);
  }

  // A request line over the limit (a name far too long for any path): 414, as Jetty.
  {
    const c = await open();
    c.s.write(`PUT /admin/v2/persistent/public/default/${'t'.repeat(200000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await closedWithin(c, 5000);
    if (status(c) === 414 && /"reason":"Request line is longer than/.test(c.data) && c.closed)
      pass('a 200,000-byte topic name in the path gets 414 with a reason, then the close');
    else fail(`a 200,000-byte request line: ${JSON.stringify(c.data.slice(0, 200))} closed ${c.closed}`);
  }

  // Too many header fields, each tiny (the whole head is far under the size limit).
  {
    const c = await open();
    let head = 'GET /status.html HTTP/1.1\r\nHost: x\r\n';
    for (let i = 0; i < 150; i++) head += `a${i}:1\r\n`;
    c.s.write(`${head}\r\n`);
    await closedWithin(c, 5000);
    if (status(c) === 431 && /header fields/.test(c.data) && c.closed)
      pass(`150 header fields (${head.length} bytes) get 431 and the close`);
    else fail(`150 header fields: ${JSON.stringify(c.data.slice(0, 200))} closed ${c.closed}`);
    const c2 = await open();
    head = 'GET /status.html HTTP/1.1\r\nHost: x\r\n';
    for (let i = 0; i < 90; i++) head += `a${i}:1\r\n`;
    c2.s.write(`${head}Connection: close\r\n\r\n`);
    await closedWithin(c2, 5000);
    if (status(c2) === 200) pass('92 header fields are accepted');
    else fail(`92 header fields: ${JSON.stringify(c2.data.slice(0, 120))}`);
  }

  // A partial head that then stalls: 408 (or the close) after the read timeout.
  {
    const c = await open();
    c.s.write('GET /status.html HTTP/1.1\r\nHost: x\r\nX-Partial: ');
    const closed = await closedWithin(c, (READ_S + 10) * 1000);
    figures.push(`stalled head closed after ${c.closedAt - c.t0} ms (read timeout ${READ_S} s)`);
    if (closed && (status(c) === 408 || status(c) === 0))
      pass(`a stalled partial head is answered ${status(c) || 'with the close'} and closed within ${READ_S + 10} s`);
    else fail(`a stalled partial head: closed ${closed}, ${JSON.stringify(c.data.slice(0, 80))}`);
  }

  // Slowloris: a byte every 250 ms (never idle for the idle timeout), never finishing.
  {
    const c = await open();
    c.s.write('GET /status.html HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => { if (!c.closed) c.s.write('X'); }, 250);
    const closed = await closedWithin(c, (READ_S + 10) * 1000);
    clearInterval(drip);
    figures.push(`slowloris closed after ${c.closedAt - c.t0} ms`);
    if (closed && (status(c) === 408 || status(c) === 0))
      pass(`a head dripped a byte at a time is cut off (${status(c) || 'closed'}) within ${READ_S + 10} s`);
    else fail(`slowloris: closed ${closed}, ${JSON.stringify(c.data.slice(0, 80))}`);
  }

  // A body that never completes.
  {
    const c = await open();
    c.s.write('PUT /admin/v2/tenants/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a":');
    const closed = await closedWithin(c, (READ_S + 10) * 1000);
    if (closed) pass(`an unfinished body is cut off (${status(c) || 'closed'}) within ${READ_S + 10} s`);
    else fail('an unfinished body keeps its connection');
  }

  // Keep-alive: several requests on one connection, then idle: closed after the idle timeout.
  {
    const c = await open();
    for (let i = 0; i < 3; i++) {
      const before = c.data.length;
      c.s.write('GET /status.html HTTP/1.1\r\nHost: x\r\n\r\n');
      const t = Date.now();
      while (c.data.length - before < 20 && Date.now() - t < 5000) await new Promise((r) => setTimeout(r, 20));
    }
    const answers = (c.data.match(/HTTP\/1\.1 200/g) || []).length;
    if (answers === 3 && !c.closed) pass('three requests answered on one kept-alive connection');
    else fail(`keep-alive: ${answers} answers, closed ${c.closed}`);
    const closed = await closedWithin(c, (IDLE_S + 10) * 1000);
    figures.push(`idle keep-alive closed after ${c.closedAt - c.t0} ms (idle timeout ${IDLE_S} s)`);
    if (closed) pass(`an idle kept-alive connection is closed within ${IDLE_S + 10} s`);
    else fail('an idle kept-alive connection stays open');
  }

  // A connection that never sends anything.
  {
    const c = await open();
    const closed = await closedWithin(c, (IDLE_S + 10) * 1000);
    if (closed && c.data === '') pass(`a silent connection is closed within ${IDLE_S + 10} s`);
    else fail(`a silent connection: closed ${closed}`);
  }

  // 100 connections holding partial heads are all closed (none kept), and the server works.
  {
    const cs = await Promise.all([...Array(100)].map(() => open()));
    cs.forEach((c) => c.s.write('GET / HTTP/1.1\r\nHost: x\r\nX-A: '));
    const closed = await Promise.all(cs.map((c) => closedWithin(c, (READ_S + 15) * 1000)));
    const n = closed.filter(Boolean).length;
    if (n === 100) pass('100 connections with stalled heads are all closed');
    else fail(`${100 - n} of 100 stalled connections still open`);
    if ((await get('/status.html')) === 200) pass('the server answers afterwards');
    else fail('the server does not answer after the stalled connections');
  }

  const open_requests = await metric('magnetar_admin_requests_open');
  if (open_requests === 1) pass('no admin request left open (magnetar_admin_requests_open 1)');
  else fail(`magnetar_admin_requests_open ${open_requests}`);
  const size = await metric('magnetar_admin_refused_total', '{reason="header_size"}');
  const uri = await metric('magnetar_admin_refused_total', '{reason="uri_size"}');
  const count = await metric('magnetar_admin_refused_total', '{reason="header_count"}');
  const tmo = await metric('magnetar_admin_refused_total', '{reason="read_timeout"}');
  const counted = `header_size ${size}, uri_size ${uri}, header_count ${count}, read_timeout ${tmo}`;
  if (size >= 3 && uri >= 1 && count >= 1 && tmo >= 3) pass(`refusals counted: ${counted}`);
  else fail(`refusals counted: ${counted}`);
  // Descriptors back to where they were (bounded wait for the last closes).
  let fds = NaN;
  for (let i = 0; i < 50; i++) {
    fds = await metric('process_open_fds');
    if (fds <= fds0 + 2) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  figures.push(`open fds ${fds0} before, ${fds} after`);
  if (fds <= fds0 + 2) pass(`descriptors back to the start (${fds0} -> ${fds})`);
  else fail(`descriptors leaked: ${fds0} -> ${fds}`);
  console.log(`FIGURES: ${figures.join('; ')}`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.log(`FAIL: ${e.stack}`); process.exit(1); });
