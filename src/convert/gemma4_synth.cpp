// Synthetic Gemma 4 models: plan (layout + recipe types + metadata), deterministic weights,
// streamed writing. See gemma4_synth.h.
#include "convert/gemma4_synth.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "convert/gemma4_chat_template.h"
#include "convert/gemma4_layout.h"
#include "convert/gemma4_presets.h"
#include "gguf/gguf_writer.h"
#include "quant/quant.h"
#include "util/text.h"
#include "util/thread_pool.h"

namespace nibble {

namespace {

using json = nlohmann::json;
using ull = unsigned long long;

constexpr int32_t kVocabSize = 262144;

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return h;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string lower_ascii(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string known_types() {
  std::string s = "f32, f16, bf16";
  for (const auto& f : ftype_table()) {
    if (f.ftype == LlamaFtype::ALL_F32 || f.ftype == LlamaFtype::MOSTLY_F16 ||
        f.ftype == LlamaFtype::MOSTLY_BF16) {
      continue;
    }
    s += ", ";
    s += f.cli_name;
  }
  return s;
}

}  // namespace

Result<Gemma4HfConfig> gemma4_synth_config(std::string_view preset, uint32_t n_layers) {
  NIBBLE_ASSIGN_OR_RETURN(std::string text, gemma4_preset_config_json(preset));
  const std::string name = "preset " + std::string(preset);
  json j = json::parse(text);
  const uint32_t L = j["num_hidden_layers"].get<uint32_t>();
  if (n_layers == 0 || n_layers == L) return parse_gemma4_hf_config(text, name);
  if (n_layers > L) {
    return make_error(ErrorCode::kInvalidArgument, "--layers %u: preset %s has %u layers", n_layers,
                      std::string(preset).c_str(), L);
  }
  std::vector<std::string> types = j["layer_types"].get<std::vector<std::string>>();
  types.resize(n_layers);
  types.back() = "full_attention";
  // KV sharing in proportion, only where the owning layers end with (sliding, full): then the
  // reference rule (last owning layer of the same type) and llama.cpp's (n_owning - 2 for
  // sliding, n_owning - 1 for full layers) pick the same source layers.
  const uint32_t shared0 = j["num_kv_shared_layers"].get<uint32_t>();
  uint32_t shared = static_cast<uint32_t>(std::lround(double(shared0) * n_layers / L));
  for (; shared > 0; --shared) {
    const uint32_t owning = n_layers - shared;
    if (owning >= 2 && types[owning - 1] == "full_attention" &&
        types[owning - 2] == "sliding_attention") {
      break;
    }
  }
  j["num_hidden_layers"] = n_layers;
  j["layer_types"] = types;
  j["num_kv_shared_layers"] = shared;
  return parse_gemma4_hf_config(j.dump(), name + " with " + std::to_string(n_layers) + " layers");
}

Vocab synthetic_gemma4_vocab() {
  Vocab v;
  v.model = "gemma4";
  v.tokens.assign(kVocabSize, std::string());
  v.scores.assign(kVocabSize, 0.0f);
  v.types.assign(kVocabSize, static_cast<int32_t>(TokenType::kNormal));
  std::vector<bool> taken(kVocabSize, false);
  auto put = [&](int32_t id, std::string s, TokenType t) {
    v.tokens[id] = std::move(s);
    v.types[id] = static_cast<int32_t>(t);
    taken[id] = true;
  };
  const TokenType ctl = TokenType::kControl, usr = TokenType::kUserDefined;
  // Gemma 4's special tokens at their real ids (spec gemma4-architecture §6.2); the ones rendered in
  // output text are USER_DEFINED, the others CONTROL, as llama.cpp's converter marks them (§6.1).
  put(0, "<pad>", ctl);
  put(1, "<eos>", ctl);
  put(2, "<bos>", ctl);
  put(3, "<unk>", TokenType::kUnknown);
  put(4, "<mask>", ctl);
  put(46, "<|tool>", ctl);
  put(47, "<tool|>", ctl);
  put(48, "<|tool_call>", usr);
  put(49, "<tool_call|>", usr);
  put(50, "<|tool_response>", usr);
  put(51, "<tool_response|>", usr);
  put(52, "<|\"|>", usr);
  put(98, "<|think|>", ctl);
  put(100, "<|channel>", usr);
  put(101, "<channel|>", usr);
  put(105, "<|turn>", ctl);
  put(106, "<turn|>", ctl);
  put(107, "\n", TokenType::kNormal);
  put(255999, "<|image>", ctl);
  put(256000, "<|audio>", ctl);
  put(258880, "<|image|>", ctl);
  put(258881, "<|audio|>", ctl);
  put(258882, "<image|>", ctl);
  put(258883, "<audio|>", ctl);
  put(258884, "<|video|>", ctl);
  int unused = 0;
  for (int32_t id = 0; id < 108; ++id) {
    if (!taken[id]) put(id, "<unused" + std::to_string(unused++) + ">", ctl);
  }
  constexpr int32_t kFirstByte = 108;
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    put(kFirstByte + b, buf, TokenType::kByte);
  }
  // Ordinary pieces: "▁" and printable ASCII, then every pair, then triples (pair + character),
  // in that order, each multi-character piece with the merge that builds it.
  // Letters first, so that the triples (which run out at the 262,144th id) cover "▁x" and
  // lower-case starts: text then tokenizes into realistic 2-3 character pieces.
  std::vector<std::string> chars = {"\xE2\x96\x81"};
  for (char c = 'a'; c <= 'z'; ++c) chars.emplace_back(1, c);
  for (char c = 'A'; c <= 'Z'; ++c) chars.emplace_back(1, c);
  for (char c = '0'; c <= '9'; ++c) chars.emplace_back(1, c);
  for (char c = 0x21; c <= 0x7E; ++c) {
    if (!std::isalnum(static_cast<unsigned char>(c))) chars.emplace_back(1, c);
  }
  int32_t next = kFirstByte + 256;
  auto add_piece = [&](std::string piece, std::string merge) {
    while (next < kVocabSize && taken[next]) ++next;
    if (next >= kVocabSize) return false;
    v.scores[next] = -static_cast<float>(next);
    put(next, std::move(piece), TokenType::kNormal);
    if (!merge.empty()) v.merges.push_back(std::move(merge));
    return true;
  };
  for (const auto& c : chars) add_piece(c, "");
  const size_t n = chars.size();
  for (size_t a = 0; a < n; ++a) {
    for (size_t b = 0; b < n; ++b) add_piece(chars[a] + chars[b], chars[a] + " " + chars[b]);
  }
  // A triple xyz is reachable by BPE through the pair that merges first (the lower rank, i.e.
  // the earlier pair): "xy z" when xy ranks before yz, else "x yz".
  for (size_t a = 0; a < n; ++a) {
    for (size_t b = 0; b < n; ++b) {
      for (size_t c = 0; c < n; ++c) {
        const std::string& x = chars[a];
        const std::string& y = chars[b];
        const std::string& z = chars[c];
        const bool left_first = a * n + b <= b * n + c;
        if (!add_piece(x + y + z, left_first ? x + y + " " + z : x + " " + y + z)) return v;
      }
    }
  }
  return v;
}

void synth_tensor_row(const Gemma4HfConfig& cfg, uint64_t seed, const std::string& name,
                      const std::vector<uint64_t>& shape, uint64_t row, float* out) {
  const uint64_t n = shape[0];
  if (name == "rope_freqs.weight") {
    const std::vector<float> f = gemma4_rope_freqs(cfg);
    for (uint64_t i = 0; i < n; ++i) out[i] = i < f.size() ? f[i] : 1e30f;
    return;
  }
  // Centre and spread. Matrices: N(0, 1/sqrt(n_in)), so every projection keeps its input's
  // scale (the token embedding then gives logits of order 1 and, times sqrt(H), an input of RMS
  // 1). Norm weights and scales: near 1, their identity value. q_norm/k_norm: near d^(-1/4), so
  // that q.k (attention has no 1/sqrt(d) scale in Gemma 4) is of order 1 and softmax stays soft.
  float centre = 0.0f, spread = 0.0f;
  const bool is_vector = shape.size() == 1;
  if (is_vector) {
    if (ends_with(name, "attn_q_norm.weight") || ends_with(name, "attn_k_norm.weight")) {
      centre = static_cast<float>(std::pow(static_cast<double>(n), -0.25));
      spread = 0.02f * centre;
    } else if (ends_with(name, "layer_output_scale.weight")) {
      centre = 1.0f;
      spread = 0.01f;
    } else {
      centre = 1.0f;
      spread = 0.05f;
    }
  } else if (name == "per_layer_token_embd.weight" && cfg.hidden_size_per_layer_input > 0) {
    // Each layer's P-slice is scaled by sqrt(P) on use: N(0, 1/sqrt(P)) gives RMS 1.
    spread = static_cast<float>(1.0 / std::sqrt(static_cast<double>(cfg.hidden_size_per_layer_input)));
  } else {
    spread = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  }
  // Counter-based: element i of row r depends on (seed, name, r, i) only. Each value is an
  // Irwin-Hall sum of four 16-bit uniforms, scaled to unit variance (close enough to normal).
  const uint64_t key = splitmix64(seed ^ splitmix64(fnv1a64(name) + row * 0xD1B54A32D192ED03ull));
  const float k = static_cast<float>(std::sqrt(3.0) / 65536.0) * spread;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t r = splitmix64(key + i);
    const int64_t sum = static_cast<int64_t>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) +
                                             ((r >> 32) & 0xFFFF) + (r >> 48));
    out[i] = centre + static_cast<float>(sum - 131070) * k;
  }
}

