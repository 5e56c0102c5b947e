// End-to-end tests of the `state` commands and of the `state` module in a real run.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "e2e_util.h"

namespace sloth::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

class StateCliTest : public ::testing::Test {
 protected:
  CmdResult Run(const std::vector<std::string>& args) { return box_.Run(args); }
  Sandbox box_;
};

TEST_F(StateCliTest, SetGetPrintsRawValues) {
  ASSERT_EQ(Run({"state", "set", "greeting", "hello world"}).exit_code, 0);
  ASSERT_EQ(Run({"state", "set", "n", "42"}).exit_code, 0);
  ASSERT_EQ(Run({"state", "set", "cfg", R"({"a": [1, 2], "b": true})"}).exit_code, 0);
  ASSERT_EQ(Run({"state", "set", "quoted", R"("json string")"}).exit_code, 0);
  EXPECT_EQ(Run({"state", "get", "greeting"}).out, "hello world\n");
  EXPECT_EQ(Run({"state", "get", "n"}).out, "42\n");
  EXPECT_EQ(Run({"state", "get", "cfg"}).out, "{\"a\":[1,2],\"b\":true}\n");
  EXPECT_EQ(Run({"state", "get", "quoted"}).out, "json string\n");
  EXPECT_TRUE(std::filesystem::exists(box_.home() / "sloth.db"));
}

