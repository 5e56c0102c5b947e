// Workflow files -> specs (the loader) and one workflow run (the Lua executor).
#include "lua/workflow.h"

#include <glob.h>

#include <nlohmann/json.hpp>

#include <filesystem>

#include <lua.hpp>

#include "base/strings.h"
#include "lua/lua_util.h"
#include "lua/modules/secret.h"
#include "lua/prelude.h"

namespace fs = std::filesystem;

namespace sloth {
namespace {

// --- reading definition tables ---------------------------------------------------------

std::string GetString(lua_State* L, int index, const char* key) {
  lua_getfield(L, index, key);
  std::string s = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
  lua_pop(L, 1);
  return s;
}

std::vector<std::string> GetList(lua_State* L, int index, const char* key) {
  std::vector<std::string> out;
  if (lua_getfield(L, index, key) == LUA_TTABLE) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; ++i) {
      out.emplace_back(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return out;
}

std::optional<Duration> GetSeconds(lua_State* L, int index, const char* key) {
  lua_getfield(L, index, key);
  std::optional<Duration> d;
  if (lua_isnumber(L, -1)) {
    auto r = DurationFromSeconds(lua_tonumber(L, -1));
    if (r.ok()) d = *r;
  }
  lua_pop(L, 1);
  return d;
}

bool GetBool(lua_State* L, int index, const char* key) {
  lua_getfield(L, index, key);
  bool b = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return b;
}

TaskSpec ReadTask(lua_State* L, int index) {
  index = lua_absindex(L, index);
  TaskSpec t;
  t.name = GetString(L, index, "name");
  t.description = GetString(L, index, "description");
  t.source = GetString(L, index, "source");
  t.depends_on = GetList(L, index, "depends_on");
  t.timeout = GetSeconds(L, index, "timeout");
  lua_getfield(L, index, "retries");
  t.retry_set = lua_isinteger(L, -1);
  t.retry.retries = static_cast<int>(lua_tointeger(L, -1));
  lua_pop(L, 1);
  if (auto s = ParseRetryStrategy(GetString(L, index, "retry_strategy"))) t.retry.strategy = *s;
  t.retry.delay = GetSeconds(L, index, "retry_delay");
  t.async = GetBool(L, index, "async");
  t.workdir = GetString(L, index, "workdir");
  t.delegate_to = GetList(L, index, "delegate_to");
  t.tags = GetList(L, index, "tags");
  t.artifacts = GetList(L, index, "artifacts");
  t.consumes = GetList(L, index, "consumes");
  lua_getfield(L, index, "command");
  if (lua_type(L, -1) == LUA_TSTRING) t.command_text = lua_tostring(L, -1);
  lua_pop(L, 1);
  t.always_run = GetBool(L, index, "always_run");
  return t;
}

// Reads config{} into `config`; errors name the workflow's source line.
Status ReadConfig(lua_State* L, int index, WorkflowSpec& wf) {
  index = lua_absindex(L, index);
  auto bad = [&](const std::string& what) {
    return Status::Error(wf.source + ": workflow \"" + wf.name + "\": config." + what);
  };
  lua_pushnil(L);
  while (lua_next(L, index)) {
    std::string key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
    int t = lua_type(L, -1);
    if (key == "timeout" || key == "retry_delay") {
      Result<Duration> d = t == LUA_TNUMBER   ? DurationFromSeconds(lua_tonumber(L, -1))
                           : t == LUA_TSTRING ? ParseDuration(lua_tostring(L, -1))
                                              : Result<Duration>(Status::Error("not a duration"));
      if (!d.ok()) return lua_pop(L, 2), bad(key + ": " + d.error());
      (key == "timeout" ? wf.config.timeout : wf.config.retry_delay) = *d;
    } else if (key == "max_parallel_tasks") {
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1)
        return lua_pop(L, 2), bad("max_parallel_tasks must be a whole number >= 1");
      wf.config.max_parallel_tasks = static_cast<int>(lua_tointeger(L, -1));
    } else if (key == "fail_fast") {
      if (t != LUA_TBOOLEAN) return lua_pop(L, 2), bad("fail_fast must be true or false");
      wf.config.fail_fast = lua_toboolean(L, -1);
    } else if (key == "retry_policy") {
      auto s = t == LUA_TSTRING ? ParseRetryStrategy(lua_tostring(L, -1)) : std::nullopt;
      if (!s) return lua_pop(L, 2), bad("retry_policy must be fixed, linear or exponential");
      wf.config.retry_policy = *s;
    } else if (key != "environment") {
      return lua_pop(L, 2), bad(key +
                                " is not a known setting (timeout, max_parallel_tasks, "
                                "fail_fast, retry_delay, retry_policy, environment)");
    }
    lua_pop(L, 1);
  }
  return Status::Ok();
}

Result<LoadedWorkflow> ReadWorkflow(lua_State* L, int index) {
  index = lua_absindex(L, index);
  LoadedWorkflow out;
  WorkflowSpec& wf = out.spec;
  wf.name = GetString(L, index, "name");
  wf.description = GetString(L, index, "description");
  wf.version = GetString(L, index, "version");
  wf.source = GetString(L, index, "source");
  wf.delegate_to = GetList(L, index, "delegate_to");
  if (lua_getfield(L, index, "config") == LUA_TTABLE) {
    Status s = ReadConfig(L, -1, wf);
    if (!s.ok()) return lua_pop(L, 1), s;
  }
  lua_pop(L, 1);
  if (lua_getfield(L, index, "metadata") == LUA_TTABLE) out.metadata_json = ToJsonText(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, index, "tasks");
  for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TTABLE; ++i) {
    TaskSpec t = ReadTask(L, -1);
    lua_pop(L, 1);
    if (!t.retry_set && wf.config.retry_policy) t.retry.strategy = *wf.config.retry_policy;
    if (!t.retry.delay) t.retry.delay = wf.config.retry_delay;
    if (t.delegate_to.empty()) t.delegate_to = wf.delegate_to;
    wf.tasks.push_back(std::move(t));
  }
  lua_pop(L, 2);
  lua_pushvalue(L, index);
  out.ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return out;
}

std::string Stem(const std::string& path) { return fs::path(path).stem().string(); }

}  // namespace

