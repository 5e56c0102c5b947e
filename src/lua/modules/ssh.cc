// ssh: remote commands and file transfers (SFTP) over libssh.
//
// Every blocking libssh call runs on the runtime's thread pool, so goroutines can talk to many
// hosts at once. A libssh session must not be used by two threads at the same time, so each
// connection runs one operation at a time: the others wait in its queue on the loop thread
// (not on a pool thread, which would starve the pool).
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>

#include <lua.hpp>

#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/modules/ssh.h"
#include "lua/modules/ssh_loader.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

constexpr char kConnMeta[] = "sloth.ssh_connection";
constexpr char kExecResultMeta[] = "sloth.exec_result";  // exec's: results print as stdout
constexpr auto kDefaultConnectTimeout = std::chrono::seconds(30);
constexpr int kPollMillis = 100;  // how often a running command checks for cancel and timeout
constexpr size_t kChunk = 32 * 1024;

struct ConnectOptions {
  std::string host;
  int port = 22;
  std::string user;
  std::string key;  // private key file
  std::string passphrase;
  std::string password;
  std::string known_hosts;  // empty: ~/.ssh/known_hosts (and the system-wide file)
  bool insecure = false;
  Duration timeout = kDefaultConnectTimeout;
};

// One SSH session and the queue that serializes its operations. `busy`, `closed` and
// `waiting` belong to the loop thread; `session` and `sftp` to whichever operation runs.
struct Conn {
  const SshApi& api;  // libssh, loaded by the connect that made this
  ssh_session session = nullptr;
  sftp_session sftp = nullptr;  // opened by the first transfer
  std::string label;            // user@host:port, for messages
  bool busy = false;
  bool closed = false;
  std::deque<std::function<void()>> waiting;

  explicit Conn(const SshApi& api) : api(api) {}
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() { Disconnect(); }

  void Disconnect() {
    if (sftp) api.sftp_free(sftp);
    sftp = nullptr;
    if (session) {
      api.ssh_disconnect(session);
      api.ssh_free(session);
    }
    session = nullptr;
  }
};

using ConnPtr = std::shared_ptr<Conn>;

std::string CurrentUser() {
  if (const passwd* pw = getpwuid(geteuid())) return pw->pw_name;
  const char* user = getenv("USER");
  return user ? user : "root";
}

std::string HomeKnownHosts() {
  const char* home = getenv("HOME");
  if (!home || !*home) {
    const passwd* pw = getpwuid(geteuid());
    home = pw ? pw->pw_dir : "";
  }
  return std::string(home) + "/.ssh/known_hosts";
}

// ---- connecting (pool thread) ---------------------------------------------------------

struct ConnectResult {
  ConnPtr conn;
  std::string error;
  std::string warning;  // logged on the loop thread (insecure = true accepted a bad host key)
};

std::string Fingerprint(const SshApi& api, ssh_session s) {
  ssh_key key = nullptr;
  if (api.ssh_get_server_publickey(s, &key) != SSH_OK) return "unknown";
  unsigned char* hash = nullptr;
  size_t len = 0;
  std::string out = "unknown";
  if (api.ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &len) == 0) {
    char* text = api.ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len);
    if (text) out = text;
    api.ssh_string_free_char(text);
    api.ssh_clean_pubkey_hash(&hash);
  }
  api.ssh_key_free(key);
  return out;
}

// Empty when the server's key matches known_hosts; else why it is refused.
std::string CheckHostKey(const SshApi& api, ssh_session s, const ConnectOptions& o,
                         const std::string& label) {
  std::string file = o.known_hosts.empty() ? HomeKnownHosts() : o.known_hosts;
  std::string where = "host " + o.host + " port " + std::to_string(o.port);
  switch (api.ssh_session_is_known_server(s)) {
    case SSH_KNOWN_HOSTS_OK:
      return "";
    case SSH_KNOWN_HOSTS_CHANGED:
      return "the host key of " + where + " has CHANGED (" + Fingerprint(api, s) +
             " is not the key in " + file +
             "): someone may be intercepting the connection; fix known_hosts if the change "
             "is expected";
    case SSH_KNOWN_HOSTS_OTHER:
      return "the host key of " + where + " (" + Fingerprint(api, s) +
             ") is of another type than the one in " + file + "; fix known_hosts if expected";
    case SSH_KNOWN_HOSTS_UNKNOWN:
    case SSH_KNOWN_HOSTS_NOT_FOUND:
      return "the host key of " + where + " (" + Fingerprint(api, s) + ") is not in " + file +
             "; add it (ssh-keyscan -p " + std::to_string(o.port) + " " + o.host + " >> " + file +
             ") or pass insecure = true";
    case SSH_KNOWN_HOSTS_ERROR:
      break;
  }
  return "cannot check the host key of " + label + ": " + api.ssh_get_error(s);
}

