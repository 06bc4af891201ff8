// nibble inspect FILE.gguf [--json]: metadata, tensors, totals and bits per weight by group, which
// tensors use nibble's SFP8 extension, and which lie on a Q4_0 grid (QAT checkpoints).
#include <cinttypes>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "gguf/gguf_file.h"
#include "gguf/tensor_groups.h"
#include "quant/grid_check.h"
#include "util/progress.h"

namespace nibble::cli {
namespace {

using json = nlohmann::json;

json scalar_json(GgufType t, const GgufValue& v, uint64_t i, bool in_array) {
  switch (t) {
    case GgufType::kFloat32: case GgufType::kFloat64:
      return in_array ? v.element<double>(i) : v.as<double>();
    case GgufType::kBool:
      return in_array ? v.element<int>(i) != 0 : v.as<int>() != 0;
    case GgufType::kInt8: case GgufType::kInt16: case GgufType::kInt32: case GgufType::kInt64:
      return in_array ? v.element<int64_t>(i) : v.as<int64_t>();
    default:
      return in_array ? v.element<uint64_t>(i) : v.as<uint64_t>();
  }
}

json value_json(const GgufValue& v) {
  if (v.type() == GgufType::kString) return v.string();
  if (!v.is_array()) return scalar_json(v.type(), v, 0, false);
  json a = json::array();
  if (v.array_type() == GgufType::kString) {
    for (const auto& s : v.strings()) a.push_back(s);
  } else {
    for (uint64_t i = 0; i < v.array_size(); ++i) a.push_back(scalar_json(v.array_type(), v, i, true));
  }
  return a;
}

std::string shape_string(const GgufTensorInfo& t) {
  std::string s = "[";
  for (size_t i = 0; i < t.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
  return s + "]";
}

// QAT check (quant/grid_check.h): how many quantizable float tensors already lie on a Q4_0 grid.
void print_qat(const GgufFile& g) {
  const QatReport qat = check_qat_file(g);
  if (qat.tensors.empty()) return;
  const uint64_t n = qat.tensors.size(), lossless = qat.n_lossless(), on_grid = qat.n_on_grid();
  std::printf("\n%llu of %llu quantizable tensors lie on a Q4_0 grid (QAT): Q4_0 is lossless for them\n",
              static_cast<unsigned long long>(lossless), static_cast<unsigned long long>(n));
  if (on_grid > lossless) {
    std::printf("  %llu more lie on a Q4_0 grid, but in some block the largest value is not at -8*d, so the "
                "Q4_0 quantizer picks another scale: not lossless\n",
                static_cast<unsigned long long>(on_grid - lossless));
  }
  if (lossless == 0) return;
  std::map<std::string, std::pair<uint64_t, uint64_t>> groups;  // group -> (lossless, checked)
  for (const auto& t : qat.tensors) {
    auto& e = groups[tensor_group(t.name)];
    e.first += t.lossless;
    e.second += 1;
  }
  for (const auto& [name, e] : groups) {
    std::printf("  %-28s %llu of %llu on a Q4_0 grid\n", name.c_str(), static_cast<unsigned long long>(e.first),
                static_cast<unsigned long long>(e.second));
  }
}

int run(const std::string& path, bool as_json) {
  auto f = GgufFile::open(path);
  if (!f.ok()) return fail("inspect: " + f.error().message);
  const GgufFile& g = *f.value();
  if (as_json) {
    json out;
    out["version"] = g.version();
    out["alignment"] = g.alignment();
    out["data_offset"] = g.data_offset();
    json md = json::object();
    for (const auto& [k, v] : g.metadata().entries()) md[k] = value_json(v);
    out["metadata"] = md;
    json ts = json::array();
    for (const auto& t : g.tensors()) {
      json e = {{"name", t.name}, {"type", ggml_type_name(t.type)}, {"shape", t.shape},
                {"offset", t.offset}, {"bytes", t.n_bytes}};
      if (is_nibble_extension(t.type)) e["nibble_extension"] = true;
      ts.push_back(e);
    }
    out["tensors"] = ts;
    const QatReport qat = check_qat_file(g);
    json on_grid = json::array(), lossless = json::array();
    for (const auto& t : qat.tensors) {
      if (t.on_grid) on_grid.push_back(t.name);
      if (t.lossless) lossless.push_back(t.name);
    }
    out["q4_0_grid"] = {{"checked", qat.tensors.size()}, {"on_grid", on_grid}, {"lossless", lossless}};
    std::string s;
    try {
      s = out.dump(1, ' ', false, json::error_handler_t::replace);
    } catch (const json::exception& e) {
      return fail(std::string("inspect: cannot render JSON: ") + e.what());
    }
    std::printf("%s\n", s.c_str());
    return 0;
  }
  std::printf("%s: GGUF v%u, %zu metadata keys, %zu tensors, alignment %llu, data at byte %llu\n\n",
              path.c_str(), g.version(), g.metadata().size(), g.tensors().size(),
              static_cast<unsigned long long>(g.alignment()),
              static_cast<unsigned long long>(g.data_offset()));
  std::printf("metadata:\n");
  for (const auto& [k, v] : g.metadata().entries()) {
    std::printf("  %-48s %s\n", k.c_str(), v.to_display_string().c_str());
  }
  std::printf("\ntensors:\n  %-40s %-8s %-24s %12s\n", "name", "type", "shape", "bytes");
  struct Group { uint64_t params = 0, bytes = 0, tensors = 0; };
  std::map<std::string, Group> groups;
  uint64_t total_params = 0, total_bytes = 0, n_extension = 0;
  for (const auto& t : g.tensors()) {
    const bool ext = is_nibble_extension(t.type);
    n_extension += ext;
    std::printf("  %-40s %-8s %-24s %12llu\n", t.name.c_str(),
                (std::string(ggml_type_name(t.type)) + (ext ? "*" : "")).c_str(),
                shape_string(t).c_str(), static_cast<unsigned long long>(t.n_bytes));
    auto& grp = groups[tensor_group(t.name)];
    grp.params += t.n_elements;
    grp.bytes += t.n_bytes;
    grp.tensors += 1;
    total_params += t.n_elements;
    total_bytes += t.n_bytes;
  }
  std::printf("\nby group:\n  %-28s %8s %14s %12s %8s\n", "group", "tensors", "parameters", "size", "bits/w");
  for (const auto& [name, grp] : groups) {
    std::printf("  %-28s %8llu %14llu %12s %8.3f\n", name.c_str(),
                static_cast<unsigned long long>(grp.tensors), static_cast<unsigned long long>(grp.params),
                format_bytes(grp.bytes).c_str(), grp.params ? 8.0 * grp.bytes / grp.params : 0.0);
  }
  std::printf("  %-28s %8zu %14llu %12s %8.3f\n", "total", g.tensors().size(),
              static_cast<unsigned long long>(total_params), format_bytes(total_bytes).c_str(),
              total_params ? 8.0 * total_bytes / total_params : 0.0);
  std::printf("\nfile size: %s\n", format_bytes(g.file_size()).c_str());
  if (n_extension > 0) {
    std::printf("\n* nibble extension: %llu tensors are SFP8 (GGUF type %u, gemma.cpp's 8-bit format); "
                "llama.cpp and Ollama cannot read this file\n",
                static_cast<unsigned long long>(n_extension), kNibbleSfp8TypeId);
  }
  print_qat(g);
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("inspect", "Show a GGUF file's metadata and tensors");
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("FILE", *path, "GGUF file")->required();
  cmd->add_flag("--json", *as_json, "Print JSON: {metadata, tensors: [{name, type, shape, offset, bytes}]}");
  cmd->callback([path, as_json, &exit_code] { exit_code = run(*path, *as_json); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(inspect, 20, setup);
}  // namespace nibble::cli
