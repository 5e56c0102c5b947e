// infra_test: Testinfra/InSpec-style assertions about the machine the run is on. Each function
// returns true or raises "infra_test.FN: expected X, found Y". They only look, so they run in
// check mode too. Files, ports, processes, packages and accounts are read from the filesystem
// and /proc directly; commands, services and ping run child processes through exec's runner.
// (The file is infra_test_module.cc because the build treats every *_test.cc as a test.)
#include "lua/modules/infra_test_module.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <lua.hpp>

#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/modules/exec.h"
#include "lua/modules/host_util.h"
#include "lua/modules/http.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

constexpr char kCountsKey[] = "sloth.infra_test.counts";
constexpr Duration kConnectTimeout = std::chrono::seconds(3);
constexpr Duration kHttpTimeout = std::chrono::seconds(10);

// --- argument handling and messages -------------------------------------------------------

[[noreturn]] void Fail(lua_State* L, const char* fn, const std::string& expected,
                       const std::string& found) {
  luaL_error(L, "infra_test.%s: expected %s, found %s", fn, expected.c_str(), found.c_str());
  std::abort();  // luaL_error does not return
}

// The optional argument after the function's own `arity` names an agent. Checking on another
// machine needs the master, which does not exist yet: say so rather than check here.
void CheckAgent(lua_State* L, const char* fn, int arity) {
  if (lua_gettop(L) <= arity || lua_isnil(L, arity + 1)) return;
  if (lua_type(L, arity + 1) != LUA_TSTRING) {
    luaL_error(L, "infra_test.%s: argument %d (the agent name) must be a string, got %s", fn,
               arity + 1, luaL_typename(L, arity + 1));
  }
  luaL_error(L,
             "infra_test.%s: checking on agent %s needs a master (distributed execution is not "
             "available yet)",
             fn, lua_tostring(L, arity + 1));
}

// Counts one assertion for the calling task (for --junit).
void Count(lua_State* L) {
  TaskContext* task = Runtime::From(L).TaskOf(L);
  if (!task) return;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, kCountsKey);
  lua_getfield(L, -1, task->name.c_str());
  lua_Integer n = lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_pushinteger(L, n + 1);
  lua_setfield(L, -2, task->name.c_str());
  lua_pop(L, 1);
}

// Checks the agent argument and counts the assertion; every function starts with this.
void Begin(lua_State* L, const char* fn, int arity) {
  CheckAgent(L, fn, arity);
  Count(L);
}

std::string CheckString(lua_State* L, const char* fn, int index, const char* what) {
  if (lua_type(L, index) != LUA_TSTRING && lua_type(L, index) != LUA_TNUMBER) {
    luaL_error(L, "infra_test.%s: %s must be a string, got %s", fn, what, luaL_typename(L, index));
  }
  size_t len = 0;
  const char* s = lua_tolstring(L, index, &len);
  return std::string(s, len);
}

lua_Integer CheckInteger(lua_State* L, const char* fn, int index, const char* what) {
  if (!lua_isinteger(L, index)) {
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, index, &ok);
    if (!ok) {
      luaL_error(L, "infra_test.%s: %s must be a whole number, got %s", fn, what,
                 luaL_typename(L, index));
    }
    return v;
  }
  return lua_tointeger(L, index);
}

int CheckPort(lua_State* L, const char* fn, int index) {
  lua_Integer port = CheckInteger(L, fn, index, "port");
  if (port < 1 || port > 65535) luaL_error(L, "infra_test.%s: port %d is out of range", fn, port);
  return static_cast<int>(port);
}

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

// At most `max` bytes of `s`, for messages that show command output.
std::string Clip(const std::string& s, size_t max = 200) {
  std::string t = s;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  return t.size() <= max ? t : t.substr(0, max) + "...";
}

std::string ErrnoText(int err) { return std::strerror(err); }

// --- files ----------------------------------------------------------------------------------

