#!/usr/bin/env bash
# bench/fleet.sh — what sharing instance policies through etcd costs (issue 15), on loopback:
#   - convergence time for 1 and 1,000 changed instances across 3 replicas and one etcd;
#   - the request path with an etcd source against files, same documents, same harness,
#     interleaved: requests/s and the gateway's CPU µs per request.
#
#   bash bench/fleet.sh                 # builds the release binaries, runs (about 2 minutes)
#   SKIP_BUILD=1 TARGET_DIR=… bash bench/fleet.sh
#   INSTANCES=1000 ROUNDS=5 DURATION=5 REPS=3 CONNS=16 bash bench/fleet.sh
#
# Needs /usr/bin/etcd (Debian's etcd-server), wrk and taskset; bench/fleet.py (python3, standard
# library) does the work and prints a Markdown report on stdout. Progress goes to stderr;
# the processes' logs stay in a temporary directory (kept with KEEP_WORK=1).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
TARGET_DIR=${TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}}
KMSGATE=$TARGET_DIR/release/kmsgate
STUB=$TARGET_DIR/release/examples/bench-upstream-stub

for tool in /usr/bin/etcd wrk taskset python3; do
    command -v "$tool" >/dev/null || {
        echo "bench/fleet.sh needs $tool (apt-get install etcd-server wrk util-linux python3)" >&2
        exit 1
    }
done
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$ROOT" && cargo build --release --locked --bin kmsgate --example bench-upstream-stub >&2)
fi
for bin in "$KMSGATE" "$STUB"; do
    [ -x "$bin" ] || { echo "not built: $bin" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kmsgate-fleet-bench.XXXXXX")
cleanup() { if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work dir: $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
python3 "$HERE/fleet.py" "$KMSGATE" "$STUB" "$WORK"
