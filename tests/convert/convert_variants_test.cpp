// Checkpoint spellings the converter must accept: multimodal (model.language_model.* names,
// text_config, vision/audio towers skipped), redundant K/V on KV-shared layers (dropped),
// F16 and F32 sources, a sharded index, and the checkpoint's own chat template.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gguf/gguf_file.h"
#include "test_util.h"
#include "util/fp16.h"

namespace nibble {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string rand_e_dir() {
  std::string d = test::source_dir() + "/tests/fixtures/models/rand-e/hf";
  return fs::exists(d) ? d : test::shared_dir() + "/models/rand-e/hf";
}

std::string convert(const std::string& dir, const std::string& type, test::CommandResult* res = nullptr) {
  std::string out = test::temp_dir() + "/out.gguf";
  auto r = test::run_nibble({"convert", dir, "-o", out, "--type", type});
  if (res) *res = r;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return out;
}

// Copies rand-e into a new folder, letting `edit` change tensors and config.
std::string make_variant(const std::function<void(std::vector<std::pair<std::string, test::StEntry>>&, json&)>& edit) {
  const std::string src = rand_e_dir();
  const std::string dir = test::temp_dir() + "/ckpt";
  fs::create_directories(dir);
  fs::copy_file(src + "/tokenizer.model", dir + "/tokenizer.model");
  auto tensors = test::read_safetensors(src + "/model.safetensors");
  std::ifstream in(src + "/config.json");
  json cfg = json::parse(in);
  edit(tensors, cfg);
  test::write_safetensors(dir + "/model.safetensors", tensors);
  std::ofstream(dir + "/config.json") << cfg.dump(2);
  return dir;
}

std::vector<uint8_t> tensor_bytes(const std::string& gguf, const std::string& name) {
  auto f = GgufFile::open(gguf);
  EXPECT_TRUE(f.ok());
  const GgufTensorInfo* t = f.value()->find_tensor(name);
  if (t == nullptr) return {};
  return std::vector<uint8_t>(t->data, t->data + t->n_bytes);
}

TEST(ConvertVariants, MultimodalCheckpointEqualsTextOnly) {
  const std::string plain = convert(rand_e_dir(), "bf16");
  const std::string mm = make_variant([](auto& tensors, json& cfg) {
    for (auto& [name, t] : tensors) name = "model.language_model." + name.substr(6);
    test::StEntry tower{"BF16", {4, 8}, std::vector<uint8_t>(64, 1)};
    tensors.emplace_back("model.vision_tower.encoder.weight", tower);
    tensors.emplace_back("model.audio_tower.conv.weight", tower);
    tensors.emplace_back("model.embed_vision.embedding_projection.weight", tower);
    json root = {{"model_type", "gemma4"}, {"text_config", cfg}, {"vision_config", {{"hidden_size", 8}}}};
    cfg = root;
  });
  test::CommandResult r;
  const std::string out = convert(mm, "bf16", &r);
  EXPECT_NE(r.err.find("skipping 3 vision/audio tensors"), std::string::npos) << r.err;
  auto a = GgufFile::open(plain), b = GgufFile::open(out);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a.value()->tensors().size(), b.value()->tensors().size());
  for (size_t i = 0; i < a.value()->tensors().size(); ++i) {
    const auto& x = a.value()->tensors()[i];
    const auto& y = b.value()->tensors()[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.n_bytes, y.n_bytes);
    EXPECT_EQ(0, std::memcmp(x.data, y.data, x.n_bytes)) << x.name;
  }
}