Result<std::vector<LoadedWorkflow>> LoadWorkflows(Runtime& rt, const std::string& path) {
  TrackLoadedFiles(rt.state());  // what a delegated task ships along
  Status loaded = rt.RunFile(path);
  if (!loaded.ok()) return loaded;
  lua_State* L = rt.state();
  PushInternal(L);                  // internal
  lua_getfield(L, -1, "defs");      // internal defs
  lua_getfield(L, -1, "finalize");  // internal defs finalize
  lua_pushstring(L, Stem(path).c_str());
  lua_call(L, 1, 1);  // internal defs workflows
  std::vector<LoadedWorkflow> out;
  for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TTABLE; ++i) {
    auto wf = ReadWorkflow(L, -1);
    lua_pop(L, 1);
    if (!wf.ok()) return lua_settop(L, 0), wf.status();
    out.push_back(std::move(*wf));
  }
  lua_settop(L, 0);
  if (out.empty()) return Status::Error(path + ": defines no task or workflow");
  return out;
}

namespace {

// Keeps the error text and the traceback lines that point into workflow files.
std::string ErrorWithTraceback(lua_State* co) {
  std::string msg = luaL_tolstring(co, -1, nullptr);
  lua_pop(co, 1);
  luaL_traceback(co, co, nullptr, 0);
  std::vector<std::string> frames;
  for (const std::string& line : Split(lua_tostring(co, -1), '\n')) {
    std::string_view l = Trim(line);
    if (l.empty() || l == "stack traceback:" || l.find("[C]") != std::string_view::npos ||
        l.find("[prelude") != std::string_view::npos || l.find("[module") != std::string_view::npos)
      continue;
    frames.emplace_back(l);
  }
  lua_pop(co, 1);
  if (frames.size() > 1 ||
      (frames.size() == 1 &&
       msg.find(frames[0].substr(0, frames[0].find(':'))) == std::string::npos)) {
    for (size_t i = 0; i < frames.size() && i < 5; ++i) msg += "\n    at " + frames[i];
  }
  return msg;
}

// What lazy `deps` tables read. The executor clears `plan` when the run ends, so a deps table
// kept past its run reads as empty instead of touching freed memory.
struct DepsView {
  const Plan* plan = nullptr;
  std::vector<int> output_refs;
};
int DepsIndex(lua_State* L);
int DepsPairs(lua_State* L);

class LuaExecutor : public Executor {
 public:
  LuaExecutor(Runtime& rt, const LoadedWorkflow& wf, const Plan& plan, const RunInfo& info)
      : rt_(rt),
        L_(rt.state()),
        wf_(wf),
        plan_(plan),
        info_(info),
        slots_(plan.size()),
        deps_view_(std::make_shared<DepsView>()) {
    deps_view_->plan = &plan;
    deps_view_->output_refs.assign(plan.size(), LUA_NOREF);
    lua_rawgeti(L_, LUA_REGISTRYINDEX, wf.ref);  // wf
    lua_getfield(L_, -1, "tasks");               // wf tasks
    for (size_t i = 0; i < plan.size(); ++i) {
      lua_rawgeti(L_, -1, static_cast<lua_Integer>(i) + 1);
      slots_[i].def_ref = luaL_ref(L_, LUA_REGISTRYINDEX);
    }
    lua_pop(L_, 2);
  }

  ~LuaExecutor() override {
    for (Slot& s : slots_) luaL_unref(L_, LUA_REGISTRYINDEX, s.def_ref);
    for (int ref : deps_view_->output_refs) luaL_unref(L_, LUA_REGISTRYINDEX, ref);
    deps_view_->plan = nullptr;
    deps_view_->output_refs.clear();
  }

