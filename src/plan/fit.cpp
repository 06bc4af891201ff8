// Hardware check and the fit search (fit.h).
#include "plan/fit.h"
#include "util/cpu_features.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

namespace nibble {

namespace {

uint64_t meminfo_kb(const std::string& text, const char* key) {
  std::istringstream in(text);
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') {
      return std::strtoull(line.c_str() + n + 1, nullptr, 10);
    }
  }
  return 0;
}

std::string read_text(const char* path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct KvChoice {
  GgmlType full, swa;
  const char* name;
};
constexpr KvChoice kKvChoices[] = {
    {GgmlType::F16, GgmlType::F16, "f16"},
    {GgmlType::Q8_0, GgmlType::F16, "q8_0 full / f16 sliding"},
    {GgmlType::Q8_0, GgmlType::Q8_0, "q8_0"},
    {GgmlType::Q4_0, GgmlType::Q4_0, "q4_0"},
};

std::string gib(uint64_t b) { return format_bytes(b); }

}  // namespace

HardwareInfo probe_hardware(const std::string& nvidia_smi) {
  HardwareInfo hw;
  const std::string mi = read_text("/proc/meminfo");
  hw.ram_total_bytes = meminfo_kb(mi, "MemTotal") * 1024;
  hw.ram_available_bytes = meminfo_kb(mi, "MemAvailable") * 1024;
  hw.cpu_threads = static_cast<int>(std::thread::hardware_concurrency());
  {
    std::istringstream in(read_text("/proc/cpuinfo"));
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("model name", 0) == 0) {
        const size_t c = line.find(':');
        if (c != std::string::npos) hw.cpu_model = line.substr(c + 2);
        break;
      }
    }
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  struct F { const char* name; bool on; };
  const F feats[] = {{"sse4.2", __builtin_cpu_supports("sse4.2") != 0},
                     {"avx", __builtin_cpu_supports("avx") != 0},
                     {"avx2", __builtin_cpu_supports("avx2") != 0},
                     {"fma", __builtin_cpu_supports("fma") != 0},
                     {"f16c", cpu_has_f16c()},
                     {"avx512f", __builtin_cpu_supports("avx512f") != 0},
                     {"avx512bw", __builtin_cpu_supports("avx512bw") != 0},
                     {"avx512vnni", __builtin_cpu_supports("avx512vnni") != 0},
                     {"avx512bf16", __builtin_cpu_supports("avx512bf16") != 0}};
  for (const F& f : feats) {
    if (f.on) hw.cpu_features.push_back(f.name);
  }
#endif
  // NVIDIA GPUs: nvidia-smi's CSV (NVML's numbers). Absent: say so.
  const std::string cmd = (nvidia_smi.empty() ? std::string("nvidia-smi") : nvidia_smi) +
                          " --query-gpu=name,memory.total,memory.free --format=csv,noheader,nounits 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  int rc = -1;
  if (p != nullptr) {
    char buf[512];
    while (std::fgets(buf, sizeof buf, p) != nullptr && out.size() < 65536) out += buf;
    rc = pclose(p);
  }
  if (rc != 0) {
    hw.gpu_note = "no NVIDIA GPU found (nvidia-smi is not installed or reports none)";
  } else {
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
      // name, total MiB, free MiB
      const size_t c2 = line.rfind(','), c1 = c2 == std::string::npos ? c2 : line.rfind(',', c2 - 1);
      if (c1 == std::string::npos || c2 == std::string::npos) continue;
      GpuInfo g;
      g.name = line.substr(0, c1);
      g.total_bytes = std::strtoull(line.c_str() + c1 + 1, nullptr, 10) << 20;
      g.free_bytes = std::strtoull(line.c_str() + c2 + 1, nullptr, 10) << 20;
      hw.gpus.push_back(g);
    }
    if (hw.gpus.empty()) hw.gpu_note = "nvidia-smi reported no GPUs";
  }
  return hw;
}

std::string format_hardware(const HardwareInfo& hw) {
  std::string s = "hardware check\n";
  s += "  RAM: " + gib(hw.ram_total_bytes) + " total, " + gib(hw.ram_available_bytes) + " available\n";
  if (hw.gpus.empty()) s += "  GPU: " + hw.gpu_note + "\n";
  for (const auto& g : hw.gpus) {
    s += "  GPU: " + g.name + ", " + gib(g.total_bytes) + " total, " + gib(g.free_bytes) + " free\n";
  }
  s += "  CPU: " + (hw.cpu_model.empty() ? std::string("unknown") : hw.cpu_model) + ", " +
       std::to_string(hw.cpu_threads) + " threads";
  if (!hw.cpu_features.empty()) {
    s += ", features:";
    for (const auto& f : hw.cpu_features) s += " " + f;
  }
  s += "\n  nibble runs on the CPU today: GPU memory is planned (llama.cpp-style split) but not used.\n";
  return s;
}

const std::vector<std::string>& fit_type_candidates() {
  static const std::vector<std::string> t = {"BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K"};
  return t;
}

