// The model store, Modelfiles, SHA-256, and the store commands (create, list, show, cp, rm).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "store/modelfile.h"
#include "store/sha256.h"
#include "store/store.h"
#include "test_util.h"

namespace nibble {
namespace {

namespace fs = std::filesystem;

std::string bundled() { return test::source_dir() + "/models/nibble-tiny-e.gguf"; }

void write_text(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

TEST(Sha256, MatchesTheIndependentImplementation) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::mt19937 rng(7);
  for (size_t n : {1u, 55u, 56u, 63u, 64u, 65u, 1000u, 100000u}) {
    std::string data(n, '\0');
    for (char& c : data) c = static_cast<char>(rng());
    const std::string want = test::sha256_hex(data.data(), data.size());
    EXPECT_EQ(sha256_hex(data), want) << n;
    Sha256 s;  // streamed in uneven pieces
    for (size_t a = 0; a < n;) {
      const size_t k = std::min<size_t>(n - a, 1 + rng() % 97);
      s.update(data.data() + a, k);
      a += k;
    }
    EXPECT_EQ(s.hex_digest(), want) << n;
  }
}

TEST(ModelNames, NormalizeAndReject) {
  EXPECT_EQ(normalize_model_name("bard").value(), "bard:latest");
  EXPECT_EQ(normalize_model_name("team/bard:v2").value(), "team/bard:v2");
  EXPECT_EQ(normalize_model_name("hf.co/org/repo:Q4_K_M").value(), "hf.co/org/repo:Q4_K_M");
  for (const char* bad : {"", "a b", "../x", "x/../y", "/abs", "x:", ":tag", "x:a/b", ".hidden", "a//b",
                          "a\nb", "a/b/c/d/e"}) {
    EXPECT_FALSE(normalize_model_name(bad).ok()) << bad;
  }
  EXPECT_FALSE(normalize_model_name(std::string(300, 'a')).ok());
}

TEST(ModelStore, PutGetListCopyRemove) {
  const std::string home = test::temp_dir();
  ModelStore store(home, bundled());
  auto list0 = store.list();
  ASSERT_EQ(list0.size(), 1u);
  EXPECT_EQ(list0[0].name, "nibble-tiny-e:latest");
  EXPECT_TRUE(list0[0].bundled);
  EXPECT_TRUE(store.get("nibble-tiny-e").ok());

  StoreEntry e;
  e.name = "bard";
  e.model_path = bundled();
  e.system = "Be terse.";
  ASSERT_TRUE(e.params.set("num_ctx", "8192").ok());
  e.messages = {{"user", "hi", ""}, {"assistant", "hello", ""}};
  ASSERT_TRUE(store.put(e).ok());
  auto got = store.get("bard:latest");
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->system, "Be terse.");
  EXPECT_EQ(*got->params.num_ctx, 8192);
  ASSERT_EQ(got->messages.size(), 2u);
  EXPECT_FALSE(got->created.empty());
  ASSERT_TRUE(store.copy("bard", "team/bard:v2").ok());
  auto names = store.list();
  ASSERT_EQ(names.size(), 3u);
  EXPECT_EQ(names[1].name, "bard:latest");
  EXPECT_EQ(names[2].name, "team/bard:v2");
  ASSERT_TRUE(store.remove("bard").ok());
  EXPECT_FALSE(store.get("bard").ok());
  EXPECT_TRUE(store.get("team/bard:v2").ok());
  EXPECT_FALSE(store.remove("bard").ok());
  // The bundled model cannot be removed or replaced.
  EXPECT_FALSE(store.remove("nibble-tiny-e").ok());
  StoreEntry b = e;
  b.name = "nibble-tiny-e";
  EXPECT_FALSE(store.put(b).ok());
  // A .gguf path resolves to an unnamed entry.
  auto path = store.resolve(bundled());
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(path->model_path, bundled());
  EXPECT_FALSE(store.resolve("/no/such/file.gguf").ok());
}

TEST(ModelStore, HostileManifestsAreSkippedWithAReason) {
  const std::string home = test::temp_dir();
  ModelStore store(home, bundled());
  write_text(home + "/manifests/broken/latest.json", "{not json");
  write_text(home + "/manifests/deep/latest.json", std::string(100000, '[') + std::string(100000, ']'));
  write_text(home + "/manifests/types/latest.json", R"({"name":"types","model":5})");
  write_text(home + "/manifests/badparam/latest.json", R"({"name":"p","model":"x","parameters":{"num_ctx":-4}})");
  write_text(home + "/manifests/msgs/latest.json", R"({"name":"m","model":"x","messages":[{"role":1}]})");
  std::vector<std::string> problems;
  auto l = store.list(&problems);
  EXPECT_EQ(l.size(), 1u);
  EXPECT_EQ(problems.size(), 5u);
  for (const auto& p : problems) EXPECT_NE(p.find(home), std::string::npos) << p;
  auto deep = store.get("deep");
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.error().message.find("nested"), std::string::npos);
}

