// Stacks end to end: runs recorded on their stack, the stack CLI, run locks, drift, rollback,
// and a runner killed at random points.
#include <signal.h>
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "e2e_util.h"

namespace sloth::e2e {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr char kResourceFlow[] = R"(
local deploy = task("deploy")
  :command(function()
    local status = stack.register_resource({
      type = "config", name = "app", module = "file",
      properties = { content = fs.read("config.txt"), version = values.version or "1" },
    })
    log.info("resource status: " .. status)
    stack.update_resource("config", "app", { state = "applied" })
    stack.set_output("endpoint", "https://app.example.com")
    return true
  end)
  :build()
workflow.define("deploy", { tasks = { deploy } })
)";

class StackCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    box_.Write("wf.sloth", kResourceFlow);
    box_.Write("config.txt", "a=1");
  }
  CmdResult Run(const std::vector<std::string>& args) const { return box_.Run(args); }
  json Json(const std::vector<std::string>& args) const {
    CmdResult r = Run(args);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j;
  }
  std::string Status(const std::vector<std::string>& args) const {
    CmdResult r = Run(args);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    for (const char* s : {"created", "unchanged", "changed"})
      if (r.output().find(std::string("resource status: ") + s) != std::string::npos) return s;
    return "none";
  }

  Sandbox box_;
};

TEST_F(StackCliTest, RunsAreRecordedWithTaskResultsAndTheStackIdIsStable) {
  json first = Json({"run", "prod", "-f", "wf.sloth", "-o", "json", "--set", "version=2"});
  json show = Json({"stack", "show", "prod", "-o", "json"});
  EXPECT_EQ(first["stack"]["id"], show["id"]);
  EXPECT_EQ(first["stack"]["name"], "prod");
  EXPECT_EQ(show["outputs"]["endpoint"], "https://app.example.com");
  EXPECT_EQ(show["status"], "success");
  ASSERT_EQ(show["resources"].size(), 1u);
  EXPECT_EQ(show["resources"][0]["state"], "applied");
  json second = Json({"run", "prod", "-f", "wf.sloth", "-o", "json"});
  EXPECT_EQ(second["stack"]["id"], first["stack"]["id"]);
  json history = Json({"stack", "history", "prod", "-o", "json"});
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0]["run_id"], second["run_id"]);  // newest first
  EXPECT_EQ(history[1]["run_id"], first["run_id"]);
  EXPECT_EQ(history[1]["values"]["version"], 2);
  EXPECT_EQ(history[0]["status"], "success");
  EXPECT_EQ(history[0]["check"], false);
  ASSERT_EQ(history[0]["tasks"].size(), 1u);
  EXPECT_EQ(history[0]["tasks"][0]["name"], "deploy");
  EXPECT_EQ(history[0]["tasks"][0]["status"], "Success");
  EXPECT_EQ(history[0]["tasks"][0]["attempts"], 1);
  EXPECT_EQ(Json({"stack", "history", "prod", "-n", "1", "-o", "json"}).size(), 1u);
  EXPECT_EQ(Json({"stack", "list", "-o", "json"})[0]["name"], "prod");
}

TEST_F(StackCliTest, CreatedUnchangedChangedAndCheckRunsRecordNothing) {
  EXPECT_EQ(Status({"run", "prod", "-f", "wf.sloth"}), "created");
  EXPECT_EQ(Status({"run", "prod", "-f", "wf.sloth"}), "unchanged");
  box_.Write("config.txt", "a=2");
  EXPECT_EQ(Status({"run", "prod", "-f", "wf.sloth", "--check"}), "changed");
  // The check run changed nothing: a real run still sees the change.
  json check = Json({"stack", "history", "prod", "-o", "json"})[0];
  EXPECT_EQ(check["check"], true);
  EXPECT_EQ(Status({"run", "prod", "-f", "wf.sloth"}), "changed");
  EXPECT_EQ(Status({"run", "prod", "-f", "wf.sloth"}), "unchanged");
  json resources = Json({"stack", "resources", "prod", "-o", "json"});
  EXPECT_EQ(resources[0]["properties"]["content"], "a=2");
}

