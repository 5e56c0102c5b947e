// Cron parsing and next-time search. Fields become bitsets; Next() walks local calendar days
// (skipping whole months that cannot match) and converts the first matching wall time of a day to
// UTC through the zone (date/tz.h over the system's /usr/share/zoneinfo).
#include "core/cron.h"

#include <date/date.h>
#include <date/tz.h>

#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <exception>
#include <vector>

namespace sloth {
namespace {

using std::chrono::seconds;

constexpr std::array<std::string_view, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<std::string_view, 7> kDayNames = {"SUN", "MON", "TUE", "WED",
                                                       "THU", "FRI", "SAT"};

struct FieldSpec {
  std::string_view name;
  int min, max;
  const std::string_view* names = nullptr;  // names[i] is the value min + i
  size_t name_count = 0;
  bool day_field = false;  // accepts `?`
  bool weekday = false;    // a range may end on Sunday as 0 ("FRI-SUN")
};

constexpr FieldSpec kSecond{"second", 0, 59};
constexpr FieldSpec kMinute{"minute", 0, 59};
constexpr FieldSpec kHour{"hour", 0, 23};
constexpr FieldSpec kDayOfMonth{"day-of-month", 1, 31, nullptr, 0, true};
constexpr FieldSpec kMonth{"month", 1, 12, kMonthNames.data(), kMonthNames.size()};
constexpr FieldSpec kDayOfWeek{"day-of-week", 0, 7, kDayNames.data(), kDayNames.size(), true, true};

struct Macro {
  std::string_view name, fields;
};
constexpr std::array<Macro, 7> kMacros = {{{"@yearly", "0 0 1 1 *"},
                                           {"@annually", "0 0 1 1 *"},
                                           {"@monthly", "0 0 1 * *"},
                                           {"@weekly", "0 0 * * 0"},
                                           {"@daily", "0 0 * * *"},
                                           {"@midnight", "0 0 * * *"},
                                           {"@hourly", "0 * * * *"}}};

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(a[i])) !=
        std::toupper(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::vector<std::string_view> SplitOn(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == sep) {
      out.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

std::vector<std::string_view> SplitWords(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::optional<int> ParseNumber(std::string_view s) {
  int value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

Result<int> ParseValue(std::string_view token, const FieldSpec& spec) {
  for (size_t i = 0; i < spec.name_count; ++i) {
    if (EqualsNoCase(token, spec.names[i])) return spec.min + static_cast<int>(i);
  }
  std::optional<int> n = ParseNumber(token);
  if (!n) {
    if (token.find_first_of("LW#H") != std::string_view::npos)
      return Status::Error("bad value " + Quote(token) + " (L, W, # and H are not supported)");
    return Status::Error("bad value " + Quote(token));
  }
  if (*n < spec.min || *n > spec.max) {
    return Status::Error("value " + Quote(token) + " is out of range " + std::to_string(spec.min) +
                         "-" + std::to_string(spec.max));
  }
  return *n;
}

// Range part of an item ("*", "N", "A-B") to [lo, hi]; `stepped` makes "N" mean N-max.
Status ParseRange(std::string_view part, const FieldSpec& spec, bool stepped, int* lo, int* hi) {
  if (part == "*" || (part == "?" && spec.day_field)) {
    *lo = spec.min;
    *hi = spec.max;
    return Status::Ok();
  }
  size_t dash = part.find('-');
  Result<int> first = ParseValue(part.substr(0, dash), spec);
  if (!first.ok()) return first.status();
  *lo = *first;
  *hi = stepped ? spec.max : *first;
  if (dash == std::string_view::npos) return Status::Ok();
  Result<int> last = ParseValue(part.substr(dash + 1), spec);
  if (!last.ok()) return last.status();
  *hi = *last;
  // "FRI-SUN": Sunday as the end of a weekday range is 7.
  if (spec.weekday && *hi == 0 && *lo > 0) *hi = 7;
  if (*lo > *hi) return Status::Error("range " + Quote(part) + " starts after it ends");
  return Status::Ok();
}

Status ParseItem(std::string_view item, const FieldSpec& spec, std::bitset<64>* bits) {
  if (item.empty()) return Status::Error("empty list item");
  size_t slash = item.find('/');
  std::string_view range = item.substr(0, slash);
  int step = 1;
  if (slash != std::string_view::npos) {
    std::string_view step_text = item.substr(slash + 1);
    std::optional<int> n = ParseNumber(step_text);
    if (!n) return Status::Error("bad step " + Quote(step_text));
    if (*n < 1) return Status::Error("step must be at least 1");
    if (*n > spec.max - spec.min + 1) {
      return Status::Error("step " + Quote(step_text) + " is larger than the field's range " +
                           std::to_string(spec.min) + "-" + std::to_string(spec.max));
    }
    step = *n;
  }
  int lo = 0, hi = 0;
  Status s = ParseRange(range, spec, slash != std::string_view::npos, &lo, &hi);
  if (!s.ok()) return s;
  for (int v = lo; v <= hi; v += step) bits->set(static_cast<size_t>(v));
  return Status::Ok();
}

// A field ("1,5-10/2,*/15") to bits; the error names the field.
Status ParseField(std::string_view field, const FieldSpec& spec, std::bitset<64>* bits) {
  for (std::string_view item : SplitOn(field, ',')) {
    Status s = ParseItem(item, spec, bits);
    if (!s.ok()) return Status::Error(std::string(spec.name) + ": " + s.message());
  }
  return Status::Ok();
}

template <size_t N>
std::bitset<N> Narrow(const std::bitset<64>& bits) {
  std::bitset<N> out;
  for (size_t i = 0; i < N; ++i) out[i] = bits[i];
  return out;
}

bool StartsUnrestricted(std::string_view field) {
  return !field.empty() && (field[0] == '*' || field[0] == '?');
}

const date::time_zone* LocateZone(const std::string& name) {
  const date::time_zone* zone = date::locate_zone(name);
  zone->get_info(date::sys_seconds{});  // loads the zone's file now, so Next() cannot fail later
  return zone;
}

// The machine's zone: $TZ when it names a zone, else /etc/localtime, else UTC.
std::string MachineZoneName() {
  if (const char* tz = std::getenv("TZ"); tz != nullptr && *tz != '\0') {
    std::string name(tz[0] == ':' ? tz + 1 : tz);
    try {
      return LocateZone(name)->name();
    } catch (const std::exception&) {
    }
  }
  try {
    return date::current_zone()->name();
  } catch (const std::exception&) {
    return "UTC";
  }
}

bool IsUtc(std::string_view name) {
  return name == "UTC" || name == "Etc/UTC" || name == "Etc/UCT" || name == "UCT" ||
         name == "Etc/Universal" || name == "Universal" || name == "Zulu" || name == "Etc/Zulu";
}

const long kMaxSeconds =
    std::chrono::floor<seconds>(CronSchedule::TimePoint::max()).time_since_epoch().count();

}  // namespace

// Builds a CronSchedule from text; a class so it may fill the schedule's private fields.
class CronParser {
 public:
  explicit CronParser(std::string_view text) : text_(text) {}

  Result<CronSchedule> Parse(std::string_view default_zone) {
    std::vector<std::string_view> words = SplitWords(text_);
    std::string zone_word;
    if (!words.empty() && (words[0].starts_with("CRON_TZ=") || words[0].starts_with("TZ="))) {
      zone_word = std::string(words[0]);
      Status s = SetZone(words[0].substr(words[0].find('=') + 1));
      if (!s.ok()) return Fail(s.message());
      words.erase(words.begin());
    } else {
      std::string name = default_zone.empty() ? MachineZoneName() : std::string(default_zone);
      Status s = SetZone(name);
      if (!s.ok()) return Fail("default " + s.message());
    }
    if (words.empty()) return Fail("empty expression");
    Status s = words[0].starts_with("@") ? ParseMacro(words) : ParseFields(words);
    if (!s.ok()) return Fail(s.message());
    cron_.text_ = zone_word;
    for (std::string_view w : words)
      cron_.text_ += (cron_.text_.empty() ? "" : " ") + std::string(w);
    return std::move(cron_);
  }

 private:
  Status Fail(const std::string& message) const {
    std::string shown(text_.substr(0, 100));
    if (text_.size() > 100) shown += "...";
    return Status::Error("cron " + Quote(shown) + ": " + message);
  }

  Status SetZone(std::string_view name) {
    if (name.empty()) return Status::Error("time zone: empty name");
    if (IsUtc(name)) {
      cron_.zone_name_ = std::string(name);
      return Status::Ok();
    }
    try {
      cron_.zone_ = LocateZone(std::string(name));
      cron_.zone_name_ = cron_.zone_->name();
      return Status::Ok();
    } catch (const std::exception&) {
      return Status::Error("time zone: unknown zone " + Quote(name));
    }
  }

  Status ParseMacro(const std::vector<std::string_view>& words) {
    if (EqualsNoCase(words[0], "@every")) {
      if (words.size() != 2) return Status::Error("@every takes one duration, like \"@every 10m\"");
      Result<Duration> d = ParseDuration(words[1]);
      if (!d.ok()) return Status::Error("@every: " + d.error());
      if (*d < seconds(1)) return Status::Error("@every: the interval must be at least 1s");
      cron_.every_ = *d;
      return Status::Ok();
    }
    for (const Macro& m : kMacros) {
      if (!EqualsNoCase(words[0], m.name)) continue;
      if (words.size() != 1) return Status::Error(std::string(m.name) + " takes no fields");
      return ParseFields(SplitWords(m.fields));
    }
    return Status::Error("unknown macro " + Quote(words[0]) +
                         " (known: @yearly @annually @monthly @weekly @daily @midnight @hourly "
                         "@every)");
  }

  Status ParseFields(std::vector<std::string_view> words) {
    if (words.size() != 5 && words.size() != 6) {
      return Status::Error(
          "expected 5 fields (minute hour day-of-month month day-of-week) or 6 "
          "(second first), got " +
          std::to_string(words.size()));
    }
    if (words.size() == 5) words.insert(words.begin(), "0");
    static constexpr const FieldSpec* kSpecs[] = {&kSecond,     &kMinute, &kHour,
                                                  &kDayOfMonth, &kMonth,  &kDayOfWeek};
    std::bitset<64> bits[6];
    for (size_t i = 0; i < 6; ++i) {
      Status s = ParseField(words[i], *kSpecs[i], &bits[i]);
      if (!s.ok()) return s;
    }
    if (bits[5][7]) bits[5].set(0);  // 7 is Sunday too
    cron_.seconds_ = Narrow<60>(bits[0]);
    cron_.minutes_ = Narrow<60>(bits[1]);
    cron_.hours_ = Narrow<24>(bits[2]);
    cron_.days_ = Narrow<32>(bits[3]);
    cron_.months_ = Narrow<13>(bits[4]);
    cron_.weekdays_ = Narrow<7>(bits[5]);
    cron_.days_star_ = StartsUnrestricted(words[3]);
    cron_.weekdays_star_ = StartsUnrestricted(words[5]);
    return Status::Ok();
  }

  std::string_view text_;
  CronSchedule cron_;
};

Result<CronSchedule> ParseCron(std::string_view text, std::string_view default_zone) {
  try {
    return CronParser(text).Parse(default_zone);
  } catch (const std::exception& e) {  // the tz database could not be read
    return Status::Error("cron " + Quote(text.substr(0, 100)) + ": " + e.what());
  }
}

bool CronSchedule::DayMatches(int day_of_month, int weekday) const {
  bool day_ok = days_[static_cast<size_t>(day_of_month)];
  bool weekday_ok = weekdays_[static_cast<size_t>(weekday)];
  if (days_star_ || weekdays_star_) return day_ok && weekday_ok;
  return day_ok || weekday_ok;  // Vixie: both restricted, either may match
}

long CronSchedule::ToSys(long local_seconds) const {
  if (zone_ == nullptr) return local_seconds;
  // A skipped wall time maps to the end of the gap; a repeated one to its first occurrence.
  return zone_->to_sys(date::local_seconds{seconds{local_seconds}}, date::choose::earliest)
      .time_since_epoch()
      .count();
}

// The first matching wall time on `local_day` at or after `start` (local seconds) whose UTC time
// is after `after_s`, as UTC seconds. Wall-to-UTC is monotonic, so the first such time is the
// earliest.
std::optional<CronSchedule::TimePoint> CronSchedule::NextOnDay(long local_day, long start,
                                                               TimePoint after) const {
  long after_s = std::chrono::floor<seconds>(after).time_since_epoch().count();
  long day_start = local_day * 86400;
  for (long h = 0; h < 24; ++h) {
    if (!hours_[static_cast<size_t>(h)] || day_start + h * 3600 + 3599 < start) continue;
    for (long m = 0; m < 60; ++m) {
      long minute_start = day_start + h * 3600 + m * 60;
      if (!minutes_[static_cast<size_t>(m)] || minute_start + 59 < start) continue;
      for (long s = 0; s < 60; ++s) {
        if (!seconds_[static_cast<size_t>(s)] || minute_start + s < start) continue;
        long sys = ToSys(minute_start + s);
        if (sys > kMaxSeconds) return TimePoint::max();  // caller turns this into nullopt
        if (sys > after_s) return TimePoint(seconds(sys));
      }
    }
  }
  return std::nullopt;
}

std::optional<CronSchedule::TimePoint> CronSchedule::Next(TimePoint after) const {
  if (every_) {
    if (after > TimePoint::max() - *every_) return std::nullopt;
    return after + std::chrono::duration_cast<TimePoint::duration>(*every_);
  }
  date::sys_seconds after_s = std::chrono::floor<seconds>(after);
  date::local_seconds start =
      zone_ == nullptr ? date::local_seconds{after_s.time_since_epoch()} : zone_->to_local(after_s);
  date::local_days day = date::floor<date::days>(start);
  const date::local_days last = day + date::days{366 * kCronSearchYears};
  while (day <= last) {
    date::year_month_day ymd{day};
    if (!months_[static_cast<unsigned>(ymd.month())]) {
      day = date::local_days{(ymd.year() / ymd.month() + date::months{1}) / 1};
      continue;
    }
    int weekday = static_cast<int>(date::weekday{day}.c_encoding());
    if (DayMatches(static_cast<int>(static_cast<unsigned>(ymd.day())), weekday)) {
      std::optional<TimePoint> t =
          NextOnDay(day.time_since_epoch().count(), start.time_since_epoch().count(), after);
      if (t == TimePoint::max()) return std::nullopt;
      if (t) return t;
    }
    day += date::days{1};
  }
  return std::nullopt;
}

}  // namespace sloth
