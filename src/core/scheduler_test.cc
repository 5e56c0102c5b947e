#include "core/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>

using namespace std::chrono_literals;

namespace sloth {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// ---------------------------------------------------------------------------------------------
// Fakes

AttemptResult Ok(std::string message = "", bool changed = true) {
  AttemptResult r;
  r.outcome = AttemptResult::Outcome::kSuccess;
  r.changed = changed;
  r.message = std::move(message);
  return r;
}

AttemptResult Fail(std::string message = "") {
  AttemptResult r;
  r.outcome = AttemptResult::Outcome::kFailed;
  r.changed = false;
  r.message = std::move(message);
  return r;
}

AttemptResult Skip(std::string message = "") {
  AttemptResult r;
  r.outcome = AttemptResult::Outcome::kSkipped;
  r.changed = false;
  r.message = std::move(message);
  return r;
}

// A manual clock. After() stores callbacks; Advance() fires the due ones in deadline order.
class FakeTimers : public Timers {
 public:
  uint64_t After(Duration delay, std::function<void()> fn) override {
    uint64_t id = next_id_++;
    timers_.push_back({now_ + delay, id, std::move(fn)});
    requested_.push_back(delay);
    return id;
  }
  void Cancel(uint64_t id) override {
    auto it =
        std::find_if(timers_.begin(), timers_.end(), [&](const Timer& t) { return t.id == id; });
    if (it != timers_.end()) timers_.erase(it);
    ++cancels_;
  }
  Clock::time_point Now() const override { return now_; }
  double Random() override { return 0.5; }

  // Moves the clock forward by `d`, firing every timer that comes due, earliest first. Timers
  // added or cancelled by a callback are honoured.
  void Advance(Duration d) {
    const Clock::time_point target = now_ + d;
    for (;;) {
      auto due = timers_.end();
      for (auto it = timers_.begin(); it != timers_.end(); ++it)
        if (it->deadline <= target && (due == timers_.end() || it->deadline < due->deadline ||
                                       (it->deadline == due->deadline && it->id < due->id)))
          due = it;
      if (due == timers_.end()) break;
      now_ = due->deadline;
      std::function<void()> fn = std::move(due->fn);
      timers_.erase(due);
      fn();
    }
    now_ = target;
  }

  size_t pending() const { return timers_.size(); }
  const std::vector<Duration>& requested() const { return requested_; }
  int cancels() const { return cancels_; }

 private:
  struct Timer {
    Clock::time_point deadline;
    uint64_t id;
    std::function<void()> fn;
  };
  Clock::time_point now_ = Clock::time_point{} + 1000h;
  uint64_t next_id_ = 1;
  std::vector<Timer> timers_;
  std::vector<Duration> requested_;
  int cancels_ = 0;
};

// Records every call. The test completes attempts (Complete) and FinishTask hooks (Release) when
// it wants, or sets `on_start` to answer synchronously from inside StartAttempt.
class FakeExecutor : public Executor {
 public:
  explicit FakeExecutor(const Plan& plan) : plan_(plan) {}

  // When set and it returns a result, the attempt completes synchronously inside StartAttempt.
  std::function<std::optional<AttemptResult>(const std::string& name, int attempt)> on_start;
  // CancelAttempt completes the running attempt as failed (with an empty message) right away.
  bool complete_on_cancel = false;
  // FinishTask keeps its `done` until Release(name).
  bool hold_finish = false;

  void StartAttempt(size_t index, int attempt, std::function<void(AttemptResult)> done) override {
    const std::string& name = plan_.task(index).name;
    log.push_back("start " + name + "#" + std::to_string(attempt));
    starts.push_back(name);
    EXPECT_EQ(running_.count(index), 0u) << name << " started while its attempt runs";
    EXPECT_EQ(finish_count_[name], 0) << name << " started again after FinishTask";
    for (size_t d : plan_.deps(index))
      EXPECT_GE(finish_count_[plan_.task(d).name], 1)
          << name << " started before FinishTask of its dependency " << plan_.task(d).name;
    running_[index] = std::move(done);
    size_t counted = 0;
    for (const auto& [i, fn] : running_)
      if (!plan_.task(i).async) ++counted;
    peak_counted = std::max(peak_counted, counted);
    peak_running = std::max(peak_running, running_.size());
    if (on_start) {
      if (std::optional<AttemptResult> r = on_start(name, attempt)) Complete(name, *r);
    }
  }

  void CancelAttempt(size_t index, const std::string& reason) override {
    const std::string& name = plan_.task(index).name;
    log.push_back("cancel " + name + ": " + reason);
    cancels.push_back(name + ": " + reason);
    if (complete_on_cancel && running_.count(index)) Complete(name, Fail());
  }

  void FinishTask(size_t index, const TaskResult& result, std::function<void()> done) override {
    const std::string& name = plan_.task(index).name;
    log.push_back("finish " + name + " " + std::string(TaskStatusName(result.status)));
    finished[name] = result;
    ++finish_count_[name];
    EXPECT_EQ(finish_count_[name], 1) << "FinishTask twice for " << name;
    EXPECT_EQ(running_.count(index), 0u) << "FinishTask while an attempt of " << name << " runs";
    if (hold_finish) {
      held_[name] = std::move(done);
    } else {
      done();
    }
  }

  // Completes the running attempt of `name`.
  void Complete(const std::string& name, AttemptResult r) {
    int i = plan_.Find(name);
    ASSERT_GE(i, 0) << name;
    auto it = running_.find(static_cast<size_t>(i));
    ASSERT_NE(it, running_.end()) << name << " has no running attempt";
    std::function<void(AttemptResult)> done = std::move(it->second);
    running_.erase(it);
    done(std::move(r));
  }

  // Lets a held FinishTask hook of `name` finish.
  void Release(const std::string& name) {
    auto it = held_.find(name);
    ASSERT_NE(it, held_.end()) << name << " has no held FinishTask";
    std::function<void()> done = std::move(it->second);
    held_.erase(it);
    done();
  }

  bool Running(const std::string& name) const {
    int i = plan_.Find(name);
    return i >= 0 && running_.count(static_cast<size_t>(i)) > 0;
  }
  std::vector<std::string> RunningNames() const {
    std::vector<std::string> out;
    for (const auto& [i, fn] : running_) out.push_back(plan_.task(i).name);
    return out;
  }
  bool Held(const std::string& name) const { return held_.count(name) > 0; }
  int FinishCount(const std::string& name) const {
    auto it = finish_count_.find(name);
    return it == finish_count_.end() ? 0 : it->second;
  }

