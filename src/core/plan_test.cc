#include "core/plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sloth {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

TaskSpec Task(std::string name, std::vector<std::string> deps = {}, std::string source = "") {
  TaskSpec t;
  t.name = std::move(name);
  t.depends_on = std::move(deps);
  t.source = std::move(source);
  return t;
}

WorkflowSpec Workflow(std::vector<TaskSpec> tasks) {
  WorkflowSpec w;
  w.name = "ci";
  w.source = "ci.sloth:1";
  w.tasks = std::move(tasks);
  return w;
}

Plan MustBuild(std::vector<TaskSpec> tasks) {
  Result<Plan> plan = Plan::Build(Workflow(std::move(tasks)));
  EXPECT_TRUE(plan.ok()) << plan.error();
  return std::move(plan.value());
}

std::vector<std::string> Names(const Plan& plan, const std::vector<size_t>& indexes) {
  std::vector<std::string> out;
  for (size_t i : indexes) out.push_back(plan.task(i).name);
  return out;
}

std::vector<std::string> OrderNames(const Plan& plan) { return Names(plan, plan.order()); }

std::vector<std::string> SelectedNames(const Plan& plan) {
  std::vector<std::string> out;
  for (size_t i = 0; i < plan.size(); ++i)
    if (plan.selected(i)) out.push_back(plan.task(i).name);
  return out;
}

TEST(Plan, EmptyWorkflowBuilds) {
  Plan plan = MustBuild({});
  EXPECT_EQ(plan.size(), 0u);
  EXPECT_THAT(plan.order(), IsEmpty());
}

TEST(Plan, KeepsTheWorkflowAndItsTasks) {
  Plan plan = MustBuild({Task("build", {}, "ci.sloth:3"), Task("test", {"build"}, "ci.sloth:7")});
  EXPECT_EQ(plan.workflow().name, "ci");
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan.task(0).name, "build");
  EXPECT_EQ(plan.task(1).source, "ci.sloth:7");
  EXPECT_THAT(plan.deps(1), ElementsAre(0u));
  EXPECT_THAT(plan.dependents(0), ElementsAre(1u));
  EXPECT_THAT(plan.deps(0), IsEmpty());
  EXPECT_THAT(plan.dependents(1), IsEmpty());
}

TEST(Plan, FindsTasksByName) {
  Plan plan = MustBuild({Task("a"), Task("b"), Task("c")});
  EXPECT_EQ(plan.Find("a"), 0);
  EXPECT_EQ(plan.Find("c"), 2);
  EXPECT_EQ(plan.Find("d"), -1);
  EXPECT_EQ(plan.Find(""), -1);
}

TEST(Plan, EverythingSelectedByDefault) {
  Plan plan = MustBuild({Task("a"), Task("b", {"a"}), Task("c")});
  EXPECT_THAT(SelectedNames(plan), ElementsAre("a", "b", "c"));
}

TEST(Plan, RejectsDuplicateTaskNames) {
  Result<Plan> plan = Plan::Build(
      Workflow({Task("build", {}, "ci.sloth:3"), Task("test"), Task("build", {}, "ci.sloth:9")}));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error(), "ci.sloth:9: duplicate task name \"build\" in workflow \"ci\"");
}

TEST(Plan, UnknownDependencySuggestsClosestName) {
  Result<Plan> plan = Plan::Build(
      Workflow({Task("build", {}, "ci.sloth:3"), Task("deploy", {"biuld"}, "ci.sloth:12")}));
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.error(), StartsWith("ci.sloth:12: "));
  EXPECT_EQ(plan.error(),
            "ci.sloth:12: task \"deploy\" depends on unknown task \"biuld\" "
            "(did you mean \"build\"?)");
}

TEST(Plan, UnknownDependencyWithoutCloseMatchHasNoHint) {
  Result<Plan> plan =
      Plan::Build(Workflow({Task("build"), Task("deploy", {"kubernetes"}, "ci.sloth:12")}));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error(), "ci.sloth:12: task \"deploy\" depends on unknown task \"kubernetes\"");
  EXPECT_THAT(plan.error(), Not(HasSubstr("did you mean")));
}

