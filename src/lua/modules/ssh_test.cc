// ssh module tests against a real OpenSSH server on 127.0.0.1 (started once for the suite, like
// the acceptance suite's start_sshd): exec, transfers, authentication, host keys, timeouts,
// concurrency and check mode.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "lua/test_util.h"

namespace sloth {
namespace {

using testing::LuaEnv;

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

bool Listening(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// The server and the keys, shared by every test of the suite.
struct Server {
  std::string dir, key, other_key, known_hosts, empty_known_hosts, wrong_known_hosts, why_not;
  int port = 0;
  pid_t pid = -1;
};

Server* server = nullptr;

std::string StartServer(Server& s) {
  if (geteuid() != 0) return "needs root to run sshd";
  if (access("/usr/sbin/sshd", X_OK) != 0) return "openssh-server is not installed";
  char tmpl[] = "/tmp/sloth-sshd.XXXXXX";
  s.dir = mkdtemp(tmpl);
  std::filesystem::create_directories("/run/sshd");
  const std::string& d = s.dir;
  for (const char* name : {"host_key", "client_key", "other_key", "other_host_key"}) {
    std::string cmd =
        "ssh-keygen -q -t ed25519 -N '' -f " + d + "/" + name + " </dev/null >/dev/null";
    if (std::system(cmd.c_str()) != 0) return "ssh-keygen failed";
  }
  std::filesystem::copy_file(d + "/client_key.pub", d + "/authorized_keys");
  s.port = FreePort();
  WriteFile(d + "/sshd_config", "Port " + std::to_string(s.port) +
                                    "\nListenAddress 127.0.0.1\nHostKey " + d +
                                    "/host_key\nAuthorizedKeysFile " + d +
                                    "/authorized_keys\nPermitRootLogin prohibit-password\n"
                                    "PasswordAuthentication no\nStrictModes no\n"
                                    "Subsystem sftp internal-sftp\nPidFile " +
                                    d + "/sshd.pid\n");
  auto known = [&](const std::string& pub) {
    std::string line = ReadFile(d + "/" + pub);
    line = line.substr(0, line.find(' ', line.find(' ') + 1));  // "type base64"
    return "[127.0.0.1]:" + std::to_string(s.port) + " " + line + "\n";
  };
  s.key = d + "/client_key";
  s.other_key = d + "/other_key";
  s.known_hosts = d + "/known_hosts";
  s.empty_known_hosts = d + "/empty_known_hosts";
  s.wrong_known_hosts = d + "/wrong_known_hosts";
  WriteFile(s.known_hosts, known("host_key.pub"));
  WriteFile(s.empty_known_hosts, "");
  WriteFile(s.wrong_known_hosts, known("other_host_key.pub"));
  s.pid = fork();
  if (s.pid == 0) {
    std::string log = d + "/sshd.log";
    freopen(log.c_str(), "w", stderr);
    execl("/usr/sbin/sshd", "/usr/sbin/sshd", "-D", "-e", "-f", (d + "/sshd_config").c_str(),
          nullptr);
    _exit(127);
  }
  for (int i = 0; i < 100; ++i) {
    if (Listening(s.port)) return "";
    usleep(50000);
  }
  return "sshd did not start: " + ReadFile(d + "/sshd.log");
}

class SshTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server = new Server;
    server->why_not = StartServer(*server);
  }
  static void TearDownTestSuite() {
    if (server->pid > 0) {
      kill(server->pid, SIGTERM);
      waitpid(server->pid, nullptr, 0);
    }
    std::error_code ec;
    if (!server->dir.empty()) std::filesystem::remove_all(server->dir, ec);
    delete server;
    server = nullptr;
  }
  void SetUp() override {
    if (!server->why_not.empty()) GTEST_SKIP() << server->why_not;
  }

