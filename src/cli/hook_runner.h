// Running a hook file (events-and-scheduler.md "Hooks"): the seed's form returns a table with
// name, event_type and an execute(event) function; the other form defines on_event(event).
// Every workflow module is available. A hook succeeds unless it raises an error or returns
// false (`return false, "why"`); a string after the first result is its output.
#pragma once

#include <optional>
#include <string>

#include "base/duration.h"
#include "events/bus.h"
#include "events/event.h"

namespace sloth {

// What a hook file says about itself, for `hook add FILE`.
struct HookFileInfo {
  std::string name;        // empty for the on_event form
  std::string event_type;  // empty for the on_event form
  std::string stack;
  std::string description;
  std::optional<int64_t> timeout_ms;
  std::optional<int> retries;
};

// Loads the file (its top-level code runs in check mode) and checks it defines a hook.
Result<HookFileInfo> InspectHookFile(const std::string& path, const std::string& data_dir);

// Runs the hook in `file` once on `event`, in this process, for at most `timeout`. Its log lines
// go to stderr. Events the hook dispatches are one level deeper than `event`.
HookOutcome RunHookFile(const std::string& name, const std::string& file, const Event& event,
                        const std::string& data_dir, Duration timeout);

}  // namespace sloth