TEST(Plan, ErrorsWithoutSourceHaveNoPrefix) {
  Result<Plan> plan = Plan::Build(Workflow({Task("deploy", {"nope"})}));
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.error(), StartsWith("task \"deploy\""));
}

TEST(Plan, RejectsSelfDependency) {
  Result<Plan> plan = Plan::Build(Workflow({Task("a"), Task("loop", {"a", "loop"}, "x.lua:4")}));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error(), "x.lua:4: dependency cycle: task \"loop\" depends on itself");
}

TEST(Plan, RejectsThreeCycleNamingItsTasks) {
  Result<Plan> plan =
      Plan::Build(Workflow({Task("ok"), Task("a", {"c"}, "w.lua:10"), Task("b", {"a"}, "w.lua:20"),
                            Task("c", {"b"}, "w.lua:30")}));
  ASSERT_FALSE(plan.ok());
  const std::string& e = plan.error();
  EXPECT_THAT(e, StartsWith("w.lua:10: dependency cycle: "));
  EXPECT_THAT(e, HasSubstr("\"a\""));
  EXPECT_THAT(e, HasSubstr("\"b\""));
  EXPECT_THAT(e, HasSubstr("\"c\""));
  EXPECT_THAT(e, Not(HasSubstr("\"ok\"")));
  // Each edge of the cycle appears, in the direction work would have to flow.
  EXPECT_EQ(e, "w.lua:10: dependency cycle: \"b\" -> \"c\" -> \"a\" -> \"b\"");
}

TEST(Plan, RejectsTwoCycle) {
  Result<Plan> plan = Plan::Build(Workflow({Task("x", {"y"}, "f:1"), Task("y", {"x"}, "f:2")}));
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.error(), HasSubstr("dependency cycle"));
  EXPECT_THAT(plan.error(), HasSubstr("\"x\""));
  EXPECT_THAT(plan.error(), HasSubstr("\"y\""));
}

TEST(Plan, CycleErrorNamesOnlyTheCycleAndPointsIntoIt) {
  // "deploy" depends on the cycle but is not part of it.
  Result<Plan> plan =
      Plan::Build(Workflow({Task("deploy", {"a"}, "w.lua:1"), Task("a", {"b"}, "w.lua:5"),
                            Task("b", {"a"}, "w.lua:9")}));
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.error(), HasSubstr("dependency cycle"));
  EXPECT_THAT(plan.error(), HasSubstr("\"a\""));
  EXPECT_THAT(plan.error(), HasSubstr("\"b\""));
  EXPECT_THAT(plan.error(), Not(HasSubstr("deploy")));
  EXPECT_THAT(plan.error(), StartsWith("w.lua:5: "));
}

TEST(Plan, DuplicateDependencyIsListedOnce) {
  Plan plan = MustBuild({Task("a"), Task("b", {"a", "a"})});
  EXPECT_THAT(plan.deps(1), ElementsAre(0u));
  EXPECT_THAT(plan.dependents(0), ElementsAre(1u));
}

TEST(Plan, IndependentTasksKeepDefinitionOrder) {
  Plan plan = MustBuild({Task("zeta"), Task("alpha"), Task("mid")});
  EXPECT_THAT(OrderNames(plan), ElementsAre("zeta", "alpha", "mid"));
}

TEST(Plan, OrderPutsDependenciesFirstOtherwiseDefinitionOrder) {
  Plan plan = MustBuild(
      {Task("deploy", {"build", "test"}), Task("build"), Task("test", {"build"}), Task("lint")});
  EXPECT_THAT(OrderNames(plan), ElementsAre("build", "test", "deploy", "lint"));
}

TEST(Plan, OrderIsStableForDiamond) {
  Plan plan =
      MustBuild({Task("d", {"b", "c"}), Task("c", {"a"}), Task("b", {"a"}), Task("a"), Task("e")});
  // a first (only ready), then c before b (definition order), then d before e.
  EXPECT_THAT(OrderNames(plan), ElementsAre("a", "c", "b", "d", "e"));
}