  std::vector<std::string> log;
  std::vector<std::string> starts;
  std::vector<std::string> cancels;
  std::map<std::string, TaskResult> finished;
  size_t peak_counted = 0;  // most non-async attempts running at once
  size_t peak_running = 0;  // most attempts running at once

 private:
  const Plan& plan_;
  std::map<size_t, std::function<void(AttemptResult)>> running_;
  std::map<std::string, std::function<void()>> held_;
  std::map<std::string, int> finish_count_;
};

class RecordingProgress : public Progress {
 public:
  explicit RecordingProgress(const Plan& plan) : plan_(plan) {}
  void TaskStarted(size_t index) override { log.push_back("started " + plan_.task(index).name); }
  void TaskRetrying(size_t index, int next_attempt, int max_attempts, Duration delay,
                    const std::string& error) override {
    log.push_back("retrying " + plan_.task(index).name + " " + std::to_string(next_attempt) + "/" +
                  std::to_string(max_attempts) + " in " + FormatHuman(delay) + ": " + error);
    retry_delays.push_back(delay);
  }
  void TaskFinished(size_t index, const TaskResult& result) override {
    log.push_back("finished " + plan_.task(index).name + " " +
                  std::string(TaskStatusName(result.status)));
  }
  std::vector<std::string> log;
  std::vector<Duration> retry_delays;

 private:
  const Plan& plan_;
};

TaskSpec Task(std::string name, std::vector<std::string> deps = {}) {
  TaskSpec t;
  t.name = std::move(name);
  t.depends_on = std::move(deps);
  return t;
}

TaskSpec Async(TaskSpec t) {
  t.async = true;
  return t;
}

TaskSpec WithRetries(TaskSpec t, int retries, std::optional<Duration> delay = std::nullopt,
                     RetryStrategy strategy = RetryStrategy::kFixed) {
  t.retry.retries = retries;
  t.retry.delay = delay;
  t.retry.strategy = strategy;
  t.retry_set = true;
  return t;
}

TaskSpec WithTimeout(TaskSpec t, Duration timeout) {
  t.timeout = timeout;
  return t;
}

Plan BuildPlan(std::vector<TaskSpec> tasks) {
  WorkflowSpec w;
  w.name = "wf";
  w.tasks = std::move(tasks);
  Result<Plan> plan = Plan::Build(w);
  EXPECT_TRUE(plan.ok()) << plan.error();
  return std::move(plan.value());
}

// Everything one scheduler test needs, wired together.
struct Harness {
  explicit Harness(std::vector<TaskSpec> tasks, SchedulerOptions opts = {})
      : plan(BuildPlan(std::move(tasks))), executor(plan), progress(plan), options(opts) {}

  void Start() {
    scheduler = std::make_unique<Scheduler>(plan, options, executor, timers, progress);
    scheduler->Start();
  }
  const TaskResult& Result(const std::string& name) const {
    int i = plan.Find(name);
    EXPECT_GE(i, 0) << name;
    return scheduler->result().tasks.at(static_cast<size_t>(i));
  }
  TaskStatus Status(const std::string& name) const { return Result(name).status; }
  bool done() const { return scheduler->done(); }
  const RunResult& run() const { return scheduler->result(); }

  Plan plan;
  FakeExecutor executor;
  FakeTimers timers;
  RecordingProgress progress;
  SchedulerOptions options;
  std::unique_ptr<Scheduler> scheduler;
};

SchedulerOptions Parallel(int n, bool fail_fast = true) {
  SchedulerOptions o;
  o.max_parallel = n;
  o.fail_fast = fail_fast;
  return o;
}

// ---------------------------------------------------------------------------------------------
// Order and parallelism

TEST(Scheduler, EmptyPlanFinishesAtOnce) {
  Harness h({});
  h.Start();
  EXPECT_TRUE(h.done());
  EXPECT_EQ(h.run().status, RunStatus::kSuccess);
  EXPECT_THAT(h.run().tasks, IsEmpty());
}

TEST(Scheduler, RunsDependenciesFirstThenDefinitionOrder) {
  Harness h(
      {Task("deploy", {"build", "test"}), Task("build"), Task("test", {"build"}), Task("lint")});
  h.Start();
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("build"));
  h.executor.Complete("build", Ok());
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("test"));
  h.executor.Complete("test", Ok());
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("deploy"));
  h.executor.Complete("deploy", Ok());
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("lint"));
  EXPECT_FALSE(h.done());
  h.executor.Complete("lint", Ok());
  ASSERT_TRUE(h.done());
  EXPECT_THAT(h.executor.starts, ElementsAre("build", "test", "deploy", "lint"));
  EXPECT_EQ(h.run().status, RunStatus::kSuccess);
  for (const char* name : {"deploy", "build", "test", "lint"}) {
    EXPECT_EQ(h.Status(name), TaskStatus::kSuccess) << name;
    EXPECT_EQ(h.Result(name).attempts, 1) << name;
    EXPECT_TRUE(h.Result(name).changed) << name;
  }
}

TEST(Scheduler, DependentsWaitEvenWithFreeSlots) {
  Harness h({Task("build"), Task("test", {"build"}), Task("lint"), Task("docs")}, Parallel(8));
  h.Start();
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("build", "lint", "docs"));
  EXPECT_EQ(h.Status("test"), TaskStatus::kPending);
  h.executor.Complete("lint", Ok());
  h.executor.Complete("docs", Ok());
  EXPECT_FALSE(h.executor.Running("test"));
  h.executor.Complete("build", Ok());
  EXPECT_TRUE(h.executor.Running("test"));
  h.executor.Complete("test", Ok());
  EXPECT_TRUE(h.done());
  EXPECT_EQ(h.run().status, RunStatus::kSuccess);
}

TEST(Scheduler, WaitsForEveryDependency) {
  Harness h({Task("a"), Task("b"), Task("c", {"a", "b"})}, Parallel(4));
  h.Start();
  h.executor.Complete("b", Ok());
  EXPECT_FALSE(h.executor.Running("c"));
  h.executor.Complete("a", Ok());
  EXPECT_TRUE(h.executor.Running("c"));
}

