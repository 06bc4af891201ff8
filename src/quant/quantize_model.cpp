// The `nibble quantize` driver: plan (types per tensor, metadata) then stream every tensor through
// GgufWriter, converting in parallel row chunks. Mirrors llama_model_quantize_impl of llama.cpp's
// src/llama-quant.cpp where it matters for the output bytes (order, metadata, per-expert imatrix,
// validation of the quantized rows).
#include "quant/quantize_model.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "gguf/tensor_groups.h"
#include "quant/imatrix.h"
#include "quant/quant.h"
#include "quant/sfp8.h"
#include "util/progress.h"

namespace nibble {

namespace {

using ull = unsigned long long;

struct PlannedTensor {
  const GgufTensorInfo* src = nullptr;
  GgmlType to = GgmlType::F32;
  bool convert = false;
  const std::vector<float>* imatrix = nullptr;  // ne0 * ne2 weights, or null
};

struct Plan {
  std::unique_ptr<GgufFile> in;
  Imatrix imatrix;
  bool has_imatrix = false;
  std::vector<PlannedTensor> tensors;  // output order
  GgufMetadata metadata;               // output metadata
  QuantizeReport report;
};

void note(const QuantizeOptions& o, const std::string& s) {
  if (o.note) o.note(s);
}

Result<RecipeModel> model_info(const GgufFile& f) {
  const GgufMetadata& md = f.metadata();
  RecipeModel m;
  auto arch = md.get_string("general.architecture");
  if (!arch.ok()) {
    return make_error(ErrorCode::kFormat, "quantize: %s: %s (quantize needs a model file)",
                      f.path().c_str(), arch.error().message.c_str());
  }
  m.arch = arch.value();
  NIBBLE_ASSIGN_OR_RETURN(m.n_layer, md.get_u32(m.arch + ".block_count"));
  if (m.n_layer == 0) {
    return make_error(ErrorCode::kFormat, "quantize: %s: %s.block_count is 0", f.path().c_str(),
                      m.arch.c_str());
  }
  NIBBLE_ASSIGN_OR_RETURN(auto heads,
                          md.get_u32_per_layer(m.arch + ".attention.head_count", m.n_layer));
  m.n_head = heads[0];
  m.n_head_kv = m.n_head;
  if (md.contains(m.arch + ".attention.head_count_kv")) {
    NIBBLE_ASSIGN_OR_RETURN(auto kv,
                            md.get_u32_per_layer(m.arch + ".attention.head_count_kv", m.n_layer));
    m.n_head_kv = kv[0];
  }
  if (md.contains(m.arch + ".expert_count")) {
    NIBBLE_ASSIGN_OR_RETURN(m.n_expert, md.get_u32(m.arch + ".expert_count"));
  }
  std::vector<std::string> names;
  for (const auto& t : f.tensors()) names.push_back(t.name);
  m.count_tensors(names);
  return m;
}

Status check_producible(GgmlType t, const char* what) {
  const QuantCodec* c = quant_codec(t);
  if (c == nullptr || c->quantize == nullptr || c->activation_only) {
    return make_error(ErrorCode::kUnsupported, "quantize: %s: nibble cannot write type %s", what,
                      ggml_type_name(t));
  }
  return ok_status();
}

// Rows of a tensor: ne0 values each; n_mat matrices (experts) of rows_per_mat rows.
struct Geometry {
  uint64_t ne0, n_rows, n_mat, rows_per_mat;
};
Geometry geometry(const GgufTensorInfo& t) {
  Geometry g;
  g.ne0 = t.ne(0);
  g.n_rows = g.ne0 == 0 ? 0 : t.n_elements / g.ne0;
  g.n_mat = std::max<uint64_t>(1, t.ne(2));
  g.rows_per_mat = g.n_rows / g.n_mat;
  return g;
}

// Largest |x| of a tensor (for the SFP8 range check).
float max_abs(const GgufTensorInfo& t) {
  const Geometry g = geometry(t);
  const uint64_t row_bytes = ggml_row_size(t.type, g.ne0);
  float m = 0.0f;
#pragma omp parallel reduction(max : m)
  {
    std::vector<float> buf(g.ne0);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < static_cast<int64_t>(g.n_rows); ++r) {
      dequantize_row(t.type, t.data + static_cast<uint64_t>(r) * row_bytes, buf.data(), g.ne0);
      for (float v : buf) m = std::max(m, std::isnan(v) ? INFINITY : std::fabs(v));
    }
  }
  return m;
}

Result<Plan> make_plan(const QuantizeOptions& o) {
  Plan p;
  NIBBLE_ASSIGN_OR_RETURN(p.in, GgufFile::open(o.input_path));
  const GgufFile& in = *p.in;
  if (!o.imatrix_path.empty()) {
    NIBBLE_ASSIGN_OR_RETURN(p.imatrix, load_imatrix(o.imatrix_path));
    p.has_imatrix = !p.imatrix.values.empty();
  }
  NIBBLE_ASSIGN_OR_RETURN(RecipeModel model, model_info(in));
  RecipeOptions ropt = o.recipe;
  ropt.has_imatrix = p.has_imatrix;
  if (ropt.output_type) NIBBLE_TRY(check_producible(*ropt.output_type, "--output-type"));
  if (ropt.embd_type) NIBBLE_TRY(check_producible(*ropt.embd_type, "--embd-type"));
  for (const auto& tt : ropt.tensor_types) {
    NIBBLE_TRY(check_producible(tt.type, ("--tensor-type " + tt.pattern).c_str()));
  }

  std::vector<std::string> names;
  for (const auto& t : in.tensors()) names.push_back(t.name);
  const std::vector<size_t> order = llama_quantize_order(names);

  QuantizeReport& rep = p.report;
  rep.ftype = o.ftype;
  rep.output_path = o.output_path;
  RecipeState state;
  int n_imatrix_missing = 0;
  for (size_t idx : order) {
    const GgufTensorInfo& t = in.tensors()[idx];
    NIBBLE_ASSIGN_OR_RETURN(
        TensorChoice c, choose_tensor_type(model, o.ftype, ropt, state, t.name, t.shape, t.type));
    if (!c.note.empty()) note(o, c.note);
    if (c.deviation) ++rep.n_deviation;
    GgmlType to = c.type;
    if (to == GgmlType::SFP8 && t.type != GgmlType::SFP8 && can_dequantize(t.type)) {
      const float m = max_abs(t);
      if (!(m <= kSfp8Max)) {
        // gemma.cpp would scale the tensor by m / 1.875; nibble's GGUF has no per-tensor scale the
        // engine applies, so the tensor stays exact in BF16.
        to = GgmlType::BF16;
        ++rep.n_sfp8_kept_bf16;
        char buf[200];
        std::snprintf(buf, sizeof(buf), "%s: max |x| %g exceeds SFP8's range 1.875, kept as bf16",
                      t.name.c_str(), static_cast<double>(m));
        note(o, buf);
      }
    }
    PlannedTensor pt;
    pt.src = &t;
    pt.to = to;
    pt.convert = to != t.type;
    if (pt.convert) {
      if (!can_dequantize(t.type)) {
        return make_error(
            ErrorCode::kUnsupported,
            "quantize: tensor '%s' has type %s, which nibble cannot dequantize (wanted %s)",
            t.name.c_str(), ggml_type_name(t.type), ggml_type_name(to));
      }
      NIBBLE_TRY(check_producible(to, ("tensor '" + t.name + "'").c_str()));
      if (t.ne(0) % traits(to).block_size != 0) {
        return make_error(ErrorCode::kInternal, "quantize: tensor '%s': rows of %llu do not fit %s",
                          t.name.c_str(), static_cast<ull>(t.ne(0)), ggml_type_name(to));
      }
    }
    const bool needs_imatrix = c.allowed && tensor_requires_imatrix(t.name, to, o.ftype);
    if (needs_imatrix && !p.has_imatrix) {
      return make_error(
          ErrorCode::kInvalidArgument,
          "quantize: %s needs an importance matrix (--imatrix) for tensor '%s' (%s), as "
          "llama-quantize does",
          ftype_info(o.ftype).cli_name, t.name.c_str(), ggml_type_name(to));
    }
    if (pt.convert && p.has_imatrix) {
      auto it = p.imatrix.values.find(t.name);
      if (it == p.imatrix.values.end()) {
        if (imatrix_use(to) != ImatrixUse::kIgnored) ++n_imatrix_missing;
      } else {
        const uint64_t want = t.ne(0) * std::max<uint64_t>(1, t.ne(2));
        if (it->second.size() == want) {
          pt.imatrix = &it->second;
        } else if (tensor_category(t.name) == TensorCategory::kTokenEmbd) {
          note(o, "imatrix entry for " + t.name + " has " + std::to_string(it->second.size()) +
                      " values, tensor needs " + std::to_string(want) + ": ignored");
        } else {
          return make_error(
              ErrorCode::kFormat,
              "quantize: imatrix %s: entry '%s' has %zu values, the tensor needs %llu",
              o.imatrix_path.c_str(), t.name.c_str(), it->second.size(), static_cast<ull>(want));
        }
      }
      if (needs_imatrix && pt.imatrix == nullptr) {
        return make_error(ErrorCode::kInvalidArgument,
                          "quantize: missing importance matrix for tensor '%s' in a very low-bit "
                          "quantization (%s)",
                          t.name.c_str(), ggml_type_name(to));
      }
    }
    p.tensors.push_back(pt);

    QuantizedTensor q;
    q.name = t.name;
    q.shape = t.shape;
    q.from = t.type;
    q.to = to;
    q.n_elements = t.n_elements;
    q.bytes_in = t.n_bytes;
    q.bytes_out = pt.convert ? t.n_rows() * ggml_row_size(to, t.ne(0)) : t.n_bytes;
    q.quantizable = c.allowed;
    q.converted = pt.convert;
    q.imatrix = pt.imatrix != nullptr;
    q.fallback = c.fallback;
    rep.n_elements += q.n_elements;
    rep.bytes_in += q.bytes_in;
    rep.bytes_out += q.bytes_out;
    if (pt.convert && traits(t.type).quantized) ++rep.n_requantized;
    if (q.imatrix) ++rep.n_imatrix;
    rep.tensors.push_back(std::move(q));
  }
  rep.n_fallback = state.n_fallback;
  if (n_imatrix_missing > 0) {
    note(o, "the importance matrix has no entry for " + std::to_string(n_imatrix_missing) +
                " tensors whose type would use one; they were quantized without it");
  }
  if (rep.n_requantized > 0) {
    note(o, std::to_string(rep.n_requantized) +
                " tensors were requantized from an already-quantized type: quality is lower than "
                "quantizing from 16 or 32 bits");
  }

  // Metadata: input KVs in order, split keys removed, then (remove-and-append, §1.12)
  // general.quantization_version and general.file_type, then the imatrix provenance keys
  // llama-quantize adds as overrides.
  for (const auto& [k, v] : in.metadata().entries()) p.metadata.set(k, v);
  p.metadata.erase("split.no");
  p.metadata.erase("split.count");
  p.metadata.erase("split.tensors.count");
  p.metadata.erase("general.quantization_version");
  p.metadata.set("general.quantization_version", GgufValue::u32(2));
  p.metadata.erase("general.file_type");
  p.metadata.set("general.file_type", GgufValue::u32(static_cast<uint32_t>(o.ftype)));
  if (p.has_imatrix) {
    auto set_last = [&p](const std::string& k, GgufValue v) {
      p.metadata.erase(k);
      p.metadata.set(k, std::move(v));
    };
    set_last("quantize.imatrix.file", GgufValue::str(o.imatrix_path.substr(0, 127)));
    if (!p.imatrix.datasets.empty()) {
      set_last("quantize.imatrix.dataset", GgufValue::str(p.imatrix.datasets[0].substr(0, 127)));
    }
    set_last("quantize.imatrix.entries_count",
             GgufValue::u32(static_cast<uint32_t>(p.imatrix.values.size())));
    if (p.imatrix.chunk_count > 0) {
      set_last("quantize.imatrix.chunks_count", GgufValue::u32(p.imatrix.chunk_count));
    }
  }
  return p;
}

bool all_finite(const float* x, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return false;
  }
  return true;
}

