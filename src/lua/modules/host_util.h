// Helpers shared by the modules that look at or change the machine (infra_test, pkg, user):
// the package databases read directly, PATH lookup, and commands run with root rights.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "exec/process.h"

struct lua_State;

namespace sloth {

struct PackageInfo {
  const char* manager = nullptr;       // "dpkg", "apk", or null when neither database exists
  std::optional<std::string> version;  // set when installed
};

// Looks `name` up in dpkg's status file or apk's installed database, read directly (no child
// process, so it is cheap enough to call before every change).
PackageInfo FindPackage(const std::string& name);

// Whether `prog` is an executable in one of $PATH's directories.
bool OnPath(const std::string& prog);

// "5.2" matches "5.2", "5.2.15-2" and "1:5.2.15" (an epoch is ignored unless asked for).
bool VersionMatches(const std::string& found, const std::string& want);

// `argv` run with root rights: as is when we are root, else through `sudo -n` (never prompts).
// `env` (KEY=VALUE) is added to the task's environment; under sudo it is passed through `env`
// because sudo resets the environment.
ProcessSpec PrivilegedSpec(lua_State* L, std::vector<std::string> argv,
                           const std::vector<std::string>& env = {});

// Runs `spec` through exec's runner (the task yields meanwhile), even in check mode — callers
// decide themselves whether a command changes anything — without streaming its output, and
// hands the exit to `on_exit`, which pushes the results.
int RunHostCommand(lua_State* L, ProcessSpec spec,
                   std::function<int(lua_State*, const ProcessExit&)> on_exit);

// The last `max` bytes of a command's stderr (or stdout when stderr is empty), for errors.
std::string CommandOutputTail(const ProcessExit& e, size_t max = 400);

}  // namespace sloth