TEST(Scheduler, MaxParallelLimitsConcurrentAttempts) {
  Harness h({Task("a"), Task("b"), Task("c"), Task("d"), Task("e")}, Parallel(2));
  h.Start();
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("a", "b"));
  EXPECT_EQ(h.Status("c"), TaskStatus::kPending);
  h.executor.Complete("b", Ok());
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("a", "c"));
  h.executor.Complete("a", Ok());
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("c", "d"));
  h.executor.Complete("d", Ok());
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("c", "e"));
  h.executor.Complete("c", Ok());
  h.executor.Complete("e", Ok());
  EXPECT_TRUE(h.done());
  EXPECT_EQ(h.executor.peak_running, 2u);
  EXPECT_THAT(h.executor.starts, ElementsAre("a", "b", "c", "d", "e"));
}

TEST(Scheduler, DefaultRunsOneTaskAtATime) {
  Harness h({Task("a"), Task("b"), Task("c")});
  h.Start();
  for (const char* name : {"a", "b", "c"}) {
    EXPECT_THAT(h.executor.RunningNames(), ElementsAre(name));
    h.executor.Complete(name, Ok());
  }
  EXPECT_TRUE(h.done());
  EXPECT_EQ(h.executor.peak_running, 1u);
}

TEST(Scheduler, MaxParallelBelowOneMeansOne) {
  Harness h({Task("a"), Task("b")}, Parallel(0));
  h.Start();
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("a"));
  h.executor.Complete("a", Ok());
  h.executor.Complete("b", Ok());
  EXPECT_TRUE(h.done());
}

TEST(Scheduler, AsyncTasksDoNotCountAgainstMaxParallel) {
  Harness h({Async(Task("watch")), Async(Task("serve")), Task("a"), Task("b"),
             Async(Task("after", {"a"}))},
            Parallel(1));
  h.Start();
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("watch", "serve", "a"));
  // An async task ending frees no counted slot.
  h.executor.Complete("watch", Ok());
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("serve", "a"));
  h.executor.Complete("a", Ok());
  // "after" is async and starts alongside "b", which takes the only slot.
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("serve", "b", "after"));
  h.executor.Complete("b", Ok());
  h.executor.Complete("after", Ok());
  EXPECT_FALSE(h.done());
  h.executor.Complete("serve", Ok());
  EXPECT_TRUE(h.done());
  EXPECT_EQ(h.executor.peak_counted, 1u);
  EXPECT_EQ(h.executor.peak_running, 3u);
  EXPECT_EQ(h.run().status, RunStatus::kSuccess);
}

TEST(Scheduler, SlotIsHeldUntilFinishTaskCompletes) {
  Harness h({Task("a"), Task("b")}, Parallel(1));
  h.executor.hold_finish = true;
  h.Start();
  h.executor.Complete("a", Ok());
  EXPECT_TRUE(h.executor.Held("a"));
  EXPECT_EQ(h.Status("a"), TaskStatus::kRunning);  // its hooks still run
  EXPECT_FALSE(h.executor.Running("b"));
  h.executor.Release("a");
  EXPECT_EQ(h.Status("a"), TaskStatus::kSuccess);
  EXPECT_TRUE(h.executor.Running("b"));
}

// ---------------------------------------------------------------------------------------------
// Failure handling

TEST(Scheduler, FailFastLeavesUntouchedTasksNotRunWhileRunningOnesFinish) {
  Harness h({Task("a"), Task("b"), Task("c"), Task("d"), Task("after_a", {"a"})}, Parallel(2));
  h.Start();
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("a", "b"));
  h.executor.Complete("a", Fail("exit status 1"));
  EXPECT_EQ(h.Status("a"), TaskStatus::kFailed);
  EXPECT_EQ(h.Result("a").error, "exit status 1");
  // b keeps running; nothing new starts in the freed slot.
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("b"));
  EXPECT_FALSE(h.done());
  h.executor.Complete("b", Ok("fine"));
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Status("b"), TaskStatus::kSuccess);
  EXPECT_EQ(h.Result("b").message, "fine");
  EXPECT_EQ(h.Status("c"), TaskStatus::kNotRun);
  EXPECT_EQ(h.Status("d"), TaskStatus::kNotRun);
  EXPECT_EQ(h.Status("after_a"), TaskStatus::kSkipped);
  EXPECT_EQ(h.Result("after_a").message, "dependency a failed");
  EXPECT_THAT(h.executor.starts, ElementsAre("a", "b"));
  EXPECT_EQ(h.run().status, RunStatus::kFailed);
  EXPECT_EQ(h.Result("c").attempts, 0);
}

TEST(Scheduler, FailFastStartsNothingWhileFailureHooksRun) {
  Harness h({Task("a"), Task("b"), Task("c")}, Parallel(2));
  h.executor.hold_finish = true;
  h.Start();
  h.executor.Complete("a", Fail("boom"));
  ASSERT_TRUE(h.executor.Held("a"));  // on_failure of a still runs
  h.executor.Complete("b", Ok());
  h.executor.Release("b");
  // a's final attempt failed: no new task may start, even though b freed a slot.
  EXPECT_FALSE(h.executor.Running("c"));
  h.executor.Release("a");
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Status("c"), TaskStatus::kNotRun);
  EXPECT_THAT(h.executor.starts, ElementsAre("a", "b"));
  EXPECT_EQ(h.run().status, RunStatus::kFailed);
}

TEST(Scheduler, FailFastSkipsTransitiveDependents) {
  Harness h({Task("a"), Task("b", {"a"}), Task("c", {"b"}), Task("d")});
  h.Start();
  h.executor.Complete("a", Fail("bad"));
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Status("b"), TaskStatus::kSkipped);
  EXPECT_EQ(h.Result("b").message, "dependency a failed");
  EXPECT_EQ(h.Status("c"), TaskStatus::kSkipped);
  EXPECT_EQ(h.Result("c").message, "dependency b was skipped");
  EXPECT_EQ(h.Status("d"), TaskStatus::kNotRun);
}

