// What the workflow file describes, as plain data: tasks, workflows and their settings.
// The Lua layer fills these in; core never sees a lua_State.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/duration.h"
#include "core/retry.h"

namespace sloth {

struct TaskSpec {
  std::string name;
  std::string description;
  std::string source;  // "file:line" where the task was defined, for error messages
  std::vector<std::string> depends_on;
  RetryPolicy retry;
  bool retry_set =
      false;  // the task said retries itself (else the workflow's retry_policy applies)
  std::optional<Duration> timeout;
  bool async = false;  // runs alongside siblings without counting against max_parallel_tasks
  std::string workdir;
  std::vector<std::string> delegate_to;
  std::vector<std::string> tags;
  std::vector<std::string> artifacts;
  std::vector<std::string> consumes;
  std::string command_text;  // a string command, when the task has one
  bool always_run = false;   // :check_mode(false): runs even under --check
};

struct WorkflowConfig {
  std::optional<Duration> timeout;
  int max_parallel_tasks = 1;
  bool fail_fast = true;
  std::optional<Duration> retry_delay;
  std::optional<RetryStrategy> retry_policy;
};

struct WorkflowSpec {
  std::string name;
  std::string description;
  std::string version;
  std::string source;
  std::vector<TaskSpec> tasks;
  WorkflowConfig config;
  std::vector<std::string> delegate_to;  // default agents for its tasks
};

}  // namespace sloth
