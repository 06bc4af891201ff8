// Memory plans (plan.h): model descriptions from GGUF headers, HF configs and presets, and the
// byte accounting.
#include "plan/plan.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "convert/gemma4_layout.h"
#include "convert/gemma4_presets.h"
#include "convert/hf_config.h"
#include "gguf/gguf_file.h"
#include "gguf/tensor_groups.h"
#include "plan/scratch.h"
#include "quant/recipe.h"
#include <unordered_set>
#include <filesystem>
#include <thread>
#include <cstdlib>
#include "ops/int8_panel.h"
#include "ops/int8_rows.h"
#include "runtime/kv_cache.h"
#include "util/progress.h"

namespace nibble {

namespace {

constexpr int64_t kMaxCtx = int64_t{1} << 24;  // Session's limit
constexpr int64_t kDefaultCtx = 4096;          // SessionOptions::kDefaultCtx

// Heap per vocabulary string (token or merge): in the parsed GGUF metadata (a std::string in a
// vector, its text on the heap when longer than 15 bytes) and in the Tokenizer's tables. Measured
// with `nibble generate|run --memory-report` on tiny-e (21,631 strings) and a synthetic E2B
// (523,822): 33 and 80 bytes (tests/plan checks the totals).
constexpr uint64_t kMetadataHeapPerString = 33;
constexpr uint64_t kTokenizerHeapPerString = 80;
constexpr uint64_t kHeapPerTensorInfo = 200;
constexpr uint64_t kMetadataHeapFixed = 64 * 1024;

uint64_t tensor_bytes(GgmlType type, const std::vector<uint64_t>& shape) {
  uint64_t rows = 1;
  for (size_t i = 1; i < shape.size(); ++i) rows *= shape[i];
  return ggml_row_size(type, shape.empty() ? 1 : shape[0]) * rows;
}

uint64_t n_elements(const std::vector<uint64_t>& shape) {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

Result<PlanModel> from_hf_config(const Gemma4HfConfig& hf, const std::string& type,
                                 const std::string& source) {
  PlanModel m;
  m.source = source;
  // The BF16 conversion (convert/gemma4_layout), re-typed below.
  for (const auto& s : gemma4_tensor_layout(hf, hf.vocab_size, GgmlType::BF16)) {
    m.tensors.push_back({s.gguf_name, s.gguf_shape(), s.type, s.n_bytes()});
  }
  m.type_name = "BF16";
  GgufMetadata md;
  gemma4_model_metadata(hf, GgmlType::BF16, "plan", md);
  NIBBLE_ASSIGN_OR_RETURN(m.cfg, Gemma4Config::from_gguf(md));
  m.n_vocab = hf.vocab_size;
  // No tokenizer at hand: Gemma 4's (262,144 tokens, ~514k merges) as released, by estimate.
  m.n_tokens_vocab = hf.vocab_size;
  m.n_merges = hf.vocab_size == 262144 ? 514906 : 0;
  m.vocab_text_bytes = static_cast<uint64_t>(hf.vocab_size) * 7;
  m.header_bytes = static_cast<uint64_t>(m.n_tokens_vocab) * 21 + m.n_merges * 18 + 65536;
  m.header_estimated = true;
  return retype_plan_model(m, type.empty() ? "BF16" : type);
}

}  // namespace

Result<PlanModel> plan_model_from_gguf(const std::string& path) {
  NIBBLE_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> f, GgufFile::open(path));
  return plan_model_from_file(*f);
}

Result<PlanModel> plan_model_from_file(const GgufFile& file) {
  const GgufFile* f = &file;
  const std::string& path = file.path();
  const GgufMetadata& md = f->metadata();
  auto arch = md.get_string("general.architecture");
  if (!arch.ok()) return make_error(ErrorCode::kFormat, "%s: %s", path.c_str(), arch.error().message.c_str());
  if (*arch != "gemma4") {
    return make_error(ErrorCode::kUnsupported,
                      "%s: architecture '%s' is not gemma4 (nibble plans Gemma 4 models only)",
                      path.c_str(), arch->c_str());
  }
  PlanModel m;
  m.source = "GGUF " + path;
  auto cfg = Gemma4Config::from_gguf(md);
  if (!cfg.ok()) return make_error(cfg.error().code, "%s: %s", path.c_str(), cfg.error().message.c_str());
  m.cfg = std::move(*cfg);
  std::map<GgmlType, uint64_t> by_type;
  for (const auto& t : f->tensors()) {
    m.tensors.push_back({t.name, t.shape, t.type, t.n_bytes});
    if (t.shape.size() >= 2) by_type[t.type] += t.n_bytes;
  }
  const GgufTensorInfo* emb = f->find_tensor("token_embd.weight");
  if (emb == nullptr) {
    return make_error(ErrorCode::kFormat, "%s: tensor token_embd.weight is missing", path.c_str());
  }
  m.n_vocab = static_cast<int64_t>(emb->ne(1));
  GgmlType main_type = GgmlType::F32;
  uint64_t best = 0;
  for (const auto& [t, b] : by_type) {
    if (b > best) best = b, main_type = t;
  }
  m.type_name = md.contains("general.file_type")
                    ? std::string("file type ") +
                          (md.get_u32("general.file_type").ok()
                               ? std::to_string(md.get_u32("general.file_type").value())
                               : "?") +
                          ", mostly " + ggml_type_name(main_type)
                    : std::string("mostly ") + ggml_type_name(main_type);
  if (md.contains("general.file_type")) {
    auto ft = md.get_u32("general.file_type");
    if (ft.ok()) {
      for (const auto& info : ftype_table()) {
        if (static_cast<uint32_t>(info.ftype) == (*ft & 1023u)) m.type_name = info.cli_name;
      }
    }
  }
  m.header_bytes = f->data_offset();
  if (const GgufValue* toks = md.find("tokenizer.ggml.tokens"); toks != nullptr && toks->is_array()) {
    m.n_tokens_vocab = static_cast<int64_t>(toks->strings().size());
    for (const auto& s : toks->strings()) {
      m.vocab_text_bytes += s.size();
      if (s.size() > 15) m.vocab_long_text_bytes += s.size() + 1;
    }
  }
  if (const GgufValue* mg = md.find("tokenizer.ggml.merges"); mg != nullptr && mg->is_array()) {
    m.n_merges = static_cast<int64_t>(mg->strings().size());
    for (const auto& s : mg->strings()) {
      m.vocab_text_bytes += s.size();
      if (s.size() > 15) m.vocab_long_text_bytes += s.size() + 1;
    }
  }
  return m;
}

Result<PlanModel> plan_model_from_hf_dir(const std::string& dir, const std::string& type) {
  const std::string config = dir + "/config.json";
  if (!std::filesystem::exists(config)) {
    return make_error(ErrorCode::kNotFound, "'%s' is a directory without a config.json (expected a Hugging Face model directory)",
                      dir.c_str());
  }
  NIBBLE_ASSIGN_OR_RETURN(Gemma4HfConfig hf, load_gemma4_hf_config(config));
  return from_hf_config(hf, type, "HF " + dir);
}

Result<PlanModel> plan_model_from_preset(const std::string& name, const std::string& type) {
  NIBBLE_ASSIGN_OR_RETURN(Gemma4HfConfig hf, gemma4_preset(name));
  return from_hf_config(hf, type, "preset " + name);
}

bool plan_model_unquantized(const PlanModel& m) {
  for (const auto& t : m.tensors) {
    if (t.type != GgmlType::F32 && t.type != GgmlType::F16 && t.type != GgmlType::BF16) return false;
  }
  return true;
}

Result<PlanModel> retype_plan_model(const PlanModel& m, const std::string& type) {
  const std::string t = upper(type);
  PlanModel out = m;
  if (t == "F32" || t == "F16" || t == "BF16") {
    const GgmlType g = t == "F32" ? GgmlType::F32 : t == "F16" ? GgmlType::F16 : GgmlType::BF16;
    for (auto& x : out.tensors) {
      if (x.shape.size() >= 2 && x.name.find("ffn_gate_inp") == std::string::npos) {
        x.type = g;
        x.n_bytes = tensor_bytes(g, x.shape);
      }
    }
    out.type_name = t;
    return out;
  }
  const std::optional<LlamaFtype> ft = parse_ftype(t);
  if (!ft) {
    std::string known = "F32, F16, BF16";
    for (const auto& f : ftype_table()) {
      if (f.ftype != LlamaFtype::ALL_F32 && f.ftype != LlamaFtype::MOSTLY_F16 &&
          f.ftype != LlamaFtype::MOSTLY_BF16)
        known += std::string(", ") + f.cli_name;
    }
    return make_error(ErrorCode::kInvalidArgument, "--type: unknown type '%s' (known: %s)", type.c_str(),
                      known.c_str());
  }
  std::vector<std::string> names;
  for (const auto& x : m.tensors) names.push_back(x.name);
  RecipeModel rm;
  rm.arch = "gemma4";
  rm.n_layer = static_cast<uint32_t>(m.cfg.n_layer);
  rm.n_head = static_cast<uint32_t>(m.cfg.n_head);
  rm.n_head_kv = m.cfg.layers.empty() ? 0 : static_cast<uint32_t>(m.cfg.layers[0].n_head_kv);
  rm.n_expert = static_cast<uint32_t>(m.cfg.n_expert);
  rm.count_tensors(names);
  RecipeOptions opts;
  RecipeState state;
  for (size_t i : llama_quantize_order(names)) {
    PlanTensor& x = out.tensors[i];
    NIBBLE_ASSIGN_OR_RETURN(TensorChoice ch, choose_tensor_type(rm, *ft, opts, state, x.name, x.shape, x.type));
    if (ch.allowed) x.type = ch.type;
    x.n_bytes = tensor_bytes(x.type, x.shape);
  }
  out.type_name = ftype_info(*ft).cli_name;
  return out;
}

Result<PlanModel> load_plan_source(const std::string& model, const std::string& preset,
                                   const std::string& type) {
  if (model.empty() && preset.empty())
    return make_error(ErrorCode::kInvalidArgument, "give a MODEL (GGUF file or HF directory) or --preset");
  if (!model.empty() && !preset.empty())
    return make_error(ErrorCode::kInvalidArgument, "give either MODEL '%s' or --preset %s, not both",
                      model.c_str(), preset.c_str());
  if (!preset.empty()) return plan_model_from_preset(preset, type);
  std::error_code ec;
  const auto st = std::filesystem::status(model, ec);
  if (ec || !std::filesystem::exists(st))
    return make_error(ErrorCode::kNotFound, "'%s' does not exist", model.c_str());
  if (std::filesystem::is_directory(st)) return plan_model_from_hf_dir(model, type);
  if (!type.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--type %s applies to HF directories and presets; '%s' is a GGUF whose types are "
                      "in the file (plan a quantized copy with `nibble quantize` first, or use its HF dir)",
                      type.c_str(), model.c_str());
  }
  return plan_model_from_gguf(model);
}

