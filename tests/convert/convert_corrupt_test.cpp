// Hostile converter input (STYLE §7): corrupt safetensors files, index files and config.json,
// and broken checkpoints made from the rand-dense fixture. Each is rejected with one line naming
// the tensor or key and the numbers; never a crash, a hang or a huge allocation (under ASan any
// single allocation above 1 GiB fails the test); and `nibble convert` leaves no output file and
// no temporary behind, also when the disk fills up or it is interrupted mid-write.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "convert/hf_config.h"
#include "convert/safetensors.h"
#include "hostile_input.h"
#include "test_util.h"
#include "util/text.h"

NIBBLE_ASAN_LIMIT_ALLOCATIONS()

namespace nibble {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Bytes = std::vector<uint8_t>;
using test::is_cli_error;
using test::is_one_line_message;

std::string u(uint64_t v) { return std::to_string(v); }

// A safetensors image: 8-byte length, the header text as given, then the data.
Bytes st_image(const std::string& header, const Bytes& data, std::optional<uint64_t> len = {}) {
  Bytes b(8);
  const uint64_t n = len.value_or(header.size());
  std::memcpy(b.data(), &n, 8);
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

const char* kSt = "corrupt.safetensors";

Result<std::unique_ptr<SafetensorsFile>> parse_st(const Bytes& b) {
  Bytes copy(b.begin(), b.end());  // exact size: ASan sees reads past the end
  return SafetensorsFile::parse(copy.data(), copy.size(), kSt);
}

std::string nested(size_t depth, const std::string& inner = "") {
  return std::string(depth, '[') + inner + std::string(depth, ']');
}

// 24 data bytes; "w" is F32 [2, 3] over all of them.
const Bytes kData24(24, 0x3f);
const std::string kW = R"("w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]})";

struct StCase {
  std::string name;
  Bytes image;
  std::vector<std::string> expect;
};

std::vector<StCase> safetensors_cases() {
  std::vector<StCase> c;
  auto hdr = [](const std::string& h) { return st_image(h, kData24); };
  auto entry = [](const std::string& dtype, const std::string& shape, const std::string& offsets) {
    return st_image(R"({"w":{"dtype":)" + dtype + R"(,"shape":)" + shape + R"(,"data_offsets":)" +
                        offsets + "}}",
                    kData24);
  };
  c.push_back({"three_bytes", {1, 2, 3}, {"only 3 bytes"}});
  c.push_back({"empty", {}, {"only 0 bytes"}});
  for (uint64_t n : {1ull << 63, ~0ull, 1ull << 40, (100ull << 20) + 1}) {
    c.push_back({"header_length_" + u(n), st_image("{" + kW + "}", kData24, n), {"header length " + u(n)}});
  }
  const std::string h = "{" + kW + "}";
  c.push_back({"header_length_one_past_end", st_image(h, {}, h.size() + 1),
               {"header length " + u(h.size() + 1), "(" + u(8 + h.size()) + " bytes)"}});
  c.push_back({"header_not_json", hdr("this is not json"), {"header: invalid JSON"}});
  c.push_back({"header_empty", hdr(""), {"header: invalid JSON"}});
  c.push_back({"header_trailing_garbage", hdr("{}x"), {"header: invalid JSON"}});
  c.push_back({"header_truncated_json", hdr(R"({"w":{"dtype":"F32")"), {"header: invalid JSON"}});
  c.push_back({"header_nul_bytes", hdr(std::string("{\0}", 3)), {"header: invalid JSON"}});
  c.push_back({"header_bad_utf8", hdr("{\"w\xff\":1}"), {"header: invalid JSON"}});
  for (const char* not_object : {"[]", "5", "\"x\"", "null", "true"}) {
    c.push_back({std::string("header_") + not_object, hdr(not_object), {"header is not a JSON object"}});
  }
  c.push_back({"header_deeply_nested", hdr(nested(1000000)), {"header is not a JSON object"}});
  c.push_back({"entry_not_object", hdr(R"({"w":5})"), {"tensor 'w' needs 'dtype', 'shape' and 'data_offsets'"}});
  c.push_back({"entry_missing_dtype", hdr(R"({"w":{"shape":[6],"data_offsets":[0,24]}})"),
               {"tensor 'w' needs"}});
  c.push_back({"entry_missing_offsets", hdr(R"({"w":{"dtype":"F32","shape":[6]}})"), {"tensor 'w' needs"}});
  c.push_back({"dtype_unknown", entry(R"("F8_E4M3")", "[2,3]", "[0,24]"), {"tensor 'w' has unknown dtype \"F8_E4M3\""}});
  c.push_back({"dtype_lowercase", entry(R"("f32")", "[2,3]", "[0,24]"), {"unknown dtype \"f32\""}});
  c.push_back({"dtype_number", entry("5", "[2,3]", "[0,24]"), {"unknown dtype 5"}});
  c.push_back({"dtype_long_string", entry("\"" + std::string(100000, 'A') + "\"", "[2,3]", "[0,24]"),
               {"tensor 'w' has unknown dtype \"AAAA"}});
  // Error messages used to dump() the offending value, which recurses once per nesting level.
  c.push_back({"dtype_deeply_nested", entry(nested(100000), "[2,3]", "[0,24]"),
               {"tensor 'w' has unknown dtype [array of 1]"}});
  c.push_back({"shape_not_array", entry(R"("F32")", "6", "[0,24]"), {"tensor 'w': shape must be an array"}});
  c.push_back({"shape_nine_dims", entry(R"("F32")", "[1,1,1,1,1,1,1,2,3]", "[0,24]"),
               {"tensor 'w': shape must be an array of at most 8"}});
  c.push_back({"shape_negative", entry(R"("F32")", "[-2,-3]", "[0,24]"), {"tensor 'w': shape entry -2 is not a size"}});
  c.push_back({"shape_float", entry(R"("F32")", "[2.0,3]", "[0,24]"), {"shape entry 2.0 is not a size"}});
  c.push_back({"shape_string", entry(R"("F32")", R"(["2",3])", "[0,24]"), {"shape entry \"2\" is not a size"}});
  c.push_back({"shape_deeply_nested", entry(R"("F32")", nested(100000, "2"), "[0,24]"),
               {"shape entry [array of 1] is not a size"}});
  c.push_back({"shape_element_overflow", entry(R"("I8")", "[4294967296,4294967296,2]", "[0,24]"),
               {"tensor 'w': shape overflows"}});
  c.push_back({"shape_byte_overflow", entry(R"("F32")", "[4611686018427387904]", "[0,24]"),
               {"tensor 'w': shape needs", "data_offsets give 24"}});
  c.push_back({"shape_too_big_for_data", entry(R"("F32")", "[1000000000000]", "[0,24]"),
               {"tensor 'w': shape needs 4000000000000 bytes of F32, data_offsets give 24"}});
  c.push_back({"offsets_not_array", entry(R"("F32")", "[2,3]", "24"), {"tensor 'w': data_offsets must be [begin, end]"}});
  c.push_back({"offsets_one", entry(R"("F32")", "[2,3]", "[24]"), {"data_offsets must be [begin, end]"}});
  c.push_back({"offsets_three", entry(R"("F32")", "[2,3]", "[0,24,48]"), {"data_offsets must be [begin, end]"}});
  c.push_back({"offsets_negative", entry(R"("F32")", "[2,3]", "[-24,0]"), {"data_offsets must be [begin, end]"}});
  c.push_back({"offsets_float", entry(R"("F32")", "[2,3]", "[0,24.5]"), {"data_offsets must be [begin, end]"}});
  c.push_back({"offsets_reversed", entry(R"("F32")", "[2,3]", "[24,0]"),
               {"tensor 'w': data_offsets [24, 0] outside the 24 data bytes"}});
  c.push_back({"offsets_past_end", entry(R"("F32")", "[2,3]", "[24,48]"),
               {"tensor 'w': data_offsets [24, 48] outside the 24 data bytes"}});
  c.push_back({"offsets_u64_max", entry(R"("F32")", "[2,3]", "[18446744073709551615,18446744073709551615]"),
               {"data_offsets [18446744073709551615, 18446744073709551615] outside the 24 data bytes"}});
  c.push_back({"size_mismatch", entry(R"("F32")", "[2,3]", "[0,20]"),
               {"tensor 'w': shape needs 24 bytes of F32, data_offsets give 20"}});
  c.push_back({"dtype_size_mismatch", entry(R"("F64")", "[2,3]", "[0,24]"),
               {"tensor 'w': shape needs 48 bytes of F64, data_offsets give 24"}});
  c.push_back({"overlapping",
               hdr(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                   R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})"),
               {"tensor data overlaps: [0, 16) and [8, 24)"}});
  c.push_back({"aliased",
               hdr(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                   R"("b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})"),
               {"tensor data overlaps: [0, 8) and [0, 8)"}});
  c.push_back({"duplicate_tensor", hdr("{" + kW + "," + kW + "}"), {"duplicate entry 'w'"}});
  c.push_back({"duplicate_metadata",
               hdr(R"({"__metadata__":{},"__metadata__":{}})"), {"duplicate entry '__metadata__'"}});
  return c;
}

