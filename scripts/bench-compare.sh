#!/usr/bin/env bash
# nibble vs llama.cpp on the same synthetic Gemma 4 GGUFs, same machine, same thread count:
# pp512 and tg128 tokens/s (llama-bench semantics), GB/s of weights read and % of the measured
# memory bandwidth, as a markdown table.
#
# usage: scripts/bench-compare.sh [--nibble BIN] [--cache DIR] [--threads N] [-p 512] [-n 128]
#                                 [-r 5] [--types "Q4_0 Q8_0 Q4_K_M"] [--preset e2b] [--layers N]
#                                 [--isa avx2]
#
#   --nibble   the nibble binary (default: build/release/tools/nibble)
#   --cache    where the synthetic models live (default: build/bench-models); a model already
#              there is reused, otherwise `nibble synth` writes it (E2B: a few minutes each)
#   --threads  threads for both engines (default 2)
#   --layers   fewer layers (quick smoke runs; the file name says so)
#   --isa avx2 both engines as on a CPU with AVX2 but no AVX-512 (most laptops): nibble with
#              NIBBLE_ISA=avx2, llama.cpp from a hard-linked copy of its install without the
#              CPU backends that need AVX-512 or AVX-VNNI (so it loads libggml-cpu-haswell.so)
#
# Needs node >= 20 and node-llama-cpp under tests/peer (scripts/npm-peers.sh), python3.
# Writes the raw JSON lines of both engines to CACHE/results-<time>.jsonl and the table to stdout.
# The machine should be otherwise idle: the numbers are only as quiet as it is.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NIBBLE="$ROOT/build/release/tools/nibble"
CACHE="$ROOT/build/bench-models"
THREADS=2
P=512
N=128
R=5
TYPES="Q4_0 Q8_0 Q4_K_M"
PRESET=e2b
LAYERS=""
ISA=""

die() { echo "bench-compare: $*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --nibble) NIBBLE="${2:?--nibble needs a path}"; shift 2 ;;
        --cache) CACHE="${2:?--cache needs a folder}"; shift 2 ;;
        --threads|-t) THREADS="${2:?--threads needs a number}"; shift 2 ;;
        -p) P="${2:?-p needs a number}"; shift 2 ;;
        -n) N="${2:?-n needs a number}"; shift 2 ;;
        -r) R="${2:?-r needs a number}"; shift 2 ;;
        --types) TYPES="${2:?--types needs a list}"; shift 2 ;;
        --preset) PRESET="${2:?--preset needs a name}"; shift 2 ;;
        --layers) LAYERS="${2:?--layers needs a number}"; shift 2 ;;
        --isa) ISA="${2:?--isa needs avx2}"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
for v in THREADS P N R; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
[[ -z "$LAYERS" || "$LAYERS" =~ ^[0-9]+$ ]] || die "--layers must be a whole number, got '$LAYERS'"
[[ -x "$NIBBLE" ]] || die "nibble binary not found: $NIBBLE (build it, or pass --nibble)"
command -v node >/dev/null || die "node is not installed (node >= 20 runs llama.cpp's side)"
command -v python3 >/dev/null || die "python3 is needed to build the table"
[[ -d "$ROOT/tests/peer/node_modules/node-llama-cpp" ]] ||
    die "node-llama-cpp is not installed under tests/peer (run scripts/npm-peers.sh)"

[[ -z "$ISA" || "$ISA" == avx2 ]] || die "--isa: only avx2 is known, got '$ISA'"

mkdir -p "$CACHE"
if [[ "$ISA" == avx2 ]]; then
    export NIBBLE_ISA=avx2
    peer="$CACHE/peer-avx2"
    rm -rf "$peer"
    cp -al "$ROOT/tests/peer" "$peer" 2>/dev/null || cp -a "$ROOT/tests/peer" "$peer"
    removed=0
    for variant in zen4 icelake cannonlake cascadelake cooperlake sapphirerapids skylakex alderlake; do
        for f in "$peer"/node_modules/@node-llama-cpp/*/bins/*/libggml-cpu-"$variant".so; do
            [[ -e "$f" ]] && rm -f "$f" && removed=$((removed + 1))
        done
    done
    ((removed > 0)) || die "--isa avx2: found no AVX-512 CPU backends to remove under $peer"
    export NIBBLE_PEER_DIR="$peer"
fi
RESULTS="$CACHE/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
: >"$RESULTS"

# The memory bandwidth of a shared machine moves by tens of percent within minutes, so each
# share is against bandwidth measured in the same minutes: nibble bench measures before each of
# its timed runs; llama.cpp's runs get the mean of a measurement just before and just after them.
membw_now() {
    "$NIBBLE" bench --membw --json | tee -a "$RESULTS" |
        python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["gb_per_s"])'
}

