// Tokenizer: encode/decode for Gemma 4's BPE, as llama.cpp's "gemma4" tokenizer does it
// (llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_GEMMA4), which matches SentencePiece and Hugging Face:
//   1. with parse_special, control / user-defined / unknown token strings are cut out of the text
//      first (leftmost, longest match) and become their ids;
//   2. each remaining piece of text has its spaces replaced by U+2581 and is split into runs of
//      newlines and runs of everything else (no merge spans a newline boundary); a newline run
//      that is itself a token is emitted whole;
//   3. each run is BPE-merged: base symbols are whole UTF-8 characters, the adjacent pair with
//      the lowest merge rank is merged first (leftmost on ties), using a heap of candidate pairs
//      over a linked list of symbols, O(n log n) per run;
//   4. a final symbol that is not a token becomes one <0xXX> token per byte.
// One difference from llama.cpp, on purpose: without parse_special no special token is matched,
// user-defined ones included (llama.cpp and SentencePiece always match user-defined tokens,
// Hugging Face every added token), so user text can never produce <|channel> and the like.
// Not here: the chat template, sampling, anything about the model.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <string_view>
#include <unordered_map>

#include "tokenizer/utf8.h"

namespace nibble {

namespace {

// Packs the bytes of one base symbol (1..4 bytes, a character or a stray byte) into a key. The
// first byte fixes the length of a valid sequence, so keys never collide.
inline uint32_t char_key(std::string_view s) {
  uint32_t k = 0;
  for (size_t i = 0; i < s.size(); ++i)
    k |= static_cast<uint32_t>(static_cast<uint8_t>(s[i])) << (8 * i);
  return k;
}

inline uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// The value of a "<0xXX>" piece, or -1.
int parse_byte_piece(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (s.size() != 6 || s.substr(0, 3) != "<0x" || s[5] != '>') return -1;
  const int hi = hex(s[3]), lo = hex(s[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

struct BpeMerge {
  int32_t rank;
  int32_t result;  // id of the merged piece
};

// A BPE symbol: bytes [start, start + len) of the run, its token id (-1: not a token).
struct Symbol {
  uint32_t start;
  uint32_t len;
  int32_t id;
  int32_t prev;
  int32_t next;
};

// A candidate merge of two adjacent symbols, valid while both still hold the ids it saw.
struct Candidate {
  int32_t rank;
  uint32_t start;  // of the left symbol: leftmost wins among equal ranks
  int32_t left;
  int32_t right;
  int32_t left_id;
  int32_t right_id;
  int32_t result;
};

// Heap order: the top is the lowest rank, then the leftmost.
struct CandidateAfter {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.start > b.start;
  }
};

struct Workspace {
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
};

}  // namespace

struct Tokenizer::Impl {
  // All token strings back to back; maps hold views into this (never into Tokenizer::vocab_, so
  // that copies of a Tokenizer stay valid).
  std::string pool;
  std::vector<uint32_t> offsets;  // n + 1
  std::unordered_map<std::string_view, int32_t> piece_to_id;
  std::array<int32_t, 128> ascii_id{};
  std::unordered_map<uint32_t, int32_t> char_id;  // non-ASCII single-character tokens
  std::unordered_map<uint64_t, BpeMerge> merges;
  std::array<int32_t, 256> byte_id{};  // <0xXX> token of each byte, -1 if absent
  std::vector<int16_t> byte_value;     // per token: the byte a BYTE token stands for, or -1
  size_t n_merges_skipped = 0;

  // Special tokens (control, user-defined, unknown) for parse_special: a byte trie.
  std::array<bool, 256> special_first{};
  std::vector<int32_t> trie_token{-1};               // per node: token ending there, or -1
  std::unordered_map<uint64_t, int32_t> trie_edges;  // (node << 8 | byte) -> child

  std::string_view token(int32_t id) const {
    return std::string_view(pool).substr(offsets[id], offsets[id + 1] - offsets[id]);
  }
  int32_t lookup(std::string_view s) const {
    auto it = piece_to_id.find(s);
    return it == piece_to_id.end() ? -1 : it->second;
  }
  int32_t lookup_char(std::string_view c) const {
    if (c.size() == 1 && static_cast<uint8_t>(c[0]) < 128)
      return ascii_id[static_cast<uint8_t>(c[0])];
    auto it = char_id.find(char_key(c));
    return it == char_id.end() ? -1 : it->second;
  }
  const BpeMerge* find_merge(int32_t left, int32_t right) const {
    if (left < 0 || right < 0) return nullptr;
    auto it = merges.find(pair_key(left, right));
    return it == merges.end() ? nullptr : &it->second;
  }

  void add_special(std::string_view s, int32_t id) {
    int32_t node = 0;
    for (char c : s) {
      const uint64_t key = (static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(c);
      auto it = trie_edges.find(key);
      if (it == trie_edges.end()) {
        const auto child = static_cast<int32_t>(trie_token.size());
        trie_token.push_back(-1);
        it = trie_edges.emplace(key, child).first;
      }
      node = it->second;
    }
    trie_token[node] = id;
    special_first[static_cast<uint8_t>(s[0])] = true;
  }
  // Longest special token starting at text[i]: {length, id}, or {0, -1}.
  std::pair<size_t, int32_t> match_special(std::string_view text, size_t i) const {
    size_t best_len = 0;
    int32_t best_id = -1;
    int32_t node = 0;
    for (size_t j = i; j < text.size(); ++j) {
      auto it = trie_edges.find((static_cast<uint64_t>(node) << 8) | static_cast<uint8_t>(text[j]));
      if (it == trie_edges.end()) break;
      node = it->second;
      if (trie_token[node] >= 0) {
        best_len = j + 1 - i;
        best_id = trie_token[node];
      }
    }
    return {best_len, best_id};
  }

  void push_candidate(Workspace& ws, int32_t left, int32_t right) const {
    if (left < 0 || right < 0) return;
    const Symbol& l = ws.symbols[left];
    const Symbol& r = ws.symbols[right];
    const BpeMerge* m = find_merge(l.id, r.id);
    if (m == nullptr) return;
    ws.heap.push_back({m->rank, l.start, left, right, l.id, r.id, m->result});
    std::push_heap(ws.heap.begin(), ws.heap.end(), CandidateAfter());
  }

  // Emits the tokens of one symbol that is not a token: its bytes as <0xXX> tokens (the unknown
  // token for a byte without one, as Hugging Face's byte fallback does).
  void emit_bytes(std::string_view bytes, int32_t unk_id, std::vector<int32_t>& out) const {
    for (char c : bytes) {
      const int32_t id = byte_id[static_cast<uint8_t>(c)];
      if (id >= 0) {
        out.push_back(id);
      } else if (unk_id >= 0) {
        out.push_back(unk_id);
      }
    }
  }

  // BPE over one run (no newline inside unless the run is all newlines).
  void bpe(std::string_view run, int32_t unk_id, Workspace& ws, std::vector<int32_t>& out) const {
    // Symbol offsets are 32-bit: a run of more than 256 MiB is cut at a character boundary
    // (merges across the cut are lost; no real text has such runs).
    constexpr size_t kMaxRun = size_t{1} << 28;
    while (run.size() > kMaxRun) {
      size_t cut = kMaxRun;
      while (cut > kMaxRun - 4 && (static_cast<uint8_t>(run[cut]) & 0xC0) == 0x80) --cut;
      bpe(run.substr(0, cut), unk_id, ws, out);
      run.remove_prefix(cut);
    }
    auto& syms = ws.symbols;
    syms.clear();
    ws.heap.clear();
    for (size_t i = 0; i < run.size();) {
      const size_t n = utf8_char_length(run, i);
      const auto index = static_cast<int32_t>(syms.size());
      syms.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(n),
                      lookup_char(run.substr(i, n)), index - 1, index + 1});
      i += n;
    }
    if (syms.empty()) return;
    syms.back().next = -1;
    for (int32_t i = 1; i < static_cast<int32_t>(syms.size()); ++i) push_candidate(ws, i - 1, i);
    while (!ws.heap.empty()) {
      std::pop_heap(ws.heap.begin(), ws.heap.end(), CandidateAfter());
      const Candidate c = ws.heap.back();
      ws.heap.pop_back();
      Symbol& l = syms[c.left];
      if (l.len == 0 || l.next != c.right || l.id != c.left_id) continue;  // stale
      Symbol& r = syms[c.right];
      if (r.id != c.right_id) continue;
      l.len += r.len;
      l.id = c.result;
      l.next = r.next;
      if (r.next >= 0) syms[r.next].prev = c.left;
      r.len = 0;
      push_candidate(ws, l.prev, c.left);
      push_candidate(ws, c.left, l.next);
    }
    for (int32_t i = 0; i >= 0; i = syms[i].next) {
      const Symbol& s = syms[i];
      if (s.id >= 0) {
        out.push_back(s.id);
      } else {
        emit_bytes(run.substr(s.start, s.len), unk_id, out);
      }
    }
  }
};

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const GgufMetadata& md) {
  NIBBLE_ASSIGN_OR_RETURN(Vocab vocab, vocab_from_gguf(md));
  return from_vocab(std::move(vocab));
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_vocab(Vocab vocab) {
  NIBBLE_TRY(validate_vocab(vocab, "tokenizer"));
  if (vocab.model == "llama") {
    // A SentencePiece vocabulary as llama.cpp stores it: scores, no merges. Merging by score is
    // merging by rank with merges derived from the scores.
    if (vocab.merges.empty()) vocab.merges = derive_merges_from_scores(vocab);
  } else if (vocab.model == "gemma4") {
    if (vocab.merges.empty()) {
      return make_error(ErrorCode::kFormat,
                        "tokenizer: model 'gemma4' needs tokenizer.ggml.merges, which is missing");
    }
  } else {
    return make_error(ErrorCode::kUnsupported,
                      "tokenizer: model '%s' is not supported (nibble implements 'gemma4' and "
                      "SentencePiece 'llama' vocabularies)",
                      printable(vocab.model).c_str());
  }

  auto impl = std::make_shared<Impl>();
  const auto n = static_cast<int32_t>(vocab.tokens.size());
  size_t total = 0;
  for (const std::string& t : vocab.tokens) total += t.size();
  if (total > UINT32_MAX) {
    return make_error(ErrorCode::kFormat, "tokenizer: %zu bytes of token text, more than 4 GiB",
                      total);
  }
  impl->pool.reserve(total);
  impl->offsets.reserve(vocab.tokens.size() + 1);
  for (const std::string& t : vocab.tokens) {
    impl->offsets.push_back(static_cast<uint32_t>(impl->pool.size()));
    impl->pool += t;
  }
  impl->offsets.push_back(static_cast<uint32_t>(impl->pool.size()));

  // A repeated piece maps to its last id, as llama.cpp's token_to_id does.
  impl->piece_to_id.reserve(vocab.tokens.size());
  for (int32_t id = 0; id < n; ++id) impl->piece_to_id[impl->token(id)] = id;
  impl->ascii_id.fill(-1);
  for (const auto& [piece, id] : impl->piece_to_id) {
    if (piece.empty() || utf8_char_length(piece, 0) != piece.size()) continue;
    if (piece.size() == 1 && static_cast<uint8_t>(piece[0]) < 128) {
      impl->ascii_id[static_cast<uint8_t>(piece[0])] = id;
    } else {
      impl->char_id[char_key(piece)] = id;
    }
  }
  impl->byte_id.fill(-1);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    impl->byte_id[b] = impl->lookup(buf);
  }
  impl->byte_value.assign(vocab.tokens.size(), -1);
  for (int32_t id = 0; id < n; ++id) {
    if (vocab.types[id] == static_cast<int32_t>(TokenType::kByte)) {
      impl->byte_value[id] = static_cast<int16_t>(parse_byte_piece(impl->token(id)));
    }
  }

  // Merges: rank = position. A merge whose pieces are not tokens can never apply to token ids
  // (Hugging Face refuses such files); it is skipped. A repeated pair keeps its first rank, as
  // llama.cpp's bpe_ranks.emplace does.
  impl->merges.reserve(vocab.merges.size());
  std::string joined;
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const std::string& m = vocab.merges[rank];
    const size_t space = m.find(' ', 1);  // validate_vocab checked there is one
    const std::string_view left = std::string_view(m).substr(0, space);
    const std::string_view right = std::string_view(m).substr(space + 1);
    const int32_t l = impl->lookup(left), r = impl->lookup(right);
    joined.assign(left);
    joined.append(right);
    const int32_t result = impl->lookup(joined);
    if (l < 0 || r < 0 || result < 0 || rank > static_cast<size_t>(INT32_MAX)) {
      ++impl->n_merges_skipped;
      continue;
    }
    impl->merges.emplace(pair_key(l, r), BpeMerge{static_cast<int32_t>(rank), result});
  }

