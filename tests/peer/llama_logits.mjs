#!/usr/bin/env node
// Evaluate a token sequence with llama.cpp (node-llama-cpp's prebuilt CPU binary) and write the
// next-token scores at EVERY position as raw little-endian float32 [n_tokens, n_vocab].
//
// usage: node llama_logits.mjs MODEL.gguf --tokens 2,17,9 --out FILE.f32 [--threads N] [--quiet]
//
// What the file holds: node-llama-cpp does not expose llama.cpp's raw logits buffer, only the
// next-token distribution (softmax of the logits, computed in float32 from the raw logits by its
// addon). The file therefore holds log_softmax(logits) = logits - logsumexp(logits) for each
// position, i.e. the raw logits up to one additive constant per position. To compare with raw
// logits, apply log_softmax to them as well (compare_logits.py does).
//
// No sampling transform touches the values: temperature 0 selects llama.cpp's greedy sampler,
// which only picks the argmax (no top-k/top-p/min-p, no repetition or DRY penalty, no token bias,
// no grammar). Should a position's distribution be too wide for float32 probabilities (a spread of
// the logits over ~80, so the smallest probabilities underflow), it is re-evaluated with a
// power-of-two temperature T (with top-k = vocab, top-p = 1, min-p = 0), which divides the logits
// by T exactly; log p is then multiplied back by T.
//
// The KV cache is kept in F32 (node-llama-cpp defaults to F16) and flash attention is off, so the
// only approximations are llama.cpp's own kernels.
//
// Exit status: 0 on success, 1 on usage error, 2 on any load/evaluation failure.

import fs from "node:fs";
import path from "node:path";
import process from "node:process";

function usage(msg) {
    if (msg) process.stderr.write(`llama_logits: ${msg}\n`);
    process.stderr.write(
        "usage: node llama_logits.mjs MODEL.gguf --tokens ID,ID,... --out FILE.f32 [--threads N] [--quiet]\n");
    process.exit(1);
}

function parseArgs(argv) {
    const args = { model: null, tokens: null, out: null, threads: 0, quiet: false };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const next = () => {
            if (i + 1 >= argv.length) usage(`${a} needs a value`);
            return argv[++i];
        };
        if (a === "--tokens") {
            const s = next();
            const parts = s.split(",").map((x) => x.trim()).filter((x) => x.length > 0);
            if (parts.length === 0) usage("--tokens is empty");
            args.tokens = parts.map((x) => {
                if (!/^\d+$/.test(x)) usage(`bad token id '${x}'`);
                return Number(x);
            });
        } else if (a === "--out") {
            args.out = next();
        } else if (a === "--threads") {
            args.threads = Number(next());
            if (!Number.isInteger(args.threads) || args.threads < 0) usage("bad --threads");
        } else if (a === "--quiet") {
            args.quiet = true;
        } else if (a === "-h" || a === "--help") {
            usage();
        } else if (a.startsWith("-")) {
            usage(`unknown option ${a}`);
        } else if (args.model == null) {
            args.model = a;
        } else {
            usage(`unexpected argument ${a}`);
        }
    }
    if (args.model == null) usage("missing MODEL.gguf");
    if (args.tokens == null) usage("missing --tokens");
    if (args.out == null) usage("missing --out");
    return args;
}

function fail(msg, err, withStack = false) {
    const detail = err == null ? "" : `: ${(withStack ? err?.stack : err?.message) ?? err}`;
    process.stderr.write(`llama_logits: ERROR: ${msg}${detail}\n`);
    process.exit(2);
}

