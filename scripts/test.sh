#!/usr/bin/env bash
# Builds nibble and runs every test: the tests under ASan+UBSan, a short run of each fuzzer,
# then the full suite (unit, golden, tokenizer and llama.cpp peers) on the release build.
# NIBBLE_FUZZ_SECONDS sets the fuzzing time per fuzzer (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)

echo "== npm test peers"
bash scripts/npm-peers.sh || echo "npm peers unavailable: the tests that need them will skip"

echo "== ASan + UBSan build (clang; the same build holds the fuzzers) and tests"
NIBBLE_SKIP_SLOW_TESTS=1 bash scripts/asan_tests.sh -LE peer -E quality.report_quick

echo "== fuzzers (short run)"
bash scripts/fuzz.sh "${NIBBLE_FUZZ_SECONDS:-30}"

echo "== release build and all tests"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs"
