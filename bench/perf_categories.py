#!/usr/bin/env python3
"""Summarises a `perf record` profile of one candidate into cost categories, in % of samples
and in µs per request: perf_categories.py PERF_DATA CPU_US_PER_REQUEST."""
import re
import subprocess
import sys

CATEGORIES = [
    ("kernel (sockets, scheduling)", r"\[kernel|\[k\]"),
    ("RSA verify (aws-lc bignum)", r"bn_|BN_|rsaz|RSA_|rsa_|_mont"),
    ("SHA-256", r"sha256|sha2::"),
    ("JWT parse / JSON / base64", r"jsonwebtoken|serde_json|serde::|base64|kmsgate::auth::token"),
    ("logging (tracing, fmt)", r"tracing|core::fmt|Formatter|nu_ansi|sharded_slab|humantime"),
    ("metrics (prometheus)", r"prometheus|kmsgate::metrics"),
    ("malloc / memcpy", r"malloc|_int_free|cfree|realloc|memmove|memcpy|memset|unlink_chunk"),
    ("hyper / http", r"hyper|http::|httparse|h2::"),
    ("tokio", r"tokio|mio::"),
    ("kmsgate layers", r"kmsgate::"),
]


def main():
    data, per_request = sys.argv[1], float(sys.argv[2])
    out = subprocess.run(
        ["perf", "report", "-i", data, "--no-children", "--sort", "dso,sym", "--stdio", "-g", "none"],
        capture_output=True, text=True, check=True).stdout
    totals = {}
    for line in out.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+(.*)", line)
        if not m:
            continue
        share, symbol = float(m.group(1)), m.group(2) + " " + m.group(3)
        name = next((n for n, rx in CATEGORIES if re.search(rx, symbol)), "other")
        totals[name] = totals.get(name, 0.0) + share
    print("%-32s %7s %9s" % ("category", "samples", "µs/req"))
    for name, share in sorted(totals.items(), key=lambda kv: -kv[1]):
        print("%-32s %6.1f%% %9.1f" % (name, share, share / 100 * per_request))


if __name__ == "__main__":
    main()