int default_thread_count() {
  if (const char* env = std::getenv("NIBBLE_THREADS"); env != nullptr && *env != '\0') {
    const int n = std::atoi(env);
    if (n >= 1 && n <= 1024) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

Result<PlanOptions> plan_options_from_flags(int64_t ctx, bool ctx_given, int64_t batch,
                                            int64_t gpu_layers, const std::string& kv_type,
                                            const std::string& kv_type_full,
                                            const std::string& kv_type_swa, int threads) {
  PlanOptions o;
  if (ctx_given && (ctx < 1 || ctx > kMaxCtx)) {
    return make_error(ErrorCode::kInvalidArgument, "--ctx %lld is out of range [1, %lld]",
                      static_cast<long long>(ctx), static_cast<long long>(kMaxCtx));
  }
  o.n_ctx = ctx_given ? ctx : 0;
  o.n_batch = batch;
  o.gpu_layers = gpu_layers;
  if (threads < 0) return make_error(ErrorCode::kInvalidArgument, "--threads %d is negative", threads);
  o.n_threads = threads == 0 ? default_thread_count() : threads;
  if (!kv_type.empty() && (!kv_type_full.empty() || !kv_type_swa.empty())) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--kv-type sets both layer kinds; give it or --kv-type-full/--kv-type-swa, not both");
  }
  auto parse = [](const std::string& flag, const std::string& v, GgmlType& out) -> Status {
    if (v.empty()) return ok_status();
    auto t = parse_kv_type(v);
    if (!t.ok()) return make_error(ErrorCode::kInvalidArgument, "%s: %s", flag.c_str(), t.error().message.c_str());
    out = *t;
    return ok_status();
  };
  GgmlType both = o.kv_type_full;
  NIBBLE_TRY(parse("--kv-type", kv_type, both));
  o.kv_type_full = o.kv_type_swa = both;
  NIBBLE_TRY(parse("--kv-type-full", kv_type_full, o.kv_type_full));
  NIBBLE_TRY(parse("--kv-type-swa", kv_type_swa, o.kv_type_swa));
  return o;
}

const char* device_name(Device d) { return d == Device::kGpu ? "GPU" : "CPU"; }

uint64_t kv_slot_bytes(GgmlType type, int64_t n_head_kv, int64_t head_dim) {
  return 2 * static_cast<uint64_t>(n_head_kv) * ggml_row_size(type, static_cast<uint64_t>(head_dim));
}

Result<MemoryPlan> make_plan(const PlanModel& model, const PlanOptions& o) {
  const Gemma4Config& c = model.cfg;
  if (o.n_ctx < 0 || o.n_ctx > kMaxCtx) {
    return make_error(ErrorCode::kInvalidArgument, "--ctx %lld is out of range [1, %lld]",
                      static_cast<long long>(o.n_ctx), static_cast<long long>(kMaxCtx));
  }
  if (o.n_batch < 1 || o.n_batch > kMaxCtx) {
    return make_error(ErrorCode::kInvalidArgument, "--batch %lld is out of range [1, %lld]",
                      static_cast<long long>(o.n_batch), static_cast<long long>(kMaxCtx));
  }
  if (o.gpu_layers < 0) {
    return make_error(ErrorCode::kInvalidArgument, "--gpu-layers %lld is negative",
                      static_cast<long long>(o.gpu_layers));
  }
  if (o.n_threads < 1 || o.n_threads > 4096) {
    return make_error(ErrorCode::kInvalidArgument, "threads %d is out of range [1, 4096]", o.n_threads);
  }
  if (o.kv_recent < 0 || o.kv_recent > kKvRecentMax) {
    return make_error(ErrorCode::kInvalidArgument, "--kv-recent %lld is out of range (choose 0 to %lld)",
                      static_cast<long long>(o.kv_recent), static_cast<long long>(kKvRecentMax));
  }
  for (GgmlType t : {o.kv_type_full, o.kv_type_swa}) {
    if (t != GgmlType::F32 && t != GgmlType::F16 && t != GgmlType::Q8_0 && t != GgmlType::Q4_0) {
      return make_error(ErrorCode::kInvalidArgument, "KV cache type %s is not one of f32, f16, q8_0, q4_0",
                        ggml_type_name(t));
    }
  }
  for (const auto& lc : c.layers) {
    const GgmlType t = lc.is_sliding ? o.kv_type_swa : o.kv_type_full;
    const uint64_t blk = traits(t).block_size;
    if (lc.head_dim <= 0 || static_cast<uint64_t>(lc.head_dim) % blk != 0) {
      return make_error(ErrorCode::kInvalidArgument,
                        "KV cache type %s needs head sizes that are multiples of %llu, but a %s layer "
                        "has head size %lld (use f16 or f32)",
                        ggml_type_name(t), static_cast<unsigned long long>(blk),
                        lc.is_sliding ? "sliding" : "full", static_cast<long long>(lc.head_dim));
    }
  }
  MemoryPlan p;
  p.model.source = model.source;  // everything but the tensor list
  p.model.type_name = model.type_name;
  p.model.cfg = model.cfg;
  p.model.n_vocab = model.n_vocab;
  p.model.header_bytes = model.header_bytes;
  p.model.header_estimated = model.header_estimated;
  p.model.n_tokens_vocab = model.n_tokens_vocab;
  p.model.n_merges = model.n_merges;
  p.model.vocab_text_bytes = model.vocab_text_bytes;
  p.options = o;
  const int64_t train = c.n_ctx_train;
  p.n_ctx = o.n_ctx > 0 ? o.n_ctx : (train > 0 ? std::min(train, kDefaultCtx) : kDefaultCtx);
  p.n_batch = std::min(o.n_batch, p.n_ctx);
  const int64_t L = c.n_layer;
  const int64_t first_gpu = std::max<int64_t>(0, L - o.gpu_layers);
  const bool head_on_gpu = o.gpu_layers > L;

  // Weights.
  bool has_output = false;
  for (const auto& t : model.tensors) has_output |= t.name == "output.weight";
  p.head_tied = !has_output;
  std::map<std::pair<std::string, Device>, WeightGroupPlan> groups;
  int64_t int8_n_in = 0, float_n_in = 0, int8_row = 0;
  bool int8_k16 = false;
  bool int8_min = false;
  for (const auto& t : model.tensors) {
    Device dev = Device::kCpu;
    const std::optional<int> layer = tensor_layer(t.name);
    if (layer) {
      dev = *layer >= first_gpu && o.gpu_layers > 0 ? Device::kGpu : Device::kCpu;
    } else if (t.name != "token_embd.weight" && t.name != "per_layer_token_embd.weight") {
      dev = head_on_gpu ? Device::kGpu : Device::kCpu;  // output head, output norm, globals
    }
    const std::string g = tensor_group(t.name);
    WeightGroupPlan& gp = groups[{g, dev}];
    gp.group = g;
    gp.device = dev;
    gp.n_tensors += 1;
    gp.n_elements += n_elements(t.shape);
    gp.bytes += t.n_bytes;
    p.weights_bytes += t.n_bytes;
    (dev == Device::kGpu ? p.weights_gpu_bytes : p.weights_cpu_bytes) += t.n_bytes;
    if (t.shape.size() <= 1 || (t.shape.size() >= 2 && n_elements(t.shape) == t.shape[0])) {
      p.model_heap_bytes += n_elements(t.shape) * sizeof(float);  // copied to float vectors at load
    }
    if (t.shape.size() >= 2 && n_elements(t.shape) != t.shape[0] && t.name != "per_layer_token_embd.weight" &&
        !(t.name == "token_embd.weight" && has_output)) {
      const int64_t n_in = static_cast<int64_t>(t.shape[0]);
      if (int8_rows_supported(t.type) && n_in % 32 == 0) {
        int8_n_in = std::max(int8_n_in, n_in);
        int8_min |= int8_rows_have_min(t.type);
        int8_k16 |= t.type == GgmlType::Q2_K || t.type == GgmlType::Q3_K || t.type == GgmlType::Q6_K;
      } else if (t.type != GgmlType::F32) {
        float_n_in = std::max(float_n_in, n_in);
      }
    }
    if ((t.name == "per_layer_token_embd.weight" || t.name == "token_embd.weight") && t.shape.size() >= 2 &&
        int8_rows_supported(t.type)) {
      int8_row = std::max(int8_row, static_cast<int64_t>(t.shape[0]));  // weight_row via the int8 form
    }
    if (t.name == "per_layer_token_embd.weight") {
      p.ple_table_bytes = t.n_bytes;
      gp.lazy = true;
      p.lazy_bytes += t.n_bytes;
    }
    if (t.name == "output.weight") p.output_head_bytes = t.n_bytes;
    if (t.name == "token_embd.weight") {
      if (has_output) {  // only one row per token is read
        gp.lazy = true;
        p.lazy_bytes += t.n_bytes;
      } else {
        p.output_head_bytes = t.n_bytes;
        if (head_on_gpu) {  // llama.cpp loads a tied head a second time for the GPU
          WeightGroupPlan& hp = groups[{"output head (tied copy)", Device::kGpu}];
          hp.group = "output head (tied copy)";
          hp.device = Device::kGpu;
          hp.n_tensors += 1;
          hp.n_elements += n_elements(t.shape);
          hp.bytes += t.n_bytes;
          p.weights_gpu_bytes += t.n_bytes;
        }
      }
    }
  }
  for (auto& [k, g] : groups) p.weight_groups.push_back(g);
  std::sort(p.weight_groups.begin(), p.weight_groups.end(),
            [](const WeightGroupPlan& a, const WeightGroupPlan& b) {
              return a.device != b.device ? a.device < b.device : a.bytes > b.bytes;
            });

  // KV cache: runtime/kv_cache.cpp's sizing.
  std::unordered_set<std::string> names;
  for (const auto& t : model.tensors) names.insert(t.name);
  for (int64_t l = 0; l < L; ++l) {
    const Gemma4LayerConfig& lc = c.layers[static_cast<size_t>(l)];
    KvLayerPlan k;
    k.layer = static_cast<int>(l);
    k.sliding = lc.is_sliding;
    k.source_layer = lc.kv_source_layer;
    k.n_head_kv = lc.n_head_kv;
    k.head_dim = lc.head_dim;
    k.type = lc.is_sliding ? o.kv_type_swa : o.kv_type_full;
    k.device = l >= first_gpu && o.gpu_layers > 0 ? Device::kGpu : Device::kCpu;
    const std::string blk = "blk." + std::to_string(l);
    k.k_eq_v = names.count(blk + ".attn_k.weight") > 0 && names.count(blk + ".attn_v.weight") == 0;
    if (lc.owns_kv(static_cast<int>(l))) {
      const int64_t window = lc.is_sliding ? c.sliding_window : 0;
      const int64_t ring_slots = window - 1 + p.n_batch;
      k.ring = window > 0 && ring_slots < p.n_ctx;
      k.n_slots = k.ring ? ring_slots : p.n_ctx;
      k.n_recent_slots = kv_recent_slots(k.type, o.kv_recent, p.n_ctx, p.n_batch);
      k.bytes = static_cast<uint64_t>(k.n_slots) * kv_slot_bytes(k.type, k.n_head_kv, k.head_dim) +
                static_cast<uint64_t>(k.n_recent_slots) * kv_slot_bytes(GgmlType::F16, k.n_head_kv, k.head_dim);
      (lc.is_sliding ? p.kv_swa_bytes : p.kv_full_bytes) += k.bytes;
      (lc.is_sliding ? p.n_kv_swa_layers : p.n_kv_full_layers) += 1;
      (k.device == Device::kGpu ? p.kv_gpu_bytes : p.kv_cpu_bytes) += k.bytes;
    } else {
      k.k_eq_v = false;
      p.n_kv_shared_layers += 1;
    }
    p.kv_layers.push_back(k);
  }
  p.kv_bytes = p.kv_full_bytes + p.kv_swa_bytes;

  // Buffers.
  ScratchInput si;
  si.cfg = &c;
  si.n_vocab = model.n_vocab;
  si.n_batch = p.n_batch;
  si.n_ctx = o.n_ctx_used > 0 ? std::min(o.n_ctx_used, p.n_ctx) : p.n_ctx;
  si.n_threads = o.n_threads;
  si.int8_n_in_max = int8_n_in;
  si.int8_has_min = int8_min;
  si.float_n_in_max = float_n_in;
  si.int8_k_groups = int8_k16;
  si.int8_panels = panel_kernel_available();
  si.int8_row_max = int8_row;
  si.kv_q4_full = o.kv_type_full == GgmlType::Q4_0;
  si.kv_q4_swa = o.kv_type_swa == GgmlType::Q4_0;
  si.kv_quantized_full = o.kv_type_full != GgmlType::F32;
  si.kv_quantized_swa = o.kv_type_swa != GgmlType::F32;
  si.kv_rotated_full = traits(o.kv_type_full).block_size > 1;  // runtime/kv_cache.cpp: rotate_quantized
  si.kv_rotated_swa = traits(o.kv_type_swa).block_size > 1;
  si.kv_recent_full = si.kv_rotated_full && o.kv_recent > 0;  // f16 recent rows of quantized caches
  si.kv_recent_swa = si.kv_rotated_swa && o.kv_recent > 0;
  p.scratch = forward_scratch(si);
  for (const auto& s : p.scratch) p.buffers_bytes += s.bytes;
  if (o.gpu_layers > 0) p.gpu_compute_bytes = p.buffers_bytes;

  p.header_bytes = model.header_bytes;
  const uint64_t n_strings = static_cast<uint64_t>(model.n_tokens_vocab + model.n_merges);
  p.metadata_heap_bytes = n_strings * kMetadataHeapPerString + model.vocab_long_text_bytes +
                          8 * static_cast<uint64_t>(model.n_tokens_vocab) +  // scores, types
                          kHeapPerTensorInfo * model.tensors.size() + kMetadataHeapFixed;
  p.tokenizer_bytes = o.tokenizer ? n_strings * kTokenizerHeapPerString : 0;
  p.ram_with_lazy_bytes = p.weights_cpu_bytes + p.header_bytes + p.model_heap_bytes + p.kv_cpu_bytes +
                          p.buffers_bytes + p.metadata_heap_bytes + p.tokenizer_bytes;
  p.ram_bytes = p.ram_with_lazy_bytes - p.lazy_bytes;
  p.vram_bytes = p.weights_gpu_bytes + p.kv_gpu_bytes + p.gpu_compute_bytes;
  return p;
}

std::string format_count(uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string s;
  s.reserve(digits.size() + digits.size() / 3);
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) s.push_back(',');
    s.push_back(digits[i]);
  }
  return s;
}

