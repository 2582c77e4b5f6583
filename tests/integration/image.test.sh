#!/usr/bin/env bash
# image.test.sh - the container image and the Kubernetes manifests (issue 6).
#
#   tests/integration/image.test.sh        (as root; run by scripts/test.sh with MAGNETAR_BIN)
#
# 1. manifests: tests/kubernetes/validate.js checks every object of conf/kubernetes/ against
#    the Kubernetes API schemas (npm kubernetes-models, offline), their references, and runs
#    each magnetar container's configuration (ConfigMap files, MAGNETAR_ variables, args)
#    through `magnetar config check`; with --self-test it also shows broken copies are caught.
# 2. image: scripts/image.sh builds the Dockerfile with podman (base made with debootstrap
#    and cached in /var/tmp/magnetar-bookworm-base; layers cached in /var/tmp/magnetar-containers).
# 3. From the image's own root (a podman container's root filesystem, entered with chroot as
#    the image's user, in its working directory, with its environment, entrypoint and
#    command; podman run needs cgroups, which these machines lack):
#    - the image's metadata: non-root user, entrypoint, command, ports, volume, healthcheck;
#    - MAGNETAR_ variables: applied after the file and before --set; an unknown one refused;
#    - `magnetar standalone` with the image's default config plus ports from MAGNETAR_
#      variables: time to ready, the image's HEALTHCHECK command, pulsar-flex produces and
#      consumes N messages, RSS, then SIGTERM with a client connected: exit 0 within the
#      grace period of the manifests;
#    - a bookie and a broker from the image against a real ZooKeeper (zk.sh): the bookie
#      registers, the broker (managedLedgerStore bookkeeper) serves pulsar-flex with the data
#      on that bookie, both stop cleanly on SIGTERM.
# Every figure is printed on a line starting with "figure:". Fails loudly (never skips) when
# the image cannot be built. Bounded: each wait has a deadline; processes and mounts are
# cleaned up on exit.
# Environment: MAGNETAR_BIN (a host build, for the manifest check without the image),
# IMAGE_TAG (default magnetar:test), SMOKE_MESSAGES (default 1000), plus scripts/image.sh's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cd "$top"
# in a plain chroot, podman's mounts need a mount namespace: run all of this test inside one
if ! mountpoint -q / && [ -z "${IMAGE_NS:-}" ]; then
  exec "$top/scripts/image.sh" in-ns bash "$here/image.test.sh" "$@"
fi
tag=${IMAGE_TAG:-magnetar:test}
n_msgs=${SMOKE_MESSAGES:-1000}
host_bin=${MAGNETAR_BIN:-}
# our own variables must never reach a magnetar process: every one is started with env -i
unset MAGNETAR_BIN

