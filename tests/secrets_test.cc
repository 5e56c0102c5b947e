// End-to-end tests of the `secrets` commands and of secrets in a real run: values encrypted at
// rest, exposed to tasks with the password, and redacted from everything the run prints.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "e2e_util.h"

namespace sloth::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

constexpr char kValue[] = "Sup3r-Secr3t-Value-91f2";

// Every byte of every file under `dir` (the database, its WAL, artifacts, run records).
std::string AllBytes(const std::filesystem::path& dir) {
  std::string bytes;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) bytes += ReadFile(e.path());
  return bytes;
}

class SecretsCliTest : public ::testing::Test {
 protected:
  CmdResult Run(const std::vector<std::string>& args, const std::string& in = "") {
    return box_.Run(args, in);
  }
  void Add(const std::string& name, const std::string& value, const std::string& stack = "prod") {
    CmdResult r = Run({"secrets", "add", name, "--stack", stack, "--password-stdin"},
                      "pw-one\n" + value + "\n");
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }
  Sandbox box_;
};

TEST_F(SecretsCliTest, AddGetListRemove) {
  CmdResult add = Run({"secrets", "add", "db_password", "--stack", "prod", "--password-stdin"},
                      std::string("pw-one\n") + kValue + "\n");
  ASSERT_EQ(add.exit_code, 0) << Describe(add);
  EXPECT_THAT(add.out, HasSubstr("added secret db_password of stack prod"));

  CmdResult get =
      Run({"secrets", "get", "db_password", "--stack", "prod", "--password-stdin"}, "pw-one\n");
  ASSERT_EQ(get.exit_code, 0) << Describe(get);
  EXPECT_EQ(get.out, std::string(kValue) + "\n");

  CmdResult list = Run({"secrets", "list", "--stack", "prod"});  // no password needed
  ASSERT_EQ(list.exit_code, 0) << Describe(list);
  EXPECT_THAT(list.out, HasSubstr("NAME"));
  EXPECT_THAT(list.out, HasSubstr("db_password"));
  EXPECT_THAT(list.out, Not(HasSubstr(kValue)));

  CmdResult json = Run({"secrets", "list", "--stack", "prod", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << Describe(json);
  Json doc = Json::parse(json.out);
  ASSERT_EQ(doc.size(), 1u);
  EXPECT_EQ(doc[0]["name"], "db_password");
  EXPECT_EQ(doc[0]["stack"], "prod");
  EXPECT_TRUE(doc[0]["created_at"].is_string());

  CmdResult rm = Run({"secrets", "remove", "db_password", "--stack", "prod"});
  ASSERT_EQ(rm.exit_code, 0) << Describe(rm);
  EXPECT_THAT(Run({"secrets", "list", "--stack", "prod"}).out, HasSubstr("no secrets"));
  EXPECT_EQ(Run({"secrets", "list", "--stack", "prod", "-o", "json"}).out, "[]\n");
}

TEST_F(SecretsCliTest, PasswordFromEnvironmentAndValueFromFile) {
  box_.SetEnv("SLOTH_SECRETS_PASSWORD", "env-pw");
  box_.Write("key.pem", "line one\nline two\n");
  CmdResult add = Run({"secrets", "add", "tls_key", "--stack", "web", "--from-file", "key.pem"});
  ASSERT_EQ(add.exit_code, 0) << Describe(add);
  CmdResult get = Run({"secrets", "get", "tls_key", "--stack", "web"});
  ASSERT_EQ(get.exit_code, 0) << Describe(get);
  EXPECT_EQ(get.out, "line one\nline two\n\n");  // the file byte for byte, then a newline
  CmdResult replace = Run({"secrets", "add", "tls_key", "--stack", "web"}, "new value\n");
  ASSERT_EQ(replace.exit_code, 0) << Describe(replace);
  EXPECT_THAT(replace.out, HasSubstr("updated secret tls_key"));
  EXPECT_EQ(Run({"secrets", "get", "tls_key", "--stack", "web"}).out, "new value\n");
}

TEST_F(SecretsCliTest, WrongPasswordExits2) {
  Add("db_password", kValue);
  CmdResult get =
      Run({"secrets", "get", "db_password", "--stack", "prod", "--password-stdin"}, "wrong\n");
  EXPECT_EQ(get.exit_code, 2) << Describe(get);
  EXPECT_EQ(get.err, "error: wrong secrets password for stack prod\n");
  EXPECT_EQ(get.out, "");
  CmdResult add =
      Run({"secrets", "add", "other", "--stack", "prod", "--password-stdin"}, "wrong\nvalue\n");
  EXPECT_EQ(add.exit_code, 2) << Describe(add);
}

TEST_F(SecretsCliTest, NotFoundExits1) {
  Add("db_password", kValue);
  CmdResult get =
      Run({"secrets", "get", "nope", "--stack", "prod", "--password-stdin"}, "pw-one\n");
  EXPECT_EQ(get.exit_code, 1) << Describe(get);
  EXPECT_EQ(get.err, "error: secret \"nope\" of stack \"prod\" not found\n");
  CmdResult rm = Run({"secrets", "remove", "nope", "--stack", "prod"});
  EXPECT_EQ(rm.exit_code, 1) << Describe(rm);
  EXPECT_THAT(rm.err, HasSubstr("not found"));
}

TEST_F(SecretsCliTest, BadInputExits2) {
  auto expect2 = [&](const std::vector<std::string>& args, const std::string& in,
                     const std::string& message) {
    CmdResult r = Run(args, in);
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
    EXPECT_THAT(r.err, HasSubstr(message)) << Describe(r);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;  // one line
  };
  expect2({"secrets", "add", "x1", "--stack", "prod"}, "value\n",
          "error: no secrets password: pass --password-stdin");
  expect2({"secrets", "add", "x1", "--stack", "prod", "--password-stdin"}, "pw\n",
          "error: the secret's value is empty");
  expect2({"secrets", "add", "x1", "--stack", "prod", "--password-stdin"}, "",
          "error: --password-stdin: standard input is empty");
  expect2({"secrets", "add", "x1", "--stack", "prod", "--password-stdin"}, "\nvalue\n",
          "error: --password-stdin: the password line is empty");
  expect2({"secrets", "add", "bad name", "--stack", "prod", "--password-stdin"}, "pw\nv\n",
          "error: invalid secret name");
  expect2({"secrets", "add", "x1", "--stack", "prod", "--password-stdin", "--from-file", "nope"},
          "pw\n", "error: --from-file: cannot read nope");
  expect2({"secrets", "list", "--stack", "prod", "-o", "yaml"}, "", "unknown output");
  expect2({"secrets", "get", "x1", "--stack", "prod"}, "", "no secrets password");
  CmdResult no_stack = Run({"secrets", "add", "x1", "--password-stdin"}, "pw\nvalue\n");
  EXPECT_EQ(no_stack.exit_code, 2) << Describe(no_stack);
  EXPECT_THAT(no_stack.err, HasSubstr("error: --stack is required"));
  EXPECT_EQ(Run({"secrets"}).exit_code, 2);
  EXPECT_EQ(Run({"secrets", "list"}).exit_code, 2);
}

TEST_F(SecretsCliTest, ValueIsNotInTheDataDirInPlainText) {
  Add("db_password", kValue);
  Add("api_token", std::string(kValue) + "-2");
  std::string bytes = AllBytes(box_.home());
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(bytes.find(kValue), std::string::npos);
  EXPECT_EQ(bytes.find("pw-one"), std::string::npos);
}

TEST_F(SecretsCliTest, ShortValueWarnsItIsNotRedacted) {
  CmdResult r =
      Run({"secrets", "add", "pin", "--stack", "prod", "--password-stdin"}, "pw-one\n123\n");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("warning: values shorter than 4 characters are not redacted"));
}

// --- secrets in a run ---------------------------------------------------------------------

constexpr char kDeploy[] = R"lua(
local show = task("show")
  :command(function()
    log.info("token=" .. secrets.api_token)
    exec.run("echo from-shell " .. secret.get("api_token"))
    return true, "shown " .. secrets.api_token, { token = secrets.api_token, n = #secrets.api_token }
  end)
  :build()
local leak = task("leak")
  :depends_on({ "show" })
  :command(function()
    assert(secret.get("missing") == nil)
    local ok, err = pcall(function() secrets.api_token = "x" end)
    assert(not ok and err:find("read%-only"))
    return false, "failed with " .. secrets.api_token
  end)
  :build()
workflow.define("deploy", { tasks = { show, leak } })
)lua";

class SecretsRunTest : public SecretsCliTest {
 protected:
  void SetUp() override {
    box_.Write("deploy.sloth", kDeploy);
    Add("api_token", kValue, "deploy");
  }
};

TEST_F(SecretsRunTest, BasicOutputShowsStarsNotTheValue) {
  CmdResult r = Run({"run", "deploy", "-f", "deploy.sloth", "--password-stdin"}, "pw-one\n");
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.output(), Not(HasSubstr(kValue)));
  EXPECT_THAT(r.out, HasSubstr("token=***"));
  EXPECT_THAT(r.out, HasSubstr("from-shell ***"));
  EXPECT_THAT(r.out, HasSubstr("✗ leak: failed with ***"));
  std::string bytes = AllBytes(box_.home());
  EXPECT_EQ(bytes.find(kValue), std::string::npos) << "the value is in a file of the data dir";
}

