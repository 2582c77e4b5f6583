// console-browser.js - drive the web console in Debian's chromium (headless, puppeteer-core)
// against a running magnetar; run by tests/integration/console.test.sh.
//
//   node console-browser.js --admin URL --topic NAME --script-topic NAME --create NAME
//                           --screenshot FILE [--chromium PATH] [--token JWT] [--insecure-tls 1]
//                           [--clear TOPIC/SUB/N]
//                           [--peek-topic T --peek-sub S --peek-payloads A,B --peek-key K
//                            --peek-prop k=v]
// (--insecure-tls: accept the test's own CA for an https:// URL)
//
// Checks, each printed as PASS:/FAIL: (exit 1 if any failed, 2 if the browser cannot run):
//   - the namespace view's topic table lists NAME with a rate in above 0 (traffic is running);
//   - the topic view's chart has samples and a maximum msg/s in above 0;
//   - the topic named --script-topic (e.g. "<script>") shows as text: a link whose text is
//     that name, and no element parsed from it (no <script> in the view, no extra script);
//   - one action: creating topic --create through the form (confirm accepted); the caller
//     verifies it through the REST API;
//   - with --token: the token typed in the header is kept in sessionStorage, not localStorage;
//   - a screenshot of the topic view (PNG) is written to FILE;
//   - with --clear: a second action, on topic TOPIC whose subscription SUB has a backlog of
//     N: its "Clear backlog" button (confirm accepted) until the page shows a backlog of 0;
//     the caller verifies it through the REST API.
//   - with --peek-topic: a third action, on topic T whose subscription S has one batch entry
//     of the messages A, B... (key K, property k=v) first in its backlog: its "Peek" button
//     (confirm accepted) shows each message of that entry, with its id (L:E:index), key,
//     property and payload, all as text (a payload that looks like HTML creates no element).
// Every wait is bounded (DEADLINE_MS each); errors in the page's console are reported.
'use strict';

const fs = require('node:fs');
const puppeteer = require('puppeteer-core');

const DEADLINE_MS = 30000;

function args() {
  const a = {chromium: '/usr/bin/chromium'};
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) {
    if (!v[i].startsWith('--') || i + 1 >= v.length) throw new Error('bad argument ' + v[i]);
    a[v[i].slice(2).replace(/-(.)/g, (m, c) => c.toUpperCase())] = v[i + 1];
  }
  for (const k of ['admin', 'topic', 'scriptTopic', 'create', 'screenshot'])
    if (!a[k]) throw new Error('missing --' + k);
  return a;
}

let failed = 0;
function pass(m) { console.log('PASS: ' + m); }
function fail(m) { failed++; console.log('FAIL: ' + m); }


