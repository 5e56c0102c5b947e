// End-to-end: `ssh add|list|remove` and `run --ssh PROFILE` against a real OpenSSH server on
// 127.0.0.1 (the "remote" host is this machine; a command that ran over SSH sees SSH_CONNECTION).
#include <signal.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "e2e_util.h"

namespace sloth::e2e {
namespace {

using ::testing::HasSubstr;

constexpr char kRemoteWorkflow[] = R"lua(
local t = task("remote"):command(function()
    local r = exec.run("echo conn=${SSH_CONNECTION:+yes}")
    assert(r.stdout == "conn=yes\n", "over ssh: " .. r.stdout)
    assert(exec.run("pwd", { cwd = "/tmp" }).stdout == "/tmp\n")
    assert(exec.run("echo \"$GREETING\"", { env = { GREETING = "it's a b" } }).stdout == "it's a b\n")
    assert(exec.run({ "printf", "%s|", "a b", "it's" }).stdout == "a b|it's|")
    assert(exec.run("exit 4").exit_code == 4)
    assert(exec.command("echo", "x y").stdout == "x y\n")
    assert(exec.sh("false; echo unreachable").exit_code ~= 0, "sh stops at the first error")
    exec.run("touch " .. values.marker)
    log.info("remote ok")
    return true
end):build()
workflow.define("remote", { tasks = { t } })
)lua";

class SshE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to run sshd";
    if (access("/usr/sbin/sshd", X_OK) != 0) GTEST_SKIP() << "openssh-server is not installed";
    CmdResult started = box_.Spawn({"bash", "-c", kStartSshd});
    ASSERT_EQ(started.exit_code, 0) << Describe(started) << ReadFile(box_.work() / "sshd/sshd.log");
    port_ = started.out.substr(0, started.out.find('\n'));
  }
  void TearDown() override {
    std::string pid = ReadFile(box_.work() / "sshd/sshd.pid");
    if (!pid.empty()) kill(std::stoi(pid), SIGTERM);
  }
  CmdResult AddProfile(const std::string& name) {
    return box_.Run({"ssh", "add", name, "--host", "127.0.0.1", "--port", port_, "--user", "root",
                     "--key", "sshd/client_key", "--known-hosts", "sshd/known_hosts"});
  }

  Sandbox box_;
  std::string port_;
};

TEST_F(SshE2eTest, ProfilesAreStoredListedAndRemoved) {
  CmdResult added = AddProfile("web");
  ASSERT_EQ(added.exit_code, 0) << Describe(added);
  EXPECT_EQ(AddProfile("web").exit_code, 1) << "a second add of the same name is refused";
  CmdResult list = box_.Run({"ssh", "list", "-o", "json"});
  ASSERT_EQ(list.exit_code, 0) << Describe(list);
  EXPECT_THAT(list.out, HasSubstr("\"port\": " + port_));
  EXPECT_THAT(list.out, HasSubstr("\"key\": \"" + (box_.work() / "sshd/client_key").string()));
  EXPECT_THAT(box_.Run({"ssh", "list"}).out, HasSubstr("root@127.0.0.1:" + port_));
  EXPECT_EQ(box_.Run({"ssh", "remove", "web"}).exit_code, 0);
  EXPECT_EQ(box_.Run({"ssh", "remove", "web"}).exit_code, 1);
  EXPECT_THAT(box_.Run({"ssh", "list"}).out, HasSubstr("no SSH profiles"));
  EXPECT_EQ(box_.Run({"ssh", "add", "x", "--host", "h", "--key", "no-such-key"}).exit_code, 2);
}

TEST_F(SshE2eTest, RunWithSshSendsExecOverTheConnection) {
  ASSERT_EQ(AddProfile("web").exit_code, 0);
  box_.Write("remote.sloth", kRemoteWorkflow);
  std::string marker = (box_.work() / "made-remotely").string();
  CmdResult r = box_.Run(
      {"run", "remote", "-f", "remote.sloth", "--ssh", "web", "--set", "marker=" + marker});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("remote ok"));
  EXPECT_TRUE(box_.Exists("made-remotely"));

  CmdResult missing = box_.Run({"run", "remote", "-f", "remote.sloth", "--ssh", "nope"});
  EXPECT_EQ(missing.exit_code, 2) << Describe(missing);
  EXPECT_THAT(missing.err, HasSubstr("no SSH profile \"nope\""));
}

TEST_F(SshE2eTest, CheckModeSkipsRemoteCommands) {
  ASSERT_EQ(AddProfile("web").exit_code, 0);
  box_.Write("check.sloth", R"lua(
local t = task("remote"):command(function()
    local r = exec.run("touch made-in-check-mode")
    assert(r.skipped and r.success, "skipped in check mode")
    local q = exec.run("echo ${SSH_CONNECTION:+yes}", { check_mode = false })
    assert(q.stdout == "yes\n", "check_mode = false still runs, over ssh: " .. q.stdout)
    return true
end):build()
workflow.define("check", { tasks = { t } })
)lua");
  CmdResult r = box_.Run({"run", "check", "-f", "check.sloth", "--ssh", "web", "--check"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_FALSE(std::filesystem::exists("/root/made-in-check-mode"));
}

}  // namespace
}  // namespace sloth::e2e