// Converts one tensor into `out` (appending bytes_out bytes): row chunks in parallel, each expert
// matrix with its own imatrix slice. Checks the input is finite and, like llama-quantize's
// ggml_validate_row_data, that the output decodes to finite values (an f16 scale can overflow).
Status convert_tensor(const PlannedTensor& pt, uint64_t bytes_out, std::vector<uint8_t>& out,
                      int n_threads, const std::function<void(uint64_t)>& on_bytes) {
  const GgufTensorInfo& t = *pt.src;
  const Geometry g = geometry(t);
  const uint64_t in_row = ggml_row_size(t.type, g.ne0);
  const uint64_t out_row = ggml_row_size(pt.to, g.ne0);
  const size_t base = out.size();
  out.resize(base + bytes_out);
  // Chunks of about 64 Ki values, never crossing an expert boundary.
  const uint64_t chunk_rows =
      std::max<uint64_t>(1, (uint64_t{1} << 16) / std::max<uint64_t>(1, g.ne0));
  struct Task {
    uint64_t mat, row0, n;
  };
  std::vector<Task> tasks;
  for (uint64_t m = 0; m < g.n_mat; ++m) {
    for (uint64_t r = 0; r < g.rows_per_mat; r += chunk_rows) {
      tasks.push_back({m, r, std::min(chunk_rows, g.rows_per_mat - r)});
    }
  }
  std::mutex mu;
  std::string error;
  std::atomic<bool> failed{false};
  std::atomic<uint64_t> done_bytes{0};
  const int threads = n_threads > 0 ? n_threads : omp_get_max_threads();
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> buf(chunk_rows * g.ne0);
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < static_cast<int64_t>(tasks.size()); ++i) {
      if (failed.load(std::memory_order_relaxed)) continue;
      const Task& k = tasks[static_cast<size_t>(i)];
      const uint64_t row = k.mat * g.rows_per_mat + k.row0;
      const uint64_t n = k.n * g.ne0;
      dequantize_row(t.type, t.data + row * in_row, buf.data(), n);
      const char* bad = nullptr;
      if (!all_finite(buf.data(), n)) bad = "input has a non-finite value";
      uint8_t* dst = out.data() + base + row * out_row;
      if (bad == nullptr) {
        const float* qw = pt.imatrix != nullptr ? pt.imatrix->data() + k.mat * g.ne0 : nullptr;
        quantize_rows(pt.to, buf.data(), dst, k.n, g.ne0, qw);
        if (pt.to != GgmlType::F32) {
          dequantize_row(pt.to, dst, buf.data(), n);
          if (!all_finite(buf.data(), n))
            bad = "quantized data validation failed (non-finite scale)";
        }
      }
      if (bad != nullptr) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failed.exchange(true)) {
          char msg[320];
          std::snprintf(msg, sizeof(msg), "quantize: tensor '%s' rows %llu..%llu (%s -> %s): %s",
                        t.name.c_str(), static_cast<ull>(row), static_cast<ull>(row + k.n - 1),
                        ggml_type_name(t.type), ggml_type_name(pt.to), bad);
          error = msg;
        }
        continue;
      }
      const uint64_t d = done_bytes.fetch_add(k.n * in_row) + k.n * in_row;
      if (omp_get_thread_num() == 0 && on_bytes) on_bytes(d);
    }
  }
  if (failed.load()) return make_error(ErrorCode::kFormat, "%s", error.c_str());
  return ok_status();
}

}  // namespace

