// Scheduler: runs a Plan through an Executor. Decides what starts next (dependencies,
// max_parallel_tasks, fail_fast), retries, per-attempt and whole-run timeouts. Never blocks:
// every decision happens in a callback from the executor or a timer.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/executor.h"
#include "core/plan.h"
#include "core/run_result.h"

namespace sloth {

struct SchedulerOptions {
  int max_parallel = 1;  // already resolved from config and --parallel
  bool fail_fast = true;
  std::optional<Duration> run_timeout;
  Gate* gate = nullptr;  // asks before each task starts (--interactive)
};

class Scheduler {
 public:
  Scheduler(const Plan& plan, SchedulerOptions options, Executor& executor, Timers& timers,
            Progress& progress);

  void Start();
  // Ctrl-C: start nothing more, stop what runs; the run ends as cancelled.
  void Cancel(const std::string& reason);
  // Ends the run as failed (not cancelled) with `reason`: stops what runs, starts nothing more.
  // Used when the run can make no progress (every goroutine waits on another: a deadlock).
  void Abort(const std::string& reason);
  bool done() const { return done_; }
  const RunResult& result() const { return result_; }

 private:
  void Pump();
  void StartTask(size_t i);
  void StartAttempt(size_t i);
  void AttemptDone(size_t i, AttemptResult r);
  void Finish(size_t i, TaskResult r);
  void Settle(size_t i, TaskResult r);
  bool CanStart(size_t i) const;
  bool DependencyBlocked(size_t i, std::string* reason) const;
  void StopEverything(const std::string& reason);
  void MaybeFinish();

  struct TaskState {
    int attempt = 0;
    Clock::time_point started;
    uint64_t timeout_timer = 0;
    uint64_t retry_timer = 0;
    bool in_attempt = false;
    bool finishing = false;  // FinishTask hooks are running
    bool skipped_by_gate = false;
    std::string cancel_reason;
  };

  const Plan& plan_;
  SchedulerOptions options_;
  Executor& executor_;
  Timers& timers_;
  Progress& progress_;
  std::vector<TaskState> state_;
  std::vector<bool> satisfied_;         // final and good enough for dependents
  std::vector<size_t> rank_;            // position of each task in the plan's order
  std::vector<size_t> unsettled_deps_;  // dependencies not final yet
  std::set<size_t> candidates_;         // ranks of pending tasks whose dependencies are all final
  size_t active_ = 0;                   // tasks in kRunning (attempts, retry waits, hooks)
  bool has_async_ = false;
  RunResult result_;
  Clock::time_point started_;
  uint64_t run_timer_ = 0;
  int running_counted_ = 0;  // running tasks that count against max_parallel
  bool stopping_ = false;    // no new task starts (fail_fast, cancel, run timeout)
  bool hard_stop_ = false;   // cancel or run timeout: no retries either
  bool cancelled_ = false;
  bool begun_ = false;  // Start() was called
  bool pumping_ = false;
  bool repump_ = false;
  bool done_ = false;
};

}  // namespace sloth