TEST(Scheduler, WithoutFailFastIndependentTasksKeepRunning) {
  Harness h({Task("a"), Task("b", {"a"}), Task("c", {"b"}), Task("d"), Task("e", {"d"})},
            Parallel(1, /*fail_fast=*/false));
  h.Start();
  h.executor.Complete("a", Fail("compile error"));
  EXPECT_EQ(h.Status("b"), TaskStatus::kSkipped);
  EXPECT_EQ(h.Result("b").message, "dependency a failed");
  EXPECT_EQ(h.Status("c"), TaskStatus::kSkipped);
  EXPECT_EQ(h.Result("c").message, "dependency b was skipped");
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("d"));
  h.executor.Complete("d", Ok());
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("e"));
  h.executor.Complete("e", Ok());
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Status("d"), TaskStatus::kSuccess);
  EXPECT_EQ(h.Status("e"), TaskStatus::kSuccess);
  EXPECT_EQ(h.run().status, RunStatus::kFailed);
  EXPECT_THAT(h.executor.starts, ElementsAre("a", "d", "e"));
  // Skipped dependents never ran, so no FinishTask hooks for them.
  EXPECT_EQ(h.executor.FinishCount("b"), 0);
  EXPECT_EQ(h.executor.FinishCount("c"), 0);
  EXPECT_EQ(h.Result("b").attempts, 0);
}

TEST(Scheduler, WithoutFailFastDiamondSkipsOnlyTheFailedBranch) {
  Harness h({Task("root"), Task("left", {"root"}), Task("right", {"root"}),
             Task("join", {"left", "right"}), Task("other", {"root"})},
            Parallel(4, /*fail_fast=*/false));
  h.Start();
  h.executor.Complete("root", Ok());
  EXPECT_THAT(h.executor.RunningNames(), ElementsAre("left", "right", "other"));
  h.executor.Complete("right", Fail("nope"));
  EXPECT_EQ(h.Status("join"), TaskStatus::kSkipped);
  EXPECT_EQ(h.Result("join").message, "dependency right failed");
  h.executor.Complete("left", Ok());
  h.executor.Complete("other", Ok());
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.run().status, RunStatus::kFailed);
  EXPECT_EQ(h.Status("left"), TaskStatus::kSuccess);
  EXPECT_EQ(h.Status("other"), TaskStatus::kSuccess);
}

TEST(Scheduler, RunIfSkipCountsAsSatisfied) {
  Harness h({Task("maybe"), Task("next", {"maybe"})});
  h.Start();
  h.executor.Complete("maybe", Skip("run_if returned false"));
  EXPECT_EQ(h.Status("maybe"), TaskStatus::kSkipped);
  EXPECT_EQ(h.Result("maybe").message, "run_if returned false");
  EXPECT_EQ(h.Result("maybe").attempts, 1);
  EXPECT_FALSE(h.Result("maybe").changed);
  EXPECT_EQ(h.executor.FinishCount("maybe"), 1);
  ASSERT_TRUE(h.executor.Running("next"));
  h.executor.Complete("next", Ok());
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Status("next"), TaskStatus::kSuccess);
  EXPECT_EQ(h.run().status, RunStatus::kSuccess);
}

TEST(Scheduler, AbortIfStyleFailureFailsWithoutRetrying) {
  // abort_if true: the executor reports the attempt failed; it is a normal failure.
  Harness h({Task("guarded"), Task("next", {"guarded"})}, Parallel(1, false));
  h.Start();
  h.executor.Complete("guarded", Fail("aborted by abort_if"));
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Status("guarded"), TaskStatus::kFailed);
  EXPECT_EQ(h.Result("guarded").error, "aborted by abort_if");
  EXPECT_EQ(h.Status("next"), TaskStatus::kSkipped);
}

TEST(Scheduler, ChangedFalseGivesUnchanged) {
  Harness h({Task("idempotent"), Task("next", {"idempotent"})});
  h.Start();
  AttemptResult r = Ok("already there", /*changed=*/false);
  r.output_json = R"({"path":"/etc/x"})";
  h.executor.Complete("idempotent", r);
  EXPECT_EQ(h.Status("idempotent"), TaskStatus::kUnchanged);
  EXPECT_FALSE(h.Result("idempotent").changed);
  EXPECT_EQ(h.Result("idempotent").message, "already there");
  EXPECT_EQ(h.Result("idempotent").output_json, R"({"path":"/etc/x"})");
  ASSERT_TRUE(h.executor.Running("next"));  // unchanged satisfies dependents
  h.executor.Complete("next", Ok());
  EXPECT_TRUE(h.done());
  EXPECT_EQ(h.run().status, RunStatus::kSuccess);
  EXPECT_EQ(h.Result("next").output_json, "{}");  // no output table
}

// ---------------------------------------------------------------------------------------------
// Retries

TEST(Scheduler, RetriesMeanNPlusOneAttempts) {
  Harness h({WithRetries(Task("flaky"), 2, 2s), Task("next", {"flaky"})}, Parallel(1, false));
  h.Start();
  h.executor.Complete("flaky", Fail("boom 1"));
  EXPECT_EQ(h.Status("flaky"), TaskStatus::kRunning);  // waiting to retry
  EXPECT_EQ(h.Result("flaky").error, "boom 1");
  EXPECT_FALSE(h.executor.Running("flaky"));
  EXPECT_EQ(h.executor.FinishCount("flaky"), 0);
  h.timers.Advance(2s - 1ns);
  EXPECT_FALSE(h.executor.Running("flaky"));
  h.timers.Advance(1ns);
  ASSERT_TRUE(h.executor.Running("flaky"));
  EXPECT_EQ(h.Result("flaky").attempts, 2);
  h.executor.Complete("flaky", Fail("boom 2"));
  h.timers.Advance(2s);
  h.executor.Complete("flaky", Fail("boom 3"));
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Status("flaky"), TaskStatus::kFailed);
  EXPECT_EQ(h.Result("flaky").attempts, 3);
  EXPECT_EQ(h.Result("flaky").error, "boom 3");
  EXPECT_EQ(h.Status("next"), TaskStatus::kSkipped);
  EXPECT_THAT(h.executor.log, ElementsAre("start flaky#1", "start flaky#2", "start flaky#3",
                                          "finish flaky Failed"));
  // on_failure runs once, after the last attempt.
  EXPECT_EQ(h.executor.FinishCount("flaky"), 1);
  EXPECT_EQ(h.executor.finished["flaky"].attempts, 3);
  EXPECT_THAT(h.progress.log, Contains("retrying flaky 2/3 in 2.0s: boom 1"));
  EXPECT_THAT(h.progress.log, Contains("retrying flaky 3/3 in 2.0s: boom 2"));
  EXPECT_EQ(h.timers.pending(), 0u);
}

