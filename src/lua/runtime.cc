// The Lua runtime: state, allocator limit, coroutines on the loop, the Await helper, hooks.
#include "lua/runtime.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include <lua.hpp>

#include "lua/module.h"
#include "lua/prelude.h"

extern char** environ;

namespace sloth {

namespace {

constexpr int kHookInstructions = 10000;
constexpr Duration kTimeSlice = std::chrono::milliseconds(20);

bool SignalPending() {
  sigset_t pending;
  sigpending(&pending);
  return sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM);
}

// Passes log lines on with the secret values replaced: the one place every log line crosses.
class RedactingSink : public LogSink {
 public:
  RedactingSink(LogSink* next, const Redactor& redactor) : next_(next), redactor_(redactor) {}
  void Log(const std::string& task, LogLevel level, std::string_view text) override {
    if (redactor_.empty()) return next_->Log(task, level, text);
    next_->Log(task, level, redactor_.Apply(text));
  }

 private:
  LogSink* next_;
  const Redactor& redactor_;
};

}  // namespace

struct Runtime::Thread {
  int ref = LUA_NOREF;  // keeps the coroutine alive in the registry
  TaskContext* task = nullptr;
  Finished on_finish;
  struct Wait {
    bool done = false;
    bool yielded = false;
    Pusher pusher;
    std::function<void()> cancel;
  };
  std::shared_ptr<Wait> wait;
  Clock::time_point resumed_at;
};

void* LuaAlloc(void* ud, void* ptr, size_t old_size, size_t new_size) {
  auto* rt = static_cast<Runtime*>(ud);
  if (!ptr) old_size = 0;
  if (new_size == 0) {
    rt->memory_used_ -= old_size;
    std::free(ptr);
    return nullptr;
  }
  if (new_size > old_size && rt->memory_used_ + (new_size - old_size) > rt->options_.memory_limit)
    return nullptr;  // Lua raises "not enough memory"
  void* grown = std::realloc(ptr, new_size);
  if (grown) rt->memory_used_ = rt->memory_used_ - old_size + new_size;
  return grown;
}

Runtime::Runtime(Loop& loop, RuntimeOptions options, LogSink* log)
    : loop_(loop), options_(std::move(options)), processes_(loop), pool_(loop, 8) {
  if (log) {
    redacting_log_ = std::make_unique<RedactingSink>(log, redactor_);
    log_ = redacting_log_.get();
  }
  L_ = lua_newstate(LuaAlloc, this);
  *static_cast<Runtime**>(lua_getextraspace(L_)) = this;  // copied into every new thread
  // Generational GC: a run keeps a large, long-lived set of definitions and makes many
  // short-lived tables per task; incremental mode would re-traverse the long-lived set.
  lua_gc(L_, LUA_GCGEN, 0, 0);
  OpenLibraries();
}

Runtime::~Runtime() {
  processes_.KillAll();
  lua_close(L_);
}

Runtime& Runtime::From(lua_State* L) { return **static_cast<Runtime**>(lua_getextraspace(L)); }

void Runtime::OpenLibraries() {
  luaL_openlibs(L_);
  OpenModules(L_);
  LoadPrelude(L_);
}

int Runtime::Await(lua_State* L, std::function<void(Done)> start, std::function<void()> cancel) {
  auto wait = std::make_shared<Thread::Wait>();
  wait->cancel = std::move(cancel);
  auto found = threads_.find(L);
  Thread* thread = found == threads_.end() ? nullptr : found->second.get();
  TaskContext* task = TaskOf(L);
  // A cancelled attempt that caught the error (pcall) must not start new work and wait for it.
  if (task && !task->cancel_reason.empty()) return luaL_error(L, "%s", task->cancel_reason.c_str());
  start([this, wait, L](Pusher pusher) {
    if (wait->done) return;
    wait->done = true;
    wait->pusher = std::move(pusher);
    if (wait->yielded) loop_.Post([this, L] { Resume(L, 0); });
  });
  if (wait->done) return wait->pusher(L);
  if (thread && lua_isyieldable(L)) {
    wait->yielded = true;
    thread->wait = wait;
    return lua_yieldk(L, 0, 0, Continue);
  }
  // Not one of our coroutines (top-level code, or a user's own coroutine): drive the loop here.
  loop_.RunUntil([&] { return wait->done || (task && !task->cancel_reason.empty()); });
  if (!wait->done) {
    // Before the cancel below, which takes a parked goroutine's wait out of the report.
    std::string stalled =
        StallMessage("internal error: the wait can never finish (nothing left to wait for)");
    wait->done = true;  // a late completion is ignored
    if (wait->cancel) wait->cancel();
    if (task && !task->cancel_reason.empty())
      return luaL_error(L, "%s", task->cancel_reason.c_str());
    return luaL_error(L, "%s", stalled.c_str());
  }
  return wait->pusher(L);
}