Result<uint64_t> parse_byte_size(const std::string& text, const std::string& what) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  const std::string num = text.substr(0, i);
  std::string unit = upper(text.substr(i));
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  double v = 0;
  char* end = nullptr;
  if (!num.empty()) v = std::strtod(num.c_str(), &end);
  if (num.empty() || end != num.c_str() + num.size() || !std::isfinite(v)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "%s: '%s' is not a size (examples: 16GiB, 512MiB, 24GB)", what.c_str(), text.c_str());
  }
  double mul = 0;
  if (unit.empty() || unit == "B") mul = 1;
  else if (unit == "K" || unit == "KIB") mul = 1024.0;
  else if (unit == "M" || unit == "MIB") mul = 1024.0 * 1024;
  else if (unit == "G" || unit == "GIB") mul = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TIB") mul = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "KB") mul = 1e3;
  else if (unit == "MB") mul = 1e6;
  else if (unit == "GB") mul = 1e9;
  else if (unit == "TB") mul = 1e12;
  else {
    return make_error(ErrorCode::kInvalidArgument, "%s: unknown unit '%s' in '%s' (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)",
                      what.c_str(), unit.c_str(), text.c_str());
  }
  const double bytes = v * mul;
  if (bytes > 1e18) {
    return make_error(ErrorCode::kInvalidArgument, "%s: '%s' is too large", what.c_str(), text.c_str());
  }
  return static_cast<uint64_t>(bytes);
}

