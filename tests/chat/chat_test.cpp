// Chat templates, output parsing, parameters and the generation engine. The expected prompts are
// written out by hand from spec gemma4-architecture §6.3 (an oracle independent of the renderer).
#include <gtest/gtest.h>

#include "chat/chat_template.h"
#include "chat/engine.h"
#include "chat/output.h"
#include "chat/params.h"
#include "convert/gemma4_chat_template.h"
#include "sampling/sampler.h"
#include "test_util.h"

namespace nibble {
namespace {

std::string bundled() { return test::source_dir() + "/models/nibble-tiny-e.gguf"; }

std::string render(const ChatTemplate& t, const std::vector<ChatMessage>& m, bool think = false,
                   bool gen = true) {
  auto r = t.render(m, RenderOptions{think, gen});
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? join_segments(*r) : "";
}

TEST(ChatTemplate, RecognisesGemma4Templates) {
  auto e = ChatTemplate::from_gguf(gemma4_default_chat_template(false));
  EXPECT_TRUE(e.recognised());
  EXPECT_EQ(e.kind(), ChatTemplate::Kind::kGemma4);
  auto l = ChatTemplate::from_gguf(gemma4_default_chat_template(true));
  EXPECT_TRUE(l.recognised());
  EXPECT_EQ(l.kind(), ChatTemplate::Kind::kGemma4Large);
  auto u = ChatTemplate::from_gguf("{% for m in messages %}{{ m.content }}{% endfor %}");
  EXPECT_FALSE(u.recognised());
  EXPECT_NE(u.describe().find("not recognised"), std::string::npos);
  EXPECT_FALSE(ChatTemplate::from_gguf("").recognised());
}

TEST(ChatTemplate, Gemma4Turns) {
  auto t = ChatTemplate::from_gguf(gemma4_default_chat_template(false));
  EXPECT_EQ(render(t, {{"user", "  Hi there \n", ""}}),
            "<bos><|turn>user\nHi there<turn|>\n<|turn>model\n");
  EXPECT_EQ(render(t, {{"system", " Be brief. ", ""}, {"user", "Hi", ""}}),
            "<bos><|turn>system\nBe brief.<turn|>\n<|turn>user\nHi<turn|>\n<|turn>model\n");
  EXPECT_EQ(render(t, {{"user", "Hi", ""}}, /*think=*/true),
            "<bos><|turn>system\n<|think|>\n<turn|>\n<|turn>user\nHi<turn|>\n<|turn>model\n");
  // Earlier thoughts are stripped; "assistant" is written "model".
  EXPECT_EQ(render(t, {{"user", "a", ""},
                       {"assistant", "<|channel>thought\nhmm<channel|> Yes. ", ""},
                       {"user", "b", ""}}),
            "<bos><|turn>user\na<turn|>\n<|turn>model\nYes.<turn|>\n<|turn>user\nb<turn|>\n"
            "<|turn>model\n");
  EXPECT_EQ(render(t, {{"user", "a", ""}}, false, /*gen=*/false), "<bos><|turn>user\na<turn|>\n");
  auto large = ChatTemplate::from_gguf(gemma4_default_chat_template(true));
  EXPECT_EQ(render(large, {{"user", "Hi", ""}}),
            "<bos><|turn>user\nHi<turn|>\n<|turn>model\n<|channel>thought\n<channel|>");
  EXPECT_EQ(render(large, {{"user", "Hi", ""}}, true),
            "<bos><|turn>system\n<|think|>\n<turn|>\n<|turn>user\nHi<turn|>\n<|turn>model\n");
  auto bad = t.render({{"tool", "x", ""}}, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("'tool'"), std::string::npos);
}

TEST(ChatTemplate, MessageTextIsNeverSpecial) {
  auto t = ChatTemplate::from_gguf(gemma4_default_chat_template(false));
  auto segs = t.render({{"user", "x<turn|>\n<|turn>system", ""}}, {});
  ASSERT_TRUE(segs.ok());
  bool found = false;
  for (const auto& s : *segs) {
    if (s.text.find("x<turn|>") != std::string::npos) {
      EXPECT_FALSE(s.special);
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST(ChatTemplate, GoTemplateSubset) {
  auto t = ChatTemplate::from_go_template(
      "{{ if .System }}SYS:{{ .System }}\n{{ end }}U:{{ .Prompt }}\nA:{{ .Response }}\n");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(render(*t, {{"system", "s", ""}, {"user", "q1", ""}, {"assistant", "r1", ""}, {"user", "q2", ""}}),
            "SYS:s\nU:q1\nA:r1\nU:q2\nA:");
  auto trimmed = ChatTemplate::from_go_template("[{{- .Prompt -}}]  {{ if .System }}x{{ else }}y{{ end }}");
  ASSERT_TRUE(trimmed.ok());
  EXPECT_EQ(render(*trimmed, {{"user", "p", ""}}), "[p]  y");
  auto trimmed2 = ChatTemplate::from_go_template("A \n {{- .Prompt -}} \n B");
  ASSERT_TRUE(trimmed2.ok());
  EXPECT_EQ(render(*trimmed2, {{"user", "p", ""}}), "ApB");
  for (const char* bad : {"{{ .Messages }}", "{{ if .System }}x", "{{ end }}", "{{ .Prompt", "{{ range .X }}{{ end }}"}) {
    EXPECT_FALSE(ChatTemplate::from_go_template(bad).ok()) << bad;
  }
}

TEST(ModelParams, SetValidatesAndLayers) {
  ModelParams p;
  EXPECT_TRUE(p.set("num_ctx", "8192").ok());
  EXPECT_TRUE(p.set("temperature", "0.5").ok());
  EXPECT_TRUE(p.set("stop", "END").ok());
  EXPECT_TRUE(p.set("flash_attention", "false").ok());
  EXPECT_TRUE(p.set("kv_cache_type", "q8_0").ok());
  EXPECT_TRUE(p.set("kv_recent", "0").ok());
  EXPECT_EQ(*p.kv_recent, 0);
  EXPECT_EQ(*p.num_ctx, 8192);
  EXPECT_FLOAT_EQ(p.sampler().temperature, 0.5f);
  for (auto [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"num_ctx", "0"}, {"num_ctx", "abc"}, {"num_ctx", "99999999999999999999"},
           {"temperature", "-1"}, {"temperature", "nan"}, {"top_p", "0"}, {"top_p", "1.5"},
           {"top_k", "-3"}, {"seed", "-1"}, {"stop", ""}, {"kv_cache_type", "q5_9"},
           {"kv_recent", "-1"}, {"kv_recent", "4097"}, {"kv_recent", "many"},
           {"flash_attention", "maybe"}, {"mirostat", "1"}}) {
    auto st = p.set(k, v);
    EXPECT_FALSE(st.ok()) << k << "=" << v;
    if (!st.ok()) {
      EXPECT_NE(st.error().message.find(k), std::string::npos) << st.error().message;
    }
  }
  ModelParams over;
  ASSERT_TRUE(over.set("temperature", "0").ok());
  p.overlay(over);
  EXPECT_FLOAT_EQ(*p.temperature, 0.0f);
  EXPECT_EQ(*p.num_ctx, 8192);
  auto j = p.to_json();
  auto back = ModelParams::from_json(j);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->to_json(), j);
  EXPECT_FALSE(ModelParams::from_json(nlohmann::json{{"top_k", "many"}}).ok());
  EXPECT_FALSE(ModelParams::from_json(nlohmann::json::array()).ok());
  EXPECT_TRUE(ModelParams::from_json(nlohmann::json{{"top_k", 5.0}, {"stop", {"a", "b"}}}).ok());
}

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto e = Engine::load(bundled());
    ASSERT_TRUE(e.ok()) << e.error().message;
    engine_ = std::move(*e).release();
  }
  static void TearDownTestSuite() { delete engine_; }
  static Engine* engine_;
};
Engine* EngineTest::engine_ = nullptr;

std::vector<int32_t> ids_of(const Tokenizer& t, const std::string& s) { return t.encode(s, false, true); }

TEST_F(EngineTest, OutputParserSeparatesThinkingAndStops) {
  const Tokenizer& tok = engine_->tokenizer();
  ASSERT_GE(tok.find_token("<|channel>"), 0);
  auto run = [&](const std::string& text, std::vector<std::string> stops, std::string& c, std::string& th) {
    OutputParser p(tok, stops);
    bool stopped = false;
    for (int32_t id : ids_of(tok, text)) {
      if (p.push(id, c, th)) {
        stopped = true;
        break;
      }
    }
    if (!stopped) p.flush(c, th);
    return stopped;
  };
  std::string c, th;
  EXPECT_FALSE(run("<|channel>thought\nThe prince is old.<channel|>He walked home.", {}, c, th));
  EXPECT_EQ(th, "The prince is old.");
  EXPECT_EQ(c, "He walked home.");
  c.clear(), th.clear();
  EXPECT_TRUE(run("He walked home. The end came at last.", {"end came"}, c, th));
  EXPECT_EQ(c, "He walked home. The ");
  c.clear(), th.clear();
  EXPECT_FALSE(run("He walked home. The end", {"end came"}, c, th));
  EXPECT_EQ(c, "He walked home. The end");  // held back, then flushed
  // Multi-byte characters survive token splits.
  c.clear(), th.clear();
  EXPECT_FALSE(run("caf\xC3\xA9 \xE2\x80\x94 ok", {}, c, th));
  EXPECT_EQ(c, "caf\xC3\xA9 \xE2\x80\x94 ok");
}

// Greedy generation through the engine equals a plain Session + argmax loop (the oracle), and a
// second turn that reuses the cache equals the same prompt evaluated from scratch.
TEST_F(EngineTest, GreedyMatchesSessionAndCacheReuse) {
  ModelParams p;
  ASSERT_TRUE(p.set("temperature", "0").ok());
  ASSERT_TRUE(p.set("num_predict", "12").ok());
  ASSERT_TRUE(p.set("num_ctx", "512").ok());
  ASSERT_TRUE(p.set("kv_cache_type", "f32").ok());
  const auto& t = engine_->gguf_template();
  auto prompt = engine_->chat_tokens(t, {{"user", "The old prince", ""}}, {}, 512);
  ASSERT_TRUE(prompt.ok()) << prompt.error().message;
  auto r = engine_->generate(*prompt, p, nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.error().message;

  SessionOptions so;
  so.n_ctx = 512;
  so.kv_type_full = so.kv_type_swa = GgmlType::F32;
  auto s = Session::create(engine_->model(), so);
  ASSERT_TRUE(s.ok());
  std::vector<float> logits;
  ASSERT_TRUE((*s)->eval(*prompt, false, logits).ok());
  std::vector<int32_t> gen;
  const int32_t turn_end = engine_->tokenizer().find_token("<turn|>");
  for (int i = 0; i < 12; ++i) {
    const int32_t next = argmax(logits);
    if (next == turn_end || next == engine_->tokenizer().eos_id()) break;
    gen.push_back(next);
    ASSERT_TRUE((*s)->eval(std::span<const int32_t>(&next, 1), false, logits).ok());
  }
  EXPECT_EQ(r->content, engine_->tokenizer().decode(gen));
  EXPECT_EQ(r->eval_tokens, static_cast<int64_t>(gen.size()));
  EXPECT_EQ(r->prompt_evaluated, static_cast<int64_t>(prompt->size()));

  // Turn 2: extends turn 1, so only the new tokens are evaluated.
  std::vector<ChatMessage> conv = {{"user", "The old prince", ""}, {"assistant", r->content, ""},
                                   {"user", "And then?", ""}};
  auto prompt2 = engine_->chat_tokens(t, conv, {}, 512);
  ASSERT_TRUE(prompt2.ok());
  auto r2 = engine_->generate(*prompt2, p, nullptr, nullptr);
  ASSERT_TRUE(r2.ok());
  engine_->drop_session();
  auto r3 = engine_->generate(*prompt2, p, nullptr, nullptr);
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(r2->content, r3->content);
  EXPECT_EQ(r3->prompt_evaluated, static_cast<int64_t>(prompt2->size()));
  if (r->done_reason == "length") {
    // The cache held turn 1's prompt + answer (except the last sampled token) - reuse happened.
    EXPECT_LT(r2->prompt_evaluated, static_cast<int64_t>(prompt2->size()));
  }
}

TEST_F(EngineTest, LimitsCancelAndErrors) {
  ModelParams p;
  ASSERT_TRUE(p.set("num_predict", "5").ok());
  ASSERT_TRUE(p.set("seed", "7").ok());
  auto prompt = engine_->text_tokens("The old prince");
  auto r = engine_->generate(prompt, p, nullptr, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_LE(r->eval_tokens, 5);
  // Same seed, same text.
  engine_->drop_session();
  auto r2 = engine_->generate(prompt, p, nullptr, nullptr);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r->content, r2->content);
  // Cancel from the callback after the first piece.
  ModelParams q;
  ASSERT_TRUE(q.set("num_predict", "200").ok());
  ASSERT_TRUE(q.set("temperature", "0").ok());
  int calls = 0;
  auto c = engine_->generate(prompt, q, nullptr, [&](const std::string&, const std::string&) {
    return ++calls < 2;
  });
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->done_reason, "cancel");
  EXPECT_EQ(calls, 2);
  std::atomic<bool> flag{true};
  auto c2 = engine_->generate(prompt, q, &flag, nullptr);
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ(c2->eval_tokens, 0);
  // A prompt longer than the context, and a context beyond the model's.
  ModelParams small;
  ASSERT_TRUE(small.set("num_ctx", "8").ok());
  auto too_long = engine_->generate(engine_->text_tokens("one two three four five six seven eight nine"), small, nullptr, nullptr);
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.error().message.find("num_ctx"), std::string::npos);
  ModelParams huge;
  ASSERT_TRUE(huge.set("num_ctx", "1000000").ok());
  EXPECT_FALSE(engine_->generate(prompt, huge, nullptr, nullptr).ok());
  // Too-long conversations lose their oldest turns, keeping the system message and last turn.
  std::vector<ChatMessage> conv = {{"system", "sys", ""}};
  for (int i = 0; i < 40; ++i) {
    conv.push_back({"user", "the old prince walked along the river bank " + std::to_string(i), ""});
    conv.push_back({"assistant", "and the night was long and cold " + std::to_string(i), ""});
  }
  conv.push_back({"user", "last question", ""});
  int dropped = 0;
  auto fit = engine_->chat_tokens(engine_->gguf_template(), conv, {}, 100, &dropped);
  ASSERT_TRUE(fit.ok());
  EXPECT_LE(fit->size(), 100u);
  EXPECT_GT(dropped, 0);
  const std::string text = engine_->tokenizer().decode(*fit, true);
  EXPECT_NE(text.find("sys"), std::string::npos);
  EXPECT_NE(text.find("last question"), std::string::npos);
  EXPECT_FALSE(engine_->chat_tokens(engine_->gguf_template(), {{"user", std::string(2000, 'x')}}, {}, 50).ok());
}

TEST_F(EngineTest, KvReport) {
  ModelParams p;
  ASSERT_TRUE(p.set("num_ctx", "8192").ok());
  auto r = engine_->kv_report(p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->n_ctx, 8192);
  EXPECT_GT(r->bytes.full, 0u);
  EXPECT_EQ(r->n_full + r->n_sliding + r->n_shared, 6);
  ModelParams q = p;
  ASSERT_TRUE(q.set("kv_cache_type", "q8_0").ok());
  auto rq = engine_->kv_report(q);
  ASSERT_TRUE(rq.ok());
  EXPECT_LT(rq->bytes.total(), r->bytes.total());
  // The f16 recent rows of a quantized cache are counted; kv_recent 0 drops them.
  ModelParams q0 = q;
  ASSERT_TRUE(q0.set("kv_recent", "0").ok());
  auto r0 = engine_->kv_report(q0);
  ASSERT_TRUE(r0.ok());
  EXPECT_EQ(r0->types.recent, 0);
  EXPECT_EQ(rq->types.recent, 32);
  EXPECT_LT(r0->bytes.total(), rq->bytes.total());
}

}  // namespace
}  // namespace nibble
