#!/usr/bin/env node
// llama.cpp's side of `nibble bench`: pp (prompt processing) and tg (generation) tokens/s of a
// GGUF with llama.cpp's CPU backend, through node-llama-cpp 3.21.1 (installed under
// tests/peer/node_modules by scripts/npm-peers.sh; nothing is downloaded or built).
//
// usage: node bench/llama_cpp_bench.mjs MODEL.gguf [-p 512] [-n 128] [-t THREADS] [-r 5]
//            [-b 512] [--flash-attn auto|on|off] [--kv-type f16|q8_0|q4_0|f32] [--membw-gbps X]
//            [--seed N] [--json]
//
// Semantics of llama.cpp's tools/llama-bench (test_prompt / test_gen), as `nibble bench` has them:
//   pp: one prompt of p tokens (BOS, then uniform random ids) in batches of b, logits only for
//       the last token; tg: n tokens decoded one at a time from an empty context (BOS, then random
//       ids, no sampling of the output). Each test gets its own context (pp: p tokens, tg: n,
//       both rounded up to node-llama-cpp's multiple of 256); one warm-up run (pp: the whole
//       prompt; tg: one token), then r timed runs, each after clearing the sequence. Reported:
//       median and sample standard deviation of tokens/s.
// node-llama-cpp's defaults are llama-bench's: F16 KV cache, flash attention "auto", no SWA-full
// cache. One difference: tg asks llama.cpp for the next token (a greedy pick over the logits,
// well under a millisecond), since node-llama-cpp computes logits only for tokens that want one.
//
// Output: a table, or with --json one object per line, the same fields as `nibble bench --json`
// ({"engine":"llama.cpp","test":"pp512","tokens_per_s":..,"stddev":..,"gb_per_s":..,...}),
// preceded by one {"engine":"llama.cpp","info":...} line naming the ggml CPU backend variant
// node-llama-cpp loaded (libggml-cpu-haswell.so, -zen4, ...) and llama.cpp's system info.
// GB/s = bytes of weights read per token (from the GGUF tensor list: all tensors, one row of the
// token embedding and PLE tables plus the tied output head, expert_used_count / expert_count of
// MoE expert tensors) x tokens/s.
//
// Exit status: 0 on success, 1 on usage error, 2 on any load/evaluation failure.

import fs from "node:fs";
import path from "node:path";
import process from "node:process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
// node-llama-cpp's install: tests/peer, or $NIBBLE_PEER_DIR (scripts/bench-compare.sh --isa avx2
// points it at a copy without the AVX-512 CPU backends).
const PEER = process.env.NIBBLE_PEER_DIR || path.join(HERE, "..", "tests", "peer");

function usage(msg) {
    if (msg) process.stderr.write(`llama_cpp_bench: ${msg}\n`);
    process.stderr.write(
        "usage: node bench/llama_cpp_bench.mjs MODEL.gguf [-p 512] [-n 128] [-t THREADS] [-r 5] [-b 512]\n" +
        "           [--flash-attn auto|on|off] [--kv-type f16|q8_0|q4_0|f32] [--membw-gbps X] [--seed N] [--json]\n");
    process.exit(1);
}

function fail(msg, err) {
    const detail = err == null ? "" : `: ${err?.message ?? err}`;
    process.stderr.write(`llama_cpp_bench: ERROR: ${msg}${detail}\n`);
    process.exit(2);
}

