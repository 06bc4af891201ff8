#!/usr/bin/env bash
# Peer test: nibble-written GGUFs evaluated by llama.cpp (node-llama-cpp's prebuilt CPU binary)
# must reproduce the golden logits of the tiny Gemma 4 fixtures.
#
# usage: tests/peer/run_peer_test.sh NIBBLE_BIN SHARED_DIR
#
# Needs: node >= 20, python3, and `npm ci --prefix tests/peer` (tests/peer/.npmrc omits the
# optional GPU packages and install scripts, so only the ~30 MB CPU binary is installed and
# nothing is downloaded or built).  Without tests/peer/node_modules the test is skipped (exit 0).
#
# Cases (one line each, then "N passed, M failed[, K skipped]"; exit 1 if any failed):
#   rand-dense f32, tiny-moe f32: top-1 identical at every position and
#       max |Δ| <= 5e-3 * max|logit| + 1e-3 (llama.cpp's CPU GELU goes through an f16 table,
#       shared/spec/gemma4-architecture.md Appendix C.3).
#   tiny-moe q8_0, tiny-moe bf16: llama.cpp loads and evaluates the file; top-1 agreement >= 90%.
#   tiny-moe with every llama.cpp-readable `nibble quantize` recipe (Q4_0 .. Q6_K, IQ4_NL, IQ4_XS;
#       all but nibble's own SFP8), each `nibble quantize` of the f32 conversion (Q2_K_S with a
#       small imatrix from shared/data/poe.txt, which it requires); llama.cpp loads and evaluates
#       the file; top-1 agreement >= 80% (Q2_K_S: >= 75%, measured 84%; see MIN_TOP1).
#   synth-e2b Q8_0: `nibble synth --preset e2b --layers 10` (real widths, 262,144-token vocabulary,
#       KV sharing, double-wide MLP, Q8_0 recipe); llama.cpp loads it and its scores match
#       `nibble logits` of the same file: top-1 >= 75% and max |Δ| <= 5e-2 * max|logit| + 1e-2
#       (random weights: measured 8/8 and 0.017; llama.cpp quantizes activations to Q8_0).
# rand-e / tiny-e are not run: llama.cpp aborts on their KV-sharing layout (Appendix C.2);
# rand-moe is not run: its nearly tied random router flips experts under the GELU table (C.3).
#
# Environment: PEER_KEEP=1 keeps the temporary folder; PEER_THREADS (default 2).
set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CASES=("rand-dense f32" "tiny-moe f32" "tiny-moe q8_0" "tiny-moe bf16")
# Every llama.cpp-readable `nibble quantize` recipe (all but SFP8, nibble's own format).
for r in Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q2_K_S Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K \
         IQ4_NL IQ4_XS; do
    CASES+=("tiny-moe $r")
done
# A synthetic E2B (nibble synth), compared with nibble's own logits of the same file.
CASES+=("synth-e2b Q8_0")
# Minimum top-1 agreement with golden for recipes (default 0.8), measured on tiny-moe's golden prompt.
declare -A MIN_TOP1=([Q2_K_S]=0.75)  # measured 84% (81/96): 2 bits with a small imatrix

