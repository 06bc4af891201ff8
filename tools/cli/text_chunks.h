// The perplexity protocol's chunking (shared/models/README.md), shared by `nibble perplexity`
// and `nibble imatrix`: the text is read whole and tokenized without BOS, then cut into
// non-overlapping chunks of ctx - 1 tokens (a final partial chunk is dropped).
#pragma once

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "util/result.h"

namespace nibble::cli {

struct TextChunks {
  std::vector<int32_t> ids;  // the whole text's tokens
  int32_t bos = 2;
  int64_t chunk = 0;     // text tokens per chunk (ctx - 1)
  int64_t n_chunks = 0;  // whole chunks in the text
  const int32_t* text(int64_t c) const { return ids.data() + c * chunk; }
};

inline Result<TextChunks> read_text_chunks(const std::string& path, const Tokenizer& tok,
                                           int64_t ctx) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::kNotFound, "cannot read '%s'", path.c_str());
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  TextChunks c;
  c.ids = tok.encode(text, /*add_bos=*/false, /*parse_special=*/false);
  c.bos = tok.bos_id() >= 0 ? tok.bos_id() : 2;
  c.chunk = ctx - 1;
  c.n_chunks = static_cast<int64_t>(c.ids.size()) / c.chunk;
  if (c.n_chunks == 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'%s' has %zu tokens, fewer than one chunk of %lld", path.c_str(),
                      c.ids.size(), static_cast<long long>(c.chunk));
  }
  return c;
}

}  // namespace nibble::cli
