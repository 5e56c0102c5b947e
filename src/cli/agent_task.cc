// `agent run-task`: one delegated task, run from its bundle.
#include "cli/agent_task.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include <lua.hpp>

#include "base/strings.h"
#include "cli/commands.h"
#include "cli/data_dir.h"
#include "cli/load.h"
#include "lua/modules/secret.h"
#include "rpc/plugin.h"
#include "store/sqlite_state_store.h"

namespace fs = std::filesystem;

namespace sloth {
namespace {

// Log lines to stderr, one per line and flushed, for the agent to stream back as they come.
class StderrLines : public LogSink {
 public:
  void Log(const std::string&, LogLevel level, std::string_view text) override {
    if (level == LogLevel::kDebug) return;
    const char* prefix = level == LogLevel::kWarn    ? "warn: "
                         : level == LogLevel::kError ? "error: "
                                                     : "";
    for (const std::string& line : Split(text, '\n')) {
      std::fprintf(stderr, "%s%s\n", prefix, line.c_str());
      std::fflush(stderr);
    }
  }
};

// Each file is written aside and renamed into place: other tasks of the same run on this agent
// share the directory and may be loading the same files right now.
Status WriteFiles(const Bundle& bundle, const fs::path& dir) {
  std::error_code ec;
  for (const auto& [rel, content] : bundle.files) {
    fs::path path = dir / rel;
    fs::create_directories(path.parent_path(), ec);
    if (ec)
      return Status::Error("cannot create " + path.parent_path().string() + ": " + ec.message());
    fs::path tmp = path.string() + ".tmp-" + std::to_string(getpid());
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << content;
      if (!out.flush()) return Status::Error("cannot write " + tmp.string());
    }
    fs::rename(tmp, path, ec);
    if (ec) return Status::Error("cannot write " + path.string() + ": " + ec.message());
  }
  return Status::Ok();
}

// Narrows the loaded workflow to its task `index`: the Lua definition keeps only that task and
// no workflow hooks (they are the runner's), and the spec has it without dependencies (their
// outputs come in the bundle), agents or retries.
Result<Plan> NarrowToTask(Runtime& rt, LoadedWorkflow& wf, size_t index) {
  lua_State* L = rt.state();
  lua_rawgeti(L, LUA_REGISTRYINDEX, wf.ref);  // wf
  lua_getfield(L, -1, "tasks");               // wf tasks
  lua_createtable(L, 1, 0);                   // wf tasks only
  lua_rawgeti(L, -2, static_cast<lua_Integer>(index) + 1);
  lua_rawseti(L, -2, 1);
  lua_setfield(L, -3, "tasks");  // wf tasks
  lua_pop(L, 1);
  for (const char* hook : {"on_start", "on_complete"}) {
    lua_pushnil(L);
    lua_setfield(L, -2, hook);
  }
  lua_pop(L, 1);
  TaskSpec task = wf.spec.tasks[index];
  task.depends_on.clear();
  task.delegate_to.clear();
  task.retry.retries = 0;
  task.retry_set = true;
  wf.spec.tasks = {task};
  return Plan::Build(wf.spec);
}

}  // namespace

