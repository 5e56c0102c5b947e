// env: the process environment. Changes made with env.set/unset are inherited by every command
// started afterwards (exec, os.execute, io.popen build their environment from it).
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include <lua.hpp>

#include "lua/module.h"

extern char** environ;

namespace sloth {
namespace {

const char* CheckName(lua_State* L, int arg) {
  size_t len;
  const char* name = luaL_checklstring(L, arg, &len);
  if (len == 0 || std::strchr(name, '=') || std::strlen(name) != len)
    luaL_argerror(L, arg, "variable name must be non-empty and contain no '=' or NUL");
  return name;
}

// get(name, default?): the value, else `default` (nil when not given).
int EnvGet(lua_State* L) {
  const char* value = std::getenv(CheckName(L, 1));
  if (value)
    lua_pushstring(L, value);
  else
    lua_settop(L, 2);  // name default|nil
  return 1;
}

int EnvSet(lua_State* L) {
  const char* name = CheckName(L, 1);
  size_t len;
  const char* value = luaL_checklstring(L, 2, &len);
  if (std::strlen(value) != len) luaL_argerror(L, 2, "value must not contain NUL");
  if (setenv(name, value, 1) != 0) return luaL_error(L, "env.set: %s", std::strerror(errno));
  lua_pushboolean(L, 1);
  return 1;
}

int EnvUnset(lua_State* L) {
  if (unsetenv(CheckName(L, 1)) != 0) return luaL_error(L, "env.unset: %s", std::strerror(errno));
  lua_pushboolean(L, 1);
  return 1;
}

int EnvAll(lua_State* L) {
  lua_newtable(L);
  for (char** e = environ; *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (!eq) continue;
    lua_pushlstring(L, *e, static_cast<size_t>(eq - *e));  // vars key
    lua_pushstring(L, eq + 1);                             // vars key value
    lua_settable(L, -3);                                   // vars
  }
  return 1;
}

}  // namespace

const Module& EnvModule() {
  static const Module m = {
      "env",
      "Environment variables of the run (inherited by the commands it starts)",
      {
          {"get", EnvGet, "get(name, default?) -> string", "A variable's value, or default/nil"},
          {"set", EnvSet, "set(name, value) -> true", "Sets a variable for later commands"},
          {"unset", EnvUnset, "unset(name) -> true", "Removes a variable"},
          {"all", EnvAll, "all() -> {name = value}", "Every variable as a table"},
      },
  };
  return m;
}

}  // namespace sloth
