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
#include "cli/load.h"
#include "cli/output.h"
#include "cli/terminal_gate.h"
#include "data/values.h"
#include "lua/lua_util.h"
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

}  // namespace

int CmdRun(const GlobalOptions& global, const RunOptions& options) {
  if (options.output != "basic" && options.output != "enhanced" && options.output != "json")
    return Fail(kExitBadInput, "unknown output format \"" + options.output + "\" (basic, enhanced, json)");
  if (options.parallel && *options.parallel < 1) return Fail(kExitBadInput, "--parallel must be at least 1");
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

  Loop loop;
  RuntimeOptions rt_options;
  rt_options.start_dir = fs::current_path().string();
  rt_options.check_mode = options.check;
  // The `state` module opens the database on first use: runs without state never touch it.
  std::unique_ptr<SqliteStateStore> state_store;
  rt_options.state_store = [&state_store, &global]() -> Result<StateStore*> {
    if (!state_store) {
      auto opened = SqliteStateStore::Open(DatabasePath(DataDir(global.data_dir)));
      if (!opened.ok()) return opened.status();
      state_store = std::move(*opened);
    }
    return static_cast<StateStore*>(state_store.get());
  };
  Runtime rt(loop, rt_options, renderer.get());
  SetValues(rt, *values);
  auto loaded = LoadFile(rt, options.file);
  if (!loaded.ok()) return Fail(kExitBadInput, loaded.error());
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
      if (s.ok()) with_tasks.push_back(i);
      else if (first_error.ok()) first_error = s;
    }
    if (with_tasks.empty() || (chosen.size() == 1 && !first_error.ok()))
      return Fail(kExitBadInput, first_error.message());
    chosen = with_tasks;
  }
  rt.EnableStrictGlobals();

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
  std::string data_dir = DataDir(global.data_dir);
  Clock::time_point start = Clock::now();
  for (size_t i : chosen) {
    if (interrupted) break;
    RunInfo info;
    info.stack = options.name.empty() || chosen.size() > 1 ? workflows[i].spec.name : options.name;
    info.run_id = chosen.size() > 1 ? NewUuid() : summary.run_id;
    info.artifacts_dir = data_dir + "/artifacts/" + info.stack + "/" + info.run_id;
    info.max_parallel = options.parallel;
    info.gate = gate.get();
    if (gate) gate->SetPlan(&plans[i]);
    renderer->WorkflowStarted(plans[i], info);
    WorkflowOutcome outcome =
        RunWorkflow(rt, workflows[i], plans[i], info, *renderer, [&](Scheduler* s) {
          current = s;
          if (s && interrupted) s->Cancel("interrupted");  // Ctrl-C during on_start
        });
    renderer->WorkflowFinished(plans[i], info, outcome);
    if (outcome.result.status != RunStatus::kSuccess && summary.status == RunStatus::kSuccess)
      summary.status = outcome.result.status;
    if (outcome.result.status == RunStatus::kCancelled) interrupted = true;
    if (outcome.result.status != RunStatus::kSuccess) break;  // like make: stop at a failure
  }
  if (interrupted) summary.status = RunStatus::kCancelled;
  summary.duration = Clock::now() - start;
  ReapChildren(rt);
  gate.reset();
  if (tty >= 0) close(tty);
  renderer->RunFinished(summary);
  if (summary.status == RunStatus::kCancelled) return kExitInterrupted;
  return summary.status == RunStatus::kSuccess ? kExitOk : kExitFailed;
}

}  // namespace sloth
