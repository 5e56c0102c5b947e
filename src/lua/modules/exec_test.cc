#include <gtest/gtest.h>

#include "lua/test_util.h"

namespace sloth {
using testing::LuaEnv;

struct ExecTest : ::testing::Test {
  static void SetUpTestSuite() { Loop::BlockSignals(); }
};

TEST_F(ExecTest, RunCapturesStreamsAndExitCode) {
  LuaEnv env;
  ASSERT_TRUE(env.Run(R"(
    r = exec.run("echo out; echo err >&2; exit 3")
    assert(r.exit_code == 3 and r.success == false)
    assert(r.stdout == "out\n" and r.stderr == "err\n")
  )")
                  .ok());
}

TEST_F(ExecTest, ResultBehavesLikeItsStdout) {
  LuaEnv env;
  EXPECT_EQ(env.Eval("'got: ' .. exec.run('printf hi')"), "got: hi");
  EXPECT_EQ(env.Eval("exec.run('printf hi')"), "hi");
}

TEST_F(ExecTest, ArgvFormDoesNotUseAShell) {
  LuaEnv env;
  EXPECT_EQ(env.Eval("exec.run({'printf', '%s', '$HOME; ls'}).stdout"), "$HOME; ls");
}

TEST_F(ExecTest, OptionsEnvCwdStdinTimeout) {
  LuaEnv env;
  EXPECT_EQ(env.Eval("exec.run('printf %s \"$X\"', {env = {X = 'y'}}).stdout"), "y");
  EXPECT_EQ(env.Eval("exec.run('cat', {stdin = 'fed'}).stdout"), "fed");
  ASSERT_TRUE(env.Run("fs_dir = exec.run('mkdir -p sub && cd sub && pwd').stdout").ok());
  EXPECT_EQ(env.Eval("exec.run('pwd', {cwd = 'sub'}).stdout"), env.dir() + "/sub\n");
  EXPECT_EQ(env.Eval("exec.run('sleep 5', {timeout = 0.2}).timed_out"), "true");
}

TEST_F(ExecTest, MissingProgramIsExit127) {
  LuaEnv env;
  EXPECT_EQ(env.Eval("exec.run({'no-such-program-xyz'}).exit_code"), "127");
}

TEST_F(ExecTest, CheckModeDoesNotRunCommands) {
  RuntimeOptions options;
  options.check_mode = true;
  LuaEnv env(options);
  ASSERT_TRUE(env.Run("r = exec.run('touch made')").ok());
  EXPECT_EQ(env.Eval("r.skipped"), "true");
  EXPECT_FALSE(std::filesystem::exists(env.dir() + "/made"));
  ASSERT_TRUE(env.Run("exec.run('touch forced', {check_mode = false})").ok());
  EXPECT_TRUE(std::filesystem::exists(env.dir() + "/forced"));
}

TEST_F(ExecTest, OsExecuteAndPopenKeepStockContracts) {
  LuaEnv env;
  EXPECT_EQ(env.Eval("select(3, os.execute('exit 4'))"), "4");
  EXPECT_EQ(env.Eval("os.execute('true')"), "true");
  EXPECT_EQ(env.Eval("io.popen('printf a; printf b'):read('a')"), "ab");
  ASSERT_TRUE(env.Run(R"(
    local f = io.popen("printf 'one\ntwo\n'")
    local seen = {}
    for line in f:lines() do seen[#seen + 1] = line end
    assert(#seen == 2 and seen[2] == "two")
    assert(f:close() == true)
  )")
                  .ok());
}

TEST_F(ExecTest, CommandsInTasksYieldAndRunInTheWorkdir) {
  LuaEnv env;
  TaskContext task;
  task.name = "t";
  task.workdir = "/tmp";
  ASSERT_TRUE(env.RunInTask("assert(exec.run('pwd').stdout == '/tmp\\n')", &task).ok());
  EXPECT_TRUE(env.sink().Contains("/tmp"));  // the output was streamed into the log
}

TEST_F(ExecTest, BackgroundHandles) {
  LuaEnv env;
  ASSERT_TRUE(env.Run(R"(
    local h = exec.background("sleep 0.1; echo done")
    assert(h:is_running())
    local r = h:wait()
    assert(r.stdout == "done\n" and not h:is_running())
    local k = exec.background("sleep 30")
    k:kill()
    assert(k:wait().exit_code ~= 0)
  )")
                  .ok());
}

TEST_F(ExecTest, BadArgumentsRaise) {
  LuaEnv env;
  EXPECT_FALSE(env.Run("exec.run({})").ok());
  EXPECT_FALSE(env.Run("exec.run('true', {timeout = 'soon'})").ok());
}

}  // namespace sloth
