#include "store/sqlite_stack_store.h"

#include <filesystem>

#include <gtest/gtest.h>

#include "store/migrations.h"

namespace sloth {
namespace {

TaskRecord Task(const std::string& name, const std::string& status, int attempts,
                const std::string& error = "") {
  TaskRecord t;
  t.name = name;
  t.status = status;
  t.attempts = attempts;
  t.error = error;
  return t;
}

class StackStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sloth-stacks.XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    auto db = OpenDatabase(DatabasePath(dir_));
    ASSERT_TRUE(db.ok()) << db.error();
    store_ = std::make_unique<SqliteStackStore>(*db);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  std::unique_ptr<SqliteStackStore> store_;
};

TEST_F(StackStoreTest, EnsureCreatesOnceAndKeepsTheId) {
  EXPECT_FALSE(store_->FindStack("prod")->has_value());
  auto a = store_->EnsureStack("prod", "/w/a.sloth");
  ASSERT_TRUE(a.ok()) << a.error();
  auto b = store_->EnsureStack("prod", "");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->id, b->id);
  EXPECT_EQ(b->workflow_file, "/w/a.sloth");  // an empty file name keeps the known one
  EXPECT_EQ(a->id.size(), 36u);
  EXPECT_FALSE(store_->CreateStack("prod", "", "").ok());  // exists
  auto c = store_->CreateStack("dev", "the dev one", "");
  ASSERT_TRUE(c.ok());
  auto all = store_->ListStacks();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "dev");
  EXPECT_EQ((*all)[0].description, "the dev one");
}

TEST_F(StackStoreTest, OutputsMergeNewKeysWin) {
  auto s = store_->EnsureStack("prod", "");
  ASSERT_TRUE(store_->MergeOutputs(s->id, R"({"a":1,"b":"x"})").ok());
  ASSERT_TRUE(store_->MergeOutputs(s->id, R"({"b":"y"})").ok());
  EXPECT_EQ((*store_->FindStack("prod"))->outputs_json, R"({"a":1,"b":"y"})");
  EXPECT_FALSE(store_->MergeOutputs(s->id, "[1]").ok());
}

TEST_F(StackStoreTest, ResourcesAreKeptPerStackAndGoWithIt) {
  auto s = store_->EnsureStack("prod", "");
  ResourceRecord r{"database", "pg", "terraform", R"({"v":"14"})", "[]", "pending", "{}",
                   "r1",       10,   10};
  ASSERT_TRUE(store_->PutResource(s->id, r).ok());
  r.properties_json = R"({"v":"15"})";
  r.created_at_ms = 99;  // an update keeps the creation time
  r.updated_at_ms = 20;
  ASSERT_TRUE(store_->PutResource(s->id, r).ok());
  auto got = store_->GetResource(s->id, "database", "pg");
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->properties_json, R"({"v":"15"})");
  EXPECT_EQ((*got)->created_at_ms, 10);
  EXPECT_EQ((*got)->updated_at_ms, 20);
  auto other = store_->EnsureStack("dev", "");
  EXPECT_TRUE(store_->ListResources(other->id)->empty());
  EXPECT_EQ(store_->ListResources(s->id)->size(), 1u);
  EXPECT_TRUE(*store_->DeleteStack("prod"));
  EXPECT_FALSE(*store_->DeleteStack("prod"));
  EXPECT_FALSE(store_->GetResource(s->id, "database", "pg")->has_value());
}

TEST_F(StackStoreTest, HistoryIsNewestFirstWithTasksInFinishOrder) {
  auto s = store_->EnsureStack("prod", "");
  for (int i = 0; i < 3; ++i) {
    RunRecord run;
    run.id = "run" + std::to_string(i);
    run.stack_id = s->id;
    run.workflow = "wf";
    run.started_at_ms = 1000 + i;
    ASSERT_TRUE(store_->BeginRun(run).ok());
    ASSERT_TRUE(store_->RecordTask(run.id, 0, Task("b", "Success", 1)).ok());
    ASSERT_TRUE(store_->RecordTask(run.id, 1, Task("a", "Failed", 2, "boom")).ok());
  }
  ASSERT_TRUE(store_->FinishRun("run2", "failed", "boom", R"({"k":1})").ok());
  auto history = store_->History(s->id, 0);
  ASSERT_EQ(history->size(), 3u);
  const RunRecord& newest = (*history)[0];
  EXPECT_EQ(newest.id, "run2");
  EXPECT_EQ(newest.status, "failed");
  EXPECT_TRUE(newest.ended_at_ms.has_value());
  EXPECT_FALSE((*history)[1].ended_at_ms.has_value());  // never finished: still "running"
  ASSERT_EQ(newest.tasks.size(), 2u);
  EXPECT_EQ(newest.tasks[0].name, "b");
  EXPECT_EQ(newest.tasks[1].error, "boom");
  EXPECT_EQ(newest.tasks[1].attempts, 2);
  EXPECT_EQ(store_->History(s->id, 1)->size(), 1u);
}

TEST_F(StackStoreTest, ATaskRecordKeepsTheAgentsItRanOn) {
  auto s = store_->EnsureStack("prod", "");
  RunRecord run;
  run.id = "run-a";
  run.stack_id = s->id;
  run.workflow = "wf";
  ASSERT_TRUE(store_->BeginRun(run).ok());
  TaskRecord remote = Task("deploy", "Success", 1);
  remote.agent = "web-01,web-02";
  ASSERT_TRUE(store_->RecordTask(run.id, 0, remote).ok());
  ASSERT_TRUE(store_->RecordTask(run.id, 1, Task("local", "Success", 1)).ok());
  auto history = store_->History(s->id, 0);
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].tasks[0].agent, "web-01,web-02");
  EXPECT_EQ((*history)[0].tasks[1].agent, "");
}

TEST_F(StackStoreTest, ImportPutsBackStackAndRuns) {
  StackInfo info{"11111111-2222-4333-8444-555555555555",
                 "restored",
                 "d",
                 "f.sloth",
                 "success",
                 R"({"x":1})",
                 5,
                 6};
  ASSERT_TRUE(store_->ImportStack(info).ok());
  EXPECT_FALSE(store_->ImportStack(info).ok());  // the name exists now
  RunRecord run;
  run.id = "r";
  run.stack_id = info.id;
  run.workflow = "wf";
  run.tasks = {Task("t", "Success", 1)};
  ASSERT_TRUE(store_->ImportRun(run).ok());
  ASSERT_TRUE(store_->ImportRun(run).ok());  // again: replaced, not doubled
  auto history = store_->History(info.id, 0);
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].tasks.size(), 1u);
  EXPECT_EQ((*store_->FindStack("restored"))->outputs_json, R"({"x":1})");
}

}  // namespace
}  // namespace sloth
