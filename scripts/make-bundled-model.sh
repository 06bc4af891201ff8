#!/usr/bin/env bash
# Regenerates models/nibble-tiny-e.gguf, the bundled demo model: the trained tiny-e checkpoint
# (../shared/models/tiny-e, 13 M parameters, 8192-token vocabulary) converted to Q8_0 by nibble.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${NIBBLE_SHARED_DIR:-../shared}
./build/release/tools/nibble convert "$shared/models/tiny-e/hf" -o models/nibble-tiny-e.gguf --type q8_0
