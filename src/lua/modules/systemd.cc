// systemd: services managed through systemctl, always as argument lists (never a shell); changes
// run as root directly or through `sudo -n`. Idempotent: start/stop/enable/disable ask
// is-active / is-enabled first and act only when the state differs; create_service writes the
// unit file atomically only when its text differs, and runs daemon-reload only then. In check
// mode the queries still run (they change nothing) but nothing else does, and the result says
// what would have happened.
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <lua.hpp>
#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/modules/atomic_write.h"
#include "lua/modules/host_util.h"
#include "lua/modules/stack.h"
#include "lua/modules/unified_diff.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

namespace stdfs = std::filesystem;

constexpr char kDefaultUnitDir[] = "/etc/systemd/system";
constexpr char kHeader[] = "# Managed by sloth-runner: changes made here are overwritten.\n";

// --- names ----------------------------------------------------------------------------------

bool HasUnitSuffix(const std::string& name) {
  static const char* const kSuffixes[] = {".service", ".socket", ".timer",     ".target",
                                          ".path",    ".mount",  ".automount", ".swap",
                                          ".slice",   ".scope",  ".device"};
  for (const char* s : kSuffixes)
    if (name.size() > std::strlen(s) && EndsWith(name, s)) return true;
  return false;
}

// "nginx" means nginx.service. Only systemd's own unit-name characters are accepted, so a
// name can never be read as an option, a path or anything but one argument.
std::string UnitName(lua_State* L, const std::string& fn, const std::string& name) {
  bool bad = name.empty() || name.size() > 255 || name.front() == '-' || name.front() == '.';
  for (unsigned char c : name)
    if (!std::isalnum(c) && !std::strchr(":-_.\\@", c)) bad = true;
  if (bad) luaL_error(L, "%s: bad unit name \"%s\"", fn.c_str(), name.c_str());
  return HasUnitSuffix(name) ? name : name + ".service";
}

// The unit named at index 1: a string, or the table's `name`.
std::string NameArg(lua_State* L, const std::string& fn) {
  std::optional<std::string> name;
  if (lua_type(L, 1) == LUA_TSTRING)
    name = lua_tostring(L, 1);
  else if (lua_type(L, 1) == LUA_TTABLE)
    name = OptString(L, 1, "name");
  if (!name) luaL_error(L, "%s: expected a unit name or a table with `name`", fn.c_str());
  return UnitName(L, fn, *name);
}

// --- systemctl ------------------------------------------------------------------------------

// What one call works on: its name for messages, systemctl's absolute path (so sudo, which
// resets PATH, runs the same program), and the unit.
struct Ctl {
  std::string fn;
  std::string systemctl;
  std::string unit;
};

