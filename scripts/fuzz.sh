#!/usr/bin/env bash
# Builds the libFuzzer harnesses (CMake preset `asan`: clang + ASan + UBSan, shared with the
# SECONDS (default 600), one after another. Exits non-zero if any fuzzer reports a finding
# (crash, sanitizer error, leak, timeout > 10 s, RSS > 2 GiB or a single allocation > 2 GiB).
#
#   scripts/fuzz.sh                 # 10 minutes each (the bar for a parser change)
#   scripts/fuzz.sh 30              # CI: 30 seconds each
#   scripts/fuzz.sh 60 gguf_reader  # one fuzzer
#
# Environment: NIBBLE_FUZZ_BUILD_DIR (default build/fuzz), NIBBLE_FUZZ_JOBS (build -j, default 2),
# NIBBLE_FUZZ_NO_BUILD=1 (run the harnesses already built there).
# New inputs go to BUILD/fuzz-corpus/<fuzzer>/ (kept between runs; seeds are read from
# tests/fuzz/corpus/<fuzzer>/), reproducers to BUILD/fuzz-artifacts/<fuzzer>/, logs to
# BUILD/fuzz-logs/<fuzzer>.log. A reproducer, once fixed, goes into tests/fuzz/regressions/<fuzzer>/
# (see tests/fuzz/make_seeds.py), where `ctest -L fuzz` replays it.
set -euo pipefail

seconds=${1:-600}
shift || true
all=(gguf_reader safetensors hf_config)
fuzzers=("$@")
[[ ${#fuzzers[@]} -eq 0 ]] && fuzzers=("${all[@]}")
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -eq 0 ]]; then
  echo "fuzz.sh: SECONDS must be a positive integer, got '$seconds'" >&2
  exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
build=${NIBBLE_FUZZ_BUILD_DIR:-$root/build/asan}
[[ $build = /* ]] || build=$root/$build
jobs=${NIBBLE_FUZZ_JOBS:-2}

if [[ ${NIBBLE_FUZZ_NO_BUILD:-0} != 1 ]]; then
  if [[ ! -f $build/build.ninja ]]; then
    cmake --preset asan -S "$root" -B "$build"
  fi
  cmake --build "$build" --target nibble_fuzzers -j "$jobs"
fi

# Recoverable UBSan reports must count as findings too.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

max_len_for() {
  case $1 in
    gguf_reader) echo 16384 ;;  # seeds are < 2 KiB; room for long strings and arrays
    *) echo 65536 ;;            # JSON: room for deep nesting and long headers
  esac
}

status=0
summary=()
for f in "${fuzzers[@]}"; do
  exe=$build/tests/fuzz/${f}_fuzzer
  if [[ ! -x $exe ]]; then
    echo "fuzz.sh: no fuzzer '$f' (have: ${all[*]})" >&2
    exit 2
  fi
  corpus=$build/fuzz-corpus/$f
  artifacts=$build/fuzz-artifacts/$f
  log=$build/fuzz-logs/$f.log
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  cmd=("$exe" "$corpus" "$root/tests/fuzz/corpus/$f"
       -max_total_time="$seconds" -max_len="$(max_len_for "$f")"
       -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10
       -use_value_profile=1 -dict="$root/tests/fuzz/$f.dict"
       -artifact_prefix="$artifacts/" -print_final_stats=1)
  echo "fuzz.sh: ${cmd[*]}"
  rc=0
  "${cmd[@]}" >"$log" 2>&1 || rc=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  if [[ $rc -ne 0 ]]; then
    echo "fuzz.sh: $f: FINDING (exit $rc); log $log, reproducer in $artifacts/" >&2
    grep -E 'ERROR|SUMMARY|==[0-9]+==|Test unit written' "$log" | head -n 20 >&2 || true
    summary+=("$f: FINDING (exit $rc)")
    status=1
  else
    summary+=("$f: ok ${seconds}s: ${done_line:-no DONE line}")
  fi
done
printf 'fuzz.sh: %s\n' "${summary[@]}"
exit $status
