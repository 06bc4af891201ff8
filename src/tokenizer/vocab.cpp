// Vocab: validation, the tokenizer.ggml.* GGUF keys (written exactly as llama.cpp's converter
// writes them for gemma4), and merges derived from SentencePiece scores. The file importers are
// vocab_sentencepiece.cpp (tokenizer.model) and vocab_json.cpp (tokenizer.json).
#include "tokenizer/vocab.h"

#include <algorithm>
#include <string_view>
#include <unordered_map>

#include "tokenizer/utf8.h"

namespace nibble {

namespace {

using ull = unsigned long long;

constexpr const char* kKeyModel = "tokenizer.ggml.model";
constexpr const char* kKeyTokens = "tokenizer.ggml.tokens";
constexpr const char* kKeyScores = "tokenizer.ggml.scores";
constexpr const char* kKeyTokenType = "tokenizer.ggml.token_type";
constexpr const char* kKeyMerges = "tokenizer.ggml.merges";
constexpr const char* kKeyBos = "tokenizer.ggml.bos_token_id";
constexpr const char* kKeyEos = "tokenizer.ggml.eos_token_id";
constexpr const char* kKeyUnk = "tokenizer.ggml.unknown_token_id";
constexpr const char* kKeyPad = "tokenizer.ggml.padding_token_id";
constexpr const char* kKeyAddBos = "tokenizer.ggml.add_bos_token";
constexpr const char* kKeyAddSpacePrefix = "tokenizer.ggml.add_space_prefix";

// One merge candidate while deriving merges from scores.
struct DerivedMerge {
  int32_t left;
  int32_t right;
  float score;          // the merged piece's score
  uint32_t left_chars;  // lengths in characters (Python's len() on the piece)
  uint32_t right_chars;
};

// Reads an optional token-id key (u32 as llama.cpp writes it; i32 tolerated). Absent: -1.
Status read_token_id(const GgufMetadata& md, const char* key, size_t n_tokens, int32_t* out) {
  const GgufValue* v = md.find(key);
  if (v == nullptr) {
    *out = -1;
    return ok_status();
  }
  int64_t id = 0;
  if (v->type() == GgufType::kUint32) {
    id = v->as<uint32_t>();
  } else if (v->type() == GgufType::kInt32) {
    id = v->as<int32_t>();
  } else {
    return make_error(ErrorCode::kFormat, "gguf: metadata key '%s' has type %s, expected uint32",
                      key, gguf_type_name(v->type()));
  }
  if (id < 0 || static_cast<uint64_t>(id) >= n_tokens) {
    return make_error(ErrorCode::kFormat, "gguf: %s = %lld is outside the %zu-token vocabulary",
                      key, static_cast<long long>(id), n_tokens);
  }
  *out = static_cast<int32_t>(id);
  return ok_status();
}

Status read_bool(const GgufMetadata& md, const char* key, bool fallback, bool* out) {
  const GgufValue* v = md.find(key);
  if (v == nullptr) {
    *out = fallback;
    return ok_status();
  }
  NIBBLE_ASSIGN_OR_RETURN(*out, md.get_bool(key));
  return ok_status();
}

// A numeric array of exactly n elements of one of the `allowed` element types.
Result<const GgufValue*> get_numeric_array(const GgufMetadata& md, const char* key, size_t n,
                                           std::initializer_list<GgufType> allowed) {
  const GgufValue* v = md.find(key);
  if (v == nullptr) return static_cast<const GgufValue*>(nullptr);
  bool ok =
      v->is_array() && std::find(allowed.begin(), allowed.end(), v->array_type()) != allowed.end();
  if (!ok) {
    std::string have = gguf_type_name(v->type());
    if (v->is_array()) have += std::string(" of ") + gguf_type_name(v->array_type());
    return make_error(ErrorCode::kFormat,
                      "gguf: metadata key '%s' has type %s, expected array of %s", key,
                      have.c_str(), gguf_type_name(*allowed.begin()));
  }
  if (v->array_size() != n) {
    return make_error(ErrorCode::kFormat, "gguf: %s has %llu entries, %s has %zu", key,
                      static_cast<ull>(v->array_size()), kKeyTokens, n);
  }
  const uint64_t elem = gguf_type_size(v->array_type());
  if (v->raw().size() != n * elem) {
    return make_error(ErrorCode::kFormat, "gguf: %s holds %zu bytes for %zu elements of %llu bytes",
                      key, v->raw().size(), n, static_cast<ull>(elem));
  }
  return v;
}

}  // namespace

Status validate_vocab(const Vocab& v, const std::string& what) {
  const size_t n = v.tokens.size();
  if (n == 0) return make_error(ErrorCode::kFormat, "%s: the vocabulary is empty", what.c_str());
  if (n > static_cast<size_t>(INT32_MAX)) {
    return make_error(ErrorCode::kFormat, "%s: %zu tokens, more than int32 ids allow", what.c_str(),
                      n);
  }
  if (v.model.empty()) {
    return make_error(ErrorCode::kFormat, "%s: the tokenizer model name is empty", what.c_str());
  }
  if (v.scores.size() != n) {
    return make_error(ErrorCode::kFormat, "%s: %zu scores for %zu tokens", what.c_str(),
                      v.scores.size(), n);
  }
  if (v.types.size() != n) {
    return make_error(ErrorCode::kFormat, "%s: %zu token types for %zu tokens", what.c_str(),
                      v.types.size(), n);
  }
  for (size_t i = 0; i < n; ++i) {
    // 0 is llama.cpp's LLAMA_TOKEN_TYPE_UNDEFINED (treated as normal); 1..6 as in TokenType.
    if (v.types[i] < 0 || v.types[i] > 6) {
      return make_error(ErrorCode::kFormat,
                        "%s: token %zu has type %d, not a known token type (0..6)", what.c_str(), i,
                        v.types[i]);
    }
  }
  const std::pair<int32_t, const char*> ids[] = {
      {v.bos_id, "bos"}, {v.eos_id, "eos"}, {v.unk_id, "unknown"}, {v.pad_id, "padding"}};
  for (const auto& [id, name] : ids) {
    if (id < -1 || id >= static_cast<int64_t>(n)) {
      return make_error(ErrorCode::kOutOfRange, "%s: %s token id %d is outside [0, %zu)",
                        what.c_str(), name, id, n);
    }
  }
  for (size_t i = 0; i < v.merges.size(); ++i) {
    const std::string& m = v.merges[i];
    const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (space == std::string::npos || space + 1 >= m.size()) {
      return make_error(ErrorCode::kFormat,
                        "%s: merge %zu '%s' is not two pieces separated by a space", what.c_str(),
                        i, printable(m).c_str());
    }
  }
  return ok_status();
}

std::vector<std::string> derive_merges_from_scores(const Vocab& v) {
  const auto n = static_cast<int32_t>(v.tokens.size());
  // piece -> id; a repeated piece maps to its last id, as a Python dict built in id order does.
  std::unordered_map<std::string_view, int32_t> ids;
  ids.reserve(v.tokens.size());
  for (int32_t i = 0; i < n; ++i) ids[v.tokens[i]] = i;

  std::vector<DerivedMerge> merges;
  std::vector<size_t> bounds;
  std::vector<DerivedMerge> local;
  for (int32_t i = 0; i < n; ++i) {
    const std::string_view piece = v.tokens[i];
    if (ids[piece] != i) continue;  // a repeated piece is considered once
    bounds.clear();
    for (size_t p = 0; p < piece.size(); p += utf8_char_length(piece, p)) bounds.push_back(p);
    const auto n_chars = static_cast<uint32_t>(bounds.size());
    local.clear();
    for (uint32_t k = 1; k < n_chars; ++k) {
      auto l = ids.find(piece.substr(0, bounds[k]));
      if (l == ids.end()) continue;
      auto r = ids.find(piece.substr(bounds[k]));
      if (r == ids.end()) continue;
      local.push_back({l->second, r->second, v.scores[i], k, n_chars - k});
    }
    // Splits of one piece in (left id, right id) order.
    std::sort(local.begin(), local.end(), [](const DerivedMerge& a, const DerivedMerge& b) {
      return a.left != b.left ? a.left < b.left : a.right < b.right;
    });
    merges.insert(merges.end(), local.begin(), local.end());
  }
  // Highest score first, then longer left, then longer right; stable, like Python's
  // sorted(..., reverse=True).
  std::stable_sort(merges.begin(), merges.end(), [](const DerivedMerge& a, const DerivedMerge& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.left_chars != b.left_chars) return a.left_chars > b.left_chars;
    return a.right_chars > b.right_chars;
  });
  std::vector<std::string> out;
  out.reserve(merges.size());
  for (const DerivedMerge& m : merges) {
    out.push_back(v.tokens[m.left] + " " + v.tokens[m.right]);
  }
  return out;
}