  void StartAttempt(size_t i, int attempt, std::function<void(AttemptResult)> done) override;
  void CancelAttempt(size_t i, const std::string& reason) override {
    if (slots_[i].delegated)
      info_.delegator->Cancel(plan_.task(i).name, reason);
    else
      rt_.CancelTask(&slots_[i].ctx, reason);
  }
  void FinishTask(size_t i, const TaskResult& result, std::function<void()> done) override;
  // Rollback of a failed run: calls the `undo` functions of the tasks that completed in this
  // run, the last completed first, one at a time. Returns how many ran.
  int UndoCompleted();

 private:
  struct Slot {
    TaskContext ctx;
    int def_ref = LUA_NOREF;
    bool delegated = false;  // an attempt runs on agents (the Delegator has it)
  };

  void PushDef(size_t i) { lua_rawgeti(L_, LUA_REGISTRYINDEX, slots_[i].def_ref); }
  void PushParams(size_t i);
  void PushRunParams(size_t i, int params);
  void PushThis(size_t i);
  void PushDeps(size_t i);
  Status PrepareWorkdir(size_t i, int attempt);
  AttemptResult Collect(size_t i, lua_State* co, int status);
  void StartDelegated(size_t i, int attempt, std::function<void(AttemptResult)> done);
  Result<std::string> MakeBundle(size_t i, int attempt);
  void StoreOutput(size_t i, const std::string& output_json);
  void CopyArtifacts(size_t i);
  struct HookChain {
    std::vector<const char*> hooks;
    bool ok = false;
    std::string error;
    std::function<void()> done;
  };
  void RunNextHook(size_t i, std::shared_ptr<HookChain> chain);
  bool Undo(size_t i);

  Runtime& rt_;
  lua_State* L_;
  const LoadedWorkflow& wf_;
  const Plan& plan_;
  const RunInfo& info_;
  std::vector<Slot> slots_;
  std::shared_ptr<DepsView> deps_view_;  // also holds each task's output (registry refs)
  std::vector<size_t> completed_;        // tasks that succeeded, in the order they did
};

// Copies every key of the table at `from` into the table at `to`.
void CopyFields(lua_State* L, int from, int to) {
  if (lua_type(L, from) != LUA_TTABLE) return;
  lua_pushnil(L);
  while (lua_next(L, from)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);  // key key value
    lua_rawset(L, to);  // key
  }
}

// params: the workflow's params, then the task's, then what the run knows about the task.
void LuaExecutor::PushParams(size_t i) {
  if (info_.params_json) {  // on an agent: the runner's merged params
    PushJson(L_, nlohmann::json::parse(*info_.params_json, nullptr, false));
    if (!lua_istable(L_, -1)) lua_pop(L_, 1), lua_newtable(L_);
    PushRunParams(i, lua_gettop(L_));
    return;
  }
  lua_createtable(L_, 0, 8);  // params
  int params = lua_gettop(L_);
  lua_rawgeti(L_, LUA_REGISTRYINDEX, wf_.ref);
  lua_getfield(L_, -1, "params");  // params wf wf_params
  CopyFields(L_, lua_gettop(L_), params);
  lua_pop(L_, 2);
  PushDef(i);
  lua_getfield(L_, -1, "params");  // params def task_params
  CopyFields(L_, lua_gettop(L_), params);
  lua_pop(L_, 2);
  PushRunParams(i, params);
}

// What the run knows about task i, into the params table at `params`.
void LuaExecutor::PushRunParams(size_t i, int params) {
  lua_pushstring(L_, plan_.task(i).name.c_str());
  lua_setfield(L_, params, "task_name");
  lua_pushstring(L_, wf_.spec.name.c_str());
  lua_setfield(L_, params, "workflow_name");
  lua_pushstring(L_, slots_[i].ctx.workdir.c_str());
  lua_setfield(L_, params, "workdir");
  lua_pushstring(L_, info_.stack.c_str());
  lua_setfield(L_, params, "stack");
}

void LuaExecutor::PushThis(size_t i) {
  PushInternal(L_);
  lua_getfield(L_, -1, "make_this");
  lua_remove(L_, -2);  // make_this
  PushDef(i);
  lua_createtable(L_, 0, 4);  // make_this def ctx
  PushParams(i);
  lua_setfield(L_, -2, "params");
  lua_pushinteger(L_, slots_[i].ctx.attempt);
  lua_setfield(L_, -2, "attempt");
  lua_pushstring(L_, slots_[i].ctx.workdir.c_str());
  lua_setfield(L_, -2, "workdir");
  if (!info_.agent.empty()) {
    lua_pushstring(L_, info_.agent.c_str());
    lua_setfield(L_, -2, "agent");
  }
  lua_call(L_, 2, 1);  // this
}