Result<QuantizeReport> plan_quantize(const QuantizeOptions& options) {
  NIBBLE_ASSIGN_OR_RETURN(Plan p, make_plan(options));
  return std::move(p.report);
}

Result<QuantizeReport> quantize_model(const QuantizeOptions& o) {
  std::error_code ec_in, ec_out;
  const auto in_path = std::filesystem::weakly_canonical(o.input_path, ec_in);
  const auto out_path = std::filesystem::weakly_canonical(o.output_path, ec_out);
  if (!ec_in && !ec_out && in_path == out_path) {
    return make_error(ErrorCode::kInvalidArgument, "quantize: the output %s is the input file",
                      o.output_path.c_str());
  }
  NIBBLE_ASSIGN_OR_RETURN(Plan p, make_plan(o));
  GgufWriter w;
  w.metadata() = p.metadata;
  const uint64_t total = p.report.bytes_in;
  auto done = std::make_shared<uint64_t>(0);  // input bytes of finished tensors
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const PlannedTensor& pt = p.tensors[i];
    const QuantizedTensor& q = p.report.tensors[i];
    const GgufTensorInfo* src = pt.src;
    GgufWriter::Producer produce;
    if (!pt.convert) {
      produce = [src, done, &o, total](std::vector<uint8_t>& out) -> Status {
        out.insert(out.end(), src->data, src->data + src->n_bytes);
        *done += src->n_bytes;
        if (o.progress) o.progress(*done, total);
        return ok_status();
      };
    } else {
      const uint64_t bytes_out = q.bytes_out;
      produce = [pt, bytes_out, done, &o, total](std::vector<uint8_t>& out) -> Status {
        const uint64_t before = *done;
        std::function<void(uint64_t)> on_bytes;
        if (o.progress)
          on_bytes = [&o, before, total](uint64_t d) { o.progress(before + d, total); };
        NIBBLE_TRY(convert_tensor(pt, bytes_out, out, o.n_threads, on_bytes));
        *done += pt.src->n_bytes;
        if (o.progress) o.progress(*done, total);
        return ok_status();
      };
    }
    NIBBLE_TRY(w.add_tensor(q.name, q.to, q.shape, std::move(produce)));
  }
  NIBBLE_TRY(w.write(o.output_path));
  std::error_code ec;
  p.report.file_size = std::filesystem::file_size(o.output_path, ec);
  return std::move(p.report);
}