TEST(SafetensorsCorrupt, EachCorruptionIsRejectedWithOneLineNamingIt) {
  const auto cases = safetensors_cases();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = parse_st(c.image);
    ASSERT_FALSE(r.ok()) << "accepted";
    std::vector<std::string> expect = c.expect;
    expect.push_back(kSt);
    EXPECT_TRUE(is_one_line_message(r.error().message, expect));
    EXPECT_LT(r.error().message.size(), 1000u) << "message not bounded";
  }
}

TEST(SafetensorsCorrupt, AcceptedEdgeCases) {
  std::vector<std::pair<std::string, Bytes>> ok = {
      {"valid", st_image("{" + kW + "}", kData24)},
      {"empty_header", st_image("{}", {})},
      {"header_padded_with_spaces", st_image("{" + kW + "}    ", kData24)},
      {"zero_size_tensors",
       st_image(R"({"e":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},)"
                R"("f":{"dtype":"BF16","shape":[0],"data_offsets":[0,0]}})", {})},
      {"scalar", st_image(R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})", Bytes(4, 0))},
      {"metadata_any", st_image(R"({"__metadata__":{"format":"pt","k":"v"},)" + kW + "}", kData24)},
  };
  for (const auto& [name, image] : ok) {
    SCOPED_TRACE(name);
    auto r = parse_st(image);
    EXPECT_TRUE(r.ok()) << r.error().message;
  }
}

TEST(SafetensorsCorrupt, TruncatedAtEveryOffset) {
  const std::string h = R"({"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[3],"data_offsets":[8,20]}})";
  const Bytes full = st_image(h, Bytes(20, 1));
  for (size_t cut = 0; cut < full.size(); ++cut) {
    SCOPED_TRACE("cut at " + u(cut));
    auto r = parse_st(Bytes(full.begin(), full.begin() + static_cast<ptrdiff_t>(cut)));
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(is_one_line_message(r.error().message, {kSt}));
  }
}

// KNOWN BUG (reported to the lead): tensor names come from the file and go into messages raw,
// so a name with "\n" (legal in JSON) splits the error over two lines. Fix: escape control
// characters when a name from a file goes into a message. Disabled until then.
TEST(SafetensorsCorrupt, ControlCharactersInNamesStayOnOneLine) {
  auto r = parse_st(st_image(R"({"a\nb":{"dtype":"F99","shape":[6],"data_offsets":[0,24]}})", kData24));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(is_one_line_message(r.error().message, {"unknown dtype"}));
}

// ------------------------------------------------------------------------------- config.json

std::string fixture_hf_dir() {
  const std::string local = test::source_dir() + "/tests/fixtures/models/rand-dense/hf";
  if (fs::exists(local + "/config.json")) return local;
  const std::string shared = test::shared_dir();
  if (!shared.empty() && fs::exists(shared + "/models/rand-dense/hf/config.json")) {
    return shared + "/models/rand-dense/hf";
  }
  return "";
}

