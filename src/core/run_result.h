// What a run produced: each task's outcome and the run's status.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/duration.h"

namespace sloth {

enum class TaskStatus { kPending, kRunning, kSuccess, kFailed, kSkipped, kUnchanged, kNotRun };

// The seed's spelling, used in JSON output and run records.
std::string_view TaskStatusName(TaskStatus status);

// How one attempt of a task ended, as reported by the Executor.
struct AttemptResult {
  enum class Outcome { kSuccess, kFailed, kSkipped };
  Outcome outcome = Outcome::kSuccess;
  bool changed = true;              // false when the task reported changed = false
  std::string message;              // the task's message (success) or error text (failure)
  std::string output_json;          // the output table as JSON text ("{}" when none)
  bool final = false;               // a failure that retrying cannot change (abort_if)
  std::vector<std::string> agents;  // a delegated task: the agents it ran on
};

struct TaskResult {
  TaskStatus status = TaskStatus::kPending;
  Duration duration{};
  int attempts = 0;
  std::string message;  // success message, or why it was skipped
  std::string error;    // failure text
  std::string output_json = "{}";
  bool changed = false;
  std::vector<std::string> agents;  // a delegated task: the agents it ran on
};

enum class RunStatus { kSuccess, kFailed, kCancelled };
std::string_view RunStatusName(RunStatus status);

struct RunResult {
  RunStatus status = RunStatus::kSuccess;
  Duration duration{};
  std::string error;              // run-level failure (workflow timeout), if any
  std::vector<TaskResult> tasks;  // indexed like the plan's tasks
};

}  // namespace sloth
