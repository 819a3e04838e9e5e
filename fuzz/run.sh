#!/usr/bin/env bash
# Runs one fuzz target under AFL++ (cargo-afl, stable Rust) for a bounded time, then prints
# its statistics. Exits 1 if AFL++ saved a crash or a hang.
#
#   fuzz/run.sh TARGET SECONDS [MAX_EXECS]
#
# TARGET is one of body, policy, token, route, canonical, proxy_protocol. The seeds are
# fuzz/corpus/TARGET/; AFL++'s queue, crashes and hangs go to fuzz/out/TARGET/default/
# (git-ignored). A second run with the same TARGET resumes from its queue.
#
# Needs cargo-afl (`cargo install cargo-afl --locked`, which also builds AFL++ from source with
# the C compiler; fuzz/ci.sh does it when missing). The build instruments every crate of the
# gateway, so the first one takes minutes; later runs rebuild only what changed.
#
# Environment: FUZZ_NICE (default 19) is the niceness of the build and the fuzzer;
# FUZZ_NO_BUILD=1 runs the binary already built; FUZZ_OUT (default out/TARGET) is AFL++'s
# output directory.
set -euo pipefail

usage() {
  echo "usage: $0 TARGET SECONDS [MAX_EXECS]" >&2
  exit 2
}
[[ $# -ge 2 && $# -le 3 ]] || usage
target=$1
seconds=$2
max_execs=${3:-}
[[ $seconds =~ ^[0-9]+$ ]] || usage
[[ -z $max_execs || $max_execs =~ ^[0-9]+$ ]] || usage

cd "$(dirname "$0")"
[[ -f src/bin/$target.rs && -d corpus/$target ]] || {
  echo "unknown target '$target' (see fuzz/src/bin/)" >&2
  exit 2
}
nice_level=${FUZZ_NICE:-19}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

command -v cargo-afl >/dev/null || {
  echo "cargo-afl is not installed: cargo install cargo-afl --locked" >&2
  exit 2
}

if [[ -z ${FUZZ_NO_BUILD:-} ]]; then
  nice -n "$nice_level" cargo afl build --release --features afl --bin "$target" >&2
fi

out=${FUZZ_OUT:-out/$target}
mkdir -p "$out"
args=(-i "corpus/$target" -o "$out" -V "$seconds")
[[ -n $max_execs ]] && args+=(-E "$max_execs")

# Containers: no CPU frequency scaling to read, and no core-dump helper to fight over.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_UI=1 AFL_AUTORESUME=1

log=$out/afl.log
echo "fuzzing $target for ${seconds}s${max_execs:+ (at most $max_execs executions)}; log: fuzz/$log" >&2
set +e
nice -n "$nice_level" cargo afl fuzz "${args[@]}" "$CARGO_TARGET_DIR/release/$target" >"$log" 2>&1
status=$?
set -e

stats=$out/default/fuzzer_stats
if [[ ! -f $stats ]]; then
  tail -n 30 "$log" >&2
  echo "afl-fuzz did not start (exit $status)" >&2
  exit 1
fi
stat() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
execs=$(stat execs_done)
runtime=$(stat run_time)
crashes=$(stat saved_crashes)
hangs=$(stat saved_hangs)
rate=$(awk -v e="$execs" -v t="$runtime" 'BEGIN { printf "%.0f", (t > 0 ? e / t : 0) }')
printf '%s: %s executions in %ss (%s/s, cumulative over resumed runs), corpus %s, crashes %s, hangs %s\n' \
  "$target" "$execs" "$runtime" "$rate" "$(stat corpus_count)" "$crashes" "$hangs"
if [[ ${crashes:-0} != 0 || ${hangs:-0} != 0 ]]; then
  echo "findings in fuzz/$out/default/crashes and .../hangs; replay one with:" >&2
  echo "  $CARGO_TARGET_DIR/release/$target < FILE" >&2
  exit 1
fi
[[ $status == 0 ]] || { tail -n 30 "$log" >&2; exit "$status"; }