// `deps` is a lazy view: deps.<name> looks the task up when it is read (and caches it), so a
// long chain of tasks costs nothing per ancestor it does not use.
void LuaExecutor::PushDeps(size_t i) {
  if (info_.deps_json) {  // on an agent: the outputs the runner sent
    PushJson(L_, nlohmann::json::parse(*info_.deps_json, nullptr, false));
    if (!lua_istable(L_, -1)) lua_pop(L_, 1), lua_newtable(L_);
    return;
  }
  lua_newtable(L_);           // deps
  lua_createtable(L_, 0, 2);  // deps meta
  auto* view = static_cast<std::shared_ptr<DepsView>*>(
      lua_newuserdatauv(L_, sizeof(std::shared_ptr<DepsView>), 0));
  new (view) std::shared_ptr<DepsView>(deps_view_);
  lua_createtable(L_, 0, 1);
  lua_pushcfunction(L_, [](lua_State* L) {
    static_cast<std::shared_ptr<DepsView>*>(lua_touserdata(L, 1))->~shared_ptr();
    return 0;
  });
  lua_setfield(L_, -2, "__gc");
  lua_setmetatable(L_, -2);  // deps meta view
  lua_pushinteger(L_, static_cast<lua_Integer>(i));
  lua_pushvalue(L_, -2);
  lua_pushvalue(L_, -2);  // deps meta view i view i
  lua_pushcclosure(L_, DepsIndex, 2);
  lua_setfield(L_, -4, "__index");  // deps meta view i
  lua_pushcclosure(L_, DepsPairs, 2);
  lua_setfield(L_, -2, "__pairs");  // deps meta
  lua_setmetatable(L_, -2);         // deps
}

// Pushes the output of `d` (an empty table before it produced one).
void PushOutput(lua_State* L, const DepsView& view, size_t d) {
  int ref = view.output_refs[d];
  if (ref == LUA_NOREF)
    lua_newtable(L);
  else
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
}

int DepsIndex(lua_State* L) {
  auto& view = *static_cast<std::shared_ptr<DepsView>*>(lua_touserdata(L, lua_upvalueindex(1)));
  auto i = static_cast<size_t>(lua_tointeger(L, lua_upvalueindex(2)));
  if (!view->plan || lua_type(L, 2) != LUA_TSTRING) return 0;
  int d = view->plan->Find(lua_tostring(L, 2));
  if (d < 0 || !view->plan->DependsOn(i, static_cast<size_t>(d))) return 0;
  PushOutput(L, *view, static_cast<size_t>(d));
  lua_pushvalue(L, 2);
  lua_pushvalue(L, -2);
  lua_rawset(L, 1);  // cache it
  return 1;
}

