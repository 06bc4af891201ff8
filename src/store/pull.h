// Pull: downloading a GGUF into the store (`nibble pull`).
//
//   https://host/path/model.gguf          a plain URL (checked against --sha256 when given)
//   hf.co/ORG/REPO[:QUANT]                Hugging Face, resolved the way Ollama does: the OCI
//                                         registry manifest {base}/v2/ORG/REPO/manifests/QUANT
//                                         ("latest" when omitted) names the model layer's sha256
//                                         digest, then {base}/v2/ORG/REPO/blobs/sha256:HEX
//
// Downloads go to $NIBBLE_HOME/blobs/<key>-partial and resume from there (HTTP Range) when a
// pull is interrupted and repeated; the finished file is hashed, compared with the expected
// sha256, checked to be a readable GGUF, renamed to blobs/sha256-HEX, and a store entry is
// written. A mismatch removes the download. The Hugging Face base URL is https://hf.co unless
// overridden (tests use a local server).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "store/store.h"
#include "util/result.h"

namespace nibble {

struct PullOptions {
  std::string source;         // URL or hf.co/ORG/REPO[:QUANT]
  std::string name;           // store name ("" = derived from the source)
  std::string sha256;         // expected digest of a plain URL ("" = not checked)
  std::string hf_base_url;    // "" = $NIBBLE_HF_BASE_URL, else https://hf.co
  // Progress: bytes done, total (0 when unknown).
  std::function<void(uint64_t, uint64_t)> progress;
};

struct PullResult {
  StoreEntry entry;
  std::string sha256;
  uint64_t bytes = 0;
  uint64_t resumed_from = 0;  // bytes already on disk from an earlier, interrupted pull
};

Result<PullResult> pull_model(const ModelStore& store, const PullOptions& opts);

}  // namespace nibble
