// StackRun: what `run` keeps on the stack while one workflow runs. It holds the stack's lock
// (a lease, renewed while the run goes, so a killed runner's lock expires), records the run
// when it starts, each task as soon as it finishes (a killed runner leaves the record of every
// finished task), and the end with the outputs.
#pragma once

#include <functional>
#include <string>

#include "core/executor.h"
#include "core/plan.h"
#include "core/stack_store.h"
#include "core/state_store.h"
#include "exec/loop.h"
#include "lua/workflow.h"

namespace sloth {

// The name of a stack's lock in the state store's lock table.
std::string StackLockName(const std::string& stack);
std::string HostName();
// "user@host", who runs this process.
std::string UserAtHost();
// "user@host pid N", who a lock or a run belongs to.
std::string WhoAmI();
// "2026-11-22 14:03:05 UTC"
std::string FormatUnixMs(int64_t ms);

// The lock is held by someone else (after waiting `--lock-timeout`): exit 3.
struct StackLocked {
  std::string message;  // "stack NAME is locked by OWNER since TIME"
};

class StackRun : public Progress {
 public:
  using Redact = std::function<std::string(std::string_view)>;
  StackRun(Loop& loop, StateStore& locks, StackStore& stacks, RunStore& runs, const Plan& plan,
           Progress& next, Redact redact);
  ~StackRun() override;
  StackRun(const StackRun&) = delete;
  StackRun& operator=(const StackRun&) = delete;

  // Takes the stack's lock (waiting up to `lock_timeout`) and records the start of `record`.
  // On a lock held by another run, `locked` is filled and an error returned.
  // `stop_waiting` ends the wait early (Ctrl-C).
  Status Begin(const StackInfo& stack, const RunRecord& record, Duration lock_timeout,
               StackLocked* locked, const std::function<bool()>& stop_waiting);
  // Records the end; a successful run that is not a check run saves its outputs on the stack.
  Status Finish(const WorkflowOutcome& outcome);

  void TaskStarted(size_t index) override { next_.TaskStarted(index); }
  void TaskRetrying(size_t index, int next_attempt, int max_attempts, Duration delay,
                    const std::string& error) override {
    next_.TaskRetrying(index, next_attempt, max_attempts, delay, error);
  }
  void TaskFinished(size_t index, const TaskResult& result) override;

 private:
  Status Lock(const std::string& stack, Duration timeout, StackLocked* locked,
              const std::function<bool()>& stop_waiting);
  void RenewSoon();
  void Release();

  Loop& loop_;
  StateStore& locks_;
  StackStore& stacks_;
  RunStore& runs_;
  const Plan& plan_;
  Progress& next_;
  Redact redact_;
  StackInfo stack_;
  RunRecord record_;
  std::string lock_name_;
  int64_t token_ = 0;  // 0: not holding the lock
  uint64_t renew_timer_ = 0;
  int seq_ = 0;
};

}  // namespace sloth
