#!/usr/bin/env bash
# bench/run.sh — the side-by-side benchmark (issue 8): kmsgate against HAProxy 2.6 and a bare
# hyper proxy, in one run on one machine, loopback only.
#
#   bash bench/run.sh            # installs haproxy/wrk (apt) and oha (cargo), builds, runs (~10 min)
#   QUICK=1 bash bench/run.sh    # one short repetition, for trying the harness (~3 min)
#   KMSGATE_BEFORE_BIN=old/kmsgate bash bench/run.sh
#                                # adds kmsgate-nocache-before / kmsgate-cache-before: an older
#                                # build with the same configs, interleaved in the same run
#
# Candidates: none (load straight at the upstream stub), bare (hyper pass-through, no layers),
# haproxy (HAProxy 2.6 with the equivalent checks), kmsgate-nocache, kmsgate-cache.
# Scenarios: valid (wrap → 200), ip_refused (allowedIP), bad_signature (RS256 token signed by
# another key), bad_body (malformed wrap body).
# The load generator runs on LOADGEN_CPU, every server (stub and candidates) on SERVER_CPU.
# Writes $OUT/latest.md and $OUT/latest.json (default bench/results/). Knobs: see below.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    : "${DURATION:=3}" "${REPS:=1}" "${LAT_DURATION:=3}"
fi
DURATION=${DURATION:-5}          # seconds per closed-loop (wrk) cell
REPS=${REPS:-2}                  # interleaved repetitions of the closed-loop cells (median reported)
LAT_DURATION=${LAT_DURATION:-5}  # seconds per fixed-rate (oha) cell
CONNS=${CONNS:-32}               # keep-alive connections for the closed-loop runs
LAT_CONNS=${LAT_CONNS:-32}       # connections oha may use for the fixed-rate runs
LOW_RATE=${LOW_RATE:-1000}       # the fixed rate every candidate is measured at (req/s)
HIGH_FRACTION=${HIGH_FRACTION:-0.8}  # "highest sustained rate" = this × the cell's closed-loop req/s
RSS_CONNS=${RSS_CONNS:-1000}     # open keep-alive connections for the peak-RSS measurement (0: skip)
ALLOCS=${ALLOCS:-20000}          # valid wraps over which each candidate's heap allocations are counted (0: skip)
LATENCY=${LATENCY:-1}            # 0: skip the fixed-rate (oha) latency cells
LOADGEN_CPU=${LOADGEN_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
BASE_PORT=${BASE_PORT:-18080}
ACCESS_LOG=${ACCESS_LOG:-1}      # 1: HAProxy and kmsgate both write an access line per request
LOG_SINK=${LOG_SINK:-file}       # where the servers' stdout/stderr (so the access logs) go: file (in the work dir) or null
CANDIDATES_SET=$([ -n "${CANDIDATES:-}" ] && echo 1 || echo 0)
CANDIDATES=${CANDIDATES:-"none bare haproxy kmsgate-nocache kmsgate-cache"}
SCENARIOS=${SCENARIOS:-"valid ip_refused bad_signature bad_body"}
OUT=${OUT:-$HERE/results}
SKIP_INSTALL=${SKIP_INSTALL:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_WORK=${KEEP_WORK:-0}
PROFILE=${PROFILE:-}             # CANDIDATE/SCENARIO: only profile that cell with perf, then stop

STUB_PORT=$BASE_PORT
BARE_PORT=$((BASE_PORT + 1))
HAPROXY_PORT=$((BASE_PORT + 2))
KMSGATE_NOCACHE_PORT=$((BASE_PORT + 3))
KMSGATE_CACHE_PORT=$((BASE_PORT + 4))
KMSGATE_NOCACHE_BEFORE_PORT=$((BASE_PORT + 5))
KMSGATE_CACHE_BEFORE_PORT=$((BASE_PORT + 6))
# kmsgate-VARIANT's admin port is its public port + 10.

# What both gateways enforce.
ISSUER="https://iam.example.test/identity"
AUDIENCE="kms-api"
LEEWAY=30
TRUSTED="127.0.0.1/32"
ALLOWED_IPS="10.0.0.0/8 192.168.0.0/16"
INSTANCE="a1b2c3d4-0000-4000-8000-000000000001"
KEY_ID="12e8c9c2-a162-472d-b7d6-8b9a86b815a6"
CLIENT_OK="10.1.2.3"         # in allowedIP (sent as X-Forwarded-For by the trusted 127.0.0.1)
CLIENT_REFUSED="198.51.100.7"  # not in allowedIP (a header value only: no traffic goes there)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ---------------------------------------------------------------------------------------------
# 1. Tools
# ---------------------------------------------------------------------------------------------
OHA=""
install_tools() {
    local missing=()
    command -v haproxy >/dev/null || missing+=(haproxy)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v curl >/dev/null || missing+=(curl)
    command -v python3 >/dev/null || missing+=(python3)
    command -v taskset >/dev/null || missing+=(util-linux)
    if [ "${#missing[@]}" -gt 0 ]; then
        [ "$SKIP_INSTALL" = 1 ] && die "missing: ${missing[*]} (SKIP_INSTALL=1)"
        log "installing with apt: ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if command -v oha >/dev/null; then
        OHA=$(command -v oha)
    elif [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/oha" ]; then
        OHA="${CARGO_HOME:-$HOME/.cargo}/bin/oha"
    elif [ "$SKIP_INSTALL" != 1 ]; then
        log "installing oha with cargo (a few minutes, once)"
        if timeout 1800 cargo install --locked oha >&2; then
            OHA="${CARGO_HOME:-$HOME/.cargo}/bin/oha"
        fi
    fi
    [ -n "$OHA" ] || log "warning: oha is not available: fixed-rate latency columns will be empty"
    # Read the whole output first: `haproxy -v | head -1 | grep -q` fails now and then under
    # pipefail, when head exits before haproxy has written its other lines (SIGPIPE).
    local version
    version=$(haproxy -v 2>&1 || true)
    version=${version%%$'\n'*}
    [[ $version == *"version 2."* ]] || die "haproxy 2.x is needed: $version"
}

# ---------------------------------------------------------------------------------------------
# 2. Build (the gateway and the two helpers, one dependency build, in BUILD_PROFILE)
# ---------------------------------------------------------------------------------------------
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# dist: what ships (fat LTO, stripped; deploy/Dockerfile); release: faster to build, and symbols
# for a PROFILE run (its default).
BUILD_PROFILE=${BUILD_PROFILE:-$([ -n "$PROFILE" ] && echo release || echo dist)}
KMSGATE=${KMSGATE_BIN:-$TARGET_DIR/$BUILD_PROFILE/kmsgate}   # KMSGATE_BIN: measure another kmsgate build
KMSGATE_BEFORE=${KMSGATE_BEFORE_BIN:-}                 # an older build to compare with, in the same run
if [ -n "$KMSGATE_BEFORE" ] && [ "${CANDIDATES_SET:-0}" = 0 ]; then
    CANDIDATES="$CANDIDATES kmsgate-nocache-before kmsgate-cache-before"
fi
STUB=$TARGET_DIR/$BUILD_PROFILE/examples/bench-upstream-stub
BARE=$TARGET_DIR/$BUILD_PROFILE/examples/bench-bare-proxy
build() {
    if [ "$SKIP_BUILD" != 1 ]; then
        log "building $BUILD_PROFILE binaries (kmsgate, upstream stub, bare proxy)"
        (cd "$ROOT" && cargo build --profile "$BUILD_PROFILE" --bin kmsgate \
            --example bench-upstream-stub --example bench-bare-proxy >&2)
    fi
    for bin in "$KMSGATE" "$STUB" "$BARE" ${KMSGATE_BEFORE:+"$KMSGATE_BEFORE"}; do
        [ -x "$bin" ] || die "not built: $bin"
    done
}

# ---------------------------------------------------------------------------------------------
# 3. Work directory, processes, cleanup
# ---------------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kmsgate-bench.XXXXXX")
declare -A PID=()
cleanup() {
    local name
    for name in "${!PID[@]}"; do
        kill "${PID[$name]}" 2>/dev/null || true
    done
    for name in "${!PID[@]}"; do
        wait "${PID[$name]}" 2>/dev/null || true
    done
    if [ "$KEEP_WORK" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts "$@" pinned to SERVER_CPU in the background, as candidate $1's process.
start() {
    local name=$1; shift
    local out="$WORK/$name.out" err="$WORK/$name.err"
    if [ "$LOG_SINK" = null ]; then out=/dev/null err=/dev/null; fi
    taskset -c "$SERVER_CPU" "$@" >"$out" 2>"$err" &
    PID[$name]=$!
}

# Waits (bounded) until an HTTP GET to $2 answers $3 (a status) or the process $1 died.
wait_http() {
    local name=$1 url=$2 want=$3 i code
    for ((i = 0; i < 100; i++)); do
        kill -0 "${PID[$name]}" 2>/dev/null || { cat "$WORK/$name.err" >&2 2>/dev/null; die "$name exited"; }
        code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$url" || true)
        [ "$code" = "$want" ] && return 0
        sleep 0.1
    done
    cat "$WORK/$name.err" >&2 2>/dev/null || true
    die "$name did not answer $want at $url"
}

# ---------------------------------------------------------------------------------------------
# 4. Keys and tokens (RSA-2048, RS256, minted with openssl)
# ---------------------------------------------------------------------------------------------
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
mint() { # mint PRIVATE_KEY_PEM -> a signed JWT on stdout
    local now header payload input
    now=$(date +%s)
    header=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
    payload=$(printf '{"sub":"ServiceId-5e7a0d52-bench","sub_type":"ServiceId","iss":"%s","aud":"%s","iat":%d,"exp":%d}' \
        "$ISSUER" "$AUDIENCE" "$now" "$((now + 7200))" | b64url)
    input="$header.$payload"
    printf '%s.%s' "$input" "$(printf '%s' "$input" | openssl dgst -sha256 -sign "$1" -binary | b64url)"
}
make_tokens() {
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/jwt-priv.pem" 2>/dev/null
    openssl pkey -in "$WORK/jwt-priv.pem" -pubout -out "$WORK/jwt-pub.pem"
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/other-priv.pem" 2>/dev/null
    TOKEN_OK=$(mint "$WORK/jwt-priv.pem")
    TOKEN_BAD_SIG=$(mint "$WORK/other-priv.pem")
}

# ---------------------------------------------------------------------------------------------
# 5. Configs
# ---------------------------------------------------------------------------------------------
fill() { # fill TEMPLATE OUTPUT KEY=VALUE...
    local template=$1 output=$2; shift 2
    python3 - "$template" "$output" "$@" <<'PY'
import sys
template, output, *pairs = sys.argv[1:]
text = open(template).read()
for pair in pairs:
    key, value = pair.split("=", 1)
    text = text.replace("@" + key + "@", value)
import re
left = re.findall(r"@[A-Z_]+@", text)
if left:
    sys.exit("unfilled placeholders in %s: %s" % (output, " ".join(sorted(set(left)))))
open(output, "w").write(text)
PY
}
quoted_list() { local out="" x; for x in "$@"; do out+="${out:+, }\"$x\""; done; printf '%s' "$out"; }

write_configs() {
    local log_global="" access_log=false
    if [ "$ACCESS_LOG" = 1 ]; then log_global="log stdout format raw local0 info"; access_log=true; fi
    # shellcheck disable=SC2086
    fill "$HERE/config/haproxy.cfg.in" "$WORK/haproxy.cfg" \
        PORT="$HAPROXY_PORT" UPSTREAM="127.0.0.1:$STUB_PORT" LOG_GLOBAL="$log_global" \
        TRUSTED="$TRUSTED" ALLOWED_IPS="$ALLOWED_IPS" ISSUER="$ISSUER" AUDIENCE="$AUDIENCE" \
        LEEWAY="$LEEWAY"
    local variant port cache
    for variant in nocache cache nocache-before cache-before; do
        port=${PORT[kmsgate-$variant]} cache=${variant%-before}
        # shellcheck disable=SC2086
        fill "$HERE/config/kmsgate.toml.in" "$WORK/kmsgate-$variant.toml" \
            PORT="$port" ADMIN_PORT="$((port + 10))" UPSTREAM="127.0.0.1:$STUB_PORT" \
            ACCESS_LOG="$access_log" TRUSTED_LIST="$(quoted_list $TRUSTED)" \
            ALLOWED_LIST="$(quoted_list $ALLOWED_IPS)" ISSUER="$ISSUER" AUDIENCE="$AUDIENCE" \
            LEEWAY="$LEEWAY" DIR="$WORK" \
            CACHE_ENABLED="$([ $cache = cache ] && echo true || echo false)" \
            CACHE="$([ $cache = cache ] && echo on || echo off)"
    done
}

# ---------------------------------------------------------------------------------------------
# 6. Candidates
# ---------------------------------------------------------------------------------------------
declare -A PORT=([none]=$STUB_PORT [bare]=$BARE_PORT [haproxy]=$HAPROXY_PORT
    [kmsgate-nocache]=$KMSGATE_NOCACHE_PORT [kmsgate-cache]=$KMSGATE_CACHE_PORT
    [kmsgate-nocache-before]=$KMSGATE_NOCACHE_BEFORE_PORT [kmsgate-cache-before]=$KMSGATE_CACHE_BEFORE_PORT)
KMSGATE_OK=1
start_all() {
    start stub "$STUB" "127.0.0.1:$STUB_PORT"
    wait_http stub "http://127.0.0.1:$STUB_PORT/" 200
    PID[none]=${PID[stub]}
    start bare "$BARE" "127.0.0.1:$BARE_PORT" "127.0.0.1:$STUB_PORT"
    wait_http bare "http://127.0.0.1:$BARE_PORT/" 200
    haproxy -c -q -f "$WORK/haproxy.cfg" || die "haproxy rejects $WORK/haproxy.cfg"
    start haproxy haproxy -db -f "$WORK/haproxy.cfg"
    wait_http haproxy "http://127.0.0.1:$HAPROXY_PORT/" 401   # 127.0.0.1 is not in allowedIP
    local variant bin
    for variant in nocache cache nocache-before cache-before; do
        case " $CANDIDATES " in *" kmsgate-$variant "*) ;; *) continue ;; esac
        bin=$KMSGATE
        [ "${variant%-before}" != "$variant" ] && bin=$KMSGATE_BEFORE
        [ -n "$bin" ] || die "kmsgate-$variant needs KMSGATE_BEFORE_BIN"
        if ! "$bin" check-config "$WORK/kmsgate-$variant.toml" >/dev/null 2>"$WORK/check-$variant.err"; then
            log "kmsgate does not accept the benchmark config (are [auth] and the policy parser built in?):"
            cat "$WORK/check-$variant.err" >&2
            KMSGATE_OK=0
            continue
        fi
        start "kmsgate-$variant" "$bin" --config "$WORK/kmsgate-$variant.toml"
        wait_http "kmsgate-$variant" "http://127.0.0.1:$((${PORT[kmsgate-$variant]} + 10))/readyz" 200
    done
    if [ "$KMSGATE_OK" = 0 ]; then
        CANDIDATES=$(printf '%s\n' $CANDIDATES | grep -v '^kmsgate' | tr '\n' ' ')
        log "continuing without the kmsgate candidates"
    fi
}

# ---------------------------------------------------------------------------------------------
# 7. Scenarios: one wrap request each
# ---------------------------------------------------------------------------------------------
WRAP_PATH="/api/v2/keys/$KEY_ID/actions/wrap"
BODY_OK='{"plaintext":"dGhpcnR5LXR3by1ieXRlLWRhdGEtZW5jcnlwdGlvbi1rZXk="}'
BODY_BAD='{"plaintext":"dGhpcnR5LXR3by1ieXRlLWRhdGEtZW5jcnlwdGlvbi1rZXk='   # truncated JSON
scenario() { # scenario NAME -> sets S_TOKEN S_CLIENT S_BODY S_WANT (gateway's expected status)
    S_TOKEN=$TOKEN_OK S_CLIENT=$CLIENT_OK S_BODY=$BODY_OK S_WANT=200
    case $1 in
        valid) ;;
        ip_refused) S_CLIENT=$CLIENT_REFUSED S_WANT=401 ;;
        bad_signature) S_TOKEN=$TOKEN_BAD_SIG S_WANT=401 ;;
        bad_body) S_BODY=$BODY_BAD S_WANT=400 ;;
        *) die "unknown scenario $1" ;;
    esac
}
expected() { # expected CANDIDATE SCENARIO -> status
    scenario "$2"
    case $1 in none | bare) echo 200 ;; *) echo "$S_WANT" ;; esac
}
write_wrk_scripts() {
    local s
    for s in $SCENARIOS; do
        scenario "$s"
        cat >"$WORK/wrk-$s.lua" <<EOF
wrk.method = "POST"
wrk.body = [==[$S_BODY]==]
wrk.headers["Authorization"] = "Bearer $S_TOKEN"
wrk.headers["Bluemix-Instance"] = "$INSTANCE"
wrk.headers["Content-Type"] = "application/vnd.ibm.kms.key_action_wrap+json"
wrk.headers["X-Forwarded-For"] = "$S_CLIENT"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"non2xx3xx":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
EOF
    done
}

