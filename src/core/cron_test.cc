#include "core/cron.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

namespace sloth {
namespace {

using ::testing::HasSubstr;
using TimePoint = CronSchedule::TimePoint;

// "2024-03-31 01:30:00" (UTC) to a time point; timegm keeps the test independent of the code's
// own calendar arithmetic.
TimePoint At(const std::string& utc) {
  std::tm tm{};
  EXPECT_NE(strptime(utc.c_str(), "%Y-%m-%d %H:%M:%S", &tm), nullptr) << utc;
  return TimePoint(std::chrono::seconds(timegm(&tm)));
}

std::string Show(std::optional<TimePoint> t) {
  if (!t) return "none";
  auto s = std::chrono::floor<std::chrono::seconds>(*t);
  std::time_t secs = s.time_since_epoch().count();
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  std::string out = buf;
  if (*t != s) out += "+" + std::to_string((*t - s).count()) + "ns";
  return out;
}

CronSchedule MustParse(const std::string& text) {
  Result<CronSchedule> cron = ParseCron(text, "UTC");
  EXPECT_TRUE(cron.ok()) << cron.error();
  return cron.ok() ? *cron : *ParseCron("* * * * *", "UTC");
}

struct NextCase {
  std::string expr, after, want;  // times in UTC; want "none" when there is no next time
};

void CheckNext(const std::vector<NextCase>& cases) {
  for (const NextCase& c : cases) {
    CronSchedule cron = MustParse(c.expr);
    EXPECT_EQ(Show(cron.Next(At(c.after))), c.want) << c.expr << " after " << c.after;
  }
}

TEST(Cron, NextInUtc) {
  CheckNext({
      {"* * * * *", "2024-01-01 00:00:00", "2024-01-01 00:01:00"},
      {"*/15 * * * *", "2024-01-01 00:14:59", "2024-01-01 00:15:00"},
      {"*/15 * * * *", "2024-01-01 00:15:00", "2024-01-01 00:30:00"},
      {"*/15 * * * *", "2024-01-01 23:45:00", "2024-01-02 00:00:00"},
      {"0 */6 * * *", "2024-01-01 05:59:00", "2024-01-01 06:00:00"},
      {"5/20 * * * *", "2024-01-01 00:00:00", "2024-01-01 00:05:00"},
      {"5/20 * * * *", "2024-01-01 00:45:00", "2024-01-01 01:05:00"},
      {"10-30/10 * * * *", "2024-01-01 00:31:00", "2024-01-01 01:10:00"},
      {"0 1,3-4 * * *", "2024-01-01 01:00:00", "2024-01-01 03:00:00"},
      {"0 0 1 1 *", "2024-06-01 00:00:00", "2025-01-01 00:00:00"},
      {"59 23 31 12 *", "2024-12-31 23:59:00", "2025-12-31 23:59:00"},
      {"0 0 31 * *", "2024-04-01 00:00:00", "2024-05-31 00:00:00"},
      {"30 9 * * MON-FRI", "2024-01-05 10:00:00", "2024-01-08 09:30:00"},  // Fri -> Mon
      {"0 0 * * 7", "2024-01-01 00:00:00", "2024-01-07 00:00:00"},         // 7 is Sunday
      {"0 0 * * 0", "2024-01-01 00:00:00", "2024-01-07 00:00:00"},
      {"0 0 * * FRI-SUN", "2024-01-06 12:00:00", "2024-01-07 00:00:00"},
      {"0 0 * * fri-sun", "2024-01-07 12:00:00", "2024-01-12 00:00:00"},
      {"0 0 1 jan,Jul *", "2024-02-01 00:00:00", "2024-07-01 00:00:00"},
      {"0 0 ? * 1", "2024-01-01 00:00:00", "2024-01-08 00:00:00"},
      {"0 0 1 * ?", "2024-01-15 00:00:00", "2024-02-01 00:00:00"},
  });
}

// Next() chained from a start agrees with a minute-by-minute scan that checks each minute against
// the expression written as a predicate.
TEST(Cron, AgreesWithAMinuteByMinuteScan) {
  struct Case {
    std::string expr;
    bool (*matches)(const std::tm&);
  } cases[] = {
      {"*/7 3-5 * * *",
       [](const std::tm& t) { return t.tm_min % 7 == 0 && t.tm_hour >= 3 && t.tm_hour <= 5; }},
      {"15,45 */5 1-10 * *",
       [](const std::tm& t) {
         return (t.tm_min == 15 || t.tm_min == 45) && t.tm_hour % 5 == 0 && t.tm_mday <= 10;
       }},
      {"0 12 13 * FRI",
       [](const std::tm& t) {
         return t.tm_min == 0 && t.tm_hour == 12 && (t.tm_mday == 13 || t.tm_wday == 5);
       }},
      {"30 23 * FEB,MAR SAT-SUN",
       [](const std::tm& t) {
         return t.tm_min == 30 && t.tm_hour == 23 && (t.tm_mon == 1 || t.tm_mon == 2) &&
                (t.tm_wday == 6 || t.tm_wday == 0);
       }},
      {"0 0 29-31 * *",
       [](const std::tm& t) { return t.tm_min == 0 && t.tm_hour == 0 && t.tm_mday >= 29; }},
      {"10/25 1/10 * * 1-5",
       [](const std::tm& t) {
         return t.tm_min % 25 == 10 && t.tm_hour % 10 == 1 && t.tm_wday >= 1 && t.tm_wday <= 5;
       }},
  };
  const TimePoint begin = At("2024-01-20 00:00:00"), end = At("2024-04-10 00:00:00");
  for (const Case& c : cases) {
    std::vector<std::string> scanned, chained;
    for (TimePoint t = begin + std::chrono::minutes(1); t < end; t += std::chrono::minutes(1)) {
      std::time_t secs = std::chrono::system_clock::to_time_t(t);
      std::tm tm{};
      gmtime_r(&secs, &tm);
      if (c.matches(tm)) scanned.push_back(Show(t));
    }
    CronSchedule cron = MustParse(c.expr);
    for (std::optional<TimePoint> t = cron.Next(begin); t && *t < end; t = cron.Next(*t)) {
      chained.push_back(Show(*t));
    }
    EXPECT_FALSE(scanned.empty()) << c.expr;
    EXPECT_EQ(chained, scanned) << c.expr;
  }
}

TEST(Cron, SixFieldsPutSecondsFirst) {
  CheckNext({
      {"*/10 * * * * *", "2024-01-01 00:00:05", "2024-01-01 00:00:10"},
      {"30 0 0 * * *", "2024-01-01 00:00:30", "2024-01-02 00:00:30"},
      {"0 0 12 * * *", "2024-01-01 00:00:00", "2024-01-01 12:00:00"},
      {"* * * * * *", "2024-01-01 23:59:59", "2024-01-02 00:00:00"},
  });
}

TEST(Cron, NextIsStrictlyAfterAFractionalTime) {
  CronSchedule cron = MustParse("* * * * * *");
  TimePoint after = At("2024-01-01 00:00:00") + std::chrono::milliseconds(500);
  EXPECT_EQ(Show(cron.Next(after)), "2024-01-01 00:00:01");
  EXPECT_EQ(Show(MustParse("* * * * *").Next(after)), "2024-01-01 00:01:00");
}

TEST(Cron, LeapDays) {
  CheckNext({
      {"0 0 29 2 *", "2024-03-01 00:00:00", "2028-02-29 00:00:00"},
      {"0 0 29 2 *", "2024-02-28 12:00:00", "2024-02-29 00:00:00"},
      {"0 0 29 2 *", "2097-01-01 00:00:00", "2104-02-29 00:00:00"},  // 2100 is not a leap year
      {"0 0 28 2 *", "2023-02-28 00:00:00", "2024-02-28 00:00:00"},
  });
}

TEST(Cron, ImpossibleDatesHaveNoNextTime) {
  CheckNext({
      {"0 0 30 2 *", "2024-01-01 00:00:00", "none"},
      {"0 0 31 4,6,9,11 *", "2024-01-01 00:00:00", "none"},
  });
}

TEST(Cron, DayOfMonthOrDayOfWeekWhenBothRestricted) {
  CheckNext({
      // Oct 2024: Fridays are the 11th and 18th; the 13th is a Sunday.
      {"0 12 13 * FRI", "2024-10-11 13:00:00", "2024-10-13 12:00:00"},
      {"0 12 13 * FRI", "2024-10-13 13:00:00", "2024-10-18 12:00:00"},
      // One side unrestricted: both must match.
      {"0 12 * * FRI", "2024-10-12 00:00:00", "2024-10-18 12:00:00"},
      {"0 12 13 * *", "2024-10-14 00:00:00", "2024-11-13 12:00:00"},
      {"0 12 13 * ?", "2024-10-14 00:00:00", "2024-11-13 12:00:00"},
      // A field starting with * counts as unrestricted (Vixie): odd days that are Mondays.
      {"0 0 */2 * MON", "2024-01-01 00:00:00", "2024-01-15 00:00:00"},
  });
}

TEST(Cron, Macros) {
  CheckNext({
      {"@hourly", "2024-01-01 00:00:00", "2024-01-01 01:00:00"},
      {"@daily", "2024-01-01 00:00:00", "2024-01-02 00:00:00"},
      {"@midnight", "2024-01-01 12:00:00", "2024-01-02 00:00:00"},
      {"@weekly", "2024-01-03 00:00:00", "2024-01-07 00:00:00"},
      {"@monthly", "2024-01-03 00:00:00", "2024-02-01 00:00:00"},
      {"@yearly", "2024-01-03 00:00:00", "2025-01-01 00:00:00"},
      {"@ANNUALLY", "2024-01-03 00:00:00", "2025-01-01 00:00:00"},
  });
}

TEST(Cron, EveryCountsFromTheGivenTime) {
  CronSchedule cron = MustParse("@every 10m");
  TimePoint t = At("2024-01-01 00:03:07") + std::chrono::milliseconds(250);
  EXPECT_EQ(Show(cron.Next(t)), "2024-01-01 00:13:07+250000000ns");
  EXPECT_EQ(cron.every(), std::optional<Duration>(std::chrono::minutes(10)));
  EXPECT_EQ(Show(MustParse("@every 1h30m").Next(At("2024-01-01 23:00:00"))), "2024-01-02 00:30:00");
  EXPECT_EQ(MustParse("@every 10m").Next(TimePoint::max() - std::chrono::minutes(1)), std::nullopt);
  EXPECT_EQ(MustParse("0 * * * *").every(), std::nullopt);
}

TEST(Cron, LisbonAcrossDaylightSavingTransitions) {
  // 2024-03-31 01:00 WET jumps to 02:00 WEST (01:00 UTC); 2024-10-27 02:00 WEST falls back to
  // 01:00 WET (01:00 UTC), so 01:00-01:59 happens twice: 00:xx UTC, then 01:xx UTC.
  CheckNext({
      {"CRON_TZ=Europe/Lisbon 0 9 * * *", "2024-03-30 00:00:00", "2024-03-30 09:00:00"},
      {"CRON_TZ=Europe/Lisbon 0 9 * * *", "2024-03-30 10:00:00", "2024-03-31 08:00:00"},
      // A skipped wall time fires at the jump.
      {"CRON_TZ=Europe/Lisbon 30 1 * * *", "2024-03-30 12:00:00", "2024-03-31 01:00:00"},
      {"CRON_TZ=Europe/Lisbon 30 1 * * *", "2024-03-31 01:00:00", "2024-04-01 00:30:00"},
      {"CRON_TZ=Europe/Lisbon * 1 * * *", "2024-03-31 00:59:00", "2024-03-31 01:00:00"},
      {"CRON_TZ=Europe/Lisbon * 1 * * *", "2024-03-31 01:00:00", "2024-04-01 00:00:00"},
      // A repeated wall time fires once, at its first occurrence.
      {"CRON_TZ=Europe/Lisbon 30 1 * * *", "2024-10-26 12:00:00", "2024-10-27 00:30:00"},
      {"CRON_TZ=Europe/Lisbon 30 1 * * *", "2024-10-27 00:30:00", "2024-10-28 01:30:00"},
      {"CRON_TZ=Europe/Lisbon 0 * * * *", "2024-10-27 00:00:00", "2024-10-27 02:00:00"},
      {"CRON_TZ=Europe/Lisbon */30 * * * *", "2024-10-27 01:10:00", "2024-10-27 02:00:00"},
      {"CRON_TZ=Europe/Lisbon 0 9 * * *", "2024-10-27 00:00:00", "2024-10-27 09:00:00"},
      {"CRON_TZ=Europe/Lisbon 0 9 * * *", "2024-10-26 00:00:00", "2024-10-26 08:00:00"},
  });
}

TEST(Cron, NewYorkAcrossDaylightSavingTransitions) {
  // 2024-03-10 02:00 EST jumps to 03:00 EDT (07:00 UTC); 2024-11-03 02:00 EDT falls back to
  // 01:00 EST (06:00 UTC).
  CheckNext({
      {"CRON_TZ=America/New_York 30 2 * * *", "2024-03-09 12:00:00", "2024-03-10 07:00:00"},
      {"CRON_TZ=America/New_York 0 12 * * *", "2024-03-09 00:00:00", "2024-03-09 17:00:00"},
      {"CRON_TZ=America/New_York 0 12 * * *", "2024-03-10 00:00:00", "2024-03-10 16:00:00"},
      {"CRON_TZ=America/New_York 30 1 * * *", "2024-11-02 12:00:00", "2024-11-03 05:30:00"},
      {"CRON_TZ=America/New_York 30 1 * * *", "2024-11-03 05:30:00", "2024-11-04 06:30:00"},
      {"TZ=America/New_York 0 0 1 1 *", "2024-06-01 00:00:00", "2025-01-01 05:00:00"},
      {"CRON_TZ=Asia/Kolkata 0 0 * * *", "2024-01-01 00:00:00", "2024-01-01 18:30:00"},
      {"CRON_TZ=UTC 0 0 * * *", "2024-01-01 00:00:00", "2024-01-02 00:00:00"},
  });
}

TEST(Cron, HourlyInLisbonFiresEveryRealHourButTheRepeatedOneIn2024) {
  CronSchedule cron = MustParse("CRON_TZ=Europe/Lisbon 0 * * * *");
  TimePoint t = At("2023-12-31 23:59:59"), end = At("2025-01-01 00:00:00");
  int count = 0;
  while (true) {
    std::optional<TimePoint> next = cron.Next(t);
    ASSERT_TRUE(next);
    ASSERT_GT(*next, t);
    if (*next >= end) break;
    t = *next;
    ++count;
  }
  // 366 * 24 UTC hours; the skipped 01:00 and 02:00 WEST share 01:00 UTC; the second 01:00 WET
  // (01:00 UTC on Oct 27) does not fire.
  EXPECT_EQ(count, 366 * 24 - 1);
}

TEST(Cron, DefaultZoneIsTheMachinesUnlessGiven) {
  EXPECT_EQ(MustParse("* * * * *").zone_name(), "UTC");
  Result<CronSchedule> lisbon = ParseCron("0 9 * * *", "Europe/Lisbon");
  ASSERT_TRUE(lisbon.ok()) << lisbon.error();
  EXPECT_EQ(Show(lisbon->Next(At("2024-07-01 00:00:00"))), "2024-07-01 08:00:00");

  const char* old = std::getenv("TZ");
  std::string saved = old ? old : "";
  setenv("TZ", "America/New_York", 1);
  Result<CronSchedule> machine = ParseCron("0 0 * * *");
  if (old)
    setenv("TZ", saved.c_str(), 1);
  else
    unsetenv("TZ");
  ASSERT_TRUE(machine.ok()) << machine.error();
  EXPECT_EQ(machine->zone_name(), "America/New_York");
  EXPECT_EQ(Show(machine->Next(At("2024-01-01 00:00:00"))), "2024-01-01 05:00:00");
}

TEST(Cron, TextIsNormalisedAndParsesBack) {
  CronSchedule cron = MustParse("  CRON_TZ=Europe/Lisbon \t 0  9 * *   mon-fri ");
  EXPECT_EQ(cron.text(), "CRON_TZ=Europe/Lisbon 0 9 * * mon-fri");
  EXPECT_EQ(cron.zone_name(), "Europe/Lisbon");
  CronSchedule again = MustParse(cron.text());
  TimePoint t = At("2024-03-29 00:00:00");
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(Show(again.Next(t)), Show(cron.Next(t)));
    t = *cron.Next(t);
  }
  EXPECT_EQ(MustParse("@every   90s").text(), "@every 90s");
}

TEST(Cron, ErrorsNameTheFieldAndToken) {
  Result<CronSchedule> r = ParseCron("*/0 * * * *", "UTC");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "cron \"*/0 * * * *\": minute: step must be at least 1");