// Tries the key file, then the password; with neither, the ssh-agent and the default keys.
std::string Authenticate(const SshApi& api, ssh_session s, const ConnectOptions& o,
                         const std::string& label) {
  std::string tried;
  if (!o.key.empty()) {
    ssh_key key = nullptr;
    if (api.ssh_pki_import_privkey_file(o.key.c_str(),
                                        o.passphrase.empty() ? nullptr : o.passphrase.c_str(),
                                        nullptr, nullptr, &key) != SSH_OK)
      return "cannot read the private key " + o.key + " (missing, unreadable or wrong passphrase)";
    int rc = api.ssh_userauth_publickey(s, nullptr, key);
    api.ssh_key_free(key);
    if (rc == SSH_AUTH_SUCCESS) return "";
    if (rc == SSH_AUTH_ERROR)
      return "authentication to " + label + " failed: " + api.ssh_get_error(s);
    tried = "key " + o.key;
  }
  if (!o.password.empty()) {
    int rc = api.ssh_userauth_password(s, nullptr, o.password.c_str());
    if (rc == SSH_AUTH_SUCCESS) return "";
    if (rc == SSH_AUTH_ERROR)
      return "authentication to " + label + " failed: " + api.ssh_get_error(s);
    tried += std::string(tried.empty() ? "" : ", ") + "password";
  }
  if (o.key.empty() && o.password.empty()) {
    if (getenv("SSH_AUTH_SOCK") && api.ssh_userauth_agent(s, nullptr) == SSH_AUTH_SUCCESS)
      return "";
    if (api.ssh_userauth_publickey_auto(s, nullptr, nullptr) == SSH_AUTH_SUCCESS) return "";
    tried = "ssh-agent and the default keys in ~/.ssh";
  }
  return "authentication to " + label + " failed (tried " + tried + ")";
}

ConnectResult Connect(const ConnectOptions& o) {
  auto loaded = LoadSsh();
  if (!loaded.ok()) return {nullptr, loaded.error(), ""};
  const SshApi& api = **loaded;
  auto conn = std::make_shared<Conn>(api);
  conn->label = o.user + "@" + o.host + ":" + std::to_string(o.port);
  ssh_session s = conn->session = api.ssh_new();
  if (!s) return {nullptr, "ssh: out of memory", ""};
  bool no_config = false;  // only what the workflow says counts, not ~/.ssh/config
  long timeout =
      std::max<long>(1, std::chrono::duration_cast<std::chrono::seconds>(o.timeout).count());
  api.ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no_config);
  api.ssh_options_set(s, SSH_OPTIONS_HOST, o.host.c_str());
  api.ssh_options_set(s, SSH_OPTIONS_PORT, &o.port);
  api.ssh_options_set(s, SSH_OPTIONS_USER, o.user.c_str());
  api.ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeout);
  if (!o.known_hosts.empty()) {
    // An explicit file is the only one that counts.
    api.ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, o.known_hosts.c_str());
    api.ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
  }
  if (api.ssh_connect(s) != SSH_OK)
    return {nullptr, "cannot connect to " + conn->label + ": " + api.ssh_get_error(s), ""};
  ConnectResult r;
  if (std::string bad = CheckHostKey(api, s, o, conn->label); !bad.empty()) {
    if (!o.insecure) return {nullptr, bad, ""};
    r.warning = "insecure = true: accepting " + conn->label + " although " + bad;
  }
  if (std::string err = Authenticate(api, s, o, conn->label); !err.empty())
    return {nullptr, err, ""};
  r.conn = std::move(conn);
  return r;
}

// ---- the per-connection queue (loop thread) --------------------------------------------

void Release(const ConnPtr& conn) {
  conn->busy = false;
  if (conn->waiting.empty()) return;
  auto next = std::move(conn->waiting.front());
  conn->waiting.pop_front();
  conn->busy = true;
  next();
}

void Acquire(const ConnPtr& conn, std::function<void()> job) {
  if (conn->busy) {
    conn->waiting.push_back(std::move(job));
    return;
  }
  conn->busy = true;
  job();
}

