// Memory planning: what a Gemma 4 model needs in RAM (and, with a GPU layer split, VRAM) before
// anything is loaded. A PlanModel describes a model by its tensors (names, shapes, storage types)
// and its per-layer config; it comes from a GGUF header (the tensor data is never read), a
// Hugging Face config.json plus a file type (llama-quantize's recipe tables), or a preset.
// make_plan() turns it into bytes: weights by tensor group and device (PLE table and output head
// called out), the KV cache per layer with the runtime's exact sizing (runtime/kv_cache.h: full
// layers hold the whole context, sliding layers a ring of window - 1 + n_batch slots, KV-shared
// layers nothing), the forward pass's scratch buffers (plan/scratch.h), and totals.
//
// nibble runs on the CPU today. The GPU split (--gpu-layers) is accounted the way llama.cpp
// offloads (the last N blocks, their KV; the output head when N > n_layer, as a second copy when
// it is tied to the input embedding; the input embeddings stay in RAM) so a plan for a GPU
// runtime can be read off, but nothing in nibble puts bytes on a GPU yet.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "tensor/ggml_type.h"
#include "util/progress.h"
#include "util/result.h"

namespace nibble {

class GgufFile;

struct PlanTensor {
  std::string name;
  std::vector<uint64_t> shape;  // GGUF order (ne[0] first)
  GgmlType type = GgmlType::F32;
  uint64_t n_bytes = 0;
};

struct PlanModel {
  std::string source;     // "GGUF x.gguf", "HF dir d", "preset e2b"
  std::string type_name;  // what the weights are stored as: "Q4_0", "BF16", "mixed" ...
  Gemma4Config cfg;
  int64_t n_vocab = 0;
  std::vector<PlanTensor> tensors;
  // Bytes of the GGUF before the tensor data (metadata, tokenizer): mapped and read at load.
  uint64_t header_bytes = 0;
  bool header_estimated = false;  // true when not from a real file
  // Tokenizer: number of tokens and bytes of their text (its in-memory size is modelled from it).
  int64_t n_tokens_vocab = 0;
  int64_t n_merges = 0;
  uint64_t vocab_text_bytes = 0;
  uint64_t vocab_long_text_bytes = 0;  // text of strings too long for the small-string buffer
};

// Reads a GGUF's header only (metadata and tensor table; no tensor data is read).
Result<PlanModel> plan_model_from_gguf(const std::string& path);
// The same from an open file (a loaded model's: nothing is read again).
Result<PlanModel> plan_model_from_file(const GgufFile& file);
// A Hugging Face Gemma 4 directory (config.json) stored as `type`: "F32", "F16", "BF16" or any
// llama-quantize file type nibble covers ("Q4_0", "Q4_K_M", "SFP8", ...; quant/recipe.h),
// applied to the BF16 conversion as `nibble quantize` would.
Result<PlanModel> plan_model_from_hf_dir(const std::string& dir, const std::string& type);
// One of the released variants (convert/gemma4_presets.h): "e2b", "e4b", "31b", "26b-a4b".
Result<PlanModel> plan_model_from_preset(const std::string& name, const std::string& type);

struct PlanOptions {
  int64_t n_ctx = 0;  // 0: the model's training context capped at 4096 (as Session does)
  int64_t n_batch = 256;
  GgmlType kv_type_full = GgmlType::F16;  // runtime/session.h defaults
  GgmlType kv_type_swa = GgmlType::F16;
  int64_t kv_recent = 32;  // positions a q8_0 / q4_0 layer also keeps at f16 (KvTypes::recent)
  int64_t gpu_layers = 0;  // llama.cpp's -ngl: 0 = all on the CPU; > n_layer also offloads the head
  int n_threads = 1;       // threads whose per-thread scratch is counted
  bool tokenizer = true;   // a Tokenizer is built (run, chat); generate/bench keep only metadata
  int64_t n_ctx_used = 0;  // positions actually reached (a report of a run); 0 = the whole context
};

enum class Device { kCpu, kGpu };
const char* device_name(Device d);

struct WeightGroupPlan {
  std::string group;  // gguf/tensor_groups.h names
  Device device = Device::kCpu;
  int n_tensors = 0;
  uint64_t n_elements = 0;
  uint64_t bytes = 0;
  bool lazy = false;  // left paged from disk: one row is read per token
};

struct KvLayerPlan {
  int layer = 0;
  bool sliding = false;
  int source_layer = 0;  // == layer when it owns its cache
  bool k_eq_v = false;   // attention_k_eq_v: V is the un-roped K projection, still stored
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t n_slots = 0;   // 0 for KV-shared layers
  bool ring = false;
  GgmlType type = GgmlType::F32;
  int64_t n_recent_slots = 0;  // f16 recent ring of a quantized layer (runtime kv_recent_slots)
  uint64_t bytes = 0;    // K + V, the recent ring included
  Device device = Device::kCpu;
};

struct ScratchItem {
  std::string name;  // "h", "attention q", ...
  uint64_t bytes = 0;
};

struct MemoryPlan {
  PlanModel model;  // (tensors cleared to keep plans small)
  PlanOptions options;
  int64_t n_ctx = 0;    // resolved
  int64_t n_batch = 0;  // resolved (<= n_ctx)

