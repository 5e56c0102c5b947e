// Runtime: one lua_State per run, with the loop glue. It owns the state, loads the prelude and
// the modules, runs coroutines on the loop, and gives modules one way to wait (Await).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/duration.h"
#include "base/redact.h"
#include "base/status.h"
#include "exec/loop.h"
#include "exec/process.h"
#include "exec/thread_pool.h"

struct lua_State;
struct lua_Debug;

namespace sloth {

class StateStore;
class StackStore;

enum class LogLevel { kDebug, kInfo, kWarn, kError, kSuccess, kOutput };

// Where log lines and command output go: the CLI's renderer.
class LogSink {
 public:
  virtual ~LogSink() = default;
  // `task` is empty for lines logged outside any task.
  virtual void Log(const std::string& task, LogLevel level, std::string_view text) = 0;
};

// What a coroutine belongs to: the task attempt it works for. Goroutines share their task's.
struct TaskContext {
  std::string name;
  std::string workdir;  // absolute
  size_t index = 0;
  int attempt = 0;
  bool always_run = false;  // :check_mode(false)
  std::string user;         // :user("name"): commands run as this user
  std::optional<Clock::time_point> deadline;
  std::string deadline_reason;
  std::string cancel_reason;     // set when the attempt must stop
  std::vector<pid_t> processes;  // running child processes started for this task
  std::vector<std::pair<std::string, std::string>> env;  // :env({...}) for its commands
};

// The stack and run a workflow runs under, for the `stack` module. `run` sets it around each
// workflow; without it (validate, list) the stack functions raise an error.
struct RunScope {
  std::string stack;
  std::string stack_id;
  std::string run_id;
  StackStore* stacks = nullptr;
  // Every register_resource of the run, one JSON object each ({type, name, status, diff?}):
  // the enhanced view's summary, and in check mode what `run --check -o json` and `stack drift`
  // report as changes.
  std::vector<std::string>* resources = nullptr;
};

struct RuntimeOptions {
  std::string start_dir;  // absolute; the default workdir
  bool check_mode = false;
  bool show_diff = false;  // `run --diff`: modules log the unified diff of each file change
  size_t memory_limit = size_t{2} << 30;
  Duration load_timeout = std::chrono::seconds(30);  // top-level code of a workflow file
  // Opens the store behind the `state` module on its first use, so a run that never uses state
  // never opens the database. Unset: the `state` functions raise an error.
  std::function<Result<StateStore*>()> state_store;
  // event.dispatch(type, data_json): persists an event and returns its id. Called on the loop
  // thread with the calling coroutine. Unset: event.dispatch raises an error.
  std::function<Result<std::string>(lua_State* L, const std::string& type,
                                    const std::string& data_json)>
      dispatch_event;
};

class Runtime {
 public:
  // Results a finished wait pushes onto the waiting thread's stack; returns how many.
  using Pusher = std::function<int(lua_State*)>;
  using Done = std::function<void(Pusher)>;

  Runtime(Loop& loop, RuntimeOptions options, LogSink* log);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  static Runtime& From(lua_State* L);

  lua_State* state() const { return L_; }
  Loop& loop() { return loop_; }
  Processes& processes() { return processes_; }
  ThreadPool& pool() { return pool_; }
  const RuntimeOptions& options() const { return options_; }
  // Where modules send log lines: the sink given to the constructor behind a filter that
  // replaces secret values (redactor()) with ***, so no line reaches it unredacted.
  LogSink* log() const { return log_; }
  // The secret values of this run (the secret module adds them), for everything else that
  // leaves the run: task results, run records, rendered output.
  Redactor& redactor() { return redactor_; }
  const Redactor& redactor() const { return redactor_; }
  std::string Redact(std::string_view text) const { return redactor_.Apply(text); }

  // The one way a module function waits. `start(done)` begins the work; `done(pusher)` must be
  // called once, on the loop thread. Inside one of our coroutines the coroutine yields until
  // then; anywhere else the loop is driven until the work completes. `cancel` (optional) is
  // called if the task is cancelled while waiting. Returns lua_yieldk's or the pusher's result.
  int Await(lua_State* L, std::function<void(Done)> start, std::function<void()> cancel = {});

  // Runs a blocking function on the pool; `finish` then pushes its results on the loop thread.
  template <typename T>
  int AwaitBlocking(lua_State* L, std::function<T()> work, std::function<int(lua_State*, T&)> push);

