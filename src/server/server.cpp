// nibble serve: routes, validation, the model slot, streaming.
#include "server/server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <sys/stat.h>
#include <thread>

#include "chat/engine.h"
#include "chat/model_summary.h"
#include "gguf/gguf_file.h"
#include "server/web_page.h"
#include "store/json_io.h"
#include "store/modelfile.h"
#include "store/sha256.h"
#include "util/json_brief.h"
#include "util/text.h"

namespace nibble {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kMaxMessages = 4096;
constexpr const char* kVersion = "0.1.0";

// A request error: HTTP status + message (rendered in the API's error shape).
struct ApiError {
  int status = 400;
  std::string message;
};

ApiError bad_request(const std::string& m) { return {400, m}; }

std::string rfc3339_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const long long ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count() % 1000000000LL;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof out, "%s.%09lldZ", buf, ns);
  return out;
}

std::string rfc3339_in(double seconds) {
  const auto when = std::chrono::system_clock::now() +
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(seconds));
  const std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// keep_alive: seconds as a number, or a Go duration string ("5m", "30s", "1h", "0", "-1m").
std::optional<double> parse_keep_alive(const json& v, ApiError* err) {
  if (v.is_null()) return std::nullopt;
  if (v.is_number()) {
    const double d = v.get<double>();
    if (!std::isfinite(d)) {
      *err = bad_request("keep_alive must be a finite number of seconds");
      return std::nullopt;
    }
    return d;
  }
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s.empty() || s.size() > 32) {
      *err = bad_request("keep_alive '" + printable(s, 32) + "' is not a duration (e.g. 5m, 30s, 0, -1)");
      return std::nullopt;
    }
    char* end = nullptr;
    const double n = std::strtod(s.c_str(), &end);
    const std::string unit(end);
    double mult = 0;
    if (unit.empty() || unit == "s") mult = 1;
    else if (unit == "ms") mult = 0.001;
    else if (unit == "m") mult = 60;
    else if (unit == "h") mult = 3600;
    if (end == s.c_str() || mult == 0 || !std::isfinite(n)) {
      *err = bad_request("keep_alive '" + printable(s, 32) + "' is not a duration (e.g. 5m, 30s, 0, -1)");
      return std::nullopt;
    }
    return n * mult;
  }
  *err = bad_request("keep_alive must be a number of seconds or a duration string, got " + json_brief(v));
  return std::nullopt;
}

// Typed optional fields; errors name the field.
template <typename T>
bool get_field(const json& j, const char* name, T& out, ApiError* err);

template <>
bool get_field<std::string>(const json& j, const char* name, std::string& out, ApiError* err) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_string()) {
    *err = bad_request(std::string("field '") + name + "' must be a string, got " + json_brief(*it));
    return false;
  }
  out = it->get<std::string>();
  return true;
}

template <>
bool get_field<bool>(const json& j, const char* name, bool& out, ApiError* err) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_boolean()) {
    *err = bad_request(std::string("field '") + name + "' must be true or false, got " + json_brief(*it));
    return false;
  }
  out = it->get<bool>();
  return true;
}

// The text of an OpenAI / Ollama message content: a string, or [{type:"text", text}] parts.
bool content_text(const json& c, std::string& out, ApiError* err) {
  if (c.is_null()) return true;
  if (c.is_string()) {
    out = c.get<std::string>();
    return true;
  }
  if (c.is_array()) {
    for (const auto& part : c) {
      if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
        *err = bad_request("message content parts must be objects with a 'type'");
        return false;
      }
      if (part["type"] != "text") {
        *err = bad_request("message content of type " + json_brief(part["type"]) +
                           " is not supported (text only)");
        return false;
      }
      if (!part.contains("text") || !part["text"].is_string()) {
        *err = bad_request("a text content part needs a string 'text'");
        return false;
      }
      out += part["text"].get<std::string>();
    }
    return true;
  }
  *err = bad_request("message content must be a string, got " + json_brief(c));
  return false;
}

bool parse_messages(const json& body, std::vector<ChatMessage>& out, ApiError* err) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_array()) {
    *err = bad_request("field 'messages' must be a list, got " + json_brief(*it));
    return false;
  }
  if (it->size() > kMaxMessages) {
    *err = bad_request("too many messages: " + std::to_string(it->size()) + " (at most " + std::to_string(kMaxMessages) + ")");
    return false;
  }
  for (const auto& m : *it) {
    if (!m.is_object()) {
      *err = bad_request("each message must be an object, got " + json_brief(m));
      return false;
    }
    ChatMessage cm;
    if (!get_field(m, "role", cm.role, err)) return false;
    if (cm.role.empty()) {
      *err = bad_request("a message has no 'role'");
      return false;
    }
    if (cm.role != "system" && cm.role != "developer" && cm.role != "user" && cm.role != "assistant") {
      *err = bad_request("message role '" + printable(cm.role, 32) +
                         "' is not supported (system, user, assistant; nibble has no tool calling)");
      return false;
    }
    if (m.contains("content") && !content_text(m["content"], cm.content, err)) return false;
    if (!get_field(m, "thinking", cm.thinking, err)) return false;
    if (auto im = m.find("images"); im != m.end() && !im->is_null() && !(im->is_array() && im->empty())) {
      *err = bad_request("images are not supported (nibble runs text only)");
      return false;
    }
    if (auto tc = m.find("tool_calls"); tc != m.end() && !tc->is_null() && !(tc->is_array() && tc->empty())) {
      *err = bad_request("tool calls are not supported");
      return false;
    }
    out.push_back(std::move(cm));
  }
  return true;
}