TEST_F(SecretsRunTest, JsonOutputIsRedacted) {
  box_.SetEnv("SLOTH_SECRETS_PASSWORD", "pw-one");
  CmdResult r = Run({"run", "deploy", "-f", "deploy.sloth", "-o", "json"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.output(), Not(HasSubstr(kValue)));
  Json doc = Json::parse(r.out, nullptr, false);
  ASSERT_FALSE(doc.is_discarded()) << r.out;
  EXPECT_EQ(doc["tasks"]["show"]["output"]["token"], "***");
  EXPECT_EQ(doc["tasks"]["show"]["output"]["n"], std::string(kValue).size());  // the task saw it
  EXPECT_EQ(doc["tasks"]["show"]["message"], "shown ***");
  EXPECT_EQ(doc["tasks"]["leak"]["error"], "failed with ***");
  EXPECT_THAT(r.err, HasSubstr("token=***"));
  EXPECT_EQ(AllBytes(box_.home()).find(kValue), std::string::npos);
}

TEST_F(SecretsRunTest, WithoutPasswordReadingASecretFails) {
  CmdResult r = Run({"run", "deploy", "-f", "deploy.sloth"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("secret api_token: the run has no secrets password "
                               "(--password-stdin or SLOTH_SECRETS_PASSWORD)"));
}

TEST_F(SecretsRunTest, WrongPasswordStopsBeforeAnyTask) {
  CmdResult r = Run({"run", "deploy", "-f", "deploy.sloth", "--password-stdin"}, "nope\n");
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("error: wrong secrets password for stack deploy"));
  EXPECT_THAT(r.out, Not(HasSubstr("▶ show")));
}

TEST_F(SecretsRunTest, AStackWithoutSecretsHasNoSecretsGlobal) {
  box_.Write("plain.sloth", R"lua(
task("t"):command(function()
  assert(secrets == nil, "secrets should be nil")
  assert(secret.get("api_token") == nil)
end):build()
)lua");
  CmdResult r = Run({"run", "-f", "plain.sloth", "--password-stdin"}, "anything\n");
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  r = Run({"run", "-f", "plain.sloth"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

}  // namespace
}  // namespace sloth::e2e