using Cancelled = std::atomic<bool>;

// Runs `work` on the pool when the connection is free, then `push` in the waiting coroutine.
// A task cancelled while its operation waits in the queue skips the operation.
template <typename T>
int RunOnConn(lua_State* L, ConnPtr conn, std::function<T(Conn&, const Cancelled&)> work,
              std::function<int(lua_State*, T&)> push) {
  Runtime& rt = Runtime::From(L);
  auto cancelled = std::make_shared<Cancelled>(false);
  auto start = [&rt, conn, work = std::move(work), push = std::move(push),
                cancelled](Runtime::Done done) {
    Acquire(conn, [&rt, conn, work, push, cancelled, done] {
      if (*cancelled) return Release(conn);
      auto result = std::make_shared<T>();
      rt.pool().Submit([conn, work, result, cancelled] { *result = work(*conn, *cancelled); },
                       [conn, push, result, done] {
                         done([push, result](lua_State* co) { return push(co, *result); });
                         Release(conn);
                       });
    });
  };
  return rt.Await(L, std::move(start), [cancelled] { *cancelled = true; });
}

// ---- exec (pool thread) ----------------------------------------------------------------

struct ExecResult {
  std::string out, err, error;
  int exit_code = -1;
  bool timed_out = false;
  Duration elapsed{};
};

struct ExecRequest {
  std::string command;
  std::optional<std::string> stdin_data;
  std::optional<Duration> timeout;
  bool run_in_check_mode = false;  // opts.check_mode = false
};

// Reads both streams until the remote side closes them, the deadline passes or the task is
// cancelled (then the remote command gets SIGTERM).
void ReadOutput(const SshApi& api, ssh_channel ch, const ExecRequest& req,
                const Cancelled& cancelled, ExecResult& r) {
  auto start = Clock::now();
  char buf[kChunk];
  for (;;) {
    bool late = req.timeout && Clock::now() - start > *req.timeout;
    if (cancelled || late) {
      r.timed_out = late;
      api.ssh_channel_request_send_signal(ch, "TERM");
      r.error = late ? "" : "cancelled";
      return;
    }
    int n = api.ssh_channel_read_timeout(ch, buf, sizeof buf, 0, kPollMillis);
    if (n > 0) r.out.append(buf, n);
    int m;
    while ((m = api.ssh_channel_read_nonblocking(ch, buf, sizeof buf, 1)) > 0) r.err.append(buf, m);
    if (n == SSH_ERROR || m == SSH_ERROR) {
      r.error = "reading the command's output failed";
      return;
    }
    // Both reads answer 0 or SSH_EOF once the remote side has sent everything.
    bool drained = n <= 0 && m <= 0;
    if (drained && (n == SSH_EOF || api.ssh_channel_is_eof(ch) || api.ssh_channel_is_closed(ch)))
      return;
  }
}

std::string WriteAll(const SshApi& api, ssh_channel ch, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    int n = api.ssh_channel_write(ch, data.data() + done,
                                  static_cast<uint32_t>(std::min(kChunk, data.size() - done)));
    if (n == SSH_ERROR) return "writing stdin failed";
    done += n;
  }
  return "";
}

ExecResult Exec(Conn& c, const ExecRequest& req, const Cancelled& cancelled) {
  ExecResult r;
  auto start = Clock::now();
  if (!c.session) {
    r.error = "the connection is closed";
    return r;
  }
  ssh_channel ch = c.api.ssh_channel_new(c.session);
  if (!ch || c.api.ssh_channel_open_session(ch) != SSH_OK ||
      c.api.ssh_channel_request_exec(ch, req.command.c_str()) != SSH_OK) {
    r.error = std::string("cannot start the command: ") + c.api.ssh_get_error(c.session);
    if (ch) c.api.ssh_channel_free(ch);
    return r;
  }
  if (req.stdin_data) r.error = WriteAll(c.api, ch, *req.stdin_data);
  if (r.error.empty()) c.api.ssh_channel_send_eof(ch);
  if (r.error.empty()) ReadOutput(c.api, ch, req, cancelled, r);
  if (r.error.empty() && !r.timed_out) r.exit_code = c.api.ssh_channel_get_exit_status(ch);
  if (r.timed_out) r.err += "\ncommand timed out after " + FormatHuman(*req.timeout);
  c.api.ssh_channel_close(ch);
  c.api.ssh_channel_free(ch);
  r.elapsed = std::chrono::duration_cast<Duration>(Clock::now() - start);
  return r;
}