#define REQUIRE_FIXTURE()                                                          \
  const std::string fixture = fixture_hf_dir();                                    \
  if (fixture.empty()) GTEST_SKIP() << "rand-dense fixture absent; skipping"

json base_config() {
  const std::string dir = fixture_hf_dir();
  return json::parse(test::slurp_file(dir + "/config.json"));
}

struct ConfigCase {
  std::string name;
  std::function<void(json&)> mutate;
  std::vector<std::string> expect;
};

std::vector<ConfigCase> config_cases() {
  std::vector<ConfigCase> c;
  for (const char* key : {"hidden_size", "num_hidden_layers", "num_attention_heads",
                          "num_key_value_heads", "intermediate_size", "vocab_size"}) {
    const std::string k = key;
    c.push_back({"missing_" + k, [k](json& j) { j.erase(k); }, {"'" + k + "' is missing"}});
    c.push_back({"null_" + k, [k](json& j) { j[k] = nullptr; }, {"'" + k + "' is missing"}});
    c.push_back({"string_" + k, [k](json& j) { j[k] = "64"; }, {"'" + k + "' = \"64\" is not an integer in 0.."}});
    c.push_back({"negative_" + k, [k](json& j) { j[k] = -1; }, {"'" + k + "' = -1 is not an integer"}});
    c.push_back({"float_" + k, [k](json& j) { j[k] = 1.5; }, {"'" + k + "' = 1.5 is not an integer"}});
    c.push_back({"huge_" + k, [k](json& j) { j[k] = 1ull << 40; }, {"'" + k + "' = 1099511627776 is not an integer"}});
    c.push_back({"u64max_" + k, [k](json& j) { j[k] = ~0ull; }, {"'" + k + "' = 18446744073709551615"}});
    c.push_back({"array_" + k, [k](json& j) { j[k] = json::array({64}); }, {"'" + k + "' = [array of 1] is not an integer"}});
    c.push_back({"object_" + k, [k](json& j) { j[k] = json::object(); }, {"'" + k + "' = {object of 0} is not an integer"}});
  }
  c.push_back({"zero_hidden_size", [](json& j) { j["hidden_size"] = 0; }, {"must be > 0"}});
  c.push_back({"zero_layers", [](json& j) { j["num_hidden_layers"] = 0; }, {"must be > 0"}});
  c.push_back({"too_many_layers", [](json& j) { j["num_hidden_layers"] = 5000; },
               {"'num_hidden_layers' = 5000 is not an integer in 0..4096"}});
  c.push_back({"vocab_too_big", [](json& j) { j["vocab_size"] = 1u << 25; }, {"'vocab_size' = 33554432 is not an integer in 0..16777216"}});
  c.push_back({"bool_not_bool", [](json& j) { j["attention_k_eq_v"] = "yes"; }, {"'attention_k_eq_v' = \"yes\" is not true/false"}});
  c.push_back({"tie_not_bool", [](json& j) { j["tie_word_embeddings"] = 1; }, {"'tie_word_embeddings' = 1 is not true/false"}});
  c.push_back({"eps_not_number", [](json& j) { j["rms_norm_eps"] = "x"; }, {"'rms_norm_eps' = \"x\" is not a number"}});
  c.push_back({"eos_not_id", [](json& j) { j["eos_token_id"] = "x"; }, {"'eos_token_id' = \"x\" is not a token id"}});
  c.push_back({"eos_negative", [](json& j) { j["eos_token_id"] = -1; }, {"'eos_token_id' = -1 is not a token id"}});
  c.push_back({"eos_list_bad", [](json& j) { j["eos_token_id"] = json::array({"x", 1}); }, {"'eos_token_id' = [array of 2] is not a token id"}});
  c.push_back({"model_type_llama", [](json& j) { j["model_type"] = "llama"; }, {"model_type is 'llama'"}});
  c.push_back({"model_type_missing", [](json& j) { j.erase("model_type"); }, {"model_type is ''"}});
  c.push_back({"model_type_number", [](json& j) { j["model_type"] = 4; }, {"model_type is ''"}});
  c.push_back({"activation", [](json& j) { j["hidden_activation"] = "relu"; }, {"hidden_activation \"relu\" is not gelu_pytorch_tanh"}});
  c.push_back({"layer_types_short",
               [](json& j) { j["layer_types"].erase(j["layer_types"].size() - 1); },
               {"layer_types must list 6 layers, it has 5"}});
  c.push_back({"layer_types_long", [](json& j) { j["layer_types"].push_back("full_attention"); },
               {"layer_types must list 6 layers, it has 7"}});
  c.push_back({"layer_types_not_array", [](json& j) { j["layer_types"] = "sliding_attention"; },
               {"layer_types must list 6 layers, it has none"}});
  c.push_back({"layer_types_bad_entry", [](json& j) { j["layer_types"][2] = "global"; },
               {"layer_types[2] = \"global\" is not sliding_attention/full_attention"}});
  c.push_back({"layer_types_nested_entry", [](json& j) { j["layer_types"][1] = json::array({json::array()}); },
               {"layer_types[1] = [array of 1]"}});
  c.push_back({"no_layer_types_no_pattern", [](json& j) { j.erase("layer_types"); },
               {"neither layer_types nor sliding_window_pattern"}});
  c.push_back({"kv_shared_eq_layers", [](json& j) { j["num_kv_shared_layers"] = 6; },
               {"num_kv_shared_layers 6 must be below num_hidden_layers 6"}});
  c.push_back({"kv_shared_gt_layers", [](json& j) { j["num_kv_shared_layers"] = 100; },
               {"num_kv_shared_layers 100 must be below num_hidden_layers 6"}});
  c.push_back({"kv_shared_huge", [](json& j) { j["num_kv_shared_layers"] = 1u << 31; },
               {"'num_kv_shared_layers' = 2147483648 is not an integer in 0..4096"}});
  c.push_back({"kv_shared_no_full_source",
               [](json& j) {
                 j["layer_types"] = {"sliding_attention", "sliding_attention", "sliding_attention",
                                     "sliding_attention", "sliding_attention", "full_attention"};
                 j["num_kv_shared_layers"] = 1;
               },
               {"KV-shared layer 5 has no earlier full layer"}});
  c.push_back({"head_dim_odd", [](json& j) { j["head_dim"] = 15; }, {"head_dim 15 (must be even)"}});
  c.push_back({"kv_heads_not_dividing", [](json& j) { j["num_key_value_heads"] = 3; }, {"KV heads 3 (must divide 4 heads)"}});
  c.push_back({"moe_missing_experts", [](json& j) { j["enable_moe_block"] = true; }, {"'num_experts' is missing"}});
  c.push_back({"moe_top_k_gt_experts",
               [](json& j) {
                 j["enable_moe_block"] = true;
                 j["num_experts"] = 8;
                 j["top_k_experts"] = 9;
                 j["moe_intermediate_size"] = 16;
               },
               {"top_k_experts (9) <= num_experts (8)"}});
  c.push_back({"per_layer_config_index_too_big", [](json& j) { j["per_layer_config"] = {{"99", json::object()}}; },
               {"per_layer_config key '99' is not a layer index below 6"}});
  c.push_back({"per_layer_config_index_negative", [](json& j) { j["per_layer_config"] = {{"-1", json::object()}}; },
               {"per_layer_config key '-1'"}});
  c.push_back({"per_layer_config_index_huge",
               [](json& j) { j["per_layer_config"] = {{"99999999999999999999999", json::object()}}; },
               {"per_layer_config key '99999999999999999999999'"}});
  c.push_back({"per_layer_config_index_text", [](json& j) { j["per_layer_config"] = {{"1x", json::object()}}; },
               {"per_layer_config key '1x'"}});
  c.push_back({"per_layer_config_not_object", [](json& j) { j["per_layer_config"] = json::array(); },
               {"per_layer_config is not an object"}});
  c.push_back({"per_layer_config_entry_not_object", [](json& j) { j["per_layer_config"] = {{"1", 5}}; },
               {"per_layer_config['1'] is not an object"}});
  c.push_back({"per_layer_head_dim_mismatch",
               [](json& j) { j["per_layer_config"] = {{"1", {{"head_dim", 32}}}}; },
               {"layers 0 and 1 are both sliding but have head dims 16 and 32"}});
  c.push_back({"rope_type_yarn", [](json& j) { j["rope_parameters"]["full_attention"]["rope_type"] = "yarn"; },
               {"rope_type 'yarn' is not supported"}});
  c.push_back({"rope_theta_string", [](json& j) { j["rope_parameters"]["sliding_attention"]["rope_theta"] = "1e4"; },
               {"rope_parameters.sliding_attention.rope_theta is not a number"}});
  c.push_back({"rope_entry_not_object", [](json& j) { j["rope_parameters"]["full_attention"] = 5; },
               {"rope_parameters.full_attention is not an object"}});
  c.push_back({"partial_rotary_zero", [](json& j) { j["rope_parameters"]["full_attention"]["partial_rotary_factor"] = 0; },
               {"partial_rotary_factor 0 is not in (0, 1]"}});
  c.push_back({"partial_rotary_two", [](json& j) { j["rope_parameters"]["full_attention"]["partial_rotary_factor"] = 2; },
               {"partial_rotary_factor 2 is not in (0, 1]"}});
  c.push_back({"partial_rotary_string", [](json& j) { j["rope_parameters"]["full_attention"]["partial_rotary_factor"] = "x"; },
               {"partial_rotary_factor is not a number"}});
  c.push_back({"ple_vocab_mismatch",
               [](json& j) {
                 j["hidden_size_per_layer_input"] = 8;
                 j["vocab_size_per_layer_input"] = 100;
               },
               {"vocab_size_per_layer_input 100 differs from vocab_size 512"}});
  return c;
}

