// log: leveled messages that appear under the running task and in the run record.
#include <string>

#include <lua.hpp>

#include "lua/module.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

// "message key=value ..." from the message and an optional fields table.
std::string Format(lua_State* L) {
  std::string text = luaL_tolstring(L, 1, nullptr);
  lua_pop(L, 1);
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      lua_pushvalue(L, -2);
      text += " " + std::string(luaL_tolstring(L, -1, nullptr)) + "=";
      lua_pop(L, 2);
      text += luaL_tolstring(L, -1, nullptr);
      lua_pop(L, 2);
    }
  }
  return text;
}

template <LogLevel level>
int LogAt(lua_State* L) {
  luaL_checkany(L, 1);
  Runtime::From(L).Log(L, level, Format(L));
  return 0;
}

// log.table(t, title?): one line per key, sorted for stable output.
int LogTable(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  Runtime& rt = Runtime::From(L);
  if (!lua_isnoneornil(L, 2)) rt.Log(L, LogLevel::kInfo, luaL_tolstring(L, 2, nullptr));
  std::vector<std::pair<std::string, std::string>> rows;
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pushvalue(L, -2);
    std::string key = luaL_tolstring(L, -1, nullptr);
    lua_pop(L, 2);
    rows.emplace_back(key, luaL_tolstring(L, -1, nullptr));
    lua_pop(L, 2);
  }
  std::sort(rows.begin(), rows.end());
  for (const auto& [k, v] : rows) rt.Log(L, LogLevel::kInfo, "  " + k + ": " + v);
  return 0;
}

}  // namespace

const Module& LogModule() {
  static const Module m = {
      "log",
      "Leveled log lines shown under the running task",
      {
          {"debug", LogAt<LogLevel::kDebug>, "debug(msg, fields?)",
           "Debug line (shown with -v/--debug)"},
          {"info", LogAt<LogLevel::kInfo>, "info(msg, fields?)", "Informational line"},
          {"warn", LogAt<LogLevel::kWarn>, "warn(msg, fields?)", "Warning line"},
          {"warning", LogAt<LogLevel::kWarn>, "warning(msg, fields?)", "Alias of warn"},
          {"error", LogAt<LogLevel::kError>, "error(msg, fields?)",
           "Error line (does not fail the task)"},
          {"success", LogAt<LogLevel::kSuccess>, "success(msg, fields?)", "Success line"},
          {"table", LogTable, "table(t, title?)", "One line per key of a table"},
      },
  };
  return m;
}

}  // namespace sloth