// systemctl on the PATH the task's commands get (the workflow may have changed it).
std::optional<std::string> FindSystemctl(lua_State* L) {
  std::string path = "/usr/sbin:/usr/bin:/sbin:/bin";
  for (const auto& e : Runtime::From(L).ChildEnvironment(L))
    if (StartsWith(e, "PATH=")) path = e.substr(5);
  for (const auto& dir : Split(path, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/systemctl";
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return std::nullopt;
}

using Then = std::function<int(lua_State*, const ProcessExit&)>;

// Runs `systemctl args...`: queries as the task's user, changes with root rights.
int RunCtl(lua_State* L, const Ctl& c, const std::vector<std::string>& args, bool change,
           Then then) {
  std::vector<std::string> argv = {c.systemctl};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessSpec spec;
  if (change) {
    spec = PrivilegedSpec(L, std::move(argv));
  } else {
    spec.argv = std::move(argv);
    spec.env = Runtime::From(L).ChildEnvironment(L);
    spec.cwd = "/";
  }
  return RunHostCommand(L, std::move(spec), std::move(then));
}

int CommandFailed(lua_State* L, const Ctl& c, const std::vector<std::string>& args,
                  const ProcessExit& e) {
  std::string tail = CommandOutputTail(e);
  return PushFailure(L, c.fn + ": `systemctl " + Join(args, " ") + "` failed with exit code " +
                            std::to_string(e.exit_code) + (tail.empty() ? "" : ": " + tail));
}

std::string FirstLine(const std::string& text) {
  return std::string(Trim(std::string_view(text).substr(0, text.find('\n'))));
}

using StateThen = std::function<int(lua_State*, const std::string&)>;

// The unit's state as `systemctl is-active` prints it ("active", "inactive", "failed", ...).
// Empty output means systemctl could not answer at all (no running systemd, no bus).
int QueryActive(lua_State* L, const Ctl& c, StateThen then) {
  std::vector<std::string> args = {"is-active", c.unit};
  return RunCtl(L, c, args, false, [c, args, then](lua_State* co, const ProcessExit& e) {
    std::string state = FirstLine(e.out);
    if (state.empty()) return CommandFailed(co, c, args, e);
    return then(co, state);
  });
}

// The unit file's state as `systemctl is-enabled` prints it; "not-found" for a unit without a
// file (older systemctl versions only say so on stderr).
int QueryEnabled(lua_State* L, const Ctl& c, StateThen then) {
  std::vector<std::string> args = {"is-enabled", c.unit};
  return RunCtl(L, c, args, false, [c, args, then](lua_State* co, const ProcessExit& e) {
    std::string state = FirstLine(e.out);
    if (state.empty() && (e.err.find("No such file or directory") != std::string::npos ||
                          e.err.find("not-found") != std::string::npos))
      state = "not-found";
    if (state.empty()) return CommandFailed(co, c, args, e);
    return then(co, state);
  });
}

// States in which `start` has nothing to do (as Ansible counts them: a starting unit is on its
// way already).
bool IsRunning(const std::string& state) {
  return state == "active" || state == "activating" || state == "reloading" ||
         state == "refreshing";
}

// `is-active` succeeds for these.
bool IsActive(const std::string& state) {
  return state == "active" || state == "reloading" || state == "refreshing";
}

// `is-enabled` succeeds for these: the unit starts by itself or cannot be enabled at all.
bool IsEnabled(const std::string& state) {
  static const char* const kEnabled[] = {"enabled",  "enabled-runtime", "static",   "alias",
                                         "indirect", "generated",       "transient"};
  return std::find_if(std::begin(kEnabled), std::end(kEnabled),
                      [&](const char* s) { return state == s; }) != std::end(kEnabled);
}

// --- steps ----------------------------------------------------------------------------------

// What one step did (or would do, in check mode).
struct Step {
  bool changed = false;
  std::string msg;
};
using StepDone = std::function<int(lua_State*, Step)>;
using StepFn = std::function<int(lua_State*, const Ctl&, StepDone)>;

// Runs a change: in check mode only says it would. `counts` says whether it is a change of the
// machine's state (daemon-reload is not).
int Act(lua_State* L, const Ctl& c, std::vector<std::string> args, std::string did,
        std::string would, bool counts, StepDone done) {
  if (Runtime::From(L).CheckMode(L)) return done(L, {counts, would});
  return RunCtl(L, c, args, true, [=](lua_State* co, const ProcessExit& e) {
    if (e.exit_code != 0) return CommandFailed(co, c, args, e);
    return done(co, {counts, did});
  });
}

int Verb(lua_State* L, const Ctl& c, const std::string& verb, const std::string& did,
         StepDone done) {
  return Act(L, c, {verb, c.unit}, did + " " + c.unit, "would " + verb + " " + c.unit, true,
             std::move(done));
}

int DaemonReloadStep(lua_State* L, const Ctl& c, StepDone done) {
  return Act(L, c, {"daemon-reload"}, "reloaded systemd's unit files",
             "would reload systemd's unit files", false, std::move(done));
}

// Running (or not). `restart_if_running`: the unit changed, so a running one restarts to use it.
StepFn EnsureRunning(bool want, bool restart_if_running = false) {
  return [=](lua_State* L, const Ctl& c, StepDone done) {
    return QueryActive(L, c, [=](lua_State* co, const std::string& state) {
      if (IsRunning(state) == want) {
        if (want && restart_if_running) return Verb(co, c, "restart", "restarted", done);
        return done(co, {false, c.unit + " is " + state});
      }
      return want ? Verb(co, c, "start", "started", done) : Verb(co, c, "stop", "stopped", done);
    });
  };
}

// Enabled (or not). Static, generated and similar units cannot be enabled or disabled: they are
// left alone and reported as they are.
StepFn EnsureEnabled(bool want) {
  return [=](lua_State* L, const Ctl& c, StepDone done) {
    return QueryEnabled(L, c, [=](lua_State* co, const std::string& state) {
      bool enabled = state == "enabled" || state == "enabled-runtime";
      if (want && !IsEnabled(state)) return Verb(co, c, "enable", "enabled", done);
      if (!want && enabled) return Verb(co, c, "disable", "disabled", done);
      return done(co, {false, c.unit + " is " + state});
    });
  };
}

StepFn Always(const std::string& verb, const std::string& did) {
  return [=](lua_State* L, const Ctl& c, StepDone done) { return Verb(L, c, verb, did, done); };
}

// --- results --------------------------------------------------------------------------------

struct Outcome {
  bool changed = false;
  std::vector<std::string> msgs;
  std::string path;  // the unit file, for create_service / remove_service
  std::string diff;
};

void LogDiff(lua_State* L, const std::string& diff) {
  Runtime& rt = Runtime::From(L);
  // `run --diff` shows it line by line, as file_ops does; otherwise only --debug does.
  LogLevel level = rt.options().show_diff ? LogLevel::kInfo : LogLevel::kDebug;
  for (const auto& line : Split(diff, '\n'))
    if (!line.empty()) rt.Log(L, level, line);
}

// {success, changed, check_mode, msg, message, name, path?, diff?}, twice (modules.md).
int PushOutcome(lua_State* L, const Ctl& c, const Outcome& o) {
  Runtime& rt = Runtime::From(L);
  bool check = rt.CheckMode(L);
  std::string msg = Join(o.msgs, "; ");
  lua_newtable(L);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "success");
  lua_pushboolean(L, o.changed);
  lua_setfield(L, -2, "changed");
  lua_pushboolean(L, check);
  lua_setfield(L, -2, "check_mode");
  lua_pushstring(L, msg.c_str());
  lua_setfield(L, -2, "msg");
  lua_pushstring(L, msg.c_str());
  lua_setfield(L, -2, "message");
  lua_pushstring(L, c.unit.c_str());
  lua_setfield(L, -2, "name");
  if (!o.path.empty()) {
    lua_pushstring(L, o.path.c_str());
    lua_setfield(L, -2, "path");
  }
  if (!o.diff.empty()) {
    lua_pushlstring(L, o.diff.data(), o.diff.size());
    lua_setfield(L, -2, "diff");
  }
  rt.Log(L, LogLevel::kInfo, std::string(check ? "[check] " : "") + "systemd: " + msg);
  if (!o.diff.empty()) LogDiff(L, o.diff);
  lua_pushvalue(L, -1);
  return 2;
}

// Runs steps[i..] one after another, gathering what they did, then pushes the outcome.
int RunSteps(lua_State* L, const Ctl& c, std::shared_ptr<std::vector<StepFn>> steps, size_t i,
             Outcome out) {
  if (i == steps->size()) return PushOutcome(L, c, out);
  return (*steps)[i](L, c, [=](lua_State* co, Step s) {
    Outcome next = out;
    next.changed = next.changed || s.changed;
    if (!s.msg.empty()) next.msgs.push_back(s.msg);
    return RunSteps(co, c, steps, i + 1, next);
  });
}

int RunAll(lua_State* L, const Ctl& c, std::vector<StepFn> steps, Outcome out = {}) {
  return RunSteps(L, c, std::make_shared<std::vector<StepFn>>(std::move(steps)), 0, std::move(out));
}

// The common start of every function: the unit argument and systemctl. nullopt: systemctl is
// missing and the failure is pushed (2 values).
std::optional<Ctl> Begin(lua_State* L, const char* fn, std::string unit) {
  Ctl c{std::string("systemd.") + fn, "", std::move(unit)};
  std::optional<std::string> systemctl = FindSystemctl(L);
  if (!systemctl) {
    PushFailure(L, c.fn + ": systemctl not found on PATH");
    return std::nullopt;
  }
  c.systemctl = *systemctl;
  return c;
}

// start/stop/enable/... on the unit named by the first argument.
int UnitAction(lua_State* L, const char* fn, std::vector<StepFn> steps) {
  std::optional<Ctl> c = Begin(L, fn, NameArg(L, std::string("systemd.") + fn));
  if (!c) return 2;
  return RunAll(L, *c, std::move(steps));
}

// `now = true` in enable/disable also starts/stops the unit.
bool NowOption(lua_State* L) { return lua_istable(L, 1) && OptBool(L, 1, "now").value_or(false); }

int Start(lua_State* L) { return UnitAction(L, "start", {EnsureRunning(true)}); }
int Stop(lua_State* L) { return UnitAction(L, "stop", {EnsureRunning(false)}); }
int Restart(lua_State* L) { return UnitAction(L, "restart", {Always("restart", "restarted")}); }
int Reload(lua_State* L) { return UnitAction(L, "reload", {Always("reload", "reloaded")}); }

int Enable(lua_State* L) {
  std::vector<StepFn> steps = {EnsureEnabled(true)};
  if (NowOption(L)) steps.push_back(EnsureRunning(true));
  return UnitAction(L, "enable", std::move(steps));
}

int Disable(lua_State* L) {
  std::vector<StepFn> steps;
  if (NowOption(L)) steps.push_back(EnsureRunning(false));
  steps.push_back(EnsureEnabled(false));
  return UnitAction(L, "disable", std::move(steps));
}

int DaemonReload(lua_State* L) {
  std::optional<Ctl> c = Begin(L, "daemon_reload", "");
  if (!c) return 2;
  return RunAll(L, *c, {DaemonReloadStep});
}

// --- queries --------------------------------------------------------------------------------

int IsActiveFn(lua_State* L) {
  std::optional<Ctl> c = Begin(L, "is_active", NameArg(L, "systemd.is_active"));
  if (!c) return 2;
  return QueryActive(L, *c, [](lua_State* co, const std::string& state) {
    lua_pushboolean(co, IsActive(state));
    return 1;
  });
}

int IsEnabledFn(lua_State* L) {
  std::optional<Ctl> c = Begin(L, "is_enabled", NameArg(L, "systemd.is_enabled"));
  if (!c) return 2;
  return QueryEnabled(L, *c, [](lua_State* co, const std::string& state) {
    lua_pushboolean(co, IsEnabled(state));
    return 1;
  });
}

void SetString(lua_State* L, const char* field, const std::string& value) {
  lua_pushstring(L, value.c_str());
  lua_setfield(L, -2, field);
}

// `systemctl show -p ...` prints KEY=VALUE lines.
std::map<std::string, std::string> ParseProperties(const std::string& text) {
  std::map<std::string, std::string> out;
  for (const auto& line : Split(text, '\n')) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

int StatusFn(lua_State* L) {
  std::optional<Ctl> c = Begin(L, "status", NameArg(L, "systemd.status"));
  if (!c) return 2;
  std::vector<std::string> args = {
      "show", c->unit, "--no-pager",
      "--property=Id,Description,LoadState,ActiveState,SubState,UnitFileState,MainPID,"
      "FragmentPath"};
  Ctl ctl = *c;
  return RunCtl(L, ctl, args, false, [ctl, args](lua_State* co, const ProcessExit& e) {
    auto p = ParseProperties(e.out);
    if (e.exit_code != 0 || p.empty()) return CommandFailed(co, ctl, args, e);
    lua_newtable(co);
    SetString(co, "name", ctl.unit);
    SetString(co, "description", p["Description"]);
    SetString(co, "load_state", p["LoadState"]);
    SetString(co, "active_state", p["ActiveState"]);
    SetString(co, "sub_state", p["SubState"]);
    SetString(co, "unit_file_state", p["UnitFileState"]);
    SetString(co, "fragment_path", p["FragmentPath"]);
    lua_pushinteger(co, std::strtoll(p["MainPID"].c_str(), nullptr, 10));
    lua_setfield(co, -2, "main_pid");
    lua_pushboolean(co, IsActive(p["ActiveState"]));
    lua_setfield(co, -2, "is_active");
    lua_pushboolean(co, IsEnabled(p["UnitFileState"]));
    lua_setfield(co, -2, "is_enabled");
    lua_pushboolean(co, !p["LoadState"].empty() && p["LoadState"] != "not-found");
    lua_setfield(co, -2, "exists");
    return 1;
  });
}

// `list-units --plain --no-legend` lines: UNIT LOAD ACTIVE SUB DESCRIPTION...; a failed unit may
// still carry a leading marker.
void PushUnitLines(lua_State* L, const std::string& text) {
  lua_newtable(L);
  lua_Integer n = 0;
  for (const auto& line : Split(text, '\n')) {
    std::istringstream in(line);
    std::string unit, load, active, sub, description;
    in >> unit;
    if (unit == "\xe2\x97\x8f" || unit == "*") in >> unit;  // "●"
    if (!(in >> load >> active >> sub)) continue;
    std::getline(in, description);
    lua_newtable(L);
    SetString(L, "name", unit);
    SetString(L, "load", load);
    SetString(L, "active", active);
    SetString(L, "sub", sub);
    SetString(L, "description", std::string(Trim(description)));
    lua_rawseti(L, -2, ++n);
  }
  MarkArray(L, -1);
}

int ListServices(lua_State* L) {
  std::optional<std::string> state;
  bool all = true;
  if (lua_istable(L, 1)) {
    state = OptString(L, 1, "state");
    all = OptBool(L, 1, "all").value_or(true);
  } else if (!lua_isnoneornil(L, 1)) {
    luaL_error(L, "systemd.list_services: expected nothing or a table {state, all}");
  }
  std::optional<Ctl> c = Begin(L, "list_services", "");
  if (!c) return 2;
  std::vector<std::string> args = {"list-units", "--type=service", "--no-legend", "--no-pager",
                                   "--plain"};
  if (all) args.push_back("--all");
  if (state) args.push_back("--state=" + *state);
  Ctl ctl = *c;
  return RunCtl(L, ctl, args, false, [ctl, args](lua_State* co, const ProcessExit& e) {
    if (e.exit_code != 0) return CommandFailed(co, ctl, args, e);
    PushUnitLines(co, e.out);
    return 1;
  });
}

// --- unit files -----------------------------------------------------------------------------

std::string ErrnoText(const std::string& path, int err) { return path + ": " + std::strerror(err); }

// The file's text; nullopt when it does not exist, or with `error` set when it cannot be read.
std::optional<std::string> ReadUnitFile(const std::string& path, std::string& error) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) error = ErrnoText(path, errno);
    return std::nullopt;
  }
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = ErrnoText(path, errno);
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (!error.empty()) return std::nullopt;
  return out;
}