TEST(HfConfigCorrupt, EachCorruptionIsRejectedWithOneLineNamingIt) {
  REQUIRE_FIXTURE();
  const json base = base_config();
  auto ok = parse_gemma4_hf_config(base.dump(), "config.json");
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  for (const auto& c : config_cases()) {
    SCOPED_TRACE(c.name);
    json j = base;
    c.mutate(j);
    auto r = parse_gemma4_hf_config(j.dump(), "corrupt/config.json");
    ASSERT_FALSE(r.ok()) << "accepted";
    std::vector<std::string> expect = c.expect;
    expect.push_back("corrupt/config.json");
    EXPECT_TRUE(is_one_line_message(r.error().message, expect));
  }
}

TEST(HfConfigCorrupt, NotJsonNotObjectDeepNesting) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "invalid JSON"},
      {"{", "invalid JSON"},
      {"{\"model_type\": \"gemma4_text\",}", "invalid JSON"},
      {"[]", "not a JSON object"},
      {"null", "not a JSON object"},
      {nested(1000000), "not a JSON object"},
      {R"({"model_type":"gemma4_text","hidden_size":)" + nested(100000) + "}",
       "'hidden_size' = [array of 1] is not an integer"},
      {R"({"text_config":)" + nested(100000) + "}", "model_type is ''"},
  };
  for (const auto& [text, expect] : cases) {
    SCOPED_TRACE(text.substr(0, 60));
    auto r = parse_gemma4_hf_config(text, "corrupt/config.json");
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(is_one_line_message(r.error().message, {"corrupt/config.json", expect}));
  }
}

