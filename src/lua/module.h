// The module registry: every built-in Lua module describes itself here once. The same
// description binds the functions into Lua and feeds `sloth-runner modules list`, so the list
// can never name a function that does not exist.
#pragma once

#include <vector>

struct lua_State;
typedef int (*lua_CFunction)(lua_State* L);

namespace sloth {

struct ModuleFunction {
  const char* name;
  lua_CFunction fn;       // nullptr: written in Lua, in the module's lua_code
  const char* signature;  // "run(cmd, opts?) -> result"
  const char* summary;    // one line
};

struct Module {
  const char* name;
  const char* summary;
  std::vector<ModuleFunction> functions;
  std::vector<const char*> aliases = {};  // more global names for the same table
  // Lua source run once with the module table as its argument (`local M = ...`), for the
  // functions that are easier to write in Lua. Every function it defines must be listed above.
  const char* lua_code = nullptr;
  // Called once when the module is opened, with its table on the stack (metatables, overrides).
  lua_CFunction setup = nullptr;
};

// Every module linked into the binary, in registration order.
const std::vector<const Module*>& AllModules();

// Creates each module's table, sets it as a global (and its aliases), and makes require(name)
// return it.
void OpenModules(lua_State* L);

}  // namespace sloth
