// Importer for Hugging Face tokenizer.json files with a BPE model (Gemma's: byte fallback, spaces
// as U+2581). Produces the vocabulary llama.cpp's converter writes for gemma4
// (conversion/gemma.py Gemma4Model.set_vocab with gguf-py LlamaHfVocab): every score -1000,
// <0xXX> pieces BYTE, added tokens marked special CONTROL (except the seven "visible" tokens
// that llama.cpp makes USER_DEFINED so that chat parsers see them), other added tokens
// USER_DEFINED, the rest NORMAL. Not handled: normalisers other than the space replacement,
// byte-level (GPT-2 style) vocabularies, WordPiece and Unigram models.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>

#include "tokenizer/utf8.h"
#include "tokenizer/vocab.h"
#include "util/json_brief.h"
#include "util/mapped_file.h"

namespace nibble {

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxJsonBytes = 1ull << 30;  // Gemma's tokenizer.json is ~33 MB

// Tokens llama.cpp's Gemma 4 converter marks USER_DEFINED although they are special: rendered in
// output so that the chat parser can read them (spec §6.1).
const std::unordered_set<std::string>& visible_specials() {
  static const std::unordered_set<std::string> k = {
      "<|channel>",       "<channel|>",       "<|tool_call>", "<tool_call|>",
      "<|tool_response>", "<tool_response|>", "<|\"|>"};
  return k;
}

bool is_byte_piece(const std::string& s) {
  auto hex = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  };
  return s.size() == 6 && s.compare(0, 3, "<0x") == 0 && hex(s[3]) && hex(s[4]) && s[5] == '>';
}

// A non-negative integer id that can index a vector of `limit` entries.
bool read_id(const json& j, size_t limit, size_t* out) {
  if (j.is_number_unsigned()) {
    const auto v = j.get<uint64_t>();
    if (v >= limit) return false;
    *out = static_cast<size_t>(v);
    return true;
  }
  if (j.is_number_integer()) {
    const auto v = j.get<int64_t>();
    if (v < 0 || static_cast<uint64_t>(v) >= limit) return false;
    *out = static_cast<size_t>(v);
    return true;
  }
  return false;
}

// Whether a normaliser / pre-tokeniser adds a leading U+2581 (a "dummy prefix"). Walks nested
// "Sequence" nodes with an explicit stack (a hostile file may nest them arbitrarily deep).
bool adds_space_prefix(const json& normalizer, const json& pre_tokenizer) {
  std::vector<const json*> stack = {&pre_tokenizer, &normalizer};
  while (!stack.empty()) {
    const json& node = *stack.back();
    stack.pop_back();
    if (!node.is_object()) continue;
    const auto type = node.find("type");
    if (type == node.end() || !type->is_string()) continue;
    const std::string t = *type;
    if (t == "Sequence") {
      for (const char* key : {"normalizers", "pretokenizers"}) {
        const auto list = node.find(key);
        if (list == node.end() || !list->is_array()) continue;
        for (auto it = list->rbegin(); it != list->rend(); ++it) stack.push_back(&*it);
      }
    } else if (t == "Prepend") {
      return true;
    } else if (t == "Metaspace") {
      const auto scheme = node.find("prepend_scheme");
      if (scheme != node.end() && scheme->is_string()) {
        if (*scheme != "never") return true;
        continue;
      }
      const auto add = node.find("add_prefix_space");
      if (add != node.end() && add->is_boolean() && add->get<bool>()) return true;
    }
  }
  return false;
}

}  // namespace

