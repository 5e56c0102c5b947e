#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "lua/test_util.h"

namespace sloth {
using testing::LuaEnv;

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Spit(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

}  // namespace

struct FsTest : ::testing::Test {
  static void SetUpTestSuite() { Loop::BlockSignals(); }
};

TEST_F(FsTest, WriteAppendReadRoundTrip) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    assert(fs.write("a.txt", "alpha\n") == true)
    assert(fs.append("a.txt", "beta\n") == true)
    assert(fs.read("a.txt") == "alpha\nbeta\n")
    assert(fs.append("new.txt", "x") == true, "append creates the file")
    assert(fs.read_file("new.txt") == "x")
    assert(fs.write_file("bin", "a\0b") and fs.read("bin") == "a\0b", "binary content")
    assert(fs.write("empty", "") and fs.read("empty") == "")
  )")
                .message(),
            "");
  EXPECT_EQ(Slurp(env.dir() + "/a.txt"), "alpha\nbeta\n");
}

TEST_F(FsTest, FailuresReturnNilAndMessage) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local content, err = fs.read("missing.txt")
    assert(content == nil and err:find("missing.txt: No such file"), err)
    local ok, werr = fs.write("no/such/dir/f", "x")
    assert(ok == nil and werr:find("^fs.write: "), werr)
    assert(fs.mkdir("d"))
    local r, derr = fs.write("d", "x")
    assert(r == nil and derr:find("not a regular file"), derr)
    assert(select(2, fs.read("d")):find("Is a directory"))
    assert(fs.ls("missing") == nil and fs.size("missing") == nil and fs.stat("missing") == nil)
    assert(fs.sha256("missing") == nil)
    assert(fs.rm("missing") == nil, "rm of a missing file is an error")
    assert(fs.copy("missing", "x") == nil and fs.move("missing", "x") == nil)
  )")
                .message(),
            "");
}

TEST_F(FsTest, WriteIsAtomicAndKeepsModeAndSymlinks) {
  LuaEnv env;
  std::string file = env.dir() + "/conf";
  Spit(file, "old");
  chmod(file.c_str(), 0640);
  struct stat st;
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  ino_t before = st.st_ino;
  ASSERT_EQ(env.Run("assert(fs.write('conf', 'new content'))").message(), "");
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_NE(st.st_ino, before) << "replaced by rename, not rewritten in place";
  EXPECT_EQ(ModeOf(file), 0640u);
  ASSERT_EQ(
      env.Run("assert(fs.symlink('conf', 'link') and fs.write('link', 'via link'))").message(), "");
  EXPECT_EQ(Slurp(file), "via link");
  EXPECT_EQ(ModeOf(file), 0640u);
  struct stat link;
  ASSERT_EQ(lstat((env.dir() + "/link").c_str(), &link), 0);
  EXPECT_TRUE(S_ISLNK(link.st_mode)) << "writing through a symlink keeps the link";
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(env.dir()))
    names.push_back(e.path().filename().string());
  EXPECT_EQ(names.size(), 2u) << "no temporary files left behind";
}

TEST_F(FsTest, WriteKeepsTheOwner) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a file away";
  LuaEnv env;
  std::string file = env.dir() + "/owned";
  Spit(file, "old");
  ASSERT_EQ(chown(file.c_str(), 65534, 65534), 0);
  ASSERT_EQ(env.Run("assert(fs.write('owned', 'new'))").message(), "");
  struct stat st;
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 65534u);
  EXPECT_EQ(Slurp(file), "new");
}