TEST(Scheduler, SucceedsOnLaterAttempt) {
  Harness h({WithRetries(Task("flaky"), 3), Task("next", {"flaky"})});
  h.Start();
  h.executor.Complete("flaky", Fail("connection refused"));
  h.timers.Advance(1s);  // default base delay
  h.executor.Complete("flaky", Ok("connected"));
  EXPECT_EQ(h.Status("flaky"), TaskStatus::kSuccess);
  EXPECT_EQ(h.Result("flaky").attempts, 2);
  EXPECT_EQ(h.Result("flaky").message, "connected");
  EXPECT_EQ(h.Result("flaky").error, "");
  EXPECT_TRUE(h.executor.Running("next"));
  h.executor.Complete("next", Ok());
  EXPECT_TRUE(h.done());
  EXPECT_EQ(h.run().status, RunStatus::kSuccess);
  EXPECT_EQ(h.executor.FinishCount("flaky"), 1);
}

TEST(Scheduler, NoRetriesMeansOneAttempt) {
  Harness h({Task("once")});
  h.Start();
  h.executor.Complete("once", Fail("x"));
  EXPECT_TRUE(h.done());
  EXPECT_EQ(h.Result("once").attempts, 1);
  EXPECT_EQ(h.timers.pending(), 0u);
  EXPECT_THAT(h.progress.retry_delays, IsEmpty());
}

TEST(Scheduler, RetryDelaysFollowTheStrategy) {
  struct Case {
    RetryStrategy strategy;
    std::vector<Duration> delays;
  };
  for (const Case& c : {Case{RetryStrategy::kFixed, {3s, 3s, 3s, 3s}},
                        Case{RetryStrategy::kLinear, {3s, 6s, 9s, 12s}},
                        Case{RetryStrategy::kExponential, {3s, 6s, 12s, 24s}}}) {
    Harness h({WithRetries(Task("t"), 4, 3s, c.strategy)});
    h.executor.on_start = [](const std::string&, int) { return Fail("no"); };
    h.Start();
    for (Duration d : c.delays) {
      ASSERT_FALSE(h.done());
      h.timers.Advance(d);
    }
    ASSERT_TRUE(h.done()) << RetryStrategyName(c.strategy);
    EXPECT_EQ(h.Result("t").attempts, 5);
    EXPECT_EQ(h.progress.retry_delays, c.delays) << RetryStrategyName(c.strategy);
  }
}

TEST(Scheduler, RetryDelayUsesTimerRandomnessForJitter) {
  // FakeTimers::Random() is 0.5, i.e. no jitter; the delay equals the policy's nominal delay.
  Harness h({WithRetries(Task("t"), 1, 10s)});
  h.Start();
  h.executor.Complete("t", Fail("x"));
  ASSERT_EQ(h.progress.retry_delays.size(), 1u);
  EXPECT_EQ(h.progress.retry_delays[0], 10s);
  EXPECT_EQ(h.timers.requested().back(), 10s);
}

TEST(Scheduler, RetryingTaskKeepsItsSlot) {
  Harness h({WithRetries(Task("a"), 1, 5s), Task("b")}, Parallel(1));
  h.Start();
  h.executor.Complete("a", Fail("x"));
  EXPECT_FALSE(h.executor.Running("b"));  // a is still Running (waiting to retry)
  h.timers.Advance(5s);
  h.executor.Complete("a", Ok());
  EXPECT_TRUE(h.executor.Running("b"));
}

// ---------------------------------------------------------------------------------------------
// Timeouts and cancellation

TEST(Scheduler, AttemptTimeoutCancelsAndRetries) {
  Harness h({WithRetries(WithTimeout(Task("slow"), 5s), 1, 2s)});
  h.executor.complete_on_cancel = true;
  h.Start();
  h.timers.Advance(5s - 1ms);
  EXPECT_THAT(h.executor.cancels, IsEmpty());
  h.timers.Advance(1ms);
  EXPECT_THAT(h.executor.cancels, ElementsAre("slow: timed out after 5.0s"));
  EXPECT_FALSE(h.executor.Running("slow"));
  EXPECT_EQ(h.Result("slow").error, "timed out after 5.0s");
  EXPECT_THAT(h.progress.log, Contains("retrying slow 2/2 in 2.0s: timed out after 5.0s"));
  h.timers.Advance(2s);
  ASSERT_TRUE(h.executor.Running("slow"));
  // The second attempt gets a fresh timeout; finishing in time cancels it.
  h.timers.Advance(4s);
  h.executor.Complete("slow", Ok());
  h.timers.Advance(1min);
  EXPECT_THAT(h.executor.cancels, ElementsAre("slow: timed out after 5.0s"));
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Status("slow"), TaskStatus::kSuccess);
  EXPECT_EQ(h.Result("slow").attempts, 2);
  EXPECT_EQ(h.Result("slow").duration, 11s);
  EXPECT_EQ(h.timers.pending(), 0u);
}

TEST(Scheduler, TimedOutAttemptFailsEvenIfItReportsSuccess) {
  Harness h({WithTimeout(Task("slow"), 1500ms)});
  h.Start();
  h.timers.Advance(2s);
  EXPECT_THAT(h.executor.cancels, ElementsAre("slow: timed out after 1.5s"));
  ASSERT_TRUE(h.executor.Running("slow"));  // this executor ignores the request for now
  h.executor.Complete("slow", Ok("made it"));
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Status("slow"), TaskStatus::kFailed);
  EXPECT_EQ(h.Result("slow").error, "timed out after 1.5s");
  EXPECT_EQ(h.run().status, RunStatus::kFailed);
}

TEST(Scheduler, TimedOutAttemptsAreCountedAndFinallyFail) {
  Harness h({WithRetries(WithTimeout(Task("hang"), 1s), 2, 1s)});
  h.executor.complete_on_cancel = true;
  h.Start();
  h.timers.Advance(10s);
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Status("hang"), TaskStatus::kFailed);
  EXPECT_EQ(h.Result("hang").attempts, 3);
  EXPECT_EQ(h.executor.cancels.size(), 3u);
  EXPECT_EQ(h.Result("hang").duration, 5s);  // 1 + 1 + 1 + 1 + 1
}