TEST_F(StackCliTest, EnhancedOutputSummarisesTheRunsResources) {
  CmdResult first = Run({"run", "prod", "-f", "wf.sloth", "-o", "enhanced"});
  EXPECT_THAT(first.out, HasSubstr("+ config/app created"));
  EXPECT_THAT(first.out, HasSubstr("1 created"));
  box_.Write("config.txt", "a=2");
  CmdResult check = Run({"run", "prod", "-f", "wf.sloth", "-o", "enhanced", "--check"});
  EXPECT_THAT(check.out, HasSubstr("Resources (check: nothing was recorded):"));
  EXPECT_THAT(check.out, HasSubstr("~ config/app changed"));
}

TEST_F(StackCliTest, FailedRunSavesNoOutputs) {
  box_.Write("fail.sloth", R"(
    local t = task("t"):command(function() stack.set_output("x", 1); return false, "no" end):build()
    workflow.define("w", { tasks = { t } })
  )");
  EXPECT_EQ(Run({"run", "prod", "-f", "fail.sloth"}).exit_code, 1);
  json show = Json({"stack", "show", "prod", "-o", "json"});
  EXPECT_EQ(show["status"], "failed");
  EXPECT_TRUE(show["outputs"].empty());
  EXPECT_EQ(show["history"][0]["tasks"][0]["error"], "no");
}

TEST_F(StackCliTest, ExportImportRoundTrip) {
  ASSERT_EQ(Run({"run", "prod", "-f", "wf.sloth"}).exit_code, 0);
  ASSERT_EQ(Run({"run", "prod", "-f", "wf.sloth"}).exit_code, 0);
  json exported = Json({"stack", "export", "prod"});
  ASSERT_EQ(Run({"stack", "export", "prod", "--file", "prod.json"}).exit_code, 0);
  EXPECT_EQ(Run({"stack", "import", "prod.json"}).exit_code, 1);  // the stack exists
  EXPECT_EQ(Run({"stack", "delete", "prod"}).exit_code, 2);       // needs --force
  ASSERT_EQ(Run({"stack", "delete", "prod", "--force"}).exit_code, 0);
  CmdResult gone = Run({"stack", "show", "prod"});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_THAT(gone.err, HasSubstr("error: stack prod not found"));
  ASSERT_EQ(Run({"stack", "import", "prod.json"}).exit_code, 0);
  json back = Json({"stack", "export", "prod"});
  EXPECT_EQ(back["id"], exported["id"]);
  EXPECT_EQ(back["resources"], exported["resources"]);
  EXPECT_EQ(back["history"], exported["history"]);
  EXPECT_EQ(back["outputs"], exported["outputs"]);
  // The imported stack carries on: the resource is unchanged.
  EXPECT_EQ(Status({"run", "prod", "-f", "wf.sloth"}), "unchanged");
  box_.Write("bad.json", R"({"name": "x", "id": "y", "resources": [{"name": "no type"}]})");
  EXPECT_EQ(Run({"stack", "import", "bad.json"}).exit_code, 1);
  EXPECT_EQ(Run({"stack", "show", "x"}).exit_code, 1);  // all or nothing
  box_.Write("notjson.json", "[1,");
  EXPECT_EQ(Run({"stack", "import", "notjson.json"}).exit_code, 2);
  for (const char* cmd : {"list", "show", "resources", "outputs", "history", "drift"}) {
    std::vector<std::string> args = {"stack", cmd};
    if (std::string(cmd) != "list") args.push_back("prod");
    args.insert(args.end(), {"-o", "yaml"});
    CmdResult bad = Run(args);
    EXPECT_EQ(bad.exit_code, 2) << cmd;
    EXPECT_THAT(bad.err, HasSubstr("unknown output \"yaml\"")) << cmd;
  }
}

