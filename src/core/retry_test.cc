#include "core/retry.h"

#include <gtest/gtest.h>

using namespace std::chrono_literals;

namespace sloth {
namespace {

// 0.8 + 0.4 * 0.5 == 1.0: no jitter.
constexpr double kNoJitter = 0.5;

RetryPolicy Policy(RetryStrategy strategy, std::optional<Duration> delay = std::nullopt,
                   int retries = 3) {
  RetryPolicy p;
  p.retries = retries;
  p.strategy = strategy;
  p.delay = delay;
  return p;
}

TEST(RetryPolicy, MaxAttemptsIsRetriesPlusOne) {
  RetryPolicy p;
  EXPECT_EQ(p.retries, 0);
  EXPECT_EQ(p.max_attempts(), 1);
  p.retries = 3;
  EXPECT_EQ(p.max_attempts(), 4);
}

TEST(RetryPolicy, DefaultsToFixedStrategy) {
  RetryPolicy p;
  EXPECT_EQ(p.strategy, RetryStrategy::kFixed);
  EXPECT_FALSE(p.delay.has_value());
}

TEST(RetryPolicy, FixedDelayIsAlwaysTheBase) {
  RetryPolicy p = Policy(RetryStrategy::kFixed, 2s);
  for (int retry = 1; retry <= 10; ++retry) EXPECT_EQ(p.DelayBefore(retry, kNoJitter), 2s) << retry;
}

TEST(RetryPolicy, LinearDelayIsBaseTimesRetryNumber) {
  RetryPolicy p = Policy(RetryStrategy::kLinear, 3s);
  EXPECT_EQ(p.DelayBefore(1, kNoJitter), 3s);
  EXPECT_EQ(p.DelayBefore(2, kNoJitter), 6s);
  EXPECT_EQ(p.DelayBefore(3, kNoJitter), 9s);
  EXPECT_EQ(p.DelayBefore(10, kNoJitter), 30s);
}

TEST(RetryPolicy, ExponentialDelayDoublesEachRetry) {
  RetryPolicy p = Policy(RetryStrategy::kExponential, 500ms);
  EXPECT_EQ(p.DelayBefore(1, kNoJitter), 500ms);
  EXPECT_EQ(p.DelayBefore(2, kNoJitter), 1s);
  EXPECT_EQ(p.DelayBefore(3, kNoJitter), 2s);
  EXPECT_EQ(p.DelayBefore(4, kNoJitter), 4s);
  EXPECT_EQ(p.DelayBefore(5, kNoJitter), 8s);
}

TEST(RetryPolicy, DefaultBaseIsOneSecond) {
  EXPECT_EQ(Policy(RetryStrategy::kFixed).DelayBefore(1, kNoJitter), 1s);
  EXPECT_EQ(Policy(RetryStrategy::kFixed).DelayBefore(5, kNoJitter), 1s);
  EXPECT_EQ(Policy(RetryStrategy::kLinear).DelayBefore(1, kNoJitter), 1s);
  EXPECT_EQ(Policy(RetryStrategy::kLinear).DelayBefore(4, kNoJitter), 4s);
  EXPECT_EQ(Policy(RetryStrategy::kExponential).DelayBefore(1, kNoJitter), 1s);
  EXPECT_EQ(Policy(RetryStrategy::kExponential).DelayBefore(4, kNoJitter), 8s);
}

TEST(RetryPolicy, RetryNumbersBelowOneActLikeTheFirstRetry) {
  RetryPolicy linear = Policy(RetryStrategy::kLinear, 2s);
  EXPECT_EQ(linear.DelayBefore(0, kNoJitter), 2s);
  EXPECT_EQ(linear.DelayBefore(-3, kNoJitter), 2s);
  RetryPolicy exponential = Policy(RetryStrategy::kExponential, 2s);
  EXPECT_EQ(exponential.DelayBefore(0, kNoJitter), 2s);
}

TEST(RetryPolicy, DelayIsCappedAtSixtySeconds) {
  EXPECT_EQ(kMaxRetryDelay, 60s);
  EXPECT_EQ(Policy(RetryStrategy::kFixed, 90s).DelayBefore(1, kNoJitter), 60s);
  EXPECT_EQ(Policy(RetryStrategy::kLinear, 25s).DelayBefore(2, kNoJitter), 50s);
  EXPECT_EQ(Policy(RetryStrategy::kLinear, 25s).DelayBefore(3, kNoJitter), 60s);
  RetryPolicy exponential = Policy(RetryStrategy::kExponential);
  EXPECT_EQ(exponential.DelayBefore(6, kNoJitter), 32s);
  EXPECT_EQ(exponential.DelayBefore(7, kNoJitter), 60s);  // 64 s before the cap
}

TEST(RetryPolicy, HugeRetryNumbersStayCappedWithoutOverflow) {
  for (int retry : {64, 1000, 1 << 30}) {
    EXPECT_EQ(Policy(RetryStrategy::kExponential).DelayBefore(retry, kNoJitter), 60s) << retry;
    EXPECT_EQ(Policy(RetryStrategy::kLinear).DelayBefore(retry, kNoJitter), 60s) << retry;
  }
}

TEST(RetryPolicy, JitterStaysWithinTwentyPercent) {
  for (RetryStrategy strategy :
       {RetryStrategy::kFixed, RetryStrategy::kLinear, RetryStrategy::kExponential}) {
    RetryPolicy p = Policy(strategy, 2s);
    for (int retry = 1; retry <= 8; ++retry) {
      const Duration nominal = p.DelayBefore(retry, kNoJitter);
      Duration previous{};
      for (double r = 0.0; r < 1.0; r += 0.05) {
        Duration d = p.DelayBefore(retry, r);
        EXPECT_GE(d, nominal * 8 / 10 - 1us) << retry << " " << r;
        EXPECT_LE(d, nominal * 12 / 10 + 1us) << retry << " " << r;
        EXPECT_GE(d, previous) << "jitter grows with unit_random";
        previous = d;
      }
    }
  }
}

// Jittered delays are computed in floating point; allow a microsecond of rounding.
#define EXPECT_DURATION_NEAR(actual, expected)       \
  EXPECT_NEAR(static_cast<double>((actual).count()), \
              static_cast<double>(Duration(expected).count()), 1000.0)

TEST(RetryPolicy, JitterExtremes) {
  RetryPolicy p = Policy(RetryStrategy::kFixed, 10s);
  EXPECT_DURATION_NEAR(p.DelayBefore(1, 0.0), 8s);
  EXPECT_DURATION_NEAR(p.DelayBefore(1, 0.25), 9s);
  EXPECT_DURATION_NEAR(p.DelayBefore(1, 0.75), 11s);
  EXPECT_LT(p.DelayBefore(1, 0.999999), 12s);
  EXPECT_GT(p.DelayBefore(1, 0.999999), 11900ms);
  // Out-of-range randomness is clamped rather than producing odd delays.
  EXPECT_DURATION_NEAR(p.DelayBefore(1, -1.0), 8s);
  EXPECT_DURATION_NEAR(p.DelayBefore(1, 7.0), 12s);
}

TEST(RetryPolicy, JitterAppliesAroundTheCap) {
  RetryPolicy p = Policy(RetryStrategy::kExponential, 1s);
  EXPECT_DURATION_NEAR(p.DelayBefore(20, 0.0), 48s);
  EXPECT_EQ(p.DelayBefore(20, kNoJitter), 60s);
  EXPECT_LE(p.DelayBefore(20, 0.999999), 72s);
}

TEST(RetryPolicy, DifferentRandomnessGivesDifferentDelays) {
  RetryPolicy p = Policy(RetryStrategy::kFixed, 1s);
  EXPECT_NE(p.DelayBefore(1, 0.1), p.DelayBefore(1, 0.9));
}

TEST(ParseRetryStrategy, KnowsNamesAndAliases) {
  EXPECT_EQ(ParseRetryStrategy("fixed"), RetryStrategy::kFixed);
  EXPECT_EQ(ParseRetryStrategy("constant"), RetryStrategy::kFixed);
  EXPECT_EQ(ParseRetryStrategy("linear"), RetryStrategy::kLinear);
  EXPECT_EQ(ParseRetryStrategy("exponential"), RetryStrategy::kExponential);
  EXPECT_EQ(ParseRetryStrategy("exp"), RetryStrategy::kExponential);
}

TEST(ParseRetryStrategy, RejectsUnknownNames) {
  for (const char* bad : {"", "expo", "Linear", "FIXED", "exponential ", "random"})
    EXPECT_EQ(ParseRetryStrategy(bad), std::nullopt) << bad;
}

TEST(RetryStrategyName, RoundTripsThroughParse) {
  for (RetryStrategy s :
       {RetryStrategy::kFixed, RetryStrategy::kLinear, RetryStrategy::kExponential})
    EXPECT_EQ(ParseRetryStrategy(RetryStrategyName(s)), s);
  EXPECT_EQ(RetryStrategyName(RetryStrategy::kFixed), "fixed");
  EXPECT_EQ(RetryStrategyName(RetryStrategy::kLinear), "linear");
  EXPECT_EQ(RetryStrategyName(RetryStrategy::kExponential), "exponential");
}

}  // namespace
}  // namespace sloth
