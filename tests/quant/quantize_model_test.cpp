// The quantize driver (quant/quantize_model.h) and `nibble quantize`: every recipe on rand-moe
// and rand-e produces a file GgufFile::open accepts, with llama-quantize's tensor order, KV order
// (general.quantization_version, general.file_type last), tensor bytes equal to quantize_rows of
// the input, copies where the type is unchanged, per-expert importance matrices (GGUF and legacy),
// the Q2_K_S imatrix requirement, SFP8, no partial output on failure, the summary and the CLI.
#include "quant/quantize_model.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "model_fixtures.h"
#include "quant/imatrix.h"
#include "quant/sfp8.h"

namespace nibble {
namespace {

using qtest::fixture_gguf;

std::unique_ptr<GgufFile> open_ok(const std::string& path) {
  auto f = GgufFile::open(path);
  EXPECT_TRUE(f.ok()) << path << ": " << (f.ok() ? "" : f.error().message);
  return f.ok() ? std::move(f.value()) : nullptr;
}

QuantizeReport quantize_ok(QuantizeOptions o) {
  auto r = quantize_model(o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? r.value() : QuantizeReport{};
}

QuantizeOptions opts(const std::string& in, const std::string& out, LlamaFtype f) {
  QuantizeOptions o;
  o.input_path = in;
  o.output_path = out;
  o.ftype = f;
  o.n_threads = 2;
  return o;
}

// The bytes quantize_rows produces for a whole tensor from f32 values, expert by expert.
std::vector<uint8_t> reference_bytes(GgmlType to, const std::vector<float>& x,
                                     const GgufTensorInfo& t,
                                     const std::vector<float>* imatrix = nullptr) {
  const uint64_t ne0 = t.ne(0), n_mat = std::max<uint64_t>(1, t.ne(2));
  const uint64_t rows = t.n_elements / ne0 / n_mat;
  const uint64_t mat_bytes = rows * ggml_row_size(to, ne0);
  std::vector<uint8_t> out(mat_bytes * n_mat);
  for (uint64_t m = 0; m < n_mat; ++m) {
    quantize_rows(to, x.data() + m * rows * ne0, out.data() + m * mat_bytes, rows, ne0,
                  imatrix ? imatrix->data() + m * ne0 : nullptr);
  }
  return out;
}

// Checks one output file against its input: order, KVs, and every tensor's bytes.
// `imatrix` (nullable): the per-column weights the driver was given, by tensor name.
void check_output(const std::string& in_path, const std::string& out_path, LlamaFtype ftype,
                  const QuantizeReport& rep,
                  const std::map<std::string, std::vector<float>>* imatrix = nullptr) {
  auto in = open_ok(in_path);
  auto out = open_ok(out_path);
  ASSERT_TRUE(in && out);
  // Tensors: llama-quantize's order, the report's types.
  std::vector<std::string> names;
  for (const auto& t : in->tensors()) names.push_back(t.name);
  const auto order = llama_quantize_order(names);
  ASSERT_EQ(out->tensors().size(), order.size());
  ASSERT_EQ(rep.tensors.size(), order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const GgufTensorInfo& src = in->tensors()[order[i]];
    const GgufTensorInfo& dst = out->tensors()[i];
    SCOPED_TRACE(dst.name);
    EXPECT_EQ(dst.name, src.name);
    EXPECT_EQ(dst.shape, src.shape);
    EXPECT_EQ(dst.type, rep.tensors[i].to);
    EXPECT_EQ(dst.n_bytes, rep.tensors[i].bytes_out);
    if (dst.type == src.type) {
      ASSERT_EQ(dst.n_bytes, src.n_bytes);
      EXPECT_EQ(std::memcmp(dst.data, src.data, src.n_bytes), 0)
          << "a tensor of unchanged type is copied";
    } else {
      const std::vector<float>* qw = nullptr;
      if (imatrix != nullptr && imatrix->count(src.name)) qw = &imatrix->at(src.name);
      const auto ref = reference_bytes(dst.type, qtest::values_of(src), src, qw);
      ASSERT_EQ(ref.size(), dst.n_bytes);
      EXPECT_EQ(std::memcmp(ref.data(), dst.data, dst.n_bytes), 0)
          << "bytes differ from quantize_rows";
    }
  }
  // KVs: the input's, in order, with quantization_version and file_type moved to the end.
  const auto& ein = in->metadata().entries();
  const auto& eout = out->metadata().entries();
  std::vector<std::string> want;
  for (const auto& [k, v] : ein) {
    if (k != "general.quantization_version" && k != "general.file_type") want.push_back(k);
  }
  want.push_back("general.quantization_version");
  want.push_back("general.file_type");
  std::vector<std::string> got;
  for (const auto& [k, v] : eout) {
    if (k.rfind("quantize.imatrix.", 0) == 0) {
      EXPECT_TRUE(imatrix != nullptr) << k;
      EXPECT_EQ(got.size(), want.size()) << k << " must follow general.file_type";
      continue;
    }
    got.push_back(k);
  }
  EXPECT_EQ(got, want);
  for (const auto& [k, v] : ein) {
    if (k == "general.quantization_version" || k == "general.file_type") continue;
    ASSERT_NE(out->metadata().find(k), nullptr) << k;
    EXPECT_TRUE(*out->metadata().find(k) == v) << k;
  }
  EXPECT_EQ(out->metadata().get_u32("general.file_type").value(), static_cast<uint32_t>(ftype));
  EXPECT_EQ(out->metadata().get_u32("general.quantization_version").value(), 2u);
  EXPECT_EQ(rep.file_size, std::filesystem::file_size(out_path));
}

// An imatrix for every 2-D and 3-D weight of a file (Q2_K_S needs one for its Q2_K tensors).
std::string full_imatrix(const std::string& gguf,
                         std::map<std::string, std::vector<float>>* values) {
  std::map<std::string, qtest::ImatrixEntry> all;
  auto f = open_ok(gguf);
  qtest::Lcg g{7};
  for (const auto& t : f->tensors()) {
    if (t.shape.size() < 2) continue;
    qtest::ImatrixEntry e;
    e.ne0 = t.ne(0);
    const uint64_t n_mat = std::max<uint64_t>(1, t.ne(2));
    for (uint64_t i = 0; i < e.ne0 * n_mat; ++i) e.sums.push_back(2.0f + g.next(1.5f));
    e.counts.assign(n_mat, 3.0f);
    (*values)[t.name] = qtest::imatrix_values(e);
    all[t.name] = e;
  }
  const std::string path = test::temp_dir() + "/full-imatrix.gguf";
  qtest::write_imatrix_gguf(path, all);
  return path;
}

TEST(QuantizeModel, EveryRecipeOnRandMoeAndRandE) {
  for (const char* model : {"rand-moe", "rand-e"}) {
    const std::string in = fixture_gguf(model);
    std::map<std::string, std::vector<float>> im_values;
    const std::string im = full_imatrix(in, &im_values);
    for (const auto& f : ftype_table()) {
      SCOPED_TRACE(std::string(model) + " " + f.cli_name);
      const std::string out = test::temp_dir() + "/" + f.cli_name + ".gguf";
      QuantizeOptions o = opts(in, out, f.ftype);
      // rand-e's double-wide ffn_down rows (256) take Q2_K, which a Q2_K_S file may only use with
      // an importance matrix (llama-quantize refuses otherwise).
      const bool needs_imatrix = f.ftype == LlamaFtype::Q2_K_S;
      if (needs_imatrix) o.imatrix_path = im;
      const QuantizeReport rep = quantize_ok(o);
      check_output(in, out, f.ftype, rep, needs_imatrix ? &im_values : nullptr);
      // Every quantizable tensor got a type of this recipe's family or a documented fallback.
      for (const auto& t : rep.tensors) {
        if (!t.quantizable) {
          EXPECT_EQ(t.to, t.from) << t.name;
        }
      }
    }
  }
}

TEST(QuantizeModel, RandMoeQ4_K_MTypes) {
  // rand-moe: 8 experts (so attn_k/attn_v -> Q8_0, attn_output -> Q5_K), 64-wide rows (so the
  // K-quants fall back: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), tied embeddings.
  const std::string out = test::temp_dir() + "/q4km.gguf";
  const QuantizeReport rep = quantize_ok(opts(fixture_gguf("rand-moe"), out, LlamaFtype::Q4_K_M));
  std::map<std::string, GgmlType> type;
  for (const auto& t : rep.tensors) type[t.name] = t.to;
  EXPECT_EQ(type["token_embd.weight"], GgmlType::Q8_0);  // Q6_K rule, 64 % 256 -> Q8_0
  EXPECT_EQ(type["blk.1.attn_v.weight"], GgmlType::Q8_0);
  EXPECT_EQ(type["blk.1.attn_k.weight"], GgmlType::Q8_0);
  EXPECT_EQ(type["blk.1.attn_output.weight"], GgmlType::Q5_1);  // Q5_K -> Q5_1
  EXPECT_EQ(type["blk.1.attn_q.weight"], GgmlType::Q5_0);       // Q4_K -> Q5_0
  EXPECT_EQ(type["blk.3.ffn_down_exps.weight"],
            GgmlType::Q8_0);  // use_more_bits(3, 4): Q6_K -> Q8_0
  EXPECT_EQ(type["blk.1.ffn_down_exps.weight"], GgmlType::Q5_0);
  EXPECT_EQ(type["blk.1.ffn_gate_inp.weight"], GgmlType::F32);  // router never quantized
  EXPECT_EQ(type["blk.1.attn_norm.weight"], GgmlType::F32);
  EXPECT_GT(rep.n_fallback, 0);
}

TEST(QuantizeModel, RequantizingKeepsBlocksBitForBit) {
  const std::string in = fixture_gguf("rand-moe");
  for (LlamaFtype f : {LlamaFtype::Q4_0, LlamaFtype::Q4_K_M, LlamaFtype::Q8_0}) {
    const std::string a = test::temp_dir() + "/a.gguf", b = test::temp_dir() + "/b.gguf";
    quantize_ok(opts(in, a, f));
    const QuantizeReport rep = quantize_ok(opts(a, b, f));
    EXPECT_EQ(test::read_bytes(a), test::read_bytes(b)) << ftype_info(f).cli_name;
    for (const auto& t : rep.tensors) EXPECT_FALSE(t.converted) << t.name;
  }
  // The converter's own q4_0 file (token embedding left bf16): its Q4_0 tensors are copied,
  // except attn_k / attn_v, which an 8-expert model's recipe sends to Q8_0 (dequantized and
  // requantized: 4 attn_k + 3 attn_v, the full-attention layer has no attn_v); the embedding goes
  // from bf16 to Q8_0 (output rule: Q6_K, whose 256-block does not fit 64 columns).
  const std::string cq = fixture_gguf("rand-moe", GgmlType::Q4_0);
  const std::string out = test::temp_dir() + "/rq.gguf";
  const QuantizeReport rep = quantize_ok(opts(cq, out, LlamaFtype::Q4_0));
  check_output(cq, out, LlamaFtype::Q4_0, rep);
  EXPECT_EQ(rep.n_requantized, 7);
  for (const auto& t : rep.tensors) {
    if (t.from == GgmlType::Q4_0 && t.to == GgmlType::Q4_0) {
      EXPECT_FALSE(t.converted) << t.name;
    }
  }
}

TEST(QuantizeModel, KQuantsWithoutFallbackOnAWideModel) {
  const std::string in = qtest::write_llama_gguf(test::temp_dir() + "/llama.gguf", 8);
  const std::string out = test::temp_dir() + "/q4km.gguf";
  const QuantizeReport rep = quantize_ok(opts(in, out, LlamaFtype::Q4_K_M));
  check_output(in, out, LlamaFtype::Q4_K_M, rep);
  EXPECT_EQ(rep.n_fallback, 0);
  std::map<std::string, GgmlType> type;
  for (const auto& t : rep.tensors) type[t.name] = t.to;
  EXPECT_EQ(type["output.weight"], GgmlType::Q6_K);
  EXPECT_EQ(type["token_embd.weight"], GgmlType::Q4_K);
  EXPECT_EQ(type["blk.0.attn_v.weight"], GgmlType::Q6_K);  // use_more_bits(0, 8)
  EXPECT_EQ(type["blk.1.attn_v.weight"], GgmlType::Q4_K);
  EXPECT_EQ(type["blk.7.ffn_down.weight"], GgmlType::Q6_K);
  EXPECT_EQ(type["blk.1.ffn_down.weight"], GgmlType::Q4_K);
}

// ---- importance matrix ------------------------------------------------------------------------

std::map<std::string, qtest::ImatrixEntry> moe_imatrix() {
  std::map<std::string, qtest::ImatrixEntry> m;
  qtest::Lcg g{42};
  auto add = [&](const std::string& name, uint64_t ne0, uint64_t n_mat) {
    qtest::ImatrixEntry e;
    e.ne0 = ne0;
    for (uint64_t i = 0; i < ne0 * n_mat; ++i) e.sums.push_back(3.0f + g.next(2.5f));
    for (uint64_t j = 0; j < n_mat; ++j) e.counts.push_back(static_cast<float>(1 + j));
    m[name] = e;
  };
  add("blk.0.ffn_down_exps.weight", 32, 8);  // 3-D: one slice per expert
  add("blk.0.attn_q.weight", 64, 1);
  add("blk.2.ffn_down.weight", 96, 1);
  return m;
}

TEST(QuantizeModel, ImatrixPerExpertSlice) {
  const std::string in = fixture_gguf("rand-moe");
  const auto entries = moe_imatrix();
  const std::string im = test::temp_dir() + "/im.gguf";
  qtest::write_imatrix_gguf(im, entries);
  auto loaded = load_imatrix(im);
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded.value().values.size(), 3u);
  EXPECT_EQ(loaded.value().chunk_count, 7u);
  EXPECT_EQ(loaded.value().datasets, std::vector<std::string>{"unit-test.txt"});
  EXPECT_EQ(loaded.value().values.at("blk.0.ffn_down_exps.weight"),
            qtest::imatrix_values(entries.at("blk.0.ffn_down_exps.weight")));

  const std::string out = test::temp_dir() + "/q4_0-im.gguf";
  QuantizeOptions o = opts(in, out, LlamaFtype::Q4_0);
  o.imatrix_path = im;
  const QuantizeReport rep = quantize_ok(o);
  EXPECT_EQ(rep.n_imatrix, 3);
  auto fin = open_ok(in);
  auto fout = open_ok(out);
  ASSERT_TRUE(fin && fout);
  for (const auto& [name, e] : entries) {
    SCOPED_TRACE(name);
    const GgufTensorInfo* src = fin->find_tensor(name);
    const GgufTensorInfo* dst = fout->find_tensor(name);
    ASSERT_TRUE(src && dst);
    const auto qw = qtest::imatrix_values(e);
    const auto x = qtest::values_of(*src);
    const auto with = reference_bytes(dst->type, x, *src, &qw);
    const auto without = reference_bytes(dst->type, x, *src);
    EXPECT_EQ(std::memcmp(with.data(), dst->data, dst->n_bytes), 0)
        << "expert k must use imatrix slice k";
    EXPECT_NE(std::memcmp(without.data(), dst->data, dst->n_bytes), 0)
        << "the imatrix changed nothing";
  }
  // Provenance keys follow general.file_type, as llama-quantize's KV overrides do.
  const auto& e = fout->metadata().entries();
  ASSERT_GE(e.size(), 5u);
  EXPECT_EQ(e[e.size() - 5].first, "general.file_type");
  EXPECT_EQ(e[e.size() - 4].first, "quantize.imatrix.file");
  EXPECT_EQ(e[e.size() - 3].first, "quantize.imatrix.dataset");
  EXPECT_EQ(fout->metadata().get_string("quantize.imatrix.dataset").value(), "unit-test.txt");
  EXPECT_EQ(fout->metadata().get_u32("quantize.imatrix.entries_count").value(), 3u);
  EXPECT_EQ(fout->metadata().get_u32("quantize.imatrix.chunks_count").value(), 7u);

  // The legacy .dat format gives the same tensors when each entry has one count (ncall).
  std::map<std::string, qtest::ImatrixEntry> flat;
  for (const auto& [name, en] : entries) {
    qtest::ImatrixEntry f = en;
    f.counts.assign(en.counts.size(), 5.0f);
    flat[name] = f;
  }
  const std::string im2 = test::temp_dir() + "/im2.gguf", dat = test::temp_dir() + "/im.dat";
  qtest::write_imatrix_gguf(im2, flat);
  qtest::write_imatrix_dat(dat, flat);
  auto lg = load_imatrix(dat);
  ASSERT_TRUE(lg.ok()) << lg.error().message;
  EXPECT_TRUE(lg.value().legacy);
  EXPECT_EQ(lg.value().values, load_imatrix(im2).value().values);
  const std::string o1 = test::temp_dir() + "/o1.gguf", o2 = test::temp_dir() + "/o2.gguf";
  QuantizeOptions a = opts(in, o1, LlamaFtype::IQ4_NL), b = opts(in, o2, LlamaFtype::IQ4_NL);
  a.imatrix_path = im2;
  b.imatrix_path = dat;
  quantize_ok(a);
  quantize_ok(b);
  auto f1 = open_ok(o1), f2 = open_ok(o2);
  ASSERT_TRUE(f1 && f2);
  for (size_t i = 0; i < f1->tensors().size(); ++i) {
    const auto &t1 = f1->tensors()[i], &t2 = f2->tensors()[i];
    ASSERT_EQ(t1.n_bytes, t2.n_bytes);
    EXPECT_EQ(std::memcmp(t1.data, t2.data, t1.n_bytes), 0) << t1.name;
  }
}

TEST(QuantizeModel, ImatrixErrors) {
  const std::string in = fixture_gguf("rand-moe");
  auto run = [&](const std::map<std::string, qtest::ImatrixEntry>& entries, bool meta = true) {
    const std::string im = test::temp_dir() + "/im.gguf";
    qtest::write_imatrix_gguf(im, entries, meta);
    QuantizeOptions o = opts(in, test::temp_dir() + "/out.gguf", LlamaFtype::Q4_0);
    o.imatrix_path = im;
    return quantize_model(o);
  };
  auto entries = moe_imatrix();
  auto r = run(entries, /*meta=*/false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("missing imatrix metadata"), std::string::npos)
      << r.error().message;
  auto wrong = entries;
  wrong["blk.0.attn_q.weight"].sums.resize(32);
  wrong["blk.0.attn_q.weight"].ne0 = 32;
  r = run(wrong);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("needs 64"), std::string::npos) << r.error().message;
  auto inf = entries;
  inf["blk.0.attn_q.weight"].sums[3] = INFINITY;
  r = run(inf);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not finite"), std::string::npos) << r.error().message;
  QuantizeOptions o = opts(in, test::temp_dir() + "/out.gguf", LlamaFtype::Q4_0);
  o.imatrix_path = test::temp_dir() + "/absent.gguf";
  EXPECT_FALSE(quantize_model(o).ok());
  const std::string junk = test::temp_dir() + "/junk.dat";
  test::write_bytes(junk, {1, 0, 0, 0, 200, 0, 0, 0, 'a'});
  EXPECT_FALSE(load_imatrix(junk).ok());
}

TEST(QuantizeModel, Q2_K_SNeedsAnImatrix) {
  const std::string in = qtest::write_llama_gguf(test::temp_dir() + "/llama.gguf", 2);
  QuantizeOptions o = opts(in, test::temp_dir() + "/q2ks.gguf", LlamaFtype::Q2_K_S);
  auto r = quantize_model(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("importance matrix"), std::string::npos) << r.error().message;
  EXPECT_FALSE(test::file_exists(o.output_path));
  // An imatrix covering every Q2_K tensor: accepted.
  std::map<std::string, qtest::ImatrixEntry> all;
  auto f = open_ok(in);
  for (const auto& t : f->tensors()) {
    if (t.shape.size() < 2) continue;
    qtest::ImatrixEntry e;
    e.ne0 = t.ne(0);
    e.sums.assign(e.ne0, 2.0f);
    e.counts = {4.0f};
    all[t.name] = e;
  }
  const std::string im = test::temp_dir() + "/all.gguf";
  qtest::write_imatrix_gguf(im, all);
  o.imatrix_path = im;
  EXPECT_TRUE(quantize_model(o).ok());
  // One Q2_K tensor missing from it: refused, as llama-quantize does.
  all.erase("blk.1.attn_q.weight");
  qtest::write_imatrix_gguf(im, all);
  r = quantize_model(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("blk.1.attn_q.weight"), std::string::npos) << r.error().message;
}

// ---- SFP8, failures, summary ------------------------------------------------------------------

TEST(QuantizeModel, Sfp8FileAndRange) {
  const std::string in = fixture_gguf("rand-moe");
  const std::string out = test::temp_dir() + "/sfp8.gguf";
  const QuantizeReport rep = quantize_ok(opts(in, out, LlamaFtype::NIBBLE_SFP8));
  check_output(in, out, LlamaFtype::NIBBLE_SFP8, rep);
  auto f = open_ok(out);
  ASSERT_TRUE(f);
  int n_sfp8 = 0;
  for (const auto& t : f->tensors()) n_sfp8 += t.type == GgmlType::SFP8;
  EXPECT_GT(n_sfp8, 30);
  EXPECT_EQ(f->metadata().get_u32("general.file_type").value(), 1000u);
  // A tensor beyond +-1.875 stays bf16 (gemma.cpp would scale it; nibble has no scale slot).
  const std::string big =
      qtest::write_llama_gguf(test::temp_dir() + "/big.gguf", 2, false, "", "blk.1.attn_q.weight");
  const QuantizeReport r2 =
      quantize_ok(opts(big, test::temp_dir() + "/big-sfp8.gguf", LlamaFtype::NIBBLE_SFP8));
  EXPECT_EQ(r2.n_sfp8_kept_bf16, 1);
  for (const auto& t : r2.tensors) {
    if (t.name == "blk.1.attn_q.weight") {
      EXPECT_EQ(t.to, GgmlType::BF16);
    } else if (t.quantizable) {
      EXPECT_EQ(t.to, GgmlType::SFP8) << t.name;
    }
  }
  EXPECT_NE(format_quantize_summary(r2).find("exceed SFP8's range"), std::string::npos);
}

TEST(QuantizeModel, FailureLeavesNoOutput) {
  const std::string dir = test::temp_dir();
  const std::string in =
      qtest::write_llama_gguf(dir + "/nan.gguf", 2, false, "blk.1.ffn_up.weight");
  const std::string out = dir + "/out.gguf";
  auto r = quantize_model(opts(in, out, LlamaFtype::Q4_K_M));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("blk.1.ffn_up.weight"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("non-finite"), std::string::npos) << r.error().message;
  EXPECT_FALSE(test::file_exists(out));
  int n_files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) n_files += e.is_regular_file();
  EXPECT_EQ(n_files, 1) << "a temporary file was left behind";
  // Output onto the input: refused before anything is written.
  auto same = quantize_model(opts(in, in, LlamaFtype::Q8_0));
  ASSERT_FALSE(same.ok());
  EXPECT_NE(same.error().message.find("is the input"), std::string::npos);
  // Not a model file.
  const std::string im = dir + "/im.gguf";
  qtest::write_imatrix_gguf(im, moe_imatrix());
  EXPECT_FALSE(quantize_model(opts(im, dir + "/x.gguf", LlamaFtype::Q8_0)).ok());
}

