// Tensor lookup with shape and type checks.
#include "model/weight_binder.h"

#include <algorithm>

#include "quant/quant.h"

namespace nibble {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "{";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "}";
}

Result<const GgufTensorInfo*> WeightBinder::lookup(const std::string& name,
                                                   const std::vector<int64_t>& shape) const {
  const GgufTensorInfo* t = file_.find_tensor(name);
  if (t == nullptr) {
    return make_error(ErrorCode::kNotFound,
                      "model: tensor '%s' is missing from %s (expected shape %s)", name.c_str(),
                      file_.path().c_str(), shape_string(shape).c_str());
  }
  // Compare with trailing 1s ignored (GGUF stores the canonical number of dims).
  bool same = true;
  const size_t n = std::max(shape.size(), t->shape.size());
  std::vector<int64_t> actual;
  for (size_t i = 0; i < t->shape.size(); ++i) actual.push_back(static_cast<int64_t>(t->shape[i]));
  for (size_t i = 0; i < n; ++i) {
    const int64_t want = i < shape.size() ? shape[i] : 1;
    const int64_t have = i < t->shape.size() ? static_cast<int64_t>(t->shape[i]) : 1;
    same &= want == have;
  }
  if (!same) {
    return make_error(ErrorCode::kFormat, "model: tensor '%s' has shape %s, expected %s",
                      name.c_str(), shape_string(actual).c_str(), shape_string(shape).c_str());
  }
  if (!can_dequantize(t->type)) {
    return make_error(ErrorCode::kUnsupported,
                      "model: tensor '%s' has type %s, which nibble cannot compute with",
                      name.c_str(), ggml_type_name(t->type));
  }
  if (t->ne(0) % traits(t->type).block_size != 0) {
    return make_error(
        ErrorCode::kFormat, "model: tensor '%s' row of %llu is not a multiple of the %s block",
        name.c_str(), static_cast<unsigned long long>(t->ne(0)), ggml_type_name(t->type));
  }
  return t;
}

Result<WeightMatrix> WeightBinder::matrix(const std::string& name,
                                          const std::vector<int64_t>& shape) const {
  NIBBLE_ASSIGN_OR_RETURN(const GgufTensorInfo* t, lookup(name, shape));
  WeightMatrix m;
  m.type = t->type;
  m.data = t->data;
  m.n_in = static_cast<int64_t>(t->ne(0));
  m.n_out = static_cast<int64_t>(t->n_rows());
  m.row_bytes = ggml_row_size(t->type, t->ne(0));
  m.name = t->name.c_str();
  m.n_expert = static_cast<int32_t>(t->ne(2) * t->ne(3));
  return m;
}

Result<std::vector<float>> WeightBinder::vector(const std::string& name, int64_t n) const {
  NIBBLE_ASSIGN_OR_RETURN(const GgufTensorInfo* t, lookup(name, {n}));
  std::vector<float> out(static_cast<size_t>(n));
  dequantize_row(t->type, t->data, out.data(), static_cast<uint64_t>(n));
  return out;
}

}  // namespace nibble