TEST(Modelfile, ParsesEveryInstruction) {
  auto mf = parse_modelfile(
      "# comment\n"
      "from ./m.gguf\n"
      "PARAMETER temperature 0.3\n"
      "PARAMETER stop \"<end>\"\n"
      "PARAMETER stop END\n"
      "SYSTEM \"\"\"Line one\nline two\"\"\"\n"
      "TEMPLATE \"\"\"{{ .System }} {{ .Prompt }}\"\"\"\n"
      "MESSAGE user Hello there\n"
      "MESSAGE assistant \"Hi, \\\"friend\\\"\"\n"
      "LICENSE MIT\n");
  ASSERT_TRUE(mf.ok()) << mf.error().message;
  EXPECT_EQ(mf->from, "./m.gguf");
  ASSERT_EQ(mf->parameters.size(), 3u);
  EXPECT_EQ(mf->parameters[1].second, "<end>");
  EXPECT_EQ(mf->system, "Line one\nline two");
  EXPECT_EQ(mf->template_text, "{{ .System }} {{ .Prompt }}");
  ASSERT_EQ(mf->messages.size(), 2u);
  EXPECT_EQ(mf->messages[0].content, "Hello there");
  EXPECT_EQ(mf->messages[1].content, "Hi, \"friend\"");
  EXPECT_EQ(mf->license, "MIT");
}

TEST(Modelfile, ErrorsNameTheLine) {
  struct Case {
    const char* text;
    const char* needle;
  };
  for (const Case& c : std::vector<Case>{
           {"PARAMETER temperature 1\n", "no FROM"},
           {"FROM x\nPARAMETER temprature 1\n", "line 2"},
           {"FROM x\n\nPARAMETER num_ctx lots\n", "line 3"},
           {"FROM x\nSYSTEM \"\"\"never closed\n", "never closed"},
           {"FROM x\nMESSAGE robot hi\n", "robot"},
           {"FROM x\nADAPTER ./lora.gguf\n", "not supported"},
           {"FROM x\nFROBNICATE 1\n", "unknown instruction"},
           {"FROM x\nTEMPLATE \"\"\"{{ range .Messages }}{{ end }}\"\"\"\n", "not supported"},
           {"FROM x\nPARAMETER temperature\n", "line 2"},
       }) {
    auto mf = parse_modelfile(c.text);
    ASSERT_FALSE(mf.ok()) << c.text;
    EXPECT_NE(mf.error().message.find(c.needle), std::string::npos) << mf.error().message;
  }
}

TEST(Modelfile, BuildsEntriesFromPathsAndNames) {
  const std::string home = test::temp_dir();
  const std::string dir = test::temp_dir();
  ModelStore store(home, bundled());
  fs::copy_file(bundled(), dir + "/m.gguf");
  auto mf = parse_modelfile("FROM ./m.gguf\nPARAMETER temperature 0.25\nSYSTEM Be kind.\n");
  ASSERT_TRUE(mf.ok());
  auto e = build_store_entry(*mf, store, dir, "kind");
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_EQ(e->model_path, fs::weakly_canonical(dir + "/m.gguf").string());
  ASSERT_TRUE(store.put(*e).ok());
  // FROM a store name inherits and overrides.
  auto child = build_store_entry(parse_modelfile("FROM kind\nPARAMETER top_k 5\n").value(), store, dir, "kinder");
  ASSERT_TRUE(child.ok()) << child.error().message;
  EXPECT_EQ(child->system, "Be kind.");
  EXPECT_FLOAT_EQ(*child->params.temperature, 0.25f);
  EXPECT_EQ(*child->params.top_k, 5);
  // The Modelfile `show --modelfile` writes rebuilds the same entry.
  auto again = parse_modelfile(entry_to_modelfile(*child));
  ASSERT_TRUE(again.ok()) << again.error().message;
  auto rebuilt = build_store_entry(*again, store, dir, "kinder");
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_EQ(ModelStore::entry_to_json(*rebuilt)["parameters"], ModelStore::entry_to_json(*child)["parameters"]);
  EXPECT_EQ(rebuilt->system, child->system);
  // Missing files, non-GGUF files and unknown names are errors.
  write_text(dir + "/fake.gguf", "this is not a gguf");
  EXPECT_FALSE(build_store_entry(parse_modelfile("FROM ./fake.gguf\n").value(), store, dir, "x").ok());
  EXPECT_FALSE(build_store_entry(parse_modelfile("FROM ./missing.gguf\n").value(), store, dir, "x").ok());
  EXPECT_FALSE(build_store_entry(parse_modelfile("FROM nobody\n").value(), store, dir, "x").ok());
}

