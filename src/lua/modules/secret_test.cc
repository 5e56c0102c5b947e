#include <gtest/gtest.h>

#include "lua/modules/secret.h"
#include "lua/test_util.h"

namespace sloth {
namespace {

using testing::LuaEnv;

class SecretTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Loop::BlockSignals(); }  // child processes are reaped via SIGCHLD
  void Expose(RunSecrets secrets) { SetSecrets(env_.rt(), secrets); }
  LuaEnv env_;
};

TEST_F(SecretTest, NoSecretsMeansNilGlobalAndNilGet) {
  EXPECT_EQ(env_.Eval("secrets"), "nil");
  EXPECT_EQ(env_.Eval("secret.get('api_token')"), "nil");
}

TEST_F(SecretTest, ValuesReadThroughGlobalAndGet) {
  Expose({{{"api_token", "tok-123456"}, {"db_password", "hunter22"}}, {}});
  EXPECT_EQ(env_.Eval("secrets.api_token"), "tok-123456");
  EXPECT_EQ(env_.Eval("secrets['db_password']"), "hunter22");
  EXPECT_EQ(env_.Eval("secret.get('db_password')"), "hunter22");
  EXPECT_EQ(env_.Eval("secrets.unknown"), "nil");
  EXPECT_EQ(env_.Eval("secret.get('unknown')"), "nil");
  EXPECT_EQ(env_.Eval("type(secrets)"), "table");
}

TEST_F(SecretTest, PairsListsEveryValue) {
  Expose({{{"a_name", "value-aaa"}, {"b_name", "value-bbb"}}, {}});
  EXPECT_EQ(env_.Eval("(function() local n, s = {}, '' "
                      "for k, v in pairs(secrets) do n[#n + 1] = k .. '=' .. v end "
                      "table.sort(n) return table.concat(n, ',') end)()"),
            "a_name=value-aaa,b_name=value-bbb");
}

TEST_F(SecretTest, SecretsAreReadOnly) {
  Expose({{{"api_token", "tok-123456"}}, {}});
  Status s = env_.Run("secrets.api_token = 'changed'");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("secrets are read-only (cannot set secrets.api_token)"),
            std::string::npos)
      << s.message();
  EXPECT_FALSE(env_.Run("secrets.new_one = 'x'").ok());
  EXPECT_FALSE(env_.Run("setmetatable(secrets, nil)").ok());
  EXPECT_EQ(env_.Eval("getmetatable(secrets)"), "secrets are read-only");
  EXPECT_EQ(env_.Eval("secrets.api_token"), "tok-123456");
  EXPECT_EQ(env_.Eval("secrets.new_one"), "nil");
}

TEST_F(SecretTest, LockedSecretRaisesHowToGiveThePassword) {
  Expose({{}, {"db_password"}});
  const char* want =
      "secret db_password: the run has no secrets password (--password-stdin or "
      "SLOTH_SECRETS_PASSWORD)";
  Status s = env_.RunInTask("return secrets.db_password");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
  s = env_.RunInTask("return secret.get('db_password')");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
  EXPECT_FALSE(env_.RunInTask("for k, v in pairs(secrets) do end").ok());
  EXPECT_EQ(env_.Eval("secret.get('other')"), "nil");
}

TEST_F(SecretTest, LogLinesAreRedactedByValue) {
  Expose({{{"api_token", "tok-123456"}}, {}});
  ASSERT_TRUE(env_.RunInTask("log.info('token is ' .. secrets.api_token .. '!')").ok());
  ASSERT_TRUE(env_.RunInTask("exec.run('echo streamed tok-123456 line')").ok());
  EXPECT_TRUE(env_.sink().Contains("token is ***!"));
  EXPECT_TRUE(env_.sink().Contains("streamed *** line"));
  EXPECT_FALSE(env_.sink().Contains("tok-123456"));
  EXPECT_EQ(env_.rt().Redact("x tok-123456 y"), "x *** y");
}

TEST_F(SecretTest, ALaterCallReplacesTheSecretsButKeepsRedacting) {
  Expose({{{"api_token", "tok-123456"}}, {}});
  Expose({});
  EXPECT_EQ(env_.Eval("secrets"), "nil");
  EXPECT_EQ(env_.Eval("secret.get('api_token')"), "nil");
  EXPECT_EQ(env_.rt().Redact("tok-123456"), "***");
}

}  // namespace
}  // namespace sloth