std::string format_quantize_summary(const QuantizeReport& r) {
  struct Group {
    uint64_t tensors = 0, params = 0, bytes = 0;
    std::map<std::string, uint64_t> types;
  };
  std::map<std::string, Group> groups;
  for (const auto& t : r.tensors) {
    Group& g = groups[tensor_group(t.name)];
    ++g.tensors;
    g.params += t.n_elements;
    g.bytes += t.bytes_out;
    ++g.types[ggml_type_name(t.to)];
  }
  const FtypeInfo& fi = ftype_info(r.ftype);
  std::string s;
  char line[512];
  std::snprintf(line, sizeof(line), "quantize: %s (%s, general.file_type %u): %zu tensors\n",
                r.output_path.c_str(), fi.description, static_cast<unsigned>(r.ftype),
                r.tensors.size());
  s += line;
  std::snprintf(line, sizeof(line), "  %-26s %7s %12s %11s %7s  %s\n", "group", "tensors",
                "parameters", "size", "bits/w", "types");
  s += line;
  auto bpw = [](uint64_t bytes, uint64_t params) { return params ? 8.0 * bytes / params : 0.0; };
  for (const auto& [name, g] : groups) {
    std::string types;
    for (const auto& [tn, n] : g.types) {
      if (!types.empty()) types += ", ";
      types += tn + " " + std::to_string(n);
    }
    std::snprintf(line, sizeof(line), "  %-26s %7llu %12llu %11s %7.3f  %s\n", name.c_str(),
                  static_cast<ull>(g.tensors), static_cast<ull>(g.params),
                  format_bytes(g.bytes).c_str(), bpw(g.bytes, g.params), types.c_str());
    s += line;
  }
  std::snprintf(line, sizeof(line), "  %-26s %7zu %12llu %11s %7.3f\n", "total", r.tensors.size(),
                static_cast<ull>(r.n_elements), format_bytes(r.bytes_out).c_str(),
                bpw(r.bytes_out, r.n_elements));
  s += line;
  std::snprintf(line, sizeof(line), "  tensor data %s (%.3f bits/w) -> %s (%.3f bits/w)",
                format_bytes(r.bytes_in).c_str(), bpw(r.bytes_in, r.n_elements),
                format_bytes(r.bytes_out).c_str(), bpw(r.bytes_out, r.n_elements));
  s += line;
  if (r.file_size > 0)
    s += "; file " + format_bytes(r.file_size) + " (" + std::to_string(r.file_size) + " bytes)";
  s += "\n";
  if (r.n_fallback > 0) {
    std::snprintf(line, sizeof(line),
                  "  %d of %zu tensors required fallback quantization (rows not a multiple of the "
                  "block size)\n",
                  r.n_fallback, r.tensors.size());
    s += line;
  }
  if (r.n_imatrix > 0) {
    std::snprintf(line, sizeof(line), "  %d tensors quantized with the importance matrix\n",
                  r.n_imatrix);
    s += line;
  }
  if (r.n_sfp8_kept_bf16 > 0) {
    std::snprintf(line, sizeof(line),
                  "  %d tensors exceed SFP8's range (|x| > 1.875) and stay bf16\n",
                  r.n_sfp8_kept_bf16);
    s += line;
  }
  return s;
}

}  // namespace nibble