async function main() {
  const a = args();
  if (!fs.existsSync(a.chromium)) {
    console.log('FAIL: no chromium at ' + a.chromium + ' (scripts/setup.sh --test installs it)');
    process.exit(2);
  }
  let browser;
  try {
    browser = await puppeteer.launch({
      executablePath: a.chromium,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
             '--disable-extensions'],
      timeout: DEADLINE_MS,
      acceptInsecureCerts: a.insecureTls === '1',
    });
  } catch (e) {
    console.log('FAIL: chromium cannot start: ' + e.message);
    process.exit(2);
  }
  const page = await browser.newPage();
  await page.setViewport({width: 1100, height: 900});
  const pageErrors = [];
  page.on('pageerror', e => pageErrors.push(e.message));
  // (a request answered 4xx is logged by chromium as "Failed to load resource": the page
  // shows those in its status line, checked after each view)
  page.on('console', m => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push(m.text());
  });
  const dialogs = [];
  page.on('dialog', d => { dialogs.push(d.message()); d.accept(); });
  // anything the page asks of another origin is refused and counted
  const foreign = [];
  const origin = new URL(a.admin).origin;
  await page.setRequestInterception(true);
  page.on('request', r => {
    if (!r.url().startsWith(origin) && !r.url().startsWith('data:')) { foreign.push(r.url()); r.abort(); }
    else r.continue();
  });

  try {
    await page.goto(a.admin + '/', {waitUntil: 'load', timeout: DEADLINE_MS});
    if (a.token) {
      await page.type('#token', a.token);
      await page.$eval('#token', e => e.blur()); // the change event, as a user leaving the field
      const kept = await page.evaluate(() => ({s: sessionStorage.getItem('magnetar.token'),
                                               l: localStorage.length}));
      if (kept.s === a.token && kept.l === 0) pass('token kept in sessionStorage only');
      else fail('token storage: sessionStorage ' + JSON.stringify(kept.s) + ', localStorage ' + kept.l);
    }
    // navigate as a user does: home -> tenant public -> namespace public/default
    const clickLink = async text => {
      await page.waitForFunction(t => [...document.querySelectorAll('#view a')].some(x => x.textContent === t),
                                 {timeout: DEADLINE_MS}, text);
      await page.evaluate(t => [...document.querySelectorAll('#view a')].find(x => x.textContent === t).click(), text);
    };
    await clickLink('public');
    pass('home view lists the tenant public');
    await clickLink('public/default');
    pass('tenant view lists the namespace public/default');
    await page.waitForFunction(name => {
      for (const tr of document.querySelectorAll('#topics tbody tr')) {
        const cells = [...tr.children].map(c => c.textContent);
        if (cells[0] === name && parseFloat(cells[1].replace(/,/g, '')) > 0) return true;
      }
      return false;
    }, {timeout: DEADLINE_MS}, a.topic);
    pass('topic table lists ' + a.topic + ' with msg/s in > 0');
    const esc = await page.evaluate(name => ({
      link: [...document.querySelectorAll('#topics tbody a')].some(x => x.textContent === name),
      scriptsInView: document.querySelectorAll('#view script').length,
      scripts: document.scripts.length,
    }), a.scriptTopic);
    if (esc.link && esc.scriptsInView === 0 && esc.scripts === 1)
      pass('the topic named ' + a.scriptTopic + ' shows as text');
    else
      fail('escaping: ' + JSON.stringify(esc));

    // action: create a topic through the form
    await page.type('#new-topic', a.create);
    await Promise.all([
      page.waitForFunction(name => [...document.querySelectorAll('#topics tbody a')]
        .some(x => x.textContent === name), {timeout: DEADLINE_MS}, a.create),
      page.click('#create-topic button[type=submit]'),
    ]);
    if (dialogs.some(d => d.includes(a.create))) pass('create topic asked for confirmation and listed ' + a.create);
    else fail('create topic: no confirmation asked (' + JSON.stringify(dialogs) + ')');

    // topic view (from its link in the table): the chart fills
    await clickLink(a.topic);
    await page.waitForFunction(() => {
      const c = document.getElementById('chart');
      return c && Number(c.dataset.samples) >= 5 && Number(c.dataset.maxIn) > 0;
    }, {timeout: DEADLINE_MS});
    const chart = await page.$eval('#chart', c => ({...c.dataset}));
    pass('chart has ' + chart.samples + ' samples, max msg/s in ' + chart.maxIn + ', out ' + chart.maxOut);
    const subs = await page.$$eval('#subscriptions div.sub', d => d.map(x => x.dataset.name));
    if (subs.length > 0) pass('topic view shows subscriptions ' + subs.join(','));
    else fail('topic view shows no subscription');

    const status = await page.$eval('#status', s => (s.className === 'error' ? s.textContent : ''));
    if (status) fail('the page reports an error: ' + status);
    await page.screenshot({path: a.screenshot, type: 'png'});
    pass('screenshot written to ' + a.screenshot);

    if (a.clear) {
      const [topic, sub, n] = a.clear.split('/');
      await page.evaluate(h => { location.hash = h; }, '#/topic/public/default/' + encodeURIComponent(topic));
      const backlogOf = (name, want) => page.waitForFunction((nm, w) => {
        const box = [...document.querySelectorAll('#subscriptions div.sub')].find(d => d.dataset.name === nm);
        const cell = box && box.querySelector('.sub-stats tbody td:nth-child(2)');
        return cell && cell.textContent === w;
      }, {timeout: DEADLINE_MS}, name, want);
      await backlogOf(sub, n);
      const before = dialogs.length;
      await page.evaluate(nm => [...document.querySelectorAll('#subscriptions div.sub')]
        .find(d => d.dataset.name === nm).querySelector('button.clear-backlog').click(), sub);
      await backlogOf(sub, '0');
      if (dialogs.length === before + 1 && dialogs[before].includes(sub))
        pass('clear backlog of ' + sub + ' asked for confirmation; the page shows its backlog ' + n + ' -> 0');
      else fail('clear backlog: dialogs ' + JSON.stringify(dialogs.slice(before)));
    }
    if (a.peekTopic) {
      const want = a.peekPayloads.split(',');
      await page.evaluate(h => { location.hash = h; }, '#/topic/public/default/' + encodeURIComponent(a.peekTopic));
      const subBox = 'div.sub[data-name="' + a.peekSub + '"]';
      await page.waitForSelector('#subscriptions ' + subBox + ' button.peek-action', {timeout: DEADLINE_MS});
      const before = dialogs.length;
      await page.click('#subscriptions ' + subBox + ' button.peek-action');
      await page.waitForFunction(n => document.querySelectorAll('#view div.peek-msg').length === n,
                                 {timeout: DEADLINE_MS}, want.length);
      const shown = await page.$$eval('#view div.peek-msg', d => d.map(x => ({
        id: x.querySelector('.msg-id').textContent, key: x.querySelector('.msg-key').textContent,
        props: x.querySelector('.msg-props').textContent, payload: x.querySelector('pre.peek').textContent,
        elements: x.querySelector('pre.peek').children.length})));
      const ok = shown.every((m, i) => /^\d+:\d+:\d+$/.test(m.id) && m.id.endsWith(':' + i) &&
                             m.id.split(':').slice(0, 2).join(':') === shown[0].id.split(':').slice(0, 2).join(':') &&
                             m.key === a.peekKey && m.props === a.peekProp && m.payload === want[i] &&
                             m.elements === 0);
      if (ok && dialogs.length === before + 1 && dialogs[before].includes(a.peekSub))
        pass('peek (confirmed) shows the batch entry\'s ' + want.length + ' messages as text: ' +
             JSON.stringify(shown.map(m => [m.id, m.key, m.props, m.payload])));
      else fail('peek: ' + JSON.stringify(shown) + ', dialogs ' + JSON.stringify(dialogs.slice(before)));
    }
  } catch (e) {
    const status = await page.$eval('#status', s => s.textContent).catch(() => '?');
    fail(e.message + ' (at ' + page.url() + ', status line: ' + JSON.stringify(status) +
         ', dialogs: ' + JSON.stringify(dialogs) + ')');
    await page.screenshot({path: a.screenshot + '.failed.png'}).catch(() => {});
  }
  if (pageErrors.length) fail('errors in the page: ' + pageErrors.join(' | '));
  else pass('no error in the page');
  if (foreign.length) fail('the page asked for other origins: ' + foreign.join(' '));
  else pass('the page loads nothing from another origin');
  await browser.close();
  process.exit(failed ? 1 : 0);
}

main().catch(e => { console.log('FAIL: ' + e.stack); process.exit(1); });
