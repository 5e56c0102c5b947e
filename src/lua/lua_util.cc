// Lua <-> JSON conversion and option-table readers.
#include "lua/lua_util.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include <lua.hpp>

namespace sloth {
namespace {

char kNullKey;       // its address is data.null
char kArrayMetaKey;  // registry key of the metatable that marks arrays

void PushArrayMeta(lua_State* L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &kArrayMetaKey) != LUA_TTABLE) {  // meta?
    lua_pop(L, 1);
    lua_newtable(L);  // meta
    lua_pushstring(L, "array");
    lua_setfield(L, -2, "__name");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &kArrayMetaKey);
  }
}

bool IsMarkedArray(lua_State* L, int index) {
  if (!lua_getmetatable(L, index)) return false;  // meta
  PushArrayMeta(L);                               // meta arraymeta
  bool same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same;
}

// Length n when the table's keys are exactly 1..n, else -1.
lua_Integer SequenceLength(lua_State* L, int index) {
  lua_Integer count = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, index)) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1)) {
      lua_pop(L, 1);
      return -1;
    }
    lua_Integer k = lua_tointeger(L, -1);
    if (k < 1) {
      lua_pop(L, 1);
      return -1;
    }
    max = std::max(max, k);
    ++count;
  }
  return count == max ? count : -1;
}

constexpr size_t kMaxDepth = 512;

nlohmann::json Convert(lua_State* L, int index, std::unordered_set<const void*>& seen) {
  index = lua_absindex(L, index);
  if (seen.size() > kMaxDepth)
    luaL_error(L, "cannot convert a table nested deeper than %d levels",
               static_cast<int>(kMaxDepth));
  luaL_checkstack(L, 4, "table nested too deeply");
  switch (lua_type(L, index)) {
    case LUA_TNIL:
      return nullptr;
    case LUA_TBOOLEAN:
      return lua_toboolean(L, index) != 0;
    case LUA_TNUMBER:
      if (lua_isinteger(L, index)) return static_cast<int64_t>(lua_tointeger(L, index));
      if (!std::isfinite(lua_tonumber(L, index))) return nullptr;
      return lua_tonumber(L, index);
    case LUA_TSTRING: {
      size_t n;
      const char* s = lua_tolstring(L, index, &n);
      return std::string(s, n);
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, index) == &kNullKey) return nullptr;
      break;
    case LUA_TTABLE: {
      const void* p = lua_topointer(L, index);
      if (!seen.insert(p).second) luaL_error(L, "cannot convert a table that contains itself");
      lua_Integer n = SequenceLength(L, index);
      nlohmann::json out;
      if (n > 0 || (n == 0 && IsMarkedArray(L, index))) {
        out = nlohmann::json::array();
        for (lua_Integer i = 1; i <= n; ++i) {
          lua_rawgeti(L, index, i);
          out.push_back(Convert(L, -1, seen));
          lua_pop(L, 1);
        }
      } else {
        out = nlohmann::json::object();
        lua_pushnil(L);
        while (lua_next(L, index)) {
          lua_pushvalue(L, -2);  // key value key
          std::string key = luaL_tolstring(L, -1, nullptr);
          lua_pop(L, 2);  // key value
          out[key] = Convert(L, -1, seen);
          lua_pop(L, 1);  // key
        }
      }
      seen.erase(p);
      return out;
    }
    default:
      break;
  }
  std::string text = luaL_tolstring(L, index, nullptr);
  lua_pop(L, 1);
  return text;
}

}  // namespace

void PushNull(lua_State* L) { lua_pushlightuserdata(L, &kNullKey); }
bool IsNull(lua_State* L, int index) {
  return lua_islightuserdata(L, index) && lua_touserdata(L, index) == &kNullKey;
}

void NewClass(lua_State* L, const char* name, const luaL_Reg* methods, int (*gc)(lua_State*)) {
  luaL_newmetatable(L, name);  // meta
  lua_newtable(L);             // meta methods
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  if (gc) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}

void MarkArray(lua_State* L, int index) {
  index = lua_absindex(L, index);
  PushArrayMeta(L);
  lua_setmetatable(L, index);
}

