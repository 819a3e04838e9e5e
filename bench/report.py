#!/usr/bin/env python3
"""Aggregates the harness's cells into bench/results/latest.md and latest.json.

    report.py --cells CELLS.jsonl --probes PROBES.txt --out DIR --meta key=value...

Closed-loop figures are the median over the interleaved repetitions; peak RSS is the maximum.
Ratios are kmsgate's closed-loop requests/s over HAProxy's and over the bare proxy's, in the
same run and scenario.
"""
import argparse
import json
import os
import statistics

CANDIDATES = ["none", "bare", "haproxy", "kmsgate-nocache", "kmsgate-cache",
              "kmsgate-nocache-before", "kmsgate-cache-before"]
SCENARIOS = ["valid", "ip_refused", "bad_signature", "bad_body"]
LABEL = {
    "none": "no gateway",
    "bare": "bare hyper proxy",
    "haproxy": "HAProxy 2.6",
    "kmsgate-nocache": "kmsgate, cache off",
    "kmsgate-cache": "kmsgate, cache on",
    "kmsgate-nocache-before": "kmsgate before, cache off",
    "kmsgate-cache-before": "kmsgate before, cache on",
}
SCENARIO_LABEL = {
    "valid": "valid wrap (200)",
    "ip_refused": "refused: allowedIP",
    "bad_signature": "refused: bad signature",
    "bad_body": "refused: malformed body",
}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def unexpected(cell):
    """Responses whose class differs from the expected one (wrk only tells 2xx/3xx from the rest)."""
    if cell.get("statuses"):
        want = str(cell["expected_status"])
        return sum(v for k, v in cell["statuses"].items() if k != want) + cell["socket_errors"]
    if cell["expected_status"] < 400:
        return cell["non2xx3xx"] + cell["socket_errors"]
    return cell["requests"] - cell["non2xx3xx"] + cell["socket_errors"]


def capacity(candidate, stub):
    if candidate is None:
        return None
    total = candidate + (stub or 0.0)
    return 10000 / total if total > 0 else None


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def probes(path):
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                out[(parts[0], parts[1])] = (parts[2], parts[3] if len(parts) > 3 else "")
    return out


def ratio(mine, other, key):
    if not other or not other.get(key) or not mine.get(key):
        return None
    return mine[key] / other[key]


def aggregate(cells, probe):
    rows = []
    present = [c for c in CANDIDATES if any(x["candidate"] == c for x in cells)]
    for s in SCENARIOS:
        for c in present:
            mine = [x for x in cells if x["candidate"] == c and x["scenario"] == s
                    and x["kind"] in ("throughput", "latency-low", "latency-high")]
            if not mine:
                continue
            tp = [x for x in mine if x["kind"] == "throughput"]
            low = [x for x in mine if x["kind"] == "latency-low"]
            high = [x for x in mine if x["kind"] == "latency-high"]
            status, reason = probe.get((c, s), ("?", ""))
            rows.append({
                "scenario": s,
                "candidate": c,
                "status": int(status) if status.isdigit() else None,
                "reason": reason or None,
                "expected_status": tp[0]["expected_status"] if tp else None,
                "rps": median([x["rps"] for x in tp]),
                "rps_reps": [round(x["rps"]) for x in tp],
                "closed_loop_p50_ms": median([x["p50_ms"] for x in tp]),
                "closed_loop_p99_ms": median([x["p99_ms"] for x in tp]),
                "cpu_s_per_10k": median([x["cpu_s_per_10k"] for x in tp]),
                # What the server core would sustain from CPU cost alone (candidate + stub),
                # robust against other processes taking the core away.
                "cpu_bound_rps": capacity(median([x["cpu_s_per_10k"] for x in tp]),
                                          median([x["stub_cpu_s_per_10k"] for x in tp])),
                "stub_cpu_s_per_10k": median([x["stub_cpu_s_per_10k"] for x in tp]),
                "peak_rss_mib": max([x["peak_rss_mib"] for x in mine if x["peak_rss_mib"]], default=None),
                "low_rate_rps": low[0]["rps"] if low else None,
                "low_p50_ms": low[0]["p50_ms"] if low else None,
                "low_p99_ms": low[0]["p99_ms"] if low else None,
                "high_rate_offered": high[0].get("offered") if high else None,
                "high_rate_rps": high[0]["rps"] if high else None,
                "high_p50_ms": high[0]["p50_ms"] if high else None,
                "high_p99_ms": high[0]["p99_ms"] if high else None,
                "unexpected_responses": sum(unexpected(x) for x in mine),
            })
    by = {(r["candidate"], r["scenario"]): r for r in rows}
    for r in rows:
        if r["candidate"].startswith("kmsgate"):
            for peer, key in (("haproxy", "vs_haproxy"), ("bare", "vs_bare")):
                other = by.get((peer, r["scenario"]))
                r[key] = ratio(r, other, "rps")
                r["cpu_" + key] = ratio(r, other, "cpu_bound_rps")
    return rows, by


