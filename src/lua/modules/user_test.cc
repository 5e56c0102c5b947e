// The user and group modules against the real machine: throwaway accounts with unique names,
// removed again even when a test fails. Needs root (useradd); skips otherwise.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "exec/loop.h"
#include "lua/test_util.h"

namespace sloth {
using testing::LuaEnv;

namespace {

std::string UniqueName(const char* prefix) {
  static int counter = 0;
  return std::string(prefix) + std::to_string(getpid() % 100000) + "x" + std::to_string(++counter);
}

// Removes the user and group named `name` when the test ends, however it ends.
struct Throwaway {
  explicit Throwaway(const char* prefix) : name(UniqueName(prefix)) {}
  ~Throwaway() {
    std::string quiet = " >/dev/null 2>&1";
    (void)!std::system(("userdel -r " + name + quiet).c_str());
    (void)!std::system(("groupdel " + name + quiet).c_str());
  }
  std::string name;
};

bool UserExists(const std::string& name) { return getpwnam(name.c_str()) != nullptr; }
bool GroupExists(const std::string& name) { return getgrnam(name.c_str()) != nullptr; }

// Child processes are reaped through SIGCHLD, which the loop only sees when it is blocked in
// every thread. ctest runs tests in parallel, each in its own process: tests that change the
// machine's accounts take a file lock, because concurrent useradd/usermod/groupdel runs can fail
// to get shadow's own lock and leave a change undone.
class UserTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Loop::BlockSignals(); }
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create users (useradd)";
    lock_fd_ = open("/tmp/sloth-test-accounts.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(lock_fd_, 0);
    ASSERT_EQ(flock(lock_fd_, LOCK_EX), 0);
  }
  void TearDown() override {
    if (lock_fd_ >= 0) close(lock_fd_);  // releases the lock
  }
  int lock_fd_ = -1;
  // Runs `code` in a task with `NAME` replaced by the throwaway name.
  static Status Run(LuaEnv& env, std::string code, const std::string& name) {
    for (size_t at; (at = code.find("NAME")) != std::string::npos;) code.replace(at, 4, name);
    return env.RunInTask(code);
  }
};

TEST_F(UserTest, CreateIsIdempotentAndChangesOnlyWhatDiffers) {
  Throwaway u("slothu");
  LuaEnv env;
  Status s = Run(env, R"(
    local r = user.create({name = "NAME", shell = "/bin/sh", home = "/tmp/NAME-home"})
    assert(r.changed == true and r.msg == "created user NAME", r.msg)
    r = user.create({name = "NAME", shell = "/bin/sh", home = "/tmp/NAME-home"})
    assert(r.changed == false, r.msg)
    r = user.create({name = "NAME", shell = "/bin/bash"})
    assert(r.changed == true and #r.changes == 1 and r.changes[1]:find("shell"), r.msg)
    local info = user.get("NAME")
    assert(info.name == "NAME" and info.shell == "/bin/bash", info.shell)
    assert(info.home == "/tmp/NAME-home" and info.uid > 0 and #info.groups == 0)
    assert(user.get_info("NAME").uid == info.uid)
    assert(user.exists("NAME") and not user.exists("NAME-none"))
    assert(user.get("NAME-none") == nil)
  )",
                 u.name);
  ASSERT_TRUE(s.ok()) << s.message();
  struct passwd* pw = getpwnam(u.name.c_str());
  ASSERT_NE(pw, nullptr);
  EXPECT_STREQ(pw->pw_shell, "/bin/bash");

  s = Run(env, R"(
    local r = user.remove({name = "NAME", remove_home = true})
    assert(r.changed == true, r.msg)
    assert(user.remove("NAME").changed == false)
    assert(not user.exists("NAME"))
  )",
          u.name);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(UserExists(u.name));
}

TEST_F(UserTest, AcceptsStringAndUsernameShapes) {
  Throwaway a("slotha");
  Throwaway b("slothb");
  LuaEnv env;
  Status s = env.RunInTask("assert(user.create('" + a.name + "').changed)\n" +
                           "assert(user.create({username = '" + b.name + "'}).changed)\n" +
                           "assert(not user.create({username = '" + b.name + "'}).changed)");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(UserExists(a.name));
  EXPECT_TRUE(UserExists(b.name));
}