void PushJson(lua_State* L, const nlohmann::json& value) {
  luaL_checkstack(L, 4, "JSON nesting too deep");
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      PushNull(L);
      return;
    case nlohmann::json::value_t::boolean:
      lua_pushboolean(L, value.get<bool>());
      return;
    case nlohmann::json::value_t::number_integer:
      lua_pushinteger(L, value.get<int64_t>());
      return;
    case nlohmann::json::value_t::number_unsigned: {
      uint64_t u = value.get<uint64_t>();
      if (u > static_cast<uint64_t>(LUA_MAXINTEGER))
        lua_pushnumber(L, static_cast<double>(u));
      else
        lua_pushinteger(L, static_cast<lua_Integer>(u));
      return;
    }
    case nlohmann::json::value_t::number_float:
      lua_pushnumber(L, value.get<double>());
      return;
    case nlohmann::json::value_t::string: {
      const auto& s = value.get_ref<const std::string&>();
      lua_pushlstring(L, s.data(), s.size());
      return;
    }
    case nlohmann::json::value_t::array: {
      lua_createtable(L, static_cast<int>(value.size()), 0);
      lua_Integer i = 1;
      for (const auto& item : value) {
        PushJson(L, item);
        lua_rawseti(L, -2, i++);
      }
      MarkArray(L, -1);
      return;
    }
    case nlohmann::json::value_t::object: {
      lua_createtable(L, 0, static_cast<int>(value.size()));
      for (const auto& [k, v] : value.items()) {
        PushJson(L, v);
        lua_setfield(L, -2, k.c_str());
      }
      return;
    }
    default:
      lua_pushnil(L);
  }
}

nlohmann::json ToJson(lua_State* L, int index) {
  std::unordered_set<const void*> seen;
  return Convert(L, index, seen);
}

std::string ToJsonText(lua_State* L, int index) {
  return ToJson(L, index).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

// Pushes t[field] and returns its type; raises if `index` is not a table.
int GetOption(lua_State* L, int index, const char* field) {
  if (lua_type(L, index) != LUA_TTABLE) {
    lua_pushnil(L);  // callers always pop one value
    return LUA_TNIL;
  }
  return lua_getfield(L, index, field);
}

[[noreturn]] void FieldError(lua_State* L, const char* field, const char* expected) {
  luaL_error(L, "option '%s' must be %s, got %s", field, expected, luaL_typename(L, -1));
  __builtin_unreachable();  // luaL_error raises
}

}  // namespace

std::optional<std::string> OptString(lua_State* L, int index, const char* field) {
  int t = GetOption(L, index, field);
  if (t == LUA_TNIL) return lua_pop(L, 1), std::nullopt;
  if (t != LUA_TSTRING && t != LUA_TNUMBER) FieldError(L, field, "a string");
  std::string s = lua_tostring(L, -1);
  lua_pop(L, 1);
  return s;
}

std::optional<double> OptNumber(lua_State* L, int index, const char* field) {
  int t = GetOption(L, index, field);
  if (t == LUA_TNIL) return lua_pop(L, 1), std::nullopt;
  if (!lua_isnumber(L, -1)) FieldError(L, field, "a number");
  double d = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return d;
}

std::optional<bool> OptBool(lua_State* L, int index, const char* field) {
  int t = GetOption(L, index, field);
  if (t == LUA_TNIL) return lua_pop(L, 1), std::nullopt;
  if (t != LUA_TBOOLEAN) FieldError(L, field, "a boolean");
  bool b = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return b;
}

Duration CheckDuration(lua_State* L, int index) {
  if (lua_type(L, index) == LUA_TNUMBER) {
    auto d = DurationFromSeconds(lua_tonumber(L, index));
    if (!d.ok()) luaL_argerror(L, index, d.error().c_str());
    return *d;
  }
  auto d = ParseDuration(luaL_checkstring(L, index));
  if (!d.ok()) luaL_argerror(L, index, d.error().c_str());
  return *d;
}

std::optional<Duration> OptDuration(lua_State* L, int index, const char* field) {
  int t = GetOption(L, index, field);
  if (t == LUA_TNIL) return lua_pop(L, 1), std::nullopt;
  Result<Duration> d = t == LUA_TNUMBER   ? DurationFromSeconds(lua_tonumber(L, -1))
                       : t == LUA_TSTRING ? ParseDuration(lua_tostring(L, -1))
                                          : Result<Duration>(Status::Error("not a duration"));
  if (!d.ok()) FieldError(L, field, "a duration (\"30s\", \"5m\" or seconds)");
  lua_pop(L, 1);
  return *d;
}

std::vector<std::string> OptStringList(lua_State* L, int index, const char* field) {
  std::vector<std::string> out;
  int t = GetOption(L, index, field);
  if (t == LUA_TSTRING)
    out.emplace_back(lua_tostring(L, -1));
  else if (t == LUA_TTABLE) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; ++i) {
      if (!lua_isstring(L, -1)) FieldError(L, field, "a list of strings");
      out.emplace_back(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  } else if (t != LUA_TNIL) {
    FieldError(L, field, "a string or a list of strings");
  }
  lua_pop(L, 1);
  return out;
}

int PushFailure(lua_State* L, const std::string& message) {
  lua_pushnil(L);
  lua_pushlstring(L, message.data(), message.size());
  return 2;
}

}  // namespace sloth
