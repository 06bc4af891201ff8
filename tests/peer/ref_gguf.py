#!/usr/bin/env python3
"""Independent, stdlib-only HF -> GGUF (F32) writer for the tiny Gemma 4 fixtures.

Used only by the peer test for diagnosis: when llama.cpp rejects a GGUF written by
`nibble convert`, converting the same checkpoint with this script (written from
shared/spec/gemma4-architecture.md §2-3) tells whether the problem is in nibble's
file or in llama.cpp.  Not a general converter: F32 output, text weights only.

usage: ref_gguf.py HF_DIR OUT.gguf
"""
import json
import os
import struct
import sys

ALIGN = 32

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)


def enc_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def enc_scalar(t, v):
    if t == STR:
        return enc_str(v)
    fmt = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f",
           BOOL: "?", U64: "Q", I64: "q", F64: "d"}[t]
    return struct.pack("<" + fmt, v)


def enc_kv(key, t, v, elem_t=None):
    out = enc_str(key) + struct.pack("<I", t)
    if t == ARR:
        out += struct.pack("<IQ", elem_t, len(v))
        if elem_t == STR:
            out += b"".join(enc_str(x) for x in v)
        else:
            fmt = {I32: "i", U32: "I", F32: "f", BOOL: "?"}[elem_t]
            out += struct.pack("<%d%s" % (len(v), fmt), *v)
    else:
        out += enc_scalar(t, v)
    return out


def read_safetensors(hf_dir):
    files = sorted(f for f in os.listdir(hf_dir) if f.endswith(".safetensors"))
    tensors = {}
    for f in files:
        with open(os.path.join(hf_dir, f), "rb") as fh:
            data = fh.read()
        (hlen,) = struct.unpack_from("<Q", data, 0)
        header = json.loads(data[8:8 + hlen])
        base = 8 + hlen
        for name, info in header.items():
            if name == "__metadata__":
                continue
            a, b = info["data_offsets"]
            raw = data[base + a:base + b]
            dt = info["dtype"]
            if dt == "BF16":
                out = bytearray(len(raw) * 2)
                out[2::4] = raw[0::2]
                out[3::4] = raw[1::2]
                raw = bytes(out)
            elif dt != "F32":
                raise SystemExit("unsupported dtype %s for %s" % (dt, name))
            tensors[name] = (info["shape"], raw)
    return tensors


def read_sp_model(path):
    """Minimal protobuf reader for sentencepiece ModelProto: returns [(piece, score, type)]."""
    data = open(path, "rb").read()

    def varint(buf, i):
        r = 0
        s = 0
        while True:
            c = buf[i]
            i += 1
            r |= (c & 0x7F) << s
            s += 7
            if not c & 0x80:
                return r, i

    pieces = []
    i = 0
    while i < len(data):
        key, i = varint(data, i)
        field, wt = key >> 3, key & 7
        if wt == 2:
            ln, i = varint(data, i)
            sub = data[i:i + ln]
            i += ln
            if field == 1:
                piece, score, typ = "", 0.0, 1
                j = 0
                while j < len(sub):
                    k, j = varint(sub, j)
                    f2, w2 = k >> 3, k & 7
                    if w2 == 2:
                        l2, j = varint(sub, j)
                        if f2 == 1:
                            piece = sub[j:j + l2].decode("utf-8")
                        j += l2
                    elif w2 == 5:
                        if f2 == 2:
                            (score,) = struct.unpack_from("<f", sub, j)
                        j += 4
                    elif w2 == 0:
                        v, j = varint(sub, j)
                        if f2 == 3:
                            typ = v
                    elif w2 == 1:
                        j += 8
                    else:
                        raise SystemExit("bad protobuf wire type in tokenizer.model")
                pieces.append((piece, score, typ))
        elif wt == 0:
            _, i = varint(data, i)
        elif wt == 5:
            i += 4
        elif wt == 1:
            i += 8
        else:
            raise SystemExit("bad protobuf wire type in tokenizer.model")
    return pieces