TEST(HfConfigCorrupt, FileTooLargeMissingOrDirectory) {
  const std::string dir = test::temp_dir();
  auto missing = load_gemma4_hf_config(dir + "/config.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(is_one_line_message(missing.error().message, {dir + "/config.json", "cannot open"}));
  fs::create_directory(dir + "/d");
  auto d = load_gemma4_hf_config(dir + "/d");
  EXPECT_FALSE(d.ok());
  if (!d.ok()) {
    EXPECT_TRUE(is_one_line_message(d.error().message, {dir + "/d"}));
  }
  test::write_bytes(dir + "/big.json", Bytes((16u << 20) + 1, ' '));
  auto big = load_gemma4_hf_config(dir + "/big.json");
  ASSERT_FALSE(big.ok());
  EXPECT_TRUE(is_one_line_message(big.error().message, {"16777217 bytes, more than the 16777216 allowed"}));
}

// ------------------------------------------------------------------------------ checkpoints

// A safetensors file as header JSON + data (for rewriting the fixture's).
struct StFile {
  json header;
  Bytes data;
  static StFile load(const std::string& path) {
    const Bytes b = test::read_bytes(path);
    uint64_t n = 0;
    std::memcpy(&n, b.data(), 8);
    StFile f;
    f.header = json::parse(b.begin() + 8, b.begin() + 8 + static_cast<ptrdiff_t>(n));
    f.data.assign(b.begin() + 8 + static_cast<ptrdiff_t>(n), b.end());
    return f;
  }
  void save(const std::string& path) const { test::write_bytes(path, st_image(header.dump(), data)); }
  // Appends a new tensor with its own bytes.
  void add(const std::string& name, const std::string& dtype, std::vector<uint64_t> shape, uint64_t n_bytes) {
    header[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {data.size(), data.size() + n_bytes}}};
    data.resize(data.size() + n_bytes, 0x11);
  }
};

// A writable copy of the fixture checkpoint, with a chat template so a good convert prints
// nothing but its summary.
std::string copy_checkpoint(const std::string& fixture) {
  const std::string dir = test::temp_dir() + "/hf";
  fs::copy(fixture, dir, fs::copy_options::recursive);
  for (const auto& e : fs::directory_iterator(dir)) {
    fs::permissions(e.path(), fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add);
  }
  std::ofstream(dir + "/chat_template.jinja") << "{{ bos_token }}";
  return dir;
}

// Makes `dir` a one-shard indexed checkpoint: model.safetensors renamed `shard`, and an index.
json index_for(const std::string& dir, const std::string& shard) {
  fs::rename(dir + "/model.safetensors", dir + "/" + shard);
  const StFile f = StFile::load(dir + "/" + shard);
  json wm = json::object();
  for (auto it = f.header.begin(); it != f.header.end(); ++it) {
    if (it.key() != "__metadata__") wm[it.key()] = shard;
  }
  return {{"metadata", {{"total_size", f.data.size()}}}, {"weight_map", wm}};
}
void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

struct CkCase {
  std::string name;
  std::function<void(const std::string& dir)> mutate;
  std::vector<std::string> expect;
};

const std::string kShard = "model-00001-of-00001.safetensors";