  std::vector<WeightGroupPlan> weight_groups;
  uint64_t weights_bytes = 0;       // every tensor
  uint64_t weights_cpu_bytes = 0;
  uint64_t weights_gpu_bytes = 0;   // includes a duplicated tied head
  uint64_t lazy_bytes = 0;          // part of weights_cpu_bytes left on disk until touched
  uint64_t ple_table_bytes = 0;
  uint64_t output_head_bytes = 0;   // the tied embedding when there is no output.weight
  bool head_tied = true;
  uint64_t model_heap_bytes = 0;    // 1-D tensors copied to float vectors at load

  std::vector<KvLayerPlan> kv_layers;
  uint64_t kv_bytes = 0, kv_full_bytes = 0, kv_swa_bytes = 0;
  uint64_t kv_cpu_bytes = 0, kv_gpu_bytes = 0;
  int n_kv_full_layers = 0, n_kv_swa_layers = 0, n_kv_shared_layers = 0;

  std::vector<ScratchItem> scratch;  // the peak set of live forward-pass buffers
  uint64_t buffers_bytes = 0;        // CPU scratch + logits
  uint64_t gpu_compute_bytes = 0;    // estimate for a GPU runtime (same formula), 0 without offload

  uint64_t header_bytes = 0;     // GGUF metadata pages read at load
  uint64_t metadata_heap_bytes = 0;  // parsed GGUF metadata and tensor table (modelled)
  uint64_t tokenizer_bytes = 0;      // the Tokenizer's tables (modelled; 0 without one)

  // RAM: resident weights on the CPU (lazy excluded) + header + model heap + CPU KV + buffers +
  // tokenizer. Code and libraries are not included (a few MB).
  uint64_t ram_bytes = 0;
  uint64_t ram_with_lazy_bytes = 0;  // if every lazily paged row were touched
  uint64_t vram_bytes = 0;           // GPU weights + GPU KV + GPU compute buffer
};

// Checks the options (context >= 1 and <= 2^24, batch >= 1, gpu_layers >= 0, KV types) and
// computes the plan. Errors name the option and the numbers.
Result<MemoryPlan> make_plan(const PlanModel& model, const PlanOptions& options);

// KV bytes of one cache slot (K + V) of `n_head_kv * head_dim` elements stored as `type`.
uint64_t kv_slot_bytes(GgmlType type, int64_t n_head_kv, int64_t head_dim);

// Text for people: weights by group and device, KV per layer type, buffers, totals.
std::string format_plan(const MemoryPlan& plan);
// JSON text with weights_bytes, kv_bytes, kv_full_bytes, kv_swa_bytes, buffers_bytes, ram_bytes,
// vram_bytes, lazy_bytes and the details.
std::string plan_json(const MemoryPlan& plan);

// The model stored as `type` (F32/F16/BF16 or a llama-quantize type), recomputed from an
// unquantized model's tensor list with the recipe tables.
Result<PlanModel> retype_plan_model(const PlanModel& m, const std::string& type);
// True when every matrix is F32, F16 or BF16 (a source `fit` may choose a quant type for).
bool plan_model_unquantized(const PlanModel& m);

// The command-line front: MODEL (a GGUF file or an HF directory) or a preset name, exactly one.
// `type` applies to HF directories and presets only. Errors name the flag and the value.
Result<PlanModel> load_plan_source(const std::string& model, const std::string& preset,
                                   const std::string& type);
// Options from flags: ctx must be >= 1 when given (ctx_given); --kv-type excludes
// --kv-type-full/--kv-type-swa; threads 0 = nibble's default ($NIBBLE_THREADS, else the cores).
Result<PlanOptions> plan_options_from_flags(int64_t ctx, bool ctx_given, int64_t batch,
                                            int64_t gpu_layers, const std::string& kv_type,
                                            const std::string& kv_type_full,
                                            const std::string& kv_type_swa, int threads);
// The thread count nibble's pool would use ($NIBBLE_THREADS, else hardware concurrency).
int default_thread_count();

// "262,144" (format_bytes is util/progress.h's).
std::string format_count(uint64_t n);
// Parses "16GiB", "16G", "512MiB", "1.5GB", "1000000" (bytes). GB = 10^9, GiB/G = 2^30.
Result<uint64_t> parse_byte_size(const std::string& text, const std::string& what);

}  // namespace nibble
