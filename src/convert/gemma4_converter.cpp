#include "convert/gemma4_converter.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "convert/gemma4_chat_template.h"
#include "convert/gemma4_layout.h"
#include "convert/hf_config.h"
#include "convert/safetensors.h"
#include "gguf/gguf_writer.h"
#include "quant/quant.h"
#include "tokenizer/vocab.h"
#include "util/mapped_file.h"
#include "util/text.h"

namespace nibble {

namespace fs = std::filesystem;
using ull = unsigned long long;

bool convert_type_supported(GgmlType type) {
  return type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16 ||
         type == GgmlType::Q8_0 || type == GgmlType::Q4_0;
}

uint32_t ftype_for_type(GgmlType type) {
  switch (type) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1;
    case GgmlType::Q4_0: return 2;
    case GgmlType::Q8_0: return 7;
    case GgmlType::BF16: return 32;
    default: return 0;
  }
}

namespace {

// One output tensor and where its values come from.
struct PlannedTensor {
  Gemma4TensorSpec spec;
  const StTensor* src = nullptr;  // null for generated tensors
  std::vector<float> generated;   // rope_freqs
};

bool is_tower(const std::string& name) {
  static const char* kPrefixes[] = {"model.vision_tower.", "model.audio_tower.",
                                    "model.embed_vision.", "model.embed_audio.",
                                    "model.multi_modal_projector.", "vision_tower.",
                                    "audio_tower.", "multi_modal_projector."};
  for (const char* p : kPrefixes) {
    if (name.rfind(p, 0) == 0) return true;
  }
  return false;
}

std::string shape_str(const std::vector<uint64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

Result<std::string> find_chat_template(const std::string& dir) {
  if (fs::exists(dir + "/chat_template.jinja")) {
    return read_file_to_string(dir + "/chat_template.jinja", 4ull << 20);
  }
  const std::string tc = dir + "/tokenizer_config.json";
  if (fs::exists(tc)) {
    NIBBLE_ASSIGN_OR_RETURN(std::string text, read_file_to_string(tc, 64ull << 20));
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      return make_error(ErrorCode::kFormat, "%s: invalid JSON: %s", tc.c_str(), printable(e.what(), 200).c_str());
    }
    if (j.is_object() && j.contains("chat_template")) {
      const auto& t = j["chat_template"];
      if (t.is_string()) return t.get<std::string>();
      if (t.is_array()) {
        for (const auto& e : t) {
          if (e.is_object() && e.contains("name") && e["name"].is_string() &&
              e["name"].get<std::string>() == "default" && e.contains("template") &&
              e["template"].is_string()) {
            return e["template"].get<std::string>();
          }
        }
      }
    }
  }
  return std::string();
}

// general.name: the checkpoint folder's name ("tiny-e" for tiny-e/hf: a folder called "hf" is
// named after its parent).
std::string checkpoint_name(const std::string& dir) {
  fs::path p = fs::absolute(fs::path(dir)).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  if (p.filename() == "hf" && p.has_parent_path()) p = p.parent_path();
  return p.filename().string();
}

// llama.cpp's gemma4 vocabulary: the tokens rendered in output text (thought channel, tool calls)
// are USER_DEFINED, every other special "<...>" token is CONTROL (spec §6.1). SentencePiece files
// mark them all user-defined; llama.cpp warns about control-looking tokens that are not control.
void gemma4_special_token_types(Vocab& vocab) {
  static const std::set<std::string> kVisible = {"<|channel>",       "<channel|>",
                                                 "<|tool_call>",     "<tool_call|>",
                                                 "<|tool_response>", "<tool_response|>",
                                                 "<|\"|>"};
  for (size_t i = 0; i < vocab.tokens.size(); ++i) {
    const std::string& t = vocab.tokens[i];
    if (vocab.types[i] == static_cast<int32_t>(TokenType::kUserDefined) && t.size() > 2 &&
        t.front() == '<' && t.back() == '>' && kVisible.count(t) == 0) {
      vocab.types[i] = static_cast<int32_t>(TokenType::kControl);
    }
  }
}

}  // namespace