TEST_F(UserTest, GroupsAndMembership) {
  Throwaway g("slothg");
  Throwaway u("slothm");
  LuaEnv env;
  std::string code = R"(
    local r = group.create({name = "GRP", gid = 47311})
    assert(r.changed, r.msg)
    assert(not group.create("GRP").changed)
    assert(not group.create({name = "GRP", gid = 47311}).changed)
    r = group.create({name = "GRP", gid = 47312})
    assert(r.changed and r.msg:find("47311 %-> 47312"), r.msg)
    assert(group.exists("GRP"))
    r = user.create({name = "NAME", groups = {"GRP"}, create_home = false})
    assert(r.changed, r.msg)
    assert(not user.create({name = "NAME", groups = {"GRP"}}).changed)
    local info = user.get("NAME")
    assert(#info.groups == 1 and info.groups[1] == "GRP", #info.groups)
    assert(group.members("GRP")[1] == "NAME")
    r = user.modify({name = "NAME", groups = {}})
    assert(r.changed and #user.get("NAME").groups == 0, r.msg)
    local ok, err = pcall(user.modify, {name = "NAME-none", shell = "/bin/sh"})
    assert(not ok and err:find("does not exist"), err)
    assert(user.remove("NAME").changed)
    assert(group.remove("GRP").changed)
    assert(not group.remove("GRP").changed)
  )";
  for (size_t at; (at = code.find("GRP")) != std::string::npos;) code.replace(at, 3, g.name);
  Status s = Run(env, code, u.name);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(GroupExists(g.name));
}

TEST_F(UserTest, MembershipShellHomeAndLocking) {
  Throwaway g("slothh");
  Throwaway u("slothi");
  LuaEnv env;
  std::string code = R"(
    assert(group.create("GRP").changed)
    assert(user.create({name = "NAME", create_home = false, shell = "/bin/sh"}).changed)
    local r = user.add_to_group("NAME", "GRP")
    assert(r.changed and r.msg == "NAME added to GRP", r.msg)
    assert(not user.add_to_group("NAME", "GRP").changed)
    assert(not group.add_member("GRP", "NAME").changed)
    assert(user.get("NAME").groups[1] == "GRP")
    assert(group.remove_member("GRP", "NAME").changed)
    assert(not user.remove_from_group("NAME", "GRP").changed)
    assert(#user.get("NAME").groups == 0)
    assert(user.set_shell("NAME", "/bin/bash").changed)
    assert(not user.set_shell("NAME", "/bin/bash").changed)
    assert(user.set_home("NAME", "/srv/NAME").changed and user.get("NAME").home == "/srv/NAME")
    -- a new account without a password is locked ("!") already
    assert(not user.lock("NAME").changed)
    assert(user.modify({name = "NAME", password_hash = "$6$salt$hash"}).changed == false)
    exec.run({"usermod", "-p", "$6$salt$hash", "NAME"})
    assert(user.lock("NAME").changed and not user.lock("NAME").changed)
    assert(user.unlock("NAME").changed and not user.unlock("NAME").changed)
    local found = false
    for _, n in ipairs(user.list()) do found = found or n == "NAME" end
    assert(found and #user.list() > 1)
  )";
  for (size_t at; (at = code.find("GRP")) != std::string::npos;) code.replace(at, 3, g.name);
  Status s = Run(env, code, u.name);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_STREQ(getpwnam(u.name.c_str())->pw_shell, "/bin/bash");
}

TEST_F(UserTest, CheckModeChangesNothing) {
  Throwaway u("slothc");
  RuntimeOptions options;
  options.check_mode = true;
  LuaEnv env(options);
  Status s = Run(env, R"(
    local r = user.create({name = "NAME", shell = "/bin/sh"})
    assert(r.changed and r.check_mode and r.msg == "would create user NAME", r.msg)
    r = group.create("NAME")
    assert(r.changed and r.check_mode, r.msg)
    assert(user.exists("root") and user.get("root").uid == 0)
    assert(not user.exists("NAME"))
    r = user.create({name = "root", shell = "/bin/false"})
    assert(r.changed and r.msg:find("would change"), r.msg)
    assert(not user.remove("NAME").changed)
    r = user.lock("root")
    assert(r.check_mode and r.msg:find("would change: locked user root") or not r.changed, r.msg)
    r = user.add_to_group("root", "daemon")
    assert(r.changed and r.msg == "would change: root added to daemon", r.msg)
  )",
                 u.name);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(UserExists(u.name));
  EXPECT_FALSE(GroupExists(u.name));
  EXPECT_STRNE(getpwnam("root")->pw_shell, "/bin/false");
}

TEST_F(UserTest, FailuresRaiseWithTheToolsMessage) {
  Throwaway u("slothf");
  LuaEnv env;
  Status s = Run(env, "user.create({name = 'NAME', group = 'no-such-group-sloth'})", u.name);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("useradd"), std::string::npos) << s.message();
  EXPECT_FALSE(UserExists(u.name));
}

}  // namespace
}  // namespace sloth
