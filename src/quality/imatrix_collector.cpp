// Importance-matrix accumulation and the GGUF imatrix writer. Sums are kept in double while
// collecting (llama.cpp keeps float) and rounded to float32 once, when written.
#include "quality/imatrix_collector.h"

#include <cmath>
#include <cstring>

#include "util/check.h"

namespace nibble {

void ImatrixCollector::on_matmul_input(const WeightMatrix& w, const float* x, int64_t n_tokens) {
  NIBBLE_CHECK(w.name != nullptr, "imatrix: a matmul weight has no name");
  NIBBLE_CHECK(w.n_expert >= 1 && w.expert < w.n_expert, "imatrix: bad expert index");
  Entry& e = entries_[w.name];
  const int64_t n_mat = w.expert >= 0 ? w.n_expert : 1;
  if (e.counts.empty()) {
    e.n_in = w.n_in;
    e.n_mat = n_mat;
    e.sum2.assign(static_cast<size_t>(n_mat * w.n_in), 0.0);
    e.sum.assign(e.sum2.size(), 0.0);
    e.counts.assign(static_cast<size_t>(n_mat), 0);
  }
  NIBBLE_CHECK(e.n_in == w.n_in && e.n_mat == n_mat,
               "imatrix: a weight changed shape between calls");
  const int64_t m = w.expert >= 0 ? w.expert : 0;
  double* s2 = e.sum2.data() + m * e.n_in;
  double* s1 = e.sum.data() + m * e.n_in;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = x + t * e.n_in;
    for (int64_t j = 0; j < e.n_in; ++j) {
      const double v = xt[j];
      s2[j] += v * v;
      s1[j] += v;
    }
  }
  e.counts[static_cast<size_t>(m)] += n_tokens;
}

Result<GgufWriter> ImatrixCollector::to_gguf(const std::vector<std::string>& datasets,
                                             uint32_t chunk_count, uint32_t chunk_size) const {
  GgufWriter w;
  w.metadata().set("general.type", GgufValue::str("imatrix"));
  w.metadata().set("imatrix.datasets", GgufValue::str_array(datasets));
  w.metadata().set("imatrix.chunk_count", GgufValue::u32(chunk_count));
  w.metadata().set("imatrix.chunk_size", GgufValue::u32(chunk_size));
  // The writer pulls tensor bytes while writing, so each producer owns its floats.
  auto add_f32 = [&w](const std::string& name, std::vector<uint64_t> shape,
                      std::vector<float> v) -> Status {
    return w.add_tensor(name, GgmlType::F32, shape, [v = std::move(v)](std::vector<uint8_t>& out) {
      const auto* p = reinterpret_cast<const uint8_t*>(v.data());
      out.insert(out.end(), p, p + v.size() * sizeof(float));
      return ok_status();
    });
  };
  for (const auto& [name, e] : entries_) {
    std::vector<float> sum2(e.sum2.begin(), e.sum2.end());
    std::vector<float> sum(e.sum.begin(), e.sum.end());
    std::vector<float> counts(e.counts.begin(),
                              e.counts.end());  // floats, as llama.cpp stores them
    for (size_t i = 0; i < sum2.size(); ++i) {
      if (!std::isfinite(sum2[i]) || !std::isfinite(sum[i])) {
        return make_error(ErrorCode::kOutOfRange,
                          "imatrix: '%s' column %zu: the sum of squared activations overflows "
                          "float32 (%g)",
                          name.c_str(), i, e.sum2[i]);
      }
    }
    const uint64_t n_in = static_cast<uint64_t>(e.n_in), n_mat = static_cast<uint64_t>(e.n_mat);
    NIBBLE_TRY(add_f32(name + ".in_sum2", {n_in, n_mat}, std::move(sum2)));
    NIBBLE_TRY(add_f32(name + ".counts", {1, n_mat}, std::move(counts)));
    NIBBLE_TRY(add_f32(name + ".in_sum", {n_in, n_mat}, std::move(sum)));
  }
  return w;
}

Status ImatrixCollector::write(const std::string& path, const std::vector<std::string>& datasets,
                               uint32_t chunk_count, uint32_t chunk_size) const {
  NIBBLE_ASSIGN_OR_RETURN(GgufWriter w, to_gguf(datasets, chunk_count, chunk_size));
  return w.write(path);
}

}  // namespace nibble