// Probabilities map (token -> p) to log-probabilities; returns null when some p underflowed.
function toLogProbs(probs, nVocab, temperature) {
    if (probs == null) fail("llama.cpp returned no probabilities");
    if (probs.size !== nVocab) fail(`probability list has ${probs.size} entries, expected n_vocab = ${nVocab}`);
    const out = new Float64Array(nVocab);
    let seen = 0;
    for (const [tok, p] of probs) {
        if (!(tok >= 0 && tok < nVocab)) fail(`token id ${tok} out of range`);
        if (!Number.isFinite(p)) fail(`non-finite probability ${p} for token ${tok}`);
        // Float32 normal range ends at 1.18e-38; below it precision degrades.
        if (!(p >= 1.2e-38)) return null;
        out[tok] = Math.log(p) * temperature;
        seen++;
    }
    if (seen !== nVocab) fail("duplicate token ids in probability list");
    // Renormalise in float64 so the float32 softmax sum does not leave a constant offset.
    let mx = -Infinity;
    for (let i = 0; i < nVocab; i++) mx = Math.max(mx, out[i]);
    let s = 0;
    for (let i = 0; i < nVocab; i++) s += Math.exp(out[i] - mx);
    const lse = mx + Math.log(s);
    for (let i = 0; i < nVocab; i++) out[i] -= lse;
    return out;
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    if (!fs.existsSync(args.model)) fail(`model file not found: ${args.model}`);

    let nlc;
    try {
        nlc = await import("node-llama-cpp");
    } catch (err) {
        fail("cannot import node-llama-cpp (run: npm ci --prefix tests/peer)", err);
    }
    const { getLlama, LlamaLogLevel } = nlc;

    const logs = [];
    let llama;
    try {
        llama = await getLlama({
            gpu: false,                 // CPU backend only
            build: "never",             // never compile llama.cpp from source
            usePrebuiltBinaries: true,  // the binary shipped in @node-llama-cpp/linux-x64
            skipDownload: true,         // never fetch llama.cpp sources from GitHub
            progressLogs: false,
            logLevel: LlamaLogLevel.warn,
            logger(level, message) {
                const line = `[llama.cpp ${level}] ${String(message).trimEnd()}`;
                logs.push(line);
                if (!args.quiet) process.stderr.write(line + "\n");
            },
            ...(args.threads > 0 ? { maxThreads: args.threads } : {}),
        });
    } catch (err) {
        fail("cannot initialise llama.cpp (node-llama-cpp getLlama)", err);
    }

    let model;
    try {
        model = await llama.loadModel({
            modelPath: path.resolve(args.model),
            gpuLayers: 0,
            checkTensors: true,         // validate tensor data (NaN/Inf, bad quant blocks)
            useMmap: true,
        });
    } catch (err) {
        if (args.quiet) for (const l of logs) process.stderr.write(l + "\n");
        fail(`llama.cpp could not load ${args.model}`, err);
    }

    const n = args.tokens.length;
    let context;
    try {
        const ctxSize = Math.max(256, Math.ceil(n / 256) * 256);
        context = await model.createContext({
            contextSize: ctxSize,
            batchSize: ctxSize,         // the whole prompt goes through in one batch
            sequences: 1,
            flashAttention: false,
            experimentalKvCacheKeyType: "F32",
            experimentalKvCacheValueType: "F32",
            swaFullCache: true,
            ...(args.threads > 0 ? { threads: args.threads } : {}),
        });
    } catch (err) {
        if (args.quiet) for (const l of logs) process.stderr.write(l + "\n");
        fail("llama.cpp could not create a context", err);
    }

    const seq = context.getSequence();
    const evaluate = async (temperature) => {
        await seq.clearHistory();       // every pass starts from an empty KV cache at position 0
        const options = temperature === 0
            ? { temperature: 0 }
            : { temperature, topK: 0, topP: 1, minP: 0, seed: 1 };
        const input = args.tokens.map((t) => [t, { generateNext: { probabilities: true, options } }]);
        return await seq.controlledEvaluate(input);
    };

    let nVocab = 0;
    const rows = new Array(n).fill(null);
    for (const temperature of [0, 16, 256]) {
        let res;
        try {
            res = await evaluate(temperature);
        } catch (err) {
            if (args.quiet) for (const l of logs) process.stderr.write(l + "\n");
            fail("llama.cpp evaluation failed", err);
        }
        if (nVocab === 0) nVocab = res[0]?.next?.probabilities?.size ?? 0;
        if (nVocab === 0) fail("no probabilities returned for position 0");
        let missing = 0;
        for (let i = 0; i < n; i++) {
            if (rows[i] != null) continue;
            const probs = res[i]?.next?.probabilities;
            if (probs == null) fail(`no output for position ${i}`);
            rows[i] = toLogProbs(probs, nVocab, temperature === 0 ? 1 : temperature);
            if (rows[i] == null) missing++;
        }
        if (missing === 0) break;
        if (!args.quiet) {
            process.stderr.write(`llama_logits: ${missing} position(s) underflow in float32 at T=${temperature || 1}, ` +
                "re-evaluating with a higher temperature\n");
        }
    }
    if (rows.some((r) => r == null)) fail("logit spread too wide to recover from float32 probabilities");

    const buf = Buffer.alloc(n * nVocab * 4);
    for (let i = 0; i < n; i++) {
        for (let j = 0; j < nVocab; j++) buf.writeFloatLE(rows[i][j], (i * nVocab + j) * 4);
    }
    try {
        fs.writeFileSync(args.out, buf);
    } catch (err) {
        fail(`cannot write ${args.out}`, err);
    }
    if (!args.quiet) {
        process.stderr.write(`llama_logits: wrote ${n} x ${nVocab} float32 log-softmax values to ${args.out}\n`);
    }
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

main().catch((err) => fail("unexpected failure", err, true));