std::vector<CkCase> checkpoint_cases() {
  std::vector<CkCase> c;
  auto index_case = [](const std::string& name, std::function<void(json&)> edit, std::vector<std::string> expect) {
    return CkCase{name,
                  [edit](const std::string& dir) {
                    json idx = index_for(dir, kShard);
                    edit(idx);
                    write_text(dir + "/model.safetensors.index.json", idx.dump());
                  },
                  expect};
  };
  for (const char* bad : {"../model.safetensors", "/etc/passwd", "..", ".", "", "sub/x.safetensors",
                          "sub\\x.safetensors"}) {
    const std::string b = bad;
    c.push_back(index_case("index_path_" + b,
                           [b](json& idx) { idx["weight_map"]["model.norm.weight"] = b; },
                           {"weight_map['model.norm.weight'] = '" + printable(b) + "' is not a plain file name"}));
  }
  c.push_back(index_case("index_missing_shard",
                         [](json& idx) { idx["weight_map"]["model.ghost.weight"] = "model-00002-of-00002.safetensors"; },
                         {"model-00002-of-00002.safetensors", "cannot open"}));
  c.push_back(index_case("index_shard_is_config",
                         [](json& idx) { idx["weight_map"]["model.ghost.weight"] = "config.json"; },
                         {"config.json", "header length"}));
  c.push_back(index_case("index_value_not_string",
                         [](json& idx) { idx["weight_map"]["model.norm.weight"] = 5; },
                         {"weight_map['model.norm.weight'] is not a file name"}));
  c.push_back(index_case("index_no_weight_map", [](json& idx) { idx.erase("weight_map"); },
                         {"missing the 'weight_map' object"}));
  c.push_back(index_case("index_weight_map_array", [](json& idx) { idx["weight_map"] = json::array(); },
                         {"missing the 'weight_map' object"}));
  c.push_back(index_case("index_lists_ghost",
                         [](json& idx) { idx["weight_map"]["model.ghost.weight"] = kShard; },
                         {"the index lists tensor 'model.ghost.weight' in " + kShard + ", which lacks it"}));
  c.push_back(index_case("index_shard_moved",
                         [](json& idx) { idx["weight_map"]["model.norm.weight"] = "model-00002-of-00002.safetensors"; },
                         {"tensor 'model.norm.weight' is in " + kShard + " but the index says model-00002-of-00002.safetensors"}));
  c.push_back(index_case("index_omits_tensor",
                         [](json& idx) { idx["weight_map"].erase("model.norm.weight"); },
                         {"tensor 'model.norm.weight' is in " + kShard + " but the index says nothing"}));
  c.push_back({"index_not_json",
               [](const std::string& dir) {
                 index_for(dir, kShard);
                 write_text(dir + "/model.safetensors.index.json", "{\"weight_map\": ");
               },
               {"model.safetensors.index.json", "invalid JSON"}});
  c.push_back({"index_duplicate_key",
               [](const std::string& dir) {
                 const json idx = index_for(dir, kShard);
                 const std::string wm = idx["weight_map"].dump();
                 write_text(dir + "/model.safetensors.index.json",
                            "{\"weight_map\":" + wm + ",\"weight_map\":" + wm + "}");
               },
               {"duplicate entry 'weight_map'"}});
  c.push_back({"tensor_in_two_shards",
               [](const std::string& dir) {
                 json idx = index_for(dir, kShard);
                 StFile extra;
                 extra.header = json::object();
                 extra.add("model.norm.weight", "BF16", {64}, 128);
                 extra.save(dir + "/model-extra.safetensors");
                 idx["weight_map"]["model.ghost.weight"] = "model-extra.safetensors";
                 write_text(dir + "/model.safetensors.index.json", idx.dump());
               },
               {"tensor 'model.norm.weight' appears in both"}});
  c.push_back({"no_weights", [](const std::string& dir) { fs::remove(dir + "/model.safetensors"); },
               {"no model.safetensors or model.safetensors.index.json"}});
  c.push_back({"weights_are_a_directory",
               [](const std::string& dir) {
                 fs::remove(dir + "/model.safetensors");
                 fs::create_directory(dir + "/model.safetensors");
               },
               {"model.safetensors", "not a regular file"}});
  c.push_back({"weights_truncated",
               [](const std::string& dir) {
                 Bytes b = test::read_bytes(dir + "/model.safetensors");
                 b.resize(b.size() / 2);
                 test::write_bytes(dir + "/model.safetensors", b);
               },
               {"model.safetensors", "outside the"}});
  c.push_back({"weights_header_length_huge",
               [](const std::string& dir) {
                 Bytes b = test::read_bytes(dir + "/model.safetensors");
                 for (int i = 0; i < 8; ++i) b[i] = 0xFF;
                 test::write_bytes(dir + "/model.safetensors", b);
               },
               {"model.safetensors", "header length 18446744073709551615"}});
  c.push_back({"weights_deep_dtype",
               [](const std::string& dir) {
                 test::write_bytes(dir + "/model.safetensors",
                                   st_image(R"({"w":{"dtype":)" + nested(200000) +
                                                R"(,"shape":[1],"data_offsets":[0,4]}})",
                                            Bytes(4, 0)));
               },
               {"tensor 'w' has unknown dtype [array of 1]"}});
  // Tensors that do not fit the config.
  c.push_back({"missing_tensor",
               [](const std::string& dir) {
                 StFile f = StFile::load(dir + "/model.safetensors");
                 f.header.erase("model.layers.3.mlp.up_proj.weight");
                 f.save(dir + "/model.safetensors");
               },
               {"tensor 'model.layers.3.mlp.up_proj.weight' (for blk.3.ffn_up.weight) is missing"}});
  c.push_back({"missing_embedding",
               [](const std::string& dir) {
                 StFile f = StFile::load(dir + "/model.safetensors");
                 f.header.erase("model.embed_tokens.weight");
                 f.save(dir + "/model.safetensors");
               },
               {"tensor 'model.embed_tokens.weight'", "is missing"}});
  c.push_back({"wrong_dtype_i64",
               [](const std::string& dir) {
                 StFile f = StFile::load(dir + "/model.safetensors");
                 f.header["model.norm.weight"]["dtype"] = "I64";
                 f.header["model.norm.weight"]["shape"] = {16};  // the same 128 bytes
                 f.save(dir + "/model.safetensors");
               },
               {"tensor 'model.norm.weight' has dtype I64; F32, F16 or BF16 expected"}});
  c.push_back({"wrong_dtype_u8",
               [](const std::string& dir) {
                 StFile f = StFile::load(dir + "/model.safetensors");
                 f.header["model.layers.0.self_attn.q_norm.weight"]["dtype"] = "U8";
                 f.header["model.layers.0.self_attn.q_norm.weight"]["shape"] = {32};
                 f.save(dir + "/model.safetensors");
               },
               {"tensor 'model.layers.0.self_attn.q_norm.weight' has dtype U8"}});
  c.push_back({"wrong_shape",
               [](const std::string& dir) {
                 StFile f = StFile::load(dir + "/model.safetensors");
                 f.header["model.norm.weight"]["shape"] = {32, 2};
                 f.save(dir + "/model.safetensors");
               },
               {"tensor 'model.norm.weight' has shape [32, 2], config.json implies [64]"}});
  c.push_back({"transposed",
               [](const std::string& dir) {
                 StFile f = StFile::load(dir + "/model.safetensors");
                 f.header["model.layers.2.mlp.down_proj.weight"]["shape"] = {160, 64};
                 f.save(dir + "/model.safetensors");
               },
               {"tensor 'model.layers.2.mlp.down_proj.weight' has shape [160, 64], config.json implies [64, 160]"}});
  c.push_back({"unexpected_tensor",
               [](const std::string& dir) {
                 StFile f = StFile::load(dir + "/model.safetensors");
                 f.add("model.layers.0.extra.weight", "BF16", {4}, 8);
                 f.save(dir + "/model.safetensors");
               },
               {"unexpected tensor 'model.layers.0.extra.weight' [4]"}});
  c.push_back({"extra_layer",
               [](const std::string& dir) {
                 StFile f = StFile::load(dir + "/model.safetensors");
                 f.add("model.layers.6.input_layernorm.weight", "BF16", {64}, 128);
                 f.save(dir + "/model.safetensors");
               },
               {"unexpected tensor 'model.layers.6.input_layernorm.weight'"}});
  c.push_back({"text_and_language_model_copy",
               [](const std::string& dir) {
                 StFile f = StFile::load(dir + "/model.safetensors");
                 f.add("model.language_model.norm.weight", "BF16", {64}, 128);
                 f.save(dir + "/model.safetensors");
               },
               {"tensor 'model.norm.weight' is present twice"}});
  // config.json.
  auto config_case = [](const std::string& name, std::function<void(json&)> edit, std::vector<std::string> expect) {
    return CkCase{name,
                  [edit](const std::string& dir) {
                    json j = json::parse(test::slurp_file(dir + "/config.json"));
                    edit(j);
                    write_text(dir + "/config.json", j.dump(2));
                  },
                  expect};
  };
  c.push_back(config_case("config_missing_key", [](json& j) { j.erase("hidden_size"); },
                          {"config.json", "'hidden_size' is missing"}));
  c.push_back(config_case("config_wrong_type", [](json& j) { j["num_attention_heads"] = "4"; },
                          {"config.json", "'num_attention_heads' = \"4\" is not an integer"}));
  c.push_back(config_case("config_layer_types_length", [](json& j) { j["layer_types"].erase(0); },
                          {"config.json", "layer_types must list 6 layers, it has 5"}));
  c.push_back(config_case("config_kv_shared_ge_layers", [](json& j) { j["num_kv_shared_layers"] = 6; },
                          {"num_kv_shared_layers 6 must be below num_hidden_layers 6"}));
  c.push_back(config_case("config_hidden_size_disagrees", [](json& j) { j["hidden_size"] = 128; },
                          {"has shape", "config.json implies", "128"}));
  c.push_back(config_case("config_fewer_layers", [](json& j) {
                            j["num_hidden_layers"] = 5;
                            j["layer_types"].erase(5);
                          },
                          {"unexpected tensor 'model.layers.5."}));
  c.push_back(config_case("config_more_layers", [](json& j) {
                            j["num_hidden_layers"] = 7;
                            j["layer_types"].push_back("sliding_attention");
                          },
                          {"tensor 'model.layers.6.input_layernorm.weight'", "is missing"}));
  c.push_back(config_case("config_vocab_smaller_than_tokenizer", [](json& j) { j["vocab_size"] = 100; },
                          {"tokenizer has", "vocab_size is 100"}));
  c.push_back(config_case("config_not_gemma", [](json& j) { j["model_type"] = "llama"; },
                          {"model_type is 'llama'"}));
  c.push_back({"config_not_json", [](const std::string& dir) { write_text(dir + "/config.json", "{\"a\":"); },
               {"config.json", "invalid JSON"}});
  c.push_back({"config_missing", [](const std::string& dir) { fs::remove(dir + "/config.json"); },
               {"config.json", "cannot open"}});
  c.push_back({"config_deep", [](const std::string& dir) {
                 write_text(dir + "/config.json",
                            R"({"model_type":"gemma4_text","hidden_size":)" + nested(500000) + "}");
               },
               {"'hidden_size' = [array of 1]"}});
  // Tokenizer.
  c.push_back({"no_tokenizer", [](const std::string& dir) { fs::remove(dir + "/tokenizer.model"); },
               {"no tokenizer.model or tokenizer.json"}});
  c.push_back({"tokenizer_garbage",
               [](const std::string& dir) { write_text(dir + "/tokenizer.model", "not a protobuf \xff\xff\xff"); },
               {"tokenizer.model"}});
  c.push_back({"tokenizer_empty", [](const std::string& dir) { write_text(dir + "/tokenizer.model", ""); },
               {"tokenizer.model"}});
  c.push_back({"tokenizer_truncated",
               [](const std::string& dir) {
                 Bytes b = test::read_bytes(dir + "/tokenizer.model");
                 b.resize(b.size() / 2);
                 test::write_bytes(dir + "/tokenizer.model", b);
               },
               {"tokenizer.model"}});
  c.push_back({"chat_template_config_not_json",
               [](const std::string& dir) {
                 fs::remove(dir + "/chat_template.jinja");
                 write_text(dir + "/tokenizer_config.json", "{");
               },
               {"tokenizer_config.json", "invalid JSON"}});
  return c;
}