// stat() of the argument at index 1 (relative to the task's workdir); the error text if it fails.
std::optional<struct stat> StatArg(lua_State* L, const char* fn, std::string& path,
                                   std::string& error) {
  path = Runtime::From(L).ResolvePath(L, CheckString(L, fn, 1, "path"));
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    error = ErrnoText(errno);
    return std::nullopt;
  }
  return st;
}

std::string Kind(const struct stat& st) {
  if (S_ISREG(st.st_mode)) return "a regular file";
  if (S_ISDIR(st.st_mode)) return "a directory";
  if (S_ISLNK(st.st_mode)) return "a symbolic link";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  if (S_ISFIFO(st.st_mode)) return "a FIFO";
  return "a device";
}

// The stat of the path argument, or a failure naming `expected`.
struct stat StatOrFail(lua_State* L, const char* fn, const std::string& expected_of_path,
                       std::string& path) {
  std::string error;
  auto st = StatArg(L, fn, path, error);
  if (!st) Fail(L, fn, path + " " + expected_of_path, "it missing (" + error + ")");
  return *st;
}

int FileExists(lua_State* L) {
  Begin(L, "file_exists", 1);
  std::string path;
  StatOrFail(L, "file_exists", "to exist", path);
  lua_pushboolean(L, 1);
  return 1;
}

int IsDirectory(lua_State* L) {
  Begin(L, "is_directory", 1);
  std::string path;
  struct stat st = StatOrFail(L, "is_directory", "to be a directory", path);
  if (!S_ISDIR(st.st_mode)) Fail(L, "is_directory", path + " to be a directory", Kind(st));
  lua_pushboolean(L, 1);
  return 1;
}

int IsFile(lua_State* L) {
  Begin(L, "is_file", 1);
  std::string path;
  struct stat st = StatOrFail(L, "is_file", "to be a regular file", path);
  if (!S_ISREG(st.st_mode)) Fail(L, "is_file", path + " to be a regular file", Kind(st));
  lua_pushboolean(L, 1);
  return 1;
}

int FileContains(lua_State* L) {
  Begin(L, "file_contains", 2);
  std::string path = Runtime::From(L).ResolvePath(L, CheckString(L, "file_contains", 1, "path"));
  std::string text = CheckString(L, "file_contains", 2, "text");
  std::string expected = path + " to contain " + Quote(text);
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(L, "file_contains", expected, "it unreadable (" + ErrnoText(errno) + ")");
  std::stringstream content;
  content << in.rdbuf();
  std::string data = content.str();
  if (data.find(text) == std::string::npos) {
    Fail(L, "file_contains", expected,
         "no such text in its " + std::to_string(data.size()) + " bytes");
  }
  lua_pushboolean(L, 1);
  return 1;
}

// "600", "0600", "0o600" or the number 600 (its digits read as octal; Lua has no octal literals).
std::optional<unsigned> ParseMode(lua_State* L) {
  std::string text;
  if (lua_isinteger(L, 2)) {
    text = std::to_string(lua_tointeger(L, 2));
  } else if (lua_type(L, 2) == LUA_TSTRING) {
    text = lua_tostring(L, 2);
  } else {
    return std::nullopt;
  }
  if (text.rfind("0o", 0) == 0) text = text.substr(2);
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned mode = 0;
  for (char c : text) {
    if (c < '0' || c > '7') return std::nullopt;
    mode = mode * 8 + static_cast<unsigned>(c - '0');
  }
  return mode > 07777 ? std::nullopt : std::optional<unsigned>(mode);
}

std::string OctalMode(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode);
  return buf;
}

int FileMode(lua_State* L) {
  Begin(L, "file_mode", 2);
  auto mode = ParseMode(L);
  if (!mode) {
    luaL_error(L, "infra_test.file_mode: mode must be octal digits like \"600\", \"0644\" or 644");
  }
  std::string path;
  std::string expected = "mode " + OctalMode(*mode);
  struct stat st = StatOrFail(L, "file_mode", "to have " + expected, path);
  unsigned actual = st.st_mode & 07777;
  if (actual != *mode) Fail(L, "file_mode", path + " to have " + expected, OctalMode(actual));
  lua_pushboolean(L, 1);
  return 1;
}