std::string format_plan(const MemoryPlan& p) {
  std::string s;
  char line[512];
  const auto& c = p.model.cfg;
  std::snprintf(line, sizeof line, "model: %s (%s), %lld layers, width %lld, vocab %s\n",
                p.model.source.c_str(), p.model.type_name.c_str(), static_cast<long long>(c.n_layer),
                static_cast<long long>(c.n_embd), format_count(static_cast<uint64_t>(p.model.n_vocab)).c_str());
  s += line;
  std::snprintf(line, sizeof line, "context %s tokens, batch %lld, KV types full %s / sliding %s, GPU layers %lld\n",
                format_count(static_cast<uint64_t>(p.n_ctx)).c_str(), static_cast<long long>(p.n_batch),
                ggml_type_name(p.options.kv_type_full), ggml_type_name(p.options.kv_type_swa),
                static_cast<long long>(p.options.gpu_layers));
  s += line;
  if (p.options.gpu_layers > 0) {
    s += "note: nibble runs on the CPU today; the GPU column is what a llama.cpp-style offload of\n"
         "      the last --gpu-layers blocks would place in VRAM.\n";
  }
  s += "\nweights\n";
  for (const auto& g : p.weight_groups) {
    std::snprintf(line, sizeof line, "  %-28s %-3s %4d tensors %14s params %12s%s\n", g.group.c_str(),
                  device_name(g.device), g.n_tensors, format_count(g.n_elements).c_str(),
                  format_bytes(g.bytes).c_str(), g.lazy ? "  lazy: paged from disk, one row per token" : "");
    s += line;
  }
  std::snprintf(line, sizeof line, "  %-28s %12s  (CPU %s, GPU %s)\n", "total", format_bytes(p.weights_bytes).c_str(),
                format_bytes(p.weights_cpu_bytes).c_str(), format_bytes(p.weights_gpu_bytes).c_str());
  s += line;
  if (p.ple_table_bytes > 0) {
    std::snprintf(line, sizeof line, "  PLE table %s: read one row per token, left on disk (lazy_bytes %s)\n",
                  format_bytes(p.ple_table_bytes).c_str(), format_count(p.lazy_bytes).c_str());
    s += line;
  }
  std::snprintf(line, sizeof line, "  output head %s%s\n", format_bytes(p.output_head_bytes).c_str(),
                p.head_tied ? " (tied: the token embedding, read whole for every output token)" : "");
  s += line;

  s += "\nKV cache\n";
  struct Agg { int n = 0; uint64_t bytes = 0; int64_t slots = 0, recent = 0, nkv = 0, d = 0; bool ring = false, keqv = false; GgmlType t{}; };
  std::map<std::string, Agg> agg;
  for (const auto& k : p.kv_layers) {
    if (k.n_slots == 0) continue;
    char key[160];
    std::snprintf(key, sizeof key, "%s kv_heads=%lld head_dim=%lld%s", k.sliding ? "sliding" : "full",
                  static_cast<long long>(k.n_head_kv), static_cast<long long>(k.head_dim), k.k_eq_v ? " K=V" : "");
    Agg& a = agg[key];
    a.n += 1;
    a.bytes += k.bytes;
    a.slots = k.n_slots;
    a.recent = k.n_recent_slots;
    a.ring = k.ring;
    a.t = k.type;
  }
  for (const auto& [key, a] : agg) {
    char recent[96] = "";
    if (a.recent > 0) {
      std::snprintf(recent, sizeof recent, " + %s f16 recent slots",
                    format_count(static_cast<uint64_t>(a.recent)).c_str());
    }
    std::snprintf(line, sizeof line, "  %-44s %2d layers x %s %s (%s)%s = %s\n", key.c_str(), a.n,
                  format_count(static_cast<uint64_t>(a.slots)).c_str(), a.ring ? "ring slots" : "slots",
                  ggml_type_name(a.t), recent, format_bytes(a.bytes).c_str());
    s += line;
  }
  if (p.options.kv_recent > 0 &&
      std::any_of(p.kv_layers.begin(), p.kv_layers.end(), [](const KvLayerPlan& k) { return k.n_recent_slots > 0; })) {
    std::snprintf(line, sizeof line,
                  "  quantized layers also keep their last %lld positions at f16 (a ring of --kv-recent + batch - 1 slots)\n",
                  static_cast<long long>(p.options.kv_recent));
    s += line;
  }
  if (p.n_kv_shared_layers > 0) {
    std::snprintf(line, sizeof line, "  %d KV-shared layers read an earlier layer's cache: 0 bytes\n",
                  p.n_kv_shared_layers);
    s += line;
  }
  bool any_keqv = false;
  for (const auto& k : p.kv_layers) any_keqv |= k.k_eq_v;
  if (any_keqv) s += "  K=V layers: V is the un-roped K projection; it is normed differently, so V is still stored\n";
  std::snprintf(line, sizeof line, "  total %s (full %s, sliding %s)\n", format_bytes(p.kv_bytes).c_str(),
                format_bytes(p.kv_full_bytes).c_str(), format_bytes(p.kv_swa_bytes).c_str());
  s += line;

  s += "\nbuffers (forward pass at a full batch, per-thread kernel scratch)\n";
  for (const auto& b : p.scratch) {
    std::snprintf(line, sizeof line, "  %-66s %12s\n", b.name.c_str(), format_bytes(b.bytes).c_str());
    s += line;
  }
  std::snprintf(line, sizeof line, "  total %s\n", format_bytes(p.buffers_bytes).c_str());
  s += line;
  std::snprintf(line, sizeof line, "\nother RAM%s: GGUF header %s, parsed metadata %s, tokenizer %s, norms copied at load %s\n",
                p.model.header_estimated ? " (header, metadata and tokenizer estimated from the vocabulary size)" : "",
                format_bytes(p.header_bytes).c_str(), format_bytes(p.metadata_heap_bytes).c_str(),
                format_bytes(p.tokenizer_bytes).c_str(), format_bytes(p.model_heap_bytes).c_str());
  s += line;
  std::snprintf(line, sizeof line, "\nRAM  %s (%s bytes; %s if every lazy row were touched; plus a few MB of code)\n",
                format_bytes(p.ram_bytes).c_str(), format_count(p.ram_bytes).c_str(),
                format_bytes(p.ram_with_lazy_bytes).c_str());
  s += line;
  std::snprintf(line, sizeof line, "VRAM %s%s\n", format_bytes(p.vram_bytes).c_str(),
                p.options.gpu_layers > 0 ? " (accounting only: nibble has no GPU backend yet)" : "");
  s += line;
  return s;
}

