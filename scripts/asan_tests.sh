#!/usr/bin/env bash
# Configures the `asan` preset (AddressSanitizer + UndefinedBehaviorSanitizer), builds everything
# and runs the tests there; any sanitizer report fails the run. CI calls this.
#
#   scripts/asan_tests.sh               # all tests
#   scripts/asan_tests.sh -L unit       # extra arguments go to ctest
#   scripts/asan_tests.sh -R Corrupt
#
# Environment: NIBBLE_ASAN_BUILD_DIR (default build/asan), NIBBLE_ASAN_JOBS (build and ctest
# parallelism, default 2).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${NIBBLE_ASAN_BUILD_DIR:-$root/build/asan}
[[ $build = /* ]] || build=$root/$build
jobs=${NIBBLE_ASAN_JOBS:-2}

if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake --preset asan -S "$root" -B "$build"
fi
cmake --build "$build" -j "$jobs"

# halt_on_error: a UBSan report is a failure even where the build allows recovery.
# detect_leaks: LeakSanitizer is on by default on Linux x86-64; say so explicitly.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}

ctest --test-dir "$build" --output-on-failure -j "$jobs" "$@"
