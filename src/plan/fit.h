// `nibble fit`: the best settings that fit a memory budget, and what was given up. Searches, in
// this order of priority: the weights' type (given an unquantized source: BF16, Q8_0, Q6_K,
// Q5_K_M, Q4_K_M, Q4_0, Q3_K_M, Q2_K), then the context (the model's training context, halved
// down to --ctx-min), then the KV types (f16, q8_0 for full layers, q8_0, q4_0), then as many
// layers on the GPU as its memory holds (llama.cpp-style split; nibble itself runs on the CPU).
// Also the hardware check: RAM from /proc/meminfo, NVIDIA GPUs through nvidia-smi, CPU features.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "plan/plan.h"
#include "util/result.h"

namespace nibble {

struct GpuInfo {
  std::string name;
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
};

struct HardwareInfo {
  uint64_t ram_total_bytes = 0;
  uint64_t ram_available_bytes = 0;  // MemAvailable
  std::vector<GpuInfo> gpus;
  std::string gpu_note;  // why there are none ("nvidia-smi not found", ...)
  std::string cpu_model;
  int cpu_threads = 0;
  std::vector<std::string> cpu_features;  // avx2, fma, f16c, avx512f, avx512bw, avx512vnni, ...
};

// Reads the machine. `nvidia_smi` is the command to run ("" = "nvidia-smi" on PATH).
HardwareInfo probe_hardware(const std::string& nvidia_smi = "");
std::string format_hardware(const HardwareInfo& hw);

struct FitRequest {
  uint64_t ram_bytes = 0;   // budget for RAM
  uint64_t vram_bytes = 0;  // budget for VRAM (0 = no GPU)
  int64_t ctx_min = 4096;
  int64_t n_batch = 256;
  int64_t kv_recent = 32;  // f16 recent positions of quantized KV layers (KvTypes::recent)
  int n_threads = 1;
  bool type_fixed = false;  // a quantized GGUF: its types stay
};

struct FitResult {
  bool fits = false;
  std::string type;  // weights type chosen
  MemoryPlan plan;   // the chosen settings' plan
  std::vector<std::string> gave_up;  // one sentence each, in the order of the search
  std::vector<std::string> notes;
};

// Candidate weight types, best first (used when !type_fixed).
const std::vector<std::string>& fit_type_candidates();

// `load(type)` returns the model stored as `type` ("" = as given). Errors: nothing fits (the
// message gives the smallest configuration's needs), or a load error.
Result<FitResult> fit(const FitRequest& req,
                      const std::function<Result<PlanModel>(const std::string& type)>& load);

std::string format_fit(const FitResult& r, const FitRequest& req);
std::string fit_json(const FitResult& r, const FitRequest& req, const HardwareInfo* hw);

}  // namespace nibble
