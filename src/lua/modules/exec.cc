// exec: run commands (shell strings or argv lists) as child processes of the run's loop.
// Also replaces os.execute and io.popen so that stock Lua code cooperates with the scheduler.
#include <unistd.h>

#include <string>

#include <lua.hpp>

#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/modules/exec.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

constexpr char kResultMeta[] = "sloth.exec_result";
constexpr char kHandleMeta[] = "sloth.exec_handle";
constexpr char kPopenMeta[] = "sloth.popen_file";

// Pushes {stdout, stderr, exit_code, success, duration_ms} with the string-like metatable.
void PushResult(lua_State* L, const ProcessExit& e, bool timed_out) {
  lua_createtable(L, 0, 7);
  lua_pushlstring(L, e.out.data(), e.out.size());
  lua_setfield(L, -2, "stdout");
  lua_pushlstring(L, e.err.data(), e.err.size());
  lua_setfield(L, -2, "stderr");
  lua_pushinteger(L, e.exit_code);
  lua_setfield(L, -2, "exit_code");
  lua_pushboolean(L, e.exit_code == 0);
  lua_setfield(L, -2, "success");
  lua_pushinteger(L, ToMillis(e.elapsed));
  lua_setfield(L, -2, "duration_ms");
  if (timed_out) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "timed_out");
  }
  luaL_setmetatable(L, kResultMeta);
}

void PushSkipped(lua_State* L) {
  ProcessExit e;
  e.exit_code = 0;
  PushResult(L, e, false);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "skipped");
}

std::string Describe(const std::vector<std::string>& argv) {
  if (argv.size() == 3 && argv[0] == "/bin/sh" && argv[1] == "-c") return argv[2];
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : " ") + a;
  return out;
}

// Reads the opts table at `index` into `spec`/`opts`.
void ReadOptions(lua_State* L, int index, ProcessSpec& spec, ExecOptions& opts) {
  if (lua_isnoneornil(L, index)) return;
  luaL_checktype(L, index, LUA_TTABLE);
  Runtime& rt = Runtime::From(L);
  auto cwd = OptString(L, index, "cwd");
  if (!cwd) cwd = OptString(L, index, "workdir");
  if (cwd) spec.cwd = rt.ResolvePath(L, *cwd);
  opts.timeout = OptDuration(L, index, "timeout");
  if (auto in = OptString(L, index, "stdin")) spec.stdin_data = *in;
  if (auto user = OptString(L, index, "user")) opts.user = *user;
  if (auto c = OptBool(L, index, "check_mode")) opts.run_in_check_mode = !*c;
  if (OptBool(L, index, "clean_env").value_or(false)) {
    spec.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  }
  if (lua_getfield(L, index, "env") == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      std::string key = luaL_checkstring(L, -2);
      std::string value = luaL_tolstring(L, -1, nullptr);
      lua_pop(L, 2);
      std::erase_if(spec.env, [&](const std::string& e) { return e.rfind(key + "=", 0) == 0; });
      spec.env.push_back(key + "=" + value);
    }
  }
  lua_pop(L, 1);
  if (auto quiet = OptBool(L, index, "quiet")) opts.stream = !*quiet;
}

// Wraps argv to run as another user: runuser when root, sudo otherwise.
void ApplyUser(ProcessSpec& spec, const std::string& user) {
  if (user.empty()) return;
  std::vector<std::string> prefix = geteuid() == 0
                                        ? std::vector<std::string>{"runuser", "-u", user, "--"}
                                        : std::vector<std::string>{"sudo", "-n", "-u", user, "--"};
  spec.argv.insert(spec.argv.begin(), prefix.begin(), prefix.end());
}

std::vector<std::string> ArgvFromTable(lua_State* L, int index) {
  std::vector<std::string> argv;
  lua_Integer n = luaL_len(L, index);
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_geti(L, index, i);
    if (!lua_isstring(L, -1))
      luaL_error(L, "exec: argv item %d must be a string", static_cast<int>(i));
    argv.emplace_back(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  if (argv.empty()) luaL_argerror(L, index, "empty argv list");
  return argv;
}

// The command at `index`: a shell string, or an argv list run without a shell.
ProcessSpec CommandSpec(lua_State* L, int index) {
  if (lua_type(L, index) != LUA_TTABLE) return ShellSpec(L, luaL_checkstring(L, index));
  ProcessSpec spec;
  spec.argv = ArgvFromTable(L, index);
  spec.env = Runtime::From(L).ChildEnvironment(L);
  return spec;
}

int ExecRun(lua_State* L) {
  ProcessSpec spec = CommandSpec(L, 1);
  ExecOptions opts;
  ReadOptions(L, 2, spec, opts);
  return RunCommand(L, std::move(spec), opts);
}

// exec.command(prog, args...): argv form without a table.
int ExecCommand(lua_State* L) {
  ProcessSpec spec;
  int n = lua_gettop(L);
  for (int i = 1; i <= n; ++i) spec.argv.emplace_back(luaL_checkstring(L, i));
  if (spec.argv.empty()) luaL_argerror(L, 1, "program expected");
  spec.env = Runtime::From(L).ChildEnvironment(L);
  return RunCommand(L, std::move(spec), ExecOptions{});
}

// exec.sh(script, opts?) / exec.script: a multi-line script run by /bin/sh -e.
int ExecScript(lua_State* L) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-ec", luaL_checkstring(L, 1)};
  spec.env = Runtime::From(L).ChildEnvironment(L);
  ExecOptions opts;
  ReadOptions(L, 2, spec, opts);
  return RunCommand(L, std::move(spec), opts);
}