int DepsPairs(lua_State* L) {
  auto& view = *static_cast<std::shared_ptr<DepsView>*>(lua_touserdata(L, lua_upvalueindex(1)));
  auto i = static_cast<size_t>(lua_tointeger(L, lua_upvalueindex(2)));
  if (view->plan) {
    for (size_t d : view->plan->Ancestors(i)) {
      PushOutput(L, *view, d);
      lua_setfield(L, 1, view->plan->task(d).name.c_str());
    }
  }
  lua_getglobal(L, "next");
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

Status LuaExecutor::PrepareWorkdir(size_t i, int attempt) {
  const TaskSpec& t = plan_.task(i);
  std::string dir = rt_.options().start_dir;
  if (!t.workdir.empty()) dir = t.workdir[0] == '/' ? t.workdir : dir + "/" + t.workdir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::Error("cannot create workdir " + dir + ": " + ec.message());
  slots_[i].ctx.workdir = dir;
  if (attempt > 1) return Status::Ok();
  if (rt_.options().check_mode && !t.consumes.empty()) {
    // Nothing was produced in a dry run, so there is nothing to consume.
    rt_.Log(L_, LogLevel::kDebug,
            "[check] would copy artifacts " + Join(t.consumes, ", ") + " into " + dir);
    return Status::Ok();
  }
  for (const std::string& pattern : t.consumes) {
    glob_t g{};
    std::string full = info_.artifacts_dir + "/" + pattern;
    int rc = glob(full.c_str(), 0, nullptr, &g);
    if (rc != 0) {
      globfree(&g);
      return Status::Error("consumes: no artifact matches \"" + pattern +
                           "\" (was it produced by a task this one depends on?)");
    }
    for (size_t k = 0; k < g.gl_pathc; ++k) {
      fs::path src = g.gl_pathv[k];
      fs::path dest = fs::path(dir) / fs::relative(src, info_.artifacts_dir);
      fs::create_directories(dest.parent_path(), ec);
      fs::copy(src, dest, fs::copy_options::overwrite_existing | fs::copy_options::recursive, ec);
      if (ec) {
        globfree(&g);
        return Status::Error("consumes: cannot copy " + src.string() + ": " + ec.message());
      }
    }
    globfree(&g);
  }
  return Status::Ok();
}

void LuaExecutor::StartAttempt(size_t i, int attempt, std::function<void(AttemptResult)> done) {
  const TaskSpec& t = plan_.task(i);
  Slot& slot = slots_[i];
  slot.ctx = TaskContext{};
  slot.ctx.name = t.name;
  slot.ctx.index = i;
  slot.ctx.attempt = attempt + info_.attempt_offset;
  slot.ctx.always_run = t.always_run;
  if (t.timeout) {
    slot.ctx.deadline = Clock::now() + *t.timeout;
    slot.ctx.deadline_reason = "timed out after " + FormatHuman(*t.timeout);
  }
  auto fail = [&](std::string message) {
    AttemptResult r;
    r.outcome = AttemptResult::Outcome::kFailed;
    r.message = std::move(message);
    done(std::move(r));
  };
  if (!t.delegate_to.empty() && !info_.delegator && !info_.delegator_error.empty())
    return fail("task is delegated to " + Join(t.delegate_to, ", ") + ", but " +
                info_.delegator_error);
  if (!t.delegate_to.empty() && !info_.delegator)
    return fail("task is delegated to " + Join(t.delegate_to, ", ") +
                ", but this run has no master to send it to (distributed execution needs "
                "--master or SLOTH_RUNNER_MASTER)");
  if (!t.delegate_to.empty()) return StartDelegated(i, attempt, std::move(done));
  if (Status s = PrepareWorkdir(i, attempt); !s.ok()) return fail(s.message());
  PushDef(i);
  lua_getfield(L_, -1, "user");
  if (lua_isstring(L_, -1)) slot.ctx.user = lua_tostring(L_, -1);
  lua_pop(L_, 1);
  if (lua_getfield(L_, -1, "env") == LUA_TTABLE) {
    lua_pushnil(L_);
    while (lua_next(L_, -2)) {
      lua_pushvalue(L_, -2);
      std::string key = luaL_tolstring(L_, -1, nullptr);
      lua_pop(L_, 2);
      slot.ctx.env.emplace_back(key, luaL_tolstring(L_, -1, nullptr));
      lua_pop(L_, 2);
    }
  }
  lua_pop(L_, 2);
  PushInternal(L_);
  lua_getfield(L_, -1, "run_attempt");
  lua_remove(L_, -2);  // run_attempt
  PushDef(i);
  PushThis(i);
  lua_getfield(L_, -1, "params");  // run_attempt def this params
  PushDeps(i);                     // run_attempt def this params deps
  rt_.Spawn(4, &slot.ctx, [this, i, done](lua_State* co, int status) {
    AttemptResult r = Collect(i, co, status);
    rt_.EndTask(&slots_[i].ctx);  // goroutines do not outlive their task's attempt
    done(std::move(r));
  });
}

AttemptResult LuaExecutor::Collect(size_t i, lua_State* co, int status) {
  AttemptResult r;
  if (status != LUA_OK) {
    r.outcome = AttemptResult::Outcome::kFailed;
    r.message = ErrorWithTraceback(co);
    return r;
  }
  // co: kind message output
  std::string kind = lua_tostring(co, 1) ? lua_tostring(co, 1) : "ok";
  r.outcome = kind == "ok"        ? AttemptResult::Outcome::kSuccess
              : kind == "skipped" ? AttemptResult::Outcome::kSkipped
                                  : AttemptResult::Outcome::kFailed;
  r.final = kind == "aborted";
  if (lua_isstring(co, 2)) r.message = lua_tostring(co, 2);
  int& output_ref = deps_view_->output_refs[i];
  luaL_unref(L_, LUA_REGISTRYINDEX, output_ref);
  output_ref = LUA_NOREF;
  if (lua_type(co, 3) == LUA_TTABLE) {
    lua_getfield(co, 3, "changed");
    r.changed = !(lua_isboolean(co, -1) && !lua_toboolean(co, -1));
    lua_pop(co, 1);
    r.output_json = ToJsonText(co, 3);
    lua_pushvalue(co, 3);
    lua_xmove(co, L_, 1);
    output_ref = luaL_ref(L_, LUA_REGISTRYINDEX);
  }
  return r;
}

// A delegated attempt: the bundle goes to the Delegator; its log lines join the run's log under
// the task's name, and its output becomes the task's like a local one (Collect).
void LuaExecutor::StartDelegated(size_t i, int attempt, std::function<void(AttemptResult)> done) {
  const TaskSpec& t = plan_.task(i);
  auto bundle = MakeBundle(i, attempt);
  if (!bundle.ok()) {
    AttemptResult r;
    r.outcome = AttemptResult::Outcome::kFailed;
    r.message = bundle.error();
    return done(std::move(r));
  }
  DelegateCall call;
  call.task = t.name;
  for (const std::string& target : t.delegate_to) {
    if (StartsWith(target, kDelegateLabelPrefix))
      call.label = target.substr(std::string_view(kDelegateLabelPrefix).size());
    else
      call.agents.push_back(target);
  }
  call.keyed = call.agents.size() > 1 || !call.label.empty();
  call.bundle_json = std::move(*bundle);
  call.timeout = t.timeout;
  slots_[i].delegated = true;
  auto log = [this, name = t.name](const std::string& agent, const std::string& line) {
    if (rt_.log()) rt_.log()->Log(name, LogLevel::kInfo, "[" + agent + "] " + line);
  };
  info_.delegator->Run(call, log, [this, i, done](AttemptResult r) {
    slots_[i].delegated = false;
    StoreOutput(i, r.output_json);
    done(std::move(r));
  });
}

// ToJsonText raises a Lua error on a cycle: run it protected.
Result<std::string> JsonTextOf(lua_State* L, int index) {
  lua_pushcfunction(L, [](lua_State* co) {
    std::string text = ToJsonText(co, 1);
    lua_pushlstring(co, text.data(), text.size());
    return 1;
  });
  lua_pushvalue(L, index < 0 ? index - 1 : index);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    std::string err = lua_tostring(L, -1) ? lua_tostring(L, -1) : "cannot encode";
    lua_pop(L, 1);
    return Status::Error(err);
  }
  std::string text = lua_tostring(L, -1);
  lua_pop(L, 1);
  return text;
}

