#include "test_util.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace nibble::test {

std::string source_dir() {
  const char* s = std::getenv("NIBBLE_SOURCE_DIR");
  if (s != nullptr && *s != '\0') return s;
  return NIBBLE_SOURCE_DIR_DEFAULT;  // the checkout the tests were built from
}

std::string shared_dir() {
  const char* s = std::getenv("NIBBLE_SHARED_DIR");
  std::string dir = (s != nullptr && *s != '\0') ? s : source_dir() + "/../shared";
  if (std::filesystem::exists(dir + "/models")) return std::filesystem::weakly_canonical(dir).string();
  return "";
}

std::string nibble_binary() {
  const char* s = std::getenv("NIBBLE_BINARY");
  if (s != nullptr && *s != '\0') return s;
  // The nibble built alongside this test: BUILD/tests/<test> -> BUILD/tools/nibble.
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) return (exe.parent_path().parent_path() / "tools" / "nibble").string();
  return source_dir() + "/build/release/tools/nibble";
}

namespace {
struct TempRoot {
  std::string path;
  TempRoot() {
    char tmpl[] = "/tmp/nibble-test-XXXXXX";
    char* p = mkdtemp(tmpl);
    if (p == nullptr) throw std::runtime_error("mkdtemp failed");
    path = p;
  }
  ~TempRoot() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};
}  // namespace

std::string temp_dir() {
  static TempRoot root;
  static int counter = 0;
  std::string dir = root.path + "/" + std::to_string(counter++);
  std::filesystem::create_directories(dir);
  return dir;
}

static std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

CommandResult run_nibble(const std::vector<std::string>& args) {
  std::string dir = temp_dir();
  std::string out_path = dir + "/stdout", err_path = dir + "/stderr";
  pid_t pid = fork();
  if (pid == 0) {
    FILE* o = freopen(out_path.c_str(), "w", stdout);
    FILE* e = freopen(err_path.c_str(), "w", stderr);
    FILE* i = freopen("/dev/null", "r", stdin);
    (void)o;
    (void)e;
    (void)i;
    std::string bin = nibble_binary();
    std::vector<char*> argv;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CommandResult r;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) r.exit_code = 128 + WTERMSIG(status);
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

bool file_exists(const std::string& path) { return std::filesystem::exists(path); }

}  // namespace nibble::test
