// Duration parsing and formatting.
#include "base/duration.h"

#include <cmath>
#include <cstdio>

namespace sloth {
namespace {

// Nanoseconds per unit, longest suffix first so "ms" wins over "m".
struct Unit {
  std::string_view suffix;
  double nanos;
};
constexpr Unit kUnits[] = {{"ns", 1},  {"us", 1e3}, {"µs", 1e3},   {"ms", 1e6},
                           {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}, {"d", 86400e9}};

bool IsNumberChar(char c) { return (c >= '0' && c <= '9') || c == '.'; }

}  // namespace

Result<Duration> DurationFromSeconds(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e9)
    return Status::Error("invalid duration: " + std::to_string(seconds));
  return Duration(static_cast<long long>(seconds * 1e9));
}

Result<Duration> ParseDuration(std::string_view text) {
  auto bad = [&] { return Status::Error("invalid duration \"" + std::string(text) + "\""); };
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  if (text.empty()) return bad();
  double total = 0;
  std::string_view rest = text;
  bool bare_number = true;
  while (!rest.empty()) {
    size_t n = 0;
    while (n < rest.size() && IsNumberChar(rest[n])) ++n;
    if (n == 0) return bad();
    std::string number(rest.substr(0, n));
    char* end = nullptr;
    double value = std::strtod(number.c_str(), &end);
    if (end != number.c_str() + number.size()) return bad();
    rest.remove_prefix(n);
    if (rest.empty()) {
      if (!bare_number) return bad();  // "1h30" is ambiguous: refuse it
      return DurationFromSeconds(value);
    }
    bare_number = false;
    const Unit* unit = nullptr;
    for (const Unit& u : kUnits) {
      if (rest.substr(0, u.suffix.size()) == u.suffix) {
        unit = &u;
        break;
      }
    }
    if (!unit) return bad();
    rest.remove_prefix(unit->suffix.size());
    total += value * unit->nanos;
  }
  if (!std::isfinite(total) || total > 1e18) return bad();
  return Duration(static_cast<long long>(total));
}

std::string FormatSeconds(Duration d) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3fs", static_cast<double>(ToMillis(d)) / 1000.0);
  return buf;
}

std::string FormatHuman(Duration d) {
  long long ms = ToMillis(d);
  char buf[64];
  if (ms < 1000) {
    std::snprintf(buf, sizeof buf, "%lldms", ms);
  } else if (ms < 60000) {
    std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", ms / 60000, (ms / 1000) % 60);
  }
  return buf;
}

}  // namespace sloth