def rss_table(cells):
    out = {}
    for x in cells:
        if x["kind"].startswith("throughput-") and x["kind"] != "throughput":
            out[x["candidate"]] = {
                "connections": int(x["kind"].split("-", 1)[1]),
                "peak_rss_mib": x["peak_rss_mib"],
                "rps": x["rps"],
                "unexpected_responses": unexpected(x),
            }
    return out


def targets(by, rss):
    def get(c, s, k):
        r = by.get((c, s))
        return r.get(k) if r else None

    out = []

    def target(name, value, limit, ok, unit="", note=None, conclusive=True):
        met = None if value is None else ok(value)
        out.append({"target": name, "value": value, "limit": limit, "unit": unit, "met": met,
                    "conclusive": conclusive, "note": note})

    for prefix, what in (("", "measured req/s"), ("cpu_", "CPU-bound req/s")):
        target("valid wrap, cache on: kmsgate / HAProxy ≥ 2× (%s)" % what,
               get("kmsgate-cache", "valid", prefix + "vs_haproxy"), 2.0, lambda v: v >= 2.0, "×")
        target("valid wrap, cache on: kmsgate / bare proxy ≥ 0.85× (%s)" % what,
               get("kmsgate-cache", "valid", prefix + "vs_bare"), 0.85, lambda v: v >= 0.85, "×")
        target("valid wrap, cache off: kmsgate / HAProxy ≥ 1.2× (%s)" % what,
               get("kmsgate-nocache", "valid", prefix + "vs_haproxy"), 1.2, lambda v: v >= 1.2, "×")
    base = get("none", "valid", "low_p99_ms")
    base50 = get("none", "valid", "low_p50_ms")
    for c in ("kmsgate-cache", "kmsgate-nocache"):
        p99 = get(c, "valid", "low_p99_ms")
        p50 = get(c, "valid", "low_p50_ms")
        added = p99 - base if p99 is not None and base is not None else None
        note = None
        if base is not None and p99 is not None:
            note = "p99 %.2f ms vs %.2f ms without a gateway" % (p99, base)
            if p50 is not None and base50 is not None:
                note += "; p50 added %.2f ms" % (p50 - base50)
        # A baseline p99 above the budget means the machine's own hiccups dominate the tail.
        target("p99 at 1,000 req/s, %s: added over no gateway ≤ 1 ms" % LABEL[c],
               added, 1.0, lambda v: v <= 1.0, "ms", note,
               conclusive=base is not None and base <= 1.0)
    for c in ("kmsgate-cache", "kmsgate-nocache"):
        r = rss.get(c)
        target("peak RSS, %s, %s keep-alive connections ≤ 32 MiB" % (LABEL[c], r["connections"] if r else "1000"),
               r["peak_rss_mib"] if r else None, 32.0, lambda v: v <= 32.0, "MiB")
    return out


def fmt(v, digits=0, suffix=""):
    if v is None:
        return "–"
    return ("{:,.%df}" % digits).format(v) + suffix