std::string entry_digest(const StoreEntry& e) { return sha256_hex(ModelStore::entry_to_json(e).dump()); }

json model_details(const ModelSummary& s) {
  return {{"parent_model", ""},
          {"format", "gguf"},
          {"family", s.arch},
          {"families", json::array({s.arch})},
          {"parameter_size", format_param_count(s.n_params)},
          {"quantization_level", s.quantization}};
}

}  // namespace

struct Server::Impl {
  ModelStore store;
  ServerOptions opts;
  httplib::Server http;
  int bound_port = 0;

  // The model slot. gen_mu is held while a request uses the engine (the queue).
  std::mutex gen_mu;
  std::unique_ptr<Engine> engine;
  StoreEntry loaded;                 // what is loaded (valid when engine)
  // Read by /api/ps and the reaper without gen_mu.
  std::mutex state_mu;
  Clock::time_point expires;
  bool keep_forever = false;
  double keep_alive_s = 300;
  int64_t loaded_ctx = 0;
  KvCacheBytes loaded_kv;
  std::string loaded_name;

  std::atomic<int> waiting{0};
  std::atomic<bool> stopping{false};
  std::atomic<bool> run_entered{false}, run_exited{false};
  std::thread reaper;
  std::mutex reaper_mu;
  std::condition_variable reaper_cv;

  // Metrics.
  std::mutex metrics_mu;
  std::map<std::pair<std::string, int>, uint64_t> requests;  // (path, status) -> count
  std::atomic<uint64_t> prompt_tokens_total{0}, eval_tokens_total{0}, loads_total{0}, unloads_total{0},
      rejected_busy_total{0};
  std::atomic<double> eval_seconds_total{0}, prompt_seconds_total{0};
  std::atomic<int64_t> request_seq{0};

  Impl(ModelStore s, ServerOptions o) : store(std::move(s)), opts(std::move(o)) {}

  // ---- model slot --------------------------------------------------------------------------

  // With gen_mu held: makes `e` the loaded model. Returns the load time.
  Result<double> ensure_loaded(const StoreEntry& e) {
    const auto t0 = Clock::now();
    if (engine && loaded.model_path == e.model_path) {
      std::lock_guard<std::mutex> g(state_mu);
      loaded = e;
      loaded_name = e.name;
      return 0.0;
    }
    unload_locked();
    auto eng = Engine::load(e.model_path);
    if (!eng.ok()) return eng.take_error();
    engine = std::move(*eng);
    loads_total++;
    std::lock_guard<std::mutex> g(state_mu);
    loaded = e;
    loaded_name = e.name;
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }

  void unload_locked() {
    if (!engine) return;
    engine.reset();
    unloads_total++;
    std::lock_guard<std::mutex> g(state_mu);
    loaded_name.clear();
    loaded_ctx = 0;
    loaded_kv = {};
  }