if [[ $# -ne 2 ]]; then
    echo "usage: $0 NIBBLE_BIN SHARED_DIR" >&2
    exit 2
fi
NIBBLE="$1"
SHARED="$2"

skip_all() {
    echo "SKIP: $1"
    echo "0 passed, 0 failed, ${#CASES[@]} skipped"
    exit 0
}

if ! command -v node >/dev/null 2>&1; then
    skip_all "node is not installed; the llama.cpp peer test needs node >= 20 and 'npm ci --prefix tests/peer'"
fi
if [[ ! -d "$HERE/node_modules/node-llama-cpp" ]]; then
    skip_all "node-llama-cpp is not installed (run: npm ci --prefix tests/peer)"
fi
if [[ ! -d "$SHARED/models" ]]; then
    skip_all "$SHARED/models is absent (the peer test converts the checkpoints there)"
fi
if [[ ! -x "$NIBBLE" ]]; then
    echo "ERROR: nibble binary not found or not executable: $NIBBLE" >&2
    echo "0 passed, ${#CASES[@]} failed"
    exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "ERROR: python3 is needed for the comparison" >&2
    echo "0 passed, ${#CASES[@]} failed"
    exit 1
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/nibble-peer.XXXXXX")"
if [[ "${PEER_KEEP:-0}" != 1 ]]; then
    trap 'rm -rf "$TMP"' EXIT
else
    echo "keeping $TMP"
fi
THREADS="${PEER_THREADS:-2}"

passed=0
failed=0
failures=()

fail_case() {
    failed=$((failed + 1))
    failures+=("$1")
    echo "FAIL $1"
}

# synth-PRESET TYPE: nibble synth writes the model (10 layers); `nibble logits` is the reference.
run_synth_case() {
    local model="$1" type="$2" name="$1/$2"
    local preset="${model#synth-}" gguf="$TMP/$model-$type.gguf" ref="$TMP/$model-ref"
    local tokens="2,1000,77777,262143,5,105,107,5000"
    local start
    start=$(date +%s%N)
    if ! "$NIBBLE" synth --preset "$preset" --type "$type" --layers 10 --seed 1 -o "$gguf" \
        >"$TMP/synth.log" 2>&1; then
        sed 's/^/    /' "$TMP/synth.log"
        fail_case "$name: nibble synth failed"
        return
    fi
    mkdir -p "$ref"
    if ! "$NIBBLE" logits "$gguf" --tokens "$tokens" --out "$ref/logits.f32" >"$TMP/logits.log" 2>&1; then
        sed 's/^/    /' "$TMP/logits.log"
        fail_case "$name: nibble logits failed"
        return
    fi
    python3 -c 'import json,sys; t=[int(x) for x in sys.argv[2].split(",")]
json.dump({"prompt_tokens": t, "logits_shape": [len(t), 262144], "logits_file": "logits.f32"}, open(sys.argv[1], "w"))' \
        "$ref/golden.json" "$tokens"
    if ! node "$HERE/llama_logits.mjs" "$gguf" --tokens "$tokens" --out "$TMP/$model.f32" --threads "$THREADS" \
        --quiet >"$TMP/llama.log" 2>&1; then
        sed 's/^/    /' "$TMP/llama.log"
        fail_case "$name: llama.cpp could not load/evaluate nibble's synthetic GGUF"
        return
    fi
    if python3 "$HERE/compare_logits.py" "$ref" "$TMP/$model.f32" --name "$name (vs nibble logits)" \
        --rel 5e-2 --abs 1e-2 --min-top1 0.75; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name: llama.cpp's scores differ from nibble's")
    fi
    rm -rf "$gguf" "$ref" "$TMP/$model.f32"
    local ms=$((($(date +%s%N) - start) / 1000000))
    printf '    (%d.%03d s)\n' $((ms / 1000)) $((ms % 1000))
}

for c in "${CASES[@]}"; do
    read -r model type <<<"$c"
    name="$model/$type"
    if [[ "$model" == synth-* ]]; then
        run_synth_case "$model" "$type"
        continue
    fi
    mdir="$SHARED/models/$model"
    gguf="$TMP/$model-$type.gguf"
    out="$TMP/$model-$type.f32"
    if [[ ! -f "$mdir/golden.json" ]]; then
        fail_case "$name: $mdir/golden.json not found"
        continue
    fi

    start=$(date +%s%N)
    # Lower-case types are convert --type values; upper-case ones are `nibble quantize` recipes
    # applied to the f32 conversion.
    recipe=""
    conv_type="$type"
    if [[ "$type" =~ [A-Z] ]]; then
        recipe="$type"
        conv_type=f32
    fi
    conv="$gguf"
    [[ -n "$recipe" ]] && conv="$TMP/$model-f32-src.gguf"
    # The f32 source of the recipes is converted once per model and kept.
    if [[ -z "$recipe" || ! -f "$conv" ]]; then
        if ! "$NIBBLE" convert "$mdir/hf" -o "$conv" --type "$conv_type" >"$TMP/convert.log" 2>&1; then
            sed 's/^/    /' "$TMP/convert.log"
            rm -f "$conv"
            fail_case "$name: nibble convert failed"
            continue
        fi
    fi
    if [[ -n "$recipe" ]]; then
        qargs=()
        if [[ "$recipe" == Q2_K_S ]]; then
            # Q2_K_S requires an importance matrix: a small one from shared/data/poe.txt.
            imat="$TMP/$model.imatrix"
            if [[ ! -f "$imat" ]] && ! "$NIBBLE" imatrix "$conv" -f "$SHARED/data/poe.txt" -o "$imat" --ctx 512 \
                --chunks 8 >"$TMP/imatrix.log" 2>&1; then
                sed 's/^/    /' "$TMP/imatrix.log"
                rm -f "$imat"
                fail_case "$name: nibble imatrix failed"
                continue
            fi
            qargs=(--imatrix "$imat")
        fi
        if ! "$NIBBLE" quantize "$conv" "$gguf" "$recipe" "${qargs[@]}" >"$TMP/quantize.log" 2>&1; then
            sed 's/^/    /' "$TMP/quantize.log"
            fail_case "$name: nibble quantize failed"
            continue
        fi
    fi

    tokens=$(python3 -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["prompt_tokens"])))' \
        "$mdir/golden.json") || { fail_case "$name: cannot read prompt_tokens"; continue; }

    if ! node "$HERE/llama_logits.mjs" "$gguf" --tokens "$tokens" --out "$out" --threads "$THREADS" --quiet \
        >"$TMP/llama.log" 2>&1; then
        sed 's/^/    /' "$TMP/llama.log"
        fail_case "$name: llama.cpp could not load/evaluate nibble's GGUF"
        continue
    fi

    if [[ "$type" == f32 ]]; then
        cmp_args=()
    elif [[ -n "$recipe" ]]; then
        cmp_args=(--no-tol --min-top1 "${MIN_TOP1[$recipe]:-0.8}")
    else
        cmp_args=(--no-tol --min-top1 0.9)
    fi
    if python3 "$HERE/compare_logits.py" "$mdir" "$out" --name "$name" "${cmp_args[@]}"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name: logits differ from golden")
    fi
    rm -f "$gguf" "$out"
    ms=$((($(date +%s%N) - start) / 1000000))
    printf '    (%d.%03d s)\n' $((ms / 1000)) $((ms % 1000))
done

if [[ $failed -gt 0 ]]; then
    echo "failed:"
    for f in "${failures[@]}"; do echo "  $f"; done
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