TEST(QuantizeModel, SummaryListsGroupsTypesAndBitsPerWeight) {
  const std::string out = test::temp_dir() + "/sum.gguf";
  const QuantizeReport rep = quantize_ok(opts(fixture_gguf("rand-e"), out, LlamaFtype::Q4_K_M));
  const std::string s = format_quantize_summary(rep);
  for (const char* part : {"Q4_K - Medium", "general.file_type 15", "attention", "dense FFN",
                           "embedding", "per-layer embedding (PLE)", "norms & scalars", "total",
                           "bits/w", "q8_0", "f32", "required fallback quantization", "file "}) {
    EXPECT_NE(s.find(part), std::string::npos) << part << "\n" << s;
  }
  uint64_t bytes = 0, params = 0;
  for (const auto& t : rep.tensors) {
    bytes += t.bytes_out;
    params += t.n_elements;
  }
  EXPECT_EQ(bytes, rep.bytes_out);
  EXPECT_EQ(params, rep.n_elements);
  char bpw[32];
  std::snprintf(bpw, sizeof(bpw), "%.3f", 8.0 * bytes / params);
  EXPECT_NE(s.find(bpw), std::string::npos) << bpw << "\n" << s;
  // plan_quantize predicts the same types and sizes without writing.
  auto plan = plan_quantize(
      opts(fixture_gguf("rand-e"), test::temp_dir() + "/none.gguf", LlamaFtype::Q4_K_M));
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan.value().bytes_out, rep.bytes_out);
}