TEST(StoreCommands, CreateListShowCopyRemove) {
  const std::string home = test::temp_dir();
  const std::string dir = test::temp_dir();
  setenv("NIBBLE_HOME", home.c_str(), 1);
  write_text(dir + "/Modelfile", "FROM " + bundled() + "\nPARAMETER num_ctx 2048\nSYSTEM You are a bard.\n");
  auto r = test::run_nibble({"create", "bard", "-f", dir + "/Modelfile"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_nibble({"list"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("nibble-tiny-e:latest"), std::string::npos);
  EXPECT_NE(r.out.find("bard:latest"), std::string::npos);
  r = test::run_nibble({"show", "bard", "--parameters"});
  EXPECT_EQ(r.out, "num_ctx 2048\n");
  r = test::run_nibble({"show", "bard"});
  EXPECT_NE(r.out.find("gemma4"), std::string::npos);
  EXPECT_NE(r.out.find("You are a bard."), std::string::npos);
  EXPECT_EQ(test::run_nibble({"cp", "bard", "bard2"}).exit_code, 0);
  EXPECT_EQ(test::run_nibble({"rm", "bard"}).exit_code, 0);
  r = test::run_nibble({"list"});
  EXPECT_EQ(r.out.find("bard:latest"), std::string::npos);
  EXPECT_NE(r.out.find("bard2:latest"), std::string::npos);
  // `run NAME PROMPT` with a store name works like a path.
  r = test::run_nibble({"run", "bard2", "The old prince", "-n", "4", "--temp", "0", "-q"});
  auto direct = test::run_nibble({"run", bundled(), "The old prince", "-n", "4", "--temp", "0", "-q"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, direct.out);
  // Errors: one line, non-zero exit.
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"rm", "nibble-tiny-e"}, {"rm", "ghost"}, {"show", "ghost"}, {"cp", "ghost", "x"},
           {"create", "bad name", "-f", dir + "/Modelfile"}, {"create", "x", "-f", dir + "/nope"}}) {
    auto e = test::run_nibble(args);
    EXPECT_NE(e.exit_code, 0) << args[0];
    EXPECT_EQ(std::count(e.err.begin(), e.err.end(), '\n'), 1) << e.err;
  }
  unsetenv("NIBBLE_HOME");
}

}  // namespace
}  // namespace nibble

namespace nibble {
namespace {

// Random mutations of valid Modelfiles and templates: every one parses or fails with a message,
// never crashes (ASan/UBSan builds check the memory side).
TEST(Modelfile, SurvivesRandomMutations) {
  const std::string seeds[] = {
      "FROM ./m.gguf\nPARAMETER stop \"<end>\"\nSYSTEM \"\"\"a\nb\"\"\"\nMESSAGE user hi\n",
      "FROM x\nTEMPLATE \"\"\"{{- if .System }}{{ .System }}{{ else }}none{{ end -}}{{ .Prompt }}{{ .Response }}\"\"\"\n",
      "from x\nparameter num_ctx 4096\nlicense \"\"\"MIT\"\"\"\n"};
  const char alphabet[] = "{}\"\\ \n\t-.#:FROMPARAMETERSYSTEMTEMPLATEifelseend$\xff\xc3";
  std::mt19937 rng(42);
  int ok = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[i % 3];
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t at = rng() % s.size();
      switch (rng() % 3) {
        case 0: s[at] = alphabet[rng() % (sizeof(alphabet) - 1)]; break;
        case 1: s.erase(at, 1 + rng() % 4); break;
        default: s.insert(at, 1, alphabet[rng() % (sizeof(alphabet) - 1)]); break;
      }
    }
    auto mf = parse_modelfile(s);
    if (mf.ok()) {
      ++ok;
      if (mf->has_template) {
        auto t = ChatTemplate::from_go_template(mf->template_text);
        ASSERT_TRUE(t.ok());  // parse_modelfile already checked it
        ASSERT_TRUE(t->render({{"system", "s", ""}, {"user", "u", ""}, {"assistant", "a", ""}, {"user", "v", ""}}, {}).ok());
      }
    } else {
      EXPECT_FALSE(mf.error().message.empty());
      EXPECT_EQ(mf.error().message.find('\n'), std::string::npos) << mf.error().message;
    }
  }
  EXPECT_GT(ok, 100);
}

}  // namespace
}  // namespace nibble
