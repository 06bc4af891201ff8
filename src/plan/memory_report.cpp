// Measured memory of a run (memory_report.h).
#include "plan/memory_report.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "runtime/kv_cache.h"
#include "util/thread_pool.h"

namespace nibble {

namespace heap_stats {
namespace {
std::atomic<int64_t> g_current{0};
std::atomic<int64_t> g_peak{0};
std::atomic<bool> g_counting{false};
}  // namespace

void on_alloc(uint64_t bytes) {
  const int64_t now = g_current.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed) +
                      static_cast<int64_t>(bytes);
  int64_t p = g_peak.load(std::memory_order_relaxed);
  while (now > p && !g_peak.compare_exchange_weak(p, now, std::memory_order_relaxed)) {
  }
}
void on_free(uint64_t bytes) {
  g_current.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_relaxed);
}
void set_counting(bool on) { g_counting.store(on); }
bool counting() { return g_counting.load(); }
uint64_t current() { return static_cast<uint64_t>(std::max<int64_t>(0, g_current.load())); }
uint64_t peak() { return static_cast<uint64_t>(std::max<int64_t>(0, g_peak.load())); }
void reset_peak() { g_peak.store(g_current.load()); }
}  // namespace heap_stats

namespace {

uint64_t status_field(const char* name) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  uint64_t kb = 0;
  const size_t n = std::strlen(name);
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, name, n) == 0 && line[n] == ':') {
      unsigned long long v = 0;
      if (std::sscanf(line + n + 1, "%llu", &v) == 1) kb = v;
      break;
    }
  }
  std::fclose(f);
  return kb * 1024;
}

bool is_lazy(const std::string& name, bool has_output) {
  return name == "per_layer_token_embd.weight" || (has_output && name == "token_embd.weight");
}

}  // namespace

uint64_t process_peak_rss() { return status_field("VmHWM"); }
uint64_t process_rss() { return status_field("VmRSS"); }

uint64_t resident_bytes(const void* begin, uint64_t size) {
  if (size == 0) return 0;
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t a = reinterpret_cast<uintptr_t>(begin);
  const uint64_t first = a / page, last = (a + size - 1) / page;
  const uint64_t n_pages = last - first + 1;
  std::vector<uint64_t> entries(static_cast<size_t>(std::min<uint64_t>(n_pages, 1u << 16)));
  const int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  uint64_t resident = 0;
  auto count_page = [&](uint64_t pg) {
    // The part of page pg inside [a, a + size).
    const uint64_t lo = std::max(pg * page, a), hi = std::min((pg + 1) * page, a + size);
    resident += hi - lo;
  };
  if (fd >= 0) {
    bool ok = true;
    for (uint64_t done = 0; done < n_pages && ok;) {
      const uint64_t n = std::min<uint64_t>(entries.size(), n_pages - done);
      const ssize_t got = pread(fd, entries.data(), n * 8, static_cast<off_t>((first + done) * 8));
      if (got != static_cast<ssize_t>(n * 8)) {
        ok = false;
        break;
      }
      for (uint64_t i = 0; i < n; ++i) {
        if ((entries[i] >> 63) & 1) count_page(first + done + i);
      }
      done += n;
    }
    close(fd);
    if (ok) return resident;
    resident = 0;
  }
  // mincore: resident in the page cache (an upper bound of what this process touched).
  std::vector<unsigned char> vec(static_cast<size_t>(n_pages));
  if (mincore(reinterpret_cast<void*>(first * page), n_pages * page, vec.data()) != 0) return 0;
  for (uint64_t i = 0; i < n_pages; ++i) {
    if (vec[i] & 1) count_page(first + i);
  }
  return resident;
}

MemoryReporter::MemoryReporter() : baseline_rss_(process_rss()) {}

void MemoryReporter::before_eval(const Model&, const KvCache&) {
  heap_before_eval_ = heap_stats::current();
  heap_stats::reset_peak();
}

MemoryActual MemoryReporter::finish(const Model& model, const KvCache& kv) const {
  MemoryActual a;
  a.peak_rss = process_peak_rss();  // first: nothing below allocates much, but be safe
  a.baseline_rss = baseline_rss_;
  a.heap_counted = heap_stats::counting();
  if (a.heap_counted) {
    a.heap_before_eval = heap_before_eval_;
    a.scratch_bytes = heap_stats::peak() > heap_before_eval_ ? heap_stats::peak() - heap_before_eval_ : 0;
  }
  a.kv_bytes = kv.size_bytes();
  a.kv_full_bytes = kv.kv_bytes_full();
  a.kv_swa_bytes = kv.kv_bytes_swa();
  a.other_heap_bytes = a.heap_before_eval > a.kv_bytes ? a.heap_before_eval - a.kv_bytes : 0;
  const GgufFile& f = model.file();
  bool has_output = f.find_tensor("output.weight") != nullptr;
  const uint8_t* data_begin = nullptr;
  for (const auto& t : f.tensors()) {
    if (t.data == nullptr) continue;
    a.weights_bytes += t.n_bytes;
    if (data_begin == nullptr || t.data < data_begin) data_begin = t.data;
    if (is_lazy(t.name, has_output)) {
      a.lazy_tensor_bytes += t.n_bytes;
      a.lazy_resident_bytes += resident_bytes(t.data, t.n_bytes);
    }
  }
  uint64_t span = 0;
  for (const auto& t : f.tensors()) {
    if (t.data != nullptr) span = std::max<uint64_t>(span, static_cast<uint64_t>(t.data - data_begin) + t.n_bytes);
  }
  if (data_begin != nullptr) {
    a.weights_resident_bytes = resident_bytes(data_begin, span);
    const uint8_t* file_begin = data_begin - f.data_offset();
    a.header_resident_bytes = resident_bytes(file_begin, f.data_offset());
  }
  return a;
}

