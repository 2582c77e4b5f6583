'use strict';
// validate.js - offline checks of the Kubernetes manifests under conf/kubernetes/.
//
//   node tests/kubernetes/validate.js --magnetar BIN        configs checked by a host binary
//   node tests/kubernetes/validate.js --root DIR [--user U:G] [--workdir /magnetar]
//                                                          ... by the binary inside an image
//                                                          root (chroot, as the image's user)
//   options: --manifests DIR (default conf/kubernetes), --image-env K=V (repeatable: the
//            image's own MAGNETAR_ variables), --self-test (also prove that broken copies of
//            the manifests are caught), --quiet
//
// 1. Schemas: every object of every *.yaml file is validated against the Kubernetes API
//    schemas of its apiVersion/kind (npm kubernetes-models: types, required fields, enums,
//    formats). An unknown apiVersion/kind is an error.
// 2. References inside each bundle (conf/kubernetes/cluster/ is one, every other file one):
//    namespaces exist; workload selectors match their pod labels; a StatefulSet's
//    serviceName is a headless Service; Service and PDB selectors match a pod template;
//    named target ports and probe ports exist; volume mounts have a volume or claim
//    template; configMap volumes name an existing ConfigMap; secret volumes list their
//    items (the Secrets themselves are made out of band: the check gives each item a sample
//    file); $(VAR) in env values is defined before; every container has resource requests
//    (and memory limit >= request).
// 3. magnetar containers: the issue's shape (broker Deployment of 2 with advertisedAddress
//    from status.podIP, probes on the admin paths or /status.html, and over HTTPS on the
//    TLS port when the container serves webServicePortTls, non-root uid 10000, grace period above
//    the broker's unload bound read from broker/svc/svc.c) and, above all, the
//    configuration each one would run with — the YAML files its ConfigMap mounts put at
//    --config, its MAGNETAR_ environment (downward-API values replaced by samples), its
//    --set arguments — is run through `magnetar config check`, and `config show` must show
//    each MAGNETAR_ value in effect.
// Exit 0 when everything holds; otherwise every problem is printed and the exit is 1.
const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const { spawnSync } = require('node:child_process');
const YAML = require('yaml');

const top = path.resolve(__dirname, '..', '..');

// ---------------------------------------------------------------- options
function parseArgs(argv) {
  const o = { manifests: path.join(top, 'conf', 'kubernetes'), magnetar: '', root: '',
              user: '10000:10000', workdir: '/magnetar', imageEnv: {}, selfTest: false,
              quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--manifests') o.manifests = path.resolve(val());
    else if (a === '--magnetar') o.magnetar = path.resolve(val());
    else if (a === '--root') o.root = path.resolve(val());
    else if (a === '--user') o.user = val();
    else if (a === '--workdir') o.workdir = val();
    else if (a === '--image-env') {
      const kv = val();
      const eq = kv.indexOf('=');
      if (eq < 1) usage(`--image-env ${kv}: expected KEY=VALUE`);
      o.imageEnv[kv.slice(0, eq)] = kv.slice(eq + 1);
    } else if (a === '--self-test') o.selfTest = true;
    else if (a === '--quiet') o.quiet = true;
    else usage(`unknown option ${a}`);
  }
  if (!o.magnetar === !o.root) usage('give exactly one of --magnetar BIN and --root DIR');
  return o;
}
function usage(msg) {
  console.error(`validate.js: ${msg}\nusage: validate.js (--magnetar BIN | --root DIR) [--manifests DIR] ` +
                '[--image-env K=V]... [--self-test] [--quiet]');
  process.exit(2);
}

// ---------------------------------------------------------------- loading
function yamlFiles(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...yamlFiles(p));
    else if (/\.ya?ml$/.test(e.name)) out.push(p);
  }
  return out;
}

