// Helpers for the corrupt-input tests (tests/gguf/gguf_corrupt_test.cpp,
// tests/convert/convert_corrupt_test.cpp): running `nibble` with a time limit, a file-size limit
// or a signal sent mid-run, and checking the CLI's error contract (STYLE §7): a non-zero exit and
// exactly one line on stderr, "nibble: ...", naming the thing.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace nibble::test {

struct RunOptions {
  int timeout_ms = 120000;           // then the child is killed (SIGKILL) and timed_out is set
  uint64_t file_size_limit = 0;      // RLIMIT_FSIZE of the child, 0 = none. SIGXFSZ is ignored,
                                     // so writing past it fails with EFBIG ("disk full").
  std::function<bool(pid_t)> poll;   // called about every 200 µs while the child runs;
                                     // returns false once it has done its job
};

struct RunResult {
  int exit_code = -1;  // exit status, or -1 when killed by a signal
  int signal = 0;      // the signal that ended it, 0 if it exited
  bool timed_out = false;
  std::string out, err;
};

inline std::string slurp_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs `nibble ARGS...` (no shell) with the limits of `opt`.
inline RunResult run_nibble_ex(const std::vector<std::string>& args, const RunOptions& opt) {
  const std::string dir = temp_dir();
  const std::string out_path = dir + "/stdout", err_path = dir + "/stderr";
  std::string bin = nibble_binary();
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  argv.push_back(bin.data());
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  // An ASan-built nibble reports any single allocation above 1 GiB (see the macro below).
  std::vector<std::string> env_strings;
  bool have_asan_options = false;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string var = *e;
    if (var.rfind("ASAN_OPTIONS=", 0) == 0) {
      have_asan_options = true;
      if (var.find("max_allocation_size_mb") == std::string::npos) {
        var += ":max_allocation_size_mb=1024:allocator_may_return_null=0";
      }
    }
    env_strings.push_back(var);
  }
  if (!have_asan_options) {
    env_strings.emplace_back("ASAN_OPTIONS=max_allocation_size_mb=1024:allocator_may_return_null=0");
  }
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    int o = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int i = ::open("/dev/null", O_RDONLY);
    if (o < 0 || e < 0 || i < 0) _exit(126);
    dup2(o, 1);
    dup2(e, 2);
    dup2(i, 0);
    if (opt.file_size_limit > 0) {
      signal(SIGXFSZ, SIG_IGN);
      struct rlimit rl;
      rl.rlim_cur = rl.rlim_max = opt.file_size_limit;
      setrlimit(RLIMIT_FSIZE, &rl);
    }
    execve(bin.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  RunResult r;
  const auto start = std::chrono::steady_clock::now();
  bool polling = static_cast<bool>(opt.poll);
  int status = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (polling) polling = opt.poll(pid);
    if (std::chrono::steady_clock::now() - start > std::chrono::milliseconds(opt.timeout_ms)) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      r.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(polling ? 200 : 2000));
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.out = slurp_file(out_path);
  r.err = slurp_file(err_path);
  return r;
}

// Splits on '\n'; a final newline does not start another line.
inline std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  size_t begin = 0;
  while (begin < s.size()) {
    size_t end = s.find('\n', begin);
    if (end == std::string::npos) end = s.size();
    lines.push_back(s.substr(begin, end - begin));
    begin = end + 1;
  }
  return lines;
}

// A library error message: non-empty, one line, containing each of `expect`.
inline ::testing::AssertionResult is_one_line_message(const std::string& msg,
                                                      const std::vector<std::string>& expect) {
  if (msg.empty()) return ::testing::AssertionFailure() << "empty message";
  if (msg.find('\n') != std::string::npos || msg.find('\r') != std::string::npos) {
    return ::testing::AssertionFailure() << "message spans several lines: " << msg;
  }
  for (const auto& e : expect) {
    if (msg.find(e) == std::string::npos) {
      return ::testing::AssertionFailure() << "message lacks '" << e << "': " << msg;
    }
  }
  return ::testing::AssertionSuccess();
}

// The CLI contract for bad input: exit status 1, no crash or hang, exactly one line on stderr
// starting "nibble: " and containing each of `expect`.
inline ::testing::AssertionResult is_cli_error(const RunResult& r,
                                               const std::vector<std::string>& expect) {
  if (r.timed_out) return ::testing::AssertionFailure() << "timed out (hang); stderr: " << r.err;
  if (r.signal != 0) {
    return ::testing::AssertionFailure() << "killed by signal " << r.signal << "; stderr: " << r.err;
  }
  if (r.exit_code != 1) {
    return ::testing::AssertionFailure() << "exit status " << r.exit_code << ", expected 1; stderr: "
                                         << r.err;
  }
  const auto lines = split_lines(r.err);
  if (lines.size() != 1 || r.err.back() != '\n') {
    return ::testing::AssertionFailure() << "stderr has " << lines.size()
                                         << " lines, expected exactly one: " << r.err;
  }
  if (lines[0].rfind("nibble: ", 0) != 0) {
    return ::testing::AssertionFailure() << "stderr does not start with 'nibble: ': " << r.err;
  }
  return is_one_line_message(lines[0], expect);
}

// Regular files in `dir` (not recursive), sorted.
inline std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace nibble::test

// Under AddressSanitizer, a single allocation above 1 GiB is reported (allocation-size-too-big)
// and fails the test, so code that trusts a count or a length from a file cannot pass by luck on
// a machine with memory to spare. Define once per test executable.
#define NIBBLE_ASAN_LIMIT_ALLOCATIONS()                                                      \
  extern "C" __attribute__((visibility("default"), used)) const char*                      \
  __asan_default_options() {                                                                \
    return "max_allocation_size_mb=1024:allocator_may_return_null=0";                        \
  }
