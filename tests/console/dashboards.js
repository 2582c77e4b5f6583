// dashboards.js - check conf/grafana's dashboards and conf/prometheus's scrape configs
// against what magnetar really exposes; run by tests/integration/dashboards.test.sh.
//
//   node dashboards.js --metrics FILE[,FILE...] [--top DIR]
//
// FILE: a /metrics answer (Prometheus text exposition) saved after a short run. Checks,
// each printed as PASS:/FAIL: (exit 1 if any failed):
//   - every conf/grafana/*.json is a dashboard (JSON, title, uid, panels with unique ids);
//     every panel that is not a row has at least one query;
//   - every PromQL expression (panel queries and the template variables' label_values
//     queries) names only metrics some FILE exposes, with only label names those samples
//     carry (in a selector's matchers and in by (...)), plus the labels Prometheus adds
//     when it scrapes (job, instance); every ${var} / $var it uses is a template variable;
//   - conf/prometheus/*.yaml: the ServiceMonitor selects the broker Service of
//     conf/kubernetes/cluster/ by its labels and a port name that Service has, on /metrics;
//     the plain scrape config keeps those endpoints by the same Service label and port name.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const YAML = require('yaml');

function args() {
  const a = {top: path.resolve(__dirname, '..', '..')};
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) a[v[i].replace(/^--/, '')] = v[i + 1];
  if (!a.metrics) throw new Error('usage: node dashboards.js --metrics FILE[,FILE...] [--top DIR]');
  return a;
}

let failed = 0, passed = 0;
function pass(m) { passed++; console.log('PASS: ' + m); }
function fail(m) { failed++; console.log('FAIL: ' + m); }

/* The exposition's sample names and, for each, the label names its samples carry. */
function readMetrics(files) {
  const labels = new Map();
  for (const f of files) {
    for (const line of fs.readFileSync(f, 'utf8').split('\n')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+\S+/.exec(line);
      if (!m) continue;
      if (!labels.has(m[1])) labels.set(m[1], new Set());
      const set = labels.get(m[1]);
      for (const l of (m[3] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) set.add(l[1]);
    }
  }
  return labels;
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or',
                          'unless', 'bool', 'offset', 'inf', 'nan']);
const TARGET_LABELS = new Set(['job', 'instance']);

/* The metric names of a PromQL expression, each with the label names its matchers use, and
 * the label names of its by/without/on/ignoring groups. */
function parsePromQL(expr) {
  const out = {metrics: [], groupLabels: [], labelArgs: []};
  let s = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""'); // strings
  s = s.replace(/\[[^\]]*\]/g, '');                    // range and subquery durations
  // label_values(selector, label): the label is a label of the selector's metric
  s = s.replace(/label_values\s*\(([^,()]*(?:\{[^}]*\})?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)/g,
                (m, sel, label) => { out.labelArgs.push(label); return sel; });
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (m, kw, list) => {
    for (const l of list.split(',').map(x => x.trim()).filter(Boolean)) out.groupLabels.push(l);
    return ' ';
  });
  const re = /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{([^}]*)\})?(\s*\()?|\{([^}]*)\}/g;
  let m;
  while ((m = re.exec(s)) !== null) {
    if (m[5] !== undefined) continue; // a bare {matchers} (not used here)
    const name = m[1];
    if (m[4]) continue;               // a function call
    if (KEYWORDS.has(name.toLowerCase())) continue;
    const before = s.slice(0, m.index);
    if (/[0-9.]$/.test(before)) continue; // part of a number (1e3)
    const matcherLabels = [];
    for (const l of (m[3] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) matcherLabels.push(l[1]);
    out.metrics.push({name, matcherLabels});
  }
  return out;
}

function variablesUsed(expr) {
  const v = new Set();
  for (const m of expr.matchAll(/\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?::[^}]*)?\}|\$([a-zA-Z_][a-zA-Z0-9_]*)/g))
    v.add(m[1] || m[2]);
  return v;
}

function checkExpr(where, expr, exposed, vars) {
  const bad = [];
  for (const v of variablesUsed(expr))
    if (!vars.has(v) && !v.startsWith('__')) bad.push('unknown variable $' + v);
  const p = parsePromQL(expr.replace(/\$\{[^}]*\}|\$[a-zA-Z_][a-zA-Z0-9_]*/g, 'x'));
  if (!p.metrics.length) bad.push('names no metric');
  const seen = new Set();
  for (const {name, matcherLabels} of p.metrics) {
    const labels = exposed.get(name);
    if (!labels) { bad.push('metric ' + name + ' is not exposed'); continue; }
    for (const l of matcherLabels)
      if (!labels.has(l) && !TARGET_LABELS.has(l)) bad.push(name + ' has no label ' + l);
    for (const l of labels) seen.add(l);
  }
  for (const l of [...p.groupLabels, ...p.labelArgs])
    if (!seen.has(l) && !TARGET_LABELS.has(l)) bad.push('label ' + l + ' is on none of its metrics');
  if (bad.length) fail(where + ': ' + expr + ': ' + bad.join('; '));
  return {ok: !bad.length, metrics: p.metrics.map(x => x.name)};
}