int ResultToString(lua_State* L) {
  lua_getfield(L, 1, "stdout");
  return 1;
}

int ResultConcat(lua_State* L) {
  for (int i = 1; i <= 2; ++i) {
    if (luaL_testudata(L, i, kResultMeta) || (lua_istable(L, i) && lua_getmetatable(L, i))) {
      if (lua_istable(L, i)) lua_pop(L, 1);
      lua_getfield(L, i, "stdout");
    } else {
      luaL_tolstring(L, i, nullptr);
    }
  }
  lua_concat(L, 2);
  return 1;
}

// --- background processes -------------------------------------------------------------

struct Background {
  pid_t pid = -1;
  bool finished = false;
  ProcessExit exit;
  std::vector<std::function<void()>> waiters;
};

int ExecBackground(lua_State* L) {
  ProcessSpec spec = CommandSpec(L, 1);
  Runtime& rt = Runtime::From(L);
  ExecOptions opts;
  ReadOptions(L, 2, spec, opts);
  if (spec.cwd.empty()) spec.cwd = rt.ResolvePath(L, ".");
  if (rt.CheckMode(L) && !opts.run_in_check_mode)
    return luaL_error(L, "exec.background: refusing to start '%s' in check mode",
                      Describe(spec.argv).c_str());
  auto* handle = static_cast<std::shared_ptr<Background>*>(
      lua_newuserdatauv(L, sizeof(std::shared_ptr<Background>), 0));
  new (handle) std::shared_ptr<Background>(std::make_shared<Background>());
  luaL_setmetatable(L, kHandleMeta);
  std::weak_ptr<Background> weak = *handle;
  auto pid = rt.processes().Spawn(spec, nullptr, [weak](ProcessExit e) {
    auto bg = weak.lock();
    if (!bg) return;
    bg->finished = true;
    bg->exit = std::move(e);
    auto waiters = std::move(bg->waiters);
    for (auto& w : waiters) w();
  });
  if (!pid.ok()) return luaL_error(L, "exec.background: %s", pid.error().c_str());
  (*handle)->pid = *pid;
  return 1;
}

std::shared_ptr<Background>& CheckHandle(lua_State* L) {
  return *static_cast<std::shared_ptr<Background>*>(luaL_checkudata(L, 1, kHandleMeta));
}

int HandleWait(lua_State* L) {
  auto bg = CheckHandle(L);
  return Runtime::From(L).Await(L, [bg](Runtime::Done done) {
    auto push = [bg](lua_State* co) {
      PushResult(co, bg->exit, false);
      return 1;
    };
    if (bg->finished) return done(push);
    bg->waiters.push_back([done, push] { done(push); });
  });
}

int HandleKill(lua_State* L) {
  auto bg = CheckHandle(L);
  if (!bg->finished) Runtime::From(L).processes().Terminate(bg->pid, std::chrono::seconds(3));
  return 0;
}

int HandleIsRunning(lua_State* L) {
  lua_pushboolean(L, !CheckHandle(L)->finished);
  return 1;
}

int HandlePid(lua_State* L) {
  lua_pushinteger(L, CheckHandle(L)->pid);
  return 1;
}

int HandleGc(lua_State* L) {
  CheckHandle(L).~shared_ptr();
  return 0;
}

// --- os.execute / io.popen -------------------------------------------------------------

// os.execute(cmd) -> true|nil, "exit"|"signal", code (stock Lua's contract).
int OsExecute(lua_State* L) {
  if (lua_isnoneornil(L, 1)) {
    lua_pushboolean(L, 1);  // a shell is available
    return 1;
  }
  ProcessSpec spec = ShellSpec(L, luaL_checkstring(L, 1));
  ExecOptions opts;
  opts.os_execute_result = true;
  return RunCommand(L, std::move(spec), opts);
}