  void touch(std::optional<double> keep_alive) {
    std::lock_guard<std::mutex> g(state_mu);
    keep_alive_s = keep_alive.value_or(opts.default_keep_alive_s);
    keep_forever = keep_alive_s < 0;
    expires = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(std::max(0.0, keep_alive_s)));
  }

  void reaper_loop() {
    std::unique_lock<std::mutex> lk(reaper_mu);
    while (!stopping.load()) {
      reaper_cv.wait_for(lk, std::chrono::milliseconds(200));
      bool due = false;
      {
        std::lock_guard<std::mutex> g(state_mu);
        due = !loaded_name.empty() && !keep_forever && Clock::now() >= expires;
      }
      if (!due) continue;
      std::unique_lock<std::mutex> gen(gen_mu, std::try_to_lock);
      if (!gen.owns_lock()) continue;
      bool still_due = false;
      {
        std::lock_guard<std::mutex> g(state_mu);
        still_due = !loaded_name.empty() && !keep_forever && Clock::now() >= expires;
      }
      if (still_due) unload_locked();
    }
  }

  // ---- responses ---------------------------------------------------------------------------

  void count(const std::string& path, int status) {
    std::lock_guard<std::mutex> g(metrics_mu);
    // Unknown paths are folded into one label so hostile URLs cannot grow the map.
    static const char* known[] = {"/", "/health", "/metrics", "/api/generate", "/api/chat", "/api/tags",
                                  "/api/show", "/api/ps", "/api/version", "/v1/chat/completions",
                                  "/v1/completions", "/v1/models"};
    std::string label = "other";
    for (const char* k : known) {
      if (path == k) label = k;
    }
    requests[{label, status}]++;
  }

  static void send_json(httplib::Response& res, int status, const json& j) {
    res.status = status;
    res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json; charset=utf-8");
  }
  static void ollama_error(httplib::Response& res, const ApiError& e) {
    send_json(res, e.status, json{{"error", e.message}});
  }
  static void openai_error(httplib::Response& res, const ApiError& e) {
    const char* type = e.status == 404 ? "not_found_error" : e.status >= 500 ? "server_error" : "invalid_request_error";
    send_json(res, e.status, json{{"error", {{"message", e.message}, {"type", type}, {"param", nullptr}, {"code", nullptr}}}});
  }

  // Parses a JSON object body (size and depth capped).
  std::optional<json> parse_body(const httplib::Request& req, ApiError* err) {
    if (req.body.empty()) {
      *err = bad_request("the request body is empty; send a JSON object");
      return std::nullopt;
    }
    auto j = parse_json_limited(req.body, "request body", 32);
    if (!j.ok()) {
      *err = bad_request(j.error().message);
      return std::nullopt;
    }
    if (!j->is_object()) {
      *err = bad_request("the request body must be a JSON object, got " + json_brief(*j));
      return std::nullopt;
    }
    return std::move(*j);
  }

  // The store entry a request names ("model", or Ollama's older "name").
  std::optional<StoreEntry> resolve_model(const json& body, ApiError* err) {
    std::string name;
    if (!get_field(body, "model", name, err)) return std::nullopt;
    if (name.empty() && !get_field(body, "name", name, err)) return std::nullopt;
    if (name.empty()) {
      *err = bad_request("field 'model' is required (see /api/tags)");
      return std::nullopt;
    }
    auto n = normalize_model_name(name);
    if (!n.ok()) {
      *err = {404, "model '" + printable(name, 80) + "' not found"};
      return std::nullopt;
    }
    auto e = store.get(*n);
    if (!e.ok()) {
      *err = {404, "model '" + printable(name, 80) + "' not found, try pulling it first"};
      return std::nullopt;
    }
    return std::move(*e);
  }

  // ---- generation jobs ---------------------------------------------------------------------

  struct Job {
    StoreEntry entry;
    bool chat = true;
    bool raw = false;
    std::vector<ChatMessage> messages;
    std::string prompt, system;
    bool has_system = false;
    ModelParams params;
    bool think = false;
    std::optional<double> keep_alive;
  };

  struct JobResult {
    GenerateResult gen;
    double load_s = 0, total_s = 0;
    std::string load_event;  // "load" / "unload" for empty requests
  };

  // Runs a job with the model slot held. Errors before the first token come back as ApiError.
  Result<JobResult> run_job(const Job& job, const std::atomic<bool>* cancel, const OnDelta& on_delta, int* http_status) {
    const auto t0 = Clock::now();
    *http_status = 500;
    if (waiting.fetch_add(1) >= opts.max_queue + 1) {
      waiting.fetch_sub(1);
      rejected_busy_total++;
      *http_status = 503;
      return make_error(ErrorCode::kUnsupported, "the server is busy (%d requests queued); try again", opts.max_queue);
    }
    std::unique_lock<std::mutex> lk(gen_mu);
    waiting.fetch_sub(1);
    JobResult r;
    const bool empty = job.chat ? job.messages.empty() : job.prompt.empty();
    if (empty && job.keep_alive && *job.keep_alive == 0) {
      if (engine && loaded.model_path == job.entry.model_path) unload_locked();
      r.load_event = "unload";
      return r;
    }
    auto load = ensure_loaded(job.entry);
    if (!load.ok()) return load.take_error();
    r.load_s = *load;
    touch(job.keep_alive);
    if (empty) {
      r.load_event = "load";
      return r;
    }
    ModelParams p = job.entry.params;
    p.overlay(job.params);
    if (!job.params.stop.empty()) p.stop = job.params.stop;
    std::vector<int32_t> tokens;
    const int64_t n_ctx = engine->context_for(p);
    if (job.raw) {
      tokens = engine->text_tokens(job.prompt);
    } else {
      auto tmpl = job.entry.chat_template(engine->gguf_template());
      if (!tmpl.ok()) return tmpl.take_error();
      std::vector<ChatMessage> msgs;
      const std::string sys = job.has_system ? job.system : job.entry.system;
      const bool first_is_system = job.chat && !job.messages.empty() &&
                                   (job.messages[0].role == "system" || job.messages[0].role == "developer");
      if (!sys.empty() && !first_is_system) msgs.push_back({"system", sys, ""});
      msgs.insert(msgs.end(), job.entry.messages.begin(), job.entry.messages.end());
      if (job.chat) {
        msgs.insert(msgs.end(), job.messages.begin(), job.messages.end());
      } else {
        msgs.push_back({"user", job.prompt, ""});
      }
      const int64_t reserve = p.predict_limit() > 0 ? std::min(p.predict_limit(), n_ctx / 2) : n_ctx / 4;
      auto t = engine->chat_tokens(*tmpl, msgs, RenderOptions{job.think, true}, n_ctx - std::max<int64_t>(1, reserve));
      if (!t.ok()) {
        *http_status = 400;
        return t.take_error();
      }
      tokens = std::move(*t);
    }
    auto g = engine->generate(tokens, p, cancel, on_delta);
    if (!g.ok()) {
      *http_status = g.error().code == ErrorCode::kInternal || g.error().code == ErrorCode::kIo ? 500 : 400;
      return g.take_error();
    }
    r.gen = std::move(*g);
    {
      auto kv = engine->kv_report(p);
      std::lock_guard<std::mutex> sg(state_mu);
      loaded_ctx = engine->session_ctx();
      if (kv.ok()) loaded_kv = kv->bytes;
    }
    prompt_tokens_total += static_cast<uint64_t>(r.gen.prompt_tokens);
    eval_tokens_total += static_cast<uint64_t>(r.gen.eval_tokens);
    eval_seconds_total = eval_seconds_total.load() + r.gen.eval_seconds;
    prompt_seconds_total = prompt_seconds_total.load() + r.gen.prompt_seconds;
    r.total_s = std::chrono::duration<double>(Clock::now() - t0).count();
    touch(job.keep_alive);
    return r;
  }

  // Common request fields (Ollama): options, keep_alive, think, format, tools, images.
  bool parse_common(const json& body, Job& job, ApiError* err) {
    if (auto it = body.find("options"); it != body.end() && !it->is_null()) {
      auto p = ModelParams::from_json(*it);
      if (!p.ok()) {
        *err = bad_request(p.error().message);
        return false;
      }
      job.params = std::move(*p);
    }
    if (auto it = body.find("keep_alive"); it != body.end()) {
      job.keep_alive = parse_keep_alive(*it, err);
      if (!err->message.empty()) return false;
    }
    if (auto it = body.find("think"); it != body.end() && !it->is_null()) {
      if (it->is_boolean()) {
        job.think = it->get<bool>();
      } else if (it->is_string() && (*it == "low" || *it == "medium" || *it == "high")) {
        job.think = true;
      } else {
        *err = bad_request("field 'think' must be true, false, \"low\", \"medium\" or \"high\", got " + json_brief(*it));
        return false;
      }
    }
    if (auto it = body.find("format"); it != body.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty())) {
      *err = bad_request("structured output ('format') is not supported");
      return false;
    }
    if (auto it = body.find("tools"); it != body.end() && !it->is_null() && !(it->is_array() && it->empty())) {
      *err = bad_request("tools are not supported (nibble has no tool calling)");
      return false;
    }
    if (auto it = body.find("images"); it != body.end() && !it->is_null() && !(it->is_array() && it->empty())) {
      *err = bad_request("images are not supported (nibble runs text only)");
      return false;
    }
    return true;
  }

  json ollama_stats(const JobResult& r) {
    auto ns = [](double s) { return static_cast<int64_t>(s * 1e9); };
    return {{"total_duration", ns(r.total_s)},
            {"load_duration", ns(r.load_s)},
            {"prompt_eval_count", r.gen.prompt_tokens},
            {"prompt_eval_duration", ns(r.gen.prompt_seconds)},
            {"eval_count", r.gen.eval_tokens},
            {"eval_duration", ns(r.gen.eval_seconds)}};
  }

  static std::string done_reason(const GenerateResult& g) {
    return g.done_reason == "cancel" ? "stop" : g.done_reason;
  }

  // ---- Ollama ------------------------------------------------------------------------------

  void ollama_generate(const httplib::Request& req, httplib::Response& res, bool chat) {
    ApiError err;
    auto body = parse_body(req, &err);
    if (!body) return ollama_error(res, err);
    Job job;
    job.chat = chat;
    bool stream = true;
    if (!get_field(*body, "stream", stream, &err)) return ollama_error(res, err);
    if (chat) {
      if (!parse_messages(*body, job.messages, &err)) return ollama_error(res, err);
    } else {
      if (!get_field(*body, "prompt", job.prompt, &err)) return ollama_error(res, err);
      if (!get_field(*body, "raw", job.raw, &err)) return ollama_error(res, err);
      if (body->contains("system") && !(*body)["system"].is_null()) {
        if (!get_field(*body, "system", job.system, &err)) return ollama_error(res, err);
        job.has_system = true;
      }
      std::string tmpl, suffix;
      if (!get_field(*body, "template", tmpl, &err)) return ollama_error(res, err);
      if (!get_field(*body, "suffix", suffix, &err)) return ollama_error(res, err);
      if (!suffix.empty()) return ollama_error(res, bad_request("'suffix' (fill-in-the-middle) is not supported"));
      if (!tmpl.empty()) {
        auto t = ChatTemplate::from_go_template(tmpl);
        if (!t.ok()) return ollama_error(res, bad_request(t.error().message));
      }
      if (body->contains("context") && !(*body)["context"].is_null()) {
        return ollama_error(res, bad_request("'context' token lists are not supported; use /api/chat"));
      }
    }
    if (!parse_common(*body, job, &err)) return ollama_error(res, err);
    auto entry = resolve_model(*body, &err);
    if (!entry) return ollama_error(res, err);
    job.entry = std::move(*entry);
    if (!chat) {
      std::string tmpl;
      get_field(*body, "template", tmpl, &err);
      if (!tmpl.empty()) job.entry.template_text = tmpl;
    }
    const std::string model = job.entry.name;
    auto line = [this, model, chat](const std::string& content, const std::string& thinking, bool think) {
      json j{{"model", model}, {"created_at", rfc3339_now()}};
      if (chat) {
        json m{{"role", "assistant"}, {"content", content}};
        if (think && !thinking.empty()) m["thinking"] = thinking;
        j["message"] = m;
      } else {
        j["response"] = content;
        if (think && !thinking.empty()) j["thinking"] = thinking;
      }
      j["done"] = false;
      return j;
    };
    auto final_line = [this, model, chat](const JobResult& r, bool think, bool with_text) {
      json j{{"model", model}, {"created_at", rfc3339_now()}};
      const std::string content = with_text ? r.gen.content : "";
      const std::string thinking = with_text ? r.gen.thinking : "";
      if (chat) {
        json m{{"role", "assistant"}, {"content", content}};
        if (think && !thinking.empty()) m["thinking"] = thinking;
        j["message"] = m;
      } else {
        j["response"] = content;
        if (think && !thinking.empty()) j["thinking"] = thinking;
      }
      j["done"] = true;
      j["done_reason"] = r.load_event.empty() ? done_reason(r.gen) : r.load_event;
      if (r.load_event.empty()) j.update(ollama_stats(r));
      return j;
    };
    if (!stream) {
      int status = 500;
      auto r = run_job(job, nullptr, nullptr, &status);
      if (!r.ok()) return ollama_error(res, {status, r.error().message});
      return send_json(res, 200, final_line(*r, job.think, true));
    }
    auto shared_job = std::make_shared<Job>(std::move(job));
    res.status = 200;
    res.set_chunked_content_provider(
        "application/x-ndjson", [this, shared_job, line, final_line](size_t, httplib::DataSink& sink) {
          std::atomic<bool> gone{false};
          auto write = [&](const json& j) {
            const std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
            if (!sink.is_writable() || !sink.write(s.data(), s.size())) gone = true;
            return !gone.load();
          };
          int status = 500;
          auto r = run_job(*shared_job, &gone, [&](const std::string& c, const std::string& t) {
            if (!shared_job->think && c.empty()) return true;
            return write(line(c, t, shared_job->think));
          }, &status);
          if (!r.ok()) {
            write(json{{"error", r.error().message}});
          } else if (!gone) {
            write(final_line(*r, shared_job->think, false));
          }
          sink.done();
          return true;
        });
  }

  json tag_json(const StoreEntry& e) {
    struct stat st {};
    const int64_t size = ::stat(e.model_path.c_str(), &st) == 0 ? st.st_size : 0;
    json j{{"name", e.name}, {"model", e.name}, {"modified_at", e.created}, {"size", size},
           {"digest", entry_digest(e)}};
    auto f = GgufFile::open(e.model_path);
    if (f.ok()) j["details"] = model_details(summarize_gguf(**f));
    return j;
  }

  void ollama_tags(httplib::Response& res) {
    json models = json::array();
    for (const auto& e : store.list()) models.push_back(tag_json(e));
    send_json(res, 200, json{{"models", models}});
  }

  void ollama_show(const httplib::Request& req, httplib::Response& res) {
    ApiError err;
    auto body = parse_body(req, &err);
    if (!body) return ollama_error(res, err);
    auto e = resolve_model(*body, &err);
    if (!e) return ollama_error(res, err);
    auto f = GgufFile::open(e->model_path);
    if (!f.ok()) return ollama_error(res, {500, f.error().message});
    const ModelSummary s = summarize_gguf(**f);
    std::string jinja;
    if (const GgufValue* v = (*f)->metadata().find("tokenizer.chat_template"); v != nullptr && v->type() == GgufType::kString) {
      jinja = v->string();
    }
    json info{{"general.architecture", s.arch},
              {"general.parameter_count", s.n_params},
              {"general.name", s.name},
              {s.arch + ".context_length", s.context_length},
              {s.arch + ".embedding_length", s.embedding_length},
              {s.arch + ".block_count", s.block_count}};
    json msgs = json::array();
    for (const auto& m : e->messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
    json j{{"modelfile", entry_to_modelfile(*e)},
           {"parameters", e->params.to_lines()},
           {"template", e->template_text.empty() ? jinja : e->template_text},
           {"system", e->system},
           {"license", e->license},
           {"details", model_details(s)},
           {"model_info", info},
           {"messages", msgs},
           {"capabilities", json::array({"completion", "thinking"})},
           {"modified_at", e->created}};
    send_json(res, 200, j);
  }

  void ollama_ps(httplib::Response& res) {
    json models = json::array();
    std::lock_guard<std::mutex> g(state_mu);
    if (!loaded_name.empty()) {
      struct stat st {};
      const int64_t file = ::stat(loaded.model_path.c_str(), &st) == 0 ? st.st_size : 0;
      const double left = keep_forever ? 0 : std::chrono::duration<double>(expires - Clock::now()).count();
      json m = tag_json(loaded);
      m["size"] = file + static_cast<int64_t>(loaded_kv.total());
      m["size_vram"] = 0;
      m["expires_at"] = keep_forever ? "2318-01-01T00:00:00Z" : rfc3339_in(std::max(0.0, left));
      m["context_length"] = loaded_ctx;
      m["kv_cache_bytes"] = {{"full_attention", loaded_kv.full}, {"sliding_window", loaded_kv.swa}};
      m["processor"] = "100% CPU";
      models.push_back(m);
    }
    send_json(res, 200, json{{"models", models}});
  }

  // ---- OpenAI ------------------------------------------------------------------------------

  // Maps the OpenAI sampling fields onto ModelParams.
  bool openai_params(const json& body, Job& job, ApiError* err) {
    auto num = [&](const char* field, const char* param) -> bool {
      auto it = body.find(field);
      if (it == body.end() || it->is_null()) return true;
      Status st = job.params.set_json(param, *it);
      if (!st.ok()) {
        *err = bad_request(std::string("field '") + field + "': " + st.error().message);
        return false;
      }
      return true;
    };
    if (!num("temperature", "temperature") || !num("top_p", "top_p") || !num("seed", "seed") ||
        !num("max_tokens", "num_predict") || !num("max_completion_tokens", "num_predict") ||
        !num("stop", "stop")) {
      return false;
    }
    if (auto it = body.find("n"); it != body.end() && !it->is_null() && !(it->is_number_integer() && it->get<int64_t>() == 1)) {
      *err = bad_request("field 'n': only one choice (n = 1) is supported");
      return false;
    }
    if (auto it = body.find("reasoning_effort"); it != body.end() && !it->is_null()) {
      if (!it->is_string()) {
        *err = bad_request("field 'reasoning_effort' must be a string");
        return false;
      }
      job.think = *it != "none";
    }
    if (auto it = body.find("think"); it != body.end() && it->is_boolean()) job.think = it->get<bool>();
    if (auto it = body.find("tools"); it != body.end() && !it->is_null() && !(it->is_array() && it->empty())) {
      *err = bad_request("tools are not supported (nibble has no tool calling)");
      return false;
    }
    if (auto it = body.find("response_format"); it != body.end() && it->is_object() &&
                                                 it->value("type", "text") != "text") {
      *err = bad_request("response_format other than text is not supported");
      return false;
    }
    return true;
  }

  void openai_generate(const httplib::Request& req, httplib::Response& res, bool chat) {
    ApiError err;
    auto body = parse_body(req, &err);
    if (!body) return openai_error(res, err);
    Job job;
    job.chat = chat;
    bool stream = false;
    if (!get_field(*body, "stream", stream, &err)) return openai_error(res, err);
    bool include_usage = false;
    if (auto it = body->find("stream_options"); it != body->end() && it->is_object()) {
      if (!get_field(*it, "include_usage", include_usage, &err)) return openai_error(res, err);
    }
    if (chat) {
      if (!parse_messages(*body, job.messages, &err)) return openai_error(res, err);
      if (job.messages.empty()) return openai_error(res, bad_request("field 'messages' must not be empty"));
    } else {
      auto it = body->find("prompt");
      if (it == body->end() || !(it->is_string() || (it->is_array() && it->size() == 1 && (*it)[0].is_string()))) {
        return openai_error(res, bad_request("field 'prompt' must be a string"));
      }
      job.prompt = it->is_string() ? it->get<std::string>() : (*it)[0].get<std::string>();
      if (job.prompt.empty()) return openai_error(res, bad_request("field 'prompt' must not be empty"));
      job.raw = true;
      if (!job.params.num_predict) job.params.num_predict = 16;  // OpenAI's default max_tokens
    }
    if (!openai_params(*body, job, &err)) return openai_error(res, err);
    auto entry = resolve_model(*body, &err);
    if (!entry) return openai_error(res, err);
    job.entry = std::move(*entry);
    const std::string model = job.entry.name;
    const std::string id = (chat ? "chatcmpl-" : "cmpl-") + std::to_string(++request_seq);
    const int64_t created = static_cast<int64_t>(std::time(nullptr));
    auto finish = [](const GenerateResult& g) { return g.done_reason == "length" ? "length" : "stop"; };
    auto usage = [](const GenerateResult& g) {
      return json{{"prompt_tokens", g.prompt_tokens}, {"completion_tokens", g.eval_tokens},
                  {"total_tokens", g.prompt_tokens + g.eval_tokens}};
    };
    if (!stream) {
      int status = 500;
      auto r = run_job(job, nullptr, nullptr, &status);
      if (!r.ok()) return openai_error(res, {status, r.error().message});
      json choice;
      if (chat) {
        json msg{{"role", "assistant"}, {"content", r->gen.content}};
        if (job.think && !r->gen.thinking.empty()) msg["reasoning"] = r->gen.thinking;
        choice = {{"index", 0}, {"message", msg}, {"finish_reason", finish(r->gen)}, {"logprobs", nullptr}};
      } else {
        choice = {{"index", 0}, {"text", r->gen.content}, {"finish_reason", finish(r->gen)}, {"logprobs", nullptr}};
      }
      return send_json(res, 200, json{{"id", id}, {"object", chat ? "chat.completion" : "text_completion"},
                                      {"created", created}, {"model", model}, {"system_fingerprint", "nibble"},
                                      {"choices", json::array({choice})}, {"usage", usage(r->gen)}});
    }
    auto shared_job = std::make_shared<Job>(std::move(job));
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream", [=, this](size_t, httplib::DataSink& sink) {
      std::atomic<bool> gone{false};
      auto send = [&](const std::string& payload) {
        const std::string s = "data: " + payload + "\n\n";
        if (!sink.is_writable() || !sink.write(s.data(), s.size())) gone = true;
        return !gone.load();
      };
      auto chunk = [&](const json& delta_or_text, const json& finish_reason) {
        json c{{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
               {"model", model}, {"system_fingerprint", "nibble"}};
        json choice{{"index", 0}, {"finish_reason", finish_reason}, {"logprobs", nullptr}};
        if (chat) {
          choice["delta"] = delta_or_text;
        } else {
          choice["text"] = delta_or_text;
        }
        c["choices"] = json::array({choice});
        return c;
      };
      bool first = true;
      int status = 500;
      auto r = run_job(*shared_job, &gone, [&](const std::string& c, const std::string& t) {
        json delta = json::object();
        if (chat && first) delta["role"] = "assistant";
        if (!c.empty()) delta["content"] = c;
        if (shared_job->think && !t.empty()) delta["reasoning"] = t;
        if (!chat && c.empty()) return true;
        if (chat && !delta.contains("content") && !delta.contains("reasoning")) return true;
        first = false;
        return send(chunk(chat ? delta : json(c), nullptr).dump(-1, ' ', false, json::error_handler_t::replace));
      }, &status);
      if (!r.ok()) {
        send(json{{"error", {{"message", r.error().message}, {"type", status >= 500 ? "server_error" : "invalid_request_error"}}}}.dump());
      } else if (!gone) {
        json last = chunk(chat ? json::object() : json(""), finish(r->gen));
        if (chat && first) last["choices"][0]["delta"]["role"] = "assistant";
        send(last.dump());
        if (include_usage) {
          json u{{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
                 {"model", model}, {"choices", json::array()}, {"usage", usage(r->gen)}};
          send(u.dump());
        }
      }
      if (!gone) send("[DONE]");
      sink.done();
      return true;
    });
  }

  void openai_models(httplib::Response& res) {
    json data = json::array();
    for (const auto& e : store.list()) {
      data.push_back({{"id", e.name}, {"object", "model"}, {"created", 0}, {"owned_by", "nibble"}});
    }
    send_json(res, 200, json{{"object", "list"}, {"data", data}});
  }

  // ---- metrics -----------------------------------------------------------------------------

  std::string metrics_text() {
    std::string out;
    auto line = [&](const std::string& s) { out += s + "\n"; };
    line("# HELP nibble_http_requests_total HTTP requests by path and status.");
    line("# TYPE nibble_http_requests_total counter");
    {
      std::lock_guard<std::mutex> g(metrics_mu);
      for (const auto& [k, v] : requests) {
        line("nibble_http_requests_total{path=\"" + k.first + "\",status=\"" + std::to_string(k.second) + "\"} " + std::to_string(v));
      }
    }
    auto counter = [&](const char* name, const char* help, double v) {
      line(std::string("# HELP ") + name + " " + help);
      line(std::string("# TYPE ") + name + " counter");
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", v);
      line(std::string(name) + " " + buf);
    };
    auto gauge = [&](const char* name, const char* help, double v) {
      line(std::string("# HELP ") + name + " " + help);
      line(std::string("# TYPE ") + name + " gauge");
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", v);
      line(std::string(name) + " " + buf);
    };
    counter("nibble_prompt_tokens_total", "Prompt tokens of finished generations.", static_cast<double>(prompt_tokens_total.load()));
    counter("nibble_generated_tokens_total", "Tokens generated.", static_cast<double>(eval_tokens_total.load()));
    counter("nibble_prompt_seconds_total", "Seconds spent evaluating prompts.", prompt_seconds_total.load());
    counter("nibble_generation_seconds_total", "Seconds spent generating.", eval_seconds_total.load());
    counter("nibble_model_loads_total", "Model loads.", static_cast<double>(loads_total.load()));
    counter("nibble_model_unloads_total", "Model unloads.", static_cast<double>(unloads_total.load()));
    counter("nibble_requests_rejected_busy_total", "Requests refused because the queue was full.", static_cast<double>(rejected_busy_total.load()));
    gauge("nibble_queue_depth", "Requests waiting for the model.", waiting.load());
    std::lock_guard<std::mutex> g(state_mu);
    gauge("nibble_model_loaded", "1 when a model is loaded.", loaded_name.empty() ? 0 : 1);
    gauge("nibble_kv_cache_bytes", "KV cache bytes of the loaded model's session.", static_cast<double>(loaded_kv.total()));
    return out;
  }

  // ---- wiring ------------------------------------------------------------------------------

  void install_routes() {
    http.new_task_queue = [n = opts.threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
    http.set_payload_max_length(opts.max_body_bytes);
    // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which would let a second
    // `nibble serve` share the port silently instead of failing with "address in use".
    http.set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    http.set_read_timeout(30, 0);
    http.set_write_timeout(30, 0);
    http.set_keep_alive_max_count(100);
    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(web_chat_page(), "text/html; charset=utf-8");
    });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard<std::mutex> g(state_mu);
      send_json(res, 200, json{{"status", "ok"}, {"model_loaded", !loaded_name.empty()}});
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_text(), "text/plain; version=0.0.4");
    });
    http.Get("/api/version", [](const httplib::Request&, httplib::Response& res) {
      send_json(res, 200, json{{"version", kVersion}});
    });
    http.Get("/api/tags", [this](const httplib::Request&, httplib::Response& res) { ollama_tags(res); });
    http.Get("/api/ps", [this](const httplib::Request&, httplib::Response& res) { ollama_ps(res); });
    http.Post("/api/show", [this](const httplib::Request& q, httplib::Response& r) { ollama_show(q, r); });
    http.Post("/api/generate", [this](const httplib::Request& q, httplib::Response& r) { ollama_generate(q, r, false); });
    http.Post("/api/chat", [this](const httplib::Request& q, httplib::Response& r) { ollama_generate(q, r, true); });
    http.Post("/v1/chat/completions", [this](const httplib::Request& q, httplib::Response& r) { openai_generate(q, r, true); });
    http.Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& r) { openai_generate(q, r, false); });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& r) { openai_models(r); });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_json(res, 500, json{{"error", printable(what, 200)}});
    });
    // Errors httplib produces itself (404 route, 413 too large, 400 bad request line) get a JSON
    // body in the shape of the API the path belongs to.
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      std::string msg;
      switch (res.status) {
        case 404: msg = "no such endpoint: " + printable(req.method, 16) + " " + printable(req.path, 120); break;
        case 405: msg = "method not allowed"; break;
        case 413: msg = "the request body is too large"; break;
        case 414: msg = "the request URI is too long"; break;
        default: msg = "bad request"; break;
      }
      if (req.path.rfind("/v1/", 0) == 0) {
        openai_error(res, {res.status, msg});
      } else {
        ollama_error(res, {res.status, msg});
      }
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      count(req.path, res.status);
      if (opts.log_requests) {
        std::fprintf(stderr, "nibble serve: %s %s -> %d\n", printable(req.method, 16).c_str(),
                     printable(req.path, 120).c_str(), res.status);
      }
    });
  }
};

