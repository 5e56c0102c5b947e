// `run` / `workflow run`: load the file, pick the workflows, run them, render the result.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/ids.h"
#include "cli/commands.h"
#include "cli/data_dir.h"
#include "cli/events_run.h"
#include "cli/junit.h"
#include "cli/load.h"
#include "cli/output.h"
#include "cli/remote.h"
#include "cli/secrets_run.h"
#include "cli/ssh_profiles.h"
#include "cli/stack_run.h"
#include "cli/terminal_gate.h"
#include "data/values.h"
#include "lua/lua_util.h"
#include "lua/modules/infra_test_module.h"
#include "store/sqlite_stack_store.h"
#include "store/sqlite_state_store.h"

namespace fs = std::filesystem;

namespace sloth {
namespace {

std::unique_ptr<Renderer> MakeRenderer(const std::string& format, bool debug, FILE* json_out) {
  RenderOptions opt;
  opt.verbose = debug;
  const char* no_color = std::getenv("NO_COLOR");
  opt.color = isatty(STDOUT_FILENO) && !(no_color && *no_color);
  if (format == "json") {
    opt.out = json_out;
    return MakeJsonRenderer(opt);
  }
  return MakeBasicRenderer(opt, format == "enhanced");
}

// In json mode the document is the only thing on stdout: keep a private copy of stdout for it
// and point fd 1 (Lua's print, io.write) at stderr.
FILE* DivertStdout() {
  std::fflush(stdout);
  int fd = dup(STDOUT_FILENO);
  dup2(STDERR_FILENO, STDOUT_FILENO);
  return fdopen(fd, "w");
}

// Which workflows `run [NAME]` runs (dsl.md §2).
std::vector<size_t> Pick(const std::vector<LoadedWorkflow>& all, const std::string& name) {
  for (size_t i = 0; i < all.size(); ++i)
    if (all[i].spec.name == name) return {i};
  std::vector<size_t> every;
  for (size_t i = 0; i < all.size(); ++i) every.push_back(i);
  return every;
}

// Waits (briefly) for every child to be reaped, so no orphan outlives the run.
void ReapChildren(Runtime& rt) {
  rt.KillProcesses();
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

RunRecord RunRecordFor(const RunInfo& info, const LoadedWorkflow& workflow, const std::string& file,
                       const nlohmann::json& values, const RunOptions& options) {
  RunRecord r;
  r.id = info.run_id;
  r.stack_id = info.stack_id;
  r.workflow = workflow.spec.name;
  r.file = file;
  r.check_mode = options.check;
  r.started_at_ms = NowUnixMs();
  r.user = WhoAmI();
  r.host = HostName();
  r.pid = getpid();
  r.values_json = values.dump();
  r.metadata_json = workflow.metadata_json;
  return r;
}

// workflow.completed / failed / cancelled, with the first failure's text as the error.
void EmitWorkflowEnd(EventBus* bus, const Runtime& rt, const std::string& workflow,
                     const Plan& plan, const RunInfo& info, const RunResult& result) {
  std::string error = result.error;
  for (size_t t = 0; t < result.tasks.size() && error.empty(); ++t)
    if (result.tasks[t].status == TaskStatus::kFailed)
      error = "task " + plan.task(t).name + " failed: " + result.tasks[t].error;
  const char* type = result.status == RunStatus::kSuccess  ? "workflow.completed"
                     : result.status == RunStatus::kFailed ? "workflow.failed"
                                                           : "workflow.cancelled";
  int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(result.duration).count();
  EmitEvent(bus, type,
            WorkflowEventData(workflow, info.stack, std::string(RunStatusName(result.status)),
                              rt.Redact(error), ms),
            info.stack, info.run_id);
}

// run -d NAME: every task without agents of its own goes to NAME. Plans are rebuilt from the
// changed specs (same tasks in the same order, so they still match the Lua definitions).
Status DelegateAll(LoadedFile& loaded, const std::vector<std::string>& agents) {
  if (agents.empty()) return Status::Ok();
  for (size_t i = 0; i < loaded.workflows.size(); ++i) {
    for (TaskSpec& t : loaded.workflows[i].spec.tasks)
      if (t.delegate_to.empty()) t.delegate_to = agents;
    auto plan = Plan::Build(loaded.workflows[i].spec);
    if (!plan.ok()) return plan.status();
    loaded.plans[i] = std::move(*plan);
  }
  return Status::Ok();
}

bool AnyDelegated(const LoadedFile& loaded, const std::vector<size_t>& chosen) {
  for (size_t i : chosen)
    for (size_t t = 0; t < loaded.plans[i].size(); ++t)
      if (loaded.plans[i].selected(t) && !loaded.plans[i].task(t).delegate_to.empty()) return true;
  return false;
}

// Whether any task did something: a delegated task that failed without reaching any agent (no
// master, an unknown or inactive agent) did not.
bool AnythingRan(const Plan& plan, const RunResult& result) {
  for (size_t t = 0; t < result.tasks.size(); ++t) {
    TaskStatus s = result.tasks[t].status;
    bool unreached = !plan.task(t).delegate_to.empty() && result.tasks[t].agents.empty();
    if (s == TaskStatus::kSuccess || s == TaskStatus::kUnchanged || s == TaskStatus::kSkipped ||
        (s == TaskStatus::kFailed && !unreached))
      return true;
  }
  return false;
}

// A delegated task failed without reaching an agent.
bool SomeAgentUnreached(const Plan& plan, const RunResult& result) {
  for (size_t t = 0; t < result.tasks.size(); ++t)
    if (result.tasks[t].status == TaskStatus::kFailed && !plan.task(t).delegate_to.empty() &&
        result.tasks[t].agents.empty())
      return true;
  return false;
}

}  // namespace

int CmdRun(const GlobalOptions& global, const RunOptions& options) {
  if (options.output != "basic" && options.output != "enhanced" && options.output != "json")
    return Fail(kExitBadInput,
                "unknown output format \"" + options.output + "\" (basic, enhanced, json)");
  if (options.parallel && *options.parallel < 1)
    return Fail(kExitBadInput, "--parallel must be at least 1");
  auto values = LoadValues(options.values_files, options.sets);
  if (!values.ok()) return Fail(kExitBadInput, values.error());
  int tty = -1;
  if (options.interactive) {
    // Standard input must be the terminal too: a run fed from a file or a pipe has nobody to ask.
    if (isatty(STDIN_FILENO)) tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (tty < 0 || !isatty(tty)) {
      if (tty >= 0) close(tty);
      return Fail(kExitBadInput, "--interactive needs a terminal");
    }
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  FILE* json_out = options.output == "json" ? DivertStdout() : stdout;
  auto renderer = MakeRenderer(options.output, global.debug, json_out);

  Duration lock_timeout{};
  if (auto parsed = ParseDuration(options.lock_timeout); parsed.ok())
    lock_timeout = *parsed;
  else
    return Fail(kExitBadInput, "--lock-timeout: " + parsed.error());
  // The database is opened by the first that needs it: the `state` module while the file
  // loads, or the run's record on its stack once the file has loaded.
  std::string data_dir = DataDir(global.data_dir);
  std::shared_ptr<Db> db;
  std::unique_ptr<SqliteStateStore> state_store;
  std::unique_ptr<SqliteStackStore> stack_store;
  auto open_store = [&]() -> Status {
    if (db) return Status::Ok();
    auto opened = OpenDatabase(DatabasePath(data_dir));
    if (!opened.ok()) return opened.status();
    db = *opened;
    state_store = std::make_unique<SqliteStateStore>(db);
    stack_store = std::make_unique<SqliteStackStore>(db);
    return Status::Ok();
  };

  Loop loop;
  RuntimeOptions rt_options;
  rt_options.start_dir = fs::current_path().string();
  rt_options.check_mode = options.check;
  rt_options.show_diff = options.diff;
  rt_options.state_store = [&]() -> Result<StateStore*> {
    if (Status s = open_store(); !s.ok()) return s;
    return static_cast<StateStore*>(state_store.get());
  };
  Runtime rt(loop, rt_options, renderer.get());
  SetValues(rt, *values);
  if (!options.ssh.empty()) {  // exec.run goes to the profile's host from the first line on
    if (Status s = open_store(); !s.ok()) return Fail(kExitFailed, s.message());
    auto profile = LoadSshProfile(*db, options.ssh);
    if (!profile.ok()) return Fail(kExitBadInput, "--ssh: " + profile.error());
    if (Status s = UseSshForExec(rt, *profile); !s.ok()) return Fail(kExitFailed, s.message());
  }
  auto loaded = LoadFile(rt, options.file);
  if (!loaded.ok()) return Fail(kExitBadInput, loaded.error());
  if (Status s = DelegateAll(*loaded, options.delegate_to); !s.ok())
    return Fail(kExitBadInput, s.message());
  std::vector<LoadedWorkflow>& workflows = loaded->workflows;
  std::vector<Plan>& plans = loaded->plans;
  std::vector<size_t> chosen = Pick(workflows, options.name);
  // --task: each chosen workflow runs only the named tasks and what they need; with several
  // workflows, those that have none of the named tasks do not run.
  if (!options.tasks.empty()) {
    std::vector<size_t> with_tasks;
    Status first_error;
    for (size_t i : chosen) {
      Status s = plans[i].Select(options.tasks);
      if (s.ok())
        with_tasks.push_back(i);
      else if (first_error.ok())
        first_error = s;
    }
    if (with_tasks.empty() || (chosen.size() == 1 && !first_error.ok()))
      return Fail(kExitBadInput, first_error.message());
    chosen = with_tasks;
  }
  rt.EnableStrictGlobals();
  if (Status s = open_store(); !s.ok()) return Fail(kExitFailed, s.message());
  // A run delivers its own events (what dead processes left is for long-running ones: scheduler
  // run). A check run changes nothing, so it emits no events; only a task marked
  // :check_mode(false) can dispatch one.
  auto opened_bus = OpenEventBus(loop, data_dir, /*take_orphans=*/false, db);
  if (!opened_bus.ok()) return Fail(kExitFailed, "events: " + opened_bus.error());
  std::unique_ptr<EventBus> bus = std::move(*opened_bus);
  ConnectEventModule(rt, *bus, "task:");
  EventBus* events = options.check ? nullptr : bus.get();
  // The distributed layer is loaded only when a task goes to agents.
  std::unique_ptr<Delegator> delegator;
  std::string delegator_error;
  if (AnyDelegated(*loaded, chosen)) {
    auto opened = OpenDelegator(loop, data_dir, options.master);
    if (opened.ok())
      delegator = std::move(*opened);
    else
      delegator_error = opened.error();
  }
  bool anything_ran = false;
  bool unreached = false;  // a delegated task failed without reaching an agent

  Scheduler* current = nullptr;
  bool interrupted = false;
  std::unique_ptr<TerminalGate> gate;
  if (tty >= 0) {
    gate = std::make_unique<TerminalGate>(loop, tty, [&] {
      interrupted = true;
      if (current) current->Cancel("aborted at the prompt");
    });
  }
  auto on_signal = [&] {
    interrupted = true;
    if (current) current->Cancel("interrupted");
    if (gate) gate->Release();
  };
  loop.OnSignal(SIGINT, on_signal);
  loop.OnSignal(SIGTERM, on_signal);

  RunSummary summary;
  summary.run_id = NewUuid();
  std::string file = fs::absolute(options.file).lexically_normal().string();
  int exit_code = kExitOk;
  Clock::time_point start = Clock::now();
  std::vector<JunitSuite> junit;
  for (size_t i : chosen) {
    if (interrupted) break;
    RunInfo info;
    info.stack = options.name.empty() || chosen.size() > 1 ? workflows[i].spec.name : options.name;
    // The stack's secrets for this workflow's tasks; their values are redacted from all output.
    renderer->SetRedactor(&rt.redactor());
    if (Status s = ExposeRunSecrets(rt, db, info.stack, options.password_stdin); !s.ok()) {
      exit_code = Fail(SecretsExitCode(s), s.message());
      break;
    }
    info.run_id = chosen.size() > 1 ? NewUuid() : summary.run_id;
    info.artifacts_dir = data_dir + "/artifacts/" + info.stack + "/" + info.run_id;
    info.max_parallel = options.parallel;
    info.check_mode = options.check;
    info.gate = gate.get();
    info.file = file;
    info.delegator = delegator.get();
    info.delegator_error = delegator_error;
    auto stack = stack_store->EnsureStack(info.stack, file);
    if (!stack.ok()) {
      exit_code = Fail(kExitFailed, stack.error());
      break;
    }
    info.stack_id = stack->id;
    StackRun stack_run(loop, *state_store, *stack_store, *stack_store, plans[i], *renderer,
                       [&rt](std::string_view text) { return rt.Redact(text); });
    StackLocked locked;
    if (Status s = stack_run.Begin(*stack, RunRecordFor(info, workflows[i], file, *values, options),
                                   lock_timeout, &locked, [&] { return interrupted; });
        !s.ok()) {
      exit_code = Fail(locked.message.empty() ? kExitFailed : kExitUnreachable, s.message());
      break;
    }
    EmitEvent(events, "stack.locked", {{"stack", {{"name", info.stack}, {"run_id", info.run_id}}}},
              info.stack, info.run_id);
    EmitEvent(events, "workflow.started",
              WorkflowEventData(workflows[i].spec.name, info.stack, "running", "", 0), info.stack,
              info.run_id);
    TaskEvents task_events(events, rt, plans[i], workflows[i].spec.name, info.stack, info.run_id,
                           stack_run);
    std::vector<std::string> resources;
    RunScope scope{info.stack, info.stack_id, info.run_id, stack_store.get(), &resources};
    rt.SetRunScope(&scope);
    if (gate) gate->SetPlan(&plans[i]);
    renderer->WorkflowStarted(plans[i], info);
    WorkflowOutcome outcome =
        RunWorkflow(rt, workflows[i], plans[i], info, task_events, [&](Scheduler* s) {
          current = s;
          if (s && interrupted) s->Cancel("interrupted");  // Ctrl-C during on_start
        });
    rt.SetRunScope(nullptr);
    outcome.resources = std::move(resources);
    if (Status s = stack_run.Finish(outcome); !s.ok())
      std::fprintf(stderr, "warning: cannot record the end of the run: %s\n", s.message().c_str());
    EmitEvent(events, "stack.unlocked",
              {{"stack", {{"name", info.stack}, {"run_id", info.run_id}}}}, info.stack,
              info.run_id);
    EmitWorkflowEnd(events, rt, workflows[i].spec.name, plans[i], info, outcome.result);
    renderer->WorkflowFinished(plans[i], info, outcome);
    anything_ran = anything_ran || AnythingRan(plans[i], outcome.result);
    unreached = unreached || SomeAgentUnreached(plans[i], outcome.result);
    junit.push_back(JunitSuiteFor(plans[i], outcome.result, TakeAssertionCounts(rt.state())));
    if (outcome.result.status != RunStatus::kSuccess && summary.status == RunStatus::kSuccess)
      summary.status = outcome.result.status;
    if (outcome.result.status == RunStatus::kCancelled) interrupted = true;
    if (outcome.result.status != RunStatus::kSuccess) break;  // like make: stop at a failure
  }
  if (interrupted) summary.status = RunStatus::kCancelled;
  summary.duration = Clock::now() - start;
  // The hooks this run's events started get a bounded time to finish (events-and-scheduler.md);
  // what is left is taken over by a long-running dispatcher (scheduler run) or events retry.
  if (!bus->Drain(std::chrono::seconds(10)))
    std::fprintf(stderr,
                 "warning: hooks still running after 10s are stopped; their events are "
                 "delivered again by scheduler run or events retry\n");
  bus->Close();
  ReapChildren(rt);
  gate.reset();
  if (tty >= 0) close(tty);
  if (exit_code != kExitOk) return exit_code;  // no run happened: the error said why
  renderer->RunFinished(summary);
  int rc = summary.status == RunStatus::kCancelled ? kExitInterrupted
           : summary.status == RunStatus::kSuccess ? kExitOk
                                                   : kExitFailed;
  // No master or agent to reach and nothing done without one: unreachable (distributed.md).
  if (rc == kExitFailed && (!delegator_error.empty() || unreached) && !anything_ran)
    rc = kExitUnreachable;
  // After the run's own summary, so a report that cannot be written does not hide the result.
  if (!options.junit.empty()) {
    if (Status s = WriteJunit(options.junit, junit); !s.ok())
      return Fail(rc == kExitOk ? kExitFailed : rc, "--junit: " + s.message());
  }
  return rc;
}

}  // namespace sloth
