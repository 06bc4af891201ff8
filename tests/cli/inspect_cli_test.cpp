// `nibble inspect` in text and JSON form, checked against the reader's own view of the file.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "gguf/gguf_file.h"
#include "test_util.h"

namespace nibble {
namespace {

std::string bundled_model() { return test::source_dir() + "/models/nibble-tiny-e.gguf"; }

TEST(InspectCli, JsonListsEveryTensorAndKey) {
  auto r = test::run_nibble({"inspect", bundled_model(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  auto f = GgufFile::open(bundled_model());
  ASSERT_TRUE(f.ok());
  const GgufFile& g = *f.value();
  ASSERT_TRUE(j["metadata"].is_object());
  EXPECT_EQ(j["metadata"].size(), g.metadata().size());
  EXPECT_EQ(j["metadata"]["general.architecture"], "gemma4");
  EXPECT_EQ(j["metadata"]["gemma4.block_count"], 6);
  EXPECT_EQ(j["metadata"]["tokenizer.ggml.tokens"].size(), 8192u);
  ASSERT_EQ(j["tensors"].size(), g.tensors().size());
  for (size_t i = 0; i < g.tensors().size(); ++i) {
    const auto& t = g.tensors()[i];
    const auto& jt = j["tensors"][i];
    EXPECT_EQ(jt["name"], t.name);
    EXPECT_EQ(jt["type"], ggml_type_name(t.type));
    EXPECT_EQ(jt["shape"].get<std::vector<uint64_t>>(), t.shape);
    EXPECT_EQ(jt["offset"], t.offset);
    EXPECT_EQ(jt["bytes"], t.n_bytes);
  }
}

TEST(InspectCli, TextShowsGroupsAndBitsPerWeight) {
  auto r = test::run_nibble({"inspect", bundled_model()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"gemma4.attention.sliding_window_pattern", "blk.5.layer_output_scale.weight",
                        "per-layer embedding (PLE)", "bits/w", "total"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  }
  // Q8_0 is 8.5 bits per weight: the embedding group shows it.
  EXPECT_NE(r.out.find("8.500"), std::string::npos);
}

TEST(InspectCli, MissingFileIsOneLineError) {
  auto r = test::run_nibble({"inspect", "/nonexistent/x.gguf"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("nibble: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/x.gguf"), std::string::npos);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
}

}  // namespace
}  // namespace nibble
