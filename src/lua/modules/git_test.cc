// The git module against real repositories: a bare "remote" made with git init --bare, with a
// main and a feature branch and a tag, cloned and changed through the module.
#include <gtest/gtest.h>

#include <string>

#include "exec/loop.h"
#include "lua/modules/cli_tool.h"
#include "lua/runtime.h"
#include "lua/test_util.h"

namespace sloth {
using testing::LuaEnv;

namespace {

// Builds remote.git (main: README "v1", tag v1; feature: README "feature") in the task's dir
// and sets `url` to it.
constexpr char kMakeRemote[] = R"(
  local r = exec.sh([[
    set -e
    git init -q --bare -b main remote.git
    git init -q -b main seed && cd seed
    echo v1 > README && git add README
    git -c user.name=t -c user.email=t@example.com commit -q -m one
    git tag v1
    git checkout -q -b feature && echo feature > README
    git -c user.name=t -c user.email=t@example.com commit -q -am two
    git push -q ../remote.git main feature v1
  ]], {quiet = true})
  assert(r.success, r.stderr)
  url = "file://" .. workdir.get() .. "/remote.git"
)";

class GitTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Loop::BlockSignals(); }
  void SetUp() override {
    if (!FindTool("git", {"PATH=/usr/local/bin:/usr/bin:/bin"})) GTEST_SKIP() << "no git";
  }
  Status Run(LuaEnv& env, const std::string& code) {
    return env.RunInTask(std::string(kMakeRemote) + code);
  }
};

TEST_F(GitTest, CloneCheckoutAndCloneAgainFetches) {
  LuaEnv env;
  Status s = Run(env, R"(
    local repo = git.clone(url, "checkout")
    assert(repo.path == workdir.get() .. "/checkout", repo.path)
    assert(fs.read("checkout/README") == "v1\n")
    git.checkout(repo, "feature")
    assert(fs.read("checkout/README") == "feature\n")
    assert(repo:current_branch() == "feature")
    local again = git.clone(url, "checkout")
    assert(again.fetched and again.path == repo.path)
    assert(#repo:current_commit() == 40)
    repo:checkout("v1")
    assert(fs.read("checkout/README") == "v1\n" and repo:current_branch() == nil)
    repo:checkout("main")
    local ok, err = pcall(repo.checkout, repo, "nosuch")
    assert(not ok and err:find("no branch, tag or commit named 'nosuch'"), err)
  )");
  ASSERT_TRUE(s.ok()) << s.message();
}

TEST_F(GitTest, CloningOverAnotherRemoteOrMissingRemoteFails) {
  LuaEnv env;
  Status s = Run(env, R"(
    git.clone(url, "c")
    local ok, err = pcall(git.clone, "file:///nonexistent/other.git", "c")
    assert(not ok and err:find("another remote"), err)
    ok, err = pcall(git.clone, "file:///nonexistent/other.git", "d")
    assert(not ok and err:find("git.clone: `git clone") and err:find("exit 128"), err)
  )");
  ASSERT_TRUE(s.ok()) << s.message();
}

TEST_F(GitTest, CommitPushTagStatusLog) {
  LuaEnv env;
  Status s = Run(env, R"(
    local repo = git.clone({url = url, dest = "w", branch = "main"})
    assert(repo:status().clean and repo:status().branch == "main")
    assert(repo:commit("nothing").changed == false)
    fs.write("w/new.txt", "hello\n")
    local st = git.status(repo)
    assert(not st.clean and st.files[1].path == "new.txt" and st.files[1].status == "??")
    local c = repo:commit("add new", {author = "Ann <ann@example.com>"})
    assert(c.changed and #c.commit == 40 and c.commit == repo:current_commit())
    assert(repo:status().ahead == 1)
    local log = repo:log(5)
    assert(#log == 2 and log[1].message == "add new" and log[1].author == "Ann", log[1].author)
    assert(log[1].email == "ann@example.com" and log[2].message == "one" and log[1].time > 0)
    assert(repo:push().changed == true)
    assert(repo:push().changed == false)
    assert(repo:tag("v2", {message = "second"}).changed == true)
    assert(repo:tag("v2").changed == false)
    repo:push({tags = true})
    local remote_log = exec.run({"git", "-C", "remote.git", "log", "--format=%s", "-n1", "main"})
    assert(remote_log.stdout == "add new\n", remote_log.stdout)
    assert(exec.run({"git", "-C", "remote.git", "rev-parse", "--verify", "v2"}).success)
  )");
  ASSERT_TRUE(s.ok()) << s.message();
}

TEST_F(GitTest, PullBringsNewCommits) {
  LuaEnv env;
  Status s = Run(env, R"(
    local a = git.clone(url, "a")
    local b = git.clone(url, "b")
    fs.write("a/x", "1")
    a:commit("x", {author = {name = "A", email = "a@example.com"}})
    a:push()
    local r = git.pull(b)
    assert(r.success and r.changed and fs.read("b/x") == "1")
    assert(b:pull().changed == false)
    assert(git.current_commit("b") == a:current_commit())
  )");
  ASSERT_TRUE(s.ok()) << s.message();
}

TEST_F(GitTest, CheckModeClonesNothingAndCommitsNothing) {
  RuntimeOptions opts;
  opts.check_mode = true;
  LuaEnv env(opts);
  // exec.sh is skipped under --check, so the remote is made with check_mode = false.
  std::string make = kMakeRemote;
  make.replace(make.find("{quiet = true}"), 14, "{quiet = true, check_mode = false}");
  Status s = env.RunInTask(make + R"(
    local repo = git.clone(url, "c")
    assert(repo.check_mode and not repo.cloned and not fs.exists("c"))
    exec.run({"git", "clone", "-q", url, "real"}, {check_mode = false})
    local real = git.clone(url, "real")
    assert(real.fetched)
    exec.run({"sh", "-c", "echo x > real/f"}, {check_mode = false})
    local c = real:commit("would", {author = "A <a@example.com>"})
    assert(c.changed and c.skipped and c.commit == nil)
    assert(#real:log() == 1 and not real:status().clean)
  )");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(env.sink().Contains("[check] would run: git clone -- file://"));
}

}  // namespace
}  // namespace sloth
