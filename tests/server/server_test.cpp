// `nibble serve` in-process on a free port, driven by an HTTP client: API shapes, greedy replies
// checked against the CLI's own generation loop, streaming = non-streaming, keep_alive, 1,000
// hostile requests (server still answers, memory bounded), and the official ollama/openai JS
// clients (tests/server/clients.mjs; skipped when scripts/npm-peers.sh has not installed them).
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

#include "server/server.h"
#include "store/json_io.h"
#include "test_util.h"

namespace nibble {
namespace {

using json = nlohmann::json;

class ServerTest : public ::testing::Test {
 protected:
  void start(ServerOptions o = {}) {
    home_ = test::temp_dir();
    o.host = "127.0.0.1";
    o.port = 0;
    o.log_requests = false;
    server_ = std::make_unique<Server>(ModelStore(home_, test::source_dir() + "/models/nibble-tiny-e.gguf"), o);
    ASSERT_TRUE(server_->bind().ok());
    thread_ = std::thread([this] { (void)server_->run(); });
    port_ = server_->port();
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Client client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    return c;
  }
  json post(const std::string& path, const json& body, int* status = nullptr) {
    auto c = client();
    auto r = c.Post(path, body.dump(), "application/json");
    EXPECT_TRUE(r) << path;
    if (!r) return json();
    if (status) *status = r->status;
    auto j = json::parse(r->body, nullptr, false);
    return j;
  }
  json get(const std::string& path) {
    auto c = client();
    auto r = c.Get(path);
    EXPECT_TRUE(r && r->status == 200) << path;
    return r ? json::parse(r->body, nullptr, false) : json();
  }

