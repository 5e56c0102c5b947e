#include "store/schedule_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "store/migrations.h"

namespace sloth {
namespace {

class ScheduleStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sloth-sched.XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    auto db = OpenDatabase(DatabasePath(dir_));
    ASSERT_TRUE(db.ok()) << db.error();
    store_ = std::make_unique<ScheduleStore>(*db);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  ScheduleRecord MustGet(const std::string& stack) {
    auto got = store_->Get(stack);
    EXPECT_TRUE(got.ok()) << got.error();
    EXPECT_TRUE(got->has_value()) << stack;
    return got->value_or(ScheduleRecord{});
  }

  std::string dir_;
  std::unique_ptr<ScheduleStore> store_;
};

TEST_F(ScheduleStoreTest, EnableCreatesAnEnabledScheduleAnchoredNow) {
  auto r = store_->Enable("web", "*/5 * * * *", "/srv/web.sloth", {"/srv/a.yaml", "/srv/b.yaml"});
  ASSERT_TRUE(r.ok()) << r.error();
  ScheduleRecord s = MustGet("web");
  EXPECT_EQ(s.cron, "*/5 * * * *");
  EXPECT_EQ(s.file, "/srv/web.sloth");
  EXPECT_EQ(s.values_files, (std::vector<std::string>{"/srv/a.yaml", "/srv/b.yaml"}));
  EXPECT_TRUE(s.enabled);
  EXPECT_EQ(s.revision, 1);
  EXPECT_GT(s.anchor_at_ms, 0);
  EXPECT_EQ(s.anchor_at_ms, s.created_at_ms);
  EXPECT_FALSE(s.last_run_ms.has_value());
  EXPECT_FALSE(s.last_due_ms.has_value());
  EXPECT_EQ(s.last_status, "");
}

TEST_F(ScheduleStoreTest, EnableAgainUpdatesReanchorsAndKeepsResults) {
  ASSERT_TRUE(store_->Enable("web", "@every 1m", "/a.sloth", {}).ok());
  ScheduleRecord first = MustGet("web");
  ASSERT_TRUE(store_
                  ->RecordDue("web", {first.anchor_at_ms + 60000, first.anchor_at_ms + 60001,
                                      "running", "", 42})
                  .ok());
  ASSERT_TRUE(*store_->Disable("web"));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(store_->Enable("web", "@every 2m", "/b.sloth", {"/v.yaml"}).ok());
  ScheduleRecord s = MustGet("web");
  EXPECT_EQ(s.cron, "@every 2m");
  EXPECT_EQ(s.file, "/b.sloth");
  EXPECT_EQ(s.values_files, std::vector<std::string>{"/v.yaml"});
  EXPECT_TRUE(s.enabled);
  EXPECT_EQ(s.revision, first.revision + 2);  // disable, enable
  EXPECT_EQ(s.created_at_ms, first.created_at_ms);
  EXPECT_GT(s.anchor_at_ms, first.anchor_at_ms);
  EXPECT_EQ(s.last_run_ms, first.anchor_at_ms + 60001);
  EXPECT_EQ(s.last_status, "running");
  EXPECT_EQ(s.last_run_pid, 42);
}

TEST_F(ScheduleStoreTest, DisableAndDeleteSayWhetherThereWasOne) {
  EXPECT_FALSE(*store_->Disable("none"));
  EXPECT_FALSE(*store_->Delete("none"));
  ASSERT_TRUE(store_->Enable("web", "@hourly", "/a.sloth", {}).ok());
  ASSERT_TRUE(*store_->Disable("web"));
  EXPECT_FALSE(MustGet("web").enabled);
  ASSERT_TRUE(*store_->Delete("web"));
  auto gone = store_->Get("web");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(gone->has_value());
}

TEST_F(ScheduleStoreTest, ListIsOrderedByStack) {
  for (const char* name : {"zeta", "alpha", "mid"})
    ASSERT_TRUE(store_->Enable(name, "@daily", "/f.sloth", {}).ok());
  auto list = store_->List();
  ASSERT_TRUE(list.ok()) << list.error();
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].stack, "alpha");
  EXPECT_EQ((*list)[1].stack, "mid");
  EXPECT_EQ((*list)[2].stack, "zeta");
}

TEST_F(ScheduleStoreTest, RunResultsDoNotBumpTheRevision) {
  ASSERT_TRUE(store_->Enable("web", "@every 1s", "/a.sloth", {}).ok());
  ASSERT_TRUE(*store_->RecordDue("web", {1000, 1005, "running", "", 7}));
  ASSERT_TRUE(*store_->RecordFinish("web", 1005, "failed", "task x failed"));
  ScheduleRecord s = MustGet("web");
  EXPECT_EQ(s.revision, 1);
  EXPECT_EQ(s.last_due_ms, 1000);
  EXPECT_EQ(s.last_run_ms, 1005);
  EXPECT_EQ(s.last_status, "failed");
  EXPECT_EQ(s.last_error, "task x failed");
}

TEST_F(ScheduleStoreTest, MissedTimeKeepsTheLastRunAndAStaleFinishIsIgnored) {
  ASSERT_TRUE(store_->Enable("web", "@every 1s", "/a.sloth", {}).ok());
  ASSERT_TRUE(*store_->RecordDue("web", {1000, 1005, "running", "", 7}));
  ASSERT_TRUE(*store_->RecordDue("web", {2000, std::nullopt, "missed", "", 0}));
  ScheduleRecord s = MustGet("web");
  EXPECT_EQ(s.last_due_ms, 2000);
  EXPECT_EQ(s.last_run_ms, 1005);
  EXPECT_EQ(s.last_status, "missed");
  ASSERT_TRUE(*store_->RecordDue("web", {3000, 3001, "running", "", 8}));
  EXPECT_FALSE(*store_->RecordFinish("web", 1005, "success", ""));  // an older run's end
  EXPECT_EQ(MustGet("web").last_status, "running");
  EXPECT_FALSE(*store_->RecordDue("gone", {1, 2, "running", "", 1}));
}

TEST_F(ScheduleStoreTest, DataVersionMovesWhenAnotherConnectionWrites) {
  auto before = store_->DataVersion();
  ASSERT_TRUE(before.ok()) << before.error();
  auto other_db = OpenDatabase(DatabasePath(dir_));
  ASSERT_TRUE(other_db.ok());
  ScheduleStore other(*other_db);
  auto same = store_->DataVersion();
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(*same, *before);
  ASSERT_TRUE(other.Enable("web", "@daily", "/a.sloth", {}).ok());
  auto after = store_->DataVersion();
  ASSERT_TRUE(after.ok());
  EXPECT_NE(*after, *before);
  auto seen = store_->Get("web");
  ASSERT_TRUE(seen.ok());
  EXPECT_TRUE(seen->has_value());
}

}  // namespace
}  // namespace sloth