TEST_F(StackCliTest, DriftReportsWhatChangedBehindTheStacksBackAndChangesNothing) {
  ASSERT_EQ(Run({"run", "prod", "-f", "wf.sloth", "--set", "version=7"}).exit_code, 0);
  json clean = Json({"stack", "drift", "prod", "-o", "json"});
  EXPECT_EQ(clean["drift"], false);  // the last run's values are used: version 7 is no drift
  box_.Write("config.txt", "a=changed by hand");
  json drift = Json({"stack", "drift", "prod", "-o", "json"});
  EXPECT_EQ(drift["drift"], true);
  ASSERT_EQ(drift["resources"].size(), 1u);
  EXPECT_EQ(drift["resources"][0]["status"], "changed");
  EXPECT_EQ(drift["resources"][0]["diff"]["content"]["old"], "a=1");
  EXPECT_EQ(drift["resources"][0]["diff"]["content"]["new"], "a=changed by hand");
  CmdResult table = Run({"stack", "drift", "prod"});
  EXPECT_THAT(table.out, HasSubstr("config/app would be changed"));
  EXPECT_EQ(Json({"stack", "resources", "prod", "-o", "json"})[0]["properties"]["content"], "a=1");
  EXPECT_EQ(Run({"stack", "drift", "nope"}).exit_code, 1);
}

TEST_F(StackCliTest, ALockedStackFailsARunWithTheHolderOrWaitsForIt) {
  ASSERT_EQ(Run({"stack", "new", "prod", "-d", "production"}).exit_code, 0);
  EXPECT_EQ(Run({"stack", "new", "prod"}).exit_code, 1);  // exists
  CmdResult locked = Run({"stack", "lock", "prod", "--reason", "maintenance", "--ttl", "10m"});
  ASSERT_EQ(locked.exit_code, 0) << Describe(locked);
  CmdResult refused = Run({"run", "prod", "-f", "wf.sloth"});
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_THAT(refused.err, HasSubstr("error: stack prod is locked by"));
  EXPECT_THAT(refused.err, HasSubstr("(maintenance) since"));
  EXPECT_EQ(Run({"run", "prod", "-f", "wf.sloth", "--lock-timeout", "300ms"}).exit_code, 3);
  EXPECT_EQ(Run({"stack", "lock", "prod"}).exit_code, 3);  // already locked
  ASSERT_EQ(Run({"stack", "unlock", "prod"}).exit_code, 0);
  EXPECT_EQ(Run({"stack", "unlock", "prod"}).exit_code, 1);  // not locked
  EXPECT_EQ(Run({"run", "prod", "-f", "wf.sloth"}).exit_code, 0);
  EXPECT_EQ(Run({"run", "prod", "-f", "wf.sloth", "--lock-timeout", "soon"}).exit_code, 2);
}