std::string UserName(uid_t uid) {
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* found = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found) return found->pw_name;
  return std::to_string(uid);
}

std::string GroupName(gid_t gid) {
  std::vector<char> buf(16384);
  struct group gr {};
  struct group* found = nullptr;
  if (getgrgid_r(gid, &gr, buf.data(), buf.size(), &found) == 0 && found) return found->gr_name;
  return std::to_string(gid);
}

// The owner or group check: `want` is a name or a numeric id.
int CheckOwnership(lua_State* L, const char* fn, bool group) {
  Begin(L, fn, 2);
  std::string want = CheckString(L, fn, 2, group ? "group" : "owner");
  std::string path;
  std::string what = group ? "group " : "owner ";
  struct stat st = StatOrFail(L, fn, "to have " + what + want, path);
  unsigned id = group ? st.st_gid : st.st_uid;
  std::string name = group ? GroupName(st.st_gid) : UserName(st.st_uid);
  if (want != name && want != std::to_string(id)) {
    Fail(L, fn, path + " to have " + what + want, name + " (" + std::to_string(id) + ")");
  }
  lua_pushboolean(L, 1);
  return 1;
}

int FileOwner(lua_State* L) { return CheckOwnership(L, "file_owner", false); }
int FileGroup(lua_State* L) { return CheckOwnership(L, "file_group", true); }

int FileSize(lua_State* L) {
  Begin(L, "file_size", 2);
  lua_Integer want = CheckInteger(L, "file_size", 2, "size");
  std::string path;
  std::string expected = std::to_string(want) + " bytes";
  struct stat st = StatOrFail(L, "file_size", "to have " + expected, path);
  if (st.st_size != want) {
    Fail(L, "file_size", path + " to have " + expected, std::to_string(st.st_size) + " bytes");
  }
  lua_pushboolean(L, 1);
  return 1;
}

// --- ports ----------------------------------------------------------------------------------

// The local ports in a /proc/net/{tcp,tcp6,udp,udp6} table; only LISTEN (0A) sockets when
// `listen_only` (for UDP every entry is a bound socket).
std::set<int> ProcNetPorts(const char* file, bool listen_only) {
  std::set<int> ports;
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    if (!(fields >> slot >> local >> remote >> state)) continue;
    size_t colon = local.rfind(':');
    if (colon == std::string::npos) continue;
    if (listen_only && state != "0A") continue;
    ports.insert(static_cast<int>(std::strtol(local.c_str() + colon + 1, nullptr, 16)));
  }
  return ports;
}

bool TcpListening(int port) {
  return ProcNetPorts("/proc/net/tcp", true).count(port) ||
         ProcNetPorts("/proc/net/tcp6", true).count(port);
}

bool UdpBound(int port) {
  return ProcNetPorts("/proc/net/udp", false).count(port) ||
         ProcNetPorts("/proc/net/udp6", false).count(port);
}

int PortIsListening(lua_State* L) {
  Begin(L, "port_is_listening", 1);
  int port = CheckPort(L, "port_is_listening", 1);
  if (!TcpListening(port) && !UdpBound(port)) {
    Fail(L, "port_is_listening", "a TCP or UDP socket listening on port " + std::to_string(port),
         "none");
  }
  lua_pushboolean(L, 1);
  return 1;
}

int PortIsTcp(lua_State* L) {
  Begin(L, "port_is_tcp", 1);
  int port = CheckPort(L, "port_is_tcp", 1);
  if (!TcpListening(port)) {
    Fail(L, "port_is_tcp", "a TCP socket listening on port " + std::to_string(port),
         UdpBound(port) ? "only a UDP socket" : "none");
  }
  lua_pushboolean(L, 1);
  return 1;
}

int PortIsUdp(lua_State* L) {
  Begin(L, "port_is_udp", 1);
  int port = CheckPort(L, "port_is_udp", 1);
  if (!UdpBound(port)) {
    Fail(L, "port_is_udp", "a UDP socket bound to port " + std::to_string(port),
         TcpListening(port) ? "only a TCP socket" : "none");
  }
  lua_pushboolean(L, 1);
  return 1;
}