int Runtime::Continue(lua_State* L, int status, intptr_t ctx) {
  Runtime& rt = From(L);
  Thread* thread = rt.threads_.at(L).get();
  std::shared_ptr<Thread::Wait> wait = std::move(thread->wait);
  if (thread->task && !thread->task->cancel_reason.empty())
    return luaL_error(L, "%s", thread->task->cancel_reason.c_str());
  return wait->pusher(L);
}

lua_State* Runtime::Spawn(int nargs, TaskContext* task, Finished on_finish) {
  lua_State* co = lua_newthread(L_);  // fn args... co
  lua_insert(L_, -(nargs + 2));       // co fn args...
  lua_xmove(L_, co, nargs + 1);       // co
  auto thread = std::make_unique<Thread>();
  thread->ref = luaL_ref(L_, LUA_REGISTRYINDEX);  // (empty)
  thread->task = task;
  thread->on_finish = std::move(on_finish);
  threads_[co] = std::move(thread);
  lua_sethook(co, Hook, LUA_MASKCOUNT, kHookInstructions);
  Resume(co, nargs);
  return co;
}

void Runtime::Resume(lua_State* co, int nargs) {
  auto it = threads_.find(co);
  if (it == threads_.end()) return;
  it->second->resumed_at = Clock::now();
  int nresults = 0;
  Thread* outer = running_;
  running_ = it->second.get();
  int status = lua_resume(co, L_, nargs, &nresults);
  running_ = outer;
  if (status != LUA_YIELD) return Finish(co, status);
  if (threads_.at(co)->wait) return;  // waits in Await: its completion resumes it
  // Preempted by the hook or a bare coroutine.yield(): let the loop breathe, then go on.
  lua_pop(co, nresults);
  loop_.Post([this, co] { Resume(co, 0); });
}

void Runtime::Finish(lua_State* co, int status) {
  auto node = threads_.extract(co);
  Thread& thread = *node.mapped();
  lua_sethook(co, nullptr, 0, 0);
  if (thread.on_finish) thread.on_finish(co, status);
  luaL_unref(L_, LUA_REGISTRYINDEX, thread.ref);
}

std::string Runtime::StallMessage(const std::string& fallback) const {
  std::string waits = stall_report_ ? stall_report_() : "";
  if (waits.empty()) return fallback;
  return "all goroutines are asleep - deadlock (waiting on: " + waits + ")";
}

TaskContext* Runtime::TaskOf(lua_State* L) const {
  auto it = threads_.find(L);
  if (it != threads_.end()) return it->second->task;
  // A user's own coroutine (a live one, not one of ours that just finished) works for the task
  // whose coroutine resumed it.
  lua_Debug ar;
  if (L == L_ || !running_ || lua_status(L) != LUA_OK || !lua_getstack(L, 0, &ar)) return nullptr;
  return running_->task;
}

void Runtime::CancelTask(TaskContext* task, const std::string& reason) {
  if (task->cancel_reason.empty()) task->cancel_reason = reason;
  for (pid_t pid : task->processes) processes_.Terminate(pid, std::chrono::seconds(3));
  for (auto& [co, thread] : threads_) {
    if (thread->task != task || !thread->wait || thread->wait->done) continue;
    auto wait = thread->wait;
    wait->done = true;  // first: a completion that the cancel triggers is ignored
    wait->pusher = [](lua_State*) { return 0; };
    if (wait->cancel) wait->cancel();
    lua_State* L = co;
    loop_.Post([this, L] { Resume(L, 0); });
  }
}

void Runtime::EndTask(TaskContext* task) {
  bool left_behind = false;
  for (auto& [co, thread] : threads_) left_behind = left_behind || thread->task == task;
  if (!left_behind) return;
  std::string reason = task->cancel_reason;
  CancelTask(task, kTaskEnded);
  task->cancel_reason = reason;  // the task's own outcome is already decided
  ended_.name = "(ended task)";
  ended_.cancel_reason = kTaskEnded;
  for (auto& [co, thread] : threads_)
    if (thread->task == task) thread->task = &ended_;
}