  // Lua for ssh.connect with the good key and known_hosts; `extra` overrides fields.
  static std::string Connect(const std::string& extra = "") {
    return "ssh.connect({host = '127.0.0.1', port = " + std::to_string(server->port) +
           ", user = 'root', key = '" + server->key + "', known_hosts = '" + server->known_hosts +
           "'" + extra + "})";
  }
  // A fresh directory on the "remote" host (which is this machine).
  static std::string RemoteDir() {
    std::string tmpl = server->dir + "/remote-XXXXXX";
    return mkdtemp(tmpl.data());
  }
};

TEST_F(SshTest, ExecReturnsOutputAndExitCodes) {
  LuaEnv env;
  Status s = env.RunInTask("local c = " + Connect() + R"(
    local r = c:exec("echo out; echo err >&2; exit 3")
    assert(r.stdout == "out\n", r.stdout)
    assert(r.stderr == "err\n", r.stderr)
    assert(r.exit_code == 3 and r.success == false)
    local ok = ssh.exec({ connection = c, command = "echo remote-$((40 + 2)) " })
    assert(ok.stdout == "remote-42\n" and ok.exit_code == 0 and ok.success)
    assert(tostring(ok) == "remote-42\n", "prints as its output like exec results")
    assert(c:exec("cat", { stdin = "fed in" }).stdout == "fed in")
    local big = c:exec("head -c 300000 /dev/zero | tr '\\0' x")
    assert(#big.stdout == 300000, #big.stdout)
    assert(tostring(c):find("root@127.0.0.1"), tostring(c))
  )");
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(SshTest, UploadDownloadRoundTripKeepsModesAndIsIdempotent) {
  LuaEnv env;
  std::string remote = RemoteDir();
  Status s = env.RunInTask("local c = " + Connect() + "\nlocal remote = '" + remote + "'\n" + R"(
    fs.write("payload.txt", "over the wire\n")
    local up = ssh.upload({ connection = c, local_path = "payload.txt", remote_path = remote .. "/up.txt" })
    assert(up.success and up.changed and up.bytes == 14)
    local again = c:upload("payload.txt", remote .. "/up.txt")
    assert(again.changed == false, "same content again changes nothing")
    local down = ssh.download({ connection = c, remote_path = remote .. "/up.txt", local_path = "down.txt" })
    assert(down.changed and fs.read("down.txt") == "over the wire\n")
    assert(c:download(remote .. "/up.txt", "down.txt").changed == false)
    c:upload("payload.txt", remote .. "/secret.txt", { mode = "0600" })
    local ok, err = pcall(c.download, c, remote .. "/missing.txt", "x.txt")
    assert(not ok and tostring(err):find("no such file"), tostring(err))
    ok, err = pcall(c.upload, c, "no-such-local-file", remote .. "/y.txt")
    assert(not ok and tostring(err):find("cannot read"), tostring(err))
  )");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ReadFile(remote + "/up.txt"), "over the wire\n");
  struct stat st {};
  ASSERT_EQ(stat((remote + "/secret.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(std::filesystem::exists(remote + "/up.txt.sloth-tmp"));
}

TEST_F(SshTest, WrongKeyAndWrongPasswordAreRefused) {
  LuaEnv env;
  Status s = env.RunInTask("local ok, err = pcall(function() return " +
                           Connect(", key = '" + server->other_key + "'") + " end)\n" + R"(
    assert(not ok and tostring(err):find("authentication to root@127.0.0.1:%d+ failed"), tostring(err))
  )" + "ok, err = pcall(function() return " +
                           Connect(", key = nil, password = 'not-the-password'") + " end)\n" + R"(
    assert(not ok and tostring(err):find("authentication"), tostring(err))
      )" + "ok, err = pcall(function() return " +
                           Connect(", key = '/no/such/key'") + " end)\n" + R"(
    assert(not ok and tostring(err):find("cannot read the private key"), tostring(err))
  )");
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(SshTest, UnknownOrChangedHostKeyIsRefusedUnlessInsecure) {
  LuaEnv env;
  Status s = env.RunInTask(
      "local ok, err = pcall(function() return " +
      Connect(", known_hosts = '" + server->empty_known_hosts + "'") + " end)\n" + R"(
    assert(not ok and tostring(err):find("is not in .*insecure = true"), tostring(err))
    assert(tostring(err):find("SHA256:"), "names the fingerprint: " .. tostring(err))
  )" + "ok, err = pcall(function() return " +
      Connect(", known_hosts = '" + server->wrong_known_hosts + "'") + " end)\n" + R"(
    assert(not ok and tostring(err):find("CHANGED"), tostring(err))
  )" + "local c = " +
      Connect(", known_hosts = '" + server->empty_known_hosts + "', insecure = true") + "\n" + R"(
    assert(c:exec("true").success)
  )");
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(env.sink().Contains("insecure = true: accepting")) << "the bypass is logged";
}

TEST_F(SshTest, ConnectionRefusedRaises) {
  LuaEnv env;
  int closed_port = FreePort();
  Status s = env.RunInTask("local ok, err = pcall(ssh.connect, {host = '127.0.0.1', port = " +
                           std::to_string(closed_port) + ", key = '" + server->key +
                           "', timeout = 5})\n" + R"(
    assert(not ok and tostring(err):find("cannot connect to"), tostring(err))
  )");
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(SshTest, CommandTimeoutStopsWaiting) {
  LuaEnv env;
  auto start = std::chrono::steady_clock::now();
  Status s = env.RunInTask("local c = " + Connect() + R"(
    local r = c:exec("sleep 10", { timeout = 0.5 })
    assert(r.timed_out and not r.success, "timed out")
    assert(r.stderr:find("timed out"), r.stderr)
    assert(c:exec("echo still usable").stdout == "still usable\n")
  )");
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(SshTest, CancelledTaskStopsWaitingForTheRemoteCommand) {
  LuaEnv env;
  std::string remote = RemoteDir();
  TaskContext task;
  task.name = "t";
  task.workdir = env.dir();
  env.loop().After(std::chrono::milliseconds(800),
                   [&] { env.rt().CancelTask(&task, "cancelled by the test"); });
  auto start = std::chrono::steady_clock::now();
  Status s = env.RunInTask(
      "local c = " + Connect() + "\nc:exec('sleep 10; touch " + remote + "/finished')", &task);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cancelled by the test"), std::string::npos) << s.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST_F(SshTest, GoroutinesUseConnectionsInParallel) {
  LuaEnv env;
  // Each command prints the (remote) clock before and after its work (3 s sleeps: on a loaded
  // machine opening an SSH channel can take a while). Two connections used by two goroutines
  // overlap in time; a third goroutine sharing the first connection waits its
  // turn: its commands run after the first one's, never during it.
  Status s = env.RunInTask("local a, b = " + Connect() + ", " + Connect() + R"(
    local function span(conn, cmd)
      local out = conn:exec("date +%s%N; " .. cmd .. "; date +%s%N").stdout
      local t0, t1 = out:match("^(%d+)\n(%d+)\n$")
      assert(t0, "unexpected output: " .. out)
      return { tonumber(t0), tonumber(t1) }
    end
    local results = goroutine.await_all({
      goroutine.async(function() return span(a, "sleep 3") end),
      goroutine.async(function() return span(b, "sleep 3") end),
      goroutine.async(function()
        local spans = {}
        for i = 1, 3 do spans[i] = span(a, "true") end
        return spans
      end),
    })
    for _, r in ipairs(results) do assert(r.success, tostring(r.error)) end
    local sa, sb, shared = results[1].values[1], results[2].values[1], results[3].values[1]
    assert(sa[1] < sb[2] and sb[1] < sa[2], "the two connections did not run at the same time")
    for i, sp in ipairs(shared) do
      assert(sp[1] >= sa[2], "call " .. i .. " on the shared connection overlapped the sleep")
    end
  )");
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(SshTest, CheckModeRefusesExecAndOnlyReportsUploads) {
  RuntimeOptions options;
  options.check_mode = true;
  LuaEnv env(options);
  std::string remote = RemoteDir();
  WriteFile(env.dir() + "/payload.txt", "data");  // fs.write would not write in check mode
  Status s = env.RunInTask("local c = " + Connect() + "\nlocal remote = '" + remote + "'\n" + R"(
    local ok, err = pcall(c.exec, c, "touch " .. remote .. "/touched")
    assert(not ok and tostring(err):find("check mode"), tostring(err))
    local up = c:upload("payload.txt", remote .. "/up.txt")
    assert(up.changed and up.skipped, "reports the change it would make")
  )");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(std::filesystem::exists(remote + "/touched"));
  EXPECT_FALSE(std::filesystem::exists(remote + "/up.txt"));
  EXPECT_TRUE(env.sink().Contains("[check] would upload"));

  TaskContext always;  // :check_mode(false)
  always.name = "always";
  always.workdir = env.dir();
  always.always_run = true;
  s = env.RunInTask(
      "local c = " + Connect() + "\nassert(c:exec('touch " + remote + "/touched').success)",
      &always);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(std::filesystem::exists(remote + "/touched"));
}

TEST_F(SshTest, ClosedConnectionRaises) {
  LuaEnv env;
  Status s = env.RunInTask("local c = " + Connect() + R"(
    c:close()
    c:close()  -- twice is fine
    local ok, err = pcall(c.exec, c, "true")
    assert(not ok and tostring(err):find("closed"), tostring(err))
    assert(tostring(c):find("closed"))
    local ok2, err2 = pcall(ssh.exec, { connection = "nope", command = "true" })
    assert(not ok2 and tostring(err2):find("connection must be"), tostring(err2))
  )");
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(SshTest, AgentAuthentication) {
  if (access("/usr/bin/ssh-agent", X_OK) != 0) GTEST_SKIP() << "ssh-agent is not installed";
  std::string sock = server->dir + "/agent.sock";
  pid_t agent = fork();
  if (agent == 0) {
    // Other tests of this process block SIGTERM for their loops; the agent must not inherit that.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    freopen("/dev/null", "w", stdout);  // it prints the shell lines to set SSH_AUTH_SOCK
    execl("/usr/bin/ssh-agent", "ssh-agent", "-D", "-a", sock.c_str(), nullptr);
    _exit(127);
  }
  for (int i = 0; i < 50 && !std::filesystem::exists(sock); ++i) usleep(50000);
  std::string add = "SSH_AUTH_SOCK=" + sock + " ssh-add -q " + server->key + " 2>/dev/null";
  ASSERT_EQ(std::system(add.c_str()), 0);
  const char* old = getenv("SSH_AUTH_SOCK");
  std::string saved = old ? old : "";
  setenv("SSH_AUTH_SOCK", sock.c_str(), 1);
  LuaEnv env;
  Status s = env.RunInTask("local c = " + Connect(", key = nil") + R"(
    assert(c:exec("echo via agent").stdout == "via agent\n")
  )");
  if (old)
    setenv("SSH_AUTH_SOCK", saved.c_str(), 1);
  else
    unsetenv("SSH_AUTH_SOCK");
  kill(agent, SIGKILL);
  waitpid(agent, nullptr, 0);
  EXPECT_TRUE(s.ok()) << s.message();
}

}  // namespace
}  // namespace sloth