  std::string home_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int port_ = 0;
};

json chat_body(int n, bool stream) {
  return {{"model", "nibble-tiny-e"}, {"messages", {{{"role", "user"}, {"content", "The old prince"}}}},
          {"stream", stream}, {"options", {{"temperature", 0}, {"num_predict", n}}}};
}

TEST_F(ServerTest, EndpointsAndGreedyReplies) {
  start();
  EXPECT_EQ(get("/api/version")["version"], "0.1.0");
  EXPECT_EQ(get("/health")["status"], "ok");
  auto tags = get("/api/tags");
  ASSERT_TRUE(tags["models"].is_array());
  EXPECT_EQ(tags["models"][0]["name"], "nibble-tiny-e:latest");
  EXPECT_EQ(tags["models"][0]["details"]["family"], "gemma4");
  EXPECT_EQ(get("/api/ps")["models"].size(), 0u);
  EXPECT_EQ(get("/v1/models")["data"][0]["id"], "nibble-tiny-e:latest");

  // /v1/completions (raw text, greedy) equals `nibble run --temp 0`: a separate code path.
  int status = 0;
  auto comp = post("/v1/completions", {{"model", "nibble-tiny-e"}, {"prompt", "The old prince"}, {"max_tokens", 8}, {"temperature", 0}}, &status);
  ASSERT_EQ(status, 200) << comp.dump();
  auto cli = test::run_nibble({"run", "--temp", "0", "-n", "8", "-q", "The old prince"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(comp["choices"][0]["text"].get<std::string>() + "\n", cli.out);
  EXPECT_EQ(comp["usage"]["completion_tokens"], 8);

  // Ollama chat: NDJSON stream = non-streamed reply = OpenAI chat.
  auto whole = post("/api/chat", chat_body(10, false), &status);
  ASSERT_EQ(status, 200) << whole.dump();
  EXPECT_EQ(whole["done"], true);
  const std::string text = whole["message"]["content"];
  EXPECT_FALSE(text.empty());
  auto c = client();
  auto r = c.Post("/api/chat", chat_body(10, true).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/x-ndjson");
  std::string streamed;
  int lines = 0;
  bool done = false;
  size_t a = 0;
  while (a < r->body.size()) {
    const size_t nl = r->body.find('\n', a);
    ASSERT_NE(nl, std::string::npos);
    auto j = json::parse(r->body.substr(a, nl - a));
    streamed += j["message"]["content"].get<std::string>();
    done = j["done"].get<bool>();
    ++lines;
    a = nl + 1;
  }
  EXPECT_TRUE(done);
  EXPECT_GE(lines, 3);
  EXPECT_EQ(streamed, text);
  auto oa = post("/v1/chat/completions", {{"model", "nibble-tiny-e"}, {"messages", {{{"role", "user"}, {"content", "The old prince"}}}}, {"max_tokens", 10}, {"temperature", 0}}, &status);
  ASSERT_EQ(status, 200);
  EXPECT_EQ(oa["choices"][0]["message"]["content"], text);
  // SSE: data: lines ending with [DONE], content deltas concatenating to the same text.
  auto sse = c.Post("/v1/chat/completions", json{{"model", "nibble-tiny-e"}, {"messages", {{{"role", "user"}, {"content", "The old prince"}}}}, {"max_tokens", 10}, {"temperature", 0}, {"stream", true}}.dump(), "application/json");
  ASSERT_TRUE(sse);
  std::string sse_text;
  bool saw_done = false;
  for (size_t p = 0; (p = sse->body.find("data: ", p)) != std::string::npos;) {
    const size_t e = sse->body.find("\n\n", p);
    const std::string payload = sse->body.substr(p + 6, e - p - 6);
    p = e;
    if (payload == "[DONE]") {
      saw_done = true;
      continue;
    }
    auto j = json::parse(payload);
    sse_text += j["choices"][0]["delta"].value("content", "");
  }
  EXPECT_TRUE(saw_done);
  EXPECT_EQ(sse_text, text);
  // The loaded model shows in /api/ps with its context and KV bytes.
  auto ps = get("/api/ps");
  ASSERT_EQ(ps["models"].size(), 1u);
  EXPECT_EQ(ps["models"][0]["context_length"], 4096);
  EXPECT_GT(ps["models"][0]["kv_cache_bytes"]["full_attention"].get<int64_t>(), 0);
  auto show = post("/api/show", {{"model", "nibble-tiny-e"}}, &status);
  EXPECT_EQ(status, 200);
  EXPECT_NE(show["template"].get<std::string>().find("<|turn>"), std::string::npos);
  // `nibble ps` reads the same from the running server.
  auto ps_cli = test::run_nibble({"ps", "--host", "127.0.0.1:" + std::to_string(port_)});
  ASSERT_EQ(ps_cli.exit_code, 0) << ps_cli.err;
  EXPECT_NE(ps_cli.out.find("nibble-tiny-e:latest"), std::string::npos) << ps_cli.out;
  EXPECT_NE(ps_cli.out.find(" 4096 "), std::string::npos) << ps_cli.out;
  EXPECT_NE(ps_cli.out.find("100% CPU"), std::string::npos) << ps_cli.out;
  auto no_server = test::run_nibble({"ps", "--host", "127.0.0.1:1"});
  EXPECT_EQ(no_server.exit_code, 1);
  EXPECT_NE(no_server.err.find("nibble serve"), std::string::npos) << no_server.err;
  // Page and metrics.
  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("<title>nibble chat</title>"), std::string::npos);
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("nibble_http_requests_total{path=\"/api/chat\",status=\"200\"}"), std::string::npos);
  EXPECT_NE(metrics->body.find("nibble_generated_tokens_total"), std::string::npos);
}

TEST_F(ServerTest, APortInUseIsAnError) {
  start();
  ServerOptions o;
  o.port = port_;
  o.log_requests = false;
  Server second(ModelStore(test::temp_dir(), ""), o);
  Status st = second.bind();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find(std::to_string(port_)), std::string::npos) << st.error().message;
  o.port = 70000;
  Server bad(ModelStore(test::temp_dir(), ""), o);
  EXPECT_FALSE(bad.bind().ok());
}

TEST_F(ServerTest, KeepAliveLoadsAndUnloads) {
  start();
  int status = 0;
  auto load = post("/api/generate", {{"model", "nibble-tiny-e"}}, &status);
  ASSERT_EQ(status, 200) << load.dump();
  EXPECT_EQ(load["done_reason"], "load");
  EXPECT_EQ(get("/api/ps")["models"].size(), 1u);
  auto unload = post("/api/generate", {{"model", "nibble-tiny-e"}, {"keep_alive", 0}}, &status);
  EXPECT_EQ(unload["done_reason"], "unload");
  EXPECT_EQ(get("/api/ps")["models"].size(), 0u);
  auto body = chat_body(2, false);
  body["keep_alive"] = "300ms";
  post("/api/chat", body, &status);
  ASSERT_EQ(status, 200);
  EXPECT_EQ(get("/api/ps")["models"].size(), 1u);
  for (int i = 0; i < 50 && get("/api/ps")["models"].size() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(get("/api/ps")["models"].size(), 0u);
  body["keep_alive"] = -1;
  post("/api/chat", body, &status);
  EXPECT_EQ(get("/api/ps")["models"][0]["expires_at"], "2318-01-01T00:00:00Z");
}

TEST_F(ServerTest, ValidationErrorsAre4xxJson) {
  start();
  struct Case {
    std::string path, body;
    int status;
  };
  const std::string deep(100000, '[');
  std::vector<Case> cases = {
      {"/api/chat", "", 400},
      {"/api/chat", "{", 400},
      {"/api/chat", "[1,2]", 400},
      {"/api/chat", deep, 400},
      {"/api/chat", R"({"messages":[]})", 400},
      {"/api/chat", R"({"model":"nibble-tiny-e","messages":"hi"})", 400},
      {"/api/chat", R"({"model":"nibble-tiny-e","messages":[{"role":"tool","content":"x"}]})", 400},
      {"/api/chat", R"({"model":"nibble-tiny-e","messages":[{"role":"user","content":{"a":1}}]})", 400},
      {"/api/chat", R"({"model":"nibble-tiny-e","messages":[{"role":"user","content":"x","images":["aGk="]}]})", 400},
      {"/api/chat", R"({"model":"nibble-tiny-e","messages":[{"role":"user","content":"x"}],"tools":[{}]})", 400},
      {"/api/chat", R"({"model":"nibble-tiny-e","messages":[{"role":"user","content":"x"}],"format":"json"})", 400},
      {"/api/chat", R"({"model":"nibble-tiny-e","messages":[{"role":"user","content":"x"}],"stream":"yes"})", 400},
      {"/api/chat", R"({"model":"nibble-tiny-e","messages":[{"role":"user","content":"x"}],"options":{"num_ctx":"big"}})", 400},
      {"/api/chat", R"({"model":"nibble-tiny-e","messages":[{"role":"user","content":"x"}],"options":{"num_ctx":1000000},"stream":false})", 400},
      {"/api/chat", R"({"model":"nibble-tiny-e","messages":[{"role":"user","content":"x"}],"options":{"temperature":-1}})", 400},
      {"/api/chat", R"({"model":"nibble-tiny-e","messages":[{"role":"user","content":"x"}],"options":{"mirostat":2}})", 400},
      {"/api/chat", R"({"model":"nibble-tiny-e","messages":[{"role":"user","content":"x"}],"keep_alive":"soon"})", 400},
      {"/api/chat", R"({"model":"nibble-tiny-e","messages":[{"role":"user","content":"x"}],"think":"maybe"})", 400},
      {"/api/chat", R"({"model":"no-such","messages":[]})", 404},
      {"/api/chat", R"({"model":"bad name\n","messages":[]})", 404},
      {"/api/chat", "{\"model\":\"nibble-tiny-e\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}", 400},
      {"/api/generate", R"({"model":"nibble-tiny-e","prompt":5})", 400},
      {"/api/generate", R"({"model":"nibble-tiny-e","prompt":"x","suffix":"y"})", 400},
      {"/api/generate", R"({"model":"nibble-tiny-e","prompt":"x","template":"{{ .Messages }}"})", 400},
      {"/api/show", R"({})", 400},
      {"/v1/chat/completions", R"({"model":"nibble-tiny-e","messages":[]})", 400},
      {"/v1/chat/completions", R"({"model":"nibble-tiny-e","messages":[{"role":"user","content":"x"}],"n":3})", 400},
      {"/v1/chat/completions", R"({"model":"nibble-tiny-e","messages":[{"role":"user","content":[{"type":"image_url"}]}]})", 400},
      {"/v1/chat/completions", R"({"model":"nibble-tiny-e","messages":[{"role":"user","content":"x"}],"max_tokens":-5})", 400},
      {"/v1/completions", R"({"model":"nibble-tiny-e","prompt":["a","b"]})", 400},
      {"/v1/completions", R"({"model":"nibble-tiny-e","prompt":""})", 400},
      {"/v1/nothing", R"({})", 404},
  };
  auto c = client();
  for (const auto& k : cases) {
    auto r = c.Post(k.path, k.body, "application/json");
    ASSERT_TRUE(r) << k.path << " " << k.body.substr(0, 80);
    EXPECT_EQ(r->status, k.status) << k.path << " " << k.body.substr(0, 120) << " -> " << r->body;
    auto j = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << r->body;
    EXPECT_TRUE(j.contains("error")) << r->body;
    if (k.path.rfind("/v1/", 0) == 0) {
      EXPECT_TRUE(j["error"].is_object()) << r->body;
    }
  }
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kUnderAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kUnderAsan = true;
#else
constexpr bool kUnderAsan = false;
#endif
#else
constexpr bool kUnderAsan = false;
#endif

#if defined(__SANITIZE_ADDRESS__)
// A small AddressSanitizer quarantine for this executable, so that freed request buffers are
// reused soon and the memory-bound check below measures the server, not the quarantine.
extern "C" const char* __asan_default_options() { return "quarantine_size_mb=16"; }
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
extern "C" const char* __asan_default_options() { return "quarantine_size_mb=16"; }
#endif
#endif

size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Sends raw bytes over TCP and reads whatever comes back (the server may just close).
std::string raw_exchange(int port, const std::string& bytes) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    (void)!write(fd, bytes.data(), bytes.size());
    shutdown(fd, SHUT_WR);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

TEST_F(ServerTest, ThousandHostileRequestsLeaveItAnswering) {
  ServerOptions o;
  o.max_body_bytes = 64 << 10;
  start(o);
  // Warm up (model loaded, allocator settled) before measuring memory.
  int status = 0;
  post("/api/chat", chat_body(4, false), &status);
  ASSERT_EQ(status, 200);
  const size_t rss0 = rss_bytes();
  std::mt19937 rng(1234);
  int n_4xx = 0, n_raw = 0;
  auto flood = [&] {
  const char* paths[] = {"/api/chat", "/api/generate", "/v1/chat/completions", "/v1/completions", "/api/show"};
  for (int i = 0; i < 1000; ++i) {
    const std::string path = paths[i % 5];
    std::string body;
    switch (i % 10) {
      case 0: {  // random bytes
        body.resize(rng() % 2000);
        for (char& ch : body) ch = static_cast<char>(rng());
        break;
      }
      case 1:  // nesting bomb
        body = std::string(20000 + rng() % 20000, '[');
        break;
      case 2:  // over the size cap
        body = "{\"model\":\"" + std::string(70 << 10, 'a') + "\"}";
        break;
      case 3:  // wrong types everywhere
        body = R"({"model":["x"],"messages":{"role":1},"options":[],"stream":3})";
        break;
      case 4:  // a huge model name with control characters
        body = "{\"model\":\"" + std::string(5000, 'm') + "\\u0000\\n\",\"messages\":[]}";
        break;
      case 5:  // hostile options
        body = R"({"model":"nibble-tiny-e","messages":[{"role":"user","content":"x"}],"prompt":"x","options":{"num_ctx":99999999,"num_predict":1e300,"top_k":-1}})";
        break;
      case 6:  // many messages of the wrong shape
        body = "{\"model\":\"nibble-tiny-e\",\"messages\":[" + std::string(4000, '1') + "]}";
        break;
      case 7:  // truncated JSON
        body = chat_body(1, false).dump().substr(0, 1 + rng() % 60);
        break;
      case 8: {  // raw protocol garbage over TCP
        const std::string reqs[] = {
            "GARBAGE\r\n\r\n",
            "POST /api/chat HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n{}",
            "GET /" + std::string(20000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /api/chat HTTP/1.1\r\nHost: x\r\nX: " + std::string(20000, 'h') + "\r\n\r\n",
            "POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        };
        raw_exchange(port_, reqs[rng() % 5]);
        ++n_raw;
        continue;
      }
      default:  // unknown model / invalid UTF-8
        body = (i % 20 == 9) ? "{\"model\":\"x\xff\",\"messages\":[]}" : R"({"model":"ghost:v9","messages":[]})";
        break;
    }
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    auto r = c.Post(path, body, "application/json");
    if (!r) continue;  // the server may close a connection without a reply (counted below)
    EXPECT_GE(r->status, 400) << path << " " << body.substr(0, 80);
    EXPECT_LT(r->status, 500) << path << " " << body.substr(0, 80) << " -> " << r->body;
    if (r->status >= 400 && r->status < 500) ++n_4xx;
    EXPECT_TRUE(json::parse(r->body, nullptr, false).contains("error")) << r->body.substr(0, 200);
  }
  };
  flood();
  const size_t rss1 = rss_bytes();
  EXPECT_EQ(n_raw, 100);
  EXPECT_GE(n_4xx, 850);
  // Still answering correctly, and memory did not grow with the flood.
  EXPECT_EQ(get("/health")["status"], "ok");
  auto after = post("/api/chat", chat_body(4, false), &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(after["done"], true);
  // Bounded memory: a second flood of 1,000 adds (almost) nothing. (The first may grow RSS by
  // allocator caches, and under AddressSanitizer by its quarantine of up to 256 MiB.)
  n_4xx = n_raw = 0;
  flood();
  EXPECT_EQ(n_raw, 100);
  EXPECT_GE(n_4xx, 850);
  const size_t rss2 = rss_bytes();
  // AddressSanitizer keeps shadow memory and per-thread allocator caches for the server's
  // connection threads (clang's grew RSS by 35 MiB here): twice the room there. A leak of the
  // flood's request bodies would still be far above either bound.
  EXPECT_LT(rss2, rss1 + (kUnderAsan ? (64u << 20) : (32u << 20)))
      << "RSS after flood 1: " << rss1 << ", after flood 2: " << rss2;
  std::printf("RSS before: %zu MiB, after flood 1: %zu MiB, after flood 2: %zu MiB\n", rss0 >> 20, rss1 >> 20, rss2 >> 20);
#if !defined(__SANITIZE_ADDRESS__)
#if !defined(__has_feature)
  EXPECT_LT(rss1, rss0 + (64u << 20)) << "RSS grew from " << rss0 << " to " << rss1;
#elif !__has_feature(address_sanitizer)
  EXPECT_LT(rss1, rss0 + (64u << 20)) << "RSS grew from " << rss0 << " to " << rss1;
#endif
#endif
}

// 4,000 turns in a 512-token context: the oldest are dropped (each message tokenized once, the
// cut found by bisection), so the reply comes quickly rather than after thousands of re-renders.
TEST_F(ServerTest, LongConversationIsTrimmedQuickly) {
  start();
  json msgs = json::array();
  for (int i = 0; i < 4000; ++i) {
    msgs.push_back({{"role", i % 2 ? "assistant" : "user"},
                    {"content", "turn " + std::to_string(i) + " the old prince walked along the river " + std::string(400, 'x')}});
  }
  msgs.push_back({{"role", "user"}, {"content", "and then?"}});
  const json body{{"model", "nibble-tiny-e"}, {"messages", msgs}, {"stream", false},
                  {"options", {{"num_ctx", 512}, {"num_predict", 4}, {"temperature", 0}}}};
  const auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  auto r = post("/api/chat", body, &status);
  EXPECT_EQ(status, 200) << r.dump().substr(0, 300);
  EXPECT_LE(r.value("prompt_eval_count", 100000), 512);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
}

TEST_F(ServerTest, ConcurrentRequestsAreQueued) {
  start();
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  std::vector<std::string> texts(4);
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", port_);
      c.set_read_timeout(120, 0);
      auto r = c.Post("/api/chat", chat_body(6, i % 2 == 0).dump(), "application/json");
      if (r && r->status == 200) {
        ++ok;
        texts[i] = r->body;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 4);
  // A client that walks away mid-stream does not stop the server, and its generation stops.
  auto generated = [&] {
    auto c = client();
    auto m = c.Get("/metrics");
    const std::string key = "\nnibble_generated_tokens_total ";
    const size_t at = m ? m->body.find(key) : std::string::npos;
    return at == std::string::npos ? -1.0 : std::atof(m->body.c_str() + at + key.size());
  };
  const double before = generated();
  ASSERT_GE(before, 0);
  {
    const std::string body = chat_body(500, true).dump();
    const std::string req = "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
    char buf[256];
    ASSERT_GT(read(fd, buf, sizeof buf), 0);  // the stream has started
    close(fd);                                 // and the client walks away
  }
  int status = 0;
  post("/api/chat", chat_body(2, false), &status);  // queued behind the abandoned one
  EXPECT_EQ(status, 200);
  EXPECT_LT(generated() - before, 250) << "the abandoned stream (num_predict 500) ran on";
}

TEST_F(ServerTest, OfficialJavaScriptClients) {
  const std::string dir = test::source_dir() + "/tests/server";
  if (!test::file_exists(dir + "/node_modules/ollama/package.json") ||
      !test::file_exists(dir + "/node_modules/openai/package.json")) {
    GTEST_SKIP() << "the ollama/openai npm packages are not installed (run scripts/npm-peers.sh)";
  }
  if (std::system("node --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "node is not installed";
  start();
  const std::string cmd = "node " + dir + "/clients.mjs http://127.0.0.1:" + std::to_string(port_) + " " +
                          test::nibble_binary() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("all client checks passed"), std::string::npos) << out;
  std::printf("%s", out.c_str());
}

TEST_F(ServerTest, WebChatPageInHeadlessChromium) {
  if (std::system("command -v chromium > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh)";
  }
  if (std::system("node --experimental-websocket -e 'if (typeof WebSocket !== \"function\") process.exit(1)' > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "node with WebSocket support (>= 20.10) is not installed";
  }
  start();
  const std::string cmd = "node --no-warnings --experimental-websocket " + test::source_dir() +
                          "/tests/server/webpage.mjs http://127.0.0.1:" + std::to_string(port_) + " chromium 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_NE(out.find("ok   web page chat"), std::string::npos) << out;
}

}  // namespace
}  // namespace nibble