Result<ConvertSummary> convert_gemma4_checkpoint(const ConvertOptions& opt) {
  auto note = [&](const std::string& s) {
    if (opt.note) opt.note(s);
  };
  if (!convert_type_supported(opt.type)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "convert: --type %s is not supported (f32, f16, bf16, q8_0, q4_0 are)",
                      ggml_type_name(opt.type));
  }
  const std::string& dir = opt.hf_dir;
  if (!fs::is_directory(dir)) {
    return make_error(ErrorCode::kNotFound, "%s: not a directory", dir.c_str());
  }
  NIBBLE_ASSIGN_OR_RETURN(Gemma4HfConfig cfg, load_gemma4_hf_config(dir + "/config.json"));

  // Tokenizer.
  Vocab vocab;
  if (fs::exists(dir + "/tokenizer.model")) {
    NIBBLE_ASSIGN_OR_RETURN(vocab, vocab_from_sentencepiece_model(dir + "/tokenizer.model"));
  } else if (fs::exists(dir + "/tokenizer.json")) {
    NIBBLE_ASSIGN_OR_RETURN(vocab, vocab_from_tokenizer_json(dir + "/tokenizer.json"));
  } else {
    return make_error(ErrorCode::kNotFound, "%s: no tokenizer.model or tokenizer.json",
                      dir.c_str());
  }
  const uint64_t n_vocab = vocab.tokens.size();
  if (n_vocab > cfg.vocab_size) {
    return make_error(ErrorCode::kFormat,
                      "%s: the tokenizer has %llu tokens but config.json's vocab_size is %u",
                      dir.c_str(), static_cast<ull>(n_vocab), cfg.vocab_size);
  }

  NIBBLE_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsCheckpoint> ck,
                          SafetensorsCheckpoint::open_dir(dir));

  // Normalise names: multimodal checkpoints put the text model under model.language_model.
  std::map<std::string, const StTensor*> by_name;
  uint64_t tower_bytes = 0;
  ConvertSummary summary;
  for (const auto& [name, t] : ck->tensors()) {
    if (is_tower(name)) {
      ++summary.n_skipped_towers;
      tower_bytes += t.n_bytes;
      continue;
    }
    std::string n = name;
    if (n.rfind("model.language_model.", 0) == 0) n = "model." + n.substr(21);
    if (by_name.count(n) != 0) {
      return make_error(ErrorCode::kFormat, "%s: tensor '%s' is present twice (with and without language_model.)",
                        dir.c_str(), printable(n).c_str());
    }
    by_name[n] = &t;
  }
  if (summary.n_skipped_towers > 0) {
    note("skipping " + std::to_string(summary.n_skipped_towers) + " vision/audio tensors (" +
         std::to_string(tower_bytes >> 20) + " MiB): nibble converts the text model only");
  }

  const uint64_t V = cfg.vocab_size;
  if (n_vocab < V) {
    note("token embeddings truncated from " + std::to_string(V) + " to the tokenizer's " +
         std::to_string(n_vocab) + " rows");
  }
  std::set<std::string> used;
  std::vector<PlannedTensor> plan;
  for (auto& spec : gemma4_tensor_layout(cfg, n_vocab, opt.type)) {
    PlannedTensor p;
    p.spec = spec;
    if (spec.hf_name.empty()) {
      p.generated = gemma4_rope_freqs(cfg);
      plan.push_back(std::move(p));
      continue;
    }
    auto it = by_name.find(spec.hf_name);
    if (it == by_name.end()) {
      if (!spec.required) continue;
      return make_error(ErrorCode::kFormat, "%s: tensor '%s' (for %s) is missing", dir.c_str(),
                        spec.hf_name.c_str(), spec.gguf_name.c_str());
    }
    const StTensor* t = it->second;
    if (t->dtype != StDtype::kF32 && t->dtype != StDtype::kF16 && t->dtype != StDtype::kBF16) {
      return make_error(ErrorCode::kUnsupported, "%s: tensor '%s' has dtype %s; F32, F16 or BF16 expected",
                        t->file.c_str(), spec.hf_name.c_str(), st_dtype_name(t->dtype));
    }
    // Token rows beyond the tokenizer's vocabulary are dropped (llama.cpp does the same).
    std::vector<uint64_t> want = spec.hf_shape;
    const bool vocab_rows = spec.gguf_name == "token_embd.weight" ||
                            spec.gguf_name == "per_layer_token_embd.weight" ||
                            spec.gguf_name == "output.weight";
    if (vocab_rows) want[0] = V;
    if (t->shape != want) {
      return make_error(ErrorCode::kFormat, "%s: tensor '%s' has shape %s, config.json implies %s",
                        t->file.c_str(), spec.hf_name.c_str(), shape_str(t->shape).c_str(),
                        shape_str(want).c_str());
    }
    used.insert(spec.hf_name);
    p.src = t;
    plan.push_back(std::move(p));
  }
  if (cfg.tie_word_embeddings && by_name.count("lm_head.weight")) {
    used.insert("lm_head.weight");  // tied: the embedding is the output head
  }
  for (const auto& n : gemma4_unused_shared_kv_names(cfg)) {
    if (by_name.count(n)) {
      used.insert(n);  // KV-shared layers never use their own K/V: drop the redundant copies
      ++summary.n_dropped_shared_kv;
    }
  }
  for (const auto& [name, t] : by_name) {
    if (used.count(name) == 0) {
      return make_error(ErrorCode::kFormat,
                        "%s: unexpected tensor '%s' %s for a Gemma 4 model with this config.json",
                        t->file.c_str(), printable(name).c_str(), shape_str(t->shape).c_str());
    }
  }
  if (summary.n_dropped_shared_kv > 0) {
    note("dropped " + std::to_string(summary.n_dropped_shared_kv) +
         " unused K/V tensors of KV-shared layers");
  }

  GgufWriter w;
  GgufMetadata& md = w.metadata();
  gemma4_model_metadata(cfg, opt.type, checkpoint_name(dir), md);
  vocab.bos_id = cfg.bos_id < static_cast<int32_t>(n_vocab) ? cfg.bos_id : vocab.bos_id;
  vocab.eos_id = cfg.eos_id < static_cast<int32_t>(n_vocab) ? cfg.eos_id : vocab.eos_id;
  vocab.pad_id = cfg.pad_id < static_cast<int32_t>(n_vocab) ? cfg.pad_id : vocab.pad_id;
  gemma4_special_token_types(vocab);
  vocab_to_gguf(vocab, md);
  NIBBLE_ASSIGN_OR_RETURN(std::string tmpl, find_chat_template(dir));
  if (tmpl.empty()) {
    const bool large = cfg.attention_k_eq_v || cfg.enable_moe;
    tmpl = gemma4_default_chat_template(large);
    note(std::string("no chat template in the checkpoint: using Gemma 4's ") +
         (large ? "26B/31B" : "E2B/E4B") + " template");
  }
  md.set("tokenizer.chat_template", GgufValue::str(tmpl));

  // Tensors, converted row by row in parallel while the file is written.
  uint64_t total_bytes = 0;
  std::vector<uint64_t> sizes;
  for (auto& p : plan) {
    const PlannedTensor* pp = &p;
    GgufWriter::Producer produce = [pp](std::vector<uint8_t>& out) {
      const GgmlType type = pp->spec.type;
      const uint64_t row = pp->spec.hf_shape.back();
      const uint64_t n_rows = pp->spec.n_elements() / row;
      const uint64_t row_bytes = ggml_row_size(type, row);
      out.resize(n_rows * row_bytes);
      if (pp->src == nullptr) {
        quantize_row(type, pp->generated.data(), out.data(), pp->spec.n_elements());
        return ok_status();
      }
      const StTensor& s = *pp->src;
      const bool same = (type == GgmlType::F32 && s.dtype == StDtype::kF32) ||
                        (type == GgmlType::F16 && s.dtype == StDtype::kF16) ||
                        (type == GgmlType::BF16 && s.dtype == StDtype::kBF16);
      if (same) {  // rows are contiguous: the first n_rows rows are the first bytes
        std::copy(s.data, s.data + out.size(), out.data());
        return ok_status();
      }
      #pragma omp parallel
      {
        std::vector<float> buf(row);
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < static_cast<int64_t>(n_rows); ++r) {
          st_to_f32(s, static_cast<uint64_t>(r) * row, row, buf.data());
          quantize_row(type, buf.data(), out.data() + static_cast<uint64_t>(r) * row_bytes, row);
        }
      }
      return ok_status();
    };
    NIBBLE_TRY(w.add_tensor(p.spec.gguf_name, p.spec.type, p.spec.gguf_shape(), std::move(produce)));
    sizes.push_back(p.spec.n_bytes());
    total_bytes += sizes.back();
    summary.n_params += p.spec.n_elements();
  }
  summary.n_tensors = plan.size();
  summary.n_bytes = total_bytes;
  uint64_t done = 0;
  w.set_progress([&](size_t i, size_t, const std::string&) {
    done += sizes[i];
    if (opt.progress) opt.progress(done, total_bytes);
  });
  NIBBLE_TRY(w.write(opt.out_path));
  return summary;
}

}  // namespace nibble