// Tries one address with a non-blocking connect bounded by `deadline`, polling in short slices
// so a cancelled task does not wait for the whole timeout; "" on success.
std::string ConnectOne(const addrinfo* ai, Clock::time_point deadline,
                       const std::atomic<bool>& cancelled) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0) return ErrnoText(errno);
  int err = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
  while (err == EINPROGRESS) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || cancelled) {
      err = ETIMEDOUT;
      break;
    }
    pollfd p{fd, POLLOUT, 0};
    int ready = poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 100)));
    if (ready < 0 && errno != EINTR) err = errno;
    if (ready <= 0) continue;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  }
  close(fd);
  return err == 0 ? "" : err == ETIMEDOUT ? "a timeout" : ErrnoText(err);
}

// Resolves and connects on a pool thread (getaddrinfo blocks); "" on success, else why not.
std::string Connect(const std::string& host, int port, Duration timeout,
                    const std::atomic<bool>& cancelled) {
  Clock::time_point deadline = Clock::now() + timeout;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list);
  if (rc != 0) return std::string("cannot resolve the host: ") + gai_strerror(rc);
  std::string error = "no address";
  for (addrinfo* ai = list; ai; ai = ai->ai_next) {
    error = ConnectOne(ai, deadline, cancelled);
    if (error.empty() || Clock::now() >= deadline || cancelled) break;
  }
  freeaddrinfo(list);
  return error;
}

int CanConnect(lua_State* L) {
  Begin(L, "can_connect", 3);
  std::string host = CheckString(L, "can_connect", 1, "host");
  int port = CheckPort(L, "can_connect", 2);
  Duration timeout = lua_isnoneornil(L, 3) ? kConnectTimeout : CheckDuration(L, 3);
  std::string expected = "a TCP connection to " + host + ":" + std::to_string(port);
  // On the pool, since getaddrinfo blocks; cancelling the task stops the wait for the answer.
  Runtime& rt = Runtime::From(L);
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  auto error = std::make_shared<std::string>();
  auto start = [&rt, host, port, timeout, cancelled, error, expected](Runtime::Done done) {
    rt.pool().Submit([host, port, timeout, cancelled,
                      error] { *error = Connect(host, port, timeout, *cancelled); },
                     [done, error, expected] {
                       done([error, expected](lua_State* co) {
                         if (!error->empty()) Fail(co, "can_connect", expected, *error);
                         lua_pushboolean(co, 1);
                         return 1;
                       });
                     });
  };
  return rt.Await(L, std::move(start), [cancelled] { *cancelled = true; });
}

// --- processes ------------------------------------------------------------------------------

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// How many processes are named `name` (/proc/PID/comm) or, failing that, have it in their
// command line.
int CountProcesses(const std::string& name) {
  int count = 0;
  DIR* dir = opendir("/proc");
  if (!dir) return 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string base = std::string("/proc/") + e->d_name;
    std::string comm = ReadSmallFile(base + "/comm");
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    if (comm == name) {
      ++count;
      continue;
    }
    std::string cmdline = ReadSmallFile(base + "/cmdline");
    for (char& c : cmdline)
      if (c == '\0') c = ' ';
    if (!name.empty() && cmdline.find(name) != std::string::npos) ++count;
  }
  closedir(dir);
  return count;
}

int ProcessIsRunning(lua_State* L) {
  Begin(L, "process_is_running", 1);
  std::string name = CheckString(L, "process_is_running", 1, "name");
  if (CountProcesses(name) == 0) Fail(L, "process_is_running", "a process " + Quote(name), "none");
  lua_pushboolean(L, 1);
  return 1;
}

int ProcessCount(lua_State* L) {
  Begin(L, "process_count", 2);
  std::string name = CheckString(L, "process_count", 1, "name");
  lua_Integer want = CheckInteger(L, "process_count", 2, "count");
  int found = CountProcesses(name);
  if (found != want) {
    Fail(L, "process_count", std::to_string(want) + " processes " + Quote(name),
         std::to_string(found));
  }
  lua_pushboolean(L, 1);
  return 1;
}

