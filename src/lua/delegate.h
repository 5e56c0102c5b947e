// Delegated tasks: a task with :delegate_to runs on agents. The runner packs what the agent needs
// into a bundle (JSON), a Delegator sends it (through the master) and reports the result; the
// agent runs the bundle with RunBundle (a child process per task: `agent run-task`).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/duration.h"
#include "base/status.h"
#include "core/run_result.h"

struct lua_State;

namespace sloth {

// TaskSpec::delegate_to holds agent names, and `:delegate_to({label = "role=web"})` as
// "label:role=web" (every agent with that label).
constexpr char kDelegateLabelPrefix[] = "label:";

struct DelegateCall {
  std::string task;
  std::vector<std::string> agents;  // agent names
  std::string label;                // "k=v": every agent with this label (instead of names)
  bool keyed = false;  // the output is a table keyed by agent name (a list or a label was given)
  std::string bundle_json;
  std::optional<Duration> timeout;
};

class Delegator {
 public:
  virtual ~Delegator() = default;
  using LogFn = std::function<void(const std::string& agent, const std::string& line)>;
  // Runs `call` on its agents. `log` and `done` are called on the loop thread; `done` once.
  // The result's output_json is the agent's output table (keyed by agent when call.keyed).
  virtual void Run(const DelegateCall& call, LogFn log,
                   std::function<void(AttemptResult)> done) = 0;
  // Asks a running call of `task` to stop (timeout, Ctrl-C); its `done` still comes.
  virtual void Cancel(const std::string& task, const std::string& reason) = 0;
};

}  // namespace sloth

// --- The bundle and the agent's answer (delegate.cc) ----------------------------------------

namespace sloth {

// What a bundle carries (docs/distributed.md "Delegated tasks"). JSON:
// {version:1, run_id, stack, workflow, task, attempt, entry, files:{path: text}, values, params,
//  deps:{task: output}, secrets:{name: value}, check_mode}.
struct Bundle {
  std::string run_id, stack, workflow, task;
  std::string stack_id;  // the runner's stack (on the master's store, for stack.*)
  int attempt = 1;
  std::string entry;                         // the workflow file, relative to the bundle's root
  std::map<std::string, std::string> files;  // relative path -> content
  std::string values_json = "{}";
  std::string params_json = "{}";
  std::string deps_json = "{}";  // {task name: its output table}
  std::map<std::string, std::string> secrets;
  bool check_mode = false;
};

// From now on, records every file the state loads (import, require, dofile, loadfile), so a
// bundle can carry them. Call before running the workflow file; calling again does nothing.
void TrackLoadedFiles(lua_State* L);
struct LoadedSource {
  std::string path;       // absolute
  bool required = false;  // found by require() on package.path
};
// The files recorded so far, in load order, without repeats.
std::vector<LoadedSource> LoadedFiles(lua_State* L);

// Fills bundle.entry and bundle.files from `workflow_file` (absolute) and `loaded`, with paths
// relative to the workflow file's directory. A file outside that directory is a clear error
// naming it, except a module require() found there (a library installed on the machine, which
// the agent finds on its own package.path): it is left out.
Status AddBundleFiles(Bundle& bundle, const std::string& workflow_file,
                      const std::vector<LoadedSource>& loaded);
std::string BundleToJson(const Bundle& bundle);
// Errors read "bad bundle: ..." (missing fields, a file path that is absolute or has "..").
Result<Bundle> ParseBundle(const std::string& json);

// The agent's answer: the last non-empty line of `agent run-task`'s stdout
// ({"status", "attempts", "message", "error", "changed", "output", "duration_ms"}).
Result<AttemptResult> ParseAgentResult(const std::string& stdout_text);
// One result for a keyed call: fails when any agent failed (messages named by agent), skipped
// when all skipped; the output is {agent: output}.
AttemptResult MergeAgentResults(const std::vector<std::pair<std::string, AttemptResult>>& results);

}  // namespace sloth
