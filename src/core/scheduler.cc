// The scheduler's state machine: pending -> running (attempts, retry waits) -> finishing -> final.
#include "core/scheduler.h"

namespace sloth {
namespace {

bool IsFinal(TaskStatus s) {
  return s == TaskStatus::kSuccess || s == TaskStatus::kFailed || s == TaskStatus::kSkipped ||
         s == TaskStatus::kUnchanged || s == TaskStatus::kNotRun;
}

}  // namespace

Scheduler::Scheduler(const Plan& plan, SchedulerOptions options, Executor& executor, Timers& timers,
                     Progress& progress)
    : plan_(plan),
      options_(options),
      executor_(executor),
      timers_(timers),
      progress_(progress),
      state_(plan.size()) {
  result_.tasks.resize(plan.size());
  satisfied_.assign(plan.size(), false);
  rank_.resize(plan.size());
  for (size_t r = 0; r < plan.order().size(); ++r) rank_[plan.order()[r]] = r;
  unsettled_deps_.resize(plan.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    unsettled_deps_[i] = plan.deps(i).size();
    has_async_ = has_async_ || plan.task(i).async;
  }
  if (options_.max_parallel < 1) options_.max_parallel = 1;
}

void Scheduler::Start() {
  begun_ = true;
  started_ = timers_.Now();
  for (size_t i = 0; i < plan_.size(); ++i) {
    if (!plan_.selected(i))
      result_.tasks[i].status = TaskStatus::kNotRun;
    else if (unsettled_deps_[i] == 0)
      candidates_.insert(rank_[i]);
  }
  if (options_.run_timeout && !hard_stop_) {
    std::string reason = "workflow timed out after " + FormatHuman(*options_.run_timeout);
    run_timer_ = timers_.After(*options_.run_timeout, [this, reason] {
      run_timer_ = 0;
      result_.error = reason;
      StopEverything(reason);
    });
  }
  Pump();
}

void Scheduler::Cancel(const std::string& reason) {
  if (done_) return;
  cancelled_ = true;
  if (!begun_) {  // Ctrl-C before Start() (during on_start): Start() ends the run at once
    stopping_ = hard_stop_ = true;
    return;
  }
  StopEverything(reason);
}

void Scheduler::Abort(const std::string& reason) {
  if (done_ || !begun_) return;
  if (result_.error.empty()) result_.error = reason;
  StopEverything(reason);
}

void Scheduler::StopEverything(const std::string& reason) {
  stopping_ = true;
  hard_stop_ = true;
  for (size_t i = 0; i < plan_.size(); ++i) {
    TaskState& s = state_[i];
    if (s.in_attempt) {
      if (s.cancel_reason.empty()) s.cancel_reason = reason;
      executor_.CancelAttempt(i, reason);
    } else if (s.retry_timer) {
      timers_.Cancel(s.retry_timer);
      s.retry_timer = 0;
      TaskResult r = result_.tasks[i];
      r.status = TaskStatus::kFailed;
      r.error = reason;
      Finish(i, std::move(r));
    } else if (s.finishing) {
      executor_.CancelAttempt(i, reason);  // its end hooks (their commands) stop too
    }
  }
  Pump();
}

bool Scheduler::DependencyBlocked(size_t i, std::string* reason) const {
  for (size_t d : plan_.deps(i)) {
    TaskStatus s = result_.tasks[d].status;
    if (!IsFinal(s) || satisfied_[d]) continue;
    const std::string& name = plan_.task(d).name;
    if (s == TaskStatus::kFailed)
      *reason = "dependency " + name + " failed";
    else if (s == TaskStatus::kNotRun)
      *reason = "dependency " + name + " did not run";
    else
      *reason = "dependency " + name + " was skipped";
    return true;
  }
  return false;
}

bool Scheduler::CanStart(size_t i) const {
  for (size_t d : plan_.deps(i))
    if (!satisfied_[d]) return false;
  return plan_.task(i).async || running_counted_ < options_.max_parallel;
}

void Scheduler::Pump() {
  if (pumping_) {
    repump_ = true;
    return;
  }
  pumping_ = true;
  do {
    repump_ = false;
    bool full = false;
    for (auto it = candidates_.begin(); it != candidates_.end() && !repump_;) {
      size_t i = plan_.order()[*it];
      std::string reason;
      if (DependencyBlocked(i, &reason)) {
        it = candidates_.erase(it);
        TaskResult r;
        r.status = TaskStatus::kSkipped;
        r.message = reason;
        Settle(i, std::move(r));
      } else if (stopping_ || (full && !plan_.task(i).async)) {
        ++it;
      } else if (CanStart(i)) {
        it = candidates_.erase(it);
        StartTask(i);
      } else {
        full = true;  // no capacity: only async tasks may still start
        if (!has_async_) break;
        ++it;
      }
    }
  } while (repump_);
  pumping_ = false;
  MaybeFinish();
}

void Scheduler::StartTask(size_t i) {
  result_.tasks[i].status = TaskStatus::kRunning;
  ++active_;
  state_[i].started = timers_.Now();
  if (!plan_.task(i).async) ++running_counted_;
  progress_.TaskStarted(i);
  if (!options_.gate) return StartAttempt(i);
  options_.gate->BeforeStart(i, [this, i](GateAnswer answer) {
    if (hard_stop_) {
      TaskResult r = result_.tasks[i];
      r.status = TaskStatus::kFailed;
      r.error = result_.error.empty() ? "cancelled" : result_.error;
      return Finish(i, std::move(r));
    }
    if (answer == GateAnswer::kRun) return StartAttempt(i);
    state_[i].skipped_by_gate = true;
    TaskResult r = result_.tasks[i];
    r.status = TaskStatus::kSkipped;
    r.message = "skipped at the prompt";
    Finish(i, std::move(r));
  });
}

void Scheduler::StartAttempt(size_t i) {
  TaskState& s = state_[i];
  s.retry_timer = 0;
  s.attempt++;
  s.in_attempt = true;
  s.cancel_reason.clear();
  result_.tasks[i].attempts = s.attempt;
  if (const auto& timeout = plan_.task(i).timeout) {
    std::string reason = "timed out after " + FormatHuman(*timeout);
    s.timeout_timer = timers_.After(*timeout, [this, i, reason] {
      state_[i].timeout_timer = 0;
      state_[i].cancel_reason = reason;
      executor_.CancelAttempt(i, reason);
    });
  }
  executor_.StartAttempt(i, s.attempt,
                         [this, i](AttemptResult r) { AttemptDone(i, std::move(r)); });
}

void Scheduler::AttemptDone(size_t i, AttemptResult r) {
  TaskState& s = state_[i];
  s.in_attempt = false;
  if (s.timeout_timer) timers_.Cancel(s.timeout_timer);
  s.timeout_timer = 0;
  if (!s.cancel_reason.empty() && r.outcome != AttemptResult::Outcome::kFailed) {
    r.outcome = AttemptResult::Outcome::kFailed;
    r.message = s.cancel_reason;
  }
  TaskResult t = result_.tasks[i];
  t.output_json = r.output_json.empty() ? "{}" : r.output_json;
  t.agents = r.agents;
  if (r.outcome != AttemptResult::Outcome::kFailed) {
    bool skipped = r.outcome == AttemptResult::Outcome::kSkipped;
    t.status = skipped     ? TaskStatus::kSkipped
               : r.changed ? TaskStatus::kSuccess
                           : TaskStatus::kUnchanged;
    t.message = r.message;
    t.error.clear();
    t.changed = r.changed && !skipped;
    Finish(i, std::move(t));
    return;
  }
  t.error = r.message.empty() ? s.cancel_reason : r.message;
  result_.tasks[i].error = t.error;
  const RetryPolicy& retry = plan_.task(i).retry;
  if (s.attempt < retry.max_attempts() && !hard_stop_ && !r.final) {
    Duration delay = retry.DelayBefore(s.attempt, timers_.Random());
    progress_.TaskRetrying(i, s.attempt + 1, retry.max_attempts(), delay, t.error);
    s.retry_timer = timers_.After(delay, [this, i] { StartAttempt(i); });
    return;
  }
  t.status = TaskStatus::kFailed;
  Finish(i, std::move(t));
}

// Runs the executor's end-of-task hooks, then settles the task.
void Scheduler::Finish(size_t i, TaskResult r) {
  state_[i].finishing = true;
  // The failure is final now: under fail_fast nothing new may start while on_failure runs.
  if (r.status == TaskStatus::kFailed && options_.fail_fast) stopping_ = true;
  r.duration = timers_.Now() - state_[i].started;
  executor_.FinishTask(i, r, [this, i, r] {
    state_[i].finishing = false;
    if (!plan_.task(i).async) --running_counted_;
    Settle(i, r);
    Pump();
  });
}

void Scheduler::Settle(size_t i, TaskResult r) {
  satisfied_[i] =
      r.status == TaskStatus::kSuccess || r.status == TaskStatus::kUnchanged ||
      (r.status == TaskStatus::kSkipped && (state_[i].attempt > 0 || state_[i].skipped_by_gate));
  if (result_.tasks[i].status == TaskStatus::kRunning) --active_;
  result_.tasks[i] = std::move(r);
  // A dependent becomes a candidate when all its dependencies are final, or at once when this
  // one leaves it blocked (it is then skipped without waiting for the others).
  for (size_t d : plan_.dependents(i))
    if ((--unsettled_deps_[d] == 0 || !satisfied_[i]) &&
        result_.tasks[d].status == TaskStatus::kPending)
      candidates_.insert(rank_[d]);
  repump_ = true;
  progress_.TaskFinished(i, result_.tasks[i]);
  if (result_.tasks[i].status == TaskStatus::kFailed && options_.fail_fast) stopping_ = true;
}

void Scheduler::MaybeFinish() {
  if (done_ || pumping_ || active_ > 0) return;
  if (!stopping_ && !candidates_.empty()) return;  // still startable later
  // Whatever never started is NotRun (a stop left it behind).
  for (size_t i : plan_.order())
    if (result_.tasks[i].status == TaskStatus::kPending) {
      result_.tasks[i].status = TaskStatus::kNotRun;
      progress_.TaskFinished(i, result_.tasks[i]);
    }
  if (run_timer_) timers_.Cancel(run_timer_);
  run_timer_ = 0;
  result_.duration = timers_.Now() - started_;
  result_.status = RunStatus::kSuccess;
  for (const TaskResult& t : result_.tasks)
    if (t.status == TaskStatus::kFailed) result_.status = RunStatus::kFailed;
  if (!result_.error.empty()) result_.status = RunStatus::kFailed;
  if (cancelled_) result_.status = RunStatus::kCancelled;
  done_ = true;
}

std::string_view TaskStatusName(TaskStatus status) {
  switch (status) {
    case TaskStatus::kPending:
      return "Pending";
    case TaskStatus::kRunning:
      return "Running";
    case TaskStatus::kSuccess:
      return "Success";
    case TaskStatus::kFailed:
      return "Failed";
    case TaskStatus::kSkipped:
      return "Skipped";
    case TaskStatus::kUnchanged:
      return "Unchanged";
    case TaskStatus::kNotRun:
      return "NotRun";
  }
  return "Unknown";
}

std::string_view RunStatusName(RunStatus status) {
  switch (status) {
    case RunStatus::kSuccess:
      return "success";
    case RunStatus::kFailed:
      return "failed";
    case RunStatus::kCancelled:
      return "cancelled";
  }
  return "failed";
}

}  // namespace sloth