void vocab_to_gguf(const Vocab& v, GgufMetadata& md) {
  // Same keys, types and order as llama.cpp's Gemma4Model.set_vocab (gguf-py: add_tokenizer_model,
  // add_token_list, add_token_scores, add_token_types, SpecialVocab.add_to_gguf, then
  // add_add_space_prefix and add_add_bos_token).
  md.set(kKeyModel, GgufValue::str(v.model));
  md.set(kKeyTokens, GgufValue::str_array(v.tokens));
  md.set(kKeyScores, GgufValue::array<float>(GgufType::kFloat32, v.scores));
  md.set(kKeyTokenType, GgufValue::array<int32_t>(GgufType::kInt32, v.types));
  if (!v.merges.empty()) md.set(kKeyMerges, GgufValue::str_array(v.merges));
  if (v.bos_id >= 0) md.set(kKeyBos, GgufValue::u32(static_cast<uint32_t>(v.bos_id)));
  if (v.eos_id >= 0) md.set(kKeyEos, GgufValue::u32(static_cast<uint32_t>(v.eos_id)));
  if (v.unk_id >= 0) md.set(kKeyUnk, GgufValue::u32(static_cast<uint32_t>(v.unk_id)));
  if (v.pad_id >= 0) md.set(kKeyPad, GgufValue::u32(static_cast<uint32_t>(v.pad_id)));
  md.set(kKeyAddSpacePrefix, GgufValue::boolean(v.add_space_prefix));
  md.set(kKeyAddBos, GgufValue::boolean(v.add_bos));
}