// Returns [{file, index, obj}], pushing parse problems onto errors.
function loadManifests(dir, errors) {
  const objs = [];
  for (const file of yamlFiles(dir)) {
    const rel = path.relative(dir, file);
    const docs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'), { uniqueKeys: true });
    docs.forEach((d, index) => {
      for (const e of [...d.errors, ...d.warnings]) errors.push(`${rel}#${index}: YAML: ${e.message}`);
      const obj = d.toJS();
      if (obj === null || obj === undefined) return; // empty document
      objs.push({ file: rel, index, obj });
    });
  }
  return objs;
}

function bundleOf(rel) {
  const parts = rel.split(path.sep);
  return parts.length > 1 ? parts[0] + '/' : rel;
}

function describe(o) {
  const m = o.obj.metadata || {};
  return `${o.file}: ${o.obj.kind} ${m.namespace ? m.namespace + '/' : ''}${m.name}`;
}

// ---------------------------------------------------------------- 1. schemas
function modelFor(apiVersion, kind) {
  let mod;
  try {
    mod = require(`kubernetes-models/${apiVersion}`);
  } catch (e) {
    return null;
  }
  return typeof mod[kind] === 'function' ? mod[kind] : null;
}

function checkSchemas(objs, errors) {
  for (const o of objs) {
    const { apiVersion, kind } = o.obj;
    if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
      errors.push(`${o.file}#${o.index}: apiVersion and kind are required`);
      continue;
    }
    const Model = modelFor(apiVersion, kind);
    if (!Model) {
      errors.push(`${describe(o)}: no Kubernetes API schema for ${apiVersion} ${kind}`);
      continue;
    }
    try {
      new Model(o.obj).validate();
    } catch (e) {
      errors.push(`${describe(o)}: schema: ${e.message}`);
    }
  }
}

// ---------------------------------------------------------------- 2. references
const NAMESPACED = new Set(['ConfigMap', 'Service', 'Pod', 'Deployment', 'StatefulSet',
                            'PodDisruptionBudget', 'Secret', 'ServiceAccount']);

// Pod-bearing objects as {o, ns, name, labels, spec, claimTemplates}
function podTemplates(objs) {
  const out = [];
  for (const o of objs) {
    const k = o.obj.kind;
    const ns = (o.obj.metadata || {}).namespace;
    if (k === 'Pod') {
      out.push({ o, ns, name: o.obj.metadata.name, labels: o.obj.metadata.labels || {},
                 spec: o.obj.spec || {}, claimTemplates: [] });
    } else if (k === 'Deployment' || k === 'StatefulSet') {
      const t = (o.obj.spec || {}).template || {};
      out.push({ o, ns, name: o.obj.metadata.name, labels: (t.metadata || {}).labels || {},
                 spec: t.spec || {},
                 claimTemplates: (o.obj.spec.volumeClaimTemplates || []).map((c) => c.metadata.name) });
    }
  }
  return out;
}

const matches = (selector, labels) =>
  Object.keys(selector || {}).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels[k] === v);

