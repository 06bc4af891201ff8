#!/usr/bin/env python3
"""Compare llama.cpp next-token scores (from llama_logits.mjs) with a golden logits file.

usage: compare_logits.py GOLDEN_DIR LLAMA.f32 [--name NAME] [--rel 5e-3] [--abs 1e-3]
                         [--min-top1 1.0] [--no-tol]

GOLDEN_DIR holds golden.json (logits_shape [n_tokens, vocab], logits_file) and the logits file.
llama_logits.mjs writes log_softmax(logits) (node-llama-cpp exposes probabilities, not the raw
logits buffer), so both files are put through log_softmax (LLAMA.f32 may also hold raw logits,
e.g. from `nibble logits`); this compares the logits up to one additive constant per position.

Checks (a line per model, exit 1 on failure):
  * top-1 id agreement over all positions >= --min-top1 (default 1.0: identical everywhere);
  * max |d| <= rel * max|golden logit| + abs, d = difference of the log-softmax values
    (at most twice the raw-logit error); skipped with --no-tol.
Also reported: 'spread', the smallest max |Δ| over any per-position constant shift
(a lower bound of the raw-logit error).  Stdlib only.
"""
import argparse
import array
import json
import math
import os
import sys


def log_softmax(row):
    m = max(row)
    s = math.fsum(math.exp(x - m) for x in row)
    lse = m + math.log(s)
    return [x - lse for x in row]


def argmax(row):
    best = 0
    for i in range(1, len(row)):
        if row[i] > row[best]:
            best = i
    return best


def load_f32(path, count):
    a = array.array("f")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) != 4 * count:
        raise SystemExit("%s: %d bytes, expected %d (= 4 * %d)" % (path, len(data), 4 * count, count))
    a.frombytes(data)
    if sys.byteorder != "little":
        a.byteswap()
    return a


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("golden_dir")
    ap.add_argument("llama_f32")
    ap.add_argument("--name", default=None)
    ap.add_argument("--rel", type=float, default=5e-3)
    ap.add_argument("--abs", type=float, default=1e-3)
    ap.add_argument("--min-top1", type=float, default=1.0)
    ap.add_argument("--no-tol", action="store_true")
    a = ap.parse_args()

    g = json.load(open(os.path.join(a.golden_dir, "golden.json")))
    n, v = g["logits_shape"]
    gold = load_f32(os.path.join(a.golden_dir, g.get("logits_file", "logits.f32")), n * v)
    got = load_f32(a.llama_f32, n * v)
    name = a.name or os.path.basename(os.path.normpath(a.golden_dir))

    max_abs_logit = max(abs(x) for x in gold)
    max_d = 0.0
    max_d_pos = 0
    max_spread = 0.0
    top1_same = 0
    first_bad = []
    for i in range(n):
        grow = gold[i * v:(i + 1) * v]
        lrow = got[i * v:(i + 1) * v]
        if any(not math.isfinite(x) for x in lrow):
            raise SystemExit("%s: non-finite value in llama.cpp output at position %d" % (name, i))
        gl = log_softmax(grow)
        ll = log_softmax(lrow)  # a no-op up to rounding for llama_logits.mjs output; allows raw logits
        d = [x - y for x, y in zip(ll, gl)]
        md = max(abs(x) for x in d)
        if md > max_d:
            max_d, max_d_pos = md, i
        max_spread = max(max_spread, (max(d) - min(d)) / 2)
        tg, tl = argmax(grow), argmax(lrow)
        if tg == tl:
            top1_same += 1
        elif len(first_bad) < 5:
            first_bad.append("pos %d: golden %d, got %d" % (i, tg, tl))

    tol = a.rel * max_abs_logit + a.abs
    top1_frac = top1_same / n
    ok = top1_frac >= a.min_top1 and (a.no_tol or max_d <= tol)
    print("%s %s: max|d| %.3g (pos %d) = %.3g of max|logit| %.4g; shift-free %.3g; tol %s; "
          "top-1 %d/%d (need %.0f%%)" % (
              "PASS" if ok else "FAIL", name, max_d, max_d_pos, max_d / max_abs_logit, max_abs_logit,
              max_spread, "off" if a.no_tol else "%.3g" % tol, top1_same, n, 100 * a.min_top1))
    for b in first_bad:
        print("    top-1 differs at " + b)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