def markdown(meta, rows, rss, goals):
    lines = []
    lines.append("# kmsgate side-by-side benchmark: latest run")
    lines.append("")
    lines.append("- Date: %s" % meta.get("date", "?"))
    lines.append("- Machine: %s (shared with other work: load average %s at the start, %s at the end)"
                 % (meta.get("machine", "?"), meta.get("loadavg_start", "?"), meta.get("loadavg_end", "?")))
    lines.append("- Versions: kmsgate %s (%s build; the bare proxy and the stub too), HAProxy %s, wrk %s, oha %s, rustc %s"
                 % (meta.get("commit", "?"), meta.get("build_profile", "release"), meta.get("haproxy", "?"), meta.get("wrk", "?"),
                    meta.get("oha", "?"), meta.get("rustc", "?")))
    lines.append("- Parameters: %s" % meta.get("params", "?"))
    if meta.get("before"):
        lines.append("- \"kmsgate before\": %s, same configs, interleaved in this run" % meta["before"])
    if meta.get("kmsgate_ok") == "0":
        lines.append("- **kmsgate candidates missing**: this build did not accept the benchmark config.")
    lines.append("")
    lines.append("Load generator on one core, every server (upstream stub and candidate) on the other. "
                 "req/s: wrk closed loop, median of the repetitions. Latency: oha open loop at a fixed "
                 "rate (with latency correction), at 1,000 req/s and at %s of the candidate's own "
                 "closed-loop req/s. CPU-s / 10k req: the candidate process's user+system seconds per 10,000 "
                 "requests in the closed-loop runs (for \"no gateway\", the stub's). CPU-bound req/s: "
                 "10,000 / (candidate + stub CPU-s per 10k), what the server core would sustain from CPU "
                 "cost alone; it is robust against other processes taking the core, which the measured "
                 "req/s is not. Peak RSS: VmHWM "
                 "of the candidate (reset before each run). ×HAProxy / ×bare: kmsgate's figure over "
                 "theirs in the same scenario. Absolute figures are noisy on this shared machine; "
                 "the ratios within one run are what matter." % meta.get("high_fraction", "80%"))
    lines.append("")
    lines.append("| scenario | candidate | status | req/s | ×HAProxy | ×bare | CPU-s / 10k req "
                 "| CPU-bound req/s | ×HAProxy | ×bare | p50 / p99 @ 1k req/s (ms) "
                 "| high rate: offered → achieved | p50 / p99 @ high (ms) | peak RSS (MiB) |")
    lines.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        status = "%s%s" % (r["status"], " " + r["reason"] if r["reason"] else "")
        if r["unexpected_responses"]:
            status += " (⚠ %d unexpected)" % r["unexpected_responses"]
        kms = r["candidate"].startswith("kmsgate")
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s → %s | %s / %s | %s |" % (
            SCENARIO_LABEL[r["scenario"]], LABEL[r["candidate"]], status, fmt(r["rps"]),
            fmt(r.get("vs_haproxy"), 2, "×") if kms else "",
            fmt(r.get("vs_bare"), 2, "×") if kms else "",
            fmt(r["cpu_s_per_10k"], 3), fmt(r["cpu_bound_rps"]),
            fmt(r.get("cpu_vs_haproxy"), 2, "×") if kms else "",
            fmt(r.get("cpu_vs_bare"), 2, "×") if kms else "",
            fmt(r["low_p50_ms"], 2), fmt(r["low_p99_ms"], 2),
            fmt(r["high_rate_offered"]), fmt(r["high_rate_rps"]),
            fmt(r["high_p50_ms"], 2), fmt(r["high_p99_ms"], 2),
            fmt(r["peak_rss_mib"], 1)))
    lines.append("")
    if rss:
        n = next(iter(rss.values()))["connections"]
        lines.append("Peak RSS with %d open keep-alive connections (wrk -c%d, valid wrap):" % (n, n))
        lines.append("")
        lines.append("| candidate | peak RSS (MiB) | req/s |")
        lines.append("|---|---:|---:|")
        for c in CANDIDATES:
            if c in rss:
                lines.append("| %s | %s | %s |" % (LABEL[c], fmt(rss[c]["peak_rss_mib"], 1), fmt(rss[c]["rps"])))
        lines.append("")
    lines.append("Targets (issue 8):")
    lines.append("")
    for g in goals:
        mark = {True: "✅ met", False: "❌ missed", None: "– not measured"}[g["met"]]
        if g["met"] is not None and not g.get("conclusive", True):
            mark += ", inconclusive: the baseline's own p99 exceeds the budget (machine noise)"
        value = fmt(g["value"], 2, " " + g["unit"] if g["unit"] != "×" else "×")
        note = "; " + g["note"] if g.get("note") else ""
        lines.append("- %s: %s (%s%s)" % (g["target"], value, mark, note))
    lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", help="the harness's cells.jsonl")
    ap.add_argument("--probes", help="the harness's probes.txt")
    ap.add_argument("--rerender", help="a latest.json to render again (cells, probes, meta from it)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--meta", nargs="*", default=[])
    args = ap.parse_args()
    meta = dict(m.split("=", 1) for m in args.meta)
    if args.rerender:
        with open(args.rerender) as f:
            saved = json.load(f)
        cells = saved["cells"]
        probe = {(r["candidate"], r["scenario"]): (str(r["status"]), r["reason"] or "") for r in saved["rows"]}
        meta = {**saved["meta"], **meta}
    else:
        cells = load(args.cells)
        probe = probes(args.probes)
    for part in meta.get("params", "").split():
        if part.startswith("high_fraction="):
            meta["high_fraction"] = "%d%%" % round(float(part.split("=")[1]) * 100)
    rows, by = aggregate(cells, probe)
    rss = rss_table(cells)
    goals = targets(by, rss)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(markdown(meta, rows, rss, goals))
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows, "rss_keepalive": rss, "targets": goals, "cells": cells},
                  f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