say() { echo "image.test: $*"; }
die() { echo "FAIL: $*"; echo "image.test: FAILED: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }

[ "$(id -u)" = 0 ] || die "needs root (podman build, chroot, mount)"
command -v node >/dev/null || die "node not found (scripts/setup.sh --test installs it)"
command -v curl >/dev/null || die "curl not found (scripts/setup.sh --test installs it)"

work=$(mktemp -d /tmp/image-test.XXXXXX)
ctr=""; root=""; pids=()
pm() { IMAGE_TAG=$tag "$top/scripts/image.sh" podman "$@"; }
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  "$here/zk.sh" stop "$work/zk" 2>/dev/null || true
  if [ -n "$root" ]; then
    for m in dev proc; do mountpoint -q "$root/$m" && umount -l "$root/$m" 2>/dev/null || true; done
  fi
  if [ -n "$ctr" ]; then
    pm umount "$ctr" >/dev/null 2>&1 || true
    pm rm -f "$ctr" >/dev/null 2>&1 || true
  fi
  if [ $rc -ne 0 ]; then
    for l in "$work"/*.log; do [ -f "$l" ] && { echo "---- $(basename "$l") (tail)"; tail -n 40 "$l"; }; done
    echo "image.test: FAILED (files in $work)"
  else
    rm -rf "$work"
  fi
  exit $rc
}
trap cleanup EXIT

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})'
}
wait_ok() { # wait_ok URL PID NAME SECONDS: until URL answers "ok"; dies if PID exits first
  local deadline=$((SECONDS + $4))
  until [ "$(curl -s -m 1 "$1" 2>/dev/null)" = ok ]; do
    kill -0 "$2" 2>/dev/null || die "$3 exited during start"
    [ $SECONDS -lt $deadline ] || die "$3: $1 did not answer ok within $4 s"
    sleep 0.01
  done
}
wait_tcp() { # wait_tcp PORT SECONDS
  local deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.02
  done
}

# ---- 1. manifests ------------------------------------------------------------------------
say "== manifests (conf/kubernetes) against the Kubernetes API schemas and magnetar config check"
(cd tests/kubernetes && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
  || die "npm ci in tests/kubernetes"
(cd tests/compat && { [ -d node_modules/pulsar-flex ] || npm ci --no-audit --no-fund --loglevel=error >/dev/null; }) \
  || die "npm ci in tests/compat"
if [ -n "$host_bin" ]; then
  node tests/kubernetes/validate.js --magnetar "$host_bin" --image-env MAGNETAR_bindAddress=0.0.0.0 \
    --self-test --quiet | tee "$work/validate-host.out" || die "manifest validation (host binary)"
  echo "PASS: manifests valid (schemas, references, config check by the host build, self-test)"
fi

# ---- 2. image ----------------------------------------------------------------------------
say "== building $tag with podman (scripts/image.sh)"
t0=$SECONDS
if ! timeout 720 "$top/scripts/image.sh" build --tag "$tag" >"$work/build.log" 2>&1; then
  die "image build failed (see build.log below)"
fi
build_s=$((SECONDS - t0))
sed -n '/^image magnetar/,$p' "$work/build.log" | grep -v "^$tag\$" || true
size_line=$(grep -m1 "^image $tag: " "$work/build.log" || true)
gz_line=$(grep -m1 "gzip-compressed" "$work/build.log" || true)
echo "figure: image build ${build_s} s; ${size_line#image }; ${gz_line##*: } gzip-compressed"
echo "PASS: image built"

# ---- 3. the image's root -----------------------------------------------------------------
pm image inspect "$tag" >"$work/config.json" || die "podman image inspect"
node - "$work/config.json" "$work" <<'JS' || die "image metadata (see above)"
const fs = require('fs');
const [file, dir] = process.argv.slice(2);
const parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
const img = Array.isArray(parsed) ? parsed[0] : parsed;
const c = img.Config || {};
const fail = (m) => { console.log(`FAIL: image metadata: ${m}`); process.exitCode = 1; };
const hc = img.Healthcheck || c.Healthcheck || {};
const ports = Object.keys(c.ExposedPorts || {}).sort().join(' ');
if (!/^[1-9][0-9]*(:[0-9]+)?$/.test(c.User || '')) fail(`user ${c.User} is not a numeric non-root user`);
if (JSON.stringify(c.Entrypoint) !== '["magnetar"]') fail(`entrypoint ${JSON.stringify(c.Entrypoint)}`);
if (JSON.stringify(c.Cmd) !== '["standalone"]') fail(`command ${JSON.stringify(c.Cmd)}`);
if (ports !== '3181/tcp 6650/tcp 6651/tcp 8080/tcp 8443/tcp') fail(`exposed ports ${ports}`);
if (!Object.keys(c.Volumes || {}).includes('/magnetar/data')) fail(`volumes ${JSON.stringify(c.Volumes)}`);
if (!Array.isArray(hc.Test) || hc.Test[0] !== 'CMD' || !hc.Test.join(' ').includes('/admin/v2/brokers/health')) {
  fail(`healthcheck ${JSON.stringify(hc)}`);
}
const line = (a) => a.join('\n') + '\n';
fs.writeFileSync(`${dir}/img.user`, (c.User || '') + '\n');
fs.writeFileSync(`${dir}/img.workdir`, (c.WorkingDir || '/') + '\n');
fs.writeFileSync(`${dir}/img.env`, line(c.Env || []));
fs.writeFileSync(`${dir}/img.argv`, line([...(c.Entrypoint || []), ...(c.Cmd || [])]));
fs.writeFileSync(`${dir}/img.entrypoint`, line(c.Entrypoint || []));
fs.writeFileSync(`${dir}/img.health`, line((hc.Test || []).slice(1)));
console.log(`image metadata: user ${c.User}, workdir ${c.WorkingDir}, entrypoint ${JSON.stringify(c.Entrypoint)}, ` +
  `cmd ${JSON.stringify(c.Cmd)}, ports ${ports}, volumes ${Object.keys(c.Volumes || {}).join(' ')}, ` +
  `healthcheck every ${(hc.Interval || 0) / 1e9} s, env ${(c.Env || []).join(' ')}`);
JS
echo "PASS: image metadata (non-root user, entrypoint, command, ports, volume, healthcheck)"
user=$(cat "$work/img.user"); workdir=$(cat "$work/img.workdir")
[[ $user == *:* ]] || user="$user:$user"
mapfile -t image_env <"$work/img.env"
mapfile -t default_argv <"$work/img.argv"
mapfile -t entrypoint <"$work/img.entrypoint"
mapfile -t health_cmd <"$work/img.health"

ctr="magnetar-image-test-$$"
pm create --name "$ctr" "$tag" >/dev/null || die "podman create"
root=$(pm mount "$ctr") || die "podman mount"
[ -x "$root/usr/local/bin/magnetar" ] || die "no /usr/local/bin/magnetar in the image"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
for f in /usr/bin/gcc /usr/bin/cc /usr/bin/make /usr/include/event2 /src; do
  [ ! -e "$root$f" ] || die "the runtime image holds build-time $f"
done
say "image root: $root (user $user, workdir $workdir)"

# in_image ENV... -- ARGV...: run ARGV in the image's root as its user, in its working
# directory, with only the image's environment plus ENV (exec: the PID is the process's)
in_image() {
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  exec env -i "${image_env[@]}" "${envs[@]}" chroot --userspec="$user" "$root" \
    /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$workdir" "$@"
}

# ---- MAGNETAR_ variables, verified in the image ----------------------------------------
say "== configuration from MAGNETAR_ variables"
show() { (in_image "$@") 2>&1; }
v=$(show MAGNETAR_brokerServicePort=1111 -- "${entrypoint[@]}" config show | sed -n 's/^brokerServicePort: //p')
[ "$v" = 1111 ] || die "MAGNETAR_brokerServicePort=1111 not applied over the YAML file (got '$v')"
v=$(show MAGNETAR_brokerServicePort=1111 -- "${entrypoint[@]}" config show --set brokerServicePort=2222 \
    | sed -n 's/^brokerServicePort: //p')
[ "$v" = 2222 ] || die "--set did not win over MAGNETAR_brokerServicePort (got '$v')"
v=$(show -- "${entrypoint[@]}" config show | sed -n 's/^bindAddress: //p')
[ "$v" = '"0.0.0.0"' ] || die "the image's MAGNETAR_bindAddress is not in effect (got '$v')"
set +e
out=$(show MAGNETAR_noSuchKey=1 -- "${entrypoint[@]}" config check); rc=$?
set -e
[ $rc = 2 ] && [[ $out == *MAGNETAR_noSuchKey* ]] || die "unknown MAGNETAR_noSuchKey: exit $rc, '$out'"
echo "PASS: MAGNETAR_ variables: over the file, under --set, unknown one refused ($out)"

say "== manifests, configuration checked by the image's binary in the image's root"
node tests/kubernetes/validate.js --root "$root" --user "$user" --workdir "$workdir" \
  $(printf -- '--image-env %s ' $(grep '^MAGNETAR_' "$work/img.env")) --quiet \
  | tee "$work/validate-image.out" || die "manifest validation (image binary)"
echo "PASS: manifests' configurations accepted by the image's magnetar"

# ---- the smoke client (pulsar-flex, tests/compat/lib/flex.js helpers) -------------------
cat >"$work/smoke.js" <<'JS'
'use strict';
// smoke.js pubsub N | hold   (MAGNETAR_URL, MAGNETAR_ADMIN: the broker under test)
const f = require(process.env.FLEX_LIB);
const [mode, nArg] = process.argv.slice(2);
(async () => {
  await f.checkHealth();
  if (mode === 'hold') { // a connected consumer while the broker is stopped
    const s = new f.Scope('hold');
    await s.consumer({ topic: f.uniqueTopic('hold'), subscription: 'hold' });
    console.log('HOLDING');
    setInterval(() => {}, 1000);
    return;
  }
  const N = Number(nArg);
  const res = await f.withScope('image-smoke', async (s) => {
    const topic = f.uniqueTopic('image');
    const c = await s.consumer({ topic, subscription: 'image-sub' });
    const got = await f.collect(c);
    const p = await s.producer(topic);
    const msgs = f.makeMessages(N, 'img');
    const t1 = Date.now();
    await f.sendAll(p, msgs, { window: 50 });
    const t2 = Date.now();
    await s.waitFor(() => got.length >= N, 60000, () => `${N} messages (got ${got.length})`);
    const t3 = Date.now();
    await f.flushWithMarker(s, p, got); // duplicates, if any, come before it
    f.checkExactSequence(got, msgs);
    return { produced: N, consumed: got.length, produceMs: t2 - t1, allConsumedMs: t3 - t1 };
  });
  console.log('RESULT ' + JSON.stringify(res));
  process.exit(0);
})().catch((e) => { console.error('smoke client:', (e && e.stack) || e); process.exit(1); });
JS
smoke() { # smoke BPORT WPORT ARGS...
  local b=$1 w=$2; shift 2
  FLEX_LIB="$top/tests/compat/lib/flex.js" MAGNETAR_URL="pulsar://127.0.0.1:$b" \
    MAGNETAR_ADMIN="http://127.0.0.1:$w" timeout 120 node "$work/smoke.js" "$@"
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# stop PID NAME GRACE: SIGTERM, exit 0 within GRACE seconds; sets stop_ms
stop() {
  local pid=$1 name=$2 grace=$3 t rc
  t=$(now_ms)
  kill -TERM "$pid"
  local deadline=$((SECONDS + grace + 5))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.02; done
  kill -0 "$pid" 2>/dev/null && die "$name still running $((grace + 5)) s after SIGTERM"
  stop_ms=$(( $(now_ms) - t ))
  set +e; wait "$pid"; rc=$?; set -e
  [ $rc = 0 ] || die "$name exited $rc on SIGTERM"
  [ $stop_ms -le $((grace * 1000)) ] || die "$name took $stop_ms ms to stop, over the $grace s grace period"
}
grace=$(sed -n 's/^ *terminationGracePeriodSeconds: *//p' conf/kubernetes/standalone.yaml | head -n 1)
[ -n "$grace" ] || die "no terminationGracePeriodSeconds in conf/kubernetes/standalone.yaml"

# ---- standalone --------------------------------------------------------------------------
say "== magnetar standalone from the image (default command and config, ports from MAGNETAR_)"
bport=$(free_port); wport=$(free_port)
sa_env=(MAGNETAR_brokerServicePort="$bport" MAGNETAR_webServicePort="$wport")
t0=$(now_ms)
(in_image "${sa_env[@]}" -- "${default_argv[@]}") >"$work/standalone.log" 2>&1 &
sa_pid=$!; pids+=("$sa_pid")
wait_ok "http://127.0.0.1:$wport/admin/v2/brokers/health" "$sa_pid" standalone 30
ready_ms=$(( $(now_ms) - t0 ))
[ "$(awk '/^Uid:/ { print $2 }' "/proc/$sa_pid/status")" = "${user%%:*}" ] || die "standalone does not run as ${user%%:*}"
rss0=$(rss_kb "$sa_pid")
echo "figure: standalone start to healthy ${ready_ms} ms (pid $sa_pid, uid ${user%%:*}, RSS ${rss0} KiB idle)"
(in_image "${sa_env[@]}" -- "${health_cmd[@]}") || die "the image's HEALTHCHECK command failed against a healthy broker"
closed=$(free_port)
if (in_image MAGNETAR_webServicePort="$closed" -- "${health_cmd[@]}") 2>/dev/null; then
  die "the image's HEALTHCHECK passed against a closed port"
fi
echo "PASS: standalone healthy; the image's HEALTHCHECK passes on it and fails on a closed port"
smoke "$bport" "$wport" pubsub "$n_msgs" >"$work/smoke-standalone.out" 2>"$work/smoke-standalone.log" \
  || { cat "$work/smoke-standalone.log"; die "pulsar-flex produce/consume through the standalone"; }
res=$(sed -n 's/^RESULT //p' "$work/smoke-standalone.out")
rss1=$(rss_kb "$sa_pid")
echo "figure: standalone pulsar-flex $res; RSS ${rss1} KiB after"
[ -d "$root$workdir/data/standalone" ] && [ "$(stat -c %u "$root$workdir/data/standalone")" = "${user%%:*}" ] \
  || die "no data under the volume $workdir/data/standalone owned by the image's user"
echo "PASS: standalone: pulsar-flex produced and consumed $n_msgs messages, data under the volume"
smoke "$bport" "$wport" hold >"$work/hold.out" 2>"$work/hold.log" &
hold_pid=$!; pids+=("$hold_pid")
deadline=$((SECONDS + 30))
until grep -q HOLDING "$work/hold.out" 2>/dev/null; do
  kill -0 "$hold_pid" 2>/dev/null || die "hold client exited"
  [ $SECONDS -lt $deadline ] || die "hold client did not subscribe"
  sleep 0.05
done
stop "$sa_pid" standalone "$grace"
kill -KILL "$hold_pid" 2>/dev/null || true
wait "$hold_pid" 2>/dev/null || true
echo "figure: standalone SIGTERM with a consumer connected: exit 0 after ${stop_ms} ms (grace ${grace} s)"
echo "PASS: standalone stopped cleanly on SIGTERM within the grace period"

# ---- bookie + broker against a real ZooKeeper ---------------------------------------------
say "== bookie and broker roles from the image against ZooKeeper"
zkport=$("$here/zk.sh" start "$work/zk") || die "ZooKeeper did not start (zk.sh)"
zkurl="zk:127.0.0.1:$zkport"
bkport=$(free_port)
t0=$(now_ms)
(in_image MAGNETAR_metadataStoreUrl="$zkurl" MAGNETAR_bookiePort="$bkport" \
   MAGNETAR_advertisedAddress=127.0.0.1 -- "${entrypoint[@]}" bookie) >"$work/bookie.log" 2>&1 &
bk_pid=$!; pids+=("$bk_pid")
wait_tcp "$bkport" 30 || die "bookie not accepting on $bkport within 30 s"
bk_ready_ms=$(( $(now_ms) - t0 ))
# registered in ZooKeeper: its ephemeral node under /ledgers/available (as every cluster test
# waits for its bookies: zk.sh registered)
"$here/zk.sh" registered "$work/zk" 10 "127.0.0.1:$bkport" \
  || die "bookie 127.0.0.1:$bkport not registered under /ledgers/available"
echo "figure: bookie start to accepting ${bk_ready_ms} ms; registered: 127.0.0.1:$bkport"
bport=$(free_port); wport=$(free_port)
t0=$(now_ms)
(in_image MAGNETAR_metadataStoreUrl="$zkurl" \
   MAGNETAR_managedLedgerDefaultEnsembleSize=1 MAGNETAR_managedLedgerDefaultWriteQuorum=1 \
   MAGNETAR_managedLedgerDefaultAckQuorum=1 MAGNETAR_advertisedAddress=127.0.0.1 \
   MAGNETAR_brokerServicePort="$bport" MAGNETAR_webServicePort="$wport" -- "${entrypoint[@]}" broker) \
  >"$work/broker.log" 2>&1 &
br_pid=$!; pids+=("$br_pid")
wait_ok "http://127.0.0.1:$wport/admin/v2/brokers/ready" "$br_pid" broker 30
br_ready_ms=$(( $(now_ms) - t0 ))
echo "figure: broker start to ready ${br_ready_ms} ms"
ledger_bytes() { du -sb "$root$workdir/data/bookie" 2>/dev/null | cut -f1; }
before=$(ledger_bytes)
n_role=$(( n_msgs < 200 ? n_msgs : 200 ))
smoke "$bport" "$wport" pubsub "$n_role" >"$work/smoke-broker.out" 2>"$work/smoke-broker.log" \
  || { cat "$work/smoke-broker.log"; die "pulsar-flex produce/consume through broker + bookie"; }
res=$(sed -n 's/^RESULT //p' "$work/smoke-broker.out")
after=$(ledger_bytes)
echo "figure: broker+bookie pulsar-flex $res; bookie data ${before} -> ${after} bytes"
[ "${after:-0}" -gt "${before:-0}" ] || die "the bookie's data did not grow: the broker did not write to it"
echo "PASS: broker (ZooKeeper metadata, bookkeeper store) served pulsar-flex with data on the bookie"
stop "$br_pid" broker "$grace"
echo "figure: broker SIGTERM: exit 0 after ${stop_ms} ms"
stop "$bk_pid" bookie 30
echo "figure: bookie SIGTERM: exit 0 after ${stop_ms} ms"
echo "PASS: broker and bookie from the image stopped cleanly on SIGTERM"
"$here/zk.sh" stop "$work/zk"
say "PASS"