TEST_F(FsTest, WriteInAReadOnlyDirectoryRewritesInPlace) {
  if (geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  LuaEnv env;
  std::string dir = env.dir() + "/ro";
  std::filesystem::create_directories(dir);
  Spit(dir + "/f", "old");
  chmod(dir.c_str(), 0555);
  Status s = env.Run("assert(fs.write('ro/f', 'new'))");
  Status created = env.Run("assert(fs.write('ro/g', 'new') == nil)");
  chmod(dir.c_str(), 0755);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(created.message(), "");
  EXPECT_EQ(Slurp(dir + "/f"), "new");
}

TEST_F(FsTest, NewFilesFollowTheUmask) {
  LuaEnv env;
  mode_t old = umask(027);
  Status s = env.Run("assert(fs.write('f', 'x'))");
  umask(old);
  ASSERT_EQ(s.message(), "");
  EXPECT_EQ(ModeOf(env.dir() + "/f"), 0640u);
}

TEST_F(FsTest, CheckModeChangesNothing) {
  RuntimeOptions options;
  options.check_mode = true;
  LuaEnv env(options);
  std::string d = env.dir();
  Spit(d + "/keep", "original");
  chmod((d + "/keep").c_str(), 0600);
  std::filesystem::create_directories(d + "/tree/sub");
  ASSERT_EQ(env.Run(R"(
    assert(fs.write("keep", "changed") == true)
    assert(fs.write("created", "x") == true)
    assert(fs.append("keep", "more") == true)
    assert(fs.mkdir("newdir/a") == true)
    assert(fs.copy("keep", "copy") == true)
    assert(fs.move("keep", "moved") == true)
    assert(fs.symlink("keep", "link") == true)
    assert(fs.chmod("keep", "0777") == true)
    assert(fs.rm("keep") == true)
    assert(fs.rm_r("tree") == true)
    local tmp = fs.tmpname()
    assert(type(tmp) == "string" and not fs.exists(tmp))
    assert(fs.read("keep") == "original", "queries still work")
  )")
                .message(),
            "");
  EXPECT_EQ(Slurp(d + "/keep"), "original");
  EXPECT_EQ(ModeOf(d + "/keep"), 0600u);
  EXPECT_TRUE(std::filesystem::exists(d + "/tree/sub"));
  for (const char* name : {"created", "newdir", "copy", "moved", "link"})
    EXPECT_FALSE(std::filesystem::exists(std::filesystem::symlink_status(d + "/" + name))) << name;
  EXPECT_TRUE(env.sink().Contains("[check] would write 7 bytes to " + d + "/keep"));
}

TEST_F(FsTest, RelativePathsResolveAgainstTheTaskWorkdir) {
  LuaEnv env;
  std::string wd = env.dir() + "/taskdir";
  std::filesystem::create_directories(wd);
  TaskContext task;
  task.name = "t";
  task.workdir = wd;
  ASSERT_EQ(env.RunInTask(R"(
    assert(fs.write("in-task.txt", "hello"))
    assert(fs.mkdir("sub"))
    assert(fs.copy("in-task.txt", "sub"))
    assert(fs.ls(".")[1] == "in-task.txt" and #fs.ls() == 2)
    assert(fs.glob("sub/*")[1] == "sub/in-task.txt")
  )",
                          &task)
                .message(),
            "");
  EXPECT_EQ(Slurp(wd + "/in-task.txt"), "hello");
  EXPECT_EQ(Slurp(wd + "/sub/in-task.txt"), "hello");
  EXPECT_FALSE(std::filesystem::exists(env.dir() + "/in-task.txt"));
}

TEST_F(FsTest, LsReturnsSortedBareNames) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    fs.mkdir("dir")
    for _, n in ipairs({"b", "a", ".hidden"}) do fs.write("dir/" .. n, "") end
    fs.mkdir("dir/c")
    local names = fs.ls("dir")
    assert(table.concat(names, ",") == ".hidden,a,b,c", table.concat(names, ","))
    assert(#fs.list("dir") == 4)
    assert(json.encode(fs.ls("dir/c")) == "[]", "an empty listing is an array")
    local none, err = fs.ls("dir/a")
    assert(none == nil and err:find("Not a directory"), err)
  )")
                .message(),
            "");
}