// ---- transfers (pool thread) -----------------------------------------------------------

struct TransferResult {
  std::string error;
  bool changed = false;
  size_t bytes = 0;
};

struct TransferRequest {
  std::string local, remote;  // local is absolute
  std::optional<int> mode;
  bool check = false;  // report only
};

std::string SftpError(Conn& c, const std::string& what) {
  std::string detail = c.api.ssh_get_error(c.session);
  if (c.sftp) {
    int code = c.api.sftp_get_error(c.sftp);
    if (code == SSH_FX_NO_SUCH_FILE) detail = "no such file";
    if (code == SSH_FX_PERMISSION_DENIED) detail = "permission denied";
  }
  return what + ": " + detail;
}

std::string OpenSftp(Conn& c) {
  if (!c.session) return "the connection is closed";
  if (c.sftp) return "";
  c.sftp = c.api.sftp_new(c.session);
  if (!c.sftp) return SftpError(c, "cannot start SFTP");
  if (c.api.sftp_init(c.sftp) != SSH_OK) {
    std::string err = SftpError(c, "cannot start SFTP (is the sftp subsystem enabled?)");
    c.api.sftp_free(c.sftp);
    c.sftp = nullptr;
    return err;
  }
  return "";
}

// The remote file's content; nullopt with `error` empty when it does not exist.
std::optional<std::string> ReadRemote(Conn& c, const std::string& path, std::string& error) {
  sftp_file f = c.api.sftp_open(c.sftp, path.c_str(), O_RDONLY, 0);
  if (!f) {
    if (c.api.sftp_get_error(c.sftp) != SSH_FX_NO_SUCH_FILE)
      error = SftpError(c, "cannot open " + path);
    return std::nullopt;
  }
  std::string data;
  char buf[kChunk];
  ssize_t n;
  while ((n = c.api.sftp_read(f, buf, sizeof buf)) > 0) data.append(buf, n);
  c.api.sftp_close(f);
  if (n < 0) {
    error = SftpError(c, "cannot read " + path);
    return std::nullopt;
  }
  return data;
}

