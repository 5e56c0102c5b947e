#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include "lua/modules/infra_test_module.h"
#include "lua/test_util.h"

namespace sloth {
using testing::LuaEnv;

namespace {

// A socket of `type` bound to a free port on 127.0.0.1 (listening when TCP).
struct BoundSocket {
  explicit BoundSocket(int type) {
    fd = socket(AF_INET, type, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (type == SOCK_STREAM) listen(fd, 16);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~BoundSocket() {
    if (fd >= 0) close(fd);
  }
  int fd = -1;
  int port = 0;
};

// A minimal HTTP server on its own thread: "/" answers 200 "hello infra", anything else 404.
class TinyHttpServer {
 public:
  TinyHttpServer() : thread_([this] { Serve(); }) {}
  ~TinyHttpServer() {
    stop_ = true;
    shutdown(sock_.fd, SHUT_RDWR);
    thread_.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(sock_.port) + path;
  }

 private:
  void Serve() {
    while (!stop_) {
      int c = accept(sock_.fd, nullptr, nullptr);
      if (c < 0) return;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      bool root = request.rfind("GET / ", 0) == 0;
      std::string body = root ? "hello infra" : "missing";
      std::string reply = std::string("HTTP/1.1 ") + (root ? "200 OK" : "404 Not Found") +
                          "\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\nConnection: close\r\n\r\n" + body;
      (void)!write(c, reply.data(), reply.size());
      close(c);
    }
  }
  BoundSocket sock_{SOCK_STREAM};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// "ok", or the error the code raised without its "chunk:line: " prefix.
std::string Outcome(LuaEnv& env, const std::string& code) {
  Status s = env.Run(code);
  if (s.ok()) return "ok";
  return std::regex_replace(s.message(), std::regex("^test:[0-9]+: "), "");
}

std::string Quoted(const std::string& s) { return "'" + s + "'"; }

}  // namespace

struct InfraTestTest : ::testing::Test {
  static void SetUpTestSuite() { Loop::BlockSignals(); }
};

TEST_F(InfraTestTest, FilesPassAndSayWhatTheyFound) {
  LuaEnv env;
  std::string file = env.dir() + "/f.txt";
  std::ofstream(file) << "alpha beta\n";
  chmod(file.c_str(), 0640);
  EXPECT_EQ(Outcome(env, "assert(infra_test.file_exists('f.txt') == true)"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.is_file('f.txt'); infra_test.is_directory('.')"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.file_contains('f.txt', 'beta')"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.file_mode('f.txt', '640')"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.file_mode('f.txt', '0640')"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.file_mode('f.txt', 640)"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.file_size('f.txt', 11)"), "ok");
  std::string me = getpwuid(getuid())->pw_name;
  EXPECT_EQ(Outcome(env, "infra_test.file_owner('f.txt', " + Quoted(me) + ")"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.file_owner('f.txt', '" + std::to_string(getuid()) + "')"),
            "ok");
  EXPECT_EQ(Outcome(env, "infra_test.file_group('f.txt', '" + std::to_string(getgid()) + "')"),
            "ok");

  std::string missing = env.dir() + "/nope";
  EXPECT_EQ(Outcome(env, "infra_test.file_exists('nope')"),
            "infra_test.file_exists: expected " + missing +
                " to exist, found it missing (No such file or directory)");
  EXPECT_EQ(
      Outcome(env, "infra_test.is_directory('f.txt')"),
      "infra_test.is_directory: expected " + file + " to be a directory, found a regular file");
  EXPECT_EQ(
      Outcome(env, "infra_test.is_file('.')"),
      "infra_test.is_file: expected " + env.dir() + " to be a regular file, found a directory");
  EXPECT_EQ(Outcome(env, "infra_test.file_contains('f.txt', 'gamma')"),
            "infra_test.file_contains: expected " + file +
                " to contain \"gamma\", found no such text in its 11 bytes");
  EXPECT_EQ(Outcome(env, "infra_test.file_mode('f.txt', '600')"),
            "infra_test.file_mode: expected " + file + " to have mode 0600, found 0640");
  EXPECT_EQ(Outcome(env, "infra_test.file_size('f.txt', 3)"),
            "infra_test.file_size: expected " + file + " to have 3 bytes, found 11 bytes");
  EXPECT_EQ(Outcome(env, "infra_test.file_owner('f.txt', 'no-such-owner')"),
            "infra_test.file_owner: expected " + file + " to have owner no-such-owner, found " +
                me + " (" + std::to_string(getuid()) + ")");
  EXPECT_NE(
      Outcome(env, "infra_test.file_group('f.txt', 'no-such-group')")
          .find("infra_test.file_group: expected " + file + " to have group no-such-group, found "),
      std::string::npos);
  EXPECT_NE(Outcome(env, "infra_test.file_mode('f.txt', '9z')").find("mode must be octal digits"),
            std::string::npos);
}

TEST_F(InfraTestTest, PortsFromProcNet) {
  LuaEnv env;
  BoundSocket tcp(SOCK_STREAM);
  BoundSocket udp(SOCK_DGRAM);
  std::string t = std::to_string(tcp.port), u = std::to_string(udp.port);
  EXPECT_EQ(Outcome(env, "infra_test.port_is_listening(" + t + ")"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.port_is_tcp(" + t + ")"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.port_is_udp(" + u + ")"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.port_is_listening(" + u + ")"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.can_connect('127.0.0.1', " + t + ")"), "ok");

  EXPECT_EQ(Outcome(env, "infra_test.port_is_tcp(" + u + ")"),
            "infra_test.port_is_tcp: expected a TCP socket listening on port " + u +
                ", found only a UDP socket");
  EXPECT_EQ(Outcome(env, "infra_test.port_is_udp(" + t + ")"),
            "infra_test.port_is_udp: expected a UDP socket bound to port " + t +
                ", found only a TCP socket");
  int closed_port;
  {
    BoundSocket gone(SOCK_STREAM);
    closed_port = gone.port;
  }
  std::string c = std::to_string(closed_port);
  EXPECT_EQ(Outcome(env, "infra_test.port_is_listening(" + c + ")"),
            "infra_test.port_is_listening: expected a TCP or UDP socket listening on port " + c +
                ", found none");
  EXPECT_EQ(Outcome(env, "infra_test.can_connect('127.0.0.1', " + c + ", 1)"),
            "infra_test.can_connect: expected a TCP connection to 127.0.0.1:" + c +
                ", found Connection refused");
  EXPECT_NE(Outcome(env, "infra_test.port_is_tcp(70000)").find("out of range"), std::string::npos);
}

TEST_F(InfraTestTest, CanConnectWaitsInsideATask) {
  LuaEnv env;
  BoundSocket tcp(SOCK_STREAM);
  Status s =
      env.RunInTask("infra_test.can_connect('localhost', " + std::to_string(tcp.port) + ", '2s')");
  EXPECT_TRUE(s.ok()) << s.message();
  s = env.RunInTask("infra_test.can_connect('no-such-host.invalid', 80)");
  EXPECT_NE(s.message().find("expected a TCP connection to no-such-host.invalid:80, found cannot "
                             "resolve the host"),
            std::string::npos)
      << s.message();
}

TEST_F(InfraTestTest, ProcessesFromProc) {
  LuaEnv env;
  std::ifstream comm_file("/proc/self/comm");
  std::string comm;
  std::getline(comm_file, comm);
  EXPECT_EQ(Outcome(env, "infra_test.process_is_running(" + Quoted(comm) + ")"), "ok");
  // A child with a unique command line: matched by substring, counted exactly.
  std::string marker = "3000." + std::to_string(getpid()) + "1";
  ASSERT_EQ(Outcome(env, "bg = exec.background({'sleep', '" + marker + "'})"), "ok");
  // The child may still be between fork and exec (its command line not yet `sleep ...`).
  ASSERT_EQ(Outcome(env, "for i = 1, 200 do if pcall(infra_test.process_is_running, '" + marker +
                             "') then break end; time.sleep(0.01) end"),
            "ok");
  EXPECT_EQ(Outcome(env, "infra_test.process_is_running('" + marker + "')"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.process_count('" + marker + "', 1)"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.process_count('" + marker + "', 2)"),
            "infra_test.process_count: expected 2 processes \"" + marker + "\", found 1");
  ASSERT_EQ(Outcome(env, "bg:kill(); bg:wait()"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.process_is_running('" + marker + "')"),
            "infra_test.process_is_running: expected a process \"" + marker + "\", found none");
}

TEST_F(InfraTestTest, Commands) {
  LuaEnv env;
  EXPECT_EQ(Outcome(env, "infra_test.command_succeeds('true')"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.command_succeeds({'test', '-d', '/'})"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.command_fails('exit 3')"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.command_stdout_contains('echo hello world', 'world')"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.command_stderr_is_empty('echo quiet')"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.command_output_equals('echo 42', '42')"), "ok");

  EXPECT_EQ(Outcome(env, "infra_test.command_succeeds('echo bad >&2; exit 4')"),
            "infra_test.command_succeeds: expected `echo bad >&2; exit 4` to succeed, found exit "
            "code 4 (stderr: bad)");
  EXPECT_EQ(Outcome(env, "infra_test.command_fails('true')"),
            "infra_test.command_fails: expected `true` to fail, found exit code 0");
  EXPECT_EQ(Outcome(env, "infra_test.command_stdout_contains('echo hello', 'world')"),
            "infra_test.command_stdout_contains: expected `echo hello` to print \"world\", found "
            "stdout \"hello\" (exit code 0)");
  EXPECT_EQ(Outcome(env, "infra_test.command_stderr_is_empty('echo oops >&2')"),
            "infra_test.command_stderr_is_empty: expected `echo oops >&2` to print nothing on "
            "stderr, found stderr \"oops\"");
  EXPECT_EQ(Outcome(env, "infra_test.command_output_equals('echo 41', '42')"),
            "infra_test.command_output_equals: expected `echo 41` to print \"42\", found \"41\"");
}

TEST_F(InfraTestTest, CommandsRunInATaskToo) {
  LuaEnv env;
  Status s = env.RunInTask("infra_test.command_stdout_contains('echo in task', 'task')");
  EXPECT_TRUE(s.ok()) << s.message();
  s = env.RunInTask("infra_test.command_succeeds('exit 2')");
  EXPECT_NE(s.message().find("expected `exit 2` to succeed, found exit code 2"), std::string::npos)
      << s.message();
}

TEST_F(InfraTestTest, ChecksStillRunInCheckMode) {
  RuntimeOptions options;
  options.check_mode = true;
  LuaEnv env(options);
  // exec.run would skip this (and report success); a probe must really run it.
  EXPECT_EQ(Outcome(env, "infra_test.command_fails('false')"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.command_succeeds('touch probed')"), "ok");
  EXPECT_TRUE(std::filesystem::exists(env.dir() + "/probed"));
  EXPECT_NE(Outcome(env, "infra_test.command_succeeds('false')").find("found exit code 1"),
            std::string::npos);
  EXPECT_EQ(Outcome(env, "infra_test.user_exists('root')"), "ok");
}

TEST_F(InfraTestTest, PackagesFromTheDatabase) {
  if (!std::filesystem::exists("/var/lib/dpkg/status")) GTEST_SKIP() << "not a dpkg system";
  LuaEnv env;
  EXPECT_EQ(Outcome(env, "infra_test.package_is_installed('bash')"), "ok");
  EXPECT_EQ(Outcome(env, R"(
    local v = exec.run({'dpkg-query', '-W', '-f=${Version}', 'bash'}).stdout
    infra_test.package_version('bash', v)
    infra_test.package_version('bash', v:match('^[%d]+'))
  )"),
            "ok");
  EXPECT_EQ(Outcome(env, "infra_test.package_is_installed('no-such-package-xyz')"),
            "infra_test.package_is_installed: expected package no-such-package-xyz to be "
            "installed, found it not installed (dpkg)");
  EXPECT_NE(Outcome(env, "infra_test.package_version('bash', '0.0.1')")
                .find("infra_test.package_version: expected package bash at version 0.0.1, "
                      "found version "),
            std::string::npos);
}

TEST_F(InfraTestTest, Accounts) {
  LuaEnv env;
  EXPECT_EQ(Outcome(env, "infra_test.user_exists('root'); infra_test.group_exists('root')"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.user_exists('no-such-user-xyz')"),
            "infra_test.user_exists: expected user no-such-user-xyz to exist, found no such user");
  EXPECT_EQ(Outcome(env, "infra_test.group_exists('no-such-group-xyz')"),
            "infra_test.group_exists: expected group no-such-group-xyz to exist, found no such "
            "group");
}

TEST_F(InfraTestTest, Http) {
  LuaEnv env;
  TinyHttpServer server;
  std::string root = Quoted(server.url("/")), missing = Quoted(server.url("/missing"));
  EXPECT_EQ(Outcome(env, "infra_test.http_status(" + root + ")"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.http_status(" + missing + ", 404)"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.http_contains(" + root + ", 'hello')"), "ok");
  EXPECT_EQ(Outcome(env, "infra_test.http_status(" + missing + ", 200)"),
            "infra_test.http_status: expected HTTP status 200 from " + server.url("/missing") +
                ", found status 404");
  EXPECT_EQ(Outcome(env, "infra_test.http_contains(" + root + ", 'bye')"),
            "infra_test.http_contains: expected a body containing \"bye\" from " + server.url("/") +
                ", found status 200 and a body without it (\"hello infra\")");
}

TEST_F(InfraTestTest, AnAgentArgumentIsRefused) {
  LuaEnv env;
  const char* msg = "needs a master (distributed execution is not available yet)";
  EXPECT_EQ(Outcome(env, "infra_test.file_exists('/etc/hosts', 'web1')"),
            std::string("infra_test.file_exists: checking on agent web1 ") + msg);
  EXPECT_EQ(Outcome(env, "infra_test.command_succeeds('true', 'web1')"),
            std::string("infra_test.command_succeeds: checking on agent web1 ") + msg);
  EXPECT_EQ(Outcome(env, "infra_test.can_connect('127.0.0.1', 1, nil, 'db')"),
            std::string("infra_test.can_connect: checking on agent db ") + msg);
  EXPECT_NE(Outcome(env, "infra_test.user_exists('root', 42)").find("agent name) must be a string"),
            std::string::npos);
  // nil in the agent's place means here
  EXPECT_EQ(Outcome(env, "infra_test.user_exists('root', nil)"), "ok");
}

TEST_F(InfraTestTest, ServicesNeedSystemd) {
  if (std::filesystem::exists("/run/systemd/system")) GTEST_SKIP() << "systemd is running here";
  LuaEnv env;
  EXPECT_EQ(Outcome(env, "infra_test.service_is_running('ssh')"),
            "infra_test.service_is_running: systemd is not running on this machine "
            "(/run/systemd/system is absent), so service ssh cannot be checked");
  EXPECT_NE(Outcome(env, "infra_test.service_is_enabled('ssh')").find("systemd is not running"),
            std::string::npos);
}

TEST_F(InfraTestTest, PingSaysWhenItIsNotInstalled) {
  LuaEnv env;
  bool have_ping = std::system("command -v ping >/dev/null 2>&1") == 0;
  if (have_ping) {
    GTEST_SKIP() << "ping is installed here; its ICMP answer depends on the sandbox";
  }
  EXPECT_EQ(Outcome(env, "infra_test.ping('127.0.0.1')"),
            "infra_test.ping: the ping command is not installed (needed to ping 127.0.0.1)");
}

TEST_F(InfraTestTest, AssertionsAreCountedPerTask) {
  LuaEnv env;
  TaskContext task;
  task.name = "probe";
  task.workdir = env.dir();
  Status s = env.RunInTask(
      "infra_test.user_exists('root'); infra_test.command_succeeds('true');"
      "pcall(infra_test.file_exists, '/nope')",
      &task);
  ASSERT_TRUE(s.ok()) << s.message();
  auto counts = TakeAssertionCounts(env.rt().state());
  ASSERT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts["probe"], 3);
  EXPECT_TRUE(TakeAssertionCounts(env.rt().state()).empty());
}

}  // namespace sloth
