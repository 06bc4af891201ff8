// Test-side safetensors writer/reader for building synthetic checkpoints.
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace nibble::test {

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, StEntry>>& tensors) {
  nlohmann::json h = nlohmann::json::object();
  uint64_t off = 0;
  for (const auto& [name, e] : tensors) {
    h[name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {off, off + e.bytes.size()}}};
    off += e.bytes.size();
  }
  h["__metadata__"] = {{"format", "pt"}};
  std::string hs = h.dump();
  while (hs.size() % 8 != 0) hs.push_back(' ');
  std::ofstream out(path, std::ios::binary);
  uint64_t n = hs.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(hs.data(), static_cast<std::streamsize>(hs.size()));
  for (const auto& [name, e] : tensors) {
    out.write(reinterpret_cast<const char*>(e.bytes.data()), static_cast<std::streamsize>(e.bytes.size()));
  }
}

std::vector<std::pair<std::string, StEntry>> read_safetensors(const std::string& path) {
  std::vector<uint8_t> b = read_bytes(path);
  uint64_t n;
  std::memcpy(&n, b.data(), 8);
  auto h = nlohmann::json::parse(b.begin() + 8, b.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  std::vector<std::pair<std::string, StEntry>> out;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    StEntry e;
    e.dtype = it.value()["dtype"];
    e.shape = it.value()["shape"].get<std::vector<uint64_t>>();
    uint64_t s = it.value()["data_offsets"][0], t = it.value()["data_offsets"][1];
    e.bytes.assign(b.begin() + 8 + static_cast<std::ptrdiff_t>(n + s), b.begin() + 8 + static_cast<std::ptrdiff_t>(n + t));
    out.emplace_back(it.key(), std::move(e));
  }
  return out;
}

}  // namespace nibble::test