TEST_F(StateCliTest, MissingKeyExits1NotFound) {
  CmdResult r = Run({"state", "get", "nope"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("error: key \"nope\" not found"));
  CmdResult d = Run({"state", "delete", "nope"});
  EXPECT_EQ(d.exit_code, 1) << Describe(d);
  EXPECT_THAT(d.err, HasSubstr("not found"));
  ASSERT_EQ(Run({"state", "set", "k", "v"}).exit_code, 0);
  EXPECT_EQ(Run({"state", "delete", "k"}).exit_code, 0);
  EXPECT_EQ(Run({"state", "get", "k"}).exit_code, 1);
}

TEST_F(StateCliTest, TtlExpires) {
  // Long enough that the first get comes before the expiry on a loaded machine (sanitizers).
  auto set_at = std::chrono::steady_clock::now();
  ASSERT_EQ(Run({"state", "set", "short", "v", "--ttl", "3s"}).exit_code, 0);
  ASSERT_EQ(Run({"state", "set", "long", "v", "--ttl", "1h"}).exit_code, 0);
  EXPECT_EQ(Run({"state", "get", "short"}).exit_code, 0);
  std::this_thread::sleep_until(set_at + std::chrono::milliseconds(3100));
  EXPECT_EQ(Run({"state", "get", "short"}).exit_code, 1);
  Json list = Json::parse(Run({"state", "list", "-o", "json"}).out);
  EXPECT_EQ(list, Json::parse(R"({"long": "v"})"));
  CmdResult bad = Run({"state", "set", "k", "v", "--ttl", "soon"});
  EXPECT_EQ(bad.exit_code, 2) << Describe(bad);
  EXPECT_THAT(bad.err, HasSubstr("error: --ttl"));
}

TEST_F(StateCliTest, ListByLiteralPrefixAndHidesLocks) {
  box_.Write("wf.sloth", R"(
    local t = task("t"):command(function()
      state.set("app.one", 1); state.set("app.two", {x = 2}); state.set("apple", "red")
      assert(state.try_lock("held-lock", 60))
      return true
    end):build()
    workflow.define("w", { tasks = { t } })
  )");
  CmdResult run = Run({"run", "w", "-f", "wf.sloth"});
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  Json all = Json::parse(Run({"state", "list", "-o", "json"}).out);
  EXPECT_EQ(all, Json::parse(R"({"app.one": 1, "app.two": {"x": 2}, "apple": "red"})"));
  Json app = Json::parse(Run({"state", "list", "app.", "-o", "json"}).out);
  EXPECT_EQ(app.size(), 2u);
  CmdResult table = Run({"state", "list"});
  EXPECT_THAT(table.out, HasSubstr("KEY"));
  EXPECT_THAT(table.out, HasSubstr("apple"));
  EXPECT_THAT(table.out, Not(HasSubstr("held-lock")));
  EXPECT_EQ(Run({"state", "list", "a.", "-o", "json"}).out, "{}\n");
  EXPECT_EQ(Run({"state", "list", "-o", "yaml"}).exit_code, 2);
  // The lock's process has exited, so the lock is free already.
  Json stats = Json::parse(Run({"state", "stats", "-o", "json"}).out);
  EXPECT_EQ(stats["keys"], 3);
  EXPECT_EQ(stats["locks_held"], 0);
}

TEST_F(StateCliTest, ClearNeedsForce) {
  for (const char* k : {"a.1", "a.2", "b.1"}) ASSERT_EQ(Run({"state", "set", k, "1"}).exit_code, 0);
  CmdResult no = Run({"state", "clear", "a."});
  EXPECT_EQ(no.exit_code, 2) << Describe(no);
  EXPECT_THAT(no.err, HasSubstr("would delete 2 key(s)"));
  CmdResult yes = Run({"state", "clear", "a.", "--force"});
  EXPECT_EQ(yes.exit_code, 0) << Describe(yes);
  EXPECT_THAT(yes.out, HasSubstr("deleted 2 key(s)"));
  EXPECT_EQ(Json::parse(Run({"state", "list", "-o", "json"}).out).size(), 1u);
  EXPECT_EQ(Run({"state", "clear", "--force"}).exit_code, 0);
  CmdResult stats = Run({"state", "stats"});
  EXPECT_THAT(stats.out, HasSubstr("keys:        0"));
}

TEST_F(StateCliTest, DataDirFlagAndUnusableDataDir) {
  ASSERT_EQ(Run({"state", "set", "k", "v", "--data-dir", "elsewhere"}).exit_code, 0);
  EXPECT_TRUE(std::filesystem::exists(box_.work() / "elsewhere" / "sloth.db"));
  EXPECT_EQ(Run({"state", "get", "k"}).exit_code, 1);  // not in the default data dir
  box_.Write("plain", "x");
  CmdResult r = Run({"state", "get", "k", "--data-dir", "plain/sub"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("error: cannot create"));
  EXPECT_THAT(r.err, Not(HasSubstr("terminate")));
  box_.Write("garbage/sloth.db", std::string(4096, 'x'));  // not a database
  CmdResult g = Run({"state", "list", "--data-dir", "garbage"});
  EXPECT_EQ(g.exit_code, 1) << Describe(g);
  EXPECT_THAT(g.err, HasSubstr("error: cannot open"));
}

TEST_F(StateCliTest, RunsShareState) {
  box_.Write("count.sloth", R"(
    local t = task("t"):command(function()
      log.info("count=" .. state.increment("runs"))
      return true
    end):build()
    workflow.define("w", { tasks = { t } })
  )");
  ASSERT_EQ(Run({"run", "w", "-f", "count.sloth"}).exit_code, 0);
  CmdResult second = Run({"run", "w", "-f", "count.sloth"});
  EXPECT_THAT(second.output(), HasSubstr("count=2"));
  EXPECT_EQ(Run({"state", "get", "runs"}).out, "2\n");
}

TEST_F(StateCliTest, UnusableDataDirFailsTheRunBeforeAnyTaskWithAClearError) {
  box_.Write("plain", "x");
  box_.Write("wf.sloth", R"(
    local t = task("t"):command(function() fs.write("ran", "yes"); return true end):build()
    workflow.define("w", { tasks = { t } })
  )");
  // Every run is recorded on its stack: a data dir that cannot hold the database stops it.
  CmdResult r = Run({"run", "w", "-f", "wf.sloth", "--data-dir", "plain/sub"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("error: cannot create"));
  EXPECT_FALSE(box_.Exists("ran"));
}

TEST_F(StateCliTest, StateUsedWhileTheFileLoadsReportsAnUnusableDataDir) {
  box_.Write("plain", "x");
  box_.Write("wf.sloth", R"(
    state.set("k", 1)
    local t = task("t"):command(function() return true end):build()
    workflow.define("w", { tasks = { t } })
  )");
  CmdResult r = Run({"run", "w", "-f", "wf.sloth", "--data-dir", "plain/sub"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("wf.sloth:2:"));
  EXPECT_THAT(r.err, HasSubstr("cannot create"));
}

TEST_F(StateCliTest, CheckModeRunDoesNotWrite) {
  ASSERT_EQ(Run({"state", "set", "k", "1"}).exit_code, 0);
  box_.Write("wf.sloth", R"(
    local t = task("t"):command(function()
      assert(state.get("k") == 1)
      state.set("k", 2)
      return true
    end):build()
    workflow.define("w", { tasks = { t } })
  )");
  CmdResult r = Run({"run", "w", "-f", "wf.sloth", "--check"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.output(), HasSubstr("[check] would set k"));
  EXPECT_EQ(Run({"state", "get", "k"}).out, "1\n");
}

TEST_F(StateCliTest, DeadlockInsideWithLockIsReportedNotHung) {
  // with_lock renews its lease on a background timer, which must not hide a deadlock.
  box_.Write("wf.sloth", R"(
    local t = task("t"):command(function()
      state.with_lock("L", function() goroutine.channel():receive() end)
    end):build()
    workflow.define("w", { tasks = { t } })
  )");
  CmdResult r = Run({"run", "w", "-f", "wf.sloth"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.output(), HasSubstr("all goroutines are asleep - deadlock"));
  EXPECT_EQ(Run({"run", "w", "-f", "wf.sloth"}).exit_code, 1);  // the lock was released
}

TEST_F(StateCliTest, ValidateListAndPreviewReadStateAtTopLevelButWriteNothing) {
  ASSERT_EQ(Run({"state", "set", "replicas", "3"}).exit_code, 0);
  box_.Write("wf.sloth", R"(
    local n = state.get("replicas", 1)
    state.set("loaded", true)  -- skipped outside `run`: loading a file changes nothing
    local tasks = {}
    for i = 1, n do tasks[i] = task("t" .. i):command("true"):build() end
    workflow.define("w", { tasks = tasks })
  )");
  CmdResult validate = Run({"validate", "-f", "wf.sloth"});
  EXPECT_EQ(validate.exit_code, 0) << Describe(validate);
  EXPECT_THAT(validate.out, HasSubstr("3 tasks"));
  EXPECT_EQ(Run({"workflow", "list", "-f", "wf.sloth"}).exit_code, 0);
  EXPECT_EQ(Run({"workflow", "preview", "-f", "wf.sloth"}).exit_code, 0);
  EXPECT_EQ(Run({"state", "get", "loaded"}).exit_code, 1);
}

}  // namespace
}  // namespace sloth::e2e