// ---- the CLI ----------------------------------------------------------------------------------

TEST(QuantizeCli, WritesAndSummarises) {
  const std::string out = test::temp_dir() + "/cli.gguf";
  auto r =
      test::run_nibble({"quantize", fixture_gguf("rand-moe"), out, "q4_k"});  // alias of Q4_K_M
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Q4_K - Medium"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("total"), std::string::npos);
  auto f = open_ok(out);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->metadata().get_u32("general.file_type").value(), 15u);

  auto o = test::run_nibble({"quantize", fixture_gguf("rand-moe"), test::temp_dir() + "/o.gguf",
                             "Q8_0", "--tensor-type", "attn_q=f16", "--output-type", "q8_0",
                             "--embd-type", "f16", "--pure"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("f16"), std::string::npos) << o.out;

  auto bad = test::run_nibble(
      {"quantize", fixture_gguf("rand-moe"), test::temp_dir() + "/b.gguf", "Q9_X"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("Q4_K_M"), std::string::npos) << bad.err;
  auto bad2 = test::run_nibble({"quantize", fixture_gguf("rand-moe"), test::temp_dir() + "/b.gguf",
                                "Q8_0", "--output-type", "iq2_xxs"});
  EXPECT_NE(bad2.exit_code, 0);
  EXPECT_NE(bad2.err.find("cannot write type iq2_xxs"), std::string::npos) << bad2.err;
}

TEST(QuantizeCli, Sfp8WarnsAndInspectMarksIt) {
  const std::string out = test::temp_dir() + "/sfp8.gguf";
  auto r = test::run_nibble({"quantize", fixture_gguf("rand-e"), out, "SFP8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("llama.cpp and Ollama cannot read SFP8 files"), std::string::npos) << r.err;
  auto i = test::run_nibble({"inspect", out});
  ASSERT_EQ(i.exit_code, 0) << i.err;
  EXPECT_NE(i.out.find("sfp8*"), std::string::npos);
  EXPECT_NE(i.out.find("nibble extension"), std::string::npos) << i.out;
  auto j = test::run_nibble({"inspect", out, "--json"});
  ASSERT_EQ(j.exit_code, 0);
  EXPECT_NE(j.out.find("\"nibble_extension\": true"), std::string::npos);
}

TEST(QuantizeCli, TinyMoeQ4_K_M) {
  NIBBLE_REQUIRE_SHARED();
  ConvertOptions c;
  c.hf_dir = test::shared_dir() + "/models/tiny-moe/hf";
  c.out_path = test::temp_dir() + "/tiny-moe-f32.gguf";
  c.type = GgmlType::F32;
  ASSERT_TRUE(convert_gemma4_checkpoint(c).ok());
  const std::string out = test::temp_dir() + "/tiny-moe-q4km.gguf";
  auto r = test::run_nibble({"quantize", c.out_path, out, "Q4_K_M"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto f = open_ok(out);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->metadata().get_u32("general.file_type").value(), 15u);
  std::map<std::string, GgmlType> type;
  for (const auto& t : f->tensors()) type[t.name] = t.type;
  EXPECT_EQ(type["token_embd.weight"], GgmlType::Q6_K);    // tied, 256 wide
  EXPECT_EQ(type["blk.0.attn_v.weight"], GgmlType::Q8_0);  // 8 experts
  EXPECT_EQ(type["blk.0.attn_output.weight"], GgmlType::Q5_K);
  EXPECT_EQ(type["blk.0.ffn_down_exps.weight"],
            GgmlType::Q4_K);  // 4 layers: use_more_bits = {2, 3}
  EXPECT_EQ(type["blk.2.ffn_down_exps.weight"], GgmlType::Q6_K);
  EXPECT_EQ(type["blk.3.ffn_down_exps.weight"], GgmlType::Q6_K);
  EXPECT_EQ(type["blk.2.ffn_gate_up_exps.weight"], GgmlType::Q4_K);
}

}  // namespace
}  // namespace nibble
