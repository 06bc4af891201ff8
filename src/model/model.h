// Model: what the runtime needs from a loaded architecture. Each architecture implements it in
// its own file (gemma4.cpp) and registers a loader in registry.cpp; nothing else switches on the
// architecture. The runtime owns the KV cache and passes one KvView per layer.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "model/activation_observer.h"
#include "ops/kv_view.h"

namespace nibble {

struct ModelInfo {
  std::string arch;
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_ctx_train = 0;  // 0 = unknown
};

// What one layer needs from the cache. A layer whose source_layer is another layer stores
// nothing and reads that layer's view; `window` > 0 means only the last `window` positions are
// ever read (a ring buffer is enough).
struct KvLayerSpec {
  int source_layer = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t window = 0;
};

class Model {
 public:
  virtual ~Model() = default;

  virtual const ModelInfo& info() const = 0;
  virtual std::vector<KvLayerSpec> kv_layout() const = 0;

  // Runs tokens [n_tokens] at positions pos0 .. pos0 + n_tokens - 1, appending their K/V to the
  // caches in `kv` (one view per layer, layer order). Writes logits [n_out, n_vocab], n_out =
  // all_logits ? n_tokens : 1 (the last token). The caller checks ids and cache capacity.
  virtual void forward(const int32_t* tokens, int64_t n_tokens, int64_t pos0,
                       std::span<const KvView> kv, bool all_logits, float* logits) const = 0;

  // The GGUF the weights live in (metadata for the tokenizer; kept mapped while the model lives).
  virtual const GgufFile& file() const = 0;

  // Installs (or with nullptr removes) a hook that sees every weight matmul's input during
  // forward() (model/activation_observer.h). Not thread-safe: set it before evaluating, and do
  // not share an observed model between threads.
  virtual void set_activation_observer(ActivationObserver* obs) = 0;
};

}  // namespace nibble
