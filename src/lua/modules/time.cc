// time: wall-clock time as seconds since the epoch (floats with sub-second precision),
// strftime/strptime formatting, durations ("1h30m"), and a sleep that yields to other tasks.
#include <time.h>

#include <memory>
#include <optional>
#include <string>

#include <lua.hpp>

#include "base/duration.h"
#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

constexpr char kDefaultFormat[] = "%Y-%m-%dT%H:%M:%S%z";
// What parse() tries without a format: ISO-8601 with an offset ("+02:00", "+0200", "Z"),
// without one (local time), and a bare date (local midnight).
constexpr const char* kIsoFormats[] = {"%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"};

double NowSeconds() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Pushes whole numbers as integers (5400, not 5400.0).
int PushSeconds(lua_State* L, double seconds) {
  lua_Integer whole = static_cast<lua_Integer>(seconds);
  if (static_cast<double>(whole) == seconds)
    lua_pushinteger(L, whole);
  else
    lua_pushnumber(L, seconds);
  return 1;
}

int TimeNow(lua_State* L) {
  lua_pushnumber(L, NowSeconds());
  return 1;
}

int TimeNowMs(lua_State* L) {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushinteger(L, static_cast<lua_Integer>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000);
  return 1;
}

// sleep(seconds | "500ms"): a timer on the loop; a task's coroutine yields meanwhile.
int TimeSleep(lua_State* L) {
  Duration delay = CheckDuration(L, 1);
  Runtime& rt = Runtime::From(L);
  Loop& loop = rt.loop();
  auto timer = std::make_shared<uint64_t>(0);
  return rt.Await(
      L,
      [&loop, delay, timer](Runtime::Done done) {
        *timer = loop.After(delay, [done] { done([](lua_State*) { return 0; }); });
      },
      [&loop, timer] { loop.Cancel(*timer); });
}

// A format with a leading "!" means UTC (as os.date); returns the format without it.
std::string StripUtc(std::string format, bool& utc) {
  utc = !format.empty() && format[0] == '!';
  return utc ? format.substr(1) : format;
}

// format(t?, fmt?): strftime of t (default now) in local time, or UTC with a "!" prefix.
int TimeFormat(lua_State* L) {
  double t = lua_isnoneornil(L, 1) ? NowSeconds() : luaL_checknumber(L, 1);
  bool utc;
  std::string format = StripUtc(luaL_optstring(L, 2, kDefaultFormat), utc);
  time_t secs = static_cast<time_t>(t);
  if (static_cast<double>(secs) > t) --secs;  // floor, also before 1970
  struct tm tm;
  if (!(utc ? gmtime_r(&secs, &tm) : localtime_r(&secs, &tm)))
    luaL_argerror(L, 1, "time out of range");
  format += ' ';  // a non-empty result tells "done" apart from "buffer too small"
  std::string out(format.size() * 4 + 64, '\0');
  size_t n;
  while ((n = strftime(out.data(), out.size(), format.c_str(), &tm)) == 0) {
    if (out.size() > (1u << 20)) luaL_argerror(L, 2, "format produces too much text");
    out.resize(out.size() * 2);
  }
  lua_pushlstring(L, out.data(), n - 1);
  return 1;
}

// Seconds since the epoch for `text` read with `format`, or nullopt when it does not match
// exactly. Without %z in the format the text is local time (UTC with a "!" prefix).
std::optional<time_t> ParseWith(const char* text, const std::string& raw_format) {
  bool utc;
  std::string format = StripUtc(raw_format, utc);
  struct tm tm = {};
  tm.tm_isdst = -1;
  const char* end = strptime(text, format.c_str(), &tm);
  if (!end || *end != '\0') return std::nullopt;
  long offset = tm.tm_gmtoff;  // read first: timegm resets it
  if (format.find("%z") != std::string::npos) return timegm(&tm) - offset;
  return utc ? timegm(&tm) : mktime(&tm);
}

int TimeParse(lua_State* L) {
  const char* text = luaL_checkstring(L, 1);
  std::optional<time_t> t;
  if (lua_isnoneornil(L, 2)) {
    for (const char* format : kIsoFormats)
      if (!t) t = ParseWith(text, format);
  } else {
    t = ParseWith(text, luaL_checkstring(L, 2));
  }
  if (!t) {
    std::string format = luaL_optstring(L, 2, "ISO-8601");
    return PushFailure(L, "time.parse: \"" + std::string(text) + "\" does not match " + format);
  }
  lua_pushinteger(L, static_cast<lua_Integer>(*t));
  return 1;
}

int TimeSince(lua_State* L) {
  lua_pushnumber(L, NowSeconds() - luaL_checknumber(L, 1));
  return 1;
}

// duration("1h30m") -> 5400; a number of seconds is returned as it is.
int TimeDuration(lua_State* L) {
  if (lua_type(L, 1) == LUA_TNUMBER) return lua_settop(L, 1), 1;
  Result<Duration> d = ParseDuration(luaL_checkstring(L, 1));
  if (!d.ok()) return PushFailure(L, "time.duration: " + d.error());
  return PushSeconds(L, std::chrono::duration<double>(*d).count());
}

}  // namespace

const Module& TimeModule() {
  static const Module m = {
      "time",
      "Clock, sleeping, formatting and parsing times, durations",
      {
          {"now", TimeNow, "now() -> seconds", "Seconds since the epoch, with fractions"},
          {"now_ms", TimeNowMs, "now_ms() -> integer", "Milliseconds since the epoch"},
          {"sleep", TimeSleep, "sleep(seconds | duration)",
           "Waits; other tasks keep running meanwhile"},
          {"format", TimeFormat, "format(t?, fmt?) -> string",
           "strftime in local time (\"!\" prefix: UTC); default %Y-%m-%dT%H:%M:%S%z"},
          {"parse", TimeParse, "parse(str, fmt?) -> seconds",
           "strptime to epoch seconds; default ISO-8601"},
          {"since", TimeSince, "since(t) -> seconds", "Seconds elapsed since t"},
          {"duration", TimeDuration, "duration(str) -> seconds", "Parses \"1h30m\", \"500ms\"..."},
      },
  };
  return m;
}

}  // namespace sloth
