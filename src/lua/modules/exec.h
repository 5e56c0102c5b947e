// The exec module's command runner, shared with the engine (string commands, run_if strings).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "base/duration.h"
#include "exec/process.h"

struct lua_State;

namespace sloth {

struct PopenFile;

struct ExecOptions {
  std::optional<Duration> timeout;
  std::string user;
  bool run_in_check_mode = false;   // opts.check_mode = false: runs even under --check
  bool stream = true;               // copy output lines into the run's log as they arrive
  bool os_execute_result = false;   // push os.execute's (ok, "exit", code) instead of a table
  PopenFile* popen_into = nullptr;  // io.popen: store stdout in this file object
  // Set: pushes the results from the finished command instead of the result table (infra_test).
  std::function<int(lua_State*, const ProcessExit&)> on_exit;
};

// `/bin/sh -c script` with the calling task's environment.
ProcessSpec ShellSpec(lua_State* L, const std::string& script);

// Runs `spec` in the calling task's workdir (unless spec.cwd is set) and pushes the result
// table; yields the calling coroutine while the command runs. In check mode it does not run
// the command and pushes {success = true, skipped = true, ...}.
int RunCommand(lua_State* L, ProcessSpec spec, const ExecOptions& opts);

}  // namespace sloth
