// End-to-end tests of `scheduler ...`: schedules stored by one process and run by a real
// `scheduler run` process, which starts real `run` processes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "e2e_util.h"

namespace sloth::e2e {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr char kTicker[] = R"lua(
local tick = task("tick")
    :command(function()
        state.increment("ticks")
        return true
    end)
    :build()
workflow.define("ticker", { tasks = { tick } })
)lua";

// Counts how many runs were going at once (max_running) while each takes 2.5 s.
constexpr char kSlow[] = R"lua(
local slow = task("slow")
    :command(function()
        local n = state.increment("running")
        if n > (state.get("max_running") or 0) then state.set("max_running", n) end
        time.sleep(2.5)
        state.decrement("running")
        state.increment("runs")
        return true
    end)
    :build()
workflow.define("slow", { tasks = { slow } })
)lua";

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return done();
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(SlothBin().empty()) << "SLOTH_BIN is not set";
    box_.Write("ticker.sloth", kTicker);
    box_.Write("slow.sloth", kSlow);
  }
  void TearDown() override {
    if (scheduler_ > 0) Stop();
  }

  Json ListJson() {
    CmdResult r = box_.Run({"scheduler", "list", "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    Json doc = Json::parse(r.out, nullptr, false);
    EXPECT_TRUE(doc.is_array()) << r.out;
    return doc;
  }
  // A state value as a number (0 when absent).
  int Count(const std::string& key) {
    CmdResult r = box_.Run({"state", "get", key});
    return r.exit_code == 0 ? std::atoi(r.out.c_str()) : 0;
  }
  void StartScheduler(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"scheduler", "run"};
    args.insert(args.end(), extra.begin(), extra.end());
    scheduler_ = box_.RunInBackground("sched", args);
    ASSERT_GT(scheduler_, 0);
  }
  std::string SchedulerLog() const { return ReadFile(box_.root() / "sched.out"); }
  // SIGTERM, then the exit code (after at most 15 s).
  int Stop() {
    kill(scheduler_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 150 && waitpid(scheduler_, &status, WNOHANG) == 0; ++i)
      std::this_thread::sleep_for(100ms);
    if (waitpid(scheduler_, &status, WNOHANG) == 0) {
      kill(-scheduler_, SIGKILL);
      waitpid(scheduler_, &status, 0);
      ADD_FAILURE() << "scheduler did not stop on SIGTERM";
    }
    scheduler_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  Sandbox box_;
  pid_t scheduler_ = -1;
};

TEST_F(SchedulerTest, EnableListDisableDelete) {
  CmdResult r = box_.Run({"scheduler", "enable", "ticker", "*/5 * * * *", "-f", "ticker.sloth"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("next run: "));
  Json list = ListJson();
  ASSERT_EQ(list.size(), 1u) << list.dump(2);
  EXPECT_EQ(list[0]["stack"], "ticker");
  EXPECT_EQ(list[0]["cron"], "*/5 * * * *");
  EXPECT_EQ(list[0]["file"], (box_.work() / "ticker.sloth").string());  // stored absolute
  EXPECT_EQ(list[0]["enabled"], true);
  EXPECT_TRUE(list[0]["next_run"].is_string());
  EXPECT_EQ(list[0]["last_run"], nullptr);
  EXPECT_EQ(list[0]["last_status"], nullptr);

  r = box_.Run({"scheduler", "list"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("ticker"));
  EXPECT_THAT(r.out, HasSubstr("*/5 * * * *"));

  ASSERT_EQ(box_.Run({"scheduler", "disable", "ticker"}).exit_code, 0);
  list = ListJson();
  EXPECT_EQ(list[0]["enabled"], false);
  EXPECT_EQ(list[0]["next_run"], nullptr);

  // Re-enabling without a CRON keeps the stored one; with one, it changes it.
  ASSERT_EQ(box_.Run({"scheduler", "enable", "ticker"}).exit_code, 0);
  EXPECT_EQ(ListJson()[0]["enabled"], true);
  ASSERT_EQ(box_.Run({"scheduler", "enable", "ticker", "@hourly"}).exit_code, 0);
  list = ListJson();
  EXPECT_EQ(list[0]["cron"], "@hourly");
  EXPECT_EQ(list[0]["file"], (box_.work() / "ticker.sloth").string());

  ASSERT_EQ(box_.Run({"scheduler", "delete", "ticker"}).exit_code, 0);
  EXPECT_TRUE(ListJson().empty());
  r = box_.Run({"scheduler", "delete", "ticker"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("error: schedule ticker not found"));
  EXPECT_EQ(box_.Run({"scheduler", "disable", "nope"}).exit_code, 1);
}

TEST_F(SchedulerTest, BadInputExits2AndStoresNothing) {
  CmdResult r = box_.Run({"scheduler", "enable", "bad", "61 * * * *", "-f", "ticker.sloth"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("error: cron \"61 * * * *\": minute"));
  r = box_.Run({"scheduler", "enable", "bad", "@hourly", "-f", "missing.sloth"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("missing.sloth not found"));
  r = box_.Run({"scheduler", "enable", "bad"});  // no CRON and nothing stored
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  r = box_.Run({"scheduler", "enable", "bad", "@hourly"});  // no file anywhere
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("give -f FILE"));
  EXPECT_EQ(box_.Run({"scheduler", "list", "-o", "xml"}).exit_code, 2);
  EXPECT_EQ(box_.Run({"scheduler", "run", "--grace", "soon"}).exit_code, 2);
  EXPECT_TRUE(ListJson().empty());
}

TEST_F(SchedulerTest, TheFileDefaultsToTheStacksWorkflowFile) {
  ASSERT_EQ(box_.Run({"stack", "new", "ticker", "-f", "ticker.sloth"}).exit_code, 0);
  CmdResult r = box_.Run({"scheduler", "enable", "ticker", "@daily"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ListJson()[0]["file"], (box_.work() / "ticker.sloth").string());
}

TEST_F(SchedulerTest, ARunningSchedulerPicksUpNewSchedulesAndStopsOnDisable) {
  StartScheduler();
  std::this_thread::sleep_for(1s);
  ASSERT_EQ(
      box_.Run({"scheduler", "enable", "ticker", "@every 1s", "-f", "ticker.sloth"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return Count("ticks") >= 2; }, 5s)) << SchedulerLog();
  Json list = ListJson();
  EXPECT_TRUE(list[0]["last_run"].is_string()) << list.dump(2);
  EXPECT_TRUE(list[0]["last_status"] == "success" || list[0]["last_status"] == "running")
      << list.dump(2);
  // Scheduled runs are recorded like any other run.
  CmdResult history = box_.Run({"stack", "history", "ticker", "-o", "json"});
  ASSERT_EQ(history.exit_code, 0) << Describe(history);
  EXPECT_GE(Json::parse(history.out).size(), 1u);

  ASSERT_EQ(box_.Run({"scheduler", "disable", "ticker"}).exit_code, 0);
  std::this_thread::sleep_for(1500ms);
  int before = Count("ticks");
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(Count("ticks"), before) << "runs went on after disable";
  EXPECT_EQ(Stop(), 0);
  EXPECT_THAT(SchedulerLog(), HasSubstr("▶ ticker: run started"));
  EXPECT_THAT(SchedulerLog(), HasSubstr("scheduler stopped"));
}

TEST_F(SchedulerTest, ASlowRunIsNeverStartedTwiceAndALockedStackIsRecorded) {
  ASSERT_EQ(box_.Run({"scheduler", "enable", "slow", "@every 1s", "-f", "slow.sloth"}).exit_code,
            0);
  StartScheduler();
  ASSERT_TRUE(WaitFor([&] { return Count("runs") >= 2; }, 10s)) << SchedulerLog();
  EXPECT_EQ(Count("max_running"), 1) << SchedulerLog();
  ASSERT_EQ(box_.Run({"scheduler", "disable", "slow"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return Count("running") == 0; }, 5s));

  // Held by someone else (another process), the stack's lock refuses the scheduled run: exit 3.
  ASSERT_EQ(box_.Run({"stack", "lock", "slow", "--ttl", "5m", "--reason", "maintenance"}).exit_code,
            0);
  ASSERT_EQ(box_.Run({"scheduler", "enable", "slow"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return ListJson()[0]["last_status"] == "locked"; }, 5s))
      << ListJson().dump(2) << SchedulerLog();
  EXPECT_EQ(Stop(), 0);
}

TEST_F(SchedulerTest, AMissedTimeRunsAtStartUpWithinGraceElseIsReported) {
  // Two data dirs: one scheduler with the default grace (5m), one with 100ms. Both schedules
  // were due 1 s before their scheduler starts; the next time is 3 s after that.
  Sandbox strict;
  strict.Write("ticker.sloth", kTicker);
  ASSERT_EQ(
      box_.Run({"scheduler", "enable", "ticker", "@every 4s", "-f", "ticker.sloth"}).exit_code, 0);
  ASSERT_EQ(
      strict.Run({"scheduler", "enable", "ticker", "@every 4s", "-f", "ticker.sloth"}).exit_code,
      0);
  std::this_thread::sleep_for(5s);
  StartScheduler();
  pid_t strict_pid = strict.RunInBackground("sched", {"scheduler", "run", "--grace", "100ms"});
  ASSERT_GT(strict_pid, 0);
  EXPECT_TRUE(WaitFor([&] { return Count("ticks") == 1; }, 2s)) << SchedulerLog();
  std::string strict_log = ReadFile(strict.root() / "sched.out");
  EXPECT_TRUE(WaitFor(
      [&] {
        strict_log = ReadFile(strict.root() / "sched.out");
        return strict_log.find("ticker: missed the run due at") != std::string::npos;
      },
      2s))
      << strict_log;
  EXPECT_EQ(strict_log.find("run started"), std::string::npos) << strict_log;
  kill(strict_pid, SIGTERM);
  int status = 0;
  waitpid(strict_pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(Stop(), 0);
}

}  // namespace
}  // namespace sloth::e2e