suffix=""
layer_args=()
if [[ -n "$LAYERS" ]]; then
    suffix="-l$LAYERS"
    layer_args=(--layers "$LAYERS")
fi
for type in $TYPES; do
    model="$CACHE/gemma4-$PRESET$suffix-$type.gguf"
    if [[ ! -f "$model" ]]; then
        echo "bench-compare: synthesizing $model" >&2
        "$NIBBLE" synth --preset "$PRESET" --type "$type" "${layer_args[@]}" -o "$model" >&2
    else
        echo "bench-compare: reusing $model" >&2
    fi
    echo "bench-compare: nibble, $type" >&2
    "$NIBBLE" bench "$model" -p "$P" -n "$N" -t "$THREADS" -r "$R" --json >>"$RESULTS"
    echo "bench-compare: llama.cpp, $type" >&2
    before=$(membw_now)
    tmp="$RESULTS.llama"
    node "$ROOT/bench/llama_cpp_bench.mjs" "$model" -p "$P" -n "$N" -t "$THREADS" -r "$R" \
        --membw-gbps 1 --json >"$tmp"
    after=$(membw_now)
    python3 - "$tmp" "$before" "$after" >>"$RESULTS" <<'EOF2'
import json, sys
bw = 0.5 * (float(sys.argv[2]) + float(sys.argv[3]))
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    r = json.loads(line)
    if "gb_per_s" in r and "tokens_per_s" in r:
        r["membw_gb_per_s"] = bw
        r["membw_samples"] = [float(sys.argv[2]), float(sys.argv[3])]
        r["pct_membw"] = 100.0 * r["gb_per_s"] / bw
    print(json.dumps(r))
EOF2
    rm -f "$tmp"
done

python3 - "$RESULTS" "$THREADS" <<'EOF'
import json, sys, platform, re
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
threads = sys.argv[2]
membw = next(r for r in rows if r.get("test") == "membw")
info = next((r for r in rows if r.get("engine") == "llama.cpp" and r.get("info")), {})
cpu = "unknown CPU"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
print(f"CPU: {cpu}; {threads} threads; memory bandwidth (nibble bench --membw: {membw['buffer_bytes'] >> 20} MiB "
      f"streaming read, {membw['threads']} threads, best of {membw['runs']} reads, {membw['loads']} loads) measured "
      f"before every nibble run and around every llama.cpp test; each row shows the one its share uses")
print(f"llama.cpp: node-llama-cpp 3.21.1, llama.cpp {info.get('llama_cpp_release', '?')}, "
      f"CPU backend {info.get('cpu_backend', '?')}")
kernels = sorted({r.get("kernels") for r in rows if r.get("engine") == "nibble" and r.get("kernels")})
print(f"nibble: {', '.join(kernels) or '?'} kernels")
print()
print("| model | test | nibble t/s | llama.cpp t/s | nibble / llama.cpp | nibble GB/s | llama.cpp GB/s | nibble % membw | llama.cpp % membw |")
print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
bench = [r for r in rows if "tokens_per_s" in r]
keys = []
for r in bench:
    k = (r["model"], r["test"])
    if k not in keys:
        keys.append(k)
def share(r):
    if r.get("pct_membw") is None or r.get("membw_gb_per_s") is None:
        return "n/a"
    return f"{r['pct_membw']:.1f}% of {r['membw_gb_per_s']:.1f}"
def fmt_ts(r):
    return f"{r['tokens_per_s']:.2f} ± {r['stddev']:.2f}"
for model, test in keys:
    n = next((r for r in bench if r["engine"] == "nibble" and r["model"] == model and r["test"] == test), None)
    l = next((r for r in bench if r["engine"] == "llama.cpp" and r["model"] == model and r["test"] == test), None)
    if n is None or l is None:
        continue
    ratio = n["tokens_per_s"] / l["tokens_per_s"] if l["tokens_per_s"] > 0 else float("nan")
    name = f"{model} ({n['type']})"
    print(f"| {name} | {test} | {fmt_ts(n)} | {fmt_ts(l)} | {ratio:.2f}x | {n['gb_per_s']:.2f} | {l['gb_per_s']:.2f} | "
          f"{share(n)} | {share(l)} |")
print()
print("GB/s = bytes of weights read per token x tokens/s. For pp it counts the weights once per token although a "
      "batch reads them once, so pp shares above 100% are expected; tg is the bandwidth-bound test.")
print(f"raw results: {sys.argv[1]}")
EOF
