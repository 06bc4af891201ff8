#!/usr/bin/env bash
# Regenerates models/nibble-tiny-e.gguf, the bundled demo model: the trained tiny-e checkpoint
# (../shared/models/tiny-e, 13 M parameters, 8192-token vocabulary) converted by nibble to BF16,
# then quantized by nibble with llama-quantize's Q8_0 recipe (14.4 MB; top-1 agreement with the
# reference logits 93 of 96 positions; a Q6_K output head would be smaller but, until the Q6_K
# kernels of the speed work land, slower).
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${NIBBLE_SHARED_DIR:-../shared}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
./build/release/tools/nibble convert "$shared/models/tiny-e/hf" -o "$tmp/tiny-e-bf16.gguf" --type bf16
./build/release/tools/nibble quantize "$tmp/tiny-e-bf16.gguf" models/nibble-tiny-e.gguf Q8_0