Result<Vocab> vocab_from_gguf(const GgufMetadata& md) {
  Vocab v;
  NIBBLE_ASSIGN_OR_RETURN(v.model, md.get_string(kKeyModel));
  NIBBLE_ASSIGN_OR_RETURN(const GgufValue* tokens, md.get_array(kKeyTokens, GgufType::kString));
  if (tokens->strings().size() != tokens->array_size()) {
    return make_error(ErrorCode::kFormat, "gguf: %s says %llu entries but holds %zu", kKeyTokens,
                      static_cast<ull>(tokens->array_size()), tokens->strings().size());
  }
  v.tokens = tokens->strings();
  const size_t n = v.tokens.size();
  if (n == 0) return make_error(ErrorCode::kFormat, "gguf: %s is empty", kKeyTokens);
  if (n > static_cast<size_t>(INT32_MAX)) {
    return make_error(ErrorCode::kFormat, "gguf: %s has %zu entries, more than int32 ids allow",
                      kKeyTokens, n);
  }

  NIBBLE_ASSIGN_OR_RETURN(const GgufValue* scores,
                          get_numeric_array(md, kKeyScores, n, {GgufType::kFloat32}));
  v.scores.assign(n, 0.0f);
  if (scores != nullptr) {
    for (size_t i = 0; i < n; ++i) v.scores[i] = scores->element<float>(i);
  }
  NIBBLE_ASSIGN_OR_RETURN(
      const GgufValue* types,
      get_numeric_array(md, kKeyTokenType, n, {GgufType::kInt32, GgufType::kUint32}));
  v.types.assign(n, static_cast<int32_t>(TokenType::kNormal));
  if (types != nullptr) {
    for (size_t i = 0; i < n; ++i) {
      const auto t = types->element<int64_t>(i);
      if (t < 0 || t > 6) {
        return make_error(ErrorCode::kFormat,
                          "gguf: %s[%zu] = %lld is not a known token type (0..6)", kKeyTokenType, i,
                          static_cast<long long>(t));
      }
      v.types[i] = static_cast<int32_t>(t);
    }
  }
  if (md.contains(kKeyMerges)) {
    NIBBLE_ASSIGN_OR_RETURN(const GgufValue* merges, md.get_array(kKeyMerges, GgufType::kString));
    v.merges = merges->strings();
  }
  NIBBLE_TRY(read_token_id(md, kKeyBos, n, &v.bos_id));
  NIBBLE_TRY(read_token_id(md, kKeyEos, n, &v.eos_id));
  NIBBLE_TRY(read_token_id(md, kKeyUnk, n, &v.unk_id));
  NIBBLE_TRY(read_token_id(md, kKeyPad, n, &v.pad_id));
  NIBBLE_TRY(read_bool(md, kKeyAddBos, true, &v.add_bos));
  // llama.cpp's default: a space prefix for SentencePiece ("llama") vocabularies only.
  NIBBLE_TRY(read_bool(md, kKeyAddSpacePrefix, v.model == "llama", &v.add_space_prefix));
  NIBBLE_TRY(validate_vocab(v, "gguf"));
  return v;
}

}  // namespace nibble
