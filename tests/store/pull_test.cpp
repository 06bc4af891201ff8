// `nibble pull` against a local HTTP server: plain URLs, the Hugging Face registry form
// (manifest -> blob, as Ollama resolves hf.co/ORG/REPO:QUANT), sha256 checks, resuming after an
// interrupted download, and hostile responses.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "store/pull.h"
#include "store/store.h"
#include "test_util.h"

namespace nibble {
namespace {

namespace fs = std::filesystem;

class PullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = test::read_bytes(test::source_dir() + "/models/nibble-tiny-e.gguf");
    bytes_.assign(model_.begin(), model_.end());
    sha_ = test::sha256_hex(model_.data(), model_.size());
    home_ = test::temp_dir();
    http_.Get("/models/tiny.gguf", [this](const httplib::Request& req, httplib::Response& res) {
      if (req.has_header("Range")) ranges_.push_back(req.get_header_value("Range"));
      if (truncate_next_.exchange(false)) {
        res.set_content_provider(bytes_.size(), "application/octet-stream",
                                 [this](size_t offset, size_t, httplib::DataSink& sink) {
                                   if (offset >= bytes_.size() / 2) return false;  // the connection drops
                                   sink.write(bytes_.data() + offset, std::min<size_t>(65536, bytes_.size() / 2 - offset));
                                   return true;
                                 });
        return;
      }
      res.set_content(bytes_, "application/octet-stream");  // httplib answers Range with 206
    });
    http_.Get("/models/junk.gguf", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(5000, 'j'), "application/octet-stream");
    });
    http_.Get("/hf/v2/org/repo/manifests/Q8_0", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(manifest(sha_), "application/vnd.docker.distribution.manifest.v2+json");
    });
    http_.Get("/hf/v2/org/repo/manifests/latest", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(manifest(sha_), "application/vnd.docker.distribution.manifest.v2+json");
    });
    http_.Get("/hf/v2/org/bad/manifests/latest", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(manifest(std::string(64, 'a')), "application/json");
    });
    http_.Get("/hf/v2/org/weird/manifests/latest", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"md5:x"}]})", "application/json");
    });
    http_.Get(R"(/hf/v2/org/(repo|bad)/blobs/sha256:([0-9a-f]{64}))", [this](const httplib::Request& req, httplib::Response& res) {
      res.set_redirect("/models/tiny.gguf");  // Hugging Face redirects blobs to its CDN
      (void)req;
    });
    port_ = http_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { http_.listen_after_bind(); });
  }
  void TearDown() override {
    http_.stop();
    thread_.join();
  }
  static std::string manifest(const std::string& sha) {
    return R"({"schemaVersion":2,"layers":[{"mediaType":"application/vnd.ollama.image.template","digest":"sha256:)" +
           std::string(64, 'b') + R"(","size":10},{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:)" + sha +
           R"(","size":14392576}]})";
  }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::vector<uint8_t> model_;
  std::string bytes_, sha_, home_;
  httplib::Server http_;
  std::thread thread_;
  int port_ = 0;
  std::vector<std::string> ranges_;
  std::atomic<bool> truncate_next_{false};
};

TEST_F(PullTest, PlainUrlWithAndWithoutChecksum) {
  ASSERT_EQ(model_.size(), 14392576u) << "the manifest's size field assumes the bundled model's size";
  ModelStore store(home_, "");
  PullOptions o;
  o.source = base() + "/models/tiny.gguf";
  uint64_t last = 0;
  o.progress = [&](uint64_t done, uint64_t) { last = done; };
  auto r = pull_model(store, o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->entry.name, "tiny:latest");
  EXPECT_EQ(r->sha256, sha_);
  EXPECT_EQ(last, model_.size());
  EXPECT_EQ(test::read_bytes(home_ + "/blobs/sha256-" + sha_), model_);
  o.name = "checked";
  o.sha256 = sha_;
  EXPECT_TRUE(pull_model(store, o).ok());
  // A wrong checksum removes the download and writes no entry.
  ModelStore fresh(test::temp_dir(), "");
  o.name = "wrong";
  o.sha256 = std::string(64, 'c');
  auto bad = pull_model(fresh, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("expected " + std::string(64, 'c')), std::string::npos) << bad.error().message;
  EXPECT_FALSE(fresh.exists("wrong"));
  EXPECT_TRUE(fs::is_empty(fresh.blobs_dir()));
}

