// nibble serve: the Ollama API (/api/generate, /api/chat, /api/tags, /api/show, /api/ps,
// /api/version; NDJSON streaming) and the OpenAI API (/v1/chat/completions and /v1/completions
// with SSE streaming, /v1/models) over cpp-httplib, plus /health, Prometheus /metrics and a small
// web chat page at /.
//
// One model instance: requests are queued on a mutex (at most `max_queue` waiting; more get 503),
// the model named by a request is loaded on demand (replacing the previous one) and unloaded when
// its keep_alive runs out (default 5 minutes; 0 unloads at once; negative keeps it). Every request
// is validated: bodies over `max_body_bytes` get 413, malformed JSON, wrong field types, unknown
// models and unsupported features (images, tools, format) get a 4xx JSON error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "store/store.h"
#include "util/result.h"

namespace nibble {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 11434;             // 0: any free port (see Server::port())
  size_t max_body_bytes = 8u << 20;
  int max_queue = 8;            // requests waiting for the model beyond the running one
  double default_keep_alive_s = 300;
  int threads = 16;
  bool log_requests = true;     // one line per request on stderr
};

class Server {
 public:
  Server(ModelStore store, ServerOptions opts);
  ~Server();
  // Binds the socket; the port is known afterwards. Errors: address in use, bad host.
  Status bind();
  // Serves until stop() (from another thread or a signal watcher).
  Status run();
  void stop();
  int port() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace nibble