TEST_F(StackCliTest, ASecondRunWaitsForTheFirstWithinItsLockTimeout) {
  box_.Write("slow.sloth", R"(
    local t = task("t"):command(function()
      fs.write("started", "yes")
      exec.run("sleep 1.5")
      return true
    end):build()
    workflow.define("w", { tasks = { t } })
  )");
  pid_t first = box_.RunInBackground("first", {"run", "prod", "-f", "slow.sloth"});
  ASSERT_GT(first, 0);
  for (int i = 0; i < 500 && !box_.Exists("started"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(box_.Exists("started"));
  CmdResult refused = Run({"run", "prod", "-f", "wf.sloth"});
  EXPECT_EQ(refused.exit_code, 3) << Describe(refused);
  EXPECT_THAT(refused.err, HasSubstr("pid " + std::to_string(first)));
  // A run's lock is not released by a plain unlock.
  EXPECT_EQ(Run({"stack", "unlock", "prod"}).exit_code, 1);
  CmdResult waited = Run({"run", "prod", "-f", "wf.sloth", "--lock-timeout", "30s"});
  EXPECT_EQ(waited.exit_code, 0) << Describe(waited);
  int status = 0;
  waitpid(first, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  json history = Json({"stack", "history", "prod", "-o", "json"});
  ASSERT_EQ(history.size(), 2u);
  // They did not overlap: the second started after the first ended.
  EXPECT_GE(history[0]["started_at_ms"].get<int64_t>(),
            history[1]["started_at_ms"].get<int64_t>() + history[1]["duration_ms"].get<int64_t>());
}

TEST_F(StackCliTest, UndoRunsForCompletedTasksInReverseOrderOnlyWhenTheRunFails) {
  box_.Write("undo.sloth", R"(
    local function step(name, after, ok)
      return task(name):depends_on(after):command(function() return ok, ok and "" or "broke" end)
        :undo(function() state.list_push("undone", name) end):build()
    end
    local a, b, c = step("a", {}, true), step("b", "a", true), step("c", "b", values.fail ~= true)
    workflow.define("w", { tasks = { a, b, c } })
  )");
  EXPECT_EQ(Run({"run", "w", "-f", "undo.sloth"}).exit_code, 0);
  EXPECT_EQ(Run({"state", "get", "undone"}).exit_code, 1);  // a good run undoes nothing
  CmdResult failed = Run({"run", "w", "-f", "undo.sloth", "--set", "fail=true"});
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_THAT(failed.output(), HasSubstr("rolled back 2 tasks"));
  EXPECT_EQ(Run({"state", "get", "undone"}).out, "[\"b\",\"a\"]\n");
}

// quality.md: kill -9 of a runner at random points. After each kill the database is intact,
// every task that finished before the kill has its record, and a new run is not locked out.
TEST(StackReliability, KillNineAtRandomPointsLosesNoFinishedTaskAndLeavesNoLock) {
  Sandbox box;
  box.Write("work.sloth", R"(
    local tasks = {}
    for i = 1, 8 do
      tasks[i] = task("t" .. i)
        :depends_on(i > 1 and { "t" .. (i - 1) } or {})
        :command(function(this)
          -- Started markers: a task starts only after the one before it finished and was recorded.
          fs.append("started.log", values.round .. " t" .. i .. "\n")
          for k = 1, 20 do state.increment("counter." .. values.round) end
          stack.register_resource({ type = "step", name = "t" .. i, properties = { round = values.round } })
          goroutine.sleep(math.random(5, 40))
          return true
        end):build()
    end
    workflow.define("work", { tasks = tasks })
  )");
  std::mt19937 rng(20261122);
  for (int round = 0; round < 20; ++round) {
    std::string r = std::to_string(round);
    pid_t pid = box.RunInBackground("round" + r, {"run", "prod", "-f", "work.sloth", "--set",
                                                  "round=" + r, "--lock-timeout", "10s"});
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<>(5, 400)(rng)));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
  }
  CmdResult check =
      box.Spawn({"sqlite3", (box.home() / "sloth.db").string(), "PRAGMA integrity_check"});
  ASSERT_EQ(check.exit_code, 0) << Describe(check);
  EXPECT_EQ(check.out, "ok\n");

  // Every task that a later task's start proves finished has its record.
  std::map<std::string, std::set<std::string>> started;
  std::istringstream log(box.Read("started.log"));
  for (std::string round, name; log >> round >> name;) started[round].insert(name);
  CmdResult hist = box.Run({"stack", "history", "prod", "-o", "json"});
  ASSERT_EQ(hist.exit_code, 0) << Describe(hist);
  json history = json::parse(hist.out);
  std::map<std::string, std::set<std::string>> recorded;
  for (const json& run : history) {
    std::string round = std::to_string(run["values"]["round"].get<int>());
    for (const json& t : run["tasks"]) {
      EXPECT_EQ(t["status"], "Success");
      recorded[round].insert(t["name"].get<std::string>());
    }
  }
  int checked = 0;
  for (const auto& [round, names] : started)
    for (int i = 2; i <= 8; ++i)
      if (names.count("t" + std::to_string(i))) {
        EXPECT_TRUE(recorded[round].count("t" + std::to_string(i - 1)))
            << "round " << round << ": t" << i - 1 << " finished but has no record";
        ++checked;
      }
  EXPECT_GT(checked, 0) << "no round got past its first task: the kills came too early";

  // The dead runs hold no lock: a new run goes at once, and the database works.
  CmdResult rerun = box.Run({"run", "prod", "-f", "work.sloth", "--set", "round=99"});
  EXPECT_EQ(rerun.exit_code, 0) << Describe(rerun);
  EXPECT_EQ(box.Run({"state", "get", "counter.99"}).out, "160\n");
  json last = json::parse(box.Run({"stack", "history", "prod", "-n", "1", "-o", "json"}).out);
  EXPECT_EQ(last[0]["status"], "success");
  EXPECT_EQ(last[0]["tasks"].size(), 8u);
}

}  // namespace
}  // namespace sloth::e2e