Result<std::string> LuaExecutor::MakeBundle(size_t i, int attempt) {
  const TaskSpec& t = plan_.task(i);
  auto fail = [&](const std::string& what) {
    return Status::Error("cannot send task " + t.name + " to an agent: " + what);
  };
  if (info_.file.empty()) return fail("the run does not know its workflow file");
  Bundle b;
  b.run_id = info_.run_id;
  b.stack = info_.stack;
  b.stack_id = info_.stack_id;
  b.workflow = wf_.spec.name;
  b.task = t.name;
  b.attempt = attempt;
  b.check_mode = rt_.options().check_mode;
  if (Status s = AddBundleFiles(b, info_.file, LoadedFiles(L_)); !s.ok()) return s;
  lua_getglobal(L_, "values");
  auto values = lua_istable(L_, -1) ? JsonTextOf(L_, -1) : Result<std::string>("{}");
  lua_pop(L_, 1);
  if (!values.ok()) return fail("values: " + values.error());
  b.values_json = *values;
  PushParams(i);
  auto params = JsonTextOf(L_, -1);
  lua_pop(L_, 1);
  if (!params.ok()) return fail("params: " + params.error());
  b.params_json = *params;
  nlohmann::json deps = nlohmann::json::object();
  for (size_t d : plan_.Ancestors(i)) {
    PushOutput(L_, *deps_view_, d);
    auto out = JsonTextOf(L_, -1);
    lua_pop(L_, 1);
    if (!out.ok()) return fail("output of " + plan_.task(d).name + ": " + out.error());
    deps[plan_.task(d).name] = nlohmann::json::parse(*out, nullptr, false);
  }
  b.deps_json = deps.dump();
  b.secrets = RunSecretValues(rt_);
  return BundleToJson(b);
}

void LuaExecutor::StoreOutput(size_t i, const std::string& output_json) {
  int& output_ref = deps_view_->output_refs[i];
  luaL_unref(L_, LUA_REGISTRYINDEX, output_ref);
  output_ref = LUA_NOREF;
  nlohmann::json output = nlohmann::json::parse(output_json, nullptr, false);
  if (!output.is_object()) return;
  PushJson(L_, output);
  output_ref = luaL_ref(L_, LUA_REGISTRYINDEX);
}

void LuaExecutor::CopyArtifacts(size_t i) {
  const TaskSpec& t = plan_.task(i);
  if (rt_.options().check_mode) return;  // a dry run keeps nothing
  if (!t.delegate_to.empty()) return;    // its files are on the agents
  for (const std::string& pattern : t.artifacts) {
    glob_t g{};
    std::string full = slots_[i].ctx.workdir + "/" + pattern;
    if (glob(full.c_str(), 0, nullptr, &g) != 0) {
      rt_.Log(L_, LogLevel::kWarn,
              "artifact \"" + pattern + "\" of task " + t.name + " matched nothing");
    }
    for (size_t k = 0; k < g.gl_pathc; ++k) {
      fs::path src = g.gl_pathv[k];
      fs::path dest = fs::path(info_.artifacts_dir) / fs::relative(src, slots_[i].ctx.workdir);
      std::error_code ec;
      fs::create_directories(dest.parent_path(), ec);
      fs::copy(src, dest, fs::copy_options::overwrite_existing | fs::copy_options::recursive, ec);
      if (ec)
        rt_.Log(L_, LogLevel::kWarn, "cannot keep artifact " + src.string() + ": " + ec.message());
    }
    globfree(&g);
  }
}