TEST(Scheduler, RunTimeoutStopsEverything) {
  SchedulerOptions options = Parallel(2);
  options.run_timeout = 10s;
  Harness h({Task("long"), WithRetries(Task("flaky"), 5, 30s), Task("later"),
             Task("after_long", {"long"})},
            options);
  h.executor.complete_on_cancel = true;
  h.Start();
  h.executor.Complete("flaky", Fail("try again"));  // now waiting 30 s to retry
  h.timers.Advance(10s);
  ASSERT_TRUE(h.done());
  EXPECT_THAT(h.executor.cancels, ElementsAre("long: workflow timed out after 10.0s"));
  EXPECT_EQ(h.run().status, RunStatus::kFailed);
  EXPECT_EQ(h.run().error, "workflow timed out after 10.0s");
  EXPECT_EQ(h.run().duration, 10s);
  EXPECT_EQ(h.Status("long"), TaskStatus::kFailed);
  EXPECT_EQ(h.Result("long").error, "workflow timed out after 10.0s");
  EXPECT_EQ(h.Status("flaky"), TaskStatus::kFailed);
  EXPECT_EQ(h.Result("flaky").attempts, 1);
  EXPECT_EQ(h.Result("flaky").error, "workflow timed out after 10.0s");
  EXPECT_EQ(h.Status("later"), TaskStatus::kNotRun);
  EXPECT_EQ(h.Status("after_long"), TaskStatus::kSkipped);
  EXPECT_EQ(h.executor.FinishCount("long"), 1);
  EXPECT_EQ(h.executor.FinishCount("flaky"), 1);
  // The retry never happens.
  h.timers.Advance(5min);
  EXPECT_THAT(h.executor.starts, ElementsAre("long", "flaky"));
  EXPECT_EQ(h.timers.pending(), 0u);
}

TEST(Scheduler, RunTimeoutWaitsForCancelledAttemptsToReport) {
  SchedulerOptions options;
  options.run_timeout = 1s;
  Harness h({WithRetries(Task("a"), 3), Task("b")}, options);
  h.Start();
  h.timers.Advance(1s);
  EXPECT_THAT(h.executor.cancels, ElementsAre("a: workflow timed out after 1.0s"));
  EXPECT_FALSE(h.done());  // the attempt has not reported back yet
  h.timers.Advance(3s);
  h.executor.Complete("a", Fail("killed by SIGTERM"));
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Status("a"), TaskStatus::kFailed);
  EXPECT_EQ(h.Result("a").attempts, 1);  // no retry after the run timed out
  EXPECT_EQ(h.Status("b"), TaskStatus::kNotRun);
  EXPECT_EQ(h.run().status, RunStatus::kFailed);
  EXPECT_EQ(h.run().duration, 4s);
}

TEST(Scheduler, RunTimeoutTimerIsCancelledWhenRunEnds) {
  SchedulerOptions options;
  options.run_timeout = 1h;
  Harness h({Task("a")}, options);
  h.Start();
  h.executor.Complete("a", Ok());
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.timers.pending(), 0u);
  EXPECT_EQ(h.run().status, RunStatus::kSuccess);
  EXPECT_EQ(h.run().error, "");
}

TEST(Scheduler, CancelGivesCancelledAndNoRetries) {
  Harness h({WithRetries(Task("a"), 3), WithRetries(Task("b"), 3), Task("c"), Task("d", {"a"})},
            Parallel(2));
  h.executor.complete_on_cancel = true;
  h.Start();
  h.timers.Advance(2s);
  h.scheduler->Cancel("interrupted");
  ASSERT_TRUE(h.done());
  EXPECT_THAT(h.executor.cancels, ElementsAre("a: interrupted", "b: interrupted"));
  EXPECT_EQ(h.run().status, RunStatus::kCancelled);
  for (const char* name : {"a", "b"}) {
    EXPECT_EQ(h.Status(name), TaskStatus::kFailed) << name;
    EXPECT_EQ(h.Result(name).attempts, 1) << name;
    EXPECT_EQ(h.Result(name).error, "interrupted") << name;
    EXPECT_EQ(h.Result(name).duration, 2s) << name;
  }
  EXPECT_EQ(h.Status("c"), TaskStatus::kNotRun);
  EXPECT_EQ(h.Status("d"), TaskStatus::kSkipped);
  EXPECT_EQ(h.timers.pending(), 0u);
  h.timers.Advance(1h);
  EXPECT_THAT(h.executor.starts, ElementsAre("a", "b"));
}

TEST(Scheduler, CancelDuringRetryWaitEndsTheTask) {
  Harness h({WithRetries(Task("a"), 3, 10s), Task("b")});
  h.Start();
  h.executor.Complete("a", Fail("first"));
  EXPECT_EQ(h.timers.pending(), 1u);
  h.scheduler->Cancel("interrupted");
  ASSERT_TRUE(h.done());
  EXPECT_THAT(h.executor.cancels, IsEmpty());  // nothing was running
  EXPECT_EQ(h.Status("a"), TaskStatus::kFailed);
  EXPECT_EQ(h.Result("a").error, "interrupted");
  EXPECT_EQ(h.executor.FinishCount("a"), 1);
  EXPECT_EQ(h.Status("b"), TaskStatus::kNotRun);
  EXPECT_EQ(h.run().status, RunStatus::kCancelled);
  EXPECT_EQ(h.timers.pending(), 0u);
  h.timers.Advance(1min);
  EXPECT_THAT(h.executor.starts, ElementsAre("a"));
}

TEST(Scheduler, CancelWaitsForRunningAttemptsToReport) {
  Harness h({Task("a"), Task("b")});
  h.Start();
  h.scheduler->Cancel("interrupted");
  EXPECT_FALSE(h.done());
  h.executor.Complete("a", Ok());  // finished anyway, but it was asked to stop
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Status("a"), TaskStatus::kFailed);
  EXPECT_EQ(h.Result("a").error, "interrupted");
  EXPECT_EQ(h.Status("b"), TaskStatus::kNotRun);
  EXPECT_EQ(h.run().status, RunStatus::kCancelled);
}

TEST(Scheduler, CancelAfterTheRunIsDoneChangesNothing) {
  Harness h({Task("a")});
  h.Start();
  h.executor.Complete("a", Ok());
  ASSERT_TRUE(h.done());
  h.scheduler->Cancel("late");
  EXPECT_EQ(h.run().status, RunStatus::kSuccess);
  EXPECT_THAT(h.executor.cancels, IsEmpty());
}

