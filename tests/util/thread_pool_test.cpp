// util/thread_pool.h: set_pool_threads sizes the pool before its first use (nibble bench -t) and
// is refused afterwards; parallel_for runs every task exactly once on that many threads.
#include "util/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
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
}

}  // namespace
}  // namespace nibble