Result<FitResult> fit(const FitRequest& req,
                      const std::function<Result<PlanModel>(const std::string& type)>& load) {
  if (req.ctx_min < 1) {
    return make_error(ErrorCode::kInvalidArgument, "--ctx-min %lld must be >= 1", static_cast<long long>(req.ctx_min));
  }
  if (req.ram_bytes == 0) return make_error(ErrorCode::kInvalidArgument, "--ram must be more than 0 bytes");
  const std::vector<std::string> types = req.type_fixed ? std::vector<std::string>{""} : fit_type_candidates();
  std::vector<PlanModel> models;
  for (const std::string& type : types) {
    NIBBLE_ASSIGN_OR_RETURN(PlanModel m, load(type));
    models.push_back(std::move(m));
  }
  const PlanModel& m0 = models.front();
  const int64_t train = m0.cfg.n_ctx_train > 0 ? m0.cfg.n_ctx_train : 4096;
  const int64_t L = m0.cfg.n_layer;
  if (req.ctx_min > train) {
    return make_error(ErrorCode::kInvalidArgument, "--ctx-min %lld is above the model's training context %lld",
                      static_cast<long long>(req.ctx_min), static_cast<long long>(train));
  }
  std::vector<int64_t> ctxs;
  for (int64_t c = train; c >= req.ctx_min; c /= 2) ctxs.push_back(c);
  if (ctxs.back() != req.ctx_min) ctxs.push_back(req.ctx_min);
  // Types down to this one are tried at every context before a lower type is considered: below
  // Q4_K_M quality drops faster than a shorter context costs most uses.
  size_t floor = 0;
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] == "Q4_K_M") floor = i;
  }

  auto base_opts = [&](int64_t ctx, const KvChoice& kv) {
    PlanOptions o;
    o.n_ctx = ctx;
    o.n_batch = req.n_batch;
    o.kv_type_full = kv.full;
    o.kv_type_swa = kv.swa;
    o.kv_recent = req.kv_recent;
    o.n_threads = req.n_threads;
    return o;
  };
  // The plan with the most GPU layers that fit, or nothing.
  auto try_fit = [&](const PlanModel& m, int64_t ctx, const KvChoice& kv) -> std::optional<MemoryPlan> {
    PlanOptions o = base_opts(ctx, kv);
    for (int64_t g = req.vram_bytes > 0 ? L + 1 : 0; g >= 0; --g) {
      o.gpu_layers = g;
      auto p = make_plan(m, o);
      if (!p.ok()) return std::nullopt;  // e.g. a KV type the head size cannot hold
      if (p->vram_bytes <= req.vram_bytes && p->ram_bytes <= req.ram_bytes) return std::move(*p);
    }
    return std::nullopt;
  };
  // Bytes needed (RAM + VRAM, everything on the CPU) by one configuration.
  auto need = [&](const PlanModel& m, int64_t ctx, const KvChoice& kv) -> uint64_t {
    auto p = make_plan(m, base_opts(ctx, kv));
    return p.ok() ? p->ram_bytes : 0;
  };

  struct Try { size_t type; int64_t ctx; const KvChoice* kv; };
  std::vector<Try> order;
  const size_t n_types = types.size();
  for (size_t t = 0; t <= std::min(floor, n_types - 1); ++t) {  // 1. full context, f16/q8_0 KV
    for (int k = 0; k < 3; ++k) order.push_back({t, ctxs.front(), &kKvChoices[k]});
  }
  for (int64_t c : ctxs) {  // 2. shorter contexts, every KV type, types down to the floor
    for (size_t t = 0; t <= std::min(floor, n_types - 1); ++t) {
      for (const KvChoice& k : kKvChoices) order.push_back({t, c, &k});
    }
  }
  for (size_t t = floor + 1; t < n_types; ++t) {  // 3. lower types
    for (int64_t c : ctxs) {
      for (const KvChoice& k : kKvChoices) order.push_back({t, c, &k});
    }
  }
  const uint64_t budget = req.ram_bytes + req.vram_bytes;
  for (const Try& t : order) {
    const PlanModel& m = models[t.type];
    std::optional<MemoryPlan> chosen = try_fit(m, t.ctx, *t.kv);
    if (!chosen) continue;
    FitResult best;
    best.fits = true;
    best.type = m.type_name;
    best.plan = std::move(*chosen);
    if (t.type > 0) {
      best.gave_up.push_back("weights " + m.type_name + " instead of " + m0.type_name + ": " + m0.type_name +
                             " at this context and KV type needs " + gib(need(m0, t.ctx, *t.kv)) + ", the budget is " +
                             gib(budget));
    }
    if (t.ctx < train) {
      const int64_t more = std::min(train, t.ctx * 2);
      best.gave_up.push_back("context cut to " + format_count(static_cast<uint64_t>(t.ctx)) + " (the model takes " +
                             format_count(static_cast<uint64_t>(train)) + ") because " +
                             format_count(static_cast<uint64_t>(more)) + " needs " +
                             gib(need(m, more, kKvChoices[3])) + " with " + m.type_name +
                             " weights even with a q4_0 KV cache, the budget is " + gib(budget));
    }
    if (t.kv != &kKvChoices[0]) {
      auto p3 = make_plan(m, base_opts(t.ctx, kKvChoices[0]));
      best.gave_up.push_back(std::string("KV cache ") + t.kv->name + " instead of f16: an f16 cache of " +
                             format_count(static_cast<uint64_t>(t.ctx)) + " tokens is " +
                             (p3.ok() ? gib(p3->kv_bytes) : std::string("larger")) + " (total " +
                             (p3.ok() ? gib(p3->ram_bytes) : std::string("?")) + "), above the budget of " + gib(budget));
    }
    if (req.vram_bytes > 0 && best.plan.options.gpu_layers < L + 1) {
      best.gave_up.push_back(std::to_string(std::min<int64_t>(best.plan.options.gpu_layers, L)) + " of " + std::to_string(L) +
                             " layers on the GPU" + (best.plan.options.gpu_layers == L ? " (the output head stays in RAM)" : "") +
                             ": more does not fit in " + gib(req.vram_bytes) + " of VRAM; the rest runs from RAM");
    }
    if (best.plan.lazy_bytes > 0) {
      best.notes.push_back(gib(best.plan.lazy_bytes) +
                           " of PLE table stays on disk and is paged in one row per token (not counted in RAM)");
    }
    best.notes.push_back("nibble runs on the CPU today: the GPU split is what a llama.cpp-style runtime would use");
    return best;
  }
  const PlanModel& last = models.back();
  return make_error(ErrorCode::kOutOfRange,
                    "nothing fits: the smallest configuration (%s weights, context %s, q4_0 KV) needs %s, the budget is %s RAM + %s VRAM",
                    last.type_name.c_str(), format_count(static_cast<uint64_t>(req.ctx_min)).c_str(),
                    gib(need(last, req.ctx_min, kKvChoices[3])).c_str(), gib(req.ram_bytes).c_str(),
                    gib(req.vram_bytes).c_str());
}

