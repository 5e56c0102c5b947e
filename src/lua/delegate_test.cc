// Delegated tasks end to end without the network: a Delegator that hands each bundle to a real
// `sloth-runner agent run-task` child process ($SLOTH_BIN) and reports what it printed.
#include "lua/delegate.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/strings.h"
#include "lua/modules/secret.h"
#include "lua/test_util.h"
#include "lua/workflow.h"

namespace fs = std::filesystem;

namespace sloth {
namespace {

std::string Slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void Spit(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// Runs every agent of a call as `agent run-task` (each with a data dir of its own under
// `root`), one after another, and answers on the loop like a real Delegator.
class ProcessDelegator : public Delegator {
 public:
  ProcessDelegator(Loop& loop, fs::path root) : loop_(loop), root_(std::move(root)) {}

  void Run(const DelegateCall& call, LogFn log, std::function<void(AttemptResult)> done) override {
    calls.push_back(call);
    std::vector<std::string> agents = call.agents;
    if (call.label == "role=web") agents = {"ag1", "ag2"};
    std::vector<std::pair<std::string, AttemptResult>> results;
    for (const std::string& agent : agents) results.emplace_back(agent, RunOne(call, agent, log));
    AttemptResult r = call.keyed ? MergeAgentResults(results) : results.at(0).second;
    loop_.Post([done, r] { done(r); });
  }
  void Cancel(const std::string& task, const std::string&) override { cancelled.push_back(task); }

  std::vector<DelegateCall> calls;
  std::vector<std::string> cancelled;

 private:
  AttemptResult RunOne(const DelegateCall& call, const std::string& agent, const LogFn& log) {
    fs::path dir = root_ / agent;
    Spit(dir / "bundle.json", call.bundle_json);
    std::string cmd = "SLOTH_RUNNER_HOME='" + dir.string() + "' '" + std::getenv("SLOTH_BIN") +
                      "' agent run-task --agent " + agent + " <'" + (dir / "bundle.json").string() +
                      "' >'" + (dir / "out").string() + "' 2>'" + (dir / "err").string() + "'";
    int status = std::system(cmd.c_str());
    for (const std::string& line : Split(Slurp(dir / "err"), '\n'))
      if (!line.empty()) log(agent, line);
    auto r = ParseAgentResult(Slurp(dir / "out"));
    if (!r.ok()) {
      AttemptResult failed;
      failed.outcome = AttemptResult::Outcome::kFailed;
      failed.message = r.error() + " (status " + std::to_string(status) + ")";
      return failed;
    }
    return *r;
  }

  Loop& loop_;
  fs::path root_;
};

class DelegateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(std::getenv("SLOTH_BIN"), nullptr) << "SLOTH_BIN must name the binary";
    root_ = env_.dir();
    Spit(root_ / "project/lib/helper.lua",
         "return { greet = function(n) return 'hi ' .. n end }\n");
    Spit(root_ / "project/more.sloth", "function shout(s) return s:upper() end\n");
  }

  // Loads project/wf.sloth (with `code`) and runs its workflow with `delegator`.
  WorkflowOutcome RunFile(const std::string& code, Delegator* delegator,
                          const std::string& delegator_error = "") {
    fs::path file = root_ / "project/wf.sloth";
    Spit(file, code);
    Runtime& rt = env_.rt();
    EXPECT_TRUE(rt.RunString("values = { v = 7 }", "=values").ok());
    RunSecrets secrets;
    secrets.values = {{"token", "s3cret"}};
    SetSecrets(rt, secrets);
    auto loaded = LoadWorkflows(rt, file.string());
    EXPECT_TRUE(loaded.ok()) << loaded.error();
    if (!loaded.ok()) return {};
    workflows_ = std::move(*loaded);
    auto plan = Plan::Build(workflows_[0].spec);
    EXPECT_TRUE(plan.ok()) << plan.error();
    plan_ = std::make_unique<Plan>(std::move(*plan));
    RunInfo info;
    info.stack = "st";
    info.run_id = "run-1";
    info.file = file.string();
    info.delegator = delegator;
    info.delegator_error = delegator_error;
    info.artifacts_dir = (root_ / "artifacts").string();
    Progress progress;
    return RunWorkflow(rt, workflows_[0], *plan_, info, progress, [](Scheduler*) {});
  }

  const TaskResult& Task(const WorkflowOutcome& o, const std::string& name) {
    return o.result.tasks.at(static_cast<size_t>(plan_->Find(name)));
  }
  nlohmann::json Output(const WorkflowOutcome& o, const std::string& name) {
    return nlohmann::json::parse(Task(o, name).output_json);
  }

