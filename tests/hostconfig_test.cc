// Host configuration from the command line: --check and --diff.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "e2e_util.h"

namespace sloth::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kEditFlow[] = R"(
local t = task("t"):command(function()
  file_ops.lineinfile({ path = "app.conf", line = "debug = false", regexp = "^debug" })
  return true
end):build()
workflow.define("w", { tasks = { t } })
)";

TEST(HostConfigCli, DiffShowsTheChangeAndCheckModeLeavesTheFileAlone) {
  Sandbox box;
  box.Write("wf.sloth", kEditFlow);
  box.Write("app.conf", "port = 1\ndebug = true\n");
  CmdResult plain = box.Run({"run", "w", "-f", "wf.sloth", "--check"});
  ASSERT_EQ(plain.exit_code, 0) << Describe(plain);
  EXPECT_THAT(plain.out, Not(HasSubstr("+debug = false")));  // no --diff, no diff
  CmdResult dry = box.Run({"run", "w", "-f", "wf.sloth", "--check", "--diff"});
  ASSERT_EQ(dry.exit_code, 0) << Describe(dry);
  EXPECT_THAT(dry.out, HasSubstr("-debug = true"));
  EXPECT_THAT(dry.out, HasSubstr("+debug = false"));
  EXPECT_EQ(box.Read("app.conf"), "port = 1\ndebug = true\n");
  CmdResult wet = box.Run({"run", "w", "-f", "wf.sloth", "--diff"});
  ASSERT_EQ(wet.exit_code, 0) << Describe(wet);
  EXPECT_THAT(wet.out, HasSubstr("+debug = false"));
  EXPECT_EQ(box.Read("app.conf"), "port = 1\ndebug = false\n");
  CmdResult again = box.Run({"run", "w", "-f", "wf.sloth", "--diff"});
  EXPECT_THAT(again.out, Not(HasSubstr("@@")));  // nothing changed, nothing to show
  // The file is a resource of the stack.
  CmdResult resources = box.Run({"stack", "resources", "w", "-o", "json"});
  EXPECT_THAT(resources.out, HasSubstr("app.conf"));
}

}  // namespace
}  // namespace sloth::e2e