// Ctrl-C can arrive before the scheduler starts (during the workflow's on_start hook).
TEST(Scheduler, CancelBeforeStartRunsNothing) {
  SchedulerOptions o;
  o.run_timeout = 10s;
  Harness h({Task("a"), Task("b", {"a"})}, o);
  h.scheduler = std::make_unique<Scheduler>(h.plan, h.options, h.executor, h.timers, h.progress);
  h.timers.Advance(1s);
  h.scheduler->Cancel("interrupted");
  h.scheduler->Start();
  ASSERT_TRUE(h.done());
  EXPECT_THAT(h.executor.starts, IsEmpty());
  EXPECT_EQ(h.Status("a"), TaskStatus::kNotRun);
  EXPECT_EQ(h.Status("b"), TaskStatus::kNotRun);
  EXPECT_EQ(h.run().status, RunStatus::kCancelled);
  EXPECT_EQ(h.run().duration, 0s);
  EXPECT_EQ(h.timers.pending(), 0u);  // no run timer left behind to fire into a dead scheduler
}

TEST(Scheduler, CancelIsCancelledEvenWithoutFailures) {
  Harness h({Task("a")});
  h.executor.complete_on_cancel = true;
  h.Start();
  h.scheduler->Cancel("interrupted");
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.run().status, RunStatus::kCancelled);
}

// ---------------------------------------------------------------------------------------------
// Synchronous executors, hooks, selection, bookkeeping

TEST(Scheduler, SynchronousExecutorRunsWholeDag) {
  Harness h(
      {Task("fetch"), Task("build", {"fetch"}), Task("test", {"build"}), Task("lint", {"fetch"}),
       Task("package", {"build", "lint"}), Task("deploy", {"package", "test"}), Task("docs")},
      Parallel(3));
  h.executor.on_start = [](const std::string& name, int) { return Ok(name + " ok"); };
  h.Start();
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.run().status, RunStatus::kSuccess);
  EXPECT_THAT(h.executor.starts,
              ElementsAre("fetch", "build", "test", "lint", "package", "deploy", "docs"));
  for (size_t i = 0; i < h.plan.size(); ++i) {
    const std::string& name = h.plan.task(i).name;
    EXPECT_EQ(h.Status(name), TaskStatus::kSuccess) << name;
    EXPECT_EQ(h.Result(name).message, name + " ok");
    EXPECT_EQ(h.executor.FinishCount(name), 1) << name;
  }
  // Each FinishTask comes right after its attempt and before anything else starts.
  EXPECT_THAT(
      h.executor.log,
      ElementsAre("start fetch#1", "finish fetch Success", "start build#1", "finish build Success",
                  "start test#1", "finish test Success", "start lint#1", "finish lint Success",
                  "start package#1", "finish package Success", "start deploy#1",
                  "finish deploy Success", "start docs#1", "finish docs Success"));
}

TEST(Scheduler, SynchronousExecutorWithFailuresAndRetries) {
  Harness h({WithRetries(Task("flaky"), 2), Task("bad"), Task("after_bad", {"bad"}),
             Task("after_flaky", {"flaky"}), Task("skipper"), Task("after_skipper", {"skipper"})},
            Parallel(2, /*fail_fast=*/false));
  h.executor.on_start = [](const std::string& name, int attempt) -> std::optional<AttemptResult> {
    if (name == "flaky") return attempt < 3 ? Fail("flake") : Ok();
    if (name == "bad") return Fail("broken");
    if (name == "skipper") return Skip("run_if false");
    return Ok();
  };
  h.Start();
  EXPECT_FALSE(h.done());  // flaky waits for its retry timer
  h.timers.Advance(1s);
  h.timers.Advance(1s);
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Status("flaky"), TaskStatus::kSuccess);
  EXPECT_EQ(h.Result("flaky").attempts, 3);
  EXPECT_EQ(h.Status("bad"), TaskStatus::kFailed);
  EXPECT_EQ(h.Status("after_bad"), TaskStatus::kSkipped);
  EXPECT_EQ(h.Result("after_bad").message, "dependency bad failed");
  EXPECT_EQ(h.Status("after_flaky"), TaskStatus::kSuccess);
  EXPECT_EQ(h.Status("skipper"), TaskStatus::kSkipped);
  EXPECT_EQ(h.Status("after_skipper"), TaskStatus::kSuccess);
  EXPECT_EQ(h.run().status, RunStatus::kFailed);
}

TEST(Scheduler, SynchronousCancelInsideTimeout) {
  Harness h({WithTimeout(Task("a"), 1s), Task("b", {"a"}), Task("c")}, Parallel(1, false));
  h.executor.complete_on_cancel = true;
  h.executor.on_start = [](const std::string& name, int) -> std::optional<AttemptResult> {
    if (name == "a") return std::nullopt;  // hangs until cancelled
    return Ok();
  };
  h.Start();
  h.timers.Advance(1s);
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Status("a"), TaskStatus::kFailed);
  EXPECT_EQ(h.Status("b"), TaskStatus::kSkipped);
  EXPECT_EQ(h.Status("c"), TaskStatus::kSuccess);
  EXPECT_THAT(h.executor.log, ElementsAre("start a#1", "cancel a: timed out after 1.0s",
                                          "finish a Failed", "start c#1", "finish c Success"));
}

TEST(Scheduler, SynchronousCancelOfEverything) {
  Harness h({Task("a"), Task("b"), Task("c")}, Parallel(2));
  h.executor.complete_on_cancel = true;
  h.Start();
  h.scheduler->Cancel("stop");
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.run().status, RunStatus::kCancelled);
  EXPECT_EQ(h.Status("a"), TaskStatus::kFailed);
  EXPECT_EQ(h.Status("b"), TaskStatus::kFailed);
  EXPECT_EQ(h.Status("c"), TaskStatus::kNotRun);
}

