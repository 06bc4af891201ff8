// A small blocking thread pool with dynamic task distribution.
#include "util/thread_pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace nibble {

namespace {

// How long an idle thread spins before it sleeps: longer than the serial stretches between the
// parallel regions of one decoded token (norms, RoPE, sampling: tens of microseconds), so the
// workers stay awake through a token (a futex wake-up per matmul cost ~10% of decoding speed),
// short enough that a waiting chat or server burns no core.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until pred() holds or kSpin has passed; returns pred().
template <typename Pred>
bool spin_until(Pred pred) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (int i = 1;; ++i) {
    if (pred()) return true;
    cpu_relax();
    if ((i & 63) == 0 && std::chrono::steady_clock::now() >= until) return pred();
  }
}

class Pool {
 public:
  explicit Pool(int n_threads) {
    for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this] { worker(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      ++generation_;
      published_.store(generation_, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  int n_threads() const { return static_cast<int>(workers_.size()) + 1; }

  void run(int64_t n_tasks, const std::function<void(int64_t)>& fn) {
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn_ = &fn;
      n_tasks_ = n_tasks;
      ++generation_;
      done_.store(0, std::memory_order_relaxed);
      ticket_.store(job_bits(generation_), std::memory_order_release);
      published_.store(generation_, std::memory_order_release);
      wake = sleepers_ > 0;
    }
    if (wake) cv_.notify_all();
    work(generation_, &fn, n_tasks);
    // Wait for tasks still running on workers: spin, then sleep.
    const auto finished = [&] { return done_.load(std::memory_order_acquire) >= n_tasks; };
    if (!spin_until(finished)) {
      std::unique_lock<std::mutex> lock(mu_);
      done_cv_.wait(lock, finished);
    }
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = nullptr;
  }

 private:
  static uint64_t job_bits(uint64_t generation) { return (generation & 0xFFFFFFFFu) << 32; }

  // Claims the next task of job `generation`, or returns -1 when that job has none left (or
  // is already over: a worker that woke late must not run another job's tasks with a stale fn).
  int64_t claim(uint64_t generation, int64_t n) {
    uint64_t v = ticket_.load(std::memory_order_acquire);
    for (;;) {
      if ((v & ~uint64_t{0xFFFFFFFFu}) != job_bits(generation)) return -1;
      const int64_t t = static_cast<int64_t>(v & 0xFFFFFFFFu);
      if (t >= n) return -1;
      if (ticket_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) return t;
    }
  }

  void work(uint64_t generation, const std::function<void(int64_t)>* fn, int64_t n) {
    for (;;) {
      const int64_t t = claim(generation, n);
      if (t < 0) break;
      (*fn)(t);
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
        std::lock_guard<std::mutex> lock(mu_);
        done_cv_.notify_all();
      }
    }
  }

  void worker() {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int64_t)>* fn;
      int64_t n;
      // Spin on the published generation first; the job itself is read under the lock.
      spin_until([&] { return published_.load(std::memory_order_acquire) != seen; });
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (generation_ == seen) {
          ++sleepers_;
          cv_.wait(lock, [&] { return generation_ != seen; });
          --sleepers_;
        }
        seen = generation_;
        if (stop_) return;
        if (fn_ == nullptr) continue;
        fn = fn_;
        n = n_tasks_;
      }
      work(seen, fn, n);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  uint64_t generation_ = 0;
  int sleepers_ = 0;  // workers waiting on cv_ (run() only notifies when there are some)
  bool stop_ = false;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<uint64_t> ticket_{0};  // (job << 32) | next task
  std::atomic<int64_t> done_{0};
  std::atomic<uint64_t> published_{0};  // generation_, readable without the lock
};

std::atomic<int> g_requested_threads{0};
std::atomic<bool> g_pool_created{false};

int configured_threads() {
  if (const int n = g_requested_threads.load(); n > 0) return n;
  if (const char* env = std::getenv("NIBBLE_THREADS"); env != nullptr && *env != '\0') {
    const int n = std::atoi(env);
    if (n >= 1 && n <= 1024) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

Pool& pool() {
  static Pool p([] {
    g_pool_created.store(true);
    return configured_threads();
  }());
  return p;
}

}  // namespace

int pool_threads() { return pool().n_threads(); }

bool set_pool_threads(int n) {
  if (n < 1 || n > 1024 || g_pool_created.load()) return false;
  g_requested_threads.store(n);
  return !g_pool_created.load();
}

void parallel_for(int64_t n_tasks, const std::function<void(int64_t task)>& fn) {
  if (n_tasks <= 0) return;
  if (n_tasks == 1 || pool().n_threads() == 1) {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t);
    return;
  }
  pool().run(n_tasks, fn);
}

}  // namespace nibble
