// libFuzzer target: cron expressions never crash the parser; whatever it accepts gives Next()
// times that are strictly later (or none), quickly, and its normal text parses back to a schedule
// with the same next times.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/cron.h"

namespace {

using TimePoint = sloth::CronSchedule::TimePoint;

void CheckNext(const sloth::CronSchedule& cron, const sloth::CronSchedule& again, TimePoint t) {
  for (int i = 0; i < 3; ++i) {
    std::optional<TimePoint> next = cron.Next(t);
    if (next != again.Next(t)) std::abort();
    if (!next) return;
    if (*next <= t) std::abort();
    t = *next;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cron = sloth::ParseCron(text, "Europe/Lisbon");
  if (!cron.ok()) return 0;
  auto again = sloth::ParseCron(cron->text(), "Europe/Lisbon");
  if (!again.ok()) std::abort();
  using std::chrono::seconds;
  // 2024-03-30 23:30 UTC (before Lisbon's spring jump), 2024-10-26 23:59:30 UTC (before the fall
  // back), and the ends of what a TimePoint holds.
  for (TimePoint t : {TimePoint(seconds(1711841400)), TimePoint(seconds(1729987170)),
                      TimePoint::min(), TimePoint::max() - std::chrono::hours(24 * 365)}) {
    CheckNext(*cron, *again, t);
  }
  return 0;
}
