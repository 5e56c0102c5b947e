// Retry delays: fixed = base, linear = base*k, exponential = base*2^(k-1), capped, with jitter.
#include "core/retry.h"

#include <algorithm>
#include <cmath>

namespace sloth {

std::optional<RetryStrategy> ParseRetryStrategy(std::string_view name) {
  if (name == "fixed" || name == "constant") return RetryStrategy::kFixed;
  if (name == "linear") return RetryStrategy::kLinear;
  if (name == "exponential" || name == "exp") return RetryStrategy::kExponential;
  return std::nullopt;
}

std::string_view RetryStrategyName(RetryStrategy strategy) {
  switch (strategy) {
    case RetryStrategy::kFixed:
      return "fixed";
    case RetryStrategy::kLinear:
      return "linear";
    case RetryStrategy::kExponential:
      return "exponential";
  }
  return "fixed";
}

Duration RetryPolicy::DelayBefore(int retry, double unit_random) const {
  const double base = static_cast<double>(delay.value_or(std::chrono::seconds(1)).count());
  const int k = std::max(retry, 1);
  double nanos = base;
  if (strategy == RetryStrategy::kLinear) nanos = base * k;
  if (strategy == RetryStrategy::kExponential) nanos = base * std::pow(2.0, std::min(k - 1, 40));
  nanos = std::min(nanos, static_cast<double>(kMaxRetryDelay.count()));
  nanos *= 0.8 + 0.4 * std::clamp(unit_random, 0.0, 1.0);
  return Duration(static_cast<long long>(nanos));
}

}  // namespace sloth
