#!/usr/bin/env python3
"""report.py - turn the raw results of scripts/bench.sh into one markdown table and a JSON file.

    report.py INDEX.tsv OUT.json
    report.py --perfproducer LOG OUT.json

INDEX.tsv has one line per result: kind <TAB> key <TAB> value-or-path-to-JSON, written by
bench.sh as the run goes. Prints the markdown report on stdout; writes every figure (and the
markdown) to OUT.json. Reports only: a missed target is printed as "no", never an error.
--perfproducer turns the log of the official C++ client's perfProducer into the JSON fields
of `magnetar perf --json` (msg_per_s, mbit_per_s, latency_ms.mean/.p99) from its last
"Throughput produced" line; exit 1 when the log has none.
"""
import json
import os
import re
import statistics
import sys

SYS_NAMES = {
    "ms": "magnetar standalone",
    "pp": "magnetar standalone, driven by the official perfProducer (C++ client)",
    "mc": "magnetar 1 broker + 3 bookies (E=3 Qw=2 Qa=2)",
    "r1": "Redis Streams, 1 connection",
    "r10": "Redis Streams, 10 connections",
    "js": "NATS JetStream (file store)",
}
ORDER = ["ms", "pp", "mc", "r1", "r10", "js"]
SIZES = ["1024", "100"]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_index(path):
    d = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t", 2)
            if len(parts) == 3:
                d.setdefault(parts[0], []).append((parts[1], parts[2]))
    return d


def fnum(x, digits=0):
    if x is None:
        return "–"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fx(r):
    return "–" if r is None else f"{r:.2f}x"


PP_LINE = re.compile(
    r"Throughput produced:\s*([0-9.eE+-]+)\s*msg/s\s*---\s*([0-9.eE+-]+)\s*Mbit/s\s*---\s*"
    r"Lat avg:\s*([0-9.eE+-]+)\s*ms\s*--\s*Lat 99pct:\s*([0-9.eE+-]+)\s*ms"
)


def perfproducer(log_path, out_path):
    """The last report line of a perfProducer log as `magnetar perf --json` fields."""
    last = None
    with open(log_path, errors="replace") as f:
        for line in f:
            m = PP_LINE.search(line)
            if m:
                last = [float(x) for x in m.groups()]
    if last is None:
        print(f"report.py: no 'Throughput produced' line in {log_path}", file=sys.stderr)
        return 1
    rate, mbit, mean, p99 = last
    j = {
        "client": "perfProducer (pulsar-client-cpp)",
        "msg_per_s": rate,
        "mbit_per_s": mbit,
        "latency_ms": {"mean": mean, "p50": None, "p99": p99},
    }
    with open(out_path, "w") as f:
        json.dump(j, f, indent=2)
        f.write("\n")
    return 0


