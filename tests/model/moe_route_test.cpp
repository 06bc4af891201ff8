// MoE routing (spec §4.7): softmax over all experts, top-k, renormalise, per-expert scale;
// exact ties go to the lower expert id, near-ties to the larger probability.
#include <gtest/gtest.h>

#include <cmath>

#include "model/blocks/moe.h"

namespace nibble {
namespace {

TEST(MoeRoute, TopKRenormalisedAndScaled) {
  const float logits[5] = {0.1f, 2.0f, -1.0f, 1.0f, 0.5f};
  const float scale[5] = {1.0f, 0.5f, 1.0f, 2.0f, 1.0f};
  int32_t ids[2];
  float w[2];
  moe_route(logits, 5, 2, scale, ids, w);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 3);
  const double p1 = std::exp(2.0), p3 = std::exp(1.0);
  EXPECT_NEAR(w[0], p1 / (p1 + p3) * 0.5, 1e-6);
  EXPECT_NEAR(w[1], p3 / (p1 + p3) * 2.0, 1e-6);
}

TEST(MoeRoute, ExactTiesGoToTheLowerId) {
  const float logits[6] = {0.0f, 1.0f, 3.0f, 1.0f, 3.0f, 1.0f};
  int32_t ids[3];
  float w[3];
  moe_route(logits, 6, 3, nullptr, ids, w);
  EXPECT_EQ(ids[0], 2);
  EXPECT_EQ(ids[1], 4);
  EXPECT_EQ(ids[2], 1);  // three-way tie at 1.0: lowest id wins
  EXPECT_NEAR(w[0] + w[1] + w[2], 1.0f, 1e-6f);
  EXPECT_FLOAT_EQ(w[0], w[1]);
}

TEST(MoeRoute, NearTiesPickTheLargerProbability) {
  // Differences far below bf16 resolution, resolved in float32 as llama.cpp does.
  for (float eps : {1e-3f, 1e-5f, 3e-7f}) {
    const float logits[4] = {0.5f, 0.5f + eps, 0.5f - eps, -2.0f};
    int32_t ids[2];
    float w[2];
    moe_route(logits, 4, 2, nullptr, ids, w);
    EXPECT_EQ(ids[0], 1) << eps;
    EXPECT_EQ(ids[1], 0) << eps;
    EXPECT_GE(w[0], w[1]) << eps;
  }
}

TEST(MoeRoute, KEqualsAllExpertsKeepsTheFullSoftmax) {
  const float logits[3] = {1.0f, 2.0f, 3.0f};
  int32_t ids[3];
  float w[3];
  moe_route(logits, 3, 3, nullptr, ids, w);
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(w[0], std::exp(3.0) / z, 1e-6);
  EXPECT_NEAR(w[2], std::exp(1.0) / z, 1e-6);
}

}  // namespace
}  // namespace nibble