// io.popen(cmd, "r"): runs the command to completion (yielding), then reads its stdout.
// io.popen(cmd, "w"): collects what is written and feeds it as stdin when closed.
}  // namespace

struct PopenFile {
  std::string command;
  bool write_mode = false;
  std::string data;  // captured stdout ("r") or collected stdin ("w")
  size_t pos = 0;
  bool closed = false;
  int exit_code = 0;
};

namespace {

PopenFile* CheckPopen(lua_State* L) {
  return static_cast<PopenFile*>(luaL_checkudata(L, 1, kPopenMeta));
}

int IoPopen(lua_State* L) {
  std::string cmd = luaL_checkstring(L, 1);
  std::string mode = luaL_optstring(L, 2, "r");
  if (mode != "r" && mode != "w") return luaL_argerror(L, 2, "invalid mode (\"r\" or \"w\")");
  auto* f = static_cast<PopenFile*>(lua_newuserdatauv(L, sizeof(PopenFile), 0));
  new (f) PopenFile{cmd, mode == "w", "", 0, false, 0};
  luaL_setmetatable(L, kPopenMeta);
  if (f->write_mode) return 1;
  ProcessSpec spec = ShellSpec(L, cmd);
  ExecOptions opts;
  opts.stream = false;
  opts.popen_into = f;
  return RunCommand(L, std::move(spec), opts);  // leaves the file on the stack
}

int PopenRead(lua_State* L) {
  PopenFile* f = CheckPopen(L);
  std::string fmt = luaL_optstring(L, 2, "l");
  if (!fmt.empty() && fmt[0] == '*') fmt.erase(0, 1);
  if (f->pos >= f->data.size() && fmt != "a") return lua_pushnil(L), 1;
  if (fmt == "a") {
    lua_pushlstring(L, f->data.data() + f->pos, f->data.size() - f->pos);
    f->pos = f->data.size();
    return 1;
  }
  size_t nl = f->data.find('\n', f->pos);
  size_t end = nl == std::string::npos ? f->data.size() : nl;
  size_t keep = fmt == "L" && nl != std::string::npos ? 1 : 0;
  lua_pushlstring(L, f->data.data() + f->pos, end - f->pos + keep);
  f->pos = nl == std::string::npos ? f->data.size() : nl + 1;
  return 1;
}

int PopenLinesNext(lua_State* L) {
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(1));
  return PopenRead(L);
}

int PopenLines(lua_State* L) {
  CheckPopen(L);
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, PopenLinesNext, 1);
  return 1;
}

int PopenWrite(lua_State* L) {
  PopenFile* f = CheckPopen(L);
  for (int i = 2; i <= lua_gettop(L); ++i) f->data += luaL_checkstring(L, i);
  lua_pushvalue(L, 1);
  return 1;
}

int PushCloseResult(lua_State* L, int code) {
  if (code == 0)
    lua_pushboolean(L, 1);
  else
    lua_pushnil(L);
  lua_pushstring(L, code > 128 ? "signal" : "exit");
  lua_pushinteger(L, code > 128 ? code - 128 : code);
  return 3;
}

int PopenClose(lua_State* L) {
  PopenFile* f = CheckPopen(L);
  if (f->closed) return PushCloseResult(L, f->exit_code);
  f->closed = true;
  if (!f->write_mode) return PushCloseResult(L, f->exit_code);
  ProcessSpec spec = ShellSpec(L, f->command);
  spec.stdin_data = f->data;
  ExecOptions opts;
  opts.os_execute_result = true;
  return RunCommand(L, std::move(spec), opts);
}

int PopenGc(lua_State* L) {
  CheckPopen(L)->~PopenFile();
  return 0;
}

void CreateMetatables(lua_State* L) {
  luaL_newmetatable(L, kResultMeta);
  lua_pushcfunction(L, ResultToString);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, ResultConcat);
  lua_setfield(L, -2, "__concat");
  lua_pop(L, 1);
  static const luaL_Reg handle[] = {{"wait", HandleWait},
                                    {"kill", HandleKill},
                                    {"is_running", HandleIsRunning},
                                    {"pid", HandlePid},
                                    {nullptr, nullptr}};
  NewClass(L, kHandleMeta, handle, HandleGc);
  static const luaL_Reg file[] = {{"read", PopenRead},
                                  {"lines", PopenLines},
                                  {"write", PopenWrite},
                                  {"close", PopenClose},
                                  {nullptr, nullptr}};
  NewClass(L, kPopenMeta, file, PopenGc);
}

