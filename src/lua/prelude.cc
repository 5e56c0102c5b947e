// Loads the embedded prelude and provides its C helpers.
#include "lua/prelude.h"

#include <sys/stat.h>

#include <cstring>
#include <filesystem>

#include <lua.hpp>

#include "core/retry.h"
#include "lua/lua_util.h"
#include "lua/modules/exec.h"
#include "lua/prelude_sources.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

char kInternalKey;

// internal.duration(v) -> seconds | nil, err
int Duration_(lua_State* L) {
  Result<Duration> d =
      lua_type(L, 1) == LUA_TNUMBER ? DurationFromSeconds(lua_tonumber(L, 1))
      : lua_type(L, 1) == LUA_TSTRING
          ? ParseDuration(lua_tostring(L, 1))
          : Result<Duration>(Status::Error(
                std::string("expected a duration (\"30s\", \"5m\" or seconds), got ") +
                luaL_typename(L, 1)));
  if (!d.ok()) return PushFailure(L, d.error());
  lua_pushnumber(L, std::chrono::duration<double>(*d).count());
  return 1;
}

int RetryStrategy_(lua_State* L) {
  lua_pushboolean(L, ParseRetryStrategy(luaL_checkstring(L, 1)).has_value());
  return 1;
}

// internal.shell_command(cmd): a task's string command in its workdir.
int ShellCommand(lua_State* L) {
  return RunCommand(L, ShellSpec(L, luaL_checkstring(L, 1)), ExecOptions{});
}

// internal.shell_probe(cmd): runs a run_if/abort_if command. Conditions are read-only probes,
// so they run in check mode too.
int ShellProbe(lua_State* L) {
  ExecOptions opts;
  opts.run_in_check_mode = true;
  return RunCommand(L, ShellSpec(L, luaL_checkstring(L, 1)), opts);
}

int IsDir(lua_State* L) {
  struct stat st;
  lua_pushboolean(L, stat(luaL_checkstring(L, 1), &st) == 0 && S_ISDIR(st.st_mode));
  return 1;
}

int MkdirP(lua_State* L) {
  std::error_code ec;
  std::filesystem::create_directories(luaL_checkstring(L, 1), ec);
  if (ec) return PushFailure(L, ec.message());
  lua_pushboolean(L, 1);
  return 1;
}

int Resolve(lua_State* L) {
  std::string path = Runtime::From(L).ResolvePath(L, luaL_checkstring(L, 1));
  lua_pushstring(L, path.c_str());
  return 1;
}

void RunChunk(lua_State* L, const char* name, const char* code) {
  if (luaL_loadbufferx(L, code, std::strlen(code), name, "t") != LUA_OK) lua_error(L);
  PushInternal(L);
  lua_call(L, 1, 0);
}

}  // namespace

void PushInternal(lua_State* L) { lua_rawgetp(L, LUA_REGISTRYINDEX, &kInternalKey); }

void LoadPrelude(lua_State* L) {
  static const luaL_Reg helpers[] = {{"duration", Duration_},
                                     {"retry_strategy", RetryStrategy_},
                                     {"shell_command", ShellCommand},
                                     {"shell_probe", ShellProbe},
                                     {"is_dir", IsDir},
                                     {"mkdir_p", MkdirP},
                                     {"resolve", Resolve},
                                     {nullptr, nullptr}};
  luaL_newlib(L, helpers);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kInternalKey);
  RunChunk(L, "=[prelude compat]", kPreludeCompat);
  RunChunk(L, "=[prelude dsl]", kPreludeDsl);
  RunChunk(L, "=[prelude run]", kPreludeRun);
}

}  // namespace sloth