TEST(Plan, OrderRespectsEveryEdge) {
  Plan plan = MustBuild({Task("t5", {"t4", "t1"}), Task("t4", {"t3"}), Task("t3", {"t2"}),
                         Task("t2", {"t1"}), Task("t1"), Task("x", {"t3"}), Task("y")});
  std::vector<size_t> position(plan.size());
  for (size_t k = 0; k < plan.order().size(); ++k) position[plan.order()[k]] = k;
  ASSERT_EQ(plan.order().size(), plan.size());
  for (size_t i = 0; i < plan.size(); ++i)
    for (size_t d : plan.deps(i))
      EXPECT_LT(position[d], position[i]) << plan.task(d).name << " before " << plan.task(i).name;
  EXPECT_THAT(OrderNames(plan), ElementsAre("t1", "t2", "t3", "t4", "t5", "x", "y"));
}

TEST(Plan, AncestorsAreTransitiveInPlanOrder) {
  Plan plan = MustBuild({Task("d", {"b", "c"}), Task("c", {"a"}), Task("b", {"a"}), Task("a"),
                         Task("e", {"d"}), Task("lone")});
  EXPECT_THAT(Names(plan, plan.Ancestors(plan.Find("e"))), ElementsAre("a", "c", "b", "d"));
  EXPECT_THAT(Names(plan, plan.Ancestors(plan.Find("d"))), ElementsAre("a", "c", "b"));
  EXPECT_THAT(Names(plan, plan.Ancestors(plan.Find("b"))), ElementsAre("a"));
  EXPECT_THAT(plan.Ancestors(plan.Find("a")), IsEmpty());
  EXPECT_THAT(plan.Ancestors(plan.Find("lone")), IsEmpty());
}

TEST(Plan, SelectKeepsWantedTasksAndTheirAncestors) {
  Plan plan = MustBuild({Task("fetch"), Task("build", {"fetch"}), Task("test", {"build"}),
                         Task("lint"), Task("deploy", {"test"}), Task("docs", {"fetch"})});
  ASSERT_TRUE(plan.Select({"test"}).ok());
  EXPECT_THAT(SelectedNames(plan), ElementsAre("fetch", "build", "test"));
}

TEST(Plan, SelectSeveralTasksUnionsTheirAncestors) {
  Plan plan = MustBuild({Task("fetch"), Task("build", {"fetch"}), Task("test", {"build"}),
                         Task("lint"), Task("deploy", {"test"}), Task("docs", {"fetch"})});
  ASSERT_TRUE(plan.Select({"docs", "lint"}).ok());
  EXPECT_THAT(SelectedNames(plan), ElementsAre("fetch", "lint", "docs"));
  // The order still covers every task; selection is a separate flag.
  EXPECT_EQ(plan.order().size(), plan.size());
}

TEST(Plan, SelectingAgainReplacesTheSelection) {
  Plan plan = MustBuild({Task("a"), Task("b", {"a"}), Task("c")});
  ASSERT_TRUE(plan.Select({"b"}).ok());
  EXPECT_THAT(SelectedNames(plan), ElementsAre("a", "b"));
  ASSERT_TRUE(plan.Select({"c"}).ok());
  EXPECT_THAT(SelectedNames(plan), ElementsAre("c"));
}

TEST(Plan, EmptySelectionKeepsEverything) {
  Plan plan = MustBuild({Task("a"), Task("b", {"a"}), Task("c")});
  ASSERT_TRUE(plan.Select({}).ok());
  EXPECT_THAT(SelectedNames(plan), ElementsAre("a", "b", "c"));
}

TEST(Plan, SelectUnknownTaskFailsWithSuggestion) {
  Plan plan = MustBuild({Task("build"), Task("deploy", {"build"})});
  Status s = plan.Select({"build", "delpoy"});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "workflow \"ci\" has no task \"delpoy\" (did you mean \"deploy\"?)");
  // A failed selection leaves the plan as it was.
  EXPECT_THAT(SelectedNames(plan), ElementsAre("build", "deploy"));
}

TEST(Plan, SelectUnknownTaskWithoutCloseMatch) {
  Plan plan = MustBuild({Task("build")});
  Status s = plan.Select({"everything-else"});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "workflow \"ci\" has no task \"everything-else\"");
}

}  // namespace
}  // namespace sloth