function parseArgs(argv) {
    const a = { model: null, p: 512, n: 128, t: 0, r: 5, b: 512, fa: "auto", kv: "f16", membw: 0, seed: 1, json: false };
    const int = (name, s, min, max) => {
        if (!/^\d+$/.test(s ?? "")) usage(`${name} needs a whole number, got '${s ?? ""}'`);
        const v = Number(s);
        if (v < min || v > max) usage(`${name} ${v}: ${min}..${max} allowed`);
        return v;
    };
    for (let i = 0; i < argv.length; i++) {
        const x = argv[i];
        const next = () => {
            if (i + 1 >= argv.length) usage(`${x} needs a value`);
            return argv[++i];
        };
        if (x === "-p" || x === "--n-prompt") a.p = int(x, next(), 0, 1 << 20);
        else if (x === "-n" || x === "--n-gen") a.n = int(x, next(), 0, 1 << 20);
        else if (x === "-t" || x === "--threads") a.t = int(x, next(), 1, 1024);
        else if (x === "-r" || x === "--repetitions") a.r = int(x, next(), 1, 1000);
        else if (x === "-b" || x === "--batch-size") a.b = int(x, next(), 1, 65536);
        else if (x === "--seed") a.seed = int(x, next(), 0, 2 ** 31 - 1);
        else if (x === "--flash-attn") {
            a.fa = next();
            if (!["auto", "on", "off"].includes(a.fa)) usage(`--flash-attn ${a.fa}: auto, on or off`);
        } else if (x === "--kv-type") {
            a.kv = next().toLowerCase();
            if (!["f16", "q8_0", "q4_0", "f32"].includes(a.kv)) usage(`--kv-type ${a.kv}: f16, q8_0, q4_0 or f32`);
        } else if (x === "--membw-gbps") {
            a.membw = Number(next());
            if (!(a.membw > 0)) usage("--membw-gbps needs a positive number");
        } else if (x === "--json") a.json = true;
        else if (x === "-h" || x === "--help") usage();
        else if (x.startsWith("-")) usage(`unknown option ${x}`);
        else if (a.model == null) a.model = x;
        else usage(`unexpected argument ${x}`);
    }
    if (a.model == null) usage("missing MODEL.gguf");
    if (a.p === 0 && a.n === 0) usage("-p and -n are both 0: nothing to measure");
    return a;
}

// ggml type id -> [elements per block, bytes per block] (ggml-common.h).
const TYPE_SIZE = {
    0: [1, 4], 1: [1, 2], 2: [32, 18], 3: [32, 20], 6: [32, 22], 7: [32, 24], 8: [32, 34],
    10: [256, 84], 11: [256, 110], 12: [256, 144], 13: [256, 176], 14: [256, 210],
    20: [32, 18], 23: [256, 136], 30: [1, 2],
};
// general.file_type (llama_ftype) -> llama-quantize's name, as `nibble bench` prints it.
const FTYPE_NAME = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 21: "Q2_K_S", 25: "IQ4_NL", 30: "IQ4_XS", 32: "BF16",
};

// Bytes of every tensor: from its type when known, else from the distance to the next tensor.
function tensorBytes(info, fileSize) {
    const ts = info.tensorInfo.map((t) => ({
        name: t.name,
        dims: t.dimensions.map(Number),
        type: Number(t.ggmlType),
        off: Number(t.fileOffset),
    }));
    const byOffset = [...ts].sort((x, y) => x.off - y.off);
    for (let i = 0; i < byOffset.length; i++) {
        const t = byOffset[i];
        const n = t.dims.reduce((a, d) => a * d, 1);
        const ts_ = TYPE_SIZE[t.type];
        t.bytes = ts_ ? (n / ts_[0]) * ts_[1] : (i + 1 < byOffset.length ? byOffset[i + 1].off : fileSize) - t.off;
        t.rows = t.dims[0] > 0 ? n / t.dims[0] : 0;
    }
    return ts;
}

function bytesPerToken(info, fileSize) {
    const md = info.metadata ?? {};
    const arch = md.general?.architecture ?? "gemma4";
    const nExpert = Number(md[arch]?.expert_count ?? 0);
    const nUsed = Number(md[arch]?.expert_used_count ?? 0);
    const ts = tensorBytes(info, fileSize);
    const hasOutput = ts.some((t) => t.name === "output.weight");
    let bytes = 0;
    for (const t of ts) {
        const row = t.rows > 0 ? t.bytes / t.rows : 0;
        if (t.name === "token_embd.weight") bytes += row + (hasOutput ? 0 : t.bytes);
        else if (t.name === "per_layer_token_embd.weight") bytes += row;
        else if (t.name.endsWith("_exps.weight") && nExpert > 0) bytes += (t.bytes / nExpert) * nUsed;
        else bytes += t.bytes;
    }
    return bytes;
}