void Runtime::Hook(lua_State* L, lua_Debug* ar) {
  Runtime& rt = From(L);
  if (rt.load_deadline_ && Clock::now() > *rt.load_deadline_) {  // also a user's coroutine
    luaL_error(L, "loading took longer than %s (an endless loop at load time?)",
               FormatHuman(rt.options_.load_timeout).c_str());
  }
  auto it = rt.threads_.find(L);
  TaskContext* task = rt.TaskOf(L);
  Clock::time_point now = Clock::now();
  if (task && task->cancel_reason.empty() && task->deadline && now >= *task->deadline)
    task->cancel_reason = task->deadline_reason;
  if (task && !task->cancel_reason.empty()) {
    // The bare reason, like a cancelled wait's error: it must start with "timed out" (on_timeout).
    lua_pushstring(L, task->cancel_reason.c_str());
    lua_error(L);
  }
  if (it == rt.threads_.end() || !lua_isyieldable(L)) return;
  if (now - it->second->resumed_at > kTimeSlice || SignalPending()) lua_yield(L, 0);
}

Status Runtime::RunString(const std::string& code, const std::string& chunkname, int nresults) {
  if (luaL_loadbufferx(L_, code.data(), code.size(), chunkname.c_str(), "t") != LUA_OK) {
    std::string msg = lua_tostring(L_, -1);
    lua_pop(L_, 1);
    return Status::Error(msg);
  }
  // Errors at load time carry FILE:LINE already; a traceback would only show the prelude.
  int status = lua_pcall(L_, 0, nresults, 0);
  if (status == LUA_OK) {
    if (nresults == 0) lua_settop(L_, 0);
    return Status::Ok();
  }
  std::string msg = luaL_tolstring(L_, -1, nullptr);
  lua_settop(L_, 0);
  return Status::Error(msg);
}

Status Runtime::RunFile(const std::string& path, int nresults) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(path + ": cannot open file: " + std::strerror(errno));
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string code = buffer.str();
  if (!code.empty() && code[0] == LUA_SIGNATURE[0])
    return Status::Error(path + ": precompiled Lua bytecode is not accepted; give the source");
  lua_getglobal(L_, "__sloth_add_search_dir");
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  lua_pushstring(L_, dir.empty() ? "/" : dir.c_str());
  lua_call(L_, 1, 0);
  load_deadline_ = Clock::now() + options_.load_timeout;
  lua_sethook(L_, Hook, LUA_MASKCOUNT, kHookInstructions);
  Status s = RunString(code, "@" + path, nresults);
  lua_sethook(L_, nullptr, 0, 0);
  load_deadline_.reset();
  return s;
}

std::string Runtime::ResolvePath(lua_State* L, const std::string& path) const {
  if (!path.empty() && path[0] == '/') return path;
  TaskContext* task = TaskOf(L);
  const std::string& base = task && !task->workdir.empty() ? task->workdir : options_.start_dir;
  if (path.empty() || path == ".") return base;
  return base + "/" + path;
}

std::vector<std::string> Runtime::ChildEnvironment(lua_State* L) const {
  std::vector<std::pair<std::string, std::string>> extra = extra_env_;
  if (TaskContext* task = TaskOf(L)) extra.insert(extra.end(), task->env.begin(), task->env.end());
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    std::string_view key = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& [k, v] : extra) replaced = replaced || k == key;
    if (!replaced) env.emplace_back(entry);
  }
  for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
  return env;
}

bool Runtime::CheckMode(lua_State* L) const {
  if (!options_.check_mode) return false;
  TaskContext* task = TaskOf(L);
  return !(task && task->always_run);
}

void Runtime::Log(lua_State* L, LogLevel level, std::string_view text) {
  if (!log_) return;
  TaskContext* task = TaskOf(L);
  log_->Log(task ? task->name : std::string(), level, text);
}

void Runtime::KillProcesses() {
  if (processes_.running() == 0) return;
  processes_.KillAll();
  Clock::time_point give_up = Clock::now() + std::chrono::seconds(5);
  uint64_t tick = loop_.After(std::chrono::seconds(5), [] {});  // bounds the wait below
  loop_.RunUntil([&] { return processes_.running() == 0 || Clock::now() >= give_up; });
  loop_.Cancel(tick);
}

void Runtime::EnableStrictGlobals() {
  lua_getglobal(L_, "__sloth_strict");
  lua_call(L_, 0, 0);
}

}  // namespace sloth