void LuaExecutor::FinishTask(size_t i, const TaskResult& result, std::function<void()> done) {
  bool ok = result.status == TaskStatus::kSuccess || result.status == TaskStatus::kUnchanged;
  bool failed = result.status == TaskStatus::kFailed;
  if (ok) completed_.push_back(i);
  if (ok) CopyArtifacts(i);
  std::vector<const char*> hooks;
  // A delegated task's hooks ran on the agent, with the task.
  bool local = plan_.task(i).delegate_to.empty();
  if (!local) return done();
  if (ok) hooks.push_back("on_success");
  if (failed && StartsWith(result.error, "timed out")) hooks.push_back("on_timeout");
  if (failed) hooks.push_back("on_failure");
  auto chain = std::make_shared<HookChain>();
  chain->ok = ok;
  chain->error = result.error;
  chain->done = std::move(done);
  PushDef(i);
  for (const char* h : hooks) {
    if (lua_getfield(L_, -1, h) == LUA_TFUNCTION) chain->hooks.push_back(h);
    lua_pop(L_, 1);
  }
  lua_pop(L_, 1);
  // The attempt's timeout or cancellation does not stop its hooks (a cancellation from now on,
  // Ctrl-C or the run's timeout, does).
  slots_[i].ctx.cancel_reason.clear();
  slots_[i].ctx.deadline.reset();
  RunNextHook(i, chain);
}

// Runs the task's remaining end hooks one after another, each in a coroutine of its own.
void LuaExecutor::RunNextHook(size_t i, std::shared_ptr<HookChain> chain) {
  if (chain->hooks.empty()) return chain->done();
  std::string hook = chain->hooks.front();
  chain->hooks.erase(chain->hooks.begin());
  PushInternal(L_);
  lua_getfield(L_, -1, "bind_call");
  lua_remove(L_, -2);  // bind_call
  PushDef(i);
  lua_getfield(L_, -1, hook.c_str());
  lua_remove(L_, -2);  // bind_call fn
  PushThis(i);
  lua_getfield(L_, -1, "params");  // bind_call fn this params
  if (chain->ok && deps_view_->output_refs[i] != LUA_NOREF)
    lua_rawgeti(L_, LUA_REGISTRYINDEX, deps_view_->output_refs[i]);
  else if (chain->ok)
    lua_newtable(L_);
  else
    lua_pushstring(L_, chain->error.c_str());
  rt_.Spawn(4, &slots_[i].ctx, [this, i, hook, chain](lua_State* co, int status) {
    if (status != LUA_OK)
      rt_.Log(co, LogLevel::kWarn, hook + " hook failed: " + ErrorWithTraceback(co));
    rt_.EndTask(&slots_[i].ctx);
    RunNextHook(i, chain);
  });
}

int LuaExecutor::UndoCompleted() {
  int ran = 0;
  for (auto it = completed_.rbegin(); it != completed_.rend(); ++it) ran += Undo(*it) ? 1 : 0;
  return ran;
}

// Calls task i's undo function as undo(this, params, output) and waits for it.
bool LuaExecutor::Undo(size_t i) {
  if (!plan_.task(i).delegate_to.empty()) return false;  // nothing of it is here to undo
  PushDef(i);
  bool has_undo = lua_getfield(L_, -1, "undo") == LUA_TFUNCTION;
  lua_pop(L_, 2);
  if (!has_undo) return false;
  PushInternal(L_);
  lua_getfield(L_, -1, "bind_call");
  lua_remove(L_, -2);
  PushDef(i);
  lua_getfield(L_, -1, "undo");
  lua_remove(L_, -2);
  PushThis(i);
  lua_getfield(L_, -1, "params");
  if (deps_view_->output_refs[i] != LUA_NOREF)
    lua_rawgeti(L_, LUA_REGISTRYINDEX, deps_view_->output_refs[i]);
  else
    lua_newtable(L_);
  slots_[i].ctx.cancel_reason.clear();
  slots_[i].ctx.deadline.reset();
  bool finished = false;
  rt_.Spawn(4, &slots_[i].ctx, [this, i, &finished](lua_State* co, int status) {
    const std::string& name = plan_.task(i).name;
    if (status == LUA_OK)
      rt_.Log(co, LogLevel::kInfo, "undo of task " + name + " done");
    else
      rt_.Log(co, LogLevel::kWarn, "undo of task " + name + " failed: " + ErrorWithTraceback(co));
    rt_.EndTask(&slots_[i].ctx);
    finished = true;
  });
  rt_.loop().RunUntil([&] { return finished; });
  return true;
}