// systemd never reads half a unit (AtomicWrite). A new file is 0644; a rewritten one keeps its
// mode and owner. Returns "" or the error.
std::string WriteUnitFile(const std::string& path, const std::string& content) {
  struct stat old {};
  FileMeta meta;
  if (stat(path.c_str(), &old) != 0) meta.mode = 0644;
  return AtomicWrite(path, content, meta);
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  char hex[crypto_hash_sha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  return hex;
}

// --- create_service arguments ---------------------------------------------------------------

constexpr char kCreate[] = "systemd.create_service";

const std::vector<std::string>& ServiceFields() {
  static const std::vector<std::string> kFields = {"name",
                                                   "description",
                                                   "documentation",
                                                   "after",
                                                   "before",
                                                   "wants",
                                                   "requires",
                                                   "type",
                                                   "user",
                                                   "group",
                                                   "working_directory",
                                                   "environment",
                                                   "environment_file",
                                                   "exec_start_pre",
                                                   "exec_start",
                                                   "exec_start_post",
                                                   "exec_reload",
                                                   "exec_stop",
                                                   "restart",
                                                   "restart_sec",
                                                   "wanted_by",
                                                   "unit",
                                                   "service",
                                                   "install",
                                                   "content",
                                                   "unit_dir",
                                                   "enabled",
                                                   "state"};
  return kFields;
}

// Every field must be one we know: a misspelt one would otherwise be dropped silently.
void CheckFields(lua_State* L) {
  const auto& known = ServiceFields();
  lua_pushnil(L);
  while (lua_next(L, 1) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: fields must be named", kCreate);
    std::string key = lua_tostring(L, -1);
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string hint = ClosestMatch(key, known);
      luaL_error(L, "%s: unknown field `%s`%s", kCreate, key.c_str(),
                 hint.empty() ? "" : (" (did you mean `" + hint + "`?)").c_str());
    }
  }
}

