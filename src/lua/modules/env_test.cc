#include <cstdlib>

#include <gtest/gtest.h>

#include "lua/test_util.h"

namespace sloth {
using testing::LuaEnv;

struct EnvTest : ::testing::Test {
  static void SetUpTestSuite() { Loop::BlockSignals(); }
  void TearDown() override {
    unsetenv("SLOTH_ENV_TEST");
    unsetenv("SLOTH_ENV_CHILD");
  }
};

TEST_F(EnvTest, GetWithDefault) {
  LuaEnv env;
  setenv("SLOTH_ENV_TEST", "from-process", 1);
  EXPECT_EQ(env.Eval("env.get('SLOTH_ENV_TEST')"), "from-process");
  EXPECT_EQ(env.Eval("env.get('SLOTH_ENV_MISSING')"), "nil");
  EXPECT_EQ(env.Eval("env.get('SLOTH_ENV_MISSING', 'fallback')"), "fallback");
  EXPECT_EQ(env.Eval("env.get('SLOTH_ENV_TEST', 'fallback')"), "from-process");
}

TEST_F(EnvTest, SetAndUnsetReachTheProcessAndLaterCommands) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    assert(env.set("SLOTH_ENV_CHILD", "hola") == true)
    assert(env.get("SLOTH_ENV_CHILD") == "hola")
    assert(exec.run('printf %s "$SLOTH_ENV_CHILD"').stdout == "hola")
    assert(env.set("SLOTH_ENV_TEST", 42) and env.get("SLOTH_ENV_TEST") == "42")
    assert(env.unset("SLOTH_ENV_CHILD") == true)
    assert(env.get("SLOTH_ENV_CHILD") == nil)
    assert(exec.run('printf %s "${SLOTH_ENV_CHILD-unset}"').stdout == "unset")
  )")
                .message(),
            "");
  EXPECT_STREQ(std::getenv("SLOTH_ENV_TEST"), "42");
}

TEST_F(EnvTest, AllListsEveryVariable) {
  LuaEnv env;
  setenv("SLOTH_ENV_TEST", "a=b", 1);
  EXPECT_EQ(env.Eval("env.all().SLOTH_ENV_TEST"), "a=b");
  EXPECT_EQ(env.Eval("env.all().PATH == os.getenv('PATH')"), "true");
}

TEST_F(EnvTest, BadArgumentsRaise) {
  LuaEnv env;
  for (const char* code : {"env.get()", "env.get('')", "env.set('A=B', 'x')", "env.set('X')",
                           "env.set('X', {})", "env.unset('')", "env.get({})"}) {
    Status s = env.Run(code);
    EXPECT_NE(s.message().find("bad argument"), std::string::npos) << code << ": " << s.message();
  }
}

}  // namespace sloth
