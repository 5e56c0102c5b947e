// The agent's side of a delegated task: `agent run-task` runs one bundle (lua/delegate.h) in a
// child process of the agent, and reports the task's result as the last line of its stdout.
#pragma once

#include <string>

#include "base/status.h"
#include "core/run_result.h"
#include "lua/delegate.h"
#include "lua/runtime.h"

namespace sloth {

struct GlobalOptions;

// Unpacks `bundle` under `data_dir`/runs/<run id>/ and runs its task there once (no retries:
// the runner retries by sending again), with the bundle's values, secrets, params and deps,
// and `agent` as this.agent.get(). Log lines go to `log`. An error means the task never ran
// (the workflow file did not load, or has no such workflow or task).
Result<TaskResult> RunBundle(const Bundle& bundle, const std::string& data_dir,
                             const std::string& agent, LogSink& log);

// The result line `agent run-task` prints (the format ParseAgentResult reads).
std::string AgentResultJson(const TaskResult& result);

struct AgentTaskOptions {
  std::string agent;  // --agent, else $SLOTH_AGENT_NAME
};

// `agent run-task`: a bundle on stdin. Exit 0 when the task succeeded (or was skipped), 1 when
// it failed, 2 for a bad bundle.
int CmdAgentRunTask(const GlobalOptions& global, const AgentTaskOptions& options);

}  // namespace sloth
