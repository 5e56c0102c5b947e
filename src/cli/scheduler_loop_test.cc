// The cron scheduler's loop with real processes and a real database. The "workflow file" of each
// schedule here is a shell script that the stand-in run command sources, so a test says what a
// scheduled run does (write a line, sleep, fail) without a Lua workflow.
#include "cli/scheduler_loop.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/state_store.h"
#include "store/migrations.h"

extern char** environ;
using namespace std::chrono_literals;

namespace sloth {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Event {
  std::string type;
  json data;
};

class CronSchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Loop::BlockSignals(); }

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "sloth-cronsched.XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    auto db = OpenDatabase(DatabasePath(dir_));
    ASSERT_TRUE(db.ok()) << db.error();
    db_ = *db;
    store_ = std::make_unique<ScheduleStore>(db_);
    // A second connection stands for the other processes (`scheduler enable` and friends).
    auto other = OpenDatabase(DatabasePath(dir_));
    ASSERT_TRUE(other.ok()) << other.error();
    other_db_ = *other;
    other_ = std::make_unique<ScheduleStore>(other_db_);
  }
  void TearDown() override {
    scheduler_.reset();
    store_.reset();
    other_.reset();
    db_.reset();
    other_db_.reset();
    fs::remove_all(dir_);
  }

  // Writes the script a schedule runs; it runs in dir_ (the file's directory).
  std::string Script(const std::string& name, const std::string& body) {
    std::string path = dir_ + "/" + name + ".sh";
    std::ofstream(path) << body << "\n";
    return path;
  }

  CronSchedulerConfig Config(Duration grace = 5min) {
    CronSchedulerConfig config;
    config.command = {"/bin/sh", "-c", ". \"$4\"", "sh"};  // $1=run $2=STACK $3=-f $4=FILE
    for (char** e = environ; *e; ++e) config.env.emplace_back(*e);
    config.grace = grace;
    config.poll = 100ms;
    config.stop_grace = 2s;
    config.emit = [this](const std::string& type, const json& data) {
      events_.push_back({type, data});
    };
    return config;
  }

  void Start(CronSchedulerConfig config) {
    scheduler_ = std::make_unique<CronScheduler>(loop_, *store_, std::move(config));
    Status s = scheduler_->Start();
    ASSERT_TRUE(s.ok()) << s.message();
  }

  // Runs the loop until `done` holds or `limit` passes; returns whether `done` held.
  bool RunUntil(const std::function<bool()>& done, Duration limit) {
    bool expired = false;
    uint64_t timer = loop_.After(limit, [&] { expired = true; });
    loop_.RunUntil([&] { return expired || done(); });
    if (!expired) loop_.Cancel(timer);
    return done();
  }
  void RunFor(Duration d) {
    RunUntil([] { return false; }, d);
  }

  void StopAndWait() {
    scheduler_->Stop();
    ASSERT_TRUE(RunUntil([&] { return scheduler_->done(); }, 10s));
  }

  int Lines(const std::string& name) {
    std::ifstream in(dir_ + "/" + name);
    int n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  }
  std::vector<Event> Of(const std::string& type) const {
    std::vector<Event> out;
    for (const Event& e : events_)
      if (e.type == type) out.push_back(e);
    return out;
  }
  ScheduleRecord Row(const std::string& stack) {
    auto row = other_->Get(stack);
    EXPECT_TRUE(row.ok() && row->has_value()) << stack;
    return row.ok() && row->has_value() ? **row : ScheduleRecord{};
  }
  // Moves a schedule's anchor (when it was enabled) back in time, as if enabled long ago.
  void EnabledAgo(const std::string& stack, Duration ago) {
    int64_t at = NowUnixMs() - ToMillis(ago);
    Status s = other_db_->Exec("UPDATE schedules SET anchor_at = " + std::to_string(at) +
                               " WHERE stack = '" + stack + "'");
    ASSERT_TRUE(s.ok()) << s.message();
  }

  std::string dir_;
  std::shared_ptr<Db> db_, other_db_;
  std::unique_ptr<ScheduleStore> store_, other_;
  Loop loop_;
  std::unique_ptr<CronScheduler> scheduler_;
  std::vector<Event> events_;
};