// --- commands -------------------------------------------------------------------------------

// Runs the command at index 1 (a shell string or an argv list, as exec.run takes them), even in
// check mode, without streaming its output; `check(co, exit)` then raises or pushes the result.
int RunChecked(lua_State* L, ProcessSpec spec,
               std::function<int(lua_State*, const ProcessExit&)> check) {
  ExecOptions opts;
  opts.run_in_check_mode = true;  // a probe: it only looks
  opts.stream = false;
  opts.on_exit = std::move(check);
  return RunCommand(L, std::move(spec), opts);
}

ProcessSpec CommandArg(lua_State* L, const char* fn) {
  if (lua_type(L, 1) != LUA_TTABLE) return ShellSpec(L, CheckString(L, fn, 1, "command"));
  ProcessSpec spec;
  lua_Integer n = luaL_len(L, 1);
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_geti(L, 1, i);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "infra_test.%s: argv items must be strings", fn);
    spec.argv.emplace_back(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  if (spec.argv.empty()) luaL_error(L, "infra_test.%s: the argv list is empty", fn);
  spec.env = Runtime::From(L).ChildEnvironment(L);
  return spec;
}

std::string CommandText(lua_State* L) {
  if (lua_type(L, 1) != LUA_TTABLE) return lua_tostring(L, 1);
  std::string out;
  for (lua_Integer i = 1, n = luaL_len(L, 1); i <= n; ++i) {
    lua_geti(L, 1, i);
    out += (i > 1 ? " " : "") + std::string(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return out;
}

std::string ExitText(const ProcessExit& e) {
  std::string text = "exit code " + std::to_string(e.exit_code);
  if (!e.err.empty()) text += " (stderr: " + Clip(e.err) + ")";
  return text;
}

// One command assertion: `ok(exit)` decides, `found(exit)` describes a failure.
int CommandAssertion(lua_State* L, const char* fn, int arity, std::string expected,
                     std::function<bool(const ProcessExit&)> ok,
                     std::function<std::string(const ProcessExit&)> found) {
  Begin(L, fn, arity);
  ProcessSpec spec = CommandArg(L, fn);
  std::string cmd = CommandText(L);
  expected = "`" + cmd + "` " + expected;
  return RunChecked(L, std::move(spec),
                    [fn, expected, ok, found](lua_State* co, const ProcessExit& e) {
                      if (!ok(e)) Fail(co, fn, expected, found(e));
                      lua_pushboolean(co, 1);
                      return 1;
                    });
}

int CommandSucceeds(lua_State* L) {
  return CommandAssertion(
      L, "command_succeeds", 1, "to succeed", [](const ProcessExit& e) { return e.exit_code == 0; },
      ExitText);
}

int CommandFails(lua_State* L) {
  return CommandAssertion(
      L, "command_fails", 1, "to fail", [](const ProcessExit& e) { return e.exit_code != 0; },
      [](const ProcessExit&) { return std::string("exit code 0"); });
}

int CommandStdoutContains(lua_State* L) {
  std::string text = CheckString(L, "command_stdout_contains", 2, "text");
  return CommandAssertion(
      L, "command_stdout_contains", 2, "to print " + Quote(text),
      [text](const ProcessExit& e) { return e.out.find(text) != std::string::npos; },
      [](const ProcessExit& e) {
        return "stdout " + Quote(Clip(e.out)) + " (exit code " + std::to_string(e.exit_code) + ")";
      });
}

int CommandStderrIsEmpty(lua_State* L) {
  return CommandAssertion(
      L, "command_stderr_is_empty", 1, "to print nothing on stderr",
      [](const ProcessExit& e) { return e.err.empty(); },
      [](const ProcessExit& e) { return "stderr " + Quote(Clip(e.err)); });
}

std::string TrimNewlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

int CommandOutputEquals(lua_State* L) {
  std::string want = TrimNewlines(CheckString(L, "command_output_equals", 2, "expected output"));
  return CommandAssertion(
      L, "command_output_equals", 2, "to print " + Quote(want),
      [want](const ProcessExit& e) { return TrimNewlines(e.out) == want; },
      [](const ProcessExit& e) { return Quote(Clip(e.out, 400)); });
}

// --- ping and services ----------------------------------------------------------------------

// `ping -c1 -W2 HOST` (ICMP needs a raw socket, which ping's own privileges provide).
int Ping(lua_State* L) {
  Begin(L, "ping", 1);
  std::string host = CheckString(L, "ping", 1, "host");
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c",
               "command -v ping >/dev/null 2>&1 || exit 127; exec ping -c1 -W2 -- \"$1\"", "sh",
               host};
  spec.env = Runtime::From(L).ChildEnvironment(L);
  return RunChecked(L, std::move(spec), [host](lua_State* co, const ProcessExit& e) {
    if (e.exit_code == 127) {
      luaL_error(co, "infra_test.ping: the ping command is not installed (needed to ping %s)",
                 host.c_str());
    }
    if (e.exit_code != 0) {
      std::string why = Clip(e.err.empty() ? e.out : e.err);
      Fail(co, "ping", host + " to answer a ping",
           "no answer" + (why.empty() ? "" : " (" + why + ")"));
    }
    lua_pushboolean(co, 1);
    return 1;
  });
}

// systemctl is-active / is-enabled NAME: exit 0 passes; its output says the state otherwise.
int ServiceCheck(lua_State* L, const char* fn, const char* verb, const char* expected_state) {
  Begin(L, fn, 1);
  std::string name = CheckString(L, fn, 1, "service name");
  struct stat st {};
  if (stat("/run/systemd/system", &st) != 0) {
    luaL_error(L,
               "infra_test.%s: systemd is not running on this machine (/run/systemd/system is "
               "absent), so service %s cannot be checked",
               fn, name.c_str());
  }
  ProcessSpec spec;
  spec.argv = {"systemctl", verb, "--", name};
  spec.env = Runtime::From(L).ChildEnvironment(L);
  std::string expected = "service " + name + " to be " + expected_state;
  return RunChecked(L, std::move(spec), [fn, expected](lua_State* co, const ProcessExit& e) {
    if (e.exit_code != 0) {
      std::string state = Clip(e.out.empty() ? e.err : e.out);
      Fail(co, fn, expected, state.empty() ? ExitText(e) : state);
    }
    lua_pushboolean(co, 1);
    return 1;
  });
}

int ServiceIsRunning(lua_State* L) {
  return ServiceCheck(L, "service_is_running", "is-active", "active");
}

int ServiceIsEnabled(lua_State* L) {
  return ServiceCheck(L, "service_is_enabled", "is-enabled", "enabled");
}

// --- packages -------------------------------------------------------------------------------

// Checks the package, then hands its version (or nullopt) to `decide`. dpkg and apk are read
// directly; rpm systems ask `rpm -q`.
int PackageCheck(lua_State* L, const char* fn,
                 std::function<void(lua_State*, const char*, std::optional<std::string>)> decide) {
  std::string name = CheckString(L, fn, 1, "package name");
  PackageInfo info = FindPackage(name);
  if (info.manager) {
    decide(L, info.manager, info.version);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (!OnPath("rpm")) {
    luaL_error(L, "infra_test.%s: no package database found (dpkg, apk or rpm) to look up %s", fn,
               name.c_str());
  }
  ProcessSpec spec;
  spec.argv = {"rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", "--", name};
  spec.env = Runtime::From(L).ChildEnvironment(L);
  return RunChecked(L, std::move(spec), [decide](lua_State* co, const ProcessExit& e) {
    decide(co, "rpm", e.exit_code == 0 ? std::optional<std::string>(e.out) : std::nullopt);
    lua_pushboolean(co, 1);
    return 1;
  });
}

int PackageIsInstalled(lua_State* L) {
  Begin(L, "package_is_installed", 1);
  std::string name = CheckString(L, "package_is_installed", 1, "package name");
  return PackageCheck(L, "package_is_installed",
                      [name](lua_State* co, const char* manager, std::optional<std::string> v) {
                        if (!v) {
                          Fail(co, "package_is_installed", "package " + name + " to be installed",
                               std::string("it not installed (") + manager + ")");
                        }
                      });
}

int PackageVersion(lua_State* L) {
  Begin(L, "package_version", 2);
  std::string name = CheckString(L, "package_version", 1, "package name");
  std::string want = CheckString(L, "package_version", 2, "version");
  std::string expected = "package " + name + " at version " + want;
  return PackageCheck(L, "package_version",
                      [expected, want](lua_State* co, const char*, std::optional<std::string> v) {
                        if (!v) Fail(co, "package_version", expected, "it not installed");
                        if (!VersionMatches(*v, want)) {
                          Fail(co, "package_version", expected, "version " + *v);
                        }
                      });
}

// --- HTTP -----------------------------------------------------------------------------------

// GET `url` (redirects followed) and let `check` judge the final response.
int HttpCheck(lua_State* L, const char* fn, std::string expected,
              std::function<std::optional<std::string>(const HttpResult&)> check) {
  HttpRequest req;
  req.url = CheckString(L, fn, 1, "url");
  req.timeout = kHttpTimeout;
  expected += " from " + req.url;
  return AwaitHttp(L, std::move(req), [fn, expected, check](lua_State* co, HttpResult& r) {
    if (!r.ok()) Fail(co, fn, expected, "no response (" + r.error + ")");
    if (auto found = check(r)) Fail(co, fn, expected, *found);
    lua_pushboolean(co, 1);
    return 1;
  });
}

int HttpStatus(lua_State* L) {
  Begin(L, "http_status", 2);
  lua_Integer want = lua_isnoneornil(L, 2) ? 200 : CheckInteger(L, "http_status", 2, "status");
  return HttpCheck(L, "http_status", "HTTP status " + std::to_string(want),
                   [want](const HttpResult& r) -> std::optional<std::string> {
                     if (r.status == want) return std::nullopt;
                     return "status " + std::to_string(r.status);
                   });
}

int HttpContains(lua_State* L) {
  Begin(L, "http_contains", 2);
  std::string text = CheckString(L, "http_contains", 2, "text");
  return HttpCheck(L, "http_contains", "a body containing " + Quote(text),
                   [text](const HttpResult& r) -> std::optional<std::string> {
                     if (r.body.find(text) != std::string::npos) return std::nullopt;
                     return "status " + std::to_string(r.status) + " and a body without it (" +
                            Quote(Clip(r.body)) + ")";
                   });
}

// --- accounts -------------------------------------------------------------------------------

int UserExists(lua_State* L) {
  Begin(L, "user_exists", 1);
  std::string name = CheckString(L, "user_exists", 1, "user name");
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* found = nullptr;
  int rc = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (!found) {
    Fail(L, "user_exists", "user " + name + " to exist",
         rc == 0 ? "no such user" : "an error looking it up (" + ErrnoText(rc) + ")");
  }
  lua_pushboolean(L, 1);
  return 1;
}

int GroupExists(lua_State* L) {
  Begin(L, "group_exists", 1);
  std::string name = CheckString(L, "group_exists", 1, "group name");
  std::vector<char> buf(16384);
  struct group gr {};
  struct group* found = nullptr;
  int rc = getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found);
  if (!found) {
    Fail(L, "group_exists", "group " + name + " to exist",
         rc == 0 ? "no such group" : "an error looking it up (" + ErrnoText(rc) + ")");
  }
  lua_pushboolean(L, 1);
  return 1;
}

}  // namespace