// A value that goes on one line of the unit file: a newline would start a new directive.
std::string OneLine(lua_State* L, const char* field, std::string value) {
  if (value.find_first_of("\r\n") != std::string::npos)
    luaL_error(L, "%s: %s must not contain a newline", kCreate, field);
  return value;
}

// The value at the top of the stack as text: a string or a number.
std::string ScalarText(lua_State* L, const char* field) {
  int t = lua_type(L, -1);
  if (t != LUA_TSTRING && t != LUA_TNUMBER)
    luaL_error(L, "%s: %s must be a string or a number", kCreate, field);
  return OneLine(L, field, lua_tostring(L, -1));
}

// One argument of an Exec line, quoted as systemd reads it: `$` and `%` are doubled so they
// stay literal; quotes keep spaces inside the argument.
std::string QuoteArg(const std::string& arg) {
  bool plain = !arg.empty();
  std::string escaped;
  for (char c : arg) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && !std::strchr("_./:=,+@-", c)) plain = false;
    if (c == '\\' || c == '"') escaped += '\\';
    if (c == '$' || c == '%') escaped += c;
    escaped += c;
  }
  return plain ? arg : "\"" + escaped + "\"";
}

// An Exec* field: a command line as systemd reads it, or an argument list that is quoted.
std::optional<std::string> ExecField(lua_State* L, const char* field) {
  lua_getfield(L, 1, field);
  std::optional<std::string> out;
  if (lua_type(L, -1) == LUA_TTABLE) {
    std::vector<std::string> args;
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; ++i) {
      args.push_back(QuoteArg(ScalarText(L, field)));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (args.empty()) luaL_error(L, "%s: %s must not be an empty list", kCreate, field);
    out = Join(args, " ");
  } else if (!lua_isnil(L, -1)) {
    out = ScalarText(L, field);
  }
  lua_pop(L, 1);
  return out;
}