  testing::LuaEnv env_;
  fs::path root_;
  std::vector<LoadedWorkflow> workflows_;
  std::unique_ptr<Plan> plan_;
};

constexpr char kRemoteWorkflow[] = R"(
local helper = require("lib.helper")
import("more.sloth")
local a = task("a"):command(function() return true, "ok", { n = 41 } end):build()
local remote = task("remote"):depends_on({ "a" }):params({ p = "tp" }):delegate_to("ag1")
  :command(function(this, params, deps)
    log.info("remote says " .. helper.greet(this.agent.get()))
    return true, "done remotely", {
      n = deps.a.n + 1, agent = this.agent.get(), v = values.v, p = params.p, wp = params.wp,
      secret_ok = secrets.token == "s3cret", shout = shout("y"), task = params.task_name,
    }
  end):build()
local after = task("after"):depends_on({ "remote" })
  :command(function(this, params, deps)
    return true, "ok", { n = deps.remote.n, agent = deps.remote.agent, mine = this.agent.get() }
  end):build()
workflow.define("w", { tasks = { a, remote, after }, params = { wp = "W" } })
)";

TEST_F(DelegateTest, RemoteTaskSeesEverythingAndItsOutputReachesDependents) {
  ProcessDelegator d(env_.loop(), root_ / "agents");
  WorkflowOutcome o = RunFile(kRemoteWorkflow, &d);
  ASSERT_EQ(Task(o, "remote").status, TaskStatus::kSuccess) << Task(o, "remote").error;
  EXPECT_EQ(Task(o, "remote").message, "done remotely");
  nlohmann::json out = Output(o, "remote");
  EXPECT_EQ(out["n"], 42);
  EXPECT_EQ(out["agent"], "ag1");
  EXPECT_EQ(out["v"], 7);
  EXPECT_EQ(out["p"], "tp");
  EXPECT_EQ(out["wp"], "W");
  EXPECT_EQ(out["secret_ok"], true);
  EXPECT_EQ(out["shout"], "Y");
  EXPECT_EQ(out["task"], "remote");
  ASSERT_EQ(Task(o, "after").status, TaskStatus::kSuccess) << Task(o, "after").error;
  nlohmann::json after = Output(o, "after");
  EXPECT_EQ(after["n"], 42);
  EXPECT_EQ(after["agent"], "ag1");
  EXPECT_FALSE(after.contains("mine"));  // locally this.agent.get() is nil
  // The bundle carried the imported and required files; the agent ran in runs/<run id>/.
  ASSERT_EQ(d.calls.size(), 1u);
  EXPECT_FALSE(d.calls[0].keyed);
  EXPECT_EQ(d.calls[0].agents, std::vector<std::string>{"ag1"});
  fs::path run_dir = root_ / "agents/ag1/runs/run-1";
  EXPECT_TRUE(fs::exists(run_dir / "wf.sloth"));
  EXPECT_TRUE(fs::exists(run_dir / "lib/helper.lua"));
  EXPECT_TRUE(fs::exists(run_dir / "more.sloth"));
  // Its log lines joined the run's log under the task's name.
  bool seen = false;
  for (const auto& line : env_.sink().lines)
    seen = seen || (line.task == "remote" && line.text == "[ag1] remote says hi ag1");
  EXPECT_TRUE(seen);
  // The secret's value never shows in the agent's log.
  EXPECT_EQ(Slurp(root_ / "agents/ag1/err").find("s3cret"), std::string::npos);
}

TEST_F(DelegateTest, SeveralAgentsGiveAnOutputKeyedByAgent) {
  ProcessDelegator d(env_.loop(), root_ / "agents");
  WorkflowOutcome o = RunFile(R"(
local both = task("both"):delegate_to({ "ag1", "ag2" })
  :command(function(this) return true, "ok", { me = this.agent.get() } end):build()
local web = task("web"):delegate_to({ label = "role=web" })
  :command(function(this) return { success = true, who = this.agent.get() } end):build()
local join = task("join"):depends_on({ "both", "web" })
  :command(function(this, params, deps)
    return true, "ok", { s = deps.both.ag1.me .. "+" .. deps.both.ag2.me .. "/" .. deps.web.ag2.who }
  end):build()
workflow.define("w", { tasks = { both, web, join } })
)",
                              &d);
  ASSERT_EQ(Task(o, "join").status, TaskStatus::kSuccess) << Task(o, "join").error;
  EXPECT_EQ(Output(o, "join")["s"], "ag1+ag2/ag2");
  EXPECT_EQ(Output(o, "both")["ag2"]["me"], "ag2");
  ASSERT_EQ(d.calls.size(), 2u);
  EXPECT_TRUE(d.calls[0].keyed);
  EXPECT_TRUE(d.calls[1].keyed);
  EXPECT_EQ(d.calls[1].label, "role=web");
  EXPECT_TRUE(d.calls[1].agents.empty());
}