// Runs `nibble convert DIR -o OUT/model.gguf` and checks the error contract and that OUT stays
// empty (no output file, no temporary).
void expect_convert_fails_cleanly(const std::string& dir, const std::vector<std::string>& expect,
                                  const std::vector<std::string>& extra_args = {}) {
  const std::string out = test::temp_dir();
  std::vector<std::string> args = {"convert", dir, "-o", out + "/model.gguf"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  test::RunOptions opt;
  opt.timeout_ms = 120000;
  auto r = test::run_nibble_ex(args, opt);
  EXPECT_TRUE(is_cli_error(r, expect));
  EXPECT_EQ(test::files_in(out), std::vector<std::string>{}) << "convert left files behind";
}

TEST(ConvertCorrupt, TheFixtureConvertsCleanly) {
  REQUIRE_FIXTURE();
  const std::string dir = copy_checkpoint(fixture);
  const std::string out = test::temp_dir();
  auto r = test::run_nibble_ex({"convert", dir, "-o", out + "/model.gguf"}, {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::files_in(out), std::vector<std::string>{"model.gguf"});
  EXPECT_EQ(test::split_lines(r.err).size(), 1u) << r.err;  // the summary only
  // The same checkpoint, indexed, converts too (the index cases below start from it).
  const std::string dir2 = copy_checkpoint(fixture);
  write_text(dir2 + "/model.safetensors.index.json", index_for(dir2, kShard).dump());
  auto r2 = test::run_nibble_ex({"convert", dir2, "-o", out + "/indexed.gguf"}, {});
  EXPECT_EQ(r2.exit_code, 0) << r2.err;
}

TEST(ConvertCorrupt, EachBrokenCheckpointFailsWithOneLineAndNoOutput) {
  REQUIRE_FIXTURE();
  const auto cases = checkpoint_cases();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string dir = copy_checkpoint(fixture);
    c.mutate(dir);
    expect_convert_fails_cleanly(dir, c.expect);
  }
}

TEST(ConvertCorrupt, SafetensorsCorpusThroughConvert) {
  // Every corrupt safetensors image as the checkpoint's model.safetensors.
  REQUIRE_FIXTURE();
  for (const auto& c : safetensors_cases()) {
    SCOPED_TRACE(c.name);
    const std::string dir = copy_checkpoint(fixture);
    test::write_bytes(dir + "/model.safetensors", c.image);
    std::vector<std::string> expect = c.expect;
    expect.push_back(dir + "/model.safetensors");
    expect_convert_fails_cleanly(dir, expect);
  }
}

TEST(ConvertCorrupt, BadArguments) {
  REQUIRE_FIXTURE();
  const std::string out = test::temp_dir();
  expect_convert_fails_cleanly(out + "/no-such-dir", {"no-such-dir", "not a directory"});
  const std::string dir = copy_checkpoint(fixture);
  auto r = test::run_nibble_ex({"convert", dir, "-o", out + "/x.gguf", "--type", "q4_K"}, {});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.signal, 0);
  EXPECT_FALSE(test::file_exists(out + "/x.gguf"));
}

