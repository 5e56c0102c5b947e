#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "lua/test_util.h"

namespace sloth {
using testing::LuaEnv;

struct WorkdirTest : ::testing::Test {
  static void SetUpTestSuite() { Loop::BlockSignals(); }
};

TEST_F(WorkdirTest, OutsideTasksItIsTheStartDirectory) {
  LuaEnv env;
  EXPECT_EQ(env.Eval("workdir.get()"), env.dir());
  EXPECT_EQ(env.Eval("workdir.exists()"), "true");
}

TEST_F(WorkdirTest, InsideATaskItIsTheTasksWorkdir) {
  LuaEnv env;
  TaskContext task;
  task.name = "t";
  task.workdir = env.dir() + "/build/out";
  ASSERT_EQ(env.RunInTask(R"(
    assert(workdir.get() == ")" +
                              task.workdir + R"(", workdir.get())
    assert(workdir.exists() == false)
    assert(workdir.create() == true and workdir.exists())
    assert(workdir.create() == true, "creating twice is fine")
    assert(fs.write("made-here", "x"))
  )",
                          &task)
                .message(),
            "");
  EXPECT_TRUE(std::filesystem::exists(task.workdir + "/made-here"));
}

TEST_F(WorkdirTest, CleanupEmptiesTheDirectoryButKeepsIt) {
  LuaEnv env;
  TaskContext task;
  task.name = "t";
  task.workdir = env.dir() + "/scratch";
  std::filesystem::create_directories(task.workdir + "/deep/er");
  std::ofstream(task.workdir + "/deep/er/f") << "x";
  std::ofstream(task.workdir + "/.hidden") << "x";
  ASSERT_EQ(env.RunInTask("assert(workdir.cleanup() == true)", &task).message(), "");
  EXPECT_TRUE(std::filesystem::is_directory(task.workdir));
  EXPECT_TRUE(std::filesystem::is_empty(task.workdir));
  task.workdir = env.dir() + "/never-created";
  ASSERT_EQ(env.RunInTask("assert(workdir.cleanup() == true)", &task).message(), "");
}

TEST_F(WorkdirTest, CleanupRefusesTheStartDirectory) {
  LuaEnv env;
  std::ofstream(env.dir() + "/precious") << "x";
  ASSERT_EQ(env.Run(R"(
    local ok, err = workdir.cleanup()
    assert(ok == nil and err:find("refusing") and err:find("start directory"), err)
  )")
                .message(),
            "");
  TaskContext task;
  task.name = "t";
  task.workdir = env.dir() + "/sub/..";  // the same directory, spelled differently
  ASSERT_EQ(env.RunInTask("assert(workdir.cleanup() == nil)", &task).message(), "");
  EXPECT_TRUE(std::filesystem::exists(env.dir() + "/precious"));
}

TEST_F(WorkdirTest, CheckModeChangesNothing) {
  RuntimeOptions options;
  options.check_mode = true;
  LuaEnv env(options);
  TaskContext task;
  task.name = "t";
  task.workdir = env.dir() + "/wd";
  std::filesystem::create_directories(task.workdir);
  std::ofstream(task.workdir + "/f") << "x";
  ASSERT_EQ(env.RunInTask("assert(workdir.cleanup() == true)", &task).message(), "");
  EXPECT_TRUE(std::filesystem::exists(task.workdir + "/f"));
  task.workdir = env.dir() + "/new";
  ASSERT_EQ(env.RunInTask("assert(workdir.create() == true)", &task).message(), "");
  EXPECT_FALSE(std::filesystem::exists(task.workdir));
  EXPECT_TRUE(env.sink().Contains("[check] would create directory"));
}

}  // namespace sloth