TEST(ConvertVariants, RedundantSharedKvWeightsAreDropped) {
  const std::string dir = make_variant([](auto& tensors, json&) {
    // Layers 4 and 5 are KV-shared in rand-e; Google's original releases still carry K/V there.
    for (int l : {4, 5}) {
      const bool full = l == 5;
      const uint64_t d = full ? 32 : 16;
      tensors.emplace_back("model.layers." + std::to_string(l) + ".self_attn.k_proj.weight",
                           test::StEntry{"BF16", {d, 64}, std::vector<uint8_t>(d * 64 * 2, 0)});
      tensors.emplace_back("model.layers." + std::to_string(l) + ".self_attn.v_proj.weight",
                           test::StEntry{"BF16", {d, 64}, std::vector<uint8_t>(d * 64 * 2, 0)});
      tensors.emplace_back("model.layers." + std::to_string(l) + ".self_attn.k_norm.weight",
                           test::StEntry{"BF16", {d}, std::vector<uint8_t>(d * 2, 0)});
    }
  });
  test::CommandResult r;
  const std::string out = convert(dir, "f32", &r);
  EXPECT_NE(r.err.find("dropped 6 unused K/V tensors"), std::string::npos) << r.err;
  EXPECT_TRUE(tensor_bytes(out, "blk.4.attn_k.weight").empty());
  EXPECT_TRUE(tensor_bytes(out, "blk.5.attn_v.weight").empty());
  EXPECT_FALSE(tensor_bytes(out, "blk.3.attn_k.weight").empty());
}

TEST(ConvertVariants, F32AndF16SourcesAndShardedIndex) {
  const std::string ref = convert(rand_e_dir(), "f32");
  // F32 source: values identical to the bf16 upcast.
  const std::string f32dir = make_variant([](auto& tensors, json&) {
    for (auto& [name, t] : tensors) {
      std::vector<uint8_t> b(t.bytes.size() * 2);
      for (size_t i = 0; i < t.bytes.size() / 2; ++i) {
        uint16_t h;
        std::memcpy(&h, t.bytes.data() + 2 * i, 2);
        float f = bf16_to_f32(h);
        std::memcpy(b.data() + 4 * i, &f, 4);
      }
      t.dtype = "F32";
      t.bytes = b;
    }
  });
  // Split into two shards with an index.
  {
    auto tensors = test::read_safetensors(f32dir + "/model.safetensors");
    fs::remove(f32dir + "/model.safetensors");
    std::vector<std::pair<std::string, test::StEntry>> a(tensors.begin(), tensors.begin() + tensors.size() / 2);
    std::vector<std::pair<std::string, test::StEntry>> b(tensors.begin() + tensors.size() / 2, tensors.end());
    test::write_safetensors(f32dir + "/model-00001-of-00002.safetensors", a);
    test::write_safetensors(f32dir + "/model-00002-of-00002.safetensors", b);
    json idx = {{"metadata", json::object()}, {"weight_map", json::object()}};
    for (auto& [n, t] : a) idx["weight_map"][n] = "model-00001-of-00002.safetensors";
    for (auto& [n, t] : b) idx["weight_map"][n] = "model-00002-of-00002.safetensors";
    std::ofstream(f32dir + "/model.safetensors.index.json") << idx.dump();
  }
  const std::string from_f32 = convert(f32dir, "f32");
  EXPECT_EQ(tensor_bytes(ref, "token_embd.weight"), tensor_bytes(from_f32, "token_embd.weight"));
  EXPECT_EQ(tensor_bytes(ref, "blk.2.attn_q.weight"), tensor_bytes(from_f32, "blk.2.attn_q.weight"));

  // F16 source converted to f16: the bytes are copied unchanged.
  std::vector<uint8_t> f16_embd;
  const std::string f16dir = make_variant([&](auto& tensors, json&) {
    for (auto& [name, t] : tensors) {
      for (size_t i = 0; i < t.bytes.size() / 2; ++i) {
        uint16_t h;
        std::memcpy(&h, t.bytes.data() + 2 * i, 2);
        uint16_t g = f32_to_f16(bf16_to_f32(h));
        std::memcpy(t.bytes.data() + 2 * i, &g, 2);
      }
      t.dtype = "F16";
      if (name == "model.embed_tokens.weight") f16_embd = t.bytes;
    }
  });
  const std::string from_f16 = convert(f16dir, "f16");
  EXPECT_EQ(tensor_bytes(from_f16, "token_embd.weight"), f16_embd);
}

TEST(ConvertVariants, ChatTemplateFromCheckpoint) {
  const std::string dir = make_variant([](auto&, json&) {});
  std::ofstream(dir + "/tokenizer_config.json") << json{{"chat_template", "{{ 'custom template' }}"}}.dump();
  const std::string out = convert(dir, "bf16");
  auto f = GgufFile::open(out);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f.value()->metadata().get_string("tokenizer.chat_template").value(), "{{ 'custom template' }}");
}

}  // namespace
}  // namespace nibble
