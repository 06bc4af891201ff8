// What a run actually used, by category, to hold against the plan (`nibble run|generate
// --memory-report`): weights resident from the GGUF mapping (present pages of its tensor data,
// from /proc/self/pagemap; the lazily paged PLE table apart), the KV cache (KvCache's bytes), the
// forward pass's scratch (peak heap above what was live before evaluation), other heap (metadata,
// tokenizer, norms) and the process's peak resident set (VmHWM, as /usr/bin/time -v reports it).
//
// Heap figures need the nibble binary's counting operator new (tools/cli/heap_counter.cpp);
// without it (a library user) they read 0 and `heap_counted` is false.
#pragma once

#include <cstdint>
#include <string>

#include "model/model.h"
#include "plan/plan.h"

namespace nibble {

class KvCache;

namespace heap_stats {
// Called by the counting operator new/delete.
void on_alloc(uint64_t bytes);
void on_free(uint64_t bytes);
void set_counting(bool on);
bool counting();
uint64_t current();
uint64_t peak();
// Peak := current (start of a measured phase).
void reset_peak();
}  // namespace heap_stats

// /proc/self/status VmHWM and VmRSS in bytes (0 when unreadable).
uint64_t process_peak_rss();
uint64_t process_rss();

// Bytes of [begin, end) whose pages are present in this process's page tables (pagemap; falls
// back to mincore when pagemap is unreadable).
uint64_t resident_bytes(const void* begin, uint64_t size);

struct MemoryActual {
  uint64_t baseline_rss = 0;  // VmRSS when measuring began: code, libraries, static data
  uint64_t weights_bytes = 0;           // tensor data in the file
  uint64_t weights_resident_bytes = 0;  // of it, resident (lazy tensors included)
  uint64_t lazy_tensor_bytes = 0;       // PLE table (and an untied token embedding)
  uint64_t lazy_resident_bytes = 0;     // of it, resident: the rows touched (+ fault-around)
  uint64_t header_resident_bytes = 0;   // GGUF metadata pages
  uint64_t kv_bytes = 0, kv_full_bytes = 0, kv_swa_bytes = 0;
  bool heap_counted = false;
  uint64_t heap_before_eval = 0;  // heap live after load + session (KV included)
  uint64_t other_heap_bytes = 0;  // heap_before_eval - KV: metadata, tokenizer, norms, ...
  uint64_t scratch_bytes = 0;     // peak heap during evaluation - heap_before_eval
  uint64_t peak_rss = 0;          // VmHWM
};

// Collects the measurements of one run. Construct first thing in the command; call
// before_eval() once the session exists; finish() after the last token.
class MemoryReporter {
 public:
  MemoryReporter();
  void before_eval(const Model& model, const KvCache& kv);
  MemoryActual finish(const Model& model, const KvCache& kv) const;

 private:
  uint64_t baseline_rss_ = 0;
  uint64_t heap_before_eval_ = 0;
};

// The plan for the same model and settings (ctx, batch, KV types, threads) as the run.
// n_past: positions the run reached; tokenizer: whether the command built a Tokenizer.
Result<MemoryPlan> plan_for_run(const Model& model, const KvCache& kv, int64_t n_batch, int n_threads,
                                int64_t n_past, bool tokenizer);

// Text for people (predicted beside actual) and JSON ({"actual":{...},"predicted":{...}}).
std::string format_memory_report(const MemoryActual& a, const MemoryPlan* p);
std::string memory_report_json(const MemoryActual& a, const MemoryPlan* p);

}  // namespace nibble
