#include "lua/modules/stack.h"

#include <gtest/gtest.h>

#include "lua/test_util.h"
#include "store/migrations.h"
#include "store/sqlite_stack_store.h"

namespace sloth {
namespace {

using testing::LuaEnv;

// A runtime inside a run of stack "prod" (what `run` sets up), over a real database.
class StackModuleTest : public ::testing::Test {
 protected:
  explicit StackModuleTest(bool check = false) : env_(Options(check)) {
    auto db = OpenDatabase(DatabasePath(env_.dir() + "/data"));
    EXPECT_TRUE(db.ok()) << db.error();
    stacks_ = std::make_unique<SqliteStackStore>(*db);
    auto stack = stacks_->EnsureStack("prod", "");
    scope_ = RunScope{"prod", stack->id, "run-1", stacks_.get(), &resources_};
    env_.rt().SetRunScope(&scope_);
  }
  static RuntimeOptions Options(bool check) {
    RuntimeOptions o;
    o.check_mode = check;
    return o;
  }

  LuaEnv env_;
  std::unique_ptr<SqliteStackStore> stacks_;
  std::vector<std::string> resources_;
  RunScope scope_;
};

TEST_F(StackModuleTest, ManagedResourcesAreRecordedAsApplied) {
  lua_State* L = env_.rt().state();
  nlohmann::json props = {{"version", "5.2"}};
  EXPECT_EQ(RecordManagedResource(L, "package", "bash", "pkg", props), "created");
  EXPECT_EQ(RecordManagedResource(L, "package", "bash", "pkg", props), "unchanged");
  EXPECT_EQ(RecordManagedResource(L, "package", "bash", "pkg", {{"version", "5.3"}}), "changed");
  auto r = stacks_->GetResource(scope_.stack_id, "package", "bash");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->state, "applied");
  EXPECT_EQ((*r)->module, "pkg");
  EXPECT_EQ((*r)->properties_json, R"({"version":"5.3"})");
  ASSERT_EQ(resources_.size(), 3u);
  EXPECT_NE(resources_[2].find("\"changed\""), std::string::npos);
}

TEST_F(StackModuleTest, OutsideARunNothingIsRecorded) {
  env_.rt().SetRunScope(nullptr);
  EXPECT_EQ(RecordManagedResource(env_.rt().state(), "user", "bob", "user", {}), "");
  EXPECT_EQ(env_.Eval("select(2, pcall(stack.list_resources))"),
            "stack.list_resources: there is no stack here (stacks exist while `run` runs a "
            "workflow)");
}

TEST_F(StackModuleTest, RegisterResourceInATask) {
  Status s = env_.RunInTask(R"(
    local s, r = stack.register_resource{type = "db", name = "pg", properties = {v = 1}}
    assert(s == "created" and r.state == "pending", s)
    assert(select(1, stack.register_resource{type = "db", name = "pg", properties = {v = 1}}) == "unchanged")
    local s2, r2 = stack.register_resource{type = "db", name = "pg", properties = {v = 2, w = {x = 1}}}
    assert(s2 == "changed" and r2.diff.v.old == 1 and r2.diff.v.new == 2, s2)
    assert(r2.diff.w.new.x == 1)  -- a new subtree is one change
    local ok, err = pcall(stack.register_resource, {name = "x"})
    assert(not ok and err:find("`type` is required"), err)
    ok, err = pcall(stack.update_resource, "db", "nope", {state = "applied"})
    assert(not ok and err:find("not found"), err)
    assert(stack.current().name == "prod" and stack.current().run_id == "run-1")
  )");
  ASSERT_TRUE(s.ok()) << s.message();
}

class StackModuleCheckTest : public StackModuleTest {
 protected:
  StackModuleCheckTest() : StackModuleTest(true) {}
};

TEST_F(StackModuleCheckTest, CheckModeReportsButRecordsNothing) {
  Status s = env_.RunInTask(R"(
    local s = stack.register_resource{type = "db", name = "pg", properties = {v = 1}}
    assert(s == "created")
    assert(not stack.resource_exists("db", "pg"))
  )");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(RecordManagedResource(env_.rt().state(), "user", "bob", "user", {}), "created");
  EXPECT_TRUE(stacks_->ListResources(scope_.stack_id)->empty());
  EXPECT_EQ(resources_.size(), 2u);
  EXPECT_TRUE(env_.sink().Contains("[check] resource db/pg would be created"));
}

}  // namespace
}  // namespace sloth