std::optional<std::string> ScalarField(lua_State* L, const char* field) {
  lua_getfield(L, 1, field);
  std::optional<std::string> out;
  if (!lua_isnil(L, -1)) out = ScalarText(L, field);
  lua_pop(L, 1);
  return out;
}

std::vector<std::string> ListField(lua_State* L, const char* field) {
  std::vector<std::string> out = OptStringList(L, 1, field);
  for (auto& v : out) OneLine(L, field, v);
  return out;
}

// Environment="KEY=value", one per variable. A table of names is written sorted (Lua tables
// have no order, and the file must come out the same every time); a list of "KEY=value"
// strings keeps its order. `%` is doubled: values are literal, not systemd specifiers.
std::vector<std::string> EnvironmentLines(lua_State* L) {
  std::vector<std::pair<std::string, std::string>> vars;
  lua_getfield(L, 1, "environment");
  int type = lua_type(L, -1);
  if (type != LUA_TNIL && type != LUA_TTABLE)
    luaL_error(L, "%s: environment must be a table", kCreate);
  bool is_list = false;
  if (type == LUA_TTABLE) {
    is_list = lua_rawgeti(L, -1, 1) != LUA_TNIL;
    lua_pop(L, 1);
  }
  if (is_list) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; ++i) {
      std::string item = ScalarText(L, "environment");
      size_t eq = item.find('=');
      if (eq == std::string::npos)
        luaL_error(L, "%s: environment list items must be \"KEY=value\"", kCreate);
      vars.emplace_back(item.substr(0, eq), item.substr(eq + 1));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  } else if (type == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING)
        luaL_error(L, "%s: environment must be {NAME = value} or {\"NAME=value\", ...}", kCreate);
      vars.emplace_back(lua_tostring(L, -2), ScalarText(L, "environment"));
      lua_pop(L, 1);
    }
    std::sort(vars.begin(), vars.end());
  }
  lua_pop(L, 1);
  std::vector<std::string> lines;
  for (const auto& [key, value] : vars) {
    bool ok = !key.empty() && !std::isdigit(static_cast<unsigned char>(key[0]));
    for (unsigned char ch : key) ok = ok && (std::isalnum(ch) || ch == '_');
    if (!ok) luaL_error(L, "%s: bad environment variable name \"%s\"", kCreate, key.c_str());
    std::string text;
    for (char ch : key + "=" + value) {
      if (ch == '\\' || ch == '"') text += '\\';
      if (ch == '%') text += '%';
      text += ch;
    }
    lines.push_back("Environment=\"" + text + "\"");
  }
  return lines;
}