TEST(Scheduler, FinishTaskRunsOncePerTaskThatRanBeforeDependentsStart) {
  Harness h({Task("a"), Task("b", {"a"}), Task("c", {"b"})}, Parallel(4, false));
  h.executor.hold_finish = true;
  h.Start();
  h.executor.Complete("a", Ok("done a"));
  ASSERT_TRUE(h.executor.Held("a"));
  EXPECT_EQ(h.executor.finished["a"].status, TaskStatus::kSuccess);
  EXPECT_EQ(h.executor.finished["a"].message, "done a");
  EXPECT_EQ(h.executor.finished["a"].attempts, 1);
  EXPECT_FALSE(h.executor.Running("b"));
  EXPECT_FALSE(h.done());
  h.executor.Release("a");
  ASSERT_TRUE(h.executor.Running("b"));
  h.executor.Complete("b", Fail("b broke"));
  EXPECT_EQ(h.executor.finished["b"].status, TaskStatus::kFailed);
  EXPECT_EQ(h.executor.finished["b"].error, "b broke");
  EXPECT_EQ(h.Status("c"), TaskStatus::kPending);  // decided once b's hooks are done
  h.executor.Release("b");
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Status("c"), TaskStatus::kSkipped);
  EXPECT_EQ(h.executor.FinishCount("a"), 1);
  EXPECT_EQ(h.executor.FinishCount("b"), 1);
  EXPECT_EQ(h.executor.FinishCount("c"), 0);
  EXPECT_THAT(h.executor.log,
              ElementsAre("start a#1", "finish a Success", "start b#1", "finish b Failed"));
}

TEST(Scheduler, SelectedSubsetLeavesOthersNotRun) {
  Plan plan = BuildPlan({Task("fetch"), Task("build", {"fetch"}), Task("test", {"build"}),
                         Task("lint"), Task("deploy", {"test"})});
  ASSERT_TRUE(plan.Select({"build"}).ok());
  FakeExecutor executor(plan);
  FakeTimers timers;
  RecordingProgress progress(plan);
  executor.on_start = [](const std::string&, int) { return Ok(); };
  Scheduler scheduler(plan, Parallel(4), executor, timers, progress);
  scheduler.Start();
  ASSERT_TRUE(scheduler.done());
  EXPECT_EQ(scheduler.result().status, RunStatus::kSuccess);
  EXPECT_THAT(executor.starts, ElementsAre("fetch", "build"));
  const auto& tasks = scheduler.result().tasks;
  EXPECT_EQ(tasks[0].status, TaskStatus::kSuccess);
  EXPECT_EQ(tasks[1].status, TaskStatus::kSuccess);
  EXPECT_EQ(tasks[2].status, TaskStatus::kNotRun);
  EXPECT_EQ(tasks[3].status, TaskStatus::kNotRun);
  EXPECT_EQ(tasks[4].status, TaskStatus::kNotRun);
  EXPECT_EQ(tasks[2].attempts, 0);
  EXPECT_EQ(executor.FinishCount("test"), 0);
  EXPECT_EQ(executor.FinishCount("lint"), 0);
}

TEST(Scheduler, ReportsProgress) {
  Harness h({WithRetries(Task("a"), 1), Task("b", {"a"}), Task("c")}, Parallel(1, false));
  h.Start();
  h.executor.Complete("a", Fail("oops"));
  h.timers.Advance(1s);
  h.executor.Complete("a", Fail("oops again"));
  h.executor.Complete("c", Ok());
  ASSERT_TRUE(h.done());
  EXPECT_THAT(h.progress.log,
              ElementsAre("started a", "retrying a 2/2 in 1.0s: oops", "finished a Failed",
                          "finished b Skipped", "started c", "finished c Success"));
}

TEST(Scheduler, MeasuresDurationsWithTheTimersClock) {
  Harness h({Task("a"), Task("b", {"a"})});
  h.Start();
  h.timers.Advance(3s);
  h.executor.Complete("a", Ok());
  h.timers.Advance(250ms);
  h.executor.Complete("b", Ok());
  ASSERT_TRUE(h.done());
  EXPECT_EQ(h.Result("a").duration, 3s);
  EXPECT_EQ(h.Result("b").duration, 250ms);
  EXPECT_EQ(h.run().duration, 3250ms);
}

TEST(Scheduler, StatusNames) {
  EXPECT_EQ(TaskStatusName(TaskStatus::kPending), "Pending");
  EXPECT_EQ(TaskStatusName(TaskStatus::kRunning), "Running");
  EXPECT_EQ(TaskStatusName(TaskStatus::kSuccess), "Success");
  EXPECT_EQ(TaskStatusName(TaskStatus::kFailed), "Failed");
  EXPECT_EQ(TaskStatusName(TaskStatus::kSkipped), "Skipped");
  EXPECT_EQ(TaskStatusName(TaskStatus::kUnchanged), "Unchanged");
  EXPECT_EQ(TaskStatusName(TaskStatus::kNotRun), "NotRun");
  EXPECT_EQ(RunStatusName(RunStatus::kSuccess), "success");
  EXPECT_EQ(RunStatusName(RunStatus::kFailed), "failed");
  EXPECT_EQ(RunStatusName(RunStatus::kCancelled), "cancelled");
}

}  // namespace
}  // namespace sloth

namespace sloth {
TEST(Scheduler, AFinalFailureIsNotRetried) {
  WorkflowSpec wf;
  wf.name = "w";
  TaskSpec t;
  t.name = "aborts";
  t.retry.retries = 3;
  wf.tasks.push_back(t);
  auto plan = Plan::Build(wf);
  ASSERT_TRUE(plan.ok());
  struct OnceExecutor : Executor {
    int attempts = 0;
    void StartAttempt(size_t, int, std::function<void(AttemptResult)> done) override {
      ++attempts;
      AttemptResult r;
      r.outcome = AttemptResult::Outcome::kFailed;
      r.message = "aborted";
      r.final = true;
      done(r);
    }
    void CancelAttempt(size_t, const std::string&) override {}
    void FinishTask(size_t, const TaskResult&, std::function<void()> done) override { done(); }
  } executor;
  struct NoTimers : Timers {
    uint64_t After(Duration, std::function<void()>) override { return 1; }
    void Cancel(uint64_t) override {}
    Clock::time_point Now() const override { return {}; }
    double Random() override { return 0.5; }
  } timers;
  Progress progress;
  Scheduler scheduler(*plan, {}, executor, timers, progress);
  scheduler.Start();
  ASSERT_TRUE(scheduler.done());
  EXPECT_EQ(executor.attempts, 1);
  EXPECT_EQ(scheduler.result().tasks[0].status, TaskStatus::kFailed);
}
}  // namespace sloth