std::string plan_json(const MemoryPlan& p) {
  using json = nlohmann::ordered_json;
  json j;
  j["weights_bytes"] = p.weights_bytes;
  j["kv_bytes"] = p.kv_bytes;
  j["kv_full_bytes"] = p.kv_full_bytes;
  j["kv_swa_bytes"] = p.kv_swa_bytes;
  j["buffers_bytes"] = p.buffers_bytes;
  j["ram_bytes"] = p.ram_bytes;
  j["vram_bytes"] = p.vram_bytes;
  j["lazy_bytes"] = p.lazy_bytes;
  j["ram_with_lazy_bytes"] = p.ram_with_lazy_bytes;
  j["model"] = {{"source", p.model.source}, {"type", p.model.type_name},
                {"n_layer", p.model.cfg.n_layer}, {"n_embd", p.model.cfg.n_embd},
                {"n_vocab", p.model.n_vocab}, {"n_ctx_train", p.model.cfg.n_ctx_train}};
  j["options"] = {{"n_ctx", p.n_ctx}, {"n_batch", p.n_batch},
                  {"kv_type_full", ggml_type_name(p.options.kv_type_full)},
                  {"kv_type_swa", ggml_type_name(p.options.kv_type_swa)},
                  {"kv_recent", p.options.kv_recent},
                  {"gpu_layers", p.options.gpu_layers}, {"threads", p.options.n_threads},
                  {"runs_on", "cpu (GPU figures are accounting for a llama.cpp-style offload)"}};
  json w = json::array();
  for (const auto& g : p.weight_groups) {
    w.push_back({{"group", g.group}, {"device", device_name(g.device)}, {"tensors", g.n_tensors},
                 {"params", g.n_elements}, {"bytes", g.bytes}, {"lazy", g.lazy}});
  }
  j["weights"] = {{"groups", w},
                  {"cpu_bytes", p.weights_cpu_bytes},
                  {"gpu_bytes", p.weights_gpu_bytes},
                  {"ple_table_bytes", p.ple_table_bytes},
                  {"output_head_bytes", p.output_head_bytes},
                  {"output_head_tied", p.head_tied},
                  {"norms_heap_bytes", p.model_heap_bytes}};
  json kl = json::array();
  for (const auto& k : p.kv_layers) {
    kl.push_back({{"layer", k.layer}, {"kind", k.n_slots == 0 ? "shared" : k.sliding ? "sliding" : "full"},
                  {"source_layer", k.source_layer}, {"k_eq_v", k.k_eq_v}, {"n_head_kv", k.n_head_kv},
                  {"head_dim", k.head_dim}, {"slots", k.n_slots}, {"ring", k.ring},
                  {"recent_slots", k.n_recent_slots},
                  {"type", ggml_type_name(k.type)}, {"bytes", k.bytes}, {"device", device_name(k.device)}});
  }
  j["kv"] = {{"layers", kl},
             {"n_full_layers", p.n_kv_full_layers},
             {"n_sliding_layers", p.n_kv_swa_layers},
             {"n_shared_layers", p.n_kv_shared_layers},
             {"cpu_bytes", p.kv_cpu_bytes},
             {"gpu_bytes", p.kv_gpu_bytes}};
  json b = json::array();
  for (const auto& s : p.scratch) b.push_back({{"name", s.name}, {"bytes", s.bytes}});
  j["buffers"] = {{"items", b}, {"gpu_compute_bytes", p.gpu_compute_bytes}};
  j["other"] = {{"header_bytes", p.header_bytes}, {"header_estimated", p.model.header_estimated},
                {"metadata_heap_bytes", p.metadata_heap_bytes}, {"tokenizer_bytes", p.tokenizer_bytes},
                {"n_vocab_strings", p.model.n_tokens_vocab + p.model.n_merges}};
  return j.dump(2);
}

}  // namespace nibble