TEST_F(CronSchedulerTest, FiresOnScheduleEmitsEventsAndRecordsTheResult) {
  std::string file = Script("tick", "echo tick >> ticks.log");
  ASSERT_TRUE(other_->Enable("ticker", "@every 1s", file, {}).ok());
  Start(Config());
  ASSERT_EQ(Of("system.startup").size(), 1u);
  ASSERT_TRUE(RunUntil([&] { return Lines("ticks.log") >= 2; }, 5s));
  StopAndWait();
  ASSERT_EQ(Of("system.shutdown").size(), 1u);
  EXPECT_EQ(events_.back().type, "system.shutdown");
  std::vector<Event> triggered = Of("schedule.triggered");
  ASSERT_GE(triggered.size(), 2u);
  const json& s = triggered[0].data["schedule"];
  EXPECT_EQ(s["stack"], "ticker");
  EXPECT_EQ(s["cron"], "@every 1s");
  EXPECT_EQ(s["file"], file);
  EXPECT_GT(s["run_pid"].get<int>(), 0);
  ScheduleRecord row = Row("ticker");
  EXPECT_EQ(row.last_status, "success");
  ASSERT_TRUE(row.last_run_ms.has_value());
  ASSERT_TRUE(row.last_due_ms.has_value());
  // @every times are whole intervals after the anchor.
  EXPECT_EQ((*row.last_due_ms - row.anchor_at_ms) % 1000, 0);
}

TEST_F(CronSchedulerTest, RecordsAFailedRunWithItsErrorLine) {
  std::string file = Script("fail", "echo 'error: task boom failed' >&2; exit 1");
  ASSERT_TRUE(other_->Enable("failing", "@every 1s", file, {}).ok());
  Start(Config());
  ASSERT_TRUE(RunUntil([&] { return Row("failing").last_status == "failed"; }, 5s));
  EXPECT_EQ(Row("failing").last_error, "task boom failed");
  StopAndWait();
}

TEST_F(CronSchedulerTest, AnExitCode3ForALockedStackIsRecordedAsLocked) {
  std::string file = Script("locked", "echo 'error: stack s is locked by x since y' >&2; exit 3");
  ASSERT_TRUE(other_->Enable("s", "@every 1s", file, {}).ok());
  Start(Config());
  ASSERT_TRUE(RunUntil([&] { return Row("s").last_status == "locked"; }, 5s));
  StopAndWait();
}

TEST_F(CronSchedulerTest, PicksUpSchedulesAddedChangedAndDisabledElsewhere) {
  Start(Config());
  RunFor(300ms);
  std::string file = Script("late", "echo run >> late.log");
  ASSERT_TRUE(other_->Enable("late", "@every 1s", file, {}).ok());
  ASSERT_TRUE(RunUntil([&] { return Lines("late.log") >= 1; }, 3s));  // within ~1 s of its time
  ASSERT_TRUE(*other_->Disable("late"));
  RunFor(300ms);  // a run started just before the disable may still be finishing
  int before = Lines("late.log");
  RunFor(2500ms);
  EXPECT_EQ(Lines("late.log"), before) << "runs went on after disable";
  ASSERT_TRUE(other_->Enable("late", "@every 1s", file, {}).ok());
  ASSERT_TRUE(RunUntil([&] { return Lines("late.log") > before; }, 3s));
  ASSERT_TRUE(*other_->Delete("late"));
  RunFor(300ms);
  before = Lines("late.log");
  RunFor(2500ms);
  EXPECT_EQ(Lines("late.log"), before) << "runs went on after delete";
  StopAndWait();
}

TEST_F(CronSchedulerTest, NeverRunsOneStackTwiceAtOnce) {
  // Each run takes 2.5 s on a 1 s schedule: the times in between are skipped, not queued.
  std::string file = Script("slow", "echo start >> slow.log; sleep 2.5; echo end >> slow.log");
  ASSERT_TRUE(other_->Enable("slow", "@every 1s", file, {}).ok());
  Start(Config());
  RunFor(5500ms);
  StopAndWait();
  std::ifstream in(dir_ + "/slow.log");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_GE(lines.size(), 2u);
  EXPECT_LE(lines.size(), 6u);
  for (size_t i = 0; i < lines.size(); ++i)
    EXPECT_EQ(lines[i], i % 2 == 0 ? "start" : "end") << "runs overlapped at line " << i;
}

