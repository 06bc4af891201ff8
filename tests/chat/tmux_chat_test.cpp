// The interactive chat driven through a real pseudo-terminal (tmux): /set parameter num_ctx 8192,
// /show memory, a streamed reply, Ctrl-C stopping a reply but not the session, history recall
// with the Up arrow, /save, and the saved model in `nibble list`. Skips when tmux is absent.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "test_util.h"

namespace nibble {
namespace {

std::string sh(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return "";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

class TmuxChat {
 public:
  TmuxChat() : sock_("nibble-test-" + std::to_string(getpid())) {}
  ~TmuxChat() { sh("tmux -L " + sock_ + " kill-server >/dev/null 2>&1"); }
  void start(const std::string& command) {
    sh("tmux -L " + sock_ + " -f /dev/null new-session -d -s chat -x 160 -y 50 " + quote(command));
  }
  void keys(const std::string& k) { sh("tmux -L " + sock_ + " send-keys -t chat " + k); }
  void line(const std::string& text) { keys("-l " + quote(text)), keys("Enter"); }
  std::string screen() { return sh("tmux -L " + sock_ + " capture-pane -p -J -S -2000 -t chat"); }
  // Waits until `needle` appears `times` times on the screen.
  bool wait_for(const std::string& needle, int times = 1, int timeout_ms = 20000) {
    for (int waited = 0; waited < timeout_ms; waited += 50) {
      const std::string s = screen();
      int count = 0;
      for (size_t p = 0; (p = s.find(needle, p)) != std::string::npos; p += needle.size()) ++count;
      if (count >= times) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  bool alive() { return sh("tmux -L " + sock_ + " has-session -t chat 2>/dev/null && echo yes").find("yes") != std::string::npos; }

 private:
  std::string sock_;
};

TEST(TmuxChat, SetSaveListThroughAPseudoTerminal) {
  if (sh("command -v tmux").empty()) GTEST_SKIP() << "tmux is not installed (scripts/install-deps.sh)";
  const std::string home = test::temp_dir();
  const std::string env = "env NIBBLE_HOME=" + quote(home) + " TERM=xterm ";
  TmuxChat t;
  t.start(env + quote(test::nibble_binary()) + " run");
  ASSERT_TRUE(t.wait_for(">>> ")) << t.screen();
  EXPECT_NE(t.screen().find("Chatting with nibble-tiny-e:latest"), std::string::npos) << t.screen();

  t.line("/set parameter num_ctx 8192");
  ASSERT_TRUE(t.wait_for("Set parameter 'num_ctx' to '8192'")) << t.screen();
  t.line("/set parameter temperature 0");
  t.line("/set parameter num_predict 8");
  ASSERT_TRUE(t.wait_for("Set parameter 'num_predict' to '8'")) << t.screen();
  t.line("/show memory");
  ASSERT_TRUE(t.wait_for("context             8192 tokens")) << t.screen();

  // A reply streams, then the prompt comes back.
  t.line("The old prince");
  ASSERT_TRUE(t.wait_for(">>> ", 6)) << t.screen();

  // Ctrl-C stops a long reply; the session goes on.
  t.line("/set parameter num_predict 4000");
  ASSERT_TRUE(t.wait_for("Set parameter 'num_predict' to '4000'")) << t.screen();
  const auto t0 = std::chrono::steady_clock::now();
  t.line("Tell me a very long story");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  t.keys("C-c");
  ASSERT_TRUE(t.wait_for(">>> ", 8, 10000)) << t.screen();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  ASSERT_TRUE(t.alive());

  // Line editing and history: Up recalls the previous line, Left moves the cursor to fix a typo.
  t.line("/set parameter num_predict 8");
  ASSERT_TRUE(t.wait_for("Set parameter 'num_predict' to '8'", 2)) << t.screen();
  t.keys("Up");
  t.keys("Enter");
  ASSERT_TRUE(t.wait_for("Set parameter 'num_predict' to '8'", 3)) << t.screen();
  t.keys("-l " + quote("/shw parameters"));
  for (int i = 0; i < 12; ++i) t.keys("Left");
  t.keys("-l o");
  t.keys("Enter");
  ASSERT_TRUE(t.wait_for("num_ctx              8192")) << t.screen();

  // Ctrl-C at the prompt does not end the session either.
  t.keys("C-c");
  ASSERT_TRUE(t.wait_for("Use Ctrl + d or /bye to exit.")) << t.screen();
  ASSERT_TRUE(t.alive());

  t.line("/save prince-chat");
  ASSERT_TRUE(t.wait_for("Created new model 'prince-chat:latest'")) << t.screen();
  t.line("/bye");
  for (int i = 0; i < 100 && t.alive(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(t.alive());

  const std::string list = sh(env + quote(test::nibble_binary()) + " list");
  EXPECT_NE(list.find("prince-chat:latest"), std::string::npos) << list;
  EXPECT_NE(list.find("nibble-tiny-e:latest"), std::string::npos) << list;
  const std::string params = sh(env + quote(test::nibble_binary()) + " show prince-chat --parameters");
  EXPECT_NE(params.find("num_ctx 8192"), std::string::npos) << params;
  // The saved conversation (one finished exchange; the stopped one is not kept) is preset.
  const std::string mf = sh(env + quote(test::nibble_binary()) + " show prince-chat --modelfile");
  EXPECT_NE(mf.find("MESSAGE user \"\"\"The old prince\"\"\""), std::string::npos) << mf;
  EXPECT_EQ(mf.find("very long story"), std::string::npos) << mf;
}

}  // namespace
}  // namespace nibble