# Sends one request of scenario $2 to candidate $1; prints "STATUS REASON".
probe() {
    scenario "$2"
    curl -s -o /dev/null -D "$WORK/probe.h" -w '%{http_code}' -m 5 -X POST \
        -H "Authorization: Bearer $S_TOKEN" -H "Bluemix-Instance: $INSTANCE" \
        -H "Content-Type: application/vnd.ibm.kms.key_action_wrap+json" \
        -H "X-Forwarded-For: $S_CLIENT" --data-binary "$S_BODY" \
        "http://127.0.0.1:${PORT[$1]}$WRAP_PATH" || true
    printf ' %s\n' "$(tr -d '\r' <"$WORK/probe.h" | awk -F': ' 'tolower($1)=="kmsgate-reason"{print $2}')"
}

# ---------------------------------------------------------------------------------------------
# 8. Measurements
# ---------------------------------------------------------------------------------------------
CELLS=$WORK/cells.jsonl
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
reset_peak() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }   # resets VmHWM (root)
peak_kib() { awk '/^VmHWM/{print $2}' "/proc/$1/status"; }
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }

# measure KIND CANDIDATE SCENARIO REP TOOL-COMMAND... : runs the load with CPU and peak-RSS
# accounting around it and appends one JSON line to $CELLS.
measure() {
    local kind=$1 cand=$2 scen=$3 rep=$4; shift 4
    local pid=${PID[$cand]} stub=${PID[stub]} c0 s0 c1 s1 out rc=0
    reset_peak "$pid"; reset_peak "$stub"
    c0=$(cpu_ticks "$pid"); s0=$(cpu_ticks "$stub")
    out=$(taskset -c "$LOADGEN_CPU" timeout $((DURATION > LAT_DURATION ? DURATION + 30 : LAT_DURATION + 30)) "$@" 2>"$WORK/load.err") || rc=$?
    c1=$(cpu_ticks "$pid"); s1=$(cpu_ticks "$stub")
    python3 "$HERE/cell.py" "$kind" "$cand" "$scen" "$rep" "$rc" "$TICKS" \
        "$((c1 - c0))" "$((s1 - s0))" "$(peak_kib "$pid")" "$(rss_kib "$pid")" \
        "$(expected "$cand" "$scen")" "${OFFERED:-0}" <<<"$out" >>"$CELLS" || {
        log "could not read the load generator's output for $kind $cand $scen: $(head -c 300 "$WORK/load.err")"
    }
}