Result<SynthPlan> plan_gemma4_synth(const SynthOptions& o) {
  SynthPlan p;
  NIBBLE_TRY(gemma4_preset_config_json(o.preset));
  const std::string t = lower_ascii(o.type);
  const auto ftype = parse_ftype(t);
  if (!ftype || t.empty() || std::isdigit(static_cast<unsigned char>(t[0]))) {
    return make_error(ErrorCode::kInvalidArgument, "synth: unknown --type '%s'; one of %s",
                      printable(o.type, 40).c_str(), known_types().c_str());
  }
  p.ftype = *ftype;
  NIBBLE_ASSIGN_OR_RETURN(p.cfg, gemma4_synth_config(o.preset, o.n_layers));
  const Gemma4HfConfig& cfg = p.cfg;

  const bool plain = p.ftype == LlamaFtype::ALL_F32 || p.ftype == LlamaFtype::MOSTLY_F16 ||
                     p.ftype == LlamaFtype::MOSTLY_BF16;
  // Plain types are what `nibble convert --type` writes; recipes are applied, as `nibble quantize`
  // does, to the bf16 conversion (1-D tensors and the router in F32, the rest in BF16).
  const GgmlType base = plain ? ftype_info(p.ftype).default_type : GgmlType::BF16;
  const std::vector<Gemma4TensorSpec> specs = gemma4_tensor_layout(cfg, cfg.vocab_size, base);
  auto add = [&p](const Gemma4TensorSpec& s, GgmlType type) {
    SynthTensor t;
    t.name = s.gguf_name;
    t.type = type;
    t.shape = s.gguf_shape();
    t.n_elements = s.n_elements();
    t.n_bytes = ggml_row_size(type, t.shape[0]) * (t.n_elements / t.shape[0]);
    p.n_bytes += t.n_bytes;
    p.n_params += t.n_elements;
    p.tensors.push_back(std::move(t));
  };
  if (plain) {
    for (const auto& s : specs) add(s, s.type);
  } else {
    std::vector<std::string> names;
    for (const auto& s : specs) names.push_back(s.gguf_name);
    RecipeModel m;
    m.arch = "gemma4";
    m.n_layer = cfg.n_layer;
    m.n_head = cfg.n_head;
    m.n_head_kv = cfg.layer_n_head_kv[0];
    m.n_expert = cfg.enable_moe ? cfg.n_expert : 0;
    m.count_tensors(names);
    RecipeState state;
    int n_deviation = 0;
    for (size_t idx : llama_quantize_order(names)) {
      const Gemma4TensorSpec& s = specs[idx];
      NIBBLE_ASSIGN_OR_RETURN(TensorChoice c, choose_tensor_type(m, p.ftype, RecipeOptions{}, state,
                                                                 s.gguf_name, s.gguf_shape(), s.type));
      if (c.deviation) ++n_deviation;
      if (c.allowed && tensor_requires_imatrix(s.gguf_name, c.type, p.ftype)) {
        return make_error(ErrorCode::kInvalidArgument,
                          "synth: %s needs an importance matrix for tensor '%s' (%s), which random "
                          "weights cannot provide; use Q2_K or another type",
                          ftype_info(p.ftype).cli_name, s.gguf_name.c_str(),
                          ggml_type_name(c.type));
      }
      if (!can_quantize(c.type)) {
        return make_error(ErrorCode::kUnsupported, "synth: tensor '%s': nibble cannot write type %s",
                          s.gguf_name.c_str(), ggml_type_name(c.type));
      }
      add(s, c.type);
    }
    if (state.n_fallback > 0 && o.note) {
      o.note(std::to_string(state.n_fallback) +
             " tensors use llama-quantize's fallback type (rows not a multiple of the block size)");
    }
    if (n_deviation > 0 && o.note) {
      o.note(std::to_string(n_deviation) + " tensors fit no block of their type and are F16");
    }
  }

  GgufMetadata& md = p.metadata;
  char name[96];
  std::snprintf(name, sizeof(name), "synthetic gemma4 %s%s (seed %llu)", o.preset.c_str(),
                o.n_layers > 0 ? (", " + std::to_string(cfg.n_layer) + " layers").c_str() : "",
                static_cast<ull>(o.seed));
  gemma4_model_metadata(cfg, base, name, md);
  md.set("general.size_label", GgufValue::str("synthetic"));
  vocab_to_gguf(synthetic_gemma4_vocab(), md);
  md.set("tokenizer.chat_template",
         GgufValue::str(gemma4_default_chat_template(cfg.attention_k_eq_v || cfg.enable_moe)));
  // As llama-quantize leaves them: quantization_version and file_type last.
  md.erase("general.quantization_version");
  md.set("general.quantization_version", GgufValue::u32(2));
  md.erase("general.file_type");
  md.set("general.file_type", GgufValue::u32(static_cast<uint32_t>(p.ftype)));
  return p;
}