std::string WriteRemote(Conn& c, const std::string& path, const std::string& data, int mode) {
  // Written next to the target and renamed over it, so readers never see half a file.
  std::string tmp = path + ".sloth-tmp";
  sftp_file f = c.api.sftp_open(c.sftp, tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (!f) return SftpError(c, "cannot create " + tmp);
  std::string err;
  for (size_t done = 0; done < data.size() && err.empty();) {
    ssize_t n = c.api.sftp_write(f, data.data() + done, std::min(kChunk, data.size() - done));
    if (n <= 0)
      err = SftpError(c, "cannot write " + tmp);
    else
      done += n;
  }
  c.api.sftp_close(f);
  if (err.empty() && c.api.sftp_chmod(c.sftp, tmp.c_str(), mode) != 0)
    err = SftpError(c, "cannot chmod " + tmp);
  if (err.empty() && c.api.sftp_rename(c.sftp, tmp.c_str(), path.c_str()) != 0)
    err = SftpError(c, "cannot rename " + tmp + " to " + path);
  if (!err.empty()) c.api.sftp_unlink(c.sftp, tmp.c_str());
  return err;
}

std::optional<std::string> ReadLocal(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string WriteLocal(const std::string& path, const std::string& data, int mode) {
  std::string tmp = path + ".sloth-tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << data;
    if (!out.flush()) return "cannot write " + tmp + ": " + std::strerror(errno);
  }
  if (chmod(tmp.c_str(), mode) != 0 || rename(tmp.c_str(), path.c_str()) != 0) {
    std::string err = "cannot write " + path + ": " + std::strerror(errno);
    unlink(tmp.c_str());
    return err;
  }
  return "";
}

TransferResult Upload(Conn& c, const TransferRequest& req) {
  TransferResult r;
  struct stat st {};
  auto data = ReadLocal(req.local);
  if (!data || stat(req.local.c_str(), &st) != 0) {
    r.error = "cannot read " + req.local;
    return r;
  }
  if ((r.error = OpenSftp(c)) != "") return r;
  r.bytes = data->size();
  int mode = req.mode.value_or(st.st_mode & 07777);
  sftp_attributes attrs = c.api.sftp_stat(c.sftp, req.remote.c_str());
  if (attrs) {
    if (!req.mode) mode = attrs->permissions & 07777;  // keep the remote file's mode
    bool same_size = attrs->size == data->size();
    bool same_mode = (attrs->permissions & 07777) == static_cast<unsigned>(mode);
    c.api.sftp_attributes_free(attrs);
    if (same_size && same_mode) {
      auto remote = ReadRemote(c, req.remote, r.error);
      if (!r.error.empty()) return r;
      if (remote == data) return r;  // already there: nothing to do
    }
  }
  r.changed = true;
  if (!req.check) r.error = WriteRemote(c, req.remote, *data, mode);
  return r;
}

TransferResult Download(Conn& c, const TransferRequest& req) {
  TransferResult r;
  if ((r.error = OpenSftp(c)) != "") return r;
  auto data = ReadRemote(c, req.remote, r.error);
  if (!data) {
    if (r.error.empty()) r.error = "cannot download " + req.remote + ": no such file";
    return r;
  }
  r.bytes = data->size();
  struct stat st {};
  bool exists = stat(req.local.c_str(), &st) == 0;
  if (exists && !req.mode && ReadLocal(req.local) == data) return r;
  r.changed = true;
  int mode = req.mode.value_or(exists ? st.st_mode & 07777 : 0644);
  if (!req.check) r.error = WriteLocal(req.local, *data, mode);
  return r;
}

// ---- Lua side --------------------------------------------------------------------------

ConnPtr& CheckConnAt(lua_State* L, int index) {
  return *static_cast<ConnPtr*>(luaL_checkudata(L, index, kConnMeta));
}

// The open connection at `index`; raises when it was closed.
ConnPtr OpenConn(lua_State* L, int index, const char* fn) {
  ConnPtr& conn = CheckConnAt(L, index);
  if (!conn || conn->closed) luaL_error(L, "ssh.%s: the connection is closed", fn);
  return conn;
}

int ConnectionGc(lua_State* L) {
  CheckConnAt(L, 1).~ConnPtr();  // an operation still running keeps its own reference
  return 0;
}

int ConnectionToString(lua_State* L) {
  ConnPtr& conn = CheckConnAt(L, 1);
  lua_pushfstring(L, "ssh connection %s%s", conn ? conn->label.c_str() : "?",
                  conn && conn->closed ? " (closed)" : "");
  return 1;
}

ConnectOptions ReadConnectOptions(lua_State* L) {
  ConnectOptions o;
  if (lua_type(L, 1) == LUA_TSTRING) {
    o.host = lua_tostring(L, 1);
  } else {
    luaL_checktype(L, 1, LUA_TTABLE);
    o.host = OptString(L, 1, "host").value_or("");
    if (auto port = OptNumber(L, 1, "port")) o.port = static_cast<int>(*port);
    o.user = OptString(L, 1, "user").value_or(OptString(L, 1, "username").value_or(""));
    o.key = OptString(L, 1, "key").value_or(OptString(L, 1, "key_file").value_or(""));
    o.passphrase = OptString(L, 1, "passphrase").value_or("");
    o.password = OptString(L, 1, "password").value_or("");
    o.known_hosts = OptString(L, 1, "known_hosts").value_or("");
    o.insecure = OptBool(L, 1, "insecure").value_or(false);
    o.timeout = OptDuration(L, 1, "timeout").value_or(o.timeout);
  }
  if (o.host.empty()) luaL_error(L, "ssh.connect: host is required");
  if (o.port <= 0 || o.port > 65535) luaL_error(L, "ssh.connect: port must be 1..65535");
  if (o.user.empty()) o.user = CurrentUser();
  Runtime& rt = Runtime::From(L);
  if (!o.key.empty()) o.key = rt.ResolvePath(L, o.key);
  if (!o.known_hosts.empty()) o.known_hosts = rt.ResolvePath(L, o.known_hosts);
  if (!o.password.empty()) rt.redactor().Add(o.password);
  if (!o.passphrase.empty()) rt.redactor().Add(o.passphrase);
  return o;
}

// ssh.connect{host, port, user, key, password, known_hosts, insecure, timeout} -> connection
int SshConnect(lua_State* L) {
  ConnectOptions o = ReadConnectOptions(L);
  return Runtime::From(L).AwaitBlocking<ConnectResult>(
      L, [o] { return Connect(o); },
      [](lua_State* co, ConnectResult& r) {
        if (!r.conn) return luaL_error(co, "ssh.connect: %s", r.error.c_str());
        if (!r.warning.empty()) Runtime::From(co).Log(co, LogLevel::kWarn, "ssh: " + r.warning);
        auto* slot = static_cast<ConnPtr*>(lua_newuserdatauv(co, sizeof(ConnPtr), 0));
        new (slot) ConnPtr(std::move(r.conn));
        luaL_setmetatable(co, kConnMeta);
        return 1;
      });
}

int PushExecResult(lua_State* L, ExecResult& r, const std::string& label) {
  if (!r.error.empty()) return luaL_error(L, "ssh.exec on %s: %s", label.c_str(), r.error.c_str());
  lua_createtable(L, 0, 6);
  lua_pushlstring(L, r.out.data(), r.out.size());
  lua_setfield(L, -2, "stdout");
  lua_pushlstring(L, r.err.data(), r.err.size());
  lua_setfield(L, -2, "stderr");
  lua_pushinteger(L, r.exit_code);
  lua_setfield(L, -2, "exit_code");
  lua_pushboolean(L, r.exit_code == 0);
  lua_setfield(L, -2, "success");
  lua_pushinteger(L, ToMillis(r.elapsed));
  lua_setfield(L, -2, "duration_ms");
  if (r.timed_out) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "timed_out");
  }
  luaL_setmetatable(L, kExecResultMeta);
  return 1;
}