  for (int32_t id = 0; id < n; ++id) {
    const auto t = static_cast<TokenType>(vocab.types[id]);
    const std::string_view piece = impl->token(id);
    if (piece.empty()) continue;
    if (t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) {
      impl->add_special(piece, impl->lookup(piece));
    }
  }

  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  tok->vocab_ = std::move(vocab);
  tok->impl_ = std::move(impl);
  return tok;
}

int32_t Tokenizer::find_token(std::string_view piece) const { return impl_->lookup(piece); }

size_t Tokenizer::n_merges_skipped() const { return impl_->n_merges_skipped; }

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
  const Impl& im = *impl_;
  Workspace ws;

  auto encode_text = [&](std::string_view fragment, bool at_start) {
    std::string s = escape_spaces(fragment);
    if (vocab_.add_space_prefix && at_start) s.insert(0, kSpaceMarker);
    const std::string_view sv(s);
    size_t i = 0;
    while (i < sv.size()) {
      size_t j = i;
      if (sv[i] == '\n') {
        while (j < sv.size() && sv[j] == '\n') ++j;
        // A run of newlines that is a token stays whole (llama.cpp PR #21343).
        const int32_t id = im.lookup(sv.substr(i, j - i));
        if (id >= 0) {
          out.push_back(id);
        } else {
          im.bpe(sv.substr(i, j - i), vocab_.unk_id, ws, out);
        }
      } else {
        while (j < sv.size() && sv[j] != '\n') ++j;
        im.bpe(sv.substr(i, j - i), vocab_.unk_id, ws, out);
      }
      i = j;
    }
  };

  if (!parse_special) {
    if (!text.empty()) encode_text(text, true);
    return out;
  }
  size_t fragment_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (!im.special_first[static_cast<uint8_t>(text[i])]) {
      ++i;
      continue;
    }
    const auto [len, id] = im.match_special(text, i);
    if (len == 0) {
      ++i;
      continue;
    }
    if (i > fragment_start) {
      encode_text(text.substr(fragment_start, i - fragment_start), fragment_start == 0);
    }
    out.push_back(id);
    i += len;
    fragment_start = i;
  }
  if (fragment_start < text.size()) {
    encode_text(text.substr(fragment_start), fragment_start == 0);
  }
  return out;
}

