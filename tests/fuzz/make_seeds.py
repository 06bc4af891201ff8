#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora under tests/fuzz/corpus/<fuzzer>/ (small valid inputs) and
the crash reproducers under tests/fuzz/regressions/<fuzzer>/.

The files are committed; rerun after changing this script:  python3 tests/fuzz/make_seeds.py
Standard library only. GGUF layout: spec gguf-and-quant-formats §1; safetensors: 8-byte LE
header length, JSON header, raw data.
"""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
REGRESSIONS = os.path.join(HERE, "regressions")

# ---------------------------------------------------------------------------------------- GGUF
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
              BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}
# ggml type id -> (block elements, bytes per block)
GGML = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34), 12: (256, 144), 24: (1, 1), 30: (1, 2)}


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gval(t, v):
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        out = struct.pack("<IQ", et, len(items))
        for it in items:
            out += gval(et, it)
        return out
    return struct.pack(SCALAR_FMT[t], v)


def gguf(kvs, tensors, align=32, version=3):
    """kvs: [(key, type, value)]; tensors: [(name, [ne0, ...], ggml_type)] with generated data."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += gstr(k) + struct.pack("<I", t) + gval(t, v)
    datas, off = [], 0
    for name, shape, tid in tensors:
        n = 1
        for d in shape:
            n *= d
        blk, size = GGML[tid]
        nbytes = n // blk * size
        out += gstr(name) + struct.pack("<I", len(shape))
        out += b"".join(struct.pack("<Q", d) for d in shape)
        out += struct.pack("<IQ", tid, off)
        data = bytes((i * 37 + 11) & 0xFF for i in range(nbytes))
        data += b"\0" * ((-nbytes) % align)
        datas.append(data)
        off += len(data)
    out += b"\0" * ((-len(out)) % align)
    return out + b"".join(datas)


def gguf_seeds():
    arch = ("general.architecture", STR, "gemma4")
    yield "spec_example.gguf", gguf([("general.architecture", STR, "llama")], [("t", [2], 0)])
    yield "empty.gguf", gguf([], [])
    yield "metadata_only_v2.gguf", gguf([arch, ("general.name", STR, "x")], [], version=2)
    yield "all_value_types.gguf", gguf([
        arch,
        ("t.u8", U8, 200), ("t.i8", I8, -100), ("t.u16", U16, 60000), ("t.i16", I16, -3),
        ("t.u32", U32, 7), ("t.i32", I32, -7), ("t.f32", F32, 0.5), ("t.bool", BOOL, 1),
        ("t.str", STR, "h\u00e9llo"), ("t.u64", U64, 1 << 40), ("t.i64", I64, -(1 << 40)),
        ("t.f64", F64, 1.5),
        ("t.arr_str", ARR, (STR, ["a", "", "\u2581b"])),
        ("t.arr_i32", ARR, (I32, [1, -2, 3])),
        ("t.arr_f32", ARR, (F32, [0.25, -1.0])),
        ("t.arr_bool", ARR, (BOOL, [1, 0])),
        ("t.arr_empty", ARR, (U8, [])),
    ], [("a", [4], 0)])
    yield "tensor_types.gguf", gguf([arch, ("general.alignment", U32, 64)], [
        ("token_embd.weight", [32, 2], 2),       # q4_0
        ("blk.0.attn_q.weight", [32, 1, 2], 8),  # q8_0, 3 dims
        ("blk.0.ffn_up.weight", [256], 12),      # q4_K
        ("blk.0.attn_norm.weight", [3, 1, 1, 2], 1),  # f16, 4 dims
        ("output_norm.weight", [5], 30),         # bf16
        ("ids", [3], 24),                        # i8
        ("empty", [0], 0),                       # zero elements
    ], align=64)
    yield "alignment_8.gguf", gguf([("general.alignment", U32, 8)], [("x", [3], 0), ("y", [1], 1)],
                                   align=8)