// Extra directives for a section: {Key = value | {values}}, written sorted by key.
std::vector<std::string> ExtraLines(lua_State* L, const char* field) {
  std::vector<std::string> lines;
  lua_getfield(L, 1, field);
  if (lua_istable(L, -1)) {
    std::map<std::string, std::vector<std::string>> directives;
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      bool ok = lua_type(L, -2) == LUA_TSTRING;
      std::string key = ok ? lua_tostring(L, -2) : "";
      for (unsigned char ch : key) ok = ok && std::isalnum(ch);
      if (!ok || key.empty())
        luaL_error(L, "%s: %s: directive names are words like \"LimitNOFILE\"", kCreate, field);
      auto& values = directives[key];
      if (lua_istable(L, -1)) {
        for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; ++i) {
          values.push_back(ScalarText(L, field));
          lua_pop(L, 1);
        }
        lua_pop(L, 1);
      } else {
        values.push_back(ScalarText(L, field));
      }
      lua_pop(L, 1);
    }
    for (const auto& [key, values] : directives)
      for (const auto& v : values) lines.push_back(key + "=" + v);
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "%s: %s must be a table of directives", kCreate, field);
  }
  lua_pop(L, 1);
  return lines;
}

// wanted_by: a target or a list of them; default multi-user.target; false: no [Install].
std::vector<std::string> WantedBy(lua_State* L) {
  lua_getfield(L, 1, "wanted_by");
  bool absent = lua_isnil(L, -1);
  bool off = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (absent) return {"multi-user.target"};
  if (off) return {};
  return ListField(L, "wanted_by");
}

void AddSection(std::string& out, const char* name, const std::vector<std::string>& lines) {
  if (lines.empty()) return;
  if (out != kHeader) out += "\n";
  out += std::string("[") + name + "]\n";
  for (const auto& l : lines) out += l + "\n";
}

// The unit file's text from the fields, always the same text for the same fields.
std::string BuildUnit(lua_State* L) {
  std::vector<std::string> unit, service, install;
  auto scalar = [&](std::vector<std::string>& section, const char* field, const char* key) {
    if (auto v = ScalarField(L, field)) section.push_back(std::string(key) + "=" + *v);
  };
  auto joined = [&](std::vector<std::string>& section, const char* field, const char* key) {
    std::vector<std::string> v = ListField(L, field);
    if (!v.empty()) section.push_back(std::string(key) + "=" + Join(v, " "));
  };
  auto exec = [&](const char* field, const char* key) {
    if (auto v = ExecField(L, field)) service.push_back(std::string(key) + "=" + *v);
  };
  scalar(unit, "description", "Description");
  joined(unit, "documentation", "Documentation");
  joined(unit, "after", "After");
  joined(unit, "before", "Before");
  joined(unit, "wants", "Wants");
  joined(unit, "requires", "Requires");
  for (auto& l : ExtraLines(L, "unit")) unit.push_back(l);
  scalar(service, "type", "Type");
  scalar(service, "user", "User");
  scalar(service, "group", "Group");
  scalar(service, "working_directory", "WorkingDirectory");
  for (auto& l : EnvironmentLines(L)) service.push_back(l);
  for (auto& f : ListField(L, "environment_file")) service.push_back("EnvironmentFile=" + f);
  exec("exec_start_pre", "ExecStartPre");
  exec("exec_start", "ExecStart");
  exec("exec_start_post", "ExecStartPost");
  exec("exec_reload", "ExecReload");
  exec("exec_stop", "ExecStop");
  scalar(service, "restart", "Restart");
  scalar(service, "restart_sec", "RestartSec");
  for (auto& l : ExtraLines(L, "service")) service.push_back(l);
  std::vector<std::string> wanted = WantedBy(L);
  if (!wanted.empty()) install.push_back("WantedBy=" + Join(wanted, " "));
  for (auto& l : ExtraLines(L, "install")) install.push_back(l);
  std::string out = kHeader;
  AddSection(out, "Unit", unit);
  AddSection(out, "Service", service);
  AddSection(out, "Install", install);
  return out;
}

