// The plumbing behind the modules that wrap a command-line tool (git, terraform, kubectl...):
// find the tool on PATH, run an argument list (never a shell string) through the exec layer so
// the task yields, honour check mode, parse JSON output, and push one kind of result table.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/duration.h"

struct lua_State;

namespace sloth {

enum class ToolJson { kNone, kDocument, kLines };

struct ToolCall {
  std::string tool;               // looked up on the PATH the child would get
  std::vector<std::string> args;  // after the program name
  // Under --check: empty and !read_only -> not run (skipped); set -> these run instead (plan,
  // preview, --dry-run).
  std::vector<std::string> check_args;
  bool read_only = false;  // only looks: runs under --check as well
  std::string cwd;         // as the user wrote it (relative to the task's workdir); empty: workdir
  std::vector<std::pair<std::string, std::string>> env;  // added to the task's environment
  std::optional<std::string> stdin_data;
  std::optional<Duration> timeout;
  ToolJson json = ToolJson::kNone;  // parse stdout into result.data
  bool stream = false;              // copy output lines into the run's log as they arrive
};

// Runs `call` and pushes {success, exit_code, stdout, stderr, command, duration_ms, data?,
// check_mode?, skipped?}. A missing tool pushes {success = false, exit_code = 127, error =
// "<tool> not found on PATH"} without raising. Yields the calling task while the tool runs.
int RunTool(lua_State* L, ToolCall call);

// The Lua face: `cli(args, opts?)` for `tool`, opts = {workdir|cwd, env, stdin, timeout,
// read_only, check_args, json = true|"lines", stream, program}. Each wrapper module lists it as
// its `cli` function and builds everything else on it in Lua.
int RunToolFromLua(lua_State* L, const char* tool);

// Lua `check_mode() -> bool`: whether the calling task runs under --check (for the wrappers
// whose later steps depend on earlier changes, e.g. waiting for an instance to start).
int ToolCheckMode(lua_State* L);

// `body` after the Lua helpers every wrapper shares, as a module's lua_code. They define the
// locals M (the module table), run (M.cli), push(args, ...), list(v), sorted_keys(t),
// opts_of(o, key), lines(s), scalar(v) and raise(fn, r). Call once and keep the result.
std::string ToolLua(const char* body);

// The absolute path of `prog` in the PATH of `env` (KEY=VALUE entries), or nullopt.
std::optional<std::string> FindTool(const std::string& prog, const std::vector<std::string>& env);

}  // namespace sloth