// Installs the metatables and the cooperative os.execute / io.popen.
int ExecSetup(lua_State* L) {
  CreateMetatables(L);
  lua_getglobal(L, "os");
  lua_pushcfunction(L, OsExecute);
  lua_setfield(L, -2, "execute");
  lua_getglobal(L, "io");
  lua_pushcfunction(L, IoPopen);
  lua_setfield(L, -2, "popen");
  lua_pop(L, 2);
  return 0;
}

constexpr char kExecLua[] = R"lua(
local M = ...
M.shell = M.sh
M.script = M.sh
)lua";

}  // namespace

ProcessSpec ShellSpec(lua_State* L, const std::string& script) {
  ProcessSpec spec;
  spec.argv = {"/bin/sh", "-c", script};
  spec.env = Runtime::From(L).ChildEnvironment(L);
  return spec;
}

int RunCommand(lua_State* L, ProcessSpec spec, const ExecOptions& opts) {
  Runtime& rt = Runtime::From(L);
  if (spec.cwd.empty()) spec.cwd = rt.ResolvePath(L, ".");
  ApplyUser(spec, opts.user.empty() && rt.TaskOf(L) ? rt.TaskOf(L)->user : opts.user);
  if (rt.CheckMode(L) && !opts.run_in_check_mode) {
    rt.Log(L, LogLevel::kDebug, "[check] would run: " + Describe(spec.argv));
    if (opts.popen_into) return 1;
    if (opts.os_execute_result) return PushCloseResult(L, 0);
    PushSkipped(L);
    return 1;
  }
  TaskContext* task = rt.TaskOf(L);
  auto pid = std::make_shared<pid_t>(-1);
  auto timed_out = std::make_shared<bool>(false);
  std::string name = Describe(spec.argv);
  auto start = [&rt, L, spec = std::move(spec), opts, task, pid, timed_out,
                name](Runtime::Done done) {
    Processes::LineFn on_line;
    if (opts.stream && rt.log()) {
      std::string task_name = task ? task->name : "";
      LogSink* log = rt.log();
      on_line = [log, task_name](bool, std::string_view line) {
        log->Log(task_name, LogLevel::kOutput, line);
      };
    }
    auto timer = std::make_shared<uint64_t>(0);
    auto finished = [done, opts, task, pid, timed_out, &rt, timer](ProcessExit e) {
      if (*timer) rt.loop().Cancel(*timer);
      if (task) std::erase(task->processes, *pid);
      if (*timed_out) e.err += "\ncommand timed out after " + FormatHuman(*opts.timeout);
      done([e = std::move(e), opts, timed_out](lua_State* co) {
        if (opts.popen_into) {
          opts.popen_into->data = e.out;
          opts.popen_into->exit_code = e.exit_code;
          return 1;  // the file object is already on the stack
        }
        if (opts.os_execute_result) return PushCloseResult(co, e.exit_code);
        if (opts.on_exit) return opts.on_exit(co, e);
        PushResult(co, e, *timed_out);
        return 1;
      });
    };
    auto spawned = rt.processes().Spawn(spec, on_line, finished);
    if (!spawned.ok()) {
      ProcessExit e;
      e.exit_code = 127;
      e.err = spawned.error();
      finished(std::move(e));
      return;
    }
    *pid = *spawned;
    if (task) task->processes.push_back(*pid);
    if (opts.timeout) {
      *timer = rt.loop().After(*opts.timeout, [&rt, pid, timed_out, timer] {
        *timer = 0;
        *timed_out = true;
        rt.processes().Terminate(*pid, std::chrono::seconds(3));
      });
    }
  };
  auto cancel = [&rt, pid] {
    if (*pid > 0) rt.processes().Terminate(*pid, std::chrono::seconds(3));
  };
  return rt.Await(L, std::move(start), std::move(cancel));
}

const Module& ExecModule() {
  static const Module m = {
      "exec",
      "Run commands: shell strings or argv lists, with env, cwd, timeout and stdin",
      {
          {"run", ExecRun, "run(cmd, opts?) -> {stdout, stderr, exit_code, success, duration_ms}",
           "Run a shell string (/bin/sh -c) or an argv list (no shell); opts: cwd, env, clean_env, "
           "timeout, stdin, user, check_mode, quiet"},
          {"command", ExecCommand, "command(prog, args...) -> result",
           "Run a program with arguments, no shell"},
          {"sh", ExecScript, "sh(script, opts?) -> result", "Run a script with /bin/sh -e"},
          {"shell", nullptr, "shell(script, opts?) -> result", "Alias of sh"},
          {"script", nullptr, "script(script, opts?) -> result", "Alias of sh"},
          {"background", ExecBackground, "background(cmd, opts?) -> handle",
           "Start a command and return a handle with :wait(), :kill(), :is_running(), :pid()"},
      },
      {},
      kExecLua,
      ExecSetup,
  };
  return m;
}

}  // namespace sloth