Result<SynthPlan> write_gemma4_synth(const SynthOptions& o) {
  NIBBLE_ASSIGN_OR_RETURN(SynthPlan p, plan_gemma4_synth(o));
  if (o.out_path.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "synth: no output file given (-o OUT.gguf)");
  }
  // Refuse early when the disk cannot hold the file (a 31B f32 file is 124 GB).
  {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path dir = fs::absolute(fs::path(o.out_path), ec).parent_path();
    const fs::space_info si = fs::space(dir, ec);
    const uint64_t need = p.n_bytes + (16ull << 20);
    if (!ec && si.available < need) {
      return make_error(ErrorCode::kInvalidArgument,
                        "synth: %s needs %.2f GiB, %s has %.2f GiB free", o.out_path.c_str(),
                        need / 1073741824.0, dir.string().c_str(), si.available / 1073741824.0);
    }
  }
  GgufWriter w;
  w.metadata() = p.metadata;
  uint64_t done = 0;
  const uint64_t total = p.n_bytes;
  for (const SynthTensor& t : p.tensors) {
    const SynthTensor* tp = &t;
    const Gemma4HfConfig* cfg = &p.cfg;
    GgufWriter::StreamProducer produce = [tp, cfg, &o, &done,
                                          total](const GgufWriter::Sink& sink) -> Status {
      const uint64_t ne0 = tp->shape[0];
      const uint64_t n_rows = tp->n_elements / ne0;
      const uint64_t row_bytes = ggml_row_size(tp->type, ne0);
      // Chunks of about 8 MiB of output, split into pool tasks of about 64 Ki values.
      const uint64_t chunk_rows = std::max<uint64_t>(1, (8ull << 20) / row_bytes);
      const uint64_t task_rows = std::max<uint64_t>(1, (64ull << 10) / ne0);
      std::vector<uint8_t> out(std::min(chunk_rows, n_rows) * row_bytes);
      for (uint64_t r0 = 0; r0 < n_rows; r0 += chunk_rows) {
        const uint64_t nr = std::min(chunk_rows, n_rows - r0);
        const int64_t n_tasks = static_cast<int64_t>((nr + task_rows - 1) / task_rows);
        parallel_for(n_tasks, [&](int64_t k) {
          const uint64_t a = static_cast<uint64_t>(k) * task_rows;
          const uint64_t b = std::min(nr, a + task_rows);
          std::vector<float> buf((b - a) * ne0);
          for (uint64_t r = a; r < b; ++r) {
            synth_tensor_row(*cfg, o.seed, tp->name, tp->shape, r0 + r, buf.data() + (r - a) * ne0);
          }
          quantize_rows(tp->type, buf.data(), out.data() + a * row_bytes, b - a, ne0);
        });
        NIBBLE_TRY(sink(out.data(), nr * row_bytes));
        done += nr * row_bytes;
        if (o.progress) o.progress(done, total);
      }
      return ok_status();
    };
    NIBBLE_TRY(w.add_tensor_streamed(t.name, t.type, t.shape, std::move(produce)));
  }
  NIBBLE_TRY(w.write(o.out_path));
  return p;
}

}  // namespace nibble
