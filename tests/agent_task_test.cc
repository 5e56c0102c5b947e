// `agent run-task`: the child process an agent runs per delegated task, fed a bundle on stdin.
// And `run -d` when no master can be reached.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "e2e_util.h"

namespace sloth::e2e {
namespace {

using nlohmann::json;

constexpr char kWorkflow[] = R"(
local helper = require("lib.helper")
local t = task("t"):params({ p = "local" }):delegate_to("ignored-on-the-agent")
  :command(function(this, params, deps)
    log.info("hello from " .. tostring(this.agent.get()))
    log.warn("careful")
    local r = exec.run("pwd")
    if values.fail then return false, "asked to fail" end
    return true, "fine", {
      agent = this.agent.get(), pwd = r.stdout:gsub("%s+$", ""), v = values.v, p = params.p,
      up = deps.up.n, secret_len = #secrets.token, greet = helper.greet("x"),
      attempt = this.attempt, workdir = params.workdir,
    }
  end):build()
workflow.define("w", { tasks = { task("up"):command(function() end):build(), t } })
)";

json Bundle(const json& values = json::object()) {
  return {{"version", 1},
          {"run_id", "run-42"},
          {"stack", "st"},
          {"workflow", "w"},
          {"task", "t"},
          {"attempt", 2},
          {"entry", "wf.sloth"},
          {"files",
           {{"wf.sloth", kWorkflow},
            {"lib/helper.lua", "return { greet = function(n) return 'hi ' .. n end }"}}},
          {"values", values},
          {"params", {{"p", "from-runner"}}},
          {"deps", {{"up", {{"n", 5}}}}},
          {"secrets", {{"token", "abcd"}}},
          {"check_mode", false}};
}

json LastLine(const std::string& out) {
  std::string last;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) last = line;
  return json::parse(last, nullptr, false);
}

TEST(AgentRunTask, RunsTheTaskFromItsBundleInThePerRunDirectory) {
  Sandbox box;
  CmdResult r =
      box.Run({"agent", "run-task", "--agent", "web-1"}, Bundle({{"v", 3}}).dump() + "\n");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  json res = LastLine(r.out);
  ASSERT_TRUE(res.is_object()) << Describe(r);
  EXPECT_EQ(res["status"], "Success");
  EXPECT_EQ(res["attempts"], 1);
  EXPECT_EQ(res["message"], "fine");
  EXPECT_EQ(res["changed"], true);
  EXPECT_TRUE(res["duration_ms"].is_number());
  json out = res["output"];
  std::string run_dir = (box.home() / "runs" / "run-42").string();
  EXPECT_EQ(out["agent"], "web-1");
  EXPECT_EQ(out["pwd"], run_dir);
  EXPECT_EQ(out["workdir"], run_dir);
  EXPECT_EQ(out["v"], 3);
  EXPECT_EQ(out["p"], "from-runner");
  EXPECT_EQ(out["up"], 5);
  EXPECT_EQ(out["secret_len"], 4);
  EXPECT_EQ(out["greet"], "hi x");
  EXPECT_EQ(out["attempt"], 2);
  EXPECT_TRUE(std::filesystem::exists(box.home() / "runs/run-42/lib/helper.lua"));
  // Log lines on stderr, one per line; the secret never appears.
  EXPECT_NE(r.err.find("hello from web-1\n"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("warn: careful\n"), std::string::npos) << r.err;
  EXPECT_EQ(r.output().find("abcd"), std::string::npos);
}

TEST(AgentRunTask, TakesTheAgentNameFromTheEnvironment) {
  Sandbox box;
  box.SetEnv("SLOTH_AGENT_NAME", "env-agent");
  CmdResult r = box.Run({"agent", "run-task"}, Bundle().dump());
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(LastLine(r.out)["output"]["agent"], "env-agent");
}

TEST(AgentRunTask, AFailedTaskExitsOneWithItsMessage) {
  Sandbox box;
  CmdResult r = box.Run({"agent", "run-task", "--agent", "a"}, Bundle({{"fail", true}}).dump());
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  json res = LastLine(r.out);
  EXPECT_EQ(res["status"], "Failed");
  EXPECT_EQ(res["error"], "asked to fail");
}

TEST(AgentRunTask, AnUnknownTaskFailsAndSaysSo) {
  Sandbox box;
  json b = Bundle();
  b["task"] = "nope";
  CmdResult r = box.Run({"agent", "run-task"}, b.dump());
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_EQ(LastLine(r.out)["error"], "workflow w has no task nope");
}

TEST(AgentRunTask, ABadBundleExitsTwoWithAClearError) {
  Sandbox box;
  CmdResult r = box.Run({"agent", "run-task"}, "this is not json");
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("error: bad bundle: not a JSON object"), std::string::npos) << r.err;

  json b = Bundle();
  b["files"]["../escape.lua"] = "x";
  r = box.Run({"agent", "run-task"}, b.dump());
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("error: bad bundle: file path \"../escape.lua\" is absolute or has .."),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(box.home() / "escape.lua"));

  b = Bundle();
  b["entry"] = "missing.sloth";
  r = box.Run({"agent", "run-task"}, b.dump());
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("the entry file missing.sloth is not in files"), std::string::npos) << r.err;

  b = Bundle();
  b.erase("run_id");
  r = box.Run({"agent", "run-task"}, b.dump());
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("error: bad bundle: missing run_id"), std::string::npos) << r.err;
}

TEST(RunDelegated, WithNoReachableMasterNothingRunsAndTheExitIsThree) {
  Sandbox box;
  box.Write("wf.sloth", R"(
workflow.define("w", { tasks = { task("t"):command(function() end):build() } })
)");
  CmdResult r = box.Run({"run", "w", "-f", "wf.sloth", "-d", "ag1", "-o", "json"});
  EXPECT_EQ(r.exit_code, 3) << Describe(r);
  json doc = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << Describe(r);
  EXPECT_EQ(doc["tasks"]["t"]["status"], "Failed");
  EXPECT_EQ(
      doc["tasks"]["t"]["error"].get<std::string>().rfind("task is delegated to ag1, but ", 0), 0u)
      << Describe(r);
}

TEST(RunDelegated, WithoutDelegationTheDistributedLayerIsNeverOpened) {
  Sandbox box;
  box.Write("wf.sloth", R"(
workflow.define("w", { tasks = { task("t"):command(function(this) return true, "ok", { a = tostring(this.agent.get()) } end):build() } })
)");
  CmdResult r = box.Run({"run", "w", "-f", "wf.sloth", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(json::parse(r.out)["tasks"]["t"]["output"]["a"], "nil");
}

}  // namespace
}  // namespace sloth::e2e