# --------------------------------------------------------------------------------- safetensors
def safetensors(entries, metadata=None, pad_header_to=8):
    """entries: [(name, dtype, shape)] laid out back to back."""
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
             "U8": 1, "BOOL": 1}
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape in entries:
        n = 1
        for d in shape:
            n *= d
        nbytes = n * sizes[dtype]
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + nbytes]}
        data += bytes((i * 29 + 3) & 0xFF for i in range(nbytes))
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % pad_header_to)
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds():
    yield "one_f32.safetensors", safetensors([("w", "F32", [2, 3])])
    yield "mixed.safetensors", safetensors([
        ("model.embed_tokens.weight", "BF16", [4, 8]),
        ("model.norm.weight", "F16", [8]),
        ("model.layers.0.layer_scalar", "F32", [1]),
        ("ids", "I64", [2]),
        ("mask", "BOOL", [3]),
        ("scalar", "F64", []),
        ("empty", "F32", [0, 4]),
    ], metadata={"format": "pt"})
    yield "empty_header.safetensors", safetensors([])
    # The same tensors listed in the opposite order of their data.
    h = ('{"b":{"dtype":"I8","shape":[2],"data_offsets":[0,2]},'
         '"a":{"dtype":"U8","shape":[1,1],"data_offsets":[2,3]}}').encode()
    yield "reversed_order.safetensors", struct.pack("<Q", len(h)) + h + b"\x01\x02\x03"
    src = os.path.join(ROOT, "tests", "fixtures", "models", "rand-dense", "hf", "model.safetensors")
    if os.path.exists(src):
        # Header of a real checkpoint plus the first bytes of data (the fuzzer mutates offsets).
        with open(src, "rb") as f:
            raw = f.read()
        (hl,) = struct.unpack("<Q", raw[:8])
        yield "rand_dense_header.safetensors", raw[:8 + hl + 64]


# ----------------------------------------------------------------------------------- hf_config
def hf_config_seeds():
    for model in ("rand-dense", "rand-e", "rand-moe"):
        p = os.path.join(ROOT, "tests", "fixtures", "models", model, "hf", "config.json")
        if os.path.exists(p):
            with open(p, "rb") as f:
                yield model + ".json", f.read()
    minimal = {"model_type": "gemma4_text", "hidden_size": 8, "num_hidden_layers": 3,
               "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4,
               "intermediate_size": 16, "vocab_size": 32, "sliding_window_pattern": 2,
               "num_kv_shared_layers": 1, "use_double_wide_mlp": True,
               "per_layer_config": {"1": {"head_dim": 8, "num_key_value_heads": 2}},
               "eos_token_id": [1, 106]}
    yield "minimal_pattern.json", json.dumps(minimal).encode()
    mm = {"architectures": ["Gemma4ForConditionalGeneration"],
          "text_config": dict(minimal, model_type="gemma4", enable_moe_block=True, num_experts=4,
                              top_k_experts=2, moe_intermediate_size=8,
                              rope_parameters={"full_attention": {"rope_type": "proportional",
                                                                  "partial_rotary_factor": 0.5,
                                                                  "rope_theta": 1e6}})}
    yield "multimodal_moe.json", json.dumps(mm).encode()


# ---------------------------------------------------------------------------------- regressions
# Inputs that crashed once; replayed by `ctest -L fuzz`, not used as seeds (they are large).
def safetensors_regressions():
    # Error messages used to dump() the offending JSON value, which recursed once per nesting
    # level and overflowed the stack (under ASan at about 20000 levels).
    deep = "[" * 30000 + "]" * 30000
    h = ('{"w":{"dtype":' + deep + ',"shape":[1],"data_offsets":[0,4]}}').encode()
    yield "deep_dtype.safetensors", struct.pack("<Q", len(h)) + h + b"\0" * 4


def hf_config_regressions():
    yield "deep_value.json", ('{"model_type":"gemma4_text","hidden_size":' +
                              "[" * 30000 + "]" * 30000 + "}").encode()


def write(dirname, seeds):
    shutil.rmtree(dirname, ignore_errors=True)
    os.makedirs(dirname)
    for name, data in seeds():
        with open(os.path.join(dirname, name), "wb") as f:
            f.write(data)
    print(f"{dirname}: {len(os.listdir(dirname))} files")


def main():
    for fuzzer, seeds in (("gguf_reader", gguf_seeds), ("safetensors", safetensors_seeds),
                          ("hf_config", hf_config_seeds)):
        write(os.path.join(CORPUS, fuzzer), seeds)
    for fuzzer, seeds in (("safetensors", safetensors_regressions),
                          ("hf_config", hf_config_regressions)):
        write(os.path.join(REGRESSIONS, fuzzer), seeds)


if __name__ == "__main__":
    main()