std::map<std::string, int> TakeAssertionCounts(lua_State* L) {
  std::map<std::string, int> counts;
  lua_getfield(L, LUA_REGISTRYINDEX, kCountsKey);
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      counts[lua_tostring(L, -2)] = static_cast<int>(lua_tointeger(L, -1));
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, kCountsKey);
  return counts;
}

const Module& InfraTestModule() {
  static const Module m = {
      "infra_test",
      "Assertions about the machine (files, ports, processes, commands, packages, HTTP, users); "
      "each raises 'expected X, found Y' on failure",
      {
          {"file_exists", FileExists, "file_exists(path, agent?) -> true", "The path exists"},
          {"is_directory", IsDirectory, "is_directory(path, agent?) -> true",
           "The path is a directory"},
          {"is_file", IsFile, "is_file(path, agent?) -> true", "The path is a regular file"},
          {"file_contains", FileContains, "file_contains(path, text, agent?) -> true",
           "The file contains the text (plain substring)"},
          {"file_mode", FileMode, "file_mode(path, mode, agent?) -> true",
           "The permission bits equal mode (\"600\", \"0600\" or 600)"},
          {"file_owner", FileOwner, "file_owner(path, user, agent?) -> true",
           "The file's owner is user (name or uid)"},
          {"file_group", FileGroup, "file_group(path, group, agent?) -> true",
           "The file's group is group (name or gid)"},
          {"file_size", FileSize, "file_size(path, bytes, agent?) -> true",
           "The file has exactly this many bytes"},
          {"port_is_listening", PortIsListening, "port_is_listening(port, agent?) -> true",
           "A TCP socket listens on the port, or a UDP socket is bound to it"},
          {"port_is_tcp", PortIsTcp, "port_is_tcp(port, agent?) -> true",
           "A TCP socket listens on the port"},
          {"port_is_udp", PortIsUdp, "port_is_udp(port, agent?) -> true",
           "A UDP socket is bound to the port"},
          {"can_connect", CanConnect, "can_connect(host, port, timeout?, agent?) -> true",
           "A TCP connection succeeds within timeout (default 3s)"},
          {"ping", Ping, "ping(host, agent?) -> true", "The host answers one ping (ping -c1 -W2)"},
          {"service_is_running", ServiceIsRunning, "service_is_running(name, agent?) -> true",
           "systemctl is-active succeeds"},
          {"service_is_enabled", ServiceIsEnabled, "service_is_enabled(name, agent?) -> true",
           "systemctl is-enabled succeeds"},
          {"process_is_running", ProcessIsRunning, "process_is_running(name, agent?) -> true",
           "A process has this name (/proc/PID/comm) or has it in its command line"},
          {"process_count", ProcessCount, "process_count(name, count, agent?) -> true",
           "Exactly count processes match name"},
          {"command_succeeds", CommandSucceeds, "command_succeeds(cmd, agent?) -> true",
           "The command exits 0"},
          {"command_fails", CommandFails, "command_fails(cmd, agent?) -> true",
           "The command exits non-zero"},
          {"command_stdout_contains", CommandStdoutContains,
           "command_stdout_contains(cmd, text, agent?) -> true", "The command's stdout has text"},
          {"command_stderr_is_empty", CommandStderrIsEmpty,
           "command_stderr_is_empty(cmd, agent?) -> true", "The command prints nothing on stderr"},
          {"command_output_equals", CommandOutputEquals,
           "command_output_equals(cmd, expected, agent?) -> true",
           "The command's stdout equals expected (trailing newlines ignored)"},
          {"package_is_installed", PackageIsInstalled, "package_is_installed(name, agent?) -> true",
           "The package is installed (dpkg, apk, rpm)"},
          {"package_version", PackageVersion, "package_version(name, version, agent?) -> true",
           "The installed version is version or starts with it (\"5.2\" matches \"5.2.15-2\")"},
          {"http_status", HttpStatus, "http_status(url, status?, agent?) -> true",
           "A GET answers with this status (default 200), after redirects"},
          {"http_contains", HttpContains, "http_contains(url, text, agent?) -> true",
           "A GET's body contains text"},
          {"user_exists", UserExists, "user_exists(name, agent?) -> true", "The user exists"},
          {"group_exists", GroupExists, "group_exists(name, agent?) -> true", "The group exists"},
      },
  };
  return m;
}

}  // namespace sloth
