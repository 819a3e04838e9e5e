#!/usr/bin/env python3
"""One benchmark cell: reads the load generator's output on stdin (wrk's WRKJSON line from the
harness's Lua `done`, or oha's --output-format json) and prints one JSON line with the load
figures, the candidate's CPU time and peak RSS.

    cell.py KIND CANDIDATE SCENARIO REP RC TICKS CAND_TICKS STUB_TICKS PEAK_KIB RSS_KIB EXPECTED OFFERED
    cell.py --high-rate CELLS CANDIDATE SCENARIO FRACTION   # the rate for the "high" latency run
"""
import json
import statistics
import sys


def parse_wrk(text):
    for line in text.splitlines():
        if line.startswith("WRKJSON "):
            w = json.loads(line[len("WRKJSON "):])
            seconds = w["duration_us"] / 1e6
            return {
                "requests": w["requests"],
                "seconds": seconds,
                "rps": w["requests"] / seconds if seconds else 0.0,
                "p50_ms": w["p50_us"] / 1000,
                "p99_ms": w["p99_us"] / 1000,
                "non2xx3xx": w["non2xx3xx"],
                "socket_errors": w["socket_errors"],
                "statuses": None,
            }
    return None


def parse_oha(text):
    start = text.find("{")
    if start < 0:
        return None
    o = json.loads(text[start:])
    summary = o["summary"]
    pct = o.get("latencyPercentiles") or {}
    statuses = {str(k): v for k, v in (o.get("statusCodeDistribution") or {}).items()}
    requests = sum(statuses.values())
    # Requests still in flight when the duration ends are "aborted due to deadline": not failures.
    errors = sum(v for k, v in (o.get("errorDistribution") or {}).items() if "deadline" not in k)
    seconds = summary.get("total") or 0.0

    def ms(key):
        value = pct.get(key)
        return None if value is None else value * 1000

    return {
        "requests": requests,
        "seconds": seconds,
        "rps": requests / seconds if seconds else 0.0,
        "p50_ms": ms("p50"),
        "p99_ms": ms("p99"),
        "non2xx3xx": sum(v for k, v in statuses.items() if not k.startswith(("2", "3"))),
        "socket_errors": errors,
        "statuses": statuses,
    }


def high_rate(cells_path, candidate, scenario, fraction):
    rates = []
    with open(cells_path) as cells:
        for line in cells:
            c = json.loads(line)
            if c["kind"] == "throughput" and c["candidate"] == candidate and c["scenario"] == scenario:
                rates.append(c["rps"])
    rate = statistics.median(rates) * float(fraction) if rates else 1000
    print(max(100, int(rate // 100 * 100)))


def main():
    if sys.argv[1] == "--high-rate":
        high_rate(*sys.argv[2:6])
        return
    kind, candidate, scenario, rep, rc, ticks, cand_ticks, stub_ticks, peak, rss, expected, offered = sys.argv[1:13]
    text = sys.stdin.read()
    figures = parse_wrk(text) if kind.startswith("throughput") else parse_oha(text)
    if figures is None:
        sys.exit("no result in the load generator's output (exit %s)" % rc)
    hz = float(ticks)
    cpu = int(cand_ticks) / hz
    stub_cpu = int(stub_ticks) / hz
    if candidate == "none":
        stub_cpu = 0.0  # the stub is the candidate
    per10k = (lambda s: s / figures["requests"] * 10000 if figures["requests"] else None)
    cell = {
        "kind": kind,
        "candidate": candidate,
        "scenario": scenario,
        "rep": int(rep),
        "exit": int(rc),
        "expected_status": int(expected),
        "offered": int(offered) or None,
        **figures,
        "cpu_s": cpu,
        "cpu_s_per_10k": per10k(cpu),
        "stub_cpu_s_per_10k": per10k(stub_cpu),
        "peak_rss_mib": int(peak) / 1024 if peak else None,
        "rss_end_mib": int(rss) / 1024 if rss else None,
    }
    print(json.dumps(cell))


if __name__ == "__main__":
    main()