Result<MemoryPlan> plan_for_run(const Model& model, const KvCache& kv, int64_t n_batch, int n_threads,
                                int64_t n_past, bool tokenizer) {
  NIBBLE_ASSIGN_OR_RETURN(PlanModel pm, plan_model_from_file(model.file()));
  PlanOptions o;
  o.n_ctx = kv.n_ctx();
  o.n_batch = n_batch;
  o.kv_type_full = kv.types().full;
  o.kv_type_swa = kv.types().swa;
  o.kv_recent = kv.types().recent;
  o.n_threads = n_threads;
  o.n_ctx_used = n_past;
  o.tokenizer = tokenizer;
  return make_plan(pm, o);
}

namespace {

double pct(uint64_t actual, uint64_t predicted) {
  if (predicted == 0) return actual == 0 ? 0.0 : 100.0;
  return 100.0 * (static_cast<double>(actual) - static_cast<double>(predicted)) / static_cast<double>(predicted);
}

uint64_t actual_ram(const MemoryActual& a) { return a.peak_rss > a.baseline_rss ? a.peak_rss - a.baseline_rss : 0; }
uint64_t actual_ram_no_lazy(const MemoryActual& a) {
  const uint64_t r = actual_ram(a);
  return r > a.lazy_resident_bytes ? r - a.lazy_resident_bytes : 0;
}
// Each category at its own peak, lazily paged rows excluded: what the plan's ram_bytes predicts.
uint64_t category_sum(const MemoryActual& a) {
  return a.weights_resident_bytes - a.lazy_resident_bytes + a.header_resident_bytes + a.kv_bytes +
         a.scratch_bytes + a.other_heap_bytes;
}

}  // namespace

std::string format_memory_report(const MemoryActual& a, const MemoryPlan* p) {
  std::string s = "memory report (actual peak by category";
  s += p != nullptr ? ", beside the plan)\n" : ")\n";
  char line[256];
  auto row = [&](const char* what, uint64_t actual, std::optional<uint64_t> predicted) {
    if (predicted) {
      std::snprintf(line, sizeof line, "  %-34s %14s  plan %14s  (%+.2f%%)\n", what, format_count(actual).c_str(),
                    format_count(*predicted).c_str(), pct(actual, *predicted));
    } else {
      std::snprintf(line, sizeof line, "  %-34s %14s\n", what, format_count(actual).c_str());
    }
    s += line;
  };
  using O = std::optional<uint64_t>;
  row("weights resident (non-lazy)", a.weights_resident_bytes - a.lazy_resident_bytes,
      p ? O(p->weights_cpu_bytes - p->lazy_bytes) : O());
  row("lazy tensors resident (rows read)", a.lazy_resident_bytes, O());
  row("lazy tensors in the file", a.lazy_tensor_bytes, p ? O(p->lazy_bytes) : O());
  row("GGUF header resident", a.header_resident_bytes, p ? O(p->header_bytes) : O());
  row("KV cache", a.kv_bytes, p ? O(p->kv_bytes) : O());
  row("  full-attention layers", a.kv_full_bytes, p ? O(p->kv_full_bytes) : O());
  row("  sliding-window layers", a.kv_swa_bytes, p ? O(p->kv_swa_bytes) : O());
  if (a.heap_counted) {
    row("scratch (peak heap during eval)", a.scratch_bytes, p ? O(p->buffers_bytes) : O());
    row("other heap (metadata, tokenizer)", a.other_heap_bytes,
        p ? O(p->metadata_heap_bytes + p->tokenizer_bytes + p->model_heap_bytes) : O());
  } else {
    s += "  (heap not counted: built without nibble's counting allocator)\n";
  }
  row("code and libraries (RSS at start)", a.baseline_rss, O());
  row("process peak RSS (VmHWM)", a.peak_rss, O());
  row("peak RSS minus code", actual_ram(a), O());
  row("categories summed (lazy rows apart)", category_sum(a), p ? O(p->ram_bytes) : O());
  row("peak RSS - code - lazy rows", actual_ram_no_lazy(a), p ? O(p->ram_bytes) : O());
  s += "  (the plan adds each category at its own peak; lazily paged rows are reported apart)\n";
  return s;
}

std::string memory_report_json(const MemoryActual& a, const MemoryPlan* p) {
  nlohmann::ordered_json j;
  j["actual"] = {{"weights_bytes", a.weights_bytes},
                 {"weights_resident_bytes", a.weights_resident_bytes},
                 {"lazy_tensor_bytes", a.lazy_tensor_bytes},
                 {"lazy_resident_bytes", a.lazy_resident_bytes},
                 {"header_resident_bytes", a.header_resident_bytes},
                 {"kv_bytes", a.kv_bytes},
                 {"kv_full_bytes", a.kv_full_bytes},
                 {"kv_swa_bytes", a.kv_swa_bytes},
                 {"heap_counted", a.heap_counted},
                 {"heap_before_eval_bytes", a.heap_before_eval},
                 {"other_heap_bytes", a.other_heap_bytes},
                 {"buffers_bytes", a.scratch_bytes},
                 {"baseline_rss_bytes", a.baseline_rss},
                 {"peak_rss_bytes", a.peak_rss},
                 {"ram_bytes", actual_ram(a)},
                 {"ram_bytes_without_lazy", actual_ram_no_lazy(a)},
                 {"category_sum_bytes", category_sum(a)}};
  if (p != nullptr) {
    j["predicted"] = nlohmann::ordered_json::parse(plan_json(*p));
  }
  return j.dump(2);
}

}  // namespace nibble