wrk_cell() { # wrk_cell CANDIDATE SCENARIO REP CONNS
    OFFERED=0 measure "throughput${4:+-$4}" "$1" "$2" "$3" \
        wrk -t1 -c"${4:-$CONNS}" -d"${DURATION}s" --timeout 5s -s "$WORK/wrk-$2.lua" \
        "http://127.0.0.1:${PORT[$1]}$WRAP_PATH"
}
oha_cell() { # oha_cell KIND CANDIDATE SCENARIO RATE
    scenario "$3"
    OFFERED=$4 measure "$1" "$2" "$3" 1 "$OHA" --no-tui --output-format json -z "${LAT_DURATION}s" \
        -q "$4" -c "$LAT_CONNS" --latency-correction \
        -m POST -H "Authorization: Bearer $S_TOKEN" -H "Bluemix-Instance: $INSTANCE" \
        -H "Content-Type: application/vnd.ibm.kms.key_action_wrap+json" \
        -H "X-Forwarded-For: $S_CLIENT" -d "$S_BODY" \
        "http://127.0.0.1:${PORT[$2]}$WRAP_PATH"
}
# allocs_cell CANDIDATE: heap allocations (glibc malloc + calloc + realloc, counted with perf
# uprobes on the candidate process) per request over ALLOCS valid wraps (oha -n, 32
# connections, after 2,000 unmeasured ones). Load-insensitive: a count, not a time. Prints
# "CANDIDATE ALLOCS_PER_REQUEST REALLOCS_PER_REQUEST", or nothing if perf cannot probe libc.
allocs_cell() {
    local cand=$1 pid=${PID[$1]} libc csv="$WORK/allocs-$1.csv" perf_pid
    libc=$(awk '/\/libc\.so/{print $NF; exit}' "/proc/$pid/maps" 2>/dev/null || true)
    [ -n "$libc" ] && [ -n "$OHA" ] || return 0
    # (An existing probe makes `perf probe` fail: that is fine.)
    local f
    for f in malloc calloc realloc; do perf probe -q -x "$libc" "$f" >/dev/null 2>&1 || true; done
    grep -q 'probe_libc:malloc' < <(perf list 2>/dev/null) || return 0
    scenario valid
    local load=(taskset -c "$LOADGEN_CPU" timeout 120 "$OHA" --no-tui --output-format json -c 32
        -m POST -H "Authorization: Bearer $S_TOKEN" -H "Bluemix-Instance: $INSTANCE"
        -H "Content-Type: application/vnd.ibm.kms.key_action_wrap+json"
        -H "X-Forwarded-For: $S_CLIENT" -d "$S_BODY" "http://127.0.0.1:${PORT[$cand]}$WRAP_PATH")
    "${load[@]}" -n 2000 >/dev/null 2>&1 || return 0
    perf stat -x, -e probe_libc:malloc,probe_libc:calloc,probe_libc:realloc -p "$pid" -o "$csv" -- sleep 300 &
    perf_pid=$!
    sleep 0.5
    "${load[@]}" -n "$ALLOCS" >/dev/null 2>&1 || true
    pkill -P "$perf_pid" -x sleep || true
    wait "$perf_pid" 2>/dev/null || true
    awk -F, -v c="$cand" -v n="$ALLOCS" '
        $3 == "probe_libc:malloc" || $3 == "probe_libc:calloc" { a += $1 }
        $3 == "probe_libc:realloc" { r += $1 }
        END { if (a > 0) printf "%s %.1f %.1f\n", c, a / n, r / n }' "$csv"
}