struct ServiceSpec {
  std::string unit;  // "myapp.service"
  std::string path;  // unit_dir/unit, absolute
  std::string content;
  std::optional<bool> enabled;
  std::string state;  // "", "started", "stopped", "restarted"
};

ServiceSpec ParseService(lua_State* L) {
  if (!lua_istable(L, 1)) luaL_error(L, "%s: expected a table {name, exec_start, ...}", kCreate);
  CheckFields(L);
  ServiceSpec s;
  s.unit = NameArg(L, kCreate);
  std::optional<std::string> content = OptString(L, 1, "content");
  if (!content && !EndsWith(s.unit, ".service"))
    luaL_error(L, "%s: %s is not a service; give its whole text as `content`", kCreate,
               s.unit.c_str());
  lua_getfield(L, 1, "exec_start");
  bool has_exec = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (content && has_exec) luaL_error(L, "%s: give `content` or `exec_start`, not both", kCreate);
  if (!content && !has_exec) luaL_error(L, "%s: exec_start is required", kCreate);
  s.content = content ? *content : BuildUnit(L);
  std::string dir = OptString(L, 1, "unit_dir").value_or(kDefaultUnitDir);
  if (dir.empty()) luaL_error(L, "%s: unit_dir must not be empty", kCreate);
  s.path = Runtime::From(L).ResolvePath(L, dir) + "/" + s.unit;
  s.enabled = OptBool(L, 1, "enabled");
  s.state = OptString(L, 1, "state").value_or("");
  if (!s.state.empty() && s.state != "started" && s.state != "stopped" && s.state != "restarted")
    luaL_error(L, "%s: state must be \"started\", \"stopped\" or \"restarted\", not \"%s\"",
               kCreate, s.state.c_str());
  return s;
}

void RecordUnit(lua_State* L, const ServiceSpec& s, const std::string& pending) {
  nlohmann::json props = {{"unit", s.unit}, {"checksum", Sha256Hex(s.content)}};
  if (s.enabled) props["enabled"] = *s.enabled;
  // As file_ops does: a pending change makes `run --check` and `stack drift` report it even when
  // the recorded properties equal the wanted ones.
  if (!pending.empty()) props["pending"] = pending;
  RecordManagedResource(L, "systemd_unit", s.path, "systemd", props);
}

// daemon-reload after writing the unit. When it fails the old file is put back, so the next run
// writes and reloads again instead of finding the file up to date while systemd still uses the
// old unit.
StepFn ReloadOrRestore(const std::string& path, const std::optional<std::string>& before) {
  return [=](lua_State* L, const Ctl& c, StepDone done) {
    if (Runtime::From(L).CheckMode(L)) return DaemonReloadStep(L, c, done);
    std::vector<std::string> args = {"daemon-reload"};
    return RunCtl(L, c, args, true, [=](lua_State* co, const ProcessExit& e) {
      if (e.exit_code == 0) return done(co, {false, "reloaded systemd's unit files"});
      std::string undo = before ? WriteUnitFile(path, *before)
                                : (unlink(path.c_str()) == 0 ? "" : ErrnoText(path, errno));
      CommandFailed(co, c, args, e);
      lua_pushstring(
          co, undo.empty()
                  ? " (the previous unit file was put back)"
                  : (" (and putting back the previous unit file failed: " + undo + ")").c_str());
      lua_concat(co, 2);
      return 2;
    });
  };
}