  // Coroutines driven by the loop. `on_finish(co, status)` runs when the coroutine returns or
  // raises; the values are on co's stack.
  using Finished = std::function<void(lua_State* co, int status)>;
  // Starts function + nargs on top of L's stack as a new coroutine bound to `task`.
  lua_State* Spawn(int nargs, TaskContext* task, Finished on_finish);
  // Stops what `task`'s coroutines wait for and makes them raise `reason`.
  void CancelTask(TaskContext* task, const std::string& reason);
  // Called when a task's main coroutine has finished: goroutines it left behind are cancelled
  // (their commands killed) and detached from `task`, so the task's context can be reused.
  void EndTask(TaskContext* task);
  static constexpr char kTaskEnded[] = "the task this goroutine belongs to has ended";
  TaskContext* TaskOf(lua_State* L) const;

  // When the loop runs dry while something still waits: what the parked goroutines wait on
  // (set by the goroutine module). Non-empty means a deadlock, reported as StallMessage().
  void SetStallReport(std::function<std::string()> report) { stall_report_ = std::move(report); }
  void SetRunScope(const RunScope* scope) { run_scope_ = scope; }
  // Connects event.dispatch once the process has opened its event bus.
  void SetEventDispatcher(decltype(RuntimeOptions::dispatch_event) fn) {
    options_.dispatch_event = std::move(fn);
  }
  const RunScope* run_scope() const { return run_scope_; }
  // "all goroutines are asleep - deadlock (...)" when goroutines are parked, else `fallback`.
  std::string StallMessage(const std::string& fallback) const;

  // Loads and runs a workflow file as text; errors come back as "FILE:LINE: message".
  // `nresults`: how many of the chunk's return values to leave on the stack (on success).
  Status RunFile(const std::string& path, int nresults = 0);
  Status RunString(const std::string& code, const std::string& chunkname, int nresults = 0);

  // Absolute path for a module argument: relative to the calling task's workdir.
  std::string ResolvePath(lua_State* L, const std::string& path) const;
  // The environment a child process of this task gets (with the workflow's extra variables).
  std::vector<std::string> ChildEnvironment(lua_State* L) const;
  void SetExtraEnvironment(std::vector<std::pair<std::string, std::string>> env) {
    extra_env_ = std::move(env);
  }
  bool CheckMode(lua_State* L) const;
  void Log(lua_State* L, LogLevel level, std::string_view text);

  // Kills every child process still running and waits until they are reaped, so nothing
  // started by a finished workflow outlives it (and no callback outlives its task).
  void KillProcesses();

  // After loading: reading an undefined global raises an error naming it.
  void EnableStrictGlobals();

 private:
  struct Thread;
  void Resume(lua_State* co, int nargs);
  void Finish(lua_State* co, int status);
  static int Continue(lua_State* L, int status, intptr_t ctx);
  static void Hook(lua_State* L, ::lua_Debug* ar);
  void OpenLibraries();

  Loop& loop_;
  RuntimeOptions options_;
  Redactor redactor_;
  std::unique_ptr<LogSink> redacting_log_;
  LogSink* log_ = nullptr;  // redacting_log_, or null when the runtime has no sink
  Processes processes_;
  ThreadPool pool_;
  lua_State* L_ = nullptr;
  size_t memory_used_ = 0;
  std::optional<Clock::time_point> load_deadline_;
  std::vector<std::pair<std::string, std::string>> extra_env_;
  std::function<std::string()> stall_report_;
  const RunScope* run_scope_ = nullptr;
  TaskContext ended_;  // the context of goroutines whose task has ended (always cancelled)
  std::unordered_map<lua_State*, std::unique_ptr<Thread>> threads_;
  // The one of our coroutines being resumed (a user's own coroutine runs inside it and works
  // for its task).
  Thread* running_ = nullptr;
  friend void* LuaAlloc(void*, void*, size_t, size_t);
};

template <typename T>
int Runtime::AwaitBlocking(lua_State* L, std::function<T()> work,
                           std::function<int(lua_State*, T&)> push) {
  return Await(L, [this, work = std::move(work), push = std::move(push)](Done done) {
    auto result = std::make_shared<T>();
    pool_.Submit([work, result] { *result = work(); },
                 [done, push, result] {
                   done([push, result](lua_State* co) { return push(co, *result); });
                 });
  });
}

}  // namespace sloth
