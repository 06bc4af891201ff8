#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

namespace nibble {

std::string format_bytes(uint64_t n) {
  char buf[32];
  if (n >= (1ull << 30)) std::snprintf(buf, sizeof(buf), "%.2f GiB", n / 1073741824.0);
  else if (n >= (1ull << 20)) std::snprintf(buf, sizeof(buf), "%.1f MiB", n / 1048576.0);
  else if (n >= (1ull << 10)) std::snprintf(buf, sizeof(buf), "%.1f KiB", n / 1024.0);
  else std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(n));
  return buf;
}

ProgressBar::ProgressBar(std::string label, uint64_t total, bool bytes)
    : label_(std::move(label)), total_(total), bytes_(bytes), tty_(isatty(2) != 0),
      start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(uint64_t done) {
  if (!tty_ || total_ == 0) return;
  int permille = static_cast<int>(done * 1000 / total_);
  if (permille == last_permille_) return;
  last_permille_ = permille;
  const int width = 30;
  int filled = permille * width / 1000;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string amount = bytes_ ? format_bytes(done) + " / " + format_bytes(total_)
                              : std::to_string(done) + " / " + std::to_string(total_);
  std::fprintf(stderr, "\r%s [%s] %5.1f%% %s %.1fs", label_.c_str(), bar.c_str(), permille / 10.0,
               amount.c_str(), secs);
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (tty_ && last_permille_ >= 0) std::fprintf(stderr, "\n");
}

}  // namespace nibble
