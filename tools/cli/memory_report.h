// --memory-report / --memory-report-json for the model-running commands (run, generate, bench):
// actual peak memory by category after the run, beside the plan (src/plan/memory_report.h).
// Usage: add_memory_report_options(cmd, flags); construct a MemoryReporter first thing in the
// command; reporter.before_eval(model, session.kv_cache()) once the session exists;
// emit_memory_report(...) after the last token.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "plan/memory_report.h"
#include "runtime/kv_cache.h"
#include "util/atomic_file.h"
#include "util/thread_pool.h"

namespace nibble::cli {

struct MemoryReportFlags {
  bool text = false;      // --memory-report: a table on stderr
  std::string json_path;  // --memory-report-json PATH ('-' = stderr)
  bool enabled() const { return text || !json_path.empty(); }
};

inline void add_memory_report_options(CLI::App* cmd, MemoryReportFlags& f) {
  cmd->add_flag("--memory-report", f.text,
                "After the run, print actual peak memory by category beside the plan (stderr)");
  cmd->add_option("--memory-report-json", f.json_path,
                  "Write the memory report as JSON to PATH ('-' = stderr)");
}

// Prints / writes the report. Returns an error message, or "" on success.
// n_past: positions the run reached; tokenizer: whether the command built a Tokenizer.
inline std::string emit_memory_report(const MemoryReportFlags& f, const MemoryReporter& r,
                                      const Model& model, const KvCache& kv, int64_t n_past,
                                      bool tokenizer) {
  if (!f.enabled()) return "";
  const MemoryActual a = r.finish(model, kv);
  auto plan = plan_for_run(model, kv, kv.n_batch_max(), pool_threads(), n_past, tokenizer);
  const MemoryPlan* p = plan.ok() ? &plan.value() : nullptr;
  if (!plan.ok()) std::fprintf(stderr, "nibble: memory report without a plan: %s\n", plan.error().message.c_str());
  if (f.text) std::fputs(format_memory_report(a, p).c_str(), stderr);
  if (!f.json_path.empty()) {
    const std::string j = memory_report_json(a, p) + "\n";
    if (f.json_path == "-") {
      std::fputs(j.c_str(), stderr);
    } else {
      auto file = AtomicFile::create(f.json_path);
      if (!file.ok()) return "--memory-report-json: " + file.error().message;
      Status st = file->write(reinterpret_cast<const uint8_t*>(j.data()), j.size());
      if (st.ok()) st = file->commit();
      if (!st.ok()) return "--memory-report-json: " + st.error().message;
    }
  }
  return "";
}

}  // namespace nibble::cli