TEST_F(FsTest, MkdirRmAndRmR) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    assert(fs.mkdir("x/y/z") and fs.is_dir("x/y/z"))
    assert(fs.mkdir("x/y/z"), "existing directory is fine")
    fs.write("x/file", "f")
    local ok, err = fs.mkdir("x/file/sub")
    assert(ok == nil and err:find("^fs.mkdir: "), err)
    assert(fs.mkdir("x/file") == nil)
    assert(fs.rm("x/file") and not fs.exists("x/file"))
    assert(fs.rm("x/y") == nil, "rm does not remove a non-empty directory")
    assert(fs.rm("x/y/z") and not fs.exists("x/y/z"))
    fs.write("x/y/deep", "d")
    assert(fs.rm_r("x") and not fs.exists("x"))
    assert(fs.rmr("x"), "rm_r of a missing path is fine")
  )")
                .message(),
            "");
}

TEST_F(FsTest, CopyAndMoveFollowCpAndMv) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    fs.write("src.txt", "data")
    fs.chmod("src.txt", "0750")
    assert(fs.copy("src.txt", "dst.txt") and fs.read("dst.txt") == "data")
    assert(fs.stat("dst.txt").mode == "0750", "copy keeps the mode")
    fs.mkdir("into")
    assert(fs.copy("src.txt", "into") and fs.read("into/src.txt") == "data")
    fs.mkdir("tree/a")
    fs.write("tree/a/b.txt", "deep")
    assert(fs.copy("tree", "tree2") and fs.read("tree2/a/b.txt") == "deep")
    assert(fs.copy("tree", "tree2") and fs.read("tree2/tree/a/b.txt") == "deep", "into existing dir")
    local ok, err = fs.copy("tree", "tree/a")
    assert(ok == nil and err:find("into itself"), err)
    assert(fs.move("dst.txt", "moved.txt") and not fs.exists("dst.txt"))
    assert(fs.read("moved.txt") == "data")
    assert(fs.move("moved.txt", "into") and fs.read("into/moved.txt") == "data")
    assert(fs.move("tree2", "tree3") and fs.is_dir("tree3/a"))
  )")
                .message(),
            "");
}

TEST_F(FsTest, StatSizeSymlinkAndTests) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    fs.write("f", "12345")
    fs.chmod("f", 420)
    local st = fs.stat("f")
    assert(st.size == 5 and st.mode == "0644" and st.mode_num == 420, st.mode)
    assert(st.is_file and not st.is_dir and not st.is_link)
    assert(math.type(st.mtime) == "integer" and math.abs(st.mtime - os.time()) < 60)
    assert(math.type(st.uid) == "integer" and math.type(st.gid) == "integer")
    assert(fs.size("f") == 5)
    assert(fs.symlink("f", "l") and fs.symlink("f", "l"), "same link twice is fine")
    local ok, err = fs.symlink("other", "l")
    assert(ok == nil and err:find("File exists"), err)
    local ls = fs.stat("l")
    assert(ls.is_link and ls.is_file and ls.size == 5)
    assert(fs.symlink("nowhere", "dangling"))
    assert(fs.stat("dangling").is_link and not fs.exists("dangling"))
    assert(fs.exists("f") and fs.is_file("f") and not fs.is_dir("f"))
    assert(fs.is_dir(".") and not fs.is_file("."))
    assert(not fs.exists("nope") and not fs.is_file("nope") and not fs.is_dir("nope"))
  )")
                .message(),
            "");
}

TEST_F(FsTest, Sha256OfAFile) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    fs.write("abc", "abc")
    assert(fs.sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    fs.write("empty", "")
    assert(fs.sha256("empty") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
  )")
                .message(),
            "");
}

TEST_F(FsTest, GlobMatchesRelativeAndAbsolute) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    for _, n in ipairs({"b.log", "a.log", "c.txt"}) do fs.write(n, "") end
    local rel = fs.glob("*.log")
    assert(table.concat(rel, ",") == "a.log,b.log", table.concat(rel, ","))
    assert(#fs.glob("*.none") == 0)
    local abs = fs.glob(workdir.get() .. "/*.txt")
    assert(#abs == 1 and abs[1] == workdir.get() .. "/c.txt", abs[1])
  )")
                .message(),
            "");
}

TEST_F(FsTest, GlobTakesTheWorkdirLiterally) {
  LuaEnv env;
  TaskContext task;
  task.name = "t";
  task.workdir = env.dir() + "/odd [dir]*";
  std::filesystem::create_directories(task.workdir);
  Spit(task.workdir + "/x.txt", "");
  ASSERT_EQ(env.RunInTask(R"(
    local found = fs.glob("*.txt")
    assert(#found == 1 and found[1] == "x.txt", tostring(found[1]))
  )",
                          &task)
                .message(),
            "");
}