TEST_F(PullTest, HuggingFaceFormAndResume) {
  ModelStore store(home_, "");
  // A partial file from an earlier, interrupted pull: the rest is fetched with Range.
  fs::create_directories(store.blobs_dir());
  test::write_bytes(store.blobs_dir() + "/sha256-" + sha_ + "-partial",
                    std::vector<uint8_t>(model_.begin(), model_.begin() + (1 << 20)));
  PullOptions o;
  o.source = "hf.co/org/repo:Q8_0";
  o.hf_base_url = base() + "/hf";
  auto r = pull_model(store, o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->entry.name, "hf.co/org/repo:Q8_0");
  EXPECT_EQ(r->resumed_from, 1u << 20);
  ASSERT_EQ(ranges_.size(), 1u);
  EXPECT_EQ(ranges_[0], "bytes=1048576-");
  EXPECT_EQ(test::read_bytes(r->entry.model_path), model_);
  // A repeated pull (another tag, same digest) downloads nothing.
  o.source = "hf.co/org/repo";
  auto again = pull_model(store, o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->entry.name, "hf.co/org/repo:latest");
  EXPECT_EQ(ranges_.size(), 1u);
}

TEST_F(PullTest, InterruptedDownloadResumes) {
  ModelStore store(home_, "");
  PullOptions o;
  o.source = "hf.co/org/repo:Q8_0";
  o.hf_base_url = base() + "/hf";
  truncate_next_ = true;
  auto first = pull_model(store, o);
  ASSERT_FALSE(first.ok());
  EXPECT_NE(first.error().message.find("again to resume"), std::string::npos) << first.error().message;
  const std::string partial = store.blobs_dir() + "/sha256-" + sha_ + "-partial";
  ASSERT_TRUE(fs::exists(partial));
  const uint64_t have = fs::file_size(partial);
  EXPECT_GT(have, 0u);
  EXPECT_FALSE(store.exists("hf.co/org/repo:Q8_0"));
  auto second = pull_model(store, o);
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->resumed_from, have);
  EXPECT_EQ(test::read_bytes(second->entry.model_path), model_);
  EXPECT_FALSE(fs::exists(partial));
}

TEST_F(PullTest, HostileSourcesAndResponses) {
  ModelStore store(home_, "");
  auto err = [&](PullOptions o) {
    if (o.hf_base_url.empty()) o.hf_base_url = base() + "/hf";
    auto r = pull_model(store, o);
    EXPECT_FALSE(r.ok()) << o.source;
    return r.ok() ? std::string() : r.error().message;
  };
  EXPECT_NE(err({"ftp://example.com/x.gguf"}).find("not an http"), std::string::npos);
  EXPECT_NE(err({"hf.co/justone"}).find("hf.co/ORG/REPO"), std::string::npos);
  EXPECT_NE(err({"hf.co/org/none:Q4"}).find("404"), std::string::npos);
  EXPECT_NE(err({"hf.co/org/bad"}).find("sha256"), std::string::npos);  // digest mismatch
  EXPECT_NE(err({"hf.co/org/weird"}).find("digest"), std::string::npos);
  EXPECT_NE(err({base() + "/models/junk.gguf"}).find("not a usable GGUF"), std::string::npos);
  EXPECT_NE(err({base() + "/models/missing.gguf"}).find("404"), std::string::npos);
  EXPECT_NE(err({"http://127.0.0.1:1/x.gguf"}).find("stopped"), std::string::npos);
  PullOptions bad_sha{base() + "/models/tiny.gguf"};
  bad_sha.sha256 = "xyz";
  EXPECT_NE(err(bad_sha).find("--sha256"), std::string::npos);
  PullOptions bad_name{base() + "/models/tiny.gguf"};
  bad_name.name = "no good";
  EXPECT_NE(err(bad_name).find("--name"), std::string::npos);
  EXPECT_EQ(store.list().size(), 1u);  // only the bundled entry
}

TEST_F(PullTest, CommandLine) {
  setenv("NIBBLE_HOME", home_.c_str(), 1);
  auto r = test::run_nibble({"pull", base() + "/models/tiny.gguf", "--name", "t", "--sha256", sha_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("pulled t:latest"), std::string::npos) << r.out;
  EXPECT_NE(test::run_nibble({"list"}).out.find("t:latest"), std::string::npos);
  r = test::run_nibble({"pull", "hf.co/org/repo", "--base-url", base() + "/hf"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::run_nibble({"rm", "t"}).exit_code, 0);
  EXPECT_TRUE(fs::exists(home_ + "/blobs/sha256-" + sha_)) << "still used by hf.co/org/repo";
  EXPECT_EQ(test::run_nibble({"rm", "hf.co/org/repo"}).exit_code, 0);
  EXPECT_FALSE(fs::exists(home_ + "/blobs/sha256-" + sha_)) << "no entry uses it any more";
  r = test::run_nibble({"pull", "hf.co/org/none:Q4", "--base-url", base() + "/hf"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  unsetenv("NIBBLE_HOME");
}

}  // namespace
}  // namespace nibble