function checkReferences(objs, errors) {
  const bundles = new Map();
  for (const o of objs) {
    const b = bundleOf(o.file);
    if (!bundles.has(b)) bundles.set(b, []);
    bundles.get(b).push(o);
  }
  for (const [bundle, list] of bundles) {
    const namespaces = new Set(list.filter((o) => o.obj.kind === 'Namespace').map((o) => o.obj.metadata.name));
    const byKind = (k, ns) => list.filter((o) => o.obj.kind === k && o.obj.metadata.namespace === ns);
    const pods = podTemplates(list);
    for (const o of list) {
      const md = o.obj.metadata || {};
      if (NAMESPACED.has(o.obj.kind)) {
        if (!md.namespace) errors.push(`${describe(o)}: no metadata.namespace`);
        else if (!namespaces.has(md.namespace)) {
          errors.push(`${describe(o)}: namespace ${md.namespace} is not created in ${bundle}`);
        }
      }
    }
    for (const o of list) {
      const k = o.obj.kind;
      const ns = o.obj.metadata.namespace;
      if (k === 'Deployment' || k === 'StatefulSet') {
        const sel = ((o.obj.spec || {}).selector || {}).matchLabels;
        const labels = (((o.obj.spec || {}).template || {}).metadata || {}).labels || {};
        if (!matches(sel, labels)) errors.push(`${describe(o)}: selector does not match the pod template's labels`);
      }
      if (k === 'StatefulSet') {
        const svc = byKind('Service', ns).find((s) => s.obj.metadata.name === o.obj.spec.serviceName);
        if (!svc) errors.push(`${describe(o)}: serviceName ${o.obj.spec.serviceName} is not a Service here`);
        else if (svc.obj.spec.clusterIP !== 'None') errors.push(`${describe(o)}: Service ${o.obj.spec.serviceName} is not headless`);
      }
      if (k === 'Service') {
        const sel = o.obj.spec.selector;
        const targets = pods.filter((p) => p.ns === ns && matches(sel, p.labels));
        if (!targets.length) errors.push(`${describe(o)}: selector matches no pod template`);
        for (const port of o.obj.spec.ports || []) {
          if (typeof port.targetPort !== 'string') continue;
          for (const p of targets) {
            const names = (p.spec.containers || []).flatMap((c) => (c.ports || []).map((x) => x.name));
            if (!names.includes(port.targetPort)) {
              errors.push(`${describe(o)}: targetPort ${port.targetPort} is not a port of ${p.name}`);
            }
          }
        }
      }
      if (k === 'PodDisruptionBudget') {
        const sel = (o.obj.spec.selector || {}).matchLabels;
        if (!pods.some((p) => p.ns === ns && matches(sel, p.labels))) {
          errors.push(`${describe(o)}: selector matches no pod template`);
        }
      }
    }
    for (const p of pods) {
      const where = `${describe(p.o)}`;
      const volumes = new Set([...(p.spec.volumes || []).map((v) => v.name), ...p.claimTemplates]);
      for (const v of p.spec.volumes || []) {
        if (v.configMap && !byKind('ConfigMap', p.ns).some((c) => c.obj.metadata.name === v.configMap.name)) {
          errors.push(`${where}: volume ${v.name}: ConfigMap ${v.configMap.name} is not defined here`);
        }
        if (v.secret && !(v.secret.items || []).length) {
          errors.push(`${where}: volume ${v.name}: secret ${v.secret.secretName} lists no items (its files must be named)`);
        }
      }
      for (const c of [...(p.spec.initContainers || []), ...(p.spec.containers || [])]) {
        const cw = `${where} container ${c.name}`;
        for (const m of c.volumeMounts || []) {
          if (!volumes.has(m.name)) errors.push(`${cw}: volumeMount ${m.name} has no volume or claim template`);
        }
        const portNames = new Set((c.ports || []).map((x) => x.name).filter(Boolean));
        for (const probeName of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
          const pr = c[probeName];
          if (!pr) continue;
          const h = pr.httpGet || pr.tcpSocket;
          if (h && typeof h.port === 'string' && !portNames.has(h.port)) {
            errors.push(`${cw}: ${probeName} port ${h.port} is not a named container port`);
          }
        }
        const defined = new Set();
        for (const e of c.env || []) {
          for (const m of String(e.value || '').matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
            if (!defined.has(m[1])) errors.push(`${cw}: env ${e.name} uses $(${m[1]}) before it is defined`);
          }
          defined.add(e.name);
        }
        const req = (c.resources || {}).requests;
        if (!req || !req.cpu || !req.memory) errors.push(`${cw}: no cpu and memory requests`);
        const lim = (c.resources || {}).limits;
        if (req && lim && lim.memory && bytes(lim.memory) < bytes(req.memory)) {
          errors.push(`${cw}: memory limit ${lim.memory} below the request ${req.memory}`);
        }
      }
    }
  }
}

function bytes(q) {
  const m = /^(\d+(?:\.\d+)?)([KMGT]i?)?$/.exec(String(q));
  if (!m) return NaN;
  const mult = { K: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };
  return Number(m[1]) * (m[2] ? mult[m[2]] : 1);
}