void PushResults(lua_State* L, const Plan& plan, const RunResult& result) {
  lua_newtable(L);
  for (size_t i = 0; i < plan.size(); ++i) {
    const TaskResult& t = result.tasks[i];
    lua_createtable(L, 0, 4);
    lua_pushstring(L, std::string(TaskStatusName(t.status)).c_str());
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, ToMillis(t.duration));
    lua_setfield(L, -2, "duration_ms");
    if (!t.error.empty()) {
      lua_pushstring(L, t.error.c_str());
      lua_setfield(L, -2, "error");
    }
    PushJson(L, nlohmann::json::parse(t.output_json, nullptr, false));
    lua_setfield(L, -2, "output");
    lua_setfield(L, -2, plan.task(i).name.c_str());
  }
}

// Calls the workflow's `hook` (on_start / on_complete) in a coroutine and waits for it.
void RunWorkflowHook(Runtime& rt, const LoadedWorkflow& wf, const char* hook, int nargs_pushed) {
  lua_State* L = rt.state();
  lua_rawgeti(L, LUA_REGISTRYINDEX, wf.ref);
  int type = lua_getfield(L, -1, hook);
  lua_remove(L, -2);
  if (type != LUA_TFUNCTION) {
    lua_pop(L, 1 + nargs_pushed);
    return;
  }
  lua_insert(L, -(nargs_pushed + 1));
  bool finished = false;
  std::string name = hook;
  rt.Spawn(nargs_pushed, nullptr, [&rt, &finished, name](lua_State* co, int status) {
    if (status != LUA_OK) rt.Log(co, LogLevel::kWarn, name + " failed: " + ErrorWithTraceback(co));
    finished = true;
  });
  rt.loop().RunUntil([&] { return finished; });
}

}  // namespace

WorkflowOutcome RunWorkflow(Runtime& rt, const LoadedWorkflow& workflow, const Plan& plan,
                            const RunInfo& info, Progress& progress,
                            const std::function<void(Scheduler*)>& started) {
  lua_State* L = rt.state();
  lua_newtable(L);
  lua_setglobal(L, "outputs");
  // config.environment: a table of variables for every command, or a name kept as
  // SLOTH_ENVIRONMENT.
  std::vector<std::pair<std::string, std::string>> env;
  lua_rawgeti(L, LUA_REGISTRYINDEX, workflow.ref);
  lua_getfield(L, -1, "config");
  if (lua_istable(L, -1) && lua_getfield(L, -1, "environment") != LUA_TNIL) {
    if (lua_istable(L, -1)) {
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        std::string key = luaL_tolstring(L, -1, nullptr);
        lua_pop(L, 2);
        env.emplace_back(key, luaL_tolstring(L, -1, nullptr));
        lua_pop(L, 2);
      }
    } else {
      env.emplace_back("SLOTH_ENVIRONMENT", luaL_tolstring(L, -1, nullptr));
      lua_pop(L, 1);
    }
  }
  lua_settop(L, 0);
  rt.SetExtraEnvironment(env);

  RunWorkflowHook(rt, workflow, "on_start", 0);
  LuaExecutor executor(rt, workflow, plan, info);
  SchedulerOptions options;
  options.max_parallel = info.max_parallel.value_or(workflow.spec.config.max_parallel_tasks);
  options.fail_fast = workflow.spec.config.fail_fast;
  options.run_timeout = workflow.spec.config.timeout;
  options.gate = info.gate;
  Scheduler scheduler(plan, options, executor, rt.loop(), progress);
  started(&scheduler);
  scheduler.Start();
  rt.loop().RunUntil([&] { return scheduler.done(); });
  started(nullptr);
  rt.KillProcesses();  // commands abandoned by a timeout or cancellation
  WorkflowOutcome outcome;
  if (!scheduler.done()) {
    // Nothing can make progress (a deadlock): fail what runs with the reason, then finish.
    scheduler.Abort(
        rt.StallMessage("internal error: the run stalled with nothing left to wait for"));
    rt.loop().RunUntil([&] { return scheduler.done(); });
  }
  outcome.result = scheduler.result();
  if (!scheduler.done()) {
    outcome.result.status = RunStatus::kFailed;
    outcome.result.error = "internal error: the run stalled with nothing left to wait for";
  }
  // Rollback (state-and-stacks.md): only a failed run, only what this run completed.
  if (outcome.result.status == RunStatus::kFailed) {
    int undone = executor.UndoCompleted();
    if (undone > 0 && rt.log())
      rt.log()->Log("", LogLevel::kInfo,
                    "rolled back " + std::to_string(undone) + (undone == 1 ? " task" : " tasks"));
  }
  lua_pushboolean(L, outcome.result.status == RunStatus::kSuccess);
  PushResults(L, plan, outcome.result);
  RunWorkflowHook(rt, workflow, "on_complete", 2);
  lua_getglobal(L, "outputs");
  outcome.outputs_json = lua_istable(L, -1) ? ToJsonText(L, -1) : "{}";
  lua_settop(L, 0);
  return outcome;
}

}  // namespace sloth
