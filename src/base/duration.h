// Durations as users write them ("500ms", "30s", "1h30m", or a number of seconds) and as we print
// them.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "base/status.h"

namespace sloth {

using Duration = std::chrono::nanoseconds;
using Clock = std::chrono::steady_clock;

// Parses "1h30m", "500ms", "2.5s", "90" (seconds). Units: ns, us, ms, s, m, h, d.
Result<Duration> ParseDuration(std::string_view text);

// Seconds as a number (fractions allowed) to a Duration; negative or non-finite is an error.
Result<Duration> DurationFromSeconds(double seconds);

// "1.234s" with millisecond precision, as the JSON output contract shows.
std::string FormatSeconds(Duration d);

// Short human form for progress lines: "850ms", "1.2s", "2m05s".
std::string FormatHuman(Duration d);

inline long long ToMillis(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace sloth