  struct Case {
    std::string text, error;
  } cases[] = {
      {"", "empty expression"},
      {"   ", "empty expression"},
      {"* * * *", "expected 5 fields (minute hour day-of-month month day-of-week) or 6"},
      {"* * * * * * *", "got 7"},
      {"60 * * * *", "minute: value \"60\" is out of range 0-59"},
      {"* 24 * * *", "hour: value \"24\" is out of range 0-23"},
      {"* * 0 * *", "day-of-month: value \"0\" is out of range 1-31"},
      {"* * * 13 *", "month: value \"13\" is out of range 1-12"},
      {"* * * * 8", "day-of-week: value \"8\" is out of range 0-7"},
      {"60 * * * * *", "second: value \"60\" is out of range 0-59"},
      {"* * * FOO *", "month: bad value \"FOO\""},
      {"* * * * MON-FOO", "day-of-week: bad value \"FOO\""},
      {"* * * * JAN", "day-of-week: bad value \"JAN\""},
      {"5-1 * * * *", "minute: range \"5-1\" starts after it ends"},
      {"1,,2 * * * *", "minute: empty list item"},
      {"1, * * * *", "minute: empty list item"},
      {"*/x * * * *", "minute: bad step \"x\""},
      {"1/2/3 * * * *", "minute: bad step \"2/3\""},
      {"*/61 * * * *", "minute: step \"61\" is larger than the field's range 0-59"},
      {"? * * * *", "minute: bad value \"?\""},
      {"-1 * * * *", "minute: bad value \"\""},
      {"99999999999 * * * *", "minute: bad value \"99999999999\""},
      {"* * L * *", "day-of-month: bad value \"L\" (L, W, # and H are not supported)"},
      {"* * * * 5#3", "not supported"},
      {"@reboot", "unknown macro \"@reboot\""},
      {"@every", "@every takes one duration"},
      {"@every 0s", "@every: the interval must be at least 1s"},
      {"@every 500ms", "at least 1s"},
      {"@every banana", "@every: "},
      {"@daily 1", "@daily takes no fields"},
      {"CRON_TZ=Mars/Olympus 0 * * * *", "time zone: unknown zone \"Mars/Olympus\""},
      {"CRON_TZ=../../etc/passwd 0 * * * *", "unknown zone"},
      {"CRON_TZ= * * * * *", "time zone: empty name"},
      {"CRON_TZ=Europe/Lisbon", "empty expression"},
  };
  for (const Case& c : cases) {
    Result<CronSchedule> got = ParseCron(c.text, "UTC");
    ASSERT_FALSE(got.ok()) << c.text;
    EXPECT_THAT(got.error(), HasSubstr(c.error)) << c.text;
    EXPECT_THAT(got.error(), HasSubstr("cron \"" + c.text.substr(0, 20))) << c.text;
  }
  Result<CronSchedule> bad_default = ParseCron("* * * * *", "Nowhere/Land");
  ASSERT_FALSE(bad_default.ok());
  EXPECT_THAT(bad_default.error(), HasSubstr("default time zone: unknown zone \"Nowhere/Land\""));
}