TEST_F(DelegateTest, ARemoteFailureFailsTheTaskWithItsMessage) {
  ProcessDelegator d(env_.loop(), root_ / "agents");
  WorkflowOutcome o = RunFile(R"(
local bad = task("bad"):delegate_to({ "ag1", "ag2" })
  :command(function(this)
    if this.agent.get() == "ag2" then return false, "disk full on " .. this.agent.get() end
    return true
  end):build()
workflow.define("w", { tasks = { bad } })
)",
                              &d);
  EXPECT_EQ(Task(o, "bad").status, TaskStatus::kFailed);
  EXPECT_EQ(Task(o, "bad").error, "ag2: disk full on ag2");
  EXPECT_EQ(o.result.status, RunStatus::kFailed);
}

TEST_F(DelegateTest, WithoutADelegatorTheTaskFailsWithTheReason) {
  WorkflowOutcome o = RunFile(R"(
workflow.define("w", { tasks = { task("t"):delegate_to("ag1"):command(function() end):build() } })
)",
                              nullptr, "no master known");
  EXPECT_EQ(Task(o, "t").status, TaskStatus::kFailed);
  EXPECT_EQ(Task(o, "t").error, "task is delegated to ag1, but no master known");
}

TEST_F(DelegateTest, AFileOutsideTheWorkflowDirectoryIsAClearError) {
  Spit(root_ / "outside.sloth", "x_outside = 1\n");
  ProcessDelegator d(env_.loop(), root_ / "agents");
  WorkflowOutcome o = RunFile(R"(
import("../outside.sloth")
workflow.define("w", { tasks = { task("t"):delegate_to("ag1"):command(function() end):build() } })
)",
                              &d);
  EXPECT_EQ(Task(o, "t").status, TaskStatus::kFailed);
  EXPECT_NE(Task(o, "t").error.find("outside.sloth"), std::string::npos) << Task(o, "t").error;
  EXPECT_NE(Task(o, "t").error.find("lies outside the workflow's directory"), std::string::npos);
  EXPECT_TRUE(d.calls.empty());
}

TEST_F(DelegateTest, AModuleRequiredFromOutsideIsLeftToTheAgentsOwnPath) {
  Spit(root_ / "syslib/outlib.lua", "return { answer = 42 }\n");
  ProcessDelegator d(env_.loop(), root_ / "agents");
  WorkflowOutcome o =
      RunFile("package.path = '" + (root_ / "syslib").string() + "/?.lua;' .. package.path\n" + R"(
local outlib = require("outlib")
workflow.define("w", { tasks = { task("t"):delegate_to("ag1")
  :command(function() return true, "ok", { a = outlib.answer } end):build() } })
)",
              &d);
  ASSERT_EQ(Task(o, "t").status, TaskStatus::kSuccess) << Task(o, "t").error;
  EXPECT_EQ(Output(o, "t")["a"], 42);
  ASSERT_EQ(d.calls.size(), 1u);
  auto bundle = ParseBundle(d.calls[0].bundle_json);
  ASSERT_TRUE(bundle.ok()) << bundle.error();
  EXPECT_EQ(bundle->files.size(), 1u);  // just wf.sloth
}

TEST(BundleTest, RejectsPathsThatLeaveItsDirectory) {
  Bundle b;
  b.run_id = "r";
  b.workflow = "w";
  b.task = "t";
  b.entry = "wf.sloth";
  b.files = {{"wf.sloth", ""}, {"../evil", "x"}};
  auto parsed = ParseBundle(BundleToJson(b));
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error(), "bad bundle: file path \"../evil\" is absolute or has ..");
  b.files = {{"wf.sloth", "-- hi"}};
  b.secrets = {{"k", "v"}};
  parsed = ParseBundle(BundleToJson(b));
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed->files.at("wf.sloth"), "-- hi");
  EXPECT_EQ(parsed->secrets.at("k"), "v");
}

TEST(BundleTest, AgentResultLineIsTheLastLine) {
  auto r = ParseAgentResult(
      "noise from print\n{\"status\":\"Failed\",\"error\":\"boom\",\"output\":{\"a\":1}}\n");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->outcome, AttemptResult::Outcome::kFailed);
  EXPECT_EQ(r->message, "boom");
  EXPECT_EQ(r->output_json, "{\"a\":1}");
  EXPECT_FALSE(ParseAgentResult("just text\n").ok());
}

}  // namespace
}  // namespace sloth
