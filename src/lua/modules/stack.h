// For modules that manage things on the machine (pkg, user, file_ops, systemd): records what
// they manage as resources of the run's stack (state-and-stacks.md), so `stack resources` and
// `stack drift` see them.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

struct lua_State;

namespace sloth {

// Records (or refreshes) resource `type`/`name` with `properties` and state "applied" on the
// run's stack, and returns its status: "created", "changed" or "unchanged". Does nothing and
// returns "" outside a run (no stack) and in check mode (a dry run records nothing, but the
// status it would have is still reported to `run --check -o json` and `stack drift`).
std::string RecordManagedResource(lua_State* L, const std::string& type, const std::string& name,
                                  const std::string& module, const nlohmann::json& properties);

}  // namespace sloth
