// The list of built-in modules and how they are opened.
#include "lua/module.h"

#include <cstring>
#include <string>
#include <utility>

#include <lua.hpp>

#include "lua/modules/modules_list.h"

namespace sloth {

const std::vector<const Module*>& AllModules() {
  static const std::vector<const Module*> modules = [] {
    std::vector<const Module*> all;
    for (const Module& (*get)() : kModuleList) all.push_back(&get());
    return all;
  }();
  return modules;
}

namespace {

// Runs a module's Lua code with its table (at `index`) as the argument.
void RunModuleCode(lua_State* L, const Module& m, int index) {
  index = lua_absindex(L, index);
  std::string chunk = std::string("=[module ") + m.name + "]";
  if (luaL_loadbufferx(L, m.lua_code, std::strlen(m.lua_code), chunk.c_str(), "t") != LUA_OK)
    lua_error(L);
  lua_pushvalue(L, index);
  lua_call(L, 1, 0);
}

// A module's Lua code waits for the first use of the module (any key read that misses, or
// pairs): compiling every module's Lua code at start-up cost every run milliseconds for
// functions most runs never call. The C functions and the setup (which may replace globals such
// as os.execute) are there from the start.
void Materialize(lua_State* L) {
  const Module& m = *static_cast<const Module*>(lua_touserdata(L, lua_upvalueindex(1)));
  lua_pushnil(L);
  lua_setmetatable(L, 1);  // first: the code reads and writes the table
  RunModuleCode(L, m, 1);
}

int LazyIndex(lua_State* L) {
  Materialize(L);
  lua_pushvalue(L, 2);
  lua_rawget(L, 1);
  return 1;
}

int LazyPairs(lua_State* L) {
  Materialize(L);
  lua_getglobal(L, "next");
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

// Code that hides private C primitives (names starting with "_", which it captures and removes)
// or a module with its own metatable must run at once.
bool LoadsLazily(lua_State* L, const Module& m) {
  if (!m.lua_code) return false;
  if (lua_getmetatable(L, -1)) {
    lua_pop(L, 1);
    return false;
  }
  bool lazy = true;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING && lua_tostring(L, -1)[0] == '_') lazy = false;
  }
  return lazy;
}

void OpenModule(lua_State* L, const Module& m) {
  lua_newtable(L);  // M
  for (const ModuleFunction& f : m.functions) {
    if (!f.fn) continue;
    lua_pushcfunction(L, f.fn);
    lua_setfield(L, -2, f.name);
  }
  if (m.setup) {
    lua_pushcfunction(L, m.setup);
    lua_pushvalue(L, -2);
    lua_call(L, 1, 0);
  }
  if (LoadsLazily(L, m)) {
    lua_newtable(L);  // M mt
    const std::pair<const char*, lua_CFunction> events[] = {{"__index", LazyIndex},
                                                            {"__pairs", LazyPairs}};
    for (auto [event, fn] : events) {
      lua_pushlightuserdata(L, const_cast<Module*>(&m));
      lua_pushcclosure(L, fn, 1);
      lua_setfield(L, -2, event);
    }
    lua_setmetatable(L, -2);  // M
  } else if (m.lua_code) {
    RunModuleCode(L, m, -1);
  }
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);  // M loaded
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, m.name);  // M loaded
  for (const char* alias : m.aliases) {
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, alias);
  }
  lua_pop(L, 1);  // M
  for (const char* alias : m.aliases) {
    lua_pushvalue(L, -1);
    lua_setglobal(L, alias);
  }
  lua_setglobal(L, m.name);  // (empty)
}

}  // namespace

void OpenModules(lua_State* L) {
  for (const Module* m : AllModules()) OpenModule(L, *m);
}

}  // namespace sloth
