// The runtime's coroutine glue: cancellation and deadlines as the engine uses them.
#include "lua/runtime.h"

#include <gtest/gtest.h>

#include <fstream>

#include "lua/test_util.h"

using namespace std::chrono_literals;

namespace sloth {
namespace {
using testing::LuaEnv;

struct RuntimeTest : ::testing::Test {
  static void SetUpTestSuite() { Loop::BlockSignals(); }
};

TaskContext MakeTask(const std::string& workdir) {
  TaskContext task;
  task.name = "t";
  task.workdir = workdir;
  return task;
}

// A cancelled attempt that swallows the cancellation error with pcall must not be able to start
// (and wait for) new work: the next wait raises at once.
TEST_F(RuntimeTest, NoNewWaitAfterCancellation) {
  LuaEnv env;
  TaskContext task = MakeTask(env.dir());
  env.loop().After(200ms, [&] { env.rt().CancelTask(&task, "timed out after 200ms"); });
  Clock::time_point start = Clock::now();
  Status s = env.RunInTask("pcall(exec.run, 'sleep 3'); exec.run('sleep 3')", &task);
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("timed out after 200ms"), std::string::npos) << s.message();
}

// A user's own coroutine inside a task works for that task: its commands run in the task's
// workdir and are stopped when the task is cancelled.
TEST_F(RuntimeTest, UserCoroutinesRunInTheirTasksWorkdir) {
  LuaEnv env;
  TaskContext task = MakeTask("/tmp");
  Status s = env.RunInTask(
      "coroutine.wrap(function() local r = exec.run('pwd'); assert(r.stdout == '/tmp\\n', "
      "r.stdout) end)()",
      &task);
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(RuntimeTest, CancellingATaskStopsWaitsInsideUserCoroutines) {
  LuaEnv env;
  TaskContext task = MakeTask(env.dir());
  env.loop().After(200ms, [&] { env.rt().CancelTask(&task, "interrupted"); });
  Clock::time_point start = Clock::now();
  Status s = env.RunInTask("coroutine.wrap(function() exec.run('sleep 3') end)()", &task);
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("interrupted"), std::string::npos) << s.message();
}

TEST_F(RuntimeTest, DeadlineInterruptsBusyUserCoroutines) {
  LuaEnv env;
  TaskContext task = MakeTask(env.dir());
  task.deadline = Clock::now() + 200ms;
  task.deadline_reason = "timed out after 200ms";
  Clock::time_point start = Clock::now();
  Status s = env.RunInTask(
      "local t0 = os.clock()\n"
      "coroutine.wrap(function() while os.clock() - t0 < 3 do end end)()",
      &task);
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("timed out after 200ms"), std::string::npos) << s.message();
}

// The count hook raises the bare reason, as a cancelled wait does, so the scheduler and the
// on_timeout hook see "timed out after ..." (the traceback still names the line).
TEST_F(RuntimeTest, BusyLoopTimeoutErrorIsTheReason) {
  LuaEnv env;
  TaskContext task = MakeTask(env.dir());
  task.deadline = Clock::now() + 100ms;
  task.deadline_reason = "timed out after 100ms";
  Status s = env.RunInTask("local function spin() while true do end end\nspin()", &task);
  EXPECT_EQ(s.message(), "timed out after 100ms");
}

// The load-time limit also covers a user's coroutine started by top-level code.
TEST_F(RuntimeTest, LoadTimeoutCoversUserCoroutines) {
  RuntimeOptions options;
  options.load_timeout = 200ms;
  LuaEnv env(options);
  std::string path = env.dir() + "/busy.sloth";
  std::ofstream(path) << "local t0 = os.clock()\n"
                         "coroutine.wrap(function() while os.clock() - t0 < 3 do end end)()\n";
  Clock::time_point start = Clock::now();
  Status s = env.rt().RunFile(path);
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("loading took longer"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace sloth
