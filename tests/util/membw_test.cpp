// The bandwidth probe's argument checks and what one measurement reports. (The number itself is
// the machine's; only its plausibility is checked: positive, and no faster than reading a
// buffer that fits in the caches is allowed to be.)
#include <gtest/gtest.h>

#include <cstring>

#include "util/membw.h"

namespace nibble {
namespace {

TEST(MemBandwidth, RejectsBadSizesThreadsAndRuns) {
  EXPECT_FALSE(MemBandwidthProbe::create(1000, 1).ok());
  EXPECT_FALSE(MemBandwidthProbe::create(65ull << 30, 1).ok());
  EXPECT_FALSE(MemBandwidthProbe::create(1ull << 20, -1).ok());
  EXPECT_FALSE(MemBandwidthProbe::create(1ull << 20, 1025).ok());
  auto p = MemBandwidthProbe::create(1ull << 20, 1);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p.value()->measure(0).ok());
  EXPECT_FALSE(p.value()->measure(101).ok());
  const auto err = measure_memory_bandwidth(1ull << 20, 0, 1);
  ASSERT_FALSE(err.ok());
  EXPECT_NE(err.error().message.find("0 runs"), std::string::npos) << err.error().message;
}

TEST(MemBandwidth, ReportsEveryReadAndTheBestLoads) {
  auto p = MemBandwidthProbe::create(8ull << 20, 2);
  ASSERT_TRUE(p.ok());
  for (int round = 0; round < 2; ++round) {  // the same buffer, measured again
    auto m = p.value()->measure(3);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->runs, 6);  // 3 runs, without and with prefetches
    EXPECT_EQ(m->threads, 2);
    EXPECT_EQ(m->buffer_bytes, 8ull << 20);
    EXPECT_GT(m->gb_per_s, 0.0);
    EXPECT_GE(m->gb_per_s, m->median_gb_per_s);
    EXPECT_GT(std::strlen(m->loads), 0u);
  }
}

}  // namespace
}  // namespace nibble
