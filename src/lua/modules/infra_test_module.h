// The infra_test module's tally of assertions, read by `run --junit` after each workflow.
#pragma once

#include <map>
#include <string>

struct lua_State;

namespace sloth {

// How many infra_test assertions each task made (passed or failed) since the last call, by
// task name; clears the tally.
std::map<std::string, int> TakeAssertionCounts(lua_State* L);

}  // namespace sloth
