#include "util/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <vector>

namespace nibble {

namespace {
std::mutex g_mu;
std::set<std::string>& open_temps() {
  static std::set<std::string> s;
  return s;
}
}  // namespace

void atomic_file_cleanup_all() {
  // Called from a signal handler: best effort, no locking.
  for (const auto& p : open_temps()) ::unlink(p.c_str());
}

namespace {
void on_fatal_signal(int sig) {
  atomic_file_cleanup_all();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}
}  // namespace

void remove_partial_outputs_on_signals() {
  std::signal(SIGINT, on_fatal_signal);
  std::signal(SIGTERM, on_fatal_signal);
}

Result<AtomicFile> AtomicFile::create(const std::string& path) {
  AtomicFile f;
  f.path_ = path;
  std::string tmpl = path + ".tmp-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  int fd = mkstemp(buf.data());
  if (fd < 0) {
    return make_error(ErrorCode::kIo, "%s: cannot create output file: %s", path.c_str(),
                      std::strerror(errno));
  }
  f.fd_ = fd;
  f.tmp_path_ = buf.data();
  std::lock_guard<std::mutex> lock(g_mu);
  open_temps().insert(f.tmp_path_);
  return f;
}

AtomicFile::AtomicFile(AtomicFile&& o) noexcept
    : path_(std::move(o.path_)), tmp_path_(std::move(o.tmp_path_)), fd_(o.fd_),
      committed_(o.committed_) {
  o.fd_ = -1;
  o.committed_ = true;
  o.tmp_path_.clear();
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !tmp_path_.empty()) {
    ::unlink(tmp_path_.c_str());
    std::lock_guard<std::mutex> lock(g_mu);
    open_temps().erase(tmp_path_);
  }
}

Status AtomicFile::write(const uint8_t* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd_, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return make_error(ErrorCode::kIo, "%s: write failed: %s", path_.c_str(), std::strerror(errno));
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return ok_status();
}

Status AtomicFile::commit() {
  if (::fsync(fd_) != 0 && errno != EINVAL) {
    return make_error(ErrorCode::kIo, "%s: fsync failed: %s", path_.c_str(), std::strerror(errno));
  }
  ::fchmod(fd_, 0644);
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    return make_error(ErrorCode::kIo, "%s: cannot rename the finished file into place: %s",
                      path_.c_str(), std::strerror(errno));
  }
  committed_ = true;
  std::lock_guard<std::mutex> lock(g_mu);
  open_temps().erase(tmp_path_);
  return ok_status();
}

}  // namespace nibble