// KNOWN BUG (reported to the lead): find_chat_template (src/convert/gemma4_converter.cpp) calls
// e.value("name", "") on each chat_template entry of tokenizer_config.json; nlohmann throws
// type_error 302 when "name" is not a string, nothing catches it, and nibble aborts
// (std::terminate, exit 134). Fix: check e["name"].is_string() before comparing (or wrap the
// JSON walk in try/catch). Disabled until then.
TEST(ConvertCorrupt, ChatTemplateEntryWithNumericNameDoesNotCrash) {
  REQUIRE_FIXTURE();
  const std::string dir = copy_checkpoint(fixture);
  fs::remove(dir + "/chat_template.jinja");
  write_text(dir + "/tokenizer_config.json", R"({"chat_template":[{"name":5,"template":"x"}]})");
  const std::string out = test::temp_dir();
  auto r = test::run_nibble_ex({"convert", dir, "-o", out + "/model.gguf"}, {});
  EXPECT_EQ(r.signal, 0) << r.err;
  EXPECT_FALSE(r.exit_code == 134) << r.err;
  EXPECT_TRUE(test::files_in(out).empty() || r.exit_code == 0);
}

// ------------------------------------------------------------------- output-side failures

TEST(ConvertOutput, OutputDirectoryMissing) {
  REQUIRE_FIXTURE();
  const std::string dir = copy_checkpoint(fixture);
  const std::string out = test::temp_dir();
  auto r = test::run_nibble_ex({"convert", dir, "-o", out + "/missing/model.gguf"}, {});
  EXPECT_TRUE(is_cli_error(r, {out + "/missing/model.gguf", "cannot create output file"}));
  EXPECT_EQ(test::files_in(out), std::vector<std::string>{});
}

TEST(ConvertOutput, OutputPathIsADirectory) {
  REQUIRE_FIXTURE();
  const std::string dir = copy_checkpoint(fixture);
  const std::string out = test::temp_dir();
  fs::create_directory(out + "/model.gguf");
  auto r = test::run_nibble_ex({"convert", dir, "-o", out + "/model.gguf"}, {});
  EXPECT_TRUE(is_cli_error(r, {out + "/model.gguf"}));
  EXPECT_EQ(test::files_in(out), std::vector<std::string>{"model.gguf"});  // the directory only
  EXPECT_TRUE(fs::is_directory(out + "/model.gguf"));
  EXPECT_TRUE(fs::is_empty(out + "/model.gguf"));
}

TEST(ConvertOutput, DiskFullLeavesNothingAndKeepsAnOldFile) {
  // RLIMIT_FSIZE (with SIGXFSZ ignored) makes write(2) fail with EFBIG part way, like a full disk.
  REQUIRE_FIXTURE();
  const std::string dir = copy_checkpoint(fixture);
  const std::string out = test::temp_dir();
  test::RunOptions opt;
  opt.file_size_limit = 64 * 1024;
  auto r = test::run_nibble_ex({"convert", dir, "-o", out + "/model.gguf"}, opt);
  EXPECT_TRUE(is_cli_error(r, {out + "/model.gguf", "write failed", "File too large"}));
  EXPECT_EQ(test::files_in(out), std::vector<std::string>{});
  // An existing file of the same name survives a failed convert untouched.
  write_text(out + "/model.gguf", "previous contents");
  auto r2 = test::run_nibble_ex({"convert", dir, "-o", out + "/model.gguf"}, opt);
  EXPECT_TRUE(is_cli_error(r2, {"write failed"}));
  EXPECT_EQ(test::files_in(out), std::vector<std::string>{"model.gguf"});
  EXPECT_EQ(test::slurp_file(out + "/model.gguf"), "previous contents");
}

// Interrupts a convert once its temporary output has data in it; nothing may be left behind.
void interrupt_mid_write(int sig) {
  // tiny-e (26 MB, 3 shards) from ../shared takes long enough to catch mid-write; without it,
  // rand-e converted to f32 from the fixtures (the test skips if that finishes first).
  std::string src;
  const std::string shared = test::shared_dir();
  if (!shared.empty() && fs::exists(shared + "/models/tiny-e/hf/config.json")) {
    src = shared + "/models/tiny-e/hf";
  } else if (fs::exists(test::source_dir() + "/tests/fixtures/models/rand-e/hf/config.json")) {
    src = test::source_dir() + "/tests/fixtures/models/rand-e/hf";
  } else {
    GTEST_SKIP() << "no model to convert";
  }
  const std::string out = test::temp_dir();
  bool sent = false;
  test::RunOptions opt;
  opt.poll = [&](pid_t pid) {
    for (const auto& name : test::files_in(out)) {
      std::error_code ec;
      if (name.find(".tmp-") != std::string::npos && fs::file_size(out + "/" + name, ec) > 0 && !ec) {
        kill(pid, sig);
        sent = true;
        return false;
      }
    }
    return true;
  };
  auto r = test::run_nibble_ex({"convert", src, "-o", out + "/model.gguf", "--type", "f32"}, opt);
  if (!sent) GTEST_SKIP() << "convert finished before it could be interrupted: " << r.err;
  if (test::files_in(out) == std::vector<std::string>{"model.gguf"}) {
    // The last bytes went out between the poll and kill(): the file was complete and renamed.
    GTEST_SKIP() << "convert finished just before the signal arrived";
  }
  EXPECT_FALSE(r.timed_out);
  // The handler removes the temporary, then re-raises: the process ends by the same signal.
  EXPECT_EQ(r.signal, sig) << "exit " << r.exit_code << "; stderr: " << r.err;
  EXPECT_EQ(test::files_in(out), std::vector<std::string>{}) << "interrupted convert left files";
}

TEST(ConvertOutput, SigtermMidWriteLeavesNothing) { interrupt_mid_write(SIGTERM); }
TEST(ConvertOutput, SigintMidWriteLeavesNothing) { interrupt_mid_write(SIGINT); }

}  // namespace
}  // namespace nibble
