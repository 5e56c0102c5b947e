// Loading workflow files into core specs, and running one workflow on the loop.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "base/status.h"
#include "core/executor.h"
#include "core/plan.h"
#include "core/scheduler.h"
#include "lua/delegate.h"
#include "lua/runtime.h"

namespace sloth {

struct LoadedWorkflow {
  WorkflowSpec spec;
  int ref = -1;  // the workflow's definition table, in the registry
  std::string metadata_json = "{}";
};

// Runs the file and collects what it defines. Errors read "FILE:LINE: message".
Result<std::vector<LoadedWorkflow>> LoadWorkflows(Runtime& rt, const std::string& path);

struct RunInfo {
  std::string stack;
  std::string stack_id;
  std::string run_id;
  std::string artifacts_dir;        // where artifacts of this run are kept
  std::optional<int> max_parallel;  // --parallel
  bool check_mode = false;
  Gate* gate = nullptr;  // --interactive
  std::string file;      // the workflow file, absolute: what delegated tasks ship
  // Sends delegated tasks (:delegate_to) to agents. None: they fail, with `delegator_error`
  // (why it could not be opened) or a note that the run has no master.
  Delegator* delegator = nullptr;
  std::string delegator_error;
  // On an agent (`agent run-task`), what the task sees instead of what this run computed.
  std::string agent;                       // this.agent.get()
  std::optional<std::string> params_json;  // the runner's params ({} of the run still added)
  std::optional<std::string> deps_json;    // {task: output}: `deps` instead of this run's
  int attempt_offset = 0;                  // this.attempt = the runner's attempt
};

struct WorkflowOutcome {
  RunResult result;
  std::string outputs_json = "{}";  // the `outputs` global after the run
  // Every stack.register_resource of the run: {type, name, status, diff?} as JSON text.
  std::vector<std::string> resources;
};

// Runs `plan` (built from `workflow`) to completion. `started` receives the scheduler so the
// caller can cancel it (Ctrl-C).
WorkflowOutcome RunWorkflow(Runtime& rt, const LoadedWorkflow& workflow, const Plan& plan,
                            const RunInfo& info, Progress& progress,
                            const std::function<void(Scheduler*)>& started);

}  // namespace sloth