std::string format_fit(const FitResult& r, const FitRequest& req) {
  const MemoryPlan& p = r.plan;
  std::string s = "fit for " + gib(req.ram_bytes) + " RAM" + (req.vram_bytes > 0 ? " + " + gib(req.vram_bytes) + " VRAM" : "") + "\n";
  char line[256];
  std::snprintf(line, sizeof line,
                "  weights %s, context %s, KV full %s / sliding %s, %lld of %lld layers on the GPU\n",
                r.type.c_str(), format_count(static_cast<uint64_t>(p.n_ctx)).c_str(),
                ggml_type_name(p.options.kv_type_full), ggml_type_name(p.options.kv_type_swa),
                static_cast<long long>(std::min<int64_t>(p.options.gpu_layers, p.model.cfg.n_layer)),
                static_cast<long long>(p.model.cfg.n_layer));
  s += line;
  s += "  RAM " + gib(p.ram_bytes) + ", VRAM " + gib(p.vram_bytes) + " (weights " + gib(p.weights_bytes) +
       ", KV " + gib(p.kv_bytes) + ", buffers " + gib(p.buffers_bytes) + ")\n";
  if (r.gave_up.empty()) s += "  nothing given up: best type, full context, f16 KV" + std::string(req.vram_bytes > 0 ? ", all layers on the GPU" : "") + "\n";
  for (const auto& g : r.gave_up) s += "  gave up: " + g + "\n";
  for (const auto& n : r.notes) s += "  note: " + n + "\n";
  return s;
}

std::string fit_json(const FitResult& r, const FitRequest& req, const HardwareInfo* hw) {
  nlohmann::ordered_json j;
  j["fits"] = r.fits;
  j["type"] = r.type;
  j["n_ctx"] = r.plan.n_ctx;
  j["kv_type_full"] = ggml_type_name(r.plan.options.kv_type_full);
  j["kv_type_swa"] = ggml_type_name(r.plan.options.kv_type_swa);
  j["gpu_layers"] = r.plan.options.gpu_layers;
  j["ram_budget_bytes"] = req.ram_bytes;
  j["vram_budget_bytes"] = req.vram_bytes;
  j["gave_up"] = r.gave_up;
  j["notes"] = r.notes;
  if (hw != nullptr) {
    nlohmann::ordered_json g = nlohmann::ordered_json::array();
    for (const auto& x : hw->gpus) g.push_back({{"name", x.name}, {"total_bytes", x.total_bytes}, {"free_bytes", x.free_bytes}});
    j["hardware"] = {{"ram_total_bytes", hw->ram_total_bytes}, {"ram_available_bytes", hw->ram_available_bytes},
                     {"gpus", g}, {"gpu_note", hw->gpu_note}, {"cpu_model", hw->cpu_model},
                     {"cpu_threads", hw->cpu_threads}, {"cpu_features", hw->cpu_features}};
  }
  j["plan"] = nlohmann::ordered_json::parse(plan_json(r.plan));
  return j.dump(2);
}

}  // namespace nibble