TEST_F(CronSchedulerTest, StopTerminatesARunningChild) {
  std::string file = Script("long", "echo started > long.log; sleep 30");
  ASSERT_TRUE(other_->Enable("long", "@every 1s", file, {}).ok());
  Start(Config());
  ASSERT_TRUE(RunUntil([&] { return Lines("long.log") == 1; }, 5s));
  auto t0 = Clock::now();
  StopAndWait();
  EXPECT_LT(Clock::now() - t0, 5s);
  EXPECT_EQ(scheduler_->running(), 0u);
  EXPECT_EQ(Row("long").last_status, "killed");  // sh dies of the SIGTERM
}

TEST_F(CronSchedulerTest, AMissedTimeWithinGraceRunsOnceAtStartUp) {
  std::string file = Script("hourly", "echo run >> hourly.log");
  ASSERT_TRUE(other_->Enable("hourly", "@every 1h", file, {}).ok());
  EnabledAgo("hourly", 1h + 3h + 10s);  // due 10 s ago (and 1 h, 2 h, 3 h before that)
  Start(Config(5min));
  ASSERT_TRUE(RunUntil([&] { return Lines("hourly.log") >= 1; }, 5s));
  RunFor(1500ms);
  EXPECT_EQ(Lines("hourly.log"), 1);  // once, not once per missed hour
  EXPECT_TRUE(Of("schedule.missed").empty());
  StopAndWait();
}

TEST_F(CronSchedulerTest, AMissedTimeBeyondGraceIsReportedNotRun) {
  std::string file = Script("yearly", "echo run >> yearly.log");
  ASSERT_TRUE(other_->Enable("yearly", "CRON_TZ=UTC 0 0 1 1 *", file, {}).ok());
  EnabledAgo("yearly", 24h * 800);
  Start(Config(1min));
  ASSERT_TRUE(RunUntil([&] { return !Of("schedule.missed").empty(); }, 3s));
  RunFor(500ms);
  EXPECT_EQ(Lines("yearly.log"), 0);
  std::vector<Event> missed = Of("schedule.missed");
  ASSERT_EQ(missed.size(), 1u);  // the latest missed time only
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  const json& s = missed[0].data["schedule"];
  EXPECT_EQ(s["stack"], "yearly");
  EXPECT_EQ(s["cron"], "CRON_TZ=UTC 0 0 1 1 *");
  EXPECT_EQ(s["missed_at"], std::to_string(1900 + tm.tm_year) + "-01-01T00:00:00Z");
  EXPECT_EQ(Row("yearly").last_status, "missed");
  StopAndWait();
  // Restarted, the scheduler does not report the same time again.
  events_.clear();
  Start(Config(1min));
  RunFor(500ms);
  EXPECT_TRUE(Of("schedule.missed").empty());
  StopAndWait();
}

TEST_F(CronSchedulerTest, NextFireAnchorsEveryAndFollowsCalendarCrons) {
  ScheduleRecord r;
  r.anchor_at_ms = 1'000'000;
  auto every = ParseCron("@every 10s");
  ASSERT_TRUE(every.ok());
  WallTime anchor{std::chrono::milliseconds(1'000'000)};
  EXPECT_EQ(NextFire(*every, r, anchor - 1h), anchor + 10s);
  EXPECT_EQ(NextFire(*every, r, anchor), anchor + 10s);
  EXPECT_EQ(NextFire(*every, r, anchor + 10s), anchor + 20s);
  EXPECT_EQ(NextFire(*every, r, anchor + 25s), anchor + 30s);
  auto hourly = ParseCron("CRON_TZ=UTC 0 * * * *");
  ASSERT_TRUE(hourly.ok());
  EXPECT_EQ(NextFire(*hourly, r, WallTime{} + 30min), WallTime{} + 1h);
}

}  // namespace
}  // namespace sloth