// Runs `req` on the connection at `conn_index`.
int DoExec(lua_State* L, int conn_index, ExecRequest req) {
  ConnPtr conn = OpenConn(L, conn_index, "exec");
  Runtime& rt = Runtime::From(L);
  if (rt.CheckMode(L) && !req.run_in_check_mode)
    return luaL_error(
        L,
        "ssh.exec: refusing to run '%s' on %s in check mode (its effect cannot be "
        "predicted; use :check_mode(false) on the task or check_mode = false to run it anyway)",
        req.command.c_str(), conn->label.c_str());
  rt.Log(L, LogLevel::kDebug, "ssh " + conn->label + ": " + req.command);
  std::string label = conn->label;
  return RunOnConn<ExecResult>(
      L, conn, [req](Conn& c, const Cancelled& cancelled) { return Exec(c, req, cancelled); },
      [label](lua_State* co, ExecResult& r) { return PushExecResult(co, r, label); });
}

void ReadExecOptions(lua_State* L, int index, ExecRequest& req) {
  if (lua_isnoneornil(L, index)) return;
  luaL_checktype(L, index, LUA_TTABLE);
  req.stdin_data = OptString(L, index, "stdin");
  req.timeout = OptDuration(L, index, "timeout");
  if (auto c = OptBool(L, index, "check_mode")) req.run_in_check_mode = !*c;
}

// conn:exec(cmd, opts?) -> {stdout, stderr, exit_code, success, duration_ms}
int ConnExec(lua_State* L) {
  ExecRequest req;
  req.command = luaL_checkstring(L, 2);
  ReadExecOptions(L, 3, req);
  return DoExec(L, 1, std::move(req));
}

int PushTransfer(lua_State* L, TransferResult& r, const char* fn, bool check) {
  if (!r.error.empty()) return luaL_error(L, "ssh.%s: %s", fn, r.error.c_str());
  lua_createtable(L, 0, 4);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "success");
  lua_pushboolean(L, r.changed);
  lua_setfield(L, -2, "changed");
  lua_pushinteger(L, static_cast<lua_Integer>(r.bytes));
  lua_setfield(L, -2, "bytes");
  if (check) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "skipped");
  }
  return 1;
}

int DoTransfer(lua_State* L, int conn_index, TransferRequest req, bool upload) {
  const char* fn = upload ? "upload" : "download";
  ConnPtr conn = OpenConn(L, conn_index, fn);
  Runtime& rt = Runtime::From(L);
  req.check = rt.CheckMode(L);
  std::string what = upload ? req.local + " to " + conn->label + ":" + req.remote
                            : conn->label + ":" + req.remote + " to " + req.local;
  return RunOnConn<TransferResult>(
      L, conn,
      [req, upload](Conn& c, const Cancelled&) {
        return upload ? Upload(c, req) : Download(c, req);
      },
      [fn, what, check = req.check](lua_State* co, TransferResult& r) {
        if (r.error.empty() && (r.changed || check)) {
          std::string verb = std::string(check ? "[check] would " : "") + fn;
          Runtime::From(co).Log(co, LogLevel::kInfo,
                                "ssh: " + verb + " " + what + (r.changed ? "" : " (unchanged)"));
        }
        return PushTransfer(co, r, fn, check);
      });
}