Result<Vocab> vocab_from_tokenizer_json_text(std::string_view text, const std::string& name) {
  const char* nm = name.c_str();
  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return make_error(ErrorCode::kFormat, "%s: invalid JSON: %s", nm, printable(e.what(), 200).c_str());
  }
  if (!root.is_object()) return make_error(ErrorCode::kFormat, "%s: not a JSON object", nm);
  const auto model_it = root.find("model");
  if (model_it == root.end() || !model_it->is_object()) {
    return make_error(ErrorCode::kFormat, "%s: no \"model\" object", nm);
  }
  const json& model = *model_it;
  const auto type_it = model.find("type");
  if (type_it != model.end() && (!type_it->is_string() || *type_it != "BPE")) {
    return make_error(ErrorCode::kUnsupported, "%s: model.type is %s; nibble reads BPE models", nm,
                      json_brief(*type_it).c_str());
  }
  const auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_object()) {
    return make_error(ErrorCode::kFormat, "%s: no \"model.vocab\" object", nm);
  }
  const json& vocab = *vocab_it;
  const json empty_array = json::array();
  const auto added_it = root.find("added_tokens");
  if (added_it != root.end() && !added_it->is_array() && !added_it->is_null()) {
    return make_error(ErrorCode::kFormat, "%s: \"added_tokens\" is not an array", nm);
  }
  const json& added = (added_it != root.end() && added_it->is_array()) ? *added_it : empty_array;

  // Ids must be dense, so none can reach the number of entries; bounding them by it keeps a
  // hostile id from sizing the allocation.
  const size_t n_entries = vocab.size() + added.size();
  if (n_entries > static_cast<size_t>(INT32_MAX)) {
    return make_error(ErrorCode::kFormat, "%s: %zu entries, more than int32 ids allow", nm,
                      n_entries);
  }
  std::vector<std::string> tokens(n_entries);
  std::vector<uint8_t> assigned(n_entries, 0);
  std::vector<int32_t> types(n_entries, static_cast<int32_t>(TokenType::kNormal));
  size_t n_tokens = 0;
  for (const auto& [piece, id_json] : vocab.items()) {
    size_t id = 0;
    if (!read_id(id_json, n_entries, &id)) {
      return make_error(ErrorCode::kFormat,
                        "%s: model.vocab['%s'] = %s is not an id in [0, %zu) (ids must be dense)",
                        nm, printable(piece).c_str(), json_brief(id_json).c_str(), n_entries);
    }
    if (assigned[id]) {
      return make_error(ErrorCode::kFormat, "%s: model.vocab gives id %zu to both '%s' and '%s'",
                        nm, id, printable(tokens[id]).c_str(), printable(piece).c_str());
    }
    tokens[id] = piece;
    assigned[id] = 1;
    n_tokens = std::max(n_tokens, id + 1);
  }
  for (size_t k = 0; k < added.size(); ++k) {
    const json& t = added[k];
    if (!t.is_object()) {
      return make_error(ErrorCode::kFormat, "%s: added_tokens[%zu] is not an object", nm, k);
    }
    const auto id_it = t.find("id");
    const auto content_it = t.find("content");
    size_t id = 0;
    if (id_it == t.end() || !read_id(*id_it, n_entries, &id)) {
      return make_error(ErrorCode::kFormat, "%s: added_tokens[%zu] has no id in [0, %zu)", nm, k,
                        n_entries);
    }
    if (content_it == t.end() || !content_it->is_string() ||
        content_it->get_ref<const std::string&>().empty()) {
      return make_error(ErrorCode::kFormat, "%s: added_tokens[%zu] (id %zu) has no content", nm, k,
                        id);
    }
    const std::string& content = content_it->get_ref<const std::string&>();
    if (assigned[id] && tokens[id] != content) {
      return make_error(ErrorCode::kFormat,
                        "%s: added token %zu is '%s' but id %zu already holds '%s'", nm, k,
                        printable(content).c_str(), id, printable(tokens[id]).c_str());
    }
    tokens[id] = content;
    assigned[id] = 1;
    n_tokens = std::max(n_tokens, id + 1);
    const auto special_it = t.find("special");
    const bool special =
        special_it != t.end() && special_it->is_boolean() && special_it->get<bool>();
    TokenType type = TokenType::kUserDefined;
    if (special && visible_specials().count(content) == 0) type = TokenType::kControl;
    types[id] = static_cast<int32_t>(type);
  }
  for (size_t id = 0; id < n_tokens; ++id) {
    if (!assigned[id]) {
      return make_error(ErrorCode::kFormat, "%s: id %zu has no token (ids must be dense, 0 .. %zu)",
                        nm, id, n_tokens - 1);
    }
  }
  if (n_tokens == 0) return make_error(ErrorCode::kFormat, "%s: the vocabulary is empty", nm);
  tokens.resize(n_tokens);
  types.resize(n_tokens);

  Vocab v;
  v.model = "gemma4";
  v.tokens = std::move(tokens);
  v.types = std::move(types);
  v.scores.assign(n_tokens, -1000.0f);  // gguf-py LlamaHfVocab's score for every token
  for (size_t id = 0; id < n_tokens; ++id) {
    if (v.types[id] == static_cast<int32_t>(TokenType::kNormal) && is_byte_piece(v.tokens[id])) {
      v.types[id] = static_cast<int32_t>(TokenType::kByte);
    }
  }

  const auto merges_it = model.find("merges");
  if (merges_it != model.end() && !merges_it->is_null()) {
    if (!merges_it->is_array()) {
      return make_error(ErrorCode::kFormat, "%s: model.merges is not an array", nm);
    }
    v.merges.reserve(merges_it->size());
    for (size_t k = 0; k < merges_it->size(); ++k) {
      const json& m = (*merges_it)[k];
      if (m.is_string()) {
        // "left right": llama.cpp splits at the first space after the first byte.
        const std::string& s = m.get_ref<const std::string&>();
        const size_t space = s.size() > 1 ? s.find(' ', 1) : std::string::npos;
        if (space == std::string::npos || space + 1 >= s.size()) {
          return make_error(ErrorCode::kFormat, "%s: model.merges[%zu] '%s' is not \"left right\"",
                            nm, k, printable(s).c_str());
        }
        v.merges.push_back(s);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string() &&
                 !m[0].get_ref<const std::string&>().empty() &&
                 !m[1].get_ref<const std::string&>().empty()) {
        v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      } else {
        return make_error(ErrorCode::kFormat,
                          "%s: model.merges[%zu] is neither \"left right\" nor [left, right]", nm,
                          k);
      }
    }
  }

  // Special ids by name (tokenizer.json does not say which token is BOS; Gemma's names are
  // fixed). A repeated piece resolves to its last id, as llama.cpp's token map does.
  auto find = [&](const std::string& piece) -> int32_t {
    for (size_t id = n_tokens; id-- > 0;) {
      if (v.tokens[id] == piece) return static_cast<int32_t>(id);
    }
    return -1;
  };
  std::string unk_piece = "<unk>";
  const auto unk_it = model.find("unk_token");
  if (unk_it != model.end() && unk_it->is_string()) unk_piece = unk_it->get<std::string>();
  v.unk_id = find(unk_piece);
  v.bos_id = find("<bos>");
  v.eos_id = find("<eos>");
  v.pad_id = find("<pad>");
  v.add_bos = true;
  const json null_json;
  const auto norm_it = root.find("normalizer");
  const auto pre_it = root.find("pre_tokenizer");
  v.add_space_prefix = adds_space_prefix(norm_it != root.end() ? *norm_it : null_json,
                                         pre_it != root.end() ? *pre_it : null_json);
  NIBBLE_TRY(validate_vocab(v, name));
  return v;
}

Result<Vocab> vocab_from_tokenizer_json(const std::string& path) {
  NIBBLE_ASSIGN_OR_RETURN(std::string text, read_file_to_string(path, kMaxJsonBytes));
  return vocab_from_tokenizer_json_text(text, path);
}

}  // namespace nibble
