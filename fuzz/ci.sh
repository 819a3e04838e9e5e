#!/usr/bin/env bash
# The fuzz targets' CI step (called from .ci/run after the main tests).
#
#   fuzz/ci.sh              replay: every committed seed (fuzz/corpus/<target>/) through every
#                           target, as a plain `cargo test` of the fuzz crate, no fuzzing engine
#                           (the default; about a minute on a warm ../target)
#   fuzz/ci.sh --afl [SECS] a bounded AFL++ run: install cargo-afl if missing, build the
#                           instrumented targets, fuzz each for SECS seconds (default 10), fail
#                           on any crash or hang (about 15 minutes from nothing on 2 cores: the
#                           install builds AFL++ and the build instruments every dependency, so
#                           it is too slow for the CI budget; run it by hand or on a schedule)
#
# The replay shares the main build's target directory (../target), so the dependencies the
# main `cargo test` compiled are reused. Set CARGO_TARGET_DIR to use another.
set -euo pipefail
cd "$(dirname "$0")"

case ${1:-replay} in
  replay)
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/../target}
    # Not --locked: fuzz/Cargo.lock follows the main Cargo.lock, and a dependency the gateway
    # adds is resolved here at the version the main lock has (or the newest, offline first).
    cargo test --test corpus
    ;;
  --afl)
    seconds=${2:-10}
    if ! command -v cargo-afl >/dev/null; then
      # Builds AFL++ from the source the crate ships, with the system C compiler and make.
      cargo install cargo-afl --locked
    fi
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
    cargo afl build --release --features afl
    status=0
    for bin in src/bin/*.rs; do
      target=$(basename "$bin" .rs)
      rm -rf "ci-out/$target"
      FUZZ_NO_BUILD=1 FUZZ_OUT=ci-out/$target FUZZ_NICE=${FUZZ_NICE:-0} \
        ./run.sh "$target" "$seconds" || status=1
    done
    exit $status
    ;;
  *)
    echo "usage: $0 [--afl [SECONDS]]" >&2
    exit 2
    ;;
esac