// The ggml CPU backend variant in this process (node-llama-cpp loads one libggml-cpu-*.so).
function loadedCpuBackend() {
    try {
        const maps = fs.readFileSync("/proc/self/maps", "utf8");
        const m = maps.match(/libggml-cpu-([A-Za-z0-9_]+)\.so/);
        return m ? `libggml-cpu-${m[1]}.so` : "unknown (no libggml-cpu-*.so mapped)";
    } catch {
        return "unknown (/proc/self/maps unreadable)";
    }
}

// Small deterministic PRNG (mulberry32) for token ids.
function rng(seed) {
    let s = seed >>> 0;
    return () => {
        s = (s + 0x6D2B79F5) >>> 0;
        let t = s;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

function summarize(samples) {
    const v = [...samples].sort((x, y) => x - y);
    const n = v.length;
    const median = n % 2 ? v[(n - 1) / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    const mean = v.reduce((a, x) => a + x, 0) / n;
    const sd = n > 1 ? Math.sqrt(v.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1)) : 0;
    return { median, mean, sd };
}

async function main() {
    const a = parseArgs(process.argv.slice(2));
    if (!fs.existsSync(a.model)) fail(`model file not found: ${a.model}`);
    let nlc;
    try {
        const req = createRequire(path.join(PEER, "package.json"));
        nlc = await import(req.resolve("node-llama-cpp"));
    } catch (err) {
        fail("cannot import node-llama-cpp from tests/peer (run: scripts/npm-peers.sh)", err);
    }
    const { getLlama, LlamaLogLevel, readGgufFileInfo } = nlc;

    const fileSize = fs.statSync(a.model).size;
    let info;
    try {
        info = await readGgufFileInfo(path.resolve(a.model), { readTensorInfo: true, logWarnings: false });
    } catch (err) {
        fail(`cannot read the GGUF header of ${a.model}`, err);
    }
    const bpt = bytesPerToken(info, fileSize);
    const ftype = Number(info.metadata?.general?.file_type ?? -1);
    const type = FTYPE_NAME[ftype] ?? (ftype >= 0 ? `ftype ${ftype}` : "unknown");

    const logs = [];
    let llama;
    try {
        llama = await getLlama({
            gpu: false,
            build: "never",
            usePrebuiltBinaries: true,
            skipDownload: true,
            progressLogs: false,
            logLevel: LlamaLogLevel.warn,
            logger(level, message) {
                logs.push(`[llama.cpp ${level}] ${String(message).trimEnd()}`);
            },
            ...(a.t > 0 ? { maxThreads: a.t } : {}),
        });
    } catch (err) {
        fail("cannot initialise llama.cpp (node-llama-cpp getLlama)", err);
    }
    const threads = a.t > 0 ? a.t : llama.cpuMathCores;
    let model;
    try {
        model = await llama.loadModel({ modelPath: path.resolve(a.model), gpuLayers: 0, useMmap: true });
    } catch (err) {
        for (const l of logs) process.stderr.write(l + "\n");
        fail(`llama.cpp could not load ${a.model}`, err);
    }
    const backend = loadedCpuBackend();
    // Vocabulary size: the token embedding's rows (ne1), as llama.cpp's n_vocab.
    const embd = info.tensorInfo.find((t) => t.name === "token_embd.weight");
    const nVocab = embd != null ? Number(embd.dimensions[1]) : Number(info.metadata?.tokenizer?.ggml?.tokens?.length ?? 0);
    if (!(nVocab > 0)) fail("cannot tell the vocabulary size");
    const bos = model.tokens?.shouldPrependBosToken === false ? null : (model.tokens?.bos ?? null);
    const name = path.basename(a.model);
    const flash = a.fa === "auto" ? "auto" : a.fa === "on";

    if (a.json) {
        process.stdout.write(JSON.stringify({
            engine: "llama.cpp", info: true, cpu_backend: backend, threads,
            llama_cpp_release: llama.llamaCppRelease?.release ?? null,
            system_info: String(llama.systemInfo ?? "").trim(), model: name, type,
        }) + "\n");
    } else {
        process.stdout.write(`llama.cpp ${llama.llamaCppRelease?.release ?? "?"} (node-llama-cpp, ${backend}), ` +
            `model: ${name} (${type}, ${(bpt / 1e9).toFixed(3)} GB read per token), ${threads} threads\n`);
        process.stdout.write("| test   |          t/s (median ± sd) |   GB/s | % membw |\n");
        process.stdout.write("| ------ | -------------------------: | -----: | ------: |\n");
    }

    const rand = rng(a.seed);
    const tok = () => Math.min(nVocab - 1, Math.floor(rand() * nVocab));
    const report = (test, samples) => {
        const s = summarize(samples);
        const gbs = (bpt * s.median) / 1e9;
        const pct = a.membw > 0 ? (100 * gbs) / a.membw : null;
        if (a.json) {
            process.stdout.write(JSON.stringify({
                engine: "llama.cpp", test, tokens_per_s: s.median, stddev: s.sd, mean: s.mean,
                samples, gb_per_s: gbs, pct_membw: pct, membw_gb_per_s: a.membw > 0 ? a.membw : null,
                bytes_per_token: bpt, threads, n_batch: a.b, reps: a.r, type, model: name,
                cpu_backend: backend, flash_attn: a.fa, kv_type: a.kv,
            }) + "\n");
        } else {
            const pctStr = pct == null ? "      -" : `${pct.toFixed(1).padStart(6)}%`;
            process.stdout.write(`| ${test.padEnd(6)} | ${s.median.toFixed(2).padStart(14)} ± ${s.sd.toFixed(2).padEnd(10)} | ` +
                `${gbs.toFixed(2).padStart(6)} | ${pctStr} |\n`);
        }
    };
    const createContext = async (size) => {
        try {
            return await model.createContext({
                contextSize: size,
                batchSize: Math.min(a.b, size),
                sequences: 1,
                flashAttention: flash,
                experimentalKvCacheKeyType: a.kv.toUpperCase(),
                experimentalKvCacheValueType: a.kv.toUpperCase(),
                threads,
            });
        } catch (err) {
            for (const l of logs) process.stderr.write(l + "\n");
            fail("llama.cpp could not create a context", err);
        }
    };
    const timed = async (fn) => {
        const t0 = process.hrtime.bigint();
        await fn();
        return Number(process.hrtime.bigint() - t0) / 1e9;
    };

    try {
        if (a.p > 0) {
            const ctx = await createContext(a.p);
            const seq = ctx.getSequence();
            const runPrompt = async () => {
                await seq.clearHistory();
                const ids = Array.from({ length: a.p }, tok);
                if (bos != null) ids[0] = bos;
                // One call; node-llama-cpp splits it into batches of batchSize. Logits: last token.
                const input = ids.map((t, i) => (i === ids.length - 1 ? [t, { generateNext: { token: true } }] : t));
                const out = await seq.controlledEvaluate(input);
                if (out[ids.length - 1]?.next?.token == null) fail("no output for the last prompt token");
            };
            await runPrompt();  // warm-up
            const samples = [];
            for (let k = 0; k < a.r; k++) samples.push(a.p / (await timed(runPrompt)));
            report(`pp${a.p}`, samples);
            await ctx.dispose();
        }
        if (a.n > 0) {
            const ctx = await createContext(a.n);
            const seq = ctx.getSequence();
            const runGen = async (n) => {
                await seq.clearHistory();
                let t = bos != null ? bos : tok();
                for (let i = 0; i < n; i++) {
                    const out = await seq.controlledEvaluate([[t, { generateNext: { token: true } }]]);
                    if (out[0]?.next?.token == null) fail("no output while generating");
                    t = tok();
                }
            };
            await runGen(1);  // warm-up: one token, as llama-bench does
            const samples = [];
            for (let k = 0; k < a.r; k++) samples.push(a.n / (await timed(() => runGen(a.n))));
            report(`tg${a.n}`, samples);
            await ctx.dispose();
        }
    } catch (err) {
        for (const l of logs) process.stderr.write(l + "\n");
        fail("llama.cpp evaluation failed", err);
    }
    await model.dispose();
    await llama.dispose();
}

main().catch((err) => fail("unexpected failure", err));
