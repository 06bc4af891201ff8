#include "ops/matmul_profile.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <mutex>
#include <tuple>

namespace nibble {
namespace {

using Key = std::tuple<std::string, int, int64_t, int64_t>;  // role, type, n_in, n_out

struct Recorder {
  std::atomic<bool> on{false};
  std::mutex mu;
  std::map<Key, MatmulProfileEntry> entries;
};

Recorder& recorder() {
  static Recorder r;
  return r;
}

}  // namespace

std::string matmul_profile_role(const char* tensor_name) {
  if (tensor_name == nullptr || *tensor_name == '\0') return "(unnamed)";
  const std::string name(tensor_name);
  if (name.rfind("blk.", 0) != 0) return name;
  size_t end = 4;
  while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end])) != 0) ++end;
  if (end == 4 || end >= name.size() || name[end] != '.') return name;
  return "blk.*" + name.substr(end);
}

void matmul_profile_enable(bool on) {
  Recorder& r = recorder();
  std::lock_guard<std::mutex> lock(r.mu);
  if (on) r.entries.clear();
  r.on.store(on, std::memory_order_relaxed);
}

bool matmul_profile_enabled() { return recorder().on.load(std::memory_order_relaxed); }

void matmul_profile_record(const WeightMatrix& w, double seconds) {
  Recorder& r = recorder();
  std::string role = matmul_profile_role(w.name);
  const Key key{role, static_cast<int>(w.type), w.n_in, w.n_out};
  std::lock_guard<std::mutex> lock(r.mu);
  MatmulProfileEntry& e = r.entries[key];
  if (e.calls == 0) {
    e.role = std::move(role);
    e.type = w.type;
    e.n_in = w.n_in;
    e.n_out = w.n_out;
  }
  e.calls += 1;
  e.seconds += seconds;
  e.bytes += static_cast<double>(w.row_bytes) * static_cast<double>(w.n_out);
}

std::vector<MatmulProfileEntry> matmul_profile_entries() {
  Recorder& r = recorder();
  std::vector<MatmulProfileEntry> out;
  {
    std::lock_guard<std::mutex> lock(r.mu);
    for (const auto& [key, e] : r.entries) out.push_back(e);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const MatmulProfileEntry& a, const MatmulProfileEntry& b) {
                     return a.seconds > b.seconds;
                   });
  return out;
}

}  // namespace nibble
