// End-to-end tests of `sloth-runner run`: output contracts, selection, interruption, bad input.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "e2e_util.h"

namespace sloth::e2e {
namespace {

using nlohmann::json;

constexpr char kTwoWorkflows[] = R"(
workflow.define("first", { tasks = { { name = "a", command = function() print("printed by a") end } } })
workflow.define("second", { tasks = {
  { name = "b", command = function() outputs.answer = 42 end },
  { name = "c", depends_on = "b", command = function(params, deps) log.info("c ran") end },
  { name = "d", command = "echo d ran" },
} })
)";

TEST(Run, JsonModePrintsOneDocumentAndSendsEverythingElseToStderr) {
  Sandbox box;
  box.Write("wf.sloth", kTwoWorkflows);
  CmdResult r = box.Run({"run", "second", "-f", "wf.sloth", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json doc = json::parse(r.out);  // throws (fails the test) unless stdout is exactly one document
  EXPECT_EQ(doc["status"], "success");
  EXPECT_EQ(doc["workflow"], "second");
  EXPECT_EQ(doc["stack"]["name"], "second");
  EXPECT_EQ(doc["outputs"]["answer"], 42);
  EXPECT_EQ(doc["tasks"]["d"]["output"]["stdout"], "d ran\n");
  EXPECT_EQ(doc["tasks"]["c"]["attempts"], 1);
  EXPECT_NE(r.err.find("c ran"), std::string::npos);
  EXPECT_NE(r.err.find("d ran"), std::string::npos);
}

TEST(Run, WithoutANameEveryWorkflowRunsInOrder) {
  Sandbox box;
  box.Write("wf.sloth", kTwoWorkflows);
  CmdResult r = box.Run({"run", "-f", "wf.sloth", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json doc = json::parse(r.out);
  ASSERT_EQ(doc["workflows"].size(), 2u);
  EXPECT_EQ(doc["workflows"][0]["workflow"], "first");
  EXPECT_EQ(doc["workflows"][1]["workflow"], "second");
  EXPECT_NE(r.err.find("printed by a"), std::string::npos);  // print() goes to stderr in json mode
}

TEST(Run, TaskSelectionRunsOnlyTheTaskAndItsDependencies) {
  Sandbox box;
  box.Write("wf.sloth", kTwoWorkflows);
  CmdResult r = box.Run({"run", "second", "-f", "wf.sloth", "--task", "c", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json doc = json::parse(r.out);
  EXPECT_TRUE(doc["tasks"].contains("b"));
  EXPECT_TRUE(doc["tasks"].contains("c"));
  EXPECT_FALSE(doc["tasks"].contains("d"));
  CmdResult bad = box.Run({"run", "second", "-f", "wf.sloth", "--task", "cc"});
  EXPECT_EQ(bad.exit_code, 2) << Describe(bad);
  EXPECT_NE(bad.err.find("did you mean \"c\""), std::string::npos) << Describe(bad);
}

TEST(Run, TaskSelectionAcrossWorkflowsRunsOnlyThoseThatHaveTheTask) {
  Sandbox box;
  box.Write("wf.sloth", kTwoWorkflows);
  CmdResult r = box.Run({"run", "-f", "wf.sloth", "--task", "b", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json doc = json::parse(r.out);
  EXPECT_EQ(doc["workflow"], "second");  // "first" has no task b: it does not run
  EXPECT_EQ(doc["tasks"].size(), 1u);
  EXPECT_EQ(box.Run({"run", "-f", "wf.sloth", "--task", "zz"}).exit_code, 2);
}

TEST(Run, AnAbortIsNotRetried) {
  Sandbox box;
  box.Write("wf.sloth",
            "task('t'):retries(3):retry_delay('1ms'):abort_if('true'):command('true'):build()\n");
  CmdResult r = box.Run({"run", "-f", "wf.sloth", "-o", "json"});
  ASSERT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(json::parse(r.out)["tasks"]["t"]["attempts"], 1);
}

TEST(Run, GoroutinesEndWithTheirTask) {
  Sandbox box;
  // The first workflow's goroutines are still waiting when their tasks end; the second
  // workflow keeps the loop running past the moment they would wake up.
  box.Write(
      "wf.sloth",
      "workflow.define('first', { tasks = {\n"
      "  { name = 'a', command = function()\n"
      "      goroutine.spawn(function() goroutine.sleep(300); log.info('LATE SLEEPER') end)\n"
      "      goroutine.spawn(function() exec.run('sleep 0.3'); log.info('LATE COMMAND') end)\n"
      "    end },\n"
      "  { name = 'b', retries = 1, retry_delay = '1ms', command = function(this)\n"
      "      goroutine.spawn(function() while true do end end)\n"
      "      if this.attempt == 1 then return false, 'again' end\n"
      "    end },\n"
      "} })\n"
      "workflow.define('second', { tasks = { { name = 'c', command = 'sleep 0.6' } } })\n");
  auto start = std::chrono::steady_clock::now();
  CmdResult r = box.Run({"run", "-f", "wf.sloth"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5)) << Describe(r);
  EXPECT_EQ(r.output().find("LATE"), std::string::npos) << Describe(r);
}

TEST(Run, ADeadlockFailsTheRunAndNamesTheWait) {
  Sandbox box;
  box.Write("wf.sloth",
            "task('stuck'):command(function() goroutine.channel():receive() end):build()\n");
  CmdResult r = box.Run({"run", "-f", "wf.sloth", "-o", "json"});
  ASSERT_EQ(r.exit_code, 1) << Describe(r);
  json doc = json::parse(r.out);
  EXPECT_EQ(doc["tasks"]["stuck"]["status"], "Failed");
  EXPECT_NE(doc["error"].get<std::string>().find("all goroutines are asleep"), std::string::npos)
      << Describe(r);
}

TEST(Run, BasicOutputShowsTasksSummaryAndOutputsWithoutColourWhenPiped) {
  Sandbox box;
  box.Write("wf.sloth", kTwoWorkflows);
  CmdResult r = box.Run({"run", "second", "-f", "wf.sloth"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("▶ b"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("✓ c"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("TASK"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Exported Outputs:\n  answer: 42"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\033["), std::string::npos) << "escape codes in piped output";
}

TEST(Run, BadInputExitsTwo) {
  Sandbox box;
  box.Write("wf.sloth", kTwoWorkflows);
  EXPECT_EQ(box.Run({"run", "-f", "missing.sloth"}).exit_code, 2);
  EXPECT_EQ(box.Run({"run", "-f", "wf.sloth", "-o", "xml"}).exit_code, 2);
  EXPECT_EQ(box.Run({"run", "-f", "wf.sloth", "--parallel", "0"}).exit_code, 2);
  EXPECT_EQ(box.Run({"run", "-f", "wf.sloth", "-v", "nope.yaml"}).exit_code, 2);
  EXPECT_EQ(box.Run({"run", "-f", "wf.sloth", "--set", "novalue"}).exit_code, 2);
  EXPECT_EQ(box.Run({"run"}).exit_code, 2);
  box.Write("bytecode.sloth", std::string("\x1bLua", 4));
  CmdResult r = box.Run({"run", "-f", "bytecode.sloth"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bytecode"), std::string::npos) << Describe(r);
}

TEST(Run, ATaskErrorPointsAtTheWorkflowFileAndLine) {
  Sandbox box;
  box.Write("wf.sloth",
            "local t = task('t')\n  :command(function()\n    error('boom')\n  end)\n  :build()\n"
            "workflow.define('w', { tasks = { t } })\n");
  CmdResult r = box.Run({"run", "-f", "wf.sloth", "-o", "json"});
  EXPECT_EQ(r.exit_code, 1);
  json doc = json::parse(r.out);
  std::string error = doc["tasks"]["t"]["error"];
  EXPECT_NE(error.find("wf.sloth:3: boom"), std::string::npos) << error;
}

TEST(Run, UndefinedGlobalsFailLoudlyInsideTasks) {
  Sandbox box;
  box.Write("wf.sloth", "task('t'):command(function() return valuez.x end):build()\n");
  CmdResult r = box.Run({"run", "-f", "wf.sloth", "-o", "json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("undefined global 'valuez'"), std::string::npos) << Describe(r);
}

TEST(Run, CheckModeRunsNoCommands) {
  Sandbox box;
  box.Write("wf.sloth", "task('t'):command('touch made'):build()\n");
  CmdResult r = box.Run({"run", "-f", "wf.sloth", "--check"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_FALSE(box.Exists("made"));
  r = box.Run({"run", "-f", "wf.sloth"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(box.Exists("made"));
}

TEST(Run, InteractiveNeedsATerminal) {
  Sandbox box;
  box.Write("wf.sloth", "task('t'):command('true'):build()\n");
  CmdResult r = box.Run({"run", "-f", "wf.sloth", "--interactive"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
}

// Starts the binary without waiting for it; returns its pid.
pid_t StartInBackground(const Sandbox& box, const std::vector<std::string>& args,
                        const std::string& out_file) {
  std::vector<std::string> argv = {"/bin/sh", "-c",
                                   "cd '" + box.work().string() +
                                       "' && exec env SLOTH_RUNNER_HOME='" + box.home().string() +
                                       "' \"$0\" \"$@\" > '" + out_file + "' 2>&1",
                                   SlothBin()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  posix_spawn(&pid, "/bin/sh", nullptr, &attr, cargv.data(), environ);
  posix_spawnattr_destroy(&attr);
  return pid;
}

TEST(Run, InterruptCancelsTheRunKillsCommandsAndExits130) {
  Sandbox box;
  box.Write(
      "wf.sloth",
      "task('slow'):command(function() exec.run('echo $$ > child.pid; exec sleep 30') "
      "end):build()\n"
      "task('never'):depends_on('slow'):command(function() fs.write('never', 'x') end):build()\n");
  std::string out = (box.root() / "out.json").string();
  pid_t pid = StartInBackground(box, {"run", "-f", "wf.sloth", "-o", "json"}, out);
  ASSERT_GT(pid, 0);
  for (int i = 0; i < 500 && !box.Exists("child.pid"); ++i) usleep(10000);
  ASSERT_TRUE(box.Exists("child.pid"));
  usleep(100000);
  kill(pid, SIGINT);
  int status = 0;
  for (int i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) == 0; ++i) usleep(10000);
  ASSERT_TRUE(WIFEXITED(status)) << "did not exit after SIGINT";
  EXPECT_EQ(WEXITSTATUS(status), 130);
  std::string text = ReadFile(out);
  json doc = json::parse(text.substr(text.find('{')));
  EXPECT_EQ(doc["status"], "cancelled");
  EXPECT_EQ(doc["tasks"]["slow"]["status"], "Failed");
  EXPECT_EQ(doc["tasks"]["never"]["status"], "Skipped");
  pid_t child = std::stoi(box.Read("child.pid"));
  EXPECT_NE(kill(child, 0), 0) << "the command outlived the run";
  EXPECT_FALSE(box.Exists("never"));
}

// Waits up to `seconds` for `pid` to exit; returns its wait status, or -1 if it did not.
int WaitFor(pid_t pid, int seconds) {
  int status = 0;
  for (int i = 0; i < seconds * 100; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

TEST(Run, InterruptDuringOnStartRunsNoTask) {
  Sandbox box;
  box.Write("wf.sloth",
            "workflow.define('w', {\n"
            "  on_start = function() exec.run('touch started; sleep 1') end,\n"
            "  tasks = { { name = 't', command = function() fs.write('ran', 'x') end } },\n"
            "})\n");
  std::string out = (box.root() / "out.txt").string();
  pid_t pid = StartInBackground(box, {"run", "-f", "wf.sloth"}, out);
  ASSERT_GT(pid, 0);
  for (int i = 0; i < 500 && !box.Exists("started"); ++i) usleep(10000);
  ASSERT_TRUE(box.Exists("started"));
  usleep(100000);
  kill(pid, SIGINT);
  int status = WaitFor(pid, 10);
  ASSERT_TRUE(status >= 0 && WIFEXITED(status)) << ReadFile(out);
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_FALSE(box.Exists("ran")) << "a task started after Ctrl-C";
}

TEST(Run, InterruptTerminatesCommandsOfFailureHooks) {
  Sandbox box;
  box.Write("wf.sloth",
            "task('t'):command(function() return false, 'no' end)\n"
            "  :on_failure(function() exec.run('touch hook; sleep 5') end):build()\n");
  std::string out = (box.root() / "out.txt").string();
  pid_t pid = StartInBackground(box, {"run", "-f", "wf.sloth"}, out);
  ASSERT_GT(pid, 0);
  for (int i = 0; i < 500 && !box.Exists("hook"); ++i) usleep(10000);
  ASSERT_TRUE(box.Exists("hook"));
  usleep(100000);
  auto start = std::chrono::steady_clock::now();
  kill(pid, SIGINT);
  int status = WaitFor(pid, 10);
  ASSERT_TRUE(status >= 0 && WIFEXITED(status)) << ReadFile(out);
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3))
      << "the hook's command was not terminated";
}

TEST(Run, BusyTaskTimeoutCallsOnTimeout) {
  Sandbox box;
  box.Write("wf.sloth",
            "task('t'):timeout('300ms'):command(function() while true do end end)\n"
            "  :on_timeout(function() fs.write('on_timeout', 'x') end):build()\n");
  CmdResult r = box.Run({"run", "-f", "wf.sloth", "-o", "json"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  json doc = json::parse(r.out);
  EXPECT_EQ(doc["tasks"]["t"]["status"], "Failed");
  EXPECT_TRUE(box.Exists("on_timeout")) << Describe(r);
}

}  // namespace
}  // namespace sloth::e2e