rotated() { # rotated N WORDS... : the words, rotated left by N (interleaving order per repetition)
    local n=$1; shift
    local words=("$@") i
    for ((i = 0; i < ${#words[@]}; i++)); do printf '%s ' "${words[$(((i + n) % ${#words[@]}))]}"; done
}

# profile CANDIDATE SCENARIO: perf record of the candidate during a closed-loop run, the cost
# categories in µs per request, and its syscalls per request (perf stat).
profile() {
    local cand=$1 scen=$2 pid=${PID[$1]} c0 c1 out requests
    command -v perf >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
    c0=$(cpu_ticks "$pid")
    taskset -c "$LOADGEN_CPU" timeout $((DURATION + 30)) wrk -t1 -c"$CONNS" -d"${DURATION}s" \
        -s "$WORK/wrk-$scen.lua" "http://127.0.0.1:${PORT[$cand]}$WRAP_PATH" >"$WORK/profile-wrk.out" &
    local wrk_pid=$!
    sleep 1
    perf record -q -F 999 -g -p "$pid" -o "$WORK/perf.data" -- sleep $((DURATION > 3 ? DURATION - 2 : 1)) >/dev/null 2>&1
    wait "$wrk_pid"
    # Syscalls per request, by name, in a second (unprofiled) run of the same load.
    taskset -c "$LOADGEN_CPU" timeout $((DURATION + 30)) wrk -t1 -c"$CONNS" -d3s \
        -s "$WORK/wrk-$scen.lua" "http://127.0.0.1:${PORT[$cand]}$WRAP_PATH" >"$WORK/syscalls-wrk.out" &
    wrk_pid=$!
    sleep 0.5
    perf stat -x, -e 'syscalls:sys_enter_*' -p "$pid" -o "$WORK/syscalls.csv" -- sleep 2 >/dev/null 2>&1 || true
    perf stat -x, -e 'syscalls:sys_enter_*' -p "${PID[stub]}" -o "$WORK/syscalls-stub.csv" -- sleep 0.01 >/dev/null 2>&1 || true
    wait "$wrk_pid"
    local sys_requests
    sys_requests=$(sed -n 's/^WRKJSON .*"requests":\([0-9]*\).*/\1/p' "$WORK/syscalls-wrk.out")
    python3 - "$WORK/syscalls.csv" "$sys_requests" <<'PY' || true
import sys
path, requests = sys.argv[1], int(sys.argv[2] or 0)
# The counts cover 2 s of a 3 s run: scale the requests accordingly.
per = max(requests * 2 / 3, 1)
rows = []
for line in open(path):
    f = line.strip().split(",")
    if len(f) > 2 and f[0].isdigit() and int(f[0]) > 0:
        rows.append((int(f[0]), f[2].replace("syscalls:sys_enter_", "")))
rows.sort(reverse=True)
print("syscalls per request: %.2f" % (sum(n for n, _ in rows) / per))
for n, name in rows[:12]:
    print("  %-20s %6.2f" % (name, n / per))
PY
    c1=$(cpu_ticks "$pid")
    requests=$(sed -n 's/^WRKJSON .*"requests":\([0-9]*\).*/\1/p' "$WORK/profile-wrk.out")
    [ -n "$requests" ] && [ "$requests" -gt 0 ] || die "the profiling run served no requests"
    out=$(python3 -c "print(round(($c1 - $c0) / $TICKS / $requests * 1e6, 1))")
    log "profile of $cand / $scen: $requests requests, $out µs CPU per request (perf running)"
    python3 "$HERE/perf_categories.py" "$WORK/perf.data" "$out"
    cp "$WORK/perf.data" "$OUT/perf-$cand-$scen.data" 2>/dev/null && log "perf data: $OUT/perf-$cand-$scen.data"
}

main() {
    install_tools
    build
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    make_tokens
    write_configs
    write_wrk_scripts
    start_all
    log "work directory: $WORK"
    if [ -n "$PROFILE" ]; then
        mkdir -p "$OUT"
        profile "${PROFILE%/*}" "${PROFILE#*/}"
        return
    fi

    local c s rep
    : >"$WORK/probes.txt"
    for s in $SCENARIOS; do
        for c in $CANDIDATES; do
            printf '%s %s %s\n' "$c" "$s" "$(probe "$c" "$s")" >>"$WORK/probes.txt"
        done
    done
    log "probes (candidate scenario status reason):"; cat "$WORK/probes.txt" >&2

    local load_start
    load_start=$(cut -d' ' -f1-3 /proc/loadavg)
    : >"$CELLS"
    for ((rep = 1; rep <= REPS; rep++)); do
        for s in $SCENARIOS; do
            for c in $(rotated $((rep - 1)) $CANDIDATES); do
                log "throughput rep $rep/$REPS: $c / $s"
                wrk_cell "$c" "$s" "$rep"
            done
        done
    done
    if [ -n "$OHA" ] && [ "$LATENCY" = 1 ]; then
        for s in $SCENARIOS; do
            for c in $CANDIDATES; do
                log "latency at $LOW_RATE req/s: $c / $s"
                oha_cell latency-low "$c" "$s" "$LOW_RATE"
                local high
                high=$(python3 "$HERE/cell.py" --high-rate "$CELLS" "$c" "$s" "$HIGH_FRACTION")
                log "latency at $high req/s ($HIGH_FRACTION × closed-loop): $c / $s"
                oha_cell latency-high "$c" "$s" "$high"
            done
        done
    fi
    if [ "$RSS_CONNS" -gt 0 ]; then
        for c in $CANDIDATES; do
            log "peak RSS with $RSS_CONNS keep-alive connections: $c"
            wrk_cell "$c" valid 1 "$RSS_CONNS"
        done
    fi
    : >"$WORK/allocs.txt"
    if [ "$ALLOCS" -gt 0 ]; then
        for c in $CANDIDATES; do
            log "heap allocations over $ALLOCS valid wraps: $c"
            allocs_cell "$c" >>"$WORK/allocs.txt" || log "could not count allocations of $c"
        done
    fi
    local load_end
    load_end=$(cut -d' ' -f1-3 /proc/loadavg)

    mkdir -p "$OUT"
    python3 "$HERE/report.py" --cells "$CELLS" --probes "$WORK/probes.txt" --out "$OUT" \
        --meta date="$(date -u +'%Y-%m-%d %H:%M UTC')" \
        machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)" \
        loadavg_start="$load_start" loadavg_end="$load_end" \
        commit="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        haproxy="$(haproxy -v | head -1 | awk '{print $3}')" \
        wrk="$(wrk -v 2>&1 | head -1 | awk '{print $2}')" \
        oha="$([ -n "$OHA" ] && "$OHA" --version | awk '{print $2}' || echo missing)" \
        rustc="$(rustc --version | awk '{print $2}')" \
        build_profile="$BUILD_PROFILE" \
        params="candidates=[$CANDIDATES] scenarios=[$SCENARIOS] latency=$LATENCY duration=${DURATION}s reps=$REPS conns=$CONNS lat_duration=${LAT_DURATION}s lat_conns=$LAT_CONNS low_rate=$LOW_RATE high_fraction=$HIGH_FRACTION rss_conns=$RSS_CONNS access_log=$ACCESS_LOG log_sink=$LOG_SINK loadgen_cpu=$LOADGEN_CPU server_cpu=$SERVER_CPU" \
        kmsgate_ok="$KMSGATE_OK" \
        before="${KMSGATE_BEFORE:+$KMSGATE_BEFORE ($("$KMSGATE_BEFORE" --version 2>/dev/null | head -1))}"
    if [ -s "$WORK/allocs.txt" ]; then
        {
            printf '\n## Heap allocations per request (valid wrap)\n\n'
            printf 'glibc malloc + calloc (realloc apart) in the candidate process, counted with perf uprobes over %s valid wraps (oha, 32 connections), after 2,000 unmeasured ones.\n\n' "$ALLOCS"
            printf '| candidate | allocations / request | reallocs / request |\n|---|---:|---:|\n'
            while read -r c a r; do printf '| %s | %s | %s |\n' "$c" "$a" "$r"; done <"$WORK/allocs.txt"
        } >>"$OUT/latest.md"
    fi
    log "wrote $OUT/latest.md and $OUT/latest.json"
    cat "$OUT/latest.md"
}

main "$@"
