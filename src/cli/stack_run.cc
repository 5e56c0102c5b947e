#include "cli/stack_run.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "base/strings.h"

namespace sloth {
namespace {

constexpr int64_t kLeaseMs = 30000;
constexpr Duration kRenewEvery = std::chrono::seconds(10);
constexpr Duration kLockPoll = std::chrono::milliseconds(200);

void Warn(const std::string& what, const Status& s) {
  std::fprintf(stderr, "warning: %s: %s\n", what.c_str(), s.message().c_str());
}

}  // namespace

std::string StackLockName(const std::string& stack) { return "stack:" + stack; }

std::string HostName() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host;
}

std::string UserAtHost() {
  const char* user = std::getenv("USER");
  std::string name = user && *user ? user : "";
  if (name.empty())
    if (const passwd* pw = getpwuid(geteuid())) name = pw->pw_name;
  return name + "@" + HostName();
}

std::string WhoAmI() { return UserAtHost() + " pid " + std::to_string(getpid()); }

std::string FormatUnixMs(int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text;
}

StackRun::StackRun(Loop& loop, StateStore& locks, StackStore& stacks, RunStore& runs,
                   const Plan& plan, Progress& next, Redact redact)
    : loop_(loop),
      locks_(locks),
      stacks_(stacks),
      runs_(runs),
      plan_(plan),
      next_(next),
      redact_(std::move(redact)) {}

StackRun::~StackRun() { Release(); }

Status StackRun::Lock(const std::string& stack, Duration timeout, StackLocked* locked,
                      const std::function<bool()>& stop_waiting) {
  lock_name_ = StackLockName(stack);
  LockOwner owner{WhoAmI(), HostName(), getpid()};
  Clock::time_point give_up = Clock::now() + timeout;
  for (;;) {
    Result<LockAttempt> attempt = locks_.TryLock(lock_name_, owner, kLeaseMs);
    if (!attempt.ok()) return attempt.status();
    if (attempt->acquired) {
      token_ = attempt->token;
      RenewSoon();
      return Status::Ok();
    }
    if (Clock::now() >= give_up || stop_waiting()) {
      locked->message = "stack " + stack + " is locked by " + attempt->holder.owner + " since " +
                        FormatUnixMs(attempt->holder.acquired_at_ms);
      return Status::Error(locked->message);
    }
    // Poll on a timer: the loop stays responsive (Ctrl-C) and the CPU idle.
    bool woke = false;
    uint64_t timer = loop_.After(kLockPoll, [&woke] { woke = true; });
    loop_.RunUntil([&] { return woke || stop_waiting(); });
    loop_.Cancel(timer);
  }
}

void StackRun::RenewSoon() {
  renew_timer_ = loop_.AfterInBackground(kRenewEvery, [this] {
    renew_timer_ = 0;
    Result<bool> renewed = locks_.RenewLock(lock_name_, token_, kLeaseMs);
    if (!renewed.ok())
      Warn("cannot renew the lock of stack " + stack_.name, renewed.status());
    else if (!*renewed)
      std::fprintf(stderr, "warning: lost the lock of stack %s\n", stack_.name.c_str());
    if (renewed.ok() && !*renewed) {
      token_ = 0;
      return;
    }
    RenewSoon();
  });
}

void StackRun::Release() {
  if (renew_timer_) loop_.Cancel(renew_timer_);
  renew_timer_ = 0;
  if (token_ == 0) return;
  Result<bool> released = locks_.Unlock(lock_name_, token_);
  if (!released.ok()) Warn("cannot release the lock of stack " + stack_.name, released.status());
  token_ = 0;
}

Status StackRun::Begin(const StackInfo& stack, const RunRecord& record, Duration lock_timeout,
                       StackLocked* locked, const std::function<bool()>& stop_waiting) {
  stack_ = stack;
  record_ = record;
  if (Status s = Lock(stack.name, lock_timeout, locked, stop_waiting); !s.ok()) return s;
  record_.started_at_ms = NowUnixMs();  // the run starts once it holds the lock
  return runs_.BeginRun(record_);
}

void StackRun::TaskFinished(size_t index, const TaskResult& result) {
  TaskRecord t;
  t.name = plan_.task(index).name;
  t.status = std::string(TaskStatusName(result.status));
  t.attempts = result.attempts;
  t.duration_ms = ToMillis(result.duration);
  t.changed = result.changed;
  t.message = redact_(result.message);
  t.error = redact_(result.error);
  t.output_json = redact_(result.output_json);
  t.agent = Join(result.agents, ",");
  if (Status s = runs_.RecordTask(record_.id, seq_++, t); !s.ok())
    Warn("cannot record task " + t.name, s);
  next_.TaskFinished(index, result);
}

Status StackRun::Finish(const WorkflowOutcome& outcome) {
  std::string status(RunStatusName(outcome.result.status));
  std::string outputs = redact_(outcome.outputs_json);
  Status s = runs_.FinishRun(record_.id, status, redact_(outcome.result.error), outputs);
  if (s.ok() && !record_.check_mode) {
    if (outcome.result.status == RunStatus::kSuccess) s = stacks_.MergeOutputs(stack_.id, outputs);
    if (s.ok()) s = stacks_.SetStackStatus(stack_.id, status);
  }
  Release();
  return s;
}

}  // namespace sloth