// ---------------------------------------------------------------- 3. magnetar containers
// The broker's shutdown bound (unload bundles, flush cursors, close clients) is the
// brokerShutdownTimeoutMs in effect for that container, read from `magnetar config show`.
function unloadBoundSeconds(showOutput) {
  const line = (showOutput || '').split('\n').find((l) => l.startsWith('brokerShutdownTimeoutMs:'));
  if (!line) throw new Error('brokerShutdownTimeoutMs not in magnetar config show');
  return Number(line.split(':')[1].trim()) / 1000;
}

function magnetarContainers(objs) {
  const out = [];
  for (const p of podTemplates(objs)) {
    for (const c of p.spec.containers || []) {
      if (/^(.*\/)?magnetar(:|@|$)/.test(c.image || '')) out.push({ p, c });
    }
  }
  return out;
}

// Sample values for the downward API, as the kubelet would fill them in.
function fieldSample(fieldPath, p) {
  switch (fieldPath) {
    case 'status.podIP': return '10.244.1.23';
    case 'status.hostIP': return '192.168.1.10';
    case 'metadata.name': return p.o.obj.kind === 'StatefulSet' ? `${p.name}-0` : `${p.name}-7d9f8c6b5-x2k4q`;
    case 'metadata.namespace': return p.ns;
    case 'spec.nodeName': return 'node-1';
    default: return null;
  }
}

function containerEnv(p, c, errors, where) {
  const env = {};
  for (const e of c.env || []) {
    let v;
    if (e.valueFrom) {
      if (e.valueFrom.fieldRef) {
        v = fieldSample(e.valueFrom.fieldRef.fieldPath, p);
        if (v === null) errors.push(`${where}: env ${e.name}: no sample for fieldRef ${e.valueFrom.fieldRef.fieldPath}`);
      } else {
        errors.push(`${where}: env ${e.name}: only fieldRef valueFrom is understood by this check`);
      }
    } else {
      v = String(e.value ?? '').replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n) => (n in env ? env[n] : m));
    }
    env[e.name] = v ?? '';
  }
  return env;
}

// A Secret's item as the check supplies it (the Secret is made out of band): 48 bytes, enough
// for a tokenSecretKey (HS256 needs 32) and one line for a token file.
const SECRET_SAMPLE = 's'.repeat(48);

// Files a container sees from its configMap volumes and (as samples) its secret volumes:
// {absPath: content}
function configFiles(p, c, objs) {
  const files = {};
  for (const m of c.volumeMounts || []) {
    const vol = (p.spec.volumes || []).find((v) => v.name === m.name);
    if (vol && vol.secret) {
      for (const it of vol.secret.items || []) files[path.posix.join(m.mountPath, it.path)] = SECRET_SAMPLE;
    }
    if (!vol || !vol.configMap) continue;
    const cm = objs.find((o) => o.obj.kind === 'ConfigMap' && o.obj.metadata.namespace === p.ns &&
                                o.obj.metadata.name === vol.configMap.name);
    if (!cm) continue;
    const data = cm.obj.data || {};
    const items = vol.configMap.items || Object.keys(data).map((k) => ({ key: k, path: k }));
    for (const it of items) {
      if (m.subPath) {
        if (it.path === m.subPath) files[m.mountPath] = data[it.key];
      } else {
        files[path.posix.join(m.mountPath, it.path)] = data[it.key];
      }
    }
  }
  return files;
}

// For the host binary the files live under tmp: their absolute paths inside values
// (MAGNETAR_tokenSecretKey=file:///magnetar/secrets/...) are mapped there.
function mapPaths(o, v, files, tmp) {
  if (o.root) return v;
  let out = v;
  for (const p of Object.keys(files)) out = out.split(p).join(path.join(tmp, p));
  return out;
}