std::optional<int> ReadMode(lua_State* L, int index) {
  if (lua_isnoneornil(L, index)) return std::nullopt;
  luaL_checktype(L, index, LUA_TTABLE);
  if (lua_getfield(L, index, "mode") == LUA_TNIL) {
    lua_pop(L, 1);
    return std::nullopt;
  }
  int mode = lua_type(L, -1) == LUA_TSTRING
                 ? static_cast<int>(std::strtol(lua_tostring(L, -1), nullptr, 8))
                 : static_cast<int>(luaL_checkinteger(L, -1));
  lua_pop(L, 1);
  return mode & 07777;
}

// conn:upload(local, remote, opts?) -> {success, changed, bytes}
int ConnUpload(lua_State* L) {
  TransferRequest req;
  req.local = Runtime::From(L).ResolvePath(L, luaL_checkstring(L, 2));
  req.remote = luaL_checkstring(L, 3);
  req.mode = ReadMode(L, 4);
  return DoTransfer(L, 1, std::move(req), true);
}

// conn:download(remote, local, opts?) -> {success, changed, bytes}
int ConnDownload(lua_State* L) {
  TransferRequest req;
  req.remote = luaL_checkstring(L, 2);
  req.local = Runtime::From(L).ResolvePath(L, luaL_checkstring(L, 3));
  req.mode = ReadMode(L, 4);
  return DoTransfer(L, 1, std::move(req), false);
}

// conn:close(): waits for the operations queued before it, then disconnects.
int ConnClose(lua_State* L) {
  ConnPtr& conn = CheckConnAt(L, 1);
  if (!conn || conn->closed) return 0;
  conn->closed = true;
  return RunOnConn<bool>(
      L, conn,
      [](Conn& c, const Cancelled&) {
        c.Disconnect();
        return true;
      },
      [](lua_State*, bool&) { return 0; });
}

// The table forms of the seed: ssh.exec{connection=, command=} and friends. Moves the
// connection to stack index 1 (as for the methods).
void TableArgs(lua_State* L, const char* fn) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "connection");
  if (!luaL_testudata(L, -1, kConnMeta))
    luaL_error(L, "ssh.%s: connection must be a connection from ssh.connect", fn);
  lua_insert(L, 1);  // conn opts
}

std::string RequiredField(lua_State* L, int index, const char* field, const char* fn) {
  auto value = OptString(L, index, field);
  if (!value) luaL_error(L, "ssh.%s: %s is required", fn, field);
  return *value;
}

// ssh.exec{connection, command, stdin?, timeout?}
int SshExec(lua_State* L) {
  TableArgs(L, "exec");
  ExecRequest req;
  req.command = RequiredField(L, 2, "command", "exec");
  ReadExecOptions(L, 2, req);
  return DoExec(L, 1, std::move(req));
}

int SshTransfer(lua_State* L, bool upload) {
  const char* fn = upload ? "upload" : "download";
  TableArgs(L, fn);
  TransferRequest req;
  req.local = Runtime::From(L).ResolvePath(L, RequiredField(L, 2, "local_path", fn));
  req.remote = RequiredField(L, 2, "remote_path", fn);
  req.mode = ReadMode(L, 2);
  return DoTransfer(L, 1, std::move(req), upload);
}

int SshUpload(lua_State* L) { return SshTransfer(L, true); }
int SshDownload(lua_State* L) { return SshTransfer(L, false); }

// ssh.close(connection)
int SshClose(lua_State* L) {
  if (lua_istable(L, 1)) TableArgs(L, "close");
  return ConnClose(L);
}

int SshSetup(lua_State* L) {
  static const luaL_Reg methods[] = {
      {"exec", ConnExec},         {"run", ConnExec},    {"upload", ConnUpload},
      {"download", ConnDownload}, {"close", ConnClose}, {nullptr, nullptr},
  };
  NewClass(L, kConnMeta, methods, ConnectionGc);
  luaL_getmetatable(L, kConnMeta);
  lua_pushcfunction(L, ConnectionToString);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  return 0;
}

