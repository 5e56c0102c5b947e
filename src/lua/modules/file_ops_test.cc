#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

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

void Spit(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

RuntimeOptions CheckOptions() {
  RuntimeOptions o;
  o.check_mode = true;
  return o;
}

// Child processes (tar, exec.run) are reaped through SIGCHLD, which the loop only sees when
// it is blocked in every thread.
class FileOpsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Loop::BlockSignals(); }
};

// Runs `code` as a task body; a failed Lua assert fails the test with its message.
void RunOk(LuaEnv& env, const std::string& code) {
  Status s = env.RunInTask(code);
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(FileOpsTest, LineInFileAppendsOnceAndReturnsResultTwice) {
  LuaEnv env;
  Spit(env.dir() + "/a.conf", "one\ntwo\n");
  RunOk(env, R"lua(
    local r, r2 = file_ops.lineinfile{path = "a.conf", line = "three"}
    assert(r.success and r.changed and r2 == r, "first call changes")
    assert(r.diff:find("+three", 1, true), r.diff)
    assert(r.path:sub(1, 1) == "/", "absolute path")
    local again = file_ops.lineinfile{path = "a.conf", line = "three"}
    assert(again.changed == false and again.diff == nil, "second call is a no-op")
  )lua");
  EXPECT_EQ(Slurp(env.dir() + "/a.conf"), "one\ntwo\nthree\n");
}

TEST_F(FileOpsTest, LineInFileRegexpInsertPositionsAndAbsent) {
  LuaEnv env;
  Spit(env.dir() + "/s.conf", "# ssh\nPort 22\nPermitRootLogin yes\nX=1");
  RunOk(env, R"lua(
    local r = file_ops.lineinfile{path = "s.conf", regexp = "^Port ", line = "Port 2222"}
    assert(r.changed)
    assert(not file_ops.lineinfile{path = "s.conf", regexp = "^Port ", line = "Port 2222"}.changed)
    assert(file_ops.lineinfile{path = "s.conf", line = "first", insertbefore = "BOF"}.changed)
    assert(file_ops.lineinfile{path = "s.conf", line = "after-port", insertafter = "^Port"}.changed)
    assert(file_ops.lineinfile{path = "s.conf", line = "before-permit",
                               insertbefore = "^Permit"}.changed)
    assert(file_ops.lineinfile{path = "s.conf", regexp = "^Permit", state = "absent"}.changed)
    assert(not file_ops.lineinfile{path = "s.conf", regexp = "^Permit", state = "absent"}.changed)
  )lua");
  EXPECT_EQ(Slurp(env.dir() + "/s.conf"),
            "first\n# ssh\nPort 2222\nafter-port\nbefore-permit\nX=1");
}

TEST_F(FileOpsTest, LineInFileCreateAndMissingFile) {
  LuaEnv env;
  RunOk(env, R"lua(
    local r, err = file_ops.lineinfile{path = "new.conf", line = "x"}
    assert(r == nil and err:find("does not exist"), tostring(err))
    assert(file_ops.lineinfile{path = "new.conf", line = "x", create = true}.changed)
    assert(not file_ops.lineinfile{path = "gone.conf", line = "x", state = "absent"}.changed)
  )lua");
  EXPECT_EQ(Slurp(env.dir() + "/new.conf"), "x\n");
}

TEST_F(FileOpsTest, CheckModeChangesNothingButReportsTheDiff) {
  LuaEnv env(CheckOptions());
  Spit(env.dir() + "/c.conf", "a\nb\n");
  RunOk(env, R"lua(
    local r = file_ops.lineinfile{path = "c.conf", line = "c"}
    assert(r.changed and r.check_mode and r.msg:find("^would"), r.msg)
    assert(r.diff:find("@@ -1,2 +1,3 @@", 1, true), r.diff)
    r = file_ops.blockinfile{path = "c.conf", block = "x"}
    assert(r.changed and r.diff:find("+# BEGIN SLOTH MANAGED BLOCK", 1, true))
    r = file_ops.replace{path = "c.conf", regexp = "a", replace = "A"}
    assert(r.changed and r.diff:find("+A", 1, true))
    r = file_ops.copy{content = "new\n", dest = "copied.txt"}
    assert(r.changed and r.diff:find("+new", 1, true))
    r = file_ops.file{path = "dir", state = "directory"}
    assert(r.changed)
    r = file_ops.file{path = "c.conf", mode = "0600"}
    assert(r.changed and r.msg:find("mode"), r.msg)
    r = file_ops.file{path = "link", state = "link", src = "c.conf"}
    assert(r.changed)
    r = file_ops.file{path = "c.conf", state = "absent"}
    assert(r.changed)
    r = file_ops.file{path = "t", state = "touch"}
    assert(r.changed)
    assert(not file_ops.lineinfile{path = "c.conf", line = "a"}.changed, "present line")
  )lua");
  EXPECT_EQ(Slurp(env.dir() + "/c.conf"), "a\nb\n");
  EXPECT_FALSE(std::filesystem::exists(env.dir() + "/copied.txt"));
  EXPECT_FALSE(std::filesystem::exists(env.dir() + "/dir"));
  EXPECT_FALSE(std::filesystem::exists(env.dir() + "/t"));
  EXPECT_FALSE(std::filesystem::is_symlink(env.dir() + "/link"));
  struct stat st;
  ASSERT_EQ(stat((env.dir() + "/c.conf").c_str(), &st), 0);
  EXPECT_NE(st.st_mode & 07777, 0600u);
}

TEST_F(FileOpsTest, RewritesKeepModeAndOwner) {
  LuaEnv env;
  std::string path = env.dir() + "/keep.conf";
  Spit(path, "k=1\n");
  ASSERT_EQ(chmod(path.c_str(), 0640), 0);
  bool root = geteuid() == 0;
  if (root) {
    ASSERT_EQ(chown(path.c_str(), 65534, 65534), 0);
  }
  RunOk(env, R"lua(
    assert(file_ops.lineinfile{path = "keep.conf", line = "k=2", regexp = "^k="}.changed)
    assert(file_ops.blockinfile{path = "keep.conf", block = "b"}.changed)
    assert(file_ops.replace{path = "keep.conf", regexp = "k=(\\d)", replace = "k=$1$1"}.changed)
    assert(file_ops.copy{content = "whole\n", dest = "keep.conf"}.changed)
  )lua");
  EXPECT_EQ(Slurp(path), "whole\n");
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  if (root) {
    EXPECT_EQ(st.st_uid, 65534u);
    EXPECT_EQ(st.st_gid, 65534u);
  }
}

TEST_F(FileOpsTest, BadArgumentsNameTheFunctionAndArgument) {
  LuaEnv env;
  RunOk(env, R"lua(
    local function err(f, t)
      local ok, e = pcall(f, t)
      assert(not ok, "expected an error")
      return e
    end
    assert(err(file_ops.lineinfile, {line = "x"}):find("file_ops.lineinfile: path is required"))
    assert(err(file_ops.lineinfile, {path = "x"}):find("lineinfile: line is required"))
    assert(err(file_ops.lineinfile, {path = "x", line = "y", regexp = "("}):find("regexp is not a valid"))
    assert(err(file_ops.lineinfile, {path = "x", line = "y", state = "gone"}):find("state must be one of"))
    assert(err(file_ops.lineinfile, "x"):find("expected a table"))
    assert(err(file_ops.copy, {dest = "x"}):find("file_ops.copy: give src"))
    assert(err(file_ops.copy, {content = "x", dest = "y", mode = "rwx"}):find("copy: mode must be"))
    assert(err(file_ops.copy, {content = "x", dest = "y", owner = "no-such-user-zz"}):find("owner"))
    assert(err(file_ops.file, {path = "l", state = "link"}):find("src is required"))
    assert(err(file_ops.blockinfile, {path = "x", block = "b", marker = "# x"}):find("{mark}", 1, true))
    assert(err(file_ops.replace, {path = "x"}):find("replace: regexp is required"))
    assert(err(file_ops.template, {dest = "x"}):find("template: src is required"))
    assert(err(file_ops.stat, {}):find("stat: path is required"))
  )lua");
}

TEST_F(FileOpsTest, CopyFromSourceAndContentWithModeAndOwner) {
  LuaEnv env;
  Spit(env.dir() + "/src.txt", "payload\n");
  std::string owner = geteuid() == 0 ? "owner = 65534, group = 65534," : "";
  RunOk(env, R"lua(
    local r = file_ops.copy{src = "src.txt", dest = "dst.txt", mode = "600", )lua" +
                 owner + R"lua(}
    assert(r.changed and r.msg:find("create"), r.msg)
    assert(not file_ops.copy{src = "src.txt", dest = "dst.txt", mode = "600", )lua" +
                 owner + R"lua(}.changed)
    r = file_ops.copy{src = "src.txt", dest = "dst.txt", mode = 420}
    assert(r.changed and r.diff == nil and r.msg:find("mode 0600 %-> 0644"), r.msg)
    assert(file_ops.copy{content = "other\n", dest = "dst.txt"}.changed)
    assert(not file_ops.copy{content = "other\n", dest = "dst.txt"}.changed)
    fs.mkdir("into")
    assert(file_ops.copy{src = "src.txt", dest = "into"}.path:find("into/src.txt$"))
    local none, err = file_ops.copy{src = "missing", dest = "x"}
    assert(none == nil and err:find("missing"), err)
  )lua");
  EXPECT_EQ(Slurp(env.dir() + "/dst.txt"), "other\n");
  EXPECT_EQ(Slurp(env.dir() + "/into/src.txt"), "payload\n");
  struct stat st;
  ASSERT_EQ(stat((env.dir() + "/dst.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  if (geteuid() == 0) {
    EXPECT_EQ(st.st_uid, 65534u);
  }
}

TEST_F(FileOpsTest, TemplateRendersWithoutEscaping) {
  LuaEnv env;
  Spit(env.dir() + "/app.tmpl", "name={{name}}\n{{#ports}}port={{.}}\n{{/ports}}q={{q}}\n");
  RunOk(env, R"lua(
    local vars = {name = "web", ports = {80, 443}, q = "<a&b>"}
    local r = file_ops.template{src = "app.tmpl", dest = "app.conf", vars = vars, mode = "0640"}
    assert(r.changed)
    assert(not file_ops.template{src = "app.tmpl", dest = "app.conf", vars = vars, mode = "0640"}.changed)
    vars.name = "api"
    r = file_ops.template{src = "app.tmpl", dest = "app.conf", vars = vars}
    assert(r.changed and r.diff:find("-name=web\n+name=api", 1, true), r.diff)
  )lua");
  EXPECT_EQ(Slurp(env.dir() + "/app.conf"), "name=api\nport=80\nport=443\nq=<a&b>\n");
}

TEST_F(FileOpsTest, BlockInFileDefaultMarkersReplaceAndRemove) {
  LuaEnv env;
  Spit(env.dir() + "/hosts", "127.0.0.1 localhost\n");
  RunOk(env, R"lua(
    assert(file_ops.blockinfile{path = "hosts", block = "10.0.0.1 a\n10.0.0.2 b\n"}.changed)
    assert(not file_ops.blockinfile{path = "hosts", block = "10.0.0.1 a\n10.0.0.2 b\n"}.changed)
    assert(file_ops.blockinfile{path = "hosts", block = "10.0.0.3 c"}.changed)
    assert(file_ops.blockinfile{path = "hosts", block = "x", marker = "// {mark} mine"}.changed)
  )lua");
  EXPECT_EQ(Slurp(env.dir() + "/hosts"),
            "127.0.0.1 localhost\n# BEGIN SLOTH MANAGED BLOCK\n10.0.0.3 c\n"
            "# END SLOTH MANAGED BLOCK\n// BEGIN mine\nx\n// END mine\n");
  RunOk(env, R"lua(
    assert(file_ops.blockinfile{path = "hosts", state = "absent"}.changed)
    assert(not file_ops.blockinfile{path = "hosts", state = "absent"}.changed)
  )lua");
  EXPECT_EQ(Slurp(env.dir() + "/hosts"), "127.0.0.1 localhost\n// BEGIN mine\nx\n// END mine\n");
}

TEST_F(FileOpsTest, ReplaceUsesEcmaScriptGroupsPerLine) {
  LuaEnv env;
  Spit(env.dir() + "/r.conf", "listen 80\nlisten 8080\nname x\n");
  RunOk(env, R"lua(
    local r = file_ops.replace{path = "r.conf", regexp = "^listen (\\d+)$", replace = "listen 127.0.0.1:$1"}
    assert(r.changed, r.msg)
    assert(not file_ops.replace{path = "r.conf", regexp = "^listen (\\d+)$", replace = "x"}.changed)
    local none, err = file_ops.replace{path = "nope", regexp = "a", replace = "b"}
    assert(none == nil and err:find("does not exist"))
  )lua");
  EXPECT_EQ(Slurp(env.dir() + "/r.conf"), "listen 127.0.0.1:80\nlisten 127.0.0.1:8080\nname x\n");
}

TEST_F(FileOpsTest, FileStates) {
  LuaEnv env;
  RunOk(env, R"lua(
    local r = file_ops.file{path = "d/e", state = "directory", mode = "0750"}
    assert(r.changed)
    assert(not file_ops.file{path = "d/e", state = "directory", mode = "0750"}.changed)
    assert(file_ops.file{path = "d/e", state = "directory", mode = "0700"}.changed)
    assert(file_ops.file{path = "d/f", state = "touch"}.changed)
    assert(file_ops.file{path = "d/f", mode = "0600"}.changed)
    assert(not file_ops.file{path = "d/f", mode = "0600"}.changed)
    assert(file_ops.file{path = "d/l", state = "link", src = "f"}.changed)
    assert(not file_ops.file{path = "d/l", state = "link", src = "f"}.changed)
    assert(file_ops.file{path = "d/l", state = "link", src = "e"}.changed)
    local none, err = file_ops.file{path = "d/f", state = "link", src = "e"}
    assert(none == nil and err:find("not a symlink"), err)
    none, err = file_ops.file{path = "d/missing"}
    assert(none == nil and err:find("does not exist"), err)
    assert(file_ops.file{path = "d", state = "absent"}.changed)
    assert(not file_ops.file{path = "d", state = "absent"}.changed)
  )lua");
  EXPECT_FALSE(std::filesystem::exists(env.dir() + "/d"));
}

TEST_F(FileOpsTest, FileKeepsOwnerAndSetsIt) {
  if (geteuid() != 0) GTEST_SKIP() << "chown to another user needs root";
  LuaEnv env;
  RunOk(env, R"lua(
    assert(file_ops.file{path = "o", state = "directory", owner = "65534", group = 65534}.changed)
    assert(not file_ops.file{path = "o", state = "directory", owner = 65534, group = 65534}.changed)
  )lua");
  struct stat st;
  ASSERT_EQ(stat((env.dir() + "/o").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 65534u);
}

TEST_F(FileOpsTest, UnarchiveExtractsOnceAndRefusesToGuessInCheckMode) {
  LuaEnv env;
  std::string d = env.dir();
  std::filesystem::create_directories(d + "/pkg/bin");
  Spit(d + "/pkg/bin/tool", "#!/bin/sh\n");
  RunOk(env, R"lua(
    assert(exec.run({"tar", "-czf", "pkg.tar.gz", "pkg"}).success)
    local r = file_ops.unarchive{src = "pkg.tar.gz", dest = "out"}
    assert(r.changed and r.msg:find("extract"), r.msg)
    assert(not file_ops.unarchive{src = "pkg.tar.gz", dest = "out"}.changed)
    local none, err = file_ops.unarchive{src = "nope.tar", dest = "out"}
    assert(none == nil and err:find("does not exist"), err)
    fs.write("bad.tar", "not an archive")
    none, err = file_ops.unarchive{src = "bad.tar", dest = "out2"}
    assert(none == nil and err:find("tar exited"), err)
  )lua");
  EXPECT_EQ(Slurp(d + "/out/pkg/bin/tool"), "#!/bin/sh\n");

  LuaEnv check(CheckOptions());
  std::string c = check.dir();
  std::filesystem::copy_file(d + "/pkg.tar.gz", c + "/pkg.tar.gz");
  RunOk(check, R"lua(
    local none, err = file_ops.unarchive{src = "pkg.tar.gz", dest = "out"}
    assert(none == nil and err:find("check mode cannot predict"), err)
  )lua");
  EXPECT_FALSE(std::filesystem::exists(c + "/out"));
  std::filesystem::copy(d + "/out", c + "/out", std::filesystem::copy_options::recursive);
  RunOk(check, R"lua(
    assert(file_ops.unarchive{src = "pkg.tar.gz", dest = "out"}.changed == false)
  )lua");
}

TEST_F(FileOpsTest, AcceptsTheSeedsCallShapes) {
  LuaEnv env;
  Spit(env.dir() + "/seed.conf", "a=1\n");
  RunOk(env, R"lua(
    local ok, r = file_ops.replace{path = "seed.conf", pattern = "a=(\\d)", replacement = "a=$1$1"}
    assert(ok and r.changed and r.message == r.msg, r.msg)
    ok, r = file_ops.blockinfile{path = "seed.conf", block = "b", marker_begin = "# >>>",
                                 marker_end = "# <<<"}
    assert(ok and r.changed)
    assert(not file_ops.blockinfile{path = "seed.conf", block = "b", marker_begin = "# >>>",
                                    marker_end = "# <<<"}.changed)
    ok, r = file_ops.fetch{src = "seed.conf", dest = "fetched.conf"}
    assert(ok and r.changed and fs.read("fetched.conf") == fs.read("seed.conf"))
    local ok2, st = file_ops.stat{path = "seed.conf"}
    assert(ok2 and st.exists and st.is_file and not st.is_dir)
    fs.mkdir("z")
    fs.write("z/inner.txt", "zipped")
    assert(exec.run({"zip", "-q", "-r", "z.zip", "z"}).success)
    ok, r = file_ops.unarchive{src = "z.zip", dest = "unz"}
    assert(ok and r.changed and fs.read("unz/z/inner.txt") == "zipped")
    assert(not file_ops.unarchive{src = "z.zip", dest = "unz"}.changed)
  )lua");
  EXPECT_EQ(Slurp(env.dir() + "/seed.conf"), "a=11\n# >>>\nb\n# <<<\n");
}

TEST_F(FileOpsTest, StatReportsFacts) {
  LuaEnv env;
  Spit(env.dir() + "/s.txt", "abc");
  ASSERT_EQ(chmod((env.dir() + "/s.txt").c_str(), 0604), 0);
  RunOk(env, R"lua(
    local s = file_ops.stat{path = "s.txt"}
    assert(s.exists and s.isreg and not s.isdir and not s.islnk)
    assert(s.size == 3 and s.mode == "0604", s.mode)
    assert(s.checksum == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert(type(s.uid) == "number" and type(s.owner) == "string" and s.mtime > 0)
    assert(file_ops.stat("."). isdir)
    assert(file_ops.stat{path = "nothing"}.exists == false)
  )lua");
}

// Serves "/conf" (200, "served\n") and 404 otherwise, on 127.0.0.1, one request at a time.
class TinyHttpServer {
 public:
  TinyHttpServer() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(fd_, 16);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TinyHttpServer() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  void Serve() {
    for (;;) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      bool found = request.rfind("GET /conf ", 0) == 0;
      std::string body = found ? "served\n" : "missing";
      std::string reply = std::string("HTTP/1.1 ") + (found ? "200 OK" : "404 Not Found") +
                          "\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\nConnection: close\r\n\r\n" + body;
      (void)!write(c, reply.data(), reply.size());
      close(c);
    }
  }
  int fd_ = socket(AF_INET, SOCK_STREAM, 0);
  int port_ = 0;
  std::thread thread_;
};

TEST_F(FileOpsTest, FetchDownloadsOnlyWhenDifferent) {
  TinyHttpServer server;
  LuaEnv env;
  RunOk(env, "local url = '" + server.url("/conf") + "'\n" + R"lua(
    local r = file_ops.fetch{src = url, dest = "got.conf", mode = "0600"}
    assert(r.changed and r.diff:find("+served", 1, true), r.msg)
    assert(not file_ops.fetch{src = url, dest = "got.conf", mode = "0600"}.changed)
    local none, err = file_ops.fetch{src = url .. "x", dest = "other"}
    assert(none == nil and err:find("HTTP 404"), err)
  )lua");
  EXPECT_EQ(Slurp(env.dir() + "/got.conf"), "served\n");
  EXPECT_FALSE(std::filesystem::exists(env.dir() + "/other"));

  LuaEnv check(CheckOptions());
  RunOk(check, "local url = '" + server.url("/conf") + "'\n" + R"lua(
    local r = file_ops.fetch{src = url, dest = "got.conf"}
    assert(r.changed and r.msg:find("^would") and r.diff:find("+served", 1, true), r.msg)
  )lua");
  EXPECT_FALSE(std::filesystem::exists(check.dir() + "/got.conf"));
}

}  // namespace
}  // namespace sloth
