// Cron expressions for the scheduler: parsing ("*/5 * * * *", "@daily", "@every 10m",
// "CRON_TZ=Europe/Lisbon 0 9 * * MON-FRI") and the next time a schedule fires. Syntax and
// semantics for users are in docs/cron.md; the rules the code follows:
//
// - 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds FIRST
//   (second minute hour day-of-month month day-of-week). Each field is a list of `*`, `N`, `A-B`,
//   each optionally with `/STEP`; `N/STEP` means N to the field's maximum. Months and weekdays
//   take names (JAN-DEC, SUN-SAT, any case); weekday 7 is Sunday; `?` is `*` in the day fields.
// - Vixie rule: when both day fields are restricted (neither starts with `*` or `?`), a day
//   matches if EITHER matches; otherwise both must.
// - Macros: @yearly @annually @monthly @weekly @daily @midnight @hourly, and @every DURATION
//   (base/duration.h syntax, at least 1s) which fires at after + DURATION.
// - Times are wall-clock times in CRON_TZ=ZONE (or TZ=ZONE), else the default zone given to
//   ParseCron, else the machine's zone (TZ, then /etc/localtime), else UTC. A wall time skipped
//   by a DST jump fires at the instant of the jump; a wall time repeated by a DST fall-back fires
//   once, at its first occurrence.
// - Next() looks at most kCronSearchYears ahead; "0 0 30 2 *" has no next time.
#pragma once

#include <bitset>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "base/duration.h"
#include "base/status.h"

namespace date {
class time_zone;
}

namespace sloth {

inline constexpr int kCronSearchYears = 10;  // covers the 8-year gap in Feb 29ths around 2100

class CronSchedule {
 public:
  using TimePoint = std::chrono::system_clock::time_point;

  // The first time strictly after `after` when the schedule fires; nullopt when there is none
  // within kCronSearchYears (or past what TimePoint can hold).
  std::optional<TimePoint> Next(TimePoint after) const;

  // The expression in a normal form (single spaces, macros and names kept as written); parsing it
  // again gives the same schedule.
  const std::string& text() const { return text_; }
  // The zone the schedule's wall times are in ("UTC" when none).
  const std::string& zone_name() const { return zone_name_; }
  // For "@every D": D (the scheduler may anchor the intervals itself); nullopt for calendar ones.
  std::optional<Duration> every() const { return every_; }

 private:
  friend class CronParser;

  bool DayMatches(int day_of_month, int weekday) const;
  std::optional<TimePoint> NextOnDay(long local_day, long start, TimePoint after) const;
  long ToSys(long local_seconds) const;

  std::string text_;
  std::string zone_name_ = "UTC";
  const date::time_zone* zone_ = nullptr;  // nullptr: UTC, no lookups
  std::optional<Duration> every_;
  std::bitset<60> seconds_, minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;     // 1..31
  std::bitset<13> months_;   // 1..12
  std::bitset<7> weekdays_;  // 0 = Sunday
  bool days_star_ = true, weekdays_star_ = true;
};

// Parses a cron expression. `default_zone` is used when the text has no CRON_TZ=; empty means the
// machine's zone. Errors read like: cron "*/0 * * * *": minute: step must be at least 1
Result<CronSchedule> ParseCron(std::string_view text, std::string_view default_zone = {});

}  // namespace sloth
