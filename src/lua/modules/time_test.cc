#include <ctime>

#include <gtest/gtest.h>

#include "lua/test_util.h"

namespace sloth {
using testing::LuaEnv;

struct TimeTest : ::testing::Test {
  static void SetUpTestSuite() { Loop::BlockSignals(); }
};

TEST_F(TimeTest, NowIsWallClockWithFractions) {
  LuaEnv env;
  double now = std::stod(env.Eval("time.now()"));
  EXPECT_NEAR(now, static_cast<double>(std::time(nullptr)), 2.0);
  EXPECT_EQ(env.Eval("math.type(time.now())"), "float");
  EXPECT_EQ(env.Eval("math.type(time.now_ms())"), "integer");
  EXPECT_EQ(env.Eval("math.abs(time.now_ms() / 1000 - time.now()) < 1"), "true");
  EXPECT_EQ(env.Eval("time.since(time.now() - 10) >= 10"), "true");
}

TEST_F(TimeTest, FormatAndParseRoundTrip) {
  LuaEnv env;
  EXPECT_EQ(env.Eval("time.format(0, '!%Y-%m-%d %H:%M:%S')"), "1970-01-01 00:00:00");
  EXPECT_EQ(env.Eval("time.format(86399.9, '!%H:%M:%S')"), "23:59:59");
  EXPECT_EQ(env.Eval("time.format(0, '')"), "");
  EXPECT_EQ(env.Eval("time.parse('1970-01-02T00:00:00Z')"), "86400");
  EXPECT_EQ(env.Eval("time.parse('1970-01-02T02:00:00+02:00')"), "86400");
  EXPECT_EQ(env.Eval("time.parse('1970-01-02T02:00:00+0200')"), "86400");
  EXPECT_EQ(env.Eval("time.parse('02/01/1970', '!%d/%m/%Y')"), "86400");
  ASSERT_EQ(env.Run(R"(
    local t = 1700000000
    assert(time.parse(time.format(t)) == t, time.format(t))
    assert(time.parse(time.format(t, "%Y-%m-%dT%H:%M:%S")) == t, "no offset: local time")
    assert(time.format():match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[+-]%d%d%d%d$"), time.format())
    local v, err = time.parse("yesterday")
    assert(v == nil and err:find("does not match"), err)
    assert(time.parse("2024-01-01T00:00:00 trailing") == nil)
    assert(time.parse("2024-13-01", "%Y-%m-%d") == nil)
  )")
                .message(),
            "");
}

TEST_F(TimeTest, DurationParsesUnits) {
  LuaEnv env;
  EXPECT_EQ(env.Eval("time.duration('1h30m')"), "5400");
  EXPECT_EQ(env.Eval("time.duration('500ms')"), "0.5");
  EXPECT_EQ(env.Eval("time.duration(12)"), "12");
  EXPECT_EQ(env.Eval("select(2, time.duration('soon')):find('^time.duration: ') ~= nil"), "true");
}

TEST_F(TimeTest, SleepInTasksInterleaves) {
  LuaEnv env;
  ASSERT_EQ(env.Run("order = {}").message(), "");
  lua_State* L = env.rt().state();
  TaskContext a, b;
  a.name = "a";
  b.name = "b";
  a.workdir = b.workdir = env.dir();
  int finished = 0;
  for (auto [task, code] :
       {std::pair{&a, "order[#order + 1] = 'a1'; time.sleep(0.2); order[#order + 1] = 'a2'"},
        std::pair{&b, "order[#order + 1] = 'b1'; time.sleep('200ms'); order[#order + 1] = 'b2'"}}) {
    ASSERT_EQ(luaL_loadstring(L, code), LUA_OK);
    env.rt().Spawn(0, task, [&](lua_State* co, int status) {
      EXPECT_EQ(status, LUA_OK) << lua_tostring(co, -1);
      ++finished;
    });
  }
  auto start = Clock::now();
  env.loop().RunUntil([&] { return finished == 2; });
  EXPECT_EQ(env.Eval("table.concat(order, ',')"), "a1,b1,a2,b2");
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(150));
}

TEST_F(TimeTest, CancellingATaskEndsItsSleep) {
  LuaEnv env;
  lua_State* L = env.rt().state();
  TaskContext task;
  task.name = "t";
  task.workdir = env.dir();
  bool done = false;
  int result = LUA_OK;
  ASSERT_EQ(luaL_loadstring(L, "time.sleep(30)"), LUA_OK);
  env.rt().Spawn(0, &task, [&](lua_State*, int status) {
    result = status;
    done = true;
  });
  env.loop().After(std::chrono::milliseconds(50), [&] { env.rt().CancelTask(&task, "timed out"); });
  auto start = Clock::now();
  env.loop().RunUntil([&] { return done; });
  EXPECT_NE(result, LUA_OK);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
}

TEST_F(TimeTest, SleepOutsideTasksDrivesTheLoop) {
  LuaEnv env;
  auto start = Clock::now();
  ASSERT_EQ(env.Run("time.sleep(0.05)").message(), "");
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(45));
}

TEST_F(TimeTest, BadArgumentsRaise) {
  LuaEnv env;
  for (const char* code :
       {"time.sleep()", "time.sleep('soon')", "time.sleep(-1)", "time.format('x')", "time.parse()",
        "time.since()", "time.duration({})"}) {
    Status s = env.Run(code);
    EXPECT_NE(s.message().find("bad argument"), std::string::npos) << code << ": " << s.message();
  }
}

}  // namespace sloth