def main():
    if sys.argv[1] == "--perfproducer":
        return perfproducer(sys.argv[2], sys.argv[3])
    idx = read_index(sys.argv[1])
    out_path = sys.argv[2]
    meta = dict(idx.get("meta", []))
    durability = dict(idx.get("durability", []))

    # ---- limits
    limits = {}
    for key, path in idx.get("limit", []):
        j = load(path)
        if not j:
            continue
        if key.startswith("fio"):
            job = j["jobs"][0]
            w, sync = job["write"], job.get("sync", {}).get("lat_ns", {})
            pct = sync.get("percentile", {})
            limits[key] = {
                "iops": w["iops"],
                "mb_per_s": w["bw"] * 1024 / 1e6,
                "fsync_mean_ms": sync.get("mean", 0) / 1e6,
                "fsync_p50_ms": pct.get("50.000000", 0) / 1e6,
                "fsync_p99_ms": pct.get("99.000000", 0) / 1e6,
            }
        elif key == "iperf3" and "sum_received" in j.get("end", {}):
            limits[key] = {"gbit_per_s": j["end"]["sum_received"]["bits_per_second"] / 1e9}

    # ---- probes (in run order) and the pair around each system
    probes = []
    labels = dict(idx.get("probe_label", []))
    for key, path in idx.get("probe", []):
        j = load(path)
        if j:
            j["index"] = int(key)
            j["label"] = labels.get(key, "")
            probes.append(j)
    probes.sort(key=lambda p: p["index"])

    def around(sys_key):
        after = next((p for p in probes if p["label"] == sys_key), None)
        if not after:
            return None, None
        before = None
        for p in probes:
            if p["index"] < after["index"]:
                before = p
        return before, after

    def probe_mean(sys_key, field):
        b, a = around(sys_key)
        vals = [p[field] for p in (b, a) if p]
        return sum(vals) / len(vals) if vals else None

    # ---- runs
    runs = {}
    for key, path in idx.get("run", []):
        j = load(path)
        if j:
            runs[key] = j

    def run(sys_key, size, mode):
        return runs.get(f"{sys_key}.{size}.{mode}")

    def tput(sys_key, size):
        r = run(sys_key, size, "max")
        return r["msg_per_s"] if r else None

    def lat(sys_key, size, p):
        r = run(sys_key, size, "half")
        return r["latency_ms"][p] if r else None

    systems = [s for s in ORDER if run(s, "1024", "max") or run(s, "100", "max")]

    # ---- footprint
    ready = {}
    for key, path in idx.get("ready", []):
        j = load(path)
        if j:
            ready.setdefault(key.split(".")[0], []).append(j)
    rssload = {k: int(v) for k, v in idx.get("rssload", [])}
    binsize = {k: int(v) for k, v in idx.get("binsize", [])}
    binstrip = {k: int(v) for k, v in idx.get("binsize_stripped", [])}
    binlibs = {k: int(v) for k, v in idx.get("binlibs", [])}

    def med(sys_key, field):
        v = [r[field] for r in ready.get(sys_key, []) if r.get(field, -1) >= 0]
        return statistics.median(v) if v else None

    def rng(sys_key, field):
        v = [r[field] for r in ready.get(sys_key, []) if r.get(field, -1) >= 0]
        return (min(v), max(v)) if v else (None, None)

    md = []
    ml_store = meta.get("ml_store", "?")
    md.append(f"## magnetar benchmark, {meta.get('date', '?')}")
    md.append("")
    md.append(
        f"{meta.get('cpus', '?')}, {meta.get('mem', '?')}, disk {meta.get('disk', '?')}; "
        f"{meta.get('seconds', '?')} s per measurement{' (--quick)' if meta.get('quick') == '1' else ''}; "
        f"magnetar {meta.get('magnetar_rev', '?')} (managedLedgerStore={ml_store}), "
        f"Redis {meta.get('redis_version', '?')}, nats-server {meta.get('nats_version', '?')}."
    )
    if ml_store != "bookkeeper":
        md.append("")
        md.append(
            "**magnetar ran with the memory store (this build has no bookkeeper store): its "
            "figures are NOT durable and are not comparable with the fsyncing peers.**"
        )
    md.append("")

    # throughput / latency table
    md.append(
        "| system | durability | 1 KiB max msg/s | 1 KiB MB/s | 1 KiB p50 / p99 ms at 50% "
        "| 100 B max msg/s | 100 B p50 / p99 ms at 50% | disk ceiling around the run, msg/s "
        "(probe before → after) | 1 KiB % of ceiling |"
    )
    md.append("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    for s in systems:
        b, a = around(s)
        t1 = tput(s, "1024")
        mb = t1 * 1024 / 1e6 if t1 else None
        ceil = probe_mean(s, "gc_msg_per_s")
        cell_probe = (
            f"{fnum(b['gc_msg_per_s'] if b else None)} → {fnum(a['gc_msg_per_s'] if a else None)}"
        )
        pct = ratio(t1, ceil)
        md.append(
            f"| {SYS_NAMES[s]} | {durability.get(s, '?')} | {fnum(t1)} | {fnum(mb, 1)} "
            f"| {fnum(lat(s, '1024', 'p50'), 2)} / {fnum(lat(s, '1024', 'p99'), 2)} "
            f"| {fnum(tput(s, '100'))} "
            f"| {fnum(lat(s, '100', 'p50'), 2)} / {fnum(lat(s, '100', 'p99'), 2)} "
            f"| {cell_probe} | {'–' if pct is None else f'{pct * 100:.1f}%'} |"
        )
    md.append("")

    # ratios
    def best_redis(size):
        c = [(tput(s, size), s) for s in ("r1", "r10") if tput(s, size)]
        return max(c) if c else (None, None)

    def norm_ratio(m, msys, p, psys):
        """ratio of shares of the disk ceiling measured around each run"""
        cm, cp = probe_mean(msys, "gc_msg_per_s"), probe_mean(psys, "gc_msg_per_s")
        if None in (m, p, cm, cp) or p == 0 or cp == 0:
            return None
        return (m / cm) / (p / cp)

    ratios = {}
    md.append(
        "| ratio | 1 KiB | 100 B | 1 KiB, each divided by the disk probe around its own run |"
    )
    md.append("|---|--:|--:|--:|")
    for m in ("ms", "mc"):
        if m not in systems:
            continue
        for peer, pname in (("redis", "Redis (best of 1, 10 conns)"), ("js", "JetStream")):
            row = []
            for size in SIZES:
                if peer == "redis":
                    p, psys = best_redis(size)
                else:
                    p, psys = tput("js", size), "js"
                row.append((ratio(tput(m, size), p), psys))
            p1, psys1 = (best_redis("1024") if peer == "redis" else (tput("js", "1024"), "js"))
            nr = norm_ratio(tput(m, "1024"), m, p1, psys1)
            key = f"{m}/{peer}"
            ratios[key] = {"1024": row[0][0], "100": row[1][0], "1024_disk_normalized": nr}
            md.append(
                f"| {'magnetar' if m == 'ms' else 'magnetar cluster'}/{pname} throughput "
                f"| {fx(row[0][0])} | {fx(row[1][0])} | {fx(nr)} |"
            )
        ceil = probe_mean(m, "gc_msg_per_s")
        r = ratio(tput(m, "1024"), ceil)
        ratios[f"{m}/ideal_gc"] = r
        md.append(
            f"| {'magnetar' if m == 'ms' else 'magnetar cluster'}/ideal group-commit log "
            f"(1 KiB, probes around the run) | {fx(r)} | | |"
        )
        for peer, pname in (("redis", "Redis"), ("js", "JetStream")):
            if peer == "redis":
                _, psys = best_redis("1024")
            else:
                psys = "js" if "js" in systems else None
            if psys and lat(m, "1024", "p99") and lat(psys, "1024", "p99"):
                r1 = ratio(lat(m, "1024", "p99"), lat(psys, "1024", "p99"))
                r2 = ratio(lat(m, "100", "p99"), lat(psys, "100", "p99"))
                ratios[f"{m}/{peer}_p99_at_half"] = {"1024": r1, "100": r2, "peer": psys}
                md.append(
                    f"| {'magnetar' if m == 'ms' else 'magnetar cluster'}/{pname} p99 latency at 50% "
                    f"of each one's own max (lower is better) | {fx(r1)} | {fx(r2)} | |"
                )
    md.append("")

    # limits
    md.append("| physical limit (same run) | figure |")
    md.append("|---|---|")
    if "fio4k" in limits:
        l = limits["fio4k"]
        md.append(
            f"| fio 4 KiB write + fdatasync | {fnum(l['iops'])} /s; fsync p50 {l['fsync_p50_ms']:.2f} ms, "
            f"p99 {l['fsync_p99_ms']:.2f} ms |"
        )
    if "fio64k" in limits:
        l = limits["fio64k"]
        md.append(
            f"| fio 64 KiB write + fdatasync | {fnum(l['iops'])} /s = {fnum(l['mb_per_s'])} MB/s |"
        )
    if probes:
        gc = [p["gc_msg_per_s"] for p in probes]
        fs = [p["fsync_per_s"] for p in probes]
        md.append(
            f"| ideal group-commit log, 1 KiB records, 1000 outstanding, {len(probes)} probes "
            f"| {fnum(min(gc))} – {fnum(max(gc))} msg/s (median {fnum(statistics.median(gc))}), "
            f"{fnum(statistics.median([p['gc_groups_per_s'] for p in probes]))} groups/s |"
        )
        md.append(
            f"| 4 KiB append + fdatasync, same probes | {fnum(min(fs))} – {fnum(max(fs))} /s; "
            f"p50 {statistics.median([p['fsync_p50_ms'] for p in probes]):.2f} ms, "
            f"p99 {statistics.median([p['fsync_p99_ms'] for p in probes]):.2f} ms (medians) |"
        )
    if "iperf3" in limits:
        md.append(f"| loopback TCP (iperf3, 1 stream) | {limits['iperf3']['gbit_per_s']:.1f} Gbit/s |")
    md.append("")

    # footprint
    foot = {
        "idle_rss_kb": {s: med(s, "idle_rss_kb") for s in ("ms", "js")},
        "load_rss_kb": {s: rssload.get(s) for s in ("ms", "js")},
        "ready_ms": {s: med(s, "ready_ms") for s in ("ms", "js")},
        "ready_ms_range": {s: rng(s, "ready_ms") for s in ("ms", "js")},
        "binary_bytes": binsize,
        "binary_stripped_bytes": binstrip,
        "shared_libs": binlibs,
    }

    def mb(kb):
        return None if kb is None else kb / 1024

    n_ready = len(ready.get("ms", []))
    md.append("| footprint | magnetar standalone | nats-server -js | magnetar/NATS |")
    md.append("|---|--:|--:|--:|")
    i_m, i_n = foot["idle_rss_kb"]["ms"], foot["idle_rss_kb"]["js"]
    md.append(f"| idle RSS, MB (median of {n_ready} starts) | {fnum(mb(i_m), 1)} | {fnum(mb(i_n), 1)} | {fx(ratio(i_m, i_n))} |")
    l_m, l_n = rssload.get("ms"), rssload.get("js")
    md.append(f"| RSS under load (peak in the 1 KiB max run), MB | {fnum(mb(l_m), 1)} | {fnum(mb(l_n), 1)} | {fx(ratio(l_m, l_n))} |")
    r_m, r_n = foot["ready_ms"]["ms"], foot["ready_ms"]["js"]
    rr_m, rr_n = foot["ready_ms_range"]["ms"], foot["ready_ms_range"]["js"]

    def rr(x):
        return "" if x[0] is None else f" ({x[0]:.1f}–{x[1]:.1f})"

    md.append(
        f"| start-to-ready, ms: process start → CONNECT answered (median, range) "
        f"| {fnum(r_m, 1)}{rr(rr_m)} | {fnum(r_n, 1)}{rr(rr_n)} | {fx(ratio(r_m, r_n))} |"
    )
    def mib(b):
        return None if b is None else b / 1048576

    b_m, b_n = binsize.get("ms"), binsize.get("js")
    s_m, s_n = binstrip.get("ms"), binstrip.get("js")
    md.append(
        f"| binary size, MB as built / installed (stripped) | {fnum(mib(b_m), 2)} ({fnum(mib(s_m), 2)}) "
        f"| {fnum(mib(b_n), 2)} ({fnum(mib(s_n), 2)}) | {fx(ratio(s_m, s_n))} stripped |"
    )
    md.append(
        f"| shared libraries linked | {binlibs.get('ms', '–')} | {binlibs.get('js', '–')} | |"
    )
    if "mc" in rssload:
        md.append(f"| (cluster: broker + 3 bookies RSS under load, MB) | {fnum(mb(rssload['mc']), 1)} | | |")
    md.append("")

    # issue 13's lines: end-to-end latency, catch-up reads, many topics
    def kv_json(kind):
        out = {}
        for key, path in idx.get(kind, []):
            j = load(path)
            if j:
                out[key] = j
        return out

    e2e = kv_json("e2e")
    e2e_rate = {k: float(v) for k, v in idx.get("e2e_rate", [])}
    catch = kv_json("catchup")
    many = kv_json("many")
    many_rss0 = {k: int(v) for k, v in idx.get("many_rss0", [])}
    many_rss = {k: int(v) for k, v in idx.get("many_rss", [])}

    def e2e_p(s, p):
        return e2e[s]["latency_ms"].get(p) if s in e2e else None

    def catch_mb(s):
        j = catch.get(s)
        if not j:
            return None
        return j["mb_per_s"] if "mb_per_s" in j else j.get("mbit_per_s", 0) / 8

    cu_mb = meta.get("catchup_mb", "?")
    md.append(
        f"| 1 KiB, one consumer | end-to-end p50 / p99 ms at 50% of own max (rate) "
        f"| catch-up read of {cu_mb} MiB from the start, MB/s | how it reads |"
    )
    md.append("|---|--:|--:|---|")
    how = {
        "ms": "Shared subscription; catch-up after a restart (empty broker cache: read from the bookie)",
        "mc": "catch-up after a broker restart (read from the bookies)",
        "r10": "XREADGROUP COUNT 1000 BLOCK 100 + XACK; backlog in memory",
        "js": "pull consumer, Fetch 1000, AckAll; backlog in the file store",
    }
    for s in ("ms", "mc", "r10", "js"):
        if s not in e2e and s not in catch:
            continue
        rate = f" ({fnum(e2e_rate.get(s))} msg/s)" if s in e2e_rate else ""
        md.append(
            f"| {SYS_NAMES[s]} | {fnum(e2e_p(s, 'p50'), 2)} / {fnum(e2e_p(s, 'p99'), 2)}{rate} "
            f"| {fnum(catch_mb(s), 1)} | {how[s]} |"
        )
    md.append("")
    many_res = None
    if "ms" in many:
        j = many["ms"]
        n = int(meta.get("many_topics", "0") or 0)
        r0, r1 = many_rss0.get("ms"), many_rss.get("ms")
        per = (r1 - r0) / n if None not in (r0, r1) and n else None
        many_res = {"topics": n, "rate": meta.get("many_rate"), "msg_per_s": j["msg_per_s"],
                    "p99_ms": j["latency_ms"]["p99"], "rss_before_kb": r0, "rss_peak_kb": r1,
                    "rss_kb_per_topic": per}
        md.append("| many topics (standalone, 1 KiB, one producer per topic) | figure |")
        md.append("|---|---|")
        md.append(
            f"| {n} topics at {meta.get('many_rate', '?')} msg/s in all | {fnum(j['msg_per_s'])} msg/s; "
            f"p50 {fnum(j['latency_ms']['p50'], 2)} ms, p99 {fnum(j['latency_ms']['p99'], 2)} ms |"
        )
        md.append(
            f"| RSS before → peak, MB; growth per topic | {fnum(mb(r0), 1)} → {fnum(mb(r1), 1)}; "
            f"{fnum(per, 1)} KB per topic |"
        )
        md.append("")

    # ratio lines of issue 13's new figures
    md.append("| ratio (issue 13 lines) | value |")
    md.append("|---|--:|")
    for peer in ("js", "r10"):
        r = ratio(e2e_p("ms", "p99"), e2e_p(peer, "p99"))
        ratios[f"ms/{peer}_e2e_p99"] = r
        md.append(f"| standalone/{SYS_NAMES[peer]} end-to-end p99 (lower is better) | {fx(r)} |")
    for m, peer in (("ms", "js"), ("ms", "r10"), ("mc", "js"), ("mc", "ms")):
        r = ratio(catch_mb(m), catch_mb(peer))
        ratios[f"{m}/{peer}_catchup"] = r
        md.append(f"| {SYS_NAMES[m]}/{SYS_NAMES[peer]} catch-up MB/s | {fx(r)} |")
    r = ratio(tput("mc", "1024"), tput("ms", "1024"))
    ratios["mc/ms"] = r
    md.append(f"| cluster/standalone 1 KiB max msg/s | {fx(r)} |")
    r = ratio(tput("pp", "1024"), tput("ms", "1024"))
    ratios["pp/ms"] = r
    md.append(f"| perfProducer/magnetar perf 1 KiB max msg/s (same standalone) | {fx(r)} |")
    md.append("")

    # targets
    targets = []
    durable = ml_store == "bookkeeper"

    def target(name, measured, met, note=""):
        targets.append({"target": name, "measured": measured, "met": met, "note": note})

    rb, rbs = best_redis("1024")
    r = ratio(tput("ms", "1024"), rb)
    target("standalone ≥ 2x Redis Streams appendfsync always (best of 1, 10 conns), 1 KiB",
           fx(r), None if r is None else r >= 2)
    r = ratio(tput("ms", "1024"), tput("js", "1024"))
    target("standalone ≥ 1.5x NATS JetStream (which does not fsync), 1 KiB", fx(r),
           None if r is None else r >= 1.5)
    r = ratios.get("ms/ideal_gc")
    target("standalone ≥ 50% of the ideal group-commit probe, 1 KiB",
           "–" if r is None else f"{r * 100:.1f}%", None if r is None else r >= 0.5)
    p99 = lat("ms", "1024", "p99")
    f50, f99 = probe_mean("ms", "fsync_p50_ms"), probe_mean("ms", "fsync_p99_ms")
    if p99 is not None and f99 is not None:
        lim99 = 2 * f99 + 1
        target("p99 publish latency at 50% load ≤ 2x the disk's fsync p99 + 1 ms, 1 KiB",
               f"p99 {p99:.2f} ms; limit {lim99:.2f} ms (fsync p99 {f99:.2f} ms, p50 {f50:.2f} ms)",
               p99 <= lim99)
    else:
        target("p99 publish latency at 50% load ≤ 2x the disk's fsync p99 + 1 ms, 1 KiB", "–", None)
    e_m, e_j = e2e_p("ms", "p99"), e2e_p("js", "p99")
    target("end-to-end p99 at 50% load ≤ 2x JetStream's, 1 KiB",
           f"{fnum(e_m, 2)} vs {fnum(e_j, 2)} ms ({fx(ratio(e_m, e_j))})",
           None if None in (e_m, e_j) else e_m <= 2 * e_j)
    c_m, c_j = catch_mb("ms"), catch_mb("js")
    target("catch-up read MB/s ≥ JetStream's",
           f"{fnum(c_m, 1)} vs {fnum(c_j, 1)} MB/s ({fx(ratio(c_m, c_j))})",
           None if None in (c_m, c_j) else c_m >= c_j)
    l_m, l_n = rssload.get("ms"), rssload.get("js")
    target("RSS at full 1 KiB load ≤ 3x nats-server's",
           f"{fnum(mb(l_m), 1)} vs {fnum(mb(l_n), 1)} MB ({fx(ratio(l_m, l_n))})",
           None if None in (l_m, l_n) else l_m <= 3 * l_n)
    r = ratio(tput("mc", "1024"), tput("ms", "1024"))
    target("cluster (E=3 Qw=2 Qa=2) ≥ 70% of the standalone's 1 KiB msg/s",
           "–" if r is None else f"{fnum(tput('mc', '1024'))} vs {fnum(tput('ms', '1024'))} msg/s ({r * 100:.1f}%)",
           None if r is None else r >= 0.7)
    r = ratio(tput("mst", "1024"), tput("ms", "1024"))
    tp99, pp99 = lat("mst", "1024", "p99"), lat("ms", "1024", "p99")
    target("TLS: standalone 1 KiB throughput over pulsar+ssl:// ≥ 85% of plain text",
           "–" if r is None else f"{fnum(tput('mst', '1024'))} vs {fnum(tput('ms', '1024'))} msg/s "
           f"({abs(1 - r) * 100:.1f}% {'lower' if r < 1 else 'higher'}); "
           f"p99 at 50%: {fnum(tp99, 2)} vs {fnum(pp99, 2)} ms",
           None if r is None else r >= 0.85)
    target("idle standalone RSS ≤ NATS JetStream idle RSS",
           f"{fnum(mb(i_m), 1)} vs {fnum(mb(i_n), 1)} MB", None if None in (i_m, i_n) else i_m <= i_n)
    target("start-to-ready ≤ NATS", f"{fnum(r_m, 1)} vs {fnum(r_n, 1)} ms",
           None if None in (r_m, r_n) else r_m <= r_n)
    md.append("| target (reported, not asserted) | measured | met |")
    md.append("|---|---|---|")
    for t in targets:
        met = "–" if t["met"] is None else ("yes" if t["met"] else "no")
        if not durable and t["met"] is not None and "RSS" not in t["target"] and "ready" not in t["target"]:
            met += " (memory store: not durable, not a valid comparison)"
        if t["note"]:
            met += f" ({t['note']})"
        md.append(f"| {t['target']} | {t['measured']} | {met} |")
    md.append("")

    text = "\n".join(md)
    print(text)
    result = {
        "meta": meta,
        "durability": durability,
        "limits": limits,
        "probes": probes,
        "runs": runs,
        "ratios": ratios,
        "footprint": foot,
        "e2e": e2e,
        "catchup": catch,
        "many_topics": many_res,
        "targets": targets,
        "table_markdown": text,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
