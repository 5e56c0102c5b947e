// Interfaces the scheduler drives: something that runs task attempts, timers, and a progress sink.
// The Lua layer and the event loop implement them; tests use fakes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "base/duration.h"
#include "core/run_result.h"

namespace sloth {

class Executor {
 public:
  virtual ~Executor() = default;
  // Starts attempt `attempt` (1-based) of task `index`. Calls `done` exactly once, possibly later.
  virtual void StartAttempt(size_t index, int attempt, std::function<void(AttemptResult)> done) = 0;
  // Asks a running attempt to stop soon (timeout, cancellation). It still calls its `done`.
  // Also called while FinishTask's hooks run (cancellation): they should stop soon too.
  virtual void CancelAttempt(size_t index, const std::string& reason) = 0;
  // Runs once per task that ran, when its final outcome is known (on_success / on_failure).
  virtual void FinishTask(size_t index, const TaskResult& result, std::function<void()> done) = 0;
};

class Timers {
 public:
  virtual ~Timers() = default;
  virtual uint64_t After(Duration delay, std::function<void()> fn) = 0;
  virtual void Cancel(uint64_t id) = 0;
  virtual Clock::time_point Now() const = 0;
  virtual double Random() = 0;  // uniform in [0, 1), for retry jitter
};

// Asks before a task starts (`run --interactive`). `answer` may be called later.
enum class GateAnswer { kRun, kSkip };
class Gate {
 public:
  virtual ~Gate() = default;
  virtual void BeforeStart(size_t index, std::function<void(GateAnswer)> answer) = 0;
};

class Progress {
 public:
  virtual ~Progress() = default;
  virtual void TaskStarted(size_t index) {}
  virtual void TaskRetrying(size_t index, int next_attempt, int max_attempts, Duration delay,
                            const std::string& error) {}
  virtual void TaskFinished(size_t index, const TaskResult& result) {}
};

}  // namespace sloth