function runMagnetar(o, args, env, files, tmp) {
  const mappedEnv = {};
  for (const [k, v] of Object.entries(env)) mappedEnv[k] = mapPaths(o, v, files, tmp);
  const cleanEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...mappedEnv };
  if (o.root) {
    for (const [p, content] of Object.entries(files)) {
      const dst = path.join(o.root, p);
      fs.mkdirSync(path.dirname(dst), { recursive: true });
      fs.writeFileSync(dst, content);
    }
    return spawnSync('chroot', [`--userspec=${o.user}`, o.root, '/bin/sh', '-c',
      'cd "$1" && shift && exec magnetar "$@"', 'sh', o.workdir, ...args],
    { env: cleanEnv, encoding: 'utf8' });
  }
  // host binary: the files go under tmp, paths in the arguments are mapped there; the
  // working directory is the source tree, whose conf/ is what the image puts in /magnetar
  const mapped = args.map((a) => (a in files ? path.join(tmp, a) : a));
  for (const [p, content] of Object.entries(files)) {
    const dst = path.join(tmp, p);
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    fs.writeFileSync(dst, content);
  }
  return spawnSync(o.magnetar, mapped, { env: cleanEnv, encoding: 'utf8', cwd: top });
}

function checkMagnetar(o, objs, errors, log) {
  const list = magnetarContainers(objs);
  if (!list.length) errors.push('no magnetar container in the manifests');
  const roles = {};
  let checked = 0;
  for (const { p, c } of list) {
    const where = `${describe(p.o)} container ${c.name}`;
    const args = [...(c.command || []), ...(c.args || [])];
    const role = args[0];
    if (!['standalone', 'broker', 'bookie'].includes(role)) {
      errors.push(`${where}: first argument ${role} is not standalone, broker or bookie`);
      continue;
    }
    roles[role] = (roles[role] || []).concat([{ p, c }]);
    // --- shape
    const sc = { ...(p.spec.securityContext || {}), ...(c.securityContext || {}) };
    if (sc.runAsNonRoot !== true || sc.runAsUser !== 10000) errors.push(`${where}: must run as non-root uid 10000`);
    if (role !== 'bookie') {
      const gets = ['readinessProbe', 'livenessProbe'].map((k) => (c[k] || {}).httpGet || {});
      for (const g of gets) {
        if (!/^(\/admin\/v2\/brokers\/(health|ready)|\/status\.html)$/.test(g.path || '')) {
          errors.push(`${where}: probes must GET /admin/v2/brokers/health, /ready or /status.html`);
        }
      }
      // a container serving HTTPS is probed there (its plain port may be for itself only)
      const tlsPort = ((c.env || []).find((e) => e.name === 'MAGNETAR_webServicePortTls') || {}).value;
      if (tlsPort) {
        const named = (c.ports || []).find((x) => String(x.containerPort) === String(tlsPort));
        for (const g of gets) {
          if (g.scheme !== 'HTTPS' || !(g.port === Number(tlsPort) || (named && g.port === named.name))) {
            errors.push(`${where}: with webServicePortTls=${tlsPort} the probes must be HTTPS on that port`);
          }
        }
      }
    } else {
      for (const k of ['readinessProbe', 'livenessProbe']) {
        if (!(c[k] || {}).tcpSocket) errors.push(`${where}: a bookie's ${k} is a tcpSocket probe (no admin HTTP)`);
      }
    }
    // --- configuration through magnetar itself
    const env = containerEnv(p, c, errors, where);
    const mgEnv = { ...o.imageEnv };
    for (const [k, v] of Object.entries(env)) if (k.startsWith('MAGNETAR_')) mgEnv[k] = v;
    const files = configFiles(p, c, objs);
    const ci = args.indexOf('--config');
    const cfgPath = ci >= 0 ? args[ci + 1] : null;
    if (cfgPath && !(cfgPath in files)) errors.push(`${where}: --config ${cfgPath} is not a file any ConfigMap mount provides`);
    const rest = args.slice(1);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-validate-'));
    try {
      const chk = runMagnetar(o, ['config', 'check', ...rest], mgEnv, files, tmp);
      if (chk.error) errors.push(`${where}: cannot run magnetar: ${chk.error.message}`);
      else if (chk.status !== 0) {
        errors.push(`${where}: magnetar config check refused it (exit ${chk.status}): ${(chk.stderr || chk.stdout).trim()}`);
        continue;
      }
      const show = runMagnetar(o, ['config', 'show', ...rest], mgEnv, files, tmp);
      if (role !== 'bookie') {
        const bound = unloadBoundSeconds(show.stdout);
        const g = p.spec.terminationGracePeriodSeconds;
        if (!(g > bound && g <= bound + 10)) {
          errors.push(`${where}: terminationGracePeriodSeconds ${g} does not match the unload bound of ${bound} s (brokerShutdownTimeoutMs; want ${bound + 1}..${bound + 10})`);
        }
      }
      for (const [k, v] of Object.entries(mgEnv)) {
        const key = k.slice('MAGNETAR_'.length);
        const line = (show.stdout || '').split('\n').find((l) => l.startsWith(`${key}:`));
        const shown = line ? line.slice(key.length + 1).trim().replace(/^"(.*)"$/, '$1') : undefined;
        if (shown !== mapPaths(o, v, files, tmp)) errors.push(`${where}: ${k}=${v} is not in effect (config show: ${line})`);
      }
      checked++;
      log(`ok   config  ${where}: magnetar ${role}${cfgPath ? ' --config ' + cfgPath : ''} with ` +
          `${Object.keys(mgEnv).join(', ') || 'no MAGNETAR_ variables'}: accepted`);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  // --- the cluster's shape (issue 6)
  const cluster = objs.filter((x) => x.file.startsWith(`cluster${path.sep}`));
  if (cluster.length) {
    const find = (kind, name) => cluster.find((x) => x.obj.kind === kind && x.obj.metadata.name === name);
    const zk = find('StatefulSet', 'zookeeper');
    if (!zk || zk.obj.spec.replicas !== 3) errors.push('cluster: ZooKeeper StatefulSet of 3 replicas expected');
    const bk = find('StatefulSet', 'bookie');
    if (!bk || !(bk.obj.spec.volumeClaimTemplates || []).some((t) => t.metadata.name === 'journal') ||
        !(bk.obj.spec.volumeClaimTemplates || []).some((t) => t.metadata.name === 'ledgers')) {
      errors.push('cluster: bookie StatefulSet with journal and ledgers volumeClaimTemplates expected');
    }
    const br = find('Deployment', 'broker');
    if (!br || br.obj.spec.replicas !== 2) errors.push('cluster: broker Deployment of 2 replicas expected');
    else {
      const c = br.obj.spec.template.spec.containers[0];
      const adv = (c.env || []).find((e) => e.name === 'MAGNETAR_advertisedAddress');
      const viaPodIp = adv && (((adv.valueFrom || {}).fieldRef || {}).fieldPath === 'status.podIP' ||
        (/^\$\((\w+)\)$/.test(adv.value || '') && (c.env || []).some((e) => `$(${e.name})` === adv.value &&
          ((e.valueFrom || {}).fieldRef || {}).fieldPath === 'status.podIP')));
      if (!viaPodIp) errors.push('cluster: the broker must advertise its pod IP (downward API status.podIP)');
    }
    const svc = find('Service', 'broker');
    const ports = svc ? (svc.obj.spec.ports || []).map((x) => x.port).sort() : [];
    if (JSON.stringify(ports) !== JSON.stringify([6650, 8080])) errors.push('cluster: broker Service for 6650 and 8080 expected');
    for (const n of ['zookeeper', 'bookie', 'broker']) {
      if (!find('PodDisruptionBudget', n)) errors.push(`cluster: no PodDisruptionBudget for ${n}`);
    }
  }
  return checked;
}

// ---------------------------------------------------------------- driver
function runAll(o, objs, log) {
  const errors = [];
  checkSchemas(objs, errors);
  checkReferences(objs, errors);
  const checked = checkMagnetar(o, objs, errors, log);
  return { errors, checked };
}

// Broken copies of the manifests, each of which must be refused.
function selfTest(o, objs) {
  const clone = () => objs.map((x) => ({ ...x, obj: structuredClone(x.obj) }));
  const find = (list, kind, name) => list.find((x) => x.obj.kind === kind && x.obj.metadata.name === name).obj;
  const cases = [
    ['a container port that is not an integer (schema)', (l) => {
      find(l, 'Deployment', 'broker').spec.template.spec.containers[0].ports[0].containerPort = 'six';
    }, /schema/],
    ['an unknown MAGNETAR_ variable (magnetar config check)', (l) => {
      find(l, 'Deployment', 'broker').spec.template.spec.containers[0].env.push({ name: 'MAGNETAR_noSuchKey', value: '1' });
    }, /refused it.*noSuchKey/],
    ['an unknown key in the broker ConfigMap (magnetar config check)', (l) => {
      const cm = find(l, 'ConfigMap', 'broker-config');
      cm.data['broker.yaml'] += 'brokerServicePorts: 6650\n';
    }, /refused it.*brokerServicePorts/],
    ['a bad value in the bookie ConfigMap (magnetar config check)', (l) => {
      const cm = find(l, 'ConfigMap', 'bookie-config');
      cm.data['bookie.yaml'] = cm.data['bookie.yaml'].replace('bookiePort: 3181', 'bookiePort: 70000');
    }, /refused it.*bookiePort/],
    ['a Service selecting no pods', (l) => {
      find(l, 'Service', 'broker').spec.selector = { 'app.kubernetes.io/name': 'brokr' };
    }, /selector matches no pod/],
    ['a secured pod probed on its plain port', (l) => {
      const c = find(l, 'Pod', 'magnetar-standalone-secured').spec.containers[0];
      c.readinessProbe.httpGet.scheme = 'HTTP';
    }, /probes must be HTTPS/],
    ['a secured pod whose token key is not mounted (magnetar config check)', (l) => {
      const c = find(l, 'Pod', 'magnetar-standalone-secured').spec.containers[0];
      c.volumeMounts = c.volumeMounts.filter((m) => m.name !== 'token-key');
      find(l, 'Pod', 'magnetar-standalone-secured').spec.volumes =
        find(l, 'Pod', 'magnetar-standalone-secured').spec.volumes.filter((v) => v.name !== 'token-key');
    }, /refused it.*tokenSecretKey/],
    ['a grace period below the unload bound', (l) => {
      find(l, 'Deployment', 'broker').spec.template.spec.terminationGracePeriodSeconds = 5;
    }, /terminationGracePeriodSeconds/],
  ];
  const problems = [];
  for (const [what, mutate, want] of cases) {
    const l = clone();
    mutate(l);
    const { errors } = runAll(o, l, () => {});
    if (!errors.some((e) => want.test(e))) {
      problems.push(`self-test: ${what} was not caught (errors: ${errors.join(' | ') || 'none'})`);
    } else {
      console.log(`ok   self-test: caught ${what}`);
    }
  }
  return problems;
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  const log = o.quiet ? () => {} : (s) => console.log(s);
  const parseErrors = [];
  const objs = loadManifests(o.manifests, parseErrors);
  const { errors, checked } = runAll(o, objs, log);
  errors.unshift(...parseErrors);
  const files = new Set(objs.map((x) => x.file));
  const kinds = {};
  for (const x of objs) kinds[x.obj.kind] = (kinds[x.obj.kind] || 0) + 1;
  if (!errors.length) {
    for (const x of objs) log(`ok   schema  ${describe(x)}`);
  }
  if (o.selfTest && !errors.length) errors.push(...selfTest(o, objs));
  for (const e of errors) console.log(`FAIL ${e}`);
  console.log(`manifests: ${objs.length} objects in ${files.size} files ` +
    `(${Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(', ')}); ` +
    `${checked} magnetar containers' configurations accepted by magnetar config check; ` +
    `${errors.length} problems`);
  process.exit(errors.length ? 1 : 0);
}

main();
