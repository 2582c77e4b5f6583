#!/usr/bin/env python3
"""report.py - turn the raw results of scripts/bench.sh into one markdown table and a JSON file.

    report.py INDEX.tsv OUT.json

INDEX.tsv has one line per result: kind <TAB> key <TAB> value-or-path-to-JSON, written by
bench.sh as the run goes. Prints the markdown report on stdout; writes every figure (and the
markdown) to OUT.json. Reports only: a missed target is printed as "no", never an error.
"""
import json
import os
import statistics
import sys

SYS_NAMES = {
    "ms": "magnetar standalone",
    "mc": "magnetar 1 broker + 3 bookies (E=3 Qw=2 Qa=2)",
    "r1": "Redis Streams, 1 connection",
    "r10": "Redis Streams, 10 connections",
    "js": "NATS JetStream (file store)",
}
ORDER = ["ms", "mc", "r1", "r10", "js"]
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


def main():
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
    target("standalone ≥ NATS JetStream (which does not fsync), 1 KiB", fx(r), None if r is None else r >= 1)
    r = ratios.get("ms/ideal_gc")
    target("standalone ≥ 80% of the ideal group-commit probe, 1 KiB",
           "–" if r is None else f"{r * 100:.1f}%", None if r is None else r >= 0.8)
    p99 = lat("ms", "1024", "p99")
    f50, f99 = probe_mean("ms", "fsync_p50_ms"), probe_mean("ms", "fsync_p99_ms")
    if p99 is not None and f50 is not None:
        lim50, lim99 = 2 * f50 + 1, 2 * f99 + 1
        target("p99 publish latency at 50% load ≤ 2x disk fsync latency + 1 ms, 1 KiB",
               f"p99 {p99:.2f} ms; limit {lim50:.2f} ms with fsync p50 {f50:.2f} ms "
               f"({lim99:.2f} ms with fsync p99 {f99:.2f} ms)",
               p99 <= lim50, "" if p99 <= lim50 else ("met on the fsync-p99 basis" if p99 <= lim99 else ""))
    else:
        target("p99 publish latency at 50% load ≤ 2x disk fsync latency + 1 ms, 1 KiB", "–", None)
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