Server::Server(ModelStore store, ServerOptions opts) : impl_(std::make_unique<Impl>(std::move(store), std::move(opts))) {
  impl_->install_routes();
}

Server::~Server() {
  stop();
  if (impl_->reaper.joinable()) impl_->reaper.join();
}

Status Server::bind() {
  const ServerOptions& o = impl_->opts;
  if (o.port < 0 || o.port > 65535) return make_error(ErrorCode::kInvalidArgument, "--port %d is not in [0, 65535]", o.port);
  if (o.port == 0) {
    impl_->bound_port = impl_->http.bind_to_any_port(o.host);
    if (impl_->bound_port < 0) return make_error(ErrorCode::kIo, "cannot listen on %s (any port)", printable(o.host, 80).c_str());
  } else {
    if (!impl_->http.bind_to_port(o.host, o.port)) {
      return make_error(ErrorCode::kIo, "cannot listen on %s:%d (address in use, or not an address of this machine)",
                        printable(o.host, 80).c_str(), o.port);
    }
    impl_->bound_port = o.port;
  }
  return ok_status();
}

Status Server::run() {
  impl_->run_entered = true;
  if (impl_->stopping.load()) {  // stop() came first
    impl_->run_exited = true;
    return ok_status();
  }
  impl_->reaper = std::thread([this] { impl_->reaper_loop(); });
  const bool ok = impl_->http.listen_after_bind();
  impl_->run_exited = true;
  if (!ok && !impl_->stopping.load()) {
    return make_error(ErrorCode::kIo, "the server stopped listening unexpectedly");
  }
  return ok_status();
}

void Server::stop() {
  impl_->stopping = true;
  impl_->reaper_cv.notify_all();
  // httplib's stop() only works once the accept loop runs: wait for run() to get there (or end).
  if (impl_->run_entered.load()) {
    for (int i = 0; i < 5000 && !impl_->http.is_running() && !impl_->run_exited.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  impl_->http.stop();
}

int Server::port() const { return impl_->bound_port; }

}  // namespace nibble