function checkDashboard(file, exposed) {
  let d;
  try {
    d = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    fail(file + ': not JSON: ' + e.message);
    return;
  }
  const name = path.basename(file);
  if (typeof d.title !== 'string' || typeof d.uid !== 'string' || !Array.isArray(d.panels) || !d.panels.length) {
    fail(name + ': not a dashboard (title, uid, panels)');
    return;
  }
  const vars = new Set(((d.templating || {}).list || []).map(v => v.name));
  const all = [];
  const walk = ps => { for (const p of ps) { all.push(p); if (Array.isArray(p.panels)) walk(p.panels); } };
  walk(d.panels);
  const ids = all.map(p => p.id);
  if (new Set(ids).size !== ids.length || ids.some(i => !Number.isInteger(i))) fail(name + ': panel ids not unique integers');
  let exprs = 0, good = 0;
  const used = new Set();
  for (const p of all) {
    if (p.type === 'row') continue;
    const targets = (p.targets || []).filter(t => typeof t.expr === 'string' && t.expr.trim());
    if (!targets.length) fail(name + ': panel "' + p.title + '" has no query');
    for (const t of targets) {
      exprs++;
      const r = checkExpr(name + ' panel "' + p.title + '"', t.expr, exposed, vars);
      if (r.ok) good++;
      r.metrics.forEach(m => used.add(m));
    }
  }
  for (const v of (d.templating || {}).list || []) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : (v.query || {}).query;
    exprs++;
    if (checkExpr(name + ' variable ' + v.name, q, exposed, vars).ok) good++;
  }
  if (good === exprs)
    pass(name + ': all ' + exprs + ' expressions of ' + all.length + ' panels name exposed metrics and labels (' +
         used.size + ' metrics)');
}

function docs(file) {
  return YAML.parseAllDocuments(fs.readFileSync(file, 'utf8')).map(d => d.toJS()).filter(Boolean);
}

function checkScrapeConfigs(top) {
  const k8s = path.join(top, 'conf', 'kubernetes', 'cluster');
  const services = [];
  for (const f of fs.readdirSync(k8s).filter(f => f.endsWith('.yaml')))
    for (const o of docs(path.join(k8s, f))) if (o.kind === 'Service') services.push(o);
  const dir = path.join(top, 'conf', 'prometheus');
  let monitors = 0, jobs = 0;
  for (const f of fs.readdirSync(dir).filter(f => /\.ya?ml$/.test(f))) {
    for (const o of docs(path.join(dir, f))) {
      if (o.kind === 'ServiceMonitor') {
        monitors++;
        const sel = ((o.spec || {}).selector || {}).matchLabels || {};
        const nss = (((o.spec || {}).namespaceSelector || {}).matchNames) || [];
        const hit = services.filter(s => nss.includes(s.metadata.namespace) &&
          Object.entries(sel).every(([k, v]) => (s.metadata.labels || {})[k] === v));
        const eps = (o.spec || {}).endpoints || [];
        const ok = hit.length === 1 && eps.length > 0 && eps.every(e =>
          hit[0].spec.ports.some(p => p.name === e.port) && (e.path || '/metrics') === '/metrics');
        if (ok) pass(f + ': ServiceMonitor ' + o.metadata.name + ' selects Service ' + hit[0].metadata.name +
                     ' port ' + eps.map(e => e.port).join(',') + ' /metrics');
        else fail(f + ': ServiceMonitor ' + o.metadata.name + ' selects ' + hit.length + ' Service(s) of ' +
                  k8s + ' (want 1) or a port it does not have');
      }
      for (const sc of o.scrape_configs || []) {
        jobs++;
        const keep = (sc.relabel_configs || []).filter(r => r.action === 'keep');
        const svcLabel = keep.find(r => (r.source_labels || []).some(l => l.startsWith('__meta_kubernetes_service_label_')));
        const portName = keep.find(r => (r.source_labels || []).includes('__meta_kubernetes_endpoint_port_name'));
        const nss = (((sc.kubernetes_sd_configs || [])[0] || {}).namespaces || {}).names || [];
        const hit = services.filter(s => {
          if (!nss.includes(s.metadata.namespace) || !svcLabel || !portName) return false;
          const key = svcLabel.source_labels[0].replace('__meta_kubernetes_service_label_', '');
          const val = Object.entries(s.metadata.labels || {}).find(([k]) => k.replace(/[^a-zA-Z0-9_]/g, '_') === key);
          return val && new RegExp('^(?:' + svcLabel.regex + ')$').test(val[1]) &&
                 s.spec.ports.some(p => new RegExp('^(?:' + portName.regex + ')$').test(p.name));
        });
        if (hit.length === 1 && (sc.metrics_path || '/metrics') === '/metrics')
          pass(f + ': scrape job ' + sc.job_name + ' keeps the endpoints of Service ' + hit[0].metadata.name);
        else fail(f + ': scrape job ' + sc.job_name + ' keeps ' + hit.length + ' Service(s) of ' + k8s + ' (want 1)');
      }
    }
  }
  if (!monitors || !jobs) fail('conf/prometheus: want a ServiceMonitor and a scrape config, found ' + monitors + ' and ' + jobs);
}

function main() {
  const a = args();
  const exposed = readMetrics(a.metrics.split(','));
  if (exposed.size < 10) fail('only ' + exposed.size + ' metrics in ' + a.metrics);
  const gdir = path.join(a.top, 'conf', 'grafana');
  const files = fs.readdirSync(gdir).filter(f => f.endsWith('.json'));
  if (!files.length) fail('no dashboard in ' + gdir);
  for (const f of files) checkDashboard(path.join(gdir, f), exposed);
  checkScrapeConfigs(a.top);
  console.log(passed + ' passed, ' + failed + ' failed');
  process.exit(failed ? 1 : 0);
}

if (require.main === module) main();
module.exports = {parsePromQL};
