// The list of built-in modules and how they are opened.
#include "lua/module.h"

#include <cstring>
#include <string>

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
  if (m.lua_code) {
    std::string chunk = std::string("=[module ") + m.name + "]";
    if (luaL_loadbufferx(L, m.lua_code, std::strlen(m.lua_code), chunk.c_str(), "t") != LUA_OK)
      lua_error(L);        // M fn
    lua_pushvalue(L, -2);  // M fn M
    lua_call(L, 1, 0);     // M
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
