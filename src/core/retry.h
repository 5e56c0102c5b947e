// Retry policy: how many attempts a task gets and how long to wait between them.
#pragma once

#include <optional>
#include <string_view>

#include "base/duration.h"

namespace sloth {

enum class RetryStrategy { kFixed, kLinear, kExponential };

std::optional<RetryStrategy> ParseRetryStrategy(std::string_view name);
std::string_view RetryStrategyName(RetryStrategy strategy);

struct RetryPolicy {
  int retries = 0;  // up to retries + 1 attempts
  RetryStrategy strategy = RetryStrategy::kFixed;
  std::optional<Duration> delay;  // base delay; 1 s when unset

  int max_attempts() const { return retries + 1; }
  // Delay before retry number `retry` (1 for the second attempt). `unit_random` in [0, 1) adds
  // +/-20% jitter so that many failing tasks do not retry in lockstep.
  Duration DelayBefore(int retry, double unit_random) const;
};

constexpr Duration kMaxRetryDelay = std::chrono::seconds(60);

}  // namespace sloth