std::string Tokenizer::token_to_bytes(int32_t id, bool render_special) const {
  if (id < 0 || id >= n_vocab()) return {};
  const std::string_view piece = impl_->token(id);
  switch (static_cast<TokenType>(vocab_.types[id])) {
    case TokenType::kByte: {
      const int b = impl_->byte_value[id];
      if (b >= 0) return std::string(1, static_cast<char>(b));
      return unescape_spaces(piece);
    }
    case TokenType::kControl:
    case TokenType::kUnknown:
    case TokenType::kUnused:
      return render_special ? std::string(piece) : std::string();
    default:
      return unescape_spaces(piece);
  }
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string out;
  for (int32_t id : ids) out += token_to_bytes(id, render_special);
  return out;
}

namespace {

// Moves the longest prefix of `pending` that is complete UTF-8 into `out`, invalid bytes as
// U+FFFD. With `final`, an unfinished sequence at the end is replaced too.
void drain_utf8(std::string& pending, bool final, std::string& out) {
  size_t i = 0;
  while (i < pending.size()) {
    size_t n = 1;
    const Utf8Status st = utf8_check(pending, i, &n);
    if (st == Utf8Status::kComplete) {
      out.append(pending, i, n);
      i += n;
    } else if (st == Utf8Status::kIncomplete) {
      if (!final) break;
      out.append(kReplacementChar);
      i += n;
    } else {
      out.append(kReplacementChar);
      i += 1;
    }
  }
  pending.erase(0, i);
}

}  // namespace

std::string StreamDecoder::push(int32_t id) {
  pending_ += tok_.token_to_bytes(id, render_special_);
  std::string out;
  drain_utf8(pending_, false, out);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  drain_utf8(pending_, true, out);
  return out;
}

}  // namespace nibble