TEST_F(FsTest, ChmodAcceptsStringsAndNumbers) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    fs.write("f", "")
    assert(fs.chmod("f", "0600"))
  )")
                .message(),
            "");
  EXPECT_EQ(ModeOf(env.dir() + "/f"), 0600u);
  ASSERT_EQ(env.Run("assert(fs.chmod('f', '755'))").message(), "");
  EXPECT_EQ(ModeOf(env.dir() + "/f"), 0755u);
  ASSERT_EQ(env.Run("assert(fs.chmod('f', 416))").message(), "");
  EXPECT_EQ(ModeOf(env.dir() + "/f"), 0640u);
  EXPECT_EQ(env.Eval("select(2, fs.chmod('missing', '0644'))").find("fs.chmod: "), 0u);
}

TEST_F(FsTest, ChownByIdAndName) {
  LuaEnv env;
  Spit(env.dir() + "/f", "");
  std::string user = getpwuid(geteuid())->pw_name;
  std::string group = getgrgid(getegid())->gr_name;
  ASSERT_EQ(env.Run("assert(fs.chown('f', " + std::to_string(geteuid()) + "))").message(), "");
  ASSERT_EQ(env.Run("assert(fs.chown('f', '" + user + "', '" + group + "'))").message(), "");
  ASSERT_EQ(env.Run("assert(fs.chown('f', nil, " + std::to_string(getegid()) + "))").message(), "");
  ASSERT_EQ(env.Run(R"(
    local ok, err = fs.chown("f", "no-such-user-xyz")
    assert(ok == nil and err == "fs.chown: unknown user 'no-such-user-xyz'", err)
    ok, err = fs.chown("f", nil, "no-such-group-xyz")
    assert(ok == nil and err:find("unknown group"), err)
  )")
                .message(),
            "");
}

TEST_F(FsTest, TmpnameBasenameDirname) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local t = fs.tmpname("doc-")
    assert(fs.is_file(t) and fs.basename(t):find("^doc%-"), t)
    fs.rm(t)
  )")
                .message(),
            "");
  struct Case {
    const char* expr;
    const char* want;
  } cases[] = {
      {"fs.basename('/a/b/c.txt')", "c.txt"},
      {"fs.basename('/a/b/')", "b"},
      {"fs.basename('c')", "c"},
      {"fs.basename('/')", "/"},
      {"fs.dirname('/a/b/c.txt')", "/a/b"},
      {"fs.dirname('/a/b/')", "/a"},
      {"fs.dirname('c')", "."},
      {"fs.dirname('/c')", "/"},
      {"fs.dirname('a//b')", "a"},
      {"fs.dirname('/')", "/"},
  };
  for (const Case& c : cases) EXPECT_EQ(env.Eval(c.expr), c.want) << c.expr;
}

TEST_F(FsTest, ContentOperationsWorkInsideTasks) {
  LuaEnv env;
  ASSERT_EQ(env.RunInTask(R"(
    assert(fs.write("big", string.rep("x", 1 << 20)))
    assert(#fs.read("big") == 1 << 20)
  )")
                .message(),
            "");
}

TEST_F(FsTest, BadArgumentsRaise) {
  LuaEnv env;
  for (const char* code :
       {"fs.read()", "fs.read('')", "fs.write('a')", "fs.write('a', {})", "fs.chmod('a', 'rwx')",
        "fs.chmod('a', 99999)", "fs.chmod('a', 1.5)", "fs.chown('a')", "fs.copy('a')",
        "fs.tmpname('a/b')", "fs.glob('')", "fs.symlink('a')", "fs.stat(nil)"}) {
    Status s = env.Run(code);
    EXPECT_FALSE(s.ok()) << code;
    EXPECT_NE(s.message().find("bad argument"), std::string::npos) << code << ": " << s.message();
  }
}

}  // namespace sloth
