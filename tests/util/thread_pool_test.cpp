// util/thread_pool.h: set_pool_threads sizes the pool before its first use (nibble bench -t) and
// is refused afterwards; parallel_for runs every task exactly once on that many threads, whether
// the workers are spinning or asleep between jobs.
#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace nibble {
namespace {

// One test: the pool is process-wide, created once.
TEST(ThreadPool, SetThreadsBeforeFirstUseOnly) {
  EXPECT_FALSE(set_pool_threads(0));
  EXPECT_FALSE(set_pool_threads(1025));
  ASSERT_TRUE(set_pool_threads(5));
  ASSERT_TRUE(set_pool_threads(3));  // still before first use: the last value wins
  EXPECT_EQ(pool_threads(), 3);
  EXPECT_FALSE(set_pool_threads(2));  // the pool exists now
  EXPECT_EQ(pool_threads(), 3);

  std::vector<std::atomic<int>> runs(1000);
  std::mutex mu;
  std::set<std::thread::id> ids;
  parallel_for(1000, [&](int64_t t) {
    runs[t].fetch_add(1);
    std::lock_guard<std::mutex> lock(mu);
    ids.insert(std::this_thread::get_id());
  });
  for (size_t i = 0; i < runs.size(); ++i) ASSERT_EQ(runs[i].load(), 1) << "task " << i;
  EXPECT_LE(ids.size(), 3u);

  // Jobs back to back (workers still spinning), and after pauses longer than the 200 us spin
  // (workers asleep on the condition variable): every job completes, every task runs once.
  for (int job = 0; job < 3000; ++job) {
    const int64_t n = 1 + job % 7;
    std::atomic<int64_t> sum{0};
    parallel_for(n, [&](int64_t t) { sum.fetch_add(t + 1); });
    ASSERT_EQ(sum.load(), n * (n + 1) / 2) << "job " << job;
    if (job % 500 == 499) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace
}  // namespace nibble