int CreateService(lua_State* L) {
  ServiceSpec s = ParseService(L);
  std::optional<Ctl> c = Begin(L, "create_service", s.unit);
  if (!c) return 2;
  std::string dir = stdfs::path(s.path).parent_path().string();
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return PushFailure(L, c->fn + ": unit_dir " + dir + " is not a directory");
  std::string error;
  std::optional<std::string> before = ReadUnitFile(s.path, error);
  if (!error.empty()) return PushFailure(L, c->fn + ": " + error);
  bool differs = !before || *before != s.content;
  bool check = Runtime::From(L).CheckMode(L);
  Outcome out;
  out.path = s.path;
  out.changed = differs;
  std::vector<StepFn> steps;
  if (differs) {
    out.diff = UnifiedDiff(before.value_or(""), s.content, before ? s.path : "/dev/null", s.path);
    std::string what = (before ? "update " : "create ") + s.path;
    if (!check) {
      if (std::string err = WriteUnitFile(s.path, s.content); !err.empty())
        return PushFailure(L, c->fn + ": " + err);
    }
    out.msgs.push_back(check ? "would " + what : (before ? "updated " : "created ") + s.path);
    steps.push_back(ReloadOrRestore(s.path, before));
    RecordUnit(L, s, check ? "would " + what : "");
  } else {
    out.msgs.push_back(s.path + " is up to date");
    RecordUnit(L, s, "");
  }
  if (s.enabled) steps.push_back(EnsureEnabled(*s.enabled));
  if (s.state == "started") steps.push_back(EnsureRunning(true, differs && before.has_value()));
  if (s.state == "stopped") steps.push_back(EnsureRunning(false));
  if (s.state == "restarted") steps.push_back(Always("restart", "restarted"));
  return RunAll(L, *c, std::move(steps), std::move(out));
}

// Deletes the unit file (after stop and disable, which need it), then daemon-reload.
StepFn DeleteUnitFile(const std::string& path) {
  return [path](lua_State* L, const Ctl& c, StepDone done) {
    if (Runtime::From(L).CheckMode(L)) return done(L, {true, "would remove " + path});
    if (unlink(path.c_str()) != 0 && errno != ENOENT)
      return PushFailure(L, c.fn + ": " + ErrnoText(path, errno));
    return done(L, {true, "removed " + path});
  };
}

int RemoveService(lua_State* L) {
  const std::string fn = "systemd.remove_service";
  std::string unit = NameArg(L, fn);
  std::string dir = kDefaultUnitDir;
  if (lua_istable(L, 1)) dir = OptString(L, 1, "unit_dir").value_or(dir);
  std::string path = Runtime::From(L).ResolvePath(L, dir) + "/" + unit;
  std::optional<Ctl> c = Begin(L, "remove_service", unit);
  if (!c) return 2;
  std::vector<StepFn> steps = {EnsureRunning(false), EnsureEnabled(false)};
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    steps.push_back(DeleteUnitFile(path));
    steps.push_back(DaemonReloadStep);
  }
  Outcome out;
  out.path = path;
  return RunAll(L, *c, std::move(steps), std::move(out));
}

}  // namespace

const Module& SystemdModule() {
  static const Module m = {
      "systemd",
      "systemd services through systemctl: unit files, start/stop, enable/disable; idempotent, "
      "check mode",
      {
          {"create_service", CreateService,
           "create_service({name, exec_start, description, user, group, working_directory, "
           "environment, after, wants, requires, restart, restart_sec, wanted_by, type, unit, "
           "service, install, content, unit_dir, enabled, state}) -> result",
           "Writes the unit file when it differs, then daemon-reload; optionally enables/starts"},
          {"start", Start, "start(name | {name}) -> result", "Starts the unit unless it runs"},
          {"stop", Stop, "stop(name | {name}) -> result", "Stops the unit if it runs"},
          {"restart", Restart, "restart(name | {name}) -> result", "Restarts the unit (always)"},
          {"reload", Reload, "reload(name | {name}) -> result",
           "Reloads the unit's configuration (always)"},
          {"enable", Enable, "enable(name | {name, now}) -> result",
           "Enables the unit unless it is enabled; now = true also starts it"},
          {"disable", Disable, "disable(name | {name, now}) -> result",
           "Disables the unit if it is enabled; now = true also stops it"},
          {"status", StatusFn,
           "status(name) -> {name, description, load_state, active_state, sub_state, "
           "unit_file_state, main_pid, fragment_path, is_active, is_enabled, exists}",
           "The unit's state (systemctl show)"},
          {"is_active", IsActiveFn, "is_active(name) -> bool", "systemctl is-active succeeds"},
          {"is_enabled", IsEnabledFn, "is_enabled(name) -> bool",
           "systemctl is-enabled succeeds (enabled, static, ...)"},
          {"daemon_reload", DaemonReload, "daemon_reload() -> result",
           "Reloads systemd's unit files (changed = false)"},
          {"remove_service", RemoveService, "remove_service(name | {name, unit_dir}) -> result",
           "Stops, disables and deletes the unit file, then daemon-reload"},
          {"list_services", ListServices,
           "list_services({state, all}?) -> {{name, load, active, "
           "sub, description}}",
           "The service units systemd knows"},
      },
  };
  return m;
}

}  // namespace sloth