Result<TaskResult> RunBundle(const Bundle& bundle, const std::string& data_dir,
                             const std::string& agent, LogSink& log) {
  fs::path dir = fs::path(data_dir) / "runs" / bundle.run_id;
  if (Status s = WriteFiles(bundle, dir); !s.ok()) return s;
  std::error_code ec;
  fs::current_path(dir, ec);  // io.open and friends see the same directory as the task
  Loop loop;
  RuntimeOptions options;
  options.start_dir = fs::absolute(dir).lexically_normal().string();
  options.check_mode = bundle.check_mode;
  // Under an agent (SLOTH_AGENT_MASTER set), state.* acts on the master's store, so
  // state.with_lock is one lock across agents and runners; run by hand, on the local one.
  std::unique_ptr<StateStore> state;
  const char* master = std::getenv("SLOTH_AGENT_MASTER");
  options.state_store = [&, master]() -> Result<StateStore*> {
    if (!state && master && *master) {
      Result<RpcPlugin*> plugin = LoadRpcPlugin();
      if (!plugin.ok()) return plugin.status();
      auto remote = (*plugin)->OpenRemoteState(data_dir, agent, master);
      if (!remote.ok()) return remote.status();
      state = std::move(*remote);
    } else if (!state) {
      auto opened = SqliteStateStore::Open(DatabasePath(data_dir));
      if (!opened.ok()) return opened.status();
      state = std::move(*opened);
    }
    return state.get();
  };
  Runtime rt(loop, options, &log);
  SetValues(rt, nlohmann::json::parse(bundle.values_json, nullptr, false));
  RunSecrets secrets;
  secrets.values = bundle.secrets;
  SetSecrets(rt, secrets);
  auto loaded = LoadFile(rt, (dir / bundle.entry).string());
  if (!loaded.ok()) return loaded.status();
  LoadedWorkflow* wf = nullptr;
  for (LoadedWorkflow& w : loaded->workflows)
    if (w.spec.name == bundle.workflow) wf = &w;
  if (!wf) return Status::Error(bundle.entry + " defines no workflow " + bundle.workflow);
  int index = loaded->plans[static_cast<size_t>(wf - loaded->workflows.data())].Find(bundle.task);
  if (index < 0)
    return Status::Error("workflow " + bundle.workflow + " has no task " + bundle.task);
  auto plan = NarrowToTask(rt, *wf, static_cast<size_t>(index));
  if (!plan.ok()) return plan.status();
  rt.EnableStrictGlobals();

  RunInfo info;
  info.stack = bundle.stack;
  info.run_id = bundle.run_id;
  info.artifacts_dir = data_dir + "/artifacts/" + bundle.stack + "/" + bundle.run_id;
  info.check_mode = bundle.check_mode;
  info.agent = agent;
  info.params_json = bundle.params_json;
  info.deps_json = bundle.deps_json;
  info.attempt_offset = bundle.attempt - 1;
  std::vector<std::string> resources;
  // Under an agent, stack.* records on the runner's stack in the master's store.
  std::unique_ptr<StackStore> stacks;
  if (master && *master && !bundle.stack_id.empty()) {
    Result<RpcPlugin*> plugin = LoadRpcPlugin();
    if (!plugin.ok()) return plugin.status();
    auto remote = (*plugin)->OpenRemoteStack(data_dir, agent, master);
    if (!remote.ok()) return remote.status();
    stacks = std::move(*remote);
  }
  RunScope scope{bundle.stack, stacks ? bundle.stack_id : "", bundle.run_id, stacks.get(),
                 &resources};
  rt.SetRunScope(&scope);
  // The agent stops a task by SIGTERM (the runner's Cancel): fail it like a local cancel.
  Scheduler* current = nullptr;
  loop.OnSignal(SIGTERM, [&] {
    if (current) current->Cancel("cancelled");
  });
  Progress progress;
  WorkflowOutcome outcome =
      RunWorkflow(rt, *wf, *plan, info, progress, [&](Scheduler* s) { current = s; });
  rt.SetRunScope(nullptr);
  rt.KillProcesses();
  if (outcome.result.tasks.empty()) return Status::Error("the task did not run");
  TaskResult result = outcome.result.tasks[0];
  if (result.status == TaskStatus::kFailed && result.error.empty())
    result.error = outcome.result.error;
  // What leaves the agent carries no secret value (like a local run's output).
  result.message = rt.Redact(result.message);
  result.error = rt.Redact(result.error);
  result.output_json = rt.Redact(result.output_json);
  return result;
}

std::string AgentResultJson(const TaskResult& r) {
  nlohmann::json output = nlohmann::json::parse(r.output_json, nullptr, false);
  if (!output.is_object()) output = nlohmann::json::object();
  nlohmann::json j = {{"status", std::string(TaskStatusName(r.status))},
                      {"attempts", 1},
                      {"message", r.message},
                      {"error", r.error},
                      {"changed", r.changed},
                      {"output", output},
                      {"duration_ms", ToMillis(r.duration)}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int CmdAgentRunTask(const GlobalOptions& global, const AgentTaskOptions& options) {
  // An agent killed with -9 cannot stop its tasks: each asks to get the SIGTERM a cancel sends
  // when its parent dies (and checks the parent did not die already).
  pid_t parent = getppid();
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != parent) return Fail(kExitFailed, "the agent that started this task is gone");
  std::string text(std::istreambuf_iterator<char>(std::cin), {});
  auto bundle = ParseBundle(text);
  if (!bundle.ok()) return Fail(kExitBadInput, bundle.error());
  std::string agent = options.agent;
  if (const char* env = std::getenv("SLOTH_AGENT_NAME"); agent.empty() && env) agent = env;
  StderrLines log;
  auto result = RunBundle(*bundle, DataDir(global.data_dir), agent, log);
  TaskResult r;
  if (result.ok()) {
    r = *result;
  } else {
    r.status = TaskStatus::kFailed;
    r.error = result.error();
  }
  std::fflush(stdout);
  std::printf("%s\n", AgentResultJson(r).c_str());
  std::fflush(stdout);
  bool ok = r.status == TaskStatus::kSuccess || r.status == TaskStatus::kUnchanged ||
            r.status == TaskStatus::kSkipped;
  return ok ? kExitOk : kExitFailed;
}

}  // namespace sloth