// `run --ssh`: exec's command functions over one lazily opened connection. The command line is
// built here with shell quoting; cwd, env and user become `cd`, `export` and `sudo` on the host.
constexpr char kRemoteExecLua[] = R"lua(
local profile, check_mode, result_meta = ...
local conn
local function q(s) return "'" .. tostring(s):gsub("'", [['\'']]) .. "'" end
local function line_for(cmd, opts)
  local line
  if type(cmd) == "table" then
    local parts = {}
    for i, a in ipairs(cmd) do parts[i] = q(a) end
    line = table.concat(parts, " ")
  else
    line = tostring(cmd)
  end
  if opts.user then line = "sudo -n -u " .. q(opts.user) .. " -- sh -c " .. q(line) end
  if type(opts.env) == "table" then
    local names = {}
    for k in pairs(opts.env) do
      if not tostring(k):match("^[%a_][%w_]*$") then error("exec: bad variable name " .. tostring(k), 3) end
      names[#names + 1] = k
    end
    table.sort(names)
    for i = #names, 1, -1 do line = "export " .. names[i] .. "=" .. q(opts.env[names[i]]) .. "; " .. line end
  end
  local cwd = opts.cwd or opts.workdir
  if cwd then line = "cd " .. q(cwd) .. " && " .. line end
  return line
end
local function run(cmd, opts)
  opts = opts or {}
  local line = line_for(cmd, opts)
  if check_mode() and opts.check_mode ~= false then
    log.debug("[check] would run on " .. profile.host .. ": " .. line)
    return setmetatable({ stdout = "", stderr = "", exit_code = 0, success = true, duration_ms = 0,
                          skipped = true }, result_meta)
  end
  conn = conn or ssh.connect(profile)
  return conn:exec(line, { stdin = opts.stdin, timeout = opts.timeout, check_mode = false })
end
exec.run = run
exec.command = function(prog, ...) return run({ prog, ... }) end
exec.sh = function(script, opts) return run({ "sh", "-ec", script }, opts) end
exec.shell, exec.script = exec.sh, exec.sh
)lua";

int InCheckMode(lua_State* L) {
  lua_pushboolean(L, Runtime::From(L).CheckMode(L));
  return 1;
}

}  // namespace

Status UseSshForExec(Runtime& rt, const SshProfile& p) {
  lua_State* L = rt.state();
  if (luaL_loadbufferx(L, kRemoteExecLua, sizeof kRemoteExecLua - 1, "=[ssh exec]", "t") !=
      LUA_OK) {
    std::string err = lua_tostring(L, -1);
    lua_pop(L, 1);
    return Status::Error(err);
  }
  lua_createtable(L, 0, 6);
  lua_pushstring(L, p.host.c_str());
  lua_setfield(L, -2, "host");
  lua_pushinteger(L, p.port);
  lua_setfield(L, -2, "port");
  for (auto [field, value] :
       {std::pair{"user", &p.user}, {"key", &p.key}, {"known_hosts", &p.known_hosts}}) {
    if (value->empty()) continue;
    lua_pushstring(L, value->c_str());
    lua_setfield(L, -2, field);
  }
  lua_pushcfunction(L, InCheckMode);
  luaL_getmetatable(L, kExecResultMeta);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
    std::string err = lua_tostring(L, -1);
    lua_pop(L, 1);
    return Status::Error(err);
  }
  return Status::Ok();
}

const Module& SshModule() {
  static const Module m = {
      "ssh",
      "Run commands on remote hosts and transfer files over SSH (libssh, SFTP)",
      {
          {"connect", SshConnect,
           "connect{host, port?, user?, key?, password?, known_hosts?, insecure?, timeout?} -> "
           "conn",
           "Open an SSH connection (host key checked against known_hosts); conn:exec(cmd, opts?), "
           "conn:upload(local, remote), conn:download(remote, local), conn:close()"},
          {"exec", SshExec, "exec{connection, command, stdin?, timeout?} -> result",
           "Run a command on the connection: {stdout, stderr, exit_code, success, duration_ms}"},
          {"upload", SshUpload, "upload{connection, local_path, remote_path, mode?} -> result",
           "Copy a local file to the remote host over SFTP: {success, changed, bytes}"},
          {"download", SshDownload,
           "download{connection, remote_path, local_path, mode?} -> result",
           "Copy a remote file to a local path over SFTP: {success, changed, bytes}"},
          {"close", SshClose, "close(conn)", "Close a connection (also closed when collected)"},
      },
      {},
      nullptr,
      SshSetup,
  };
  return m;
}

}  // namespace sloth