def merges_from_pieces(pieces):
    """BPE merges derived from piece scores (highest score = earliest merge)."""
    vocab = {p: i for i, (p, _, t) in enumerate(pieces) if t == 1}
    merges = []
    order = sorted((i for i, (p, _, t) in enumerate(pieces) if t == 1 and len(p) > 1),
                   key=lambda i: -pieces[i][1])
    for i in order:
        p = pieces[i][0]
        best = None
        for k in range(1, len(p)):
            l, r = p[:k], p[k:]
            if l in vocab and r in vocab:
                score = vocab[l] + vocab[r]
                if best is None or score < best[0]:
                    best = (score, l, r)
        if best:
            merges.append(best[1] + " " + best[2])
    return merges


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    hf, out_path = sys.argv[1], sys.argv[2]
    cfg = json.load(open(os.path.join(hf, "config.json")))
    cfg = cfg.get("text_config", cfg)
    L = cfg["num_hidden_layers"]
    types = cfg["layer_types"]
    plc = cfg.get("per_layer_config") or {}
    hd_swa = cfg["head_dim"]
    hd_full = cfg.get("global_head_dim") or hd_swa
    kv_full = cfg.get("num_global_key_value_heads")
    for k, v in plc.items():
        if types[int(k)] == "full_attention":
            hd_full = v.get("head_dim", hd_full)
            kv_full = v.get("num_key_value_heads", kv_full)
    kv_swa = cfg["num_key_value_heads"]
    kv_arr = [kv_swa if t == "sliding_attention" else (kv_full or kv_swa) for t in types]
    rp = cfg["rope_parameters"]

    kvs = []
    A = "gemma4."
    kvs.append(enc_kv("general.architecture", STR, "gemma4"))
    kvs.append(enc_kv("general.name", STR, "ref"))
    kvs.append(enc_kv("general.file_type", U32, 0))
    kvs.append(enc_kv(A + "context_length", U32, cfg["max_position_embeddings"]))
    kvs.append(enc_kv(A + "embedding_length", U32, cfg["hidden_size"]))
    kvs.append(enc_kv(A + "block_count", U32, L))
    kvs.append(enc_kv(A + "feed_forward_length", U32, cfg["intermediate_size"]))
    kvs.append(enc_kv(A + "attention.head_count", U32, cfg["num_attention_heads"]))
    kvs.append(enc_kv(A + "attention.head_count_kv", ARR, kv_arr, U32))
    kvs.append(enc_kv(A + "attention.key_length", U32, hd_full))
    kvs.append(enc_kv(A + "attention.value_length", U32, hd_full))
    kvs.append(enc_kv(A + "attention.key_length_swa", U32, hd_swa))
    kvs.append(enc_kv(A + "attention.value_length_swa", U32, hd_swa))
    kvs.append(enc_kv(A + "attention.layer_norm_rms_epsilon", F32, cfg["rms_norm_eps"]))
    kvs.append(enc_kv(A + "attention.sliding_window", U32, cfg["sliding_window"]))
    kvs.append(enc_kv(A + "attention.sliding_window_pattern", ARR,
                      [t == "sliding_attention" for t in types], BOOL))
    kvs.append(enc_kv(A + "attention.shared_kv_layers", U32, cfg.get("num_kv_shared_layers") or 0))
    kvs.append(enc_kv(A + "embedding_length_per_layer_input", U32,
                      cfg.get("hidden_size_per_layer_input") or 0))
    kvs.append(enc_kv(A + "rope.freq_base", F32, rp["full_attention"]["rope_theta"]))
    kvs.append(enc_kv(A + "rope.freq_base_swa", F32, rp["sliding_attention"]["rope_theta"]))
    kvs.append(enc_kv(A + "rope.dimension_count", U32, hd_full))
    kvs.append(enc_kv(A + "rope.dimension_count_swa", U32, hd_swa))
    kvs.append(enc_kv(A + "final_logit_softcapping", F32, cfg.get("final_logit_softcapping") or 0.0))
    if cfg.get("enable_moe_block"):
        kvs.append(enc_kv(A + "expert_count", U32, cfg["num_experts"]))
        kvs.append(enc_kv(A + "expert_used_count", U32, cfg["top_k_experts"]))
        kvs.append(enc_kv(A + "expert_feed_forward_length", U32, cfg["moe_intermediate_size"]))

    pieces = read_sp_model(os.path.join(hf, "tokenizer.model"))
    vocab_n = cfg["vocab_size"]
    toks = [p for p, _, _ in pieces][:vocab_n]
    scores = [s for _, s, _ in pieces][:vocab_n]
    ttypes = [t for _, _, t in pieces][:vocab_n]
    while len(toks) < vocab_n:
        toks.append("<unused%d>" % len(toks))
        scores.append(0.0)
        ttypes.append(5)
    kvs.append(enc_kv("tokenizer.ggml.model", STR, "gemma4"))
    kvs.append(enc_kv("tokenizer.ggml.tokens", ARR, toks, STR))
    kvs.append(enc_kv("tokenizer.ggml.scores", ARR, scores, F32))
    kvs.append(enc_kv("tokenizer.ggml.token_type", ARR, ttypes, I32))
    kvs.append(enc_kv("tokenizer.ggml.merges", ARR, merges_from_pieces(pieces), STR))
    kvs.append(enc_kv("tokenizer.ggml.bos_token_id", U32, 2))
    kvs.append(enc_kv("tokenizer.ggml.eos_token_id", U32, 1))
    kvs.append(enc_kv("tokenizer.ggml.padding_token_id", U32, 0))
    kvs.append(enc_kv("tokenizer.ggml.unknown_token_id", U32, 3))
    kvs.append(enc_kv("tokenizer.ggml.add_bos_token", BOOL, True))
    kvs.append(enc_kv("tokenizer.ggml.add_space_prefix", BOOL, False))

    st = read_safetensors(hf)
    names = {}
    layer_map = {
        "input_layernorm.weight": "attn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "self_attn.q_norm.weight": "attn_q_norm.weight",
        "self_attn.k_norm.weight": "attn_k_norm.weight",
        "post_attention_layernorm.weight": "post_attention_norm.weight",
        "pre_feedforward_layernorm.weight": "ffn_norm.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
        "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
        "pre_feedforward_layernorm_2.weight": "pre_ffw_norm_2.weight",
        "post_feedforward_layernorm_1.weight": "post_ffw_norm_1.weight",
        "post_feedforward_layernorm_2.weight": "post_ffw_norm_2.weight",
        "router.proj.weight": "ffn_gate_inp.weight",
        "router.scale": "ffn_gate_inp.scale",
        "router.per_expert_scale": "ffn_down_exps.scale",
        "experts.gate_up_proj": "ffn_gate_up_exps.weight",
        "experts.down_proj": "ffn_down_exps.weight",
        "per_layer_input_gate.weight": "inp_gate.weight",
        "per_layer_projection.weight": "proj.weight",
        "post_per_layer_input_norm.weight": "post_norm.weight",
        "layer_scalar": "layer_output_scale.weight",
    }
    glob_map = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "model.embed_tokens_per_layer.weight": "per_layer_token_embd.weight",
        "model.per_layer_model_projection.weight": "per_layer_model_proj.weight",
        "model.per_layer_projection_norm.weight": "per_layer_proj_norm.weight",
    }
    for hname, (shape, raw) in st.items():
        n = hname.replace("model.language_model.", "model.")
        if n == "lm_head.weight":
            continue
        if n in glob_map:
            names[glob_map[n]] = (shape, raw)
            continue
        parts = n.split(".", 3)
        if parts[:2] == ["model", "layers"] and parts[3] in layer_map:
            names["blk.%s.%s" % (parts[2], layer_map[parts[3]])] = (shape, raw)
            continue
        raise SystemExit("unmapped tensor " + hname)
    part = rp["full_attention"].get("partial_rotary_factor", 1.0)
    n_rot = int(hd_full * part / 2)
    freqs = [1.0] * n_rot + [1e30] * (hd_full // 2 - n_rot)
    names["rope_freqs.weight"] = ([len(freqs)], struct.pack("<%df" % len(freqs), *freqs))

    infos = b""
    blobs = []
    off = 0
    for name in sorted(names):
        shape, raw = names[name]
        ne = list(reversed(shape)) or [1]
        infos += enc_str(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
        infos += struct.pack("<IQ", 0, off)
        pad = (-len(raw)) % ALIGN
        blobs.append(raw + b"\0" * pad)
        off += len(raw) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(names), len(kvs)) + b"".join(kvs) + infos
    head += b"\0" * ((-len(head)) % ALIGN)
    with open(out_path, "wb") as f:
        f.write(head)
        for b in blobs:
            f.write(b)


if __name__ == "__main__":
    main()