// The messages docs/cron.md shows, word for word.
TEST(Cron, ErrorMessagesInTheDocs) {
  std::vector<std::string> expected = {
      "cron \"*/0 * * * *\": minute: step must be at least 1",
      "cron \"0 25 * * *\": hour: value \"25\" is out of range 0-23",
      "cron \"0 9 * * MON-FRY\": day-of-week: bad value \"FRY\"",
      "cron \"CRON_TZ=Europe/Lisboa 0 9 * * *\": time zone: unknown zone \"Europe/Lisboa\"",
      std::string("cron \"0 9 * *\": expected 5 fields (minute hour day-of-month month ") +
          "day-of-week) or 6 (second first), got 4",
  };
  for (const std::string& message : expected) {
    size_t open = message.find('"') + 1;
    std::string text = message.substr(open, message.find("\": ") - open);
    Result<CronSchedule> got = ParseCron(text, "UTC");
    ASSERT_FALSE(got.ok()) << text;
    EXPECT_EQ(got.error(), message);
  }
}

TEST(Cron, NextNeverFailsAtTheEdgesOfTime) {
  CronSchedule cron = MustParse("CRON_TZ=Europe/Lisbon 0 0 1 1 *");
  EXPECT_EQ(cron.Next(TimePoint::max()), std::nullopt);
  std::optional<TimePoint> early = cron.Next(TimePoint::min());
  ASSERT_TRUE(early);
  EXPECT_GT(*early, TimePoint::min());
  EXPECT_EQ(MustParse("* * * * * *").Next(TimePoint::max()), std::nullopt);
}

}  // namespace
}  // namespace sloth
