#include "lua/modules/cli_tool.h"

#include <unistd.h>

#include <sstream>

#include <lua.hpp>
#include <nlohmann/json.hpp>

#include "lua/lua_util.h"
#include "lua/modules/exec.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

std::string Describe(const std::string& tool, const std::vector<std::string>& args) {
  std::string out = tool;
  for (const auto& a : args) out += " " + a;
  return out;
}

void SetString(lua_State* L, const char* field, const std::string& value) {
  lua_pushlstring(L, value.data(), value.size());
  lua_setfield(L, -2, field);
}

void SetBool(lua_State* L, const char* field, bool value) {
  lua_pushboolean(L, value);
  lua_setfield(L, -2, field);
}

// The result's common part: {success, exit_code, stdout, stderr, command}.
void PushBase(lua_State* L, const std::string& command, int code, const std::string& out,
              const std::string& err) {
  lua_createtable(L, 0, 8);
  SetBool(L, "success", code == 0);
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "exit_code");
  SetString(L, "stdout", out);
  SetString(L, "stderr", err);
  SetString(L, "command", command);
}

// Sets result.data from stdout; a parse failure sets result.parse_error instead (the tool
// may print a plain-text error where JSON was expected).
void SetParsed(lua_State* L, ToolJson mode, const std::string& out) {
  if (mode == ToolJson::kNone || out.find_first_not_of(" \t\r\n") == std::string::npos) return;
  if (mode == ToolJson::kDocument) {
    auto doc = nlohmann::json::parse(out, nullptr, false);
    if (doc.is_discarded()) return SetString(L, "parse_error", "output is not JSON");
    PushJson(L, doc);
    return lua_setfield(L, -2, "data");
  }
  lua_newtable(L);  // result list
  MarkArray(L, -1);
  std::istringstream lines(out);
  std::string line;
  lua_Integer n = 0;
  while (std::getline(lines, line)) {
    auto doc = nlohmann::json::parse(line, nullptr, false);
    if (doc.is_discarded()) continue;  // progress text between the JSON lines
    PushJson(L, doc);
    lua_seti(L, -2, ++n);
  }
  lua_setfield(L, -2, "data");
}

int PushNotFound(lua_State* L, const ToolCall& call) {
  std::string error = call.tool + " not found on PATH";
  PushBase(L, Describe(call.tool, call.args), 127, "", error);
  SetString(L, "error", error);
  return 1;
}

int PushSkipped(lua_State* L, const ToolCall& call) {
  std::string command = Describe(call.tool, call.args);
  Runtime::From(L).Log(L, LogLevel::kInfo, "[check] would run: " + command);
  PushBase(L, command, 0, "", "");
  SetBool(L, "skipped", true);
  SetBool(L, "check_mode", true);
  return 1;
}

ProcessSpec MakeSpec(lua_State* L, const ToolCall& call, const std::string& program,
                     const std::vector<std::string>& args) {
  Runtime& rt = Runtime::From(L);
  ProcessSpec spec;
  spec.argv.push_back(program);
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = rt.ChildEnvironment(L);
  for (const auto& [k, v] : call.env) {
    std::erase_if(spec.env, [&](const std::string& e) { return e.rfind(k + "=", 0) == 0; });
    spec.env.push_back(k + "=" + v);
  }
  spec.cwd = rt.ResolvePath(L, call.cwd.empty() ? "." : call.cwd);
  spec.stdin_data = call.stdin_data;
  return spec;
}

std::vector<std::string> StringList(lua_State* L, int index, const char* what) {
  std::vector<std::string> out;
  lua_Integer n = luaL_len(L, index);
  for (lua_Integer i = 1; i <= n; ++i) {
    lua_geti(L, index, i);  // ... item
    if (!lua_isstring(L, -1))
      luaL_error(L, "%s item %d must be a string", what, static_cast<int>(i));
    out.emplace_back(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return out;
}

// Reads opts.env ({KEY = value}) into `call`.
void ReadEnv(lua_State* L, int index, ToolCall& call) {
  if (lua_getfield(L, index, "env") == LUA_TTABLE) {  // ... env
    lua_pushnil(L);
    while (lua_next(L, -2)) {  // ... env key value
      std::string key = luaL_checkstring(L, -2);
      call.env.emplace_back(key, luaL_tolstring(L, -1, nullptr));
      lua_pop(L, 2);  // ... env key
    }
  }
  lua_pop(L, 1);
}

void ReadOptions(lua_State* L, int index, ToolCall& call) {
  if (lua_isnoneornil(L, index)) return;
  luaL_checktype(L, index, LUA_TTABLE);
  call.cwd = OptString(L, index, "workdir").value_or(OptString(L, index, "cwd").value_or(""));
  if (auto program = OptString(L, index, "program")) call.tool = *program;
  call.stdin_data = OptString(L, index, "stdin");
  call.timeout = OptDuration(L, index, "timeout");
  call.read_only = OptBool(L, index, "read_only").value_or(false);
  call.stream = OptBool(L, index, "stream").value_or(false);
  if (lua_getfield(L, index, "check_args") == LUA_TTABLE)  // ... check_args
    call.check_args = StringList(L, lua_gettop(L), "check_args");
  lua_pop(L, 1);
  lua_getfield(L, index, "json");  // ... json
  if (lua_toboolean(L, -1))
    call.json = lua_type(L, -1) == LUA_TSTRING && std::string(lua_tostring(L, -1)) == "lines"
                    ? ToolJson::kLines
                    : ToolJson::kDocument;
  lua_pop(L, 1);
  ReadEnv(L, index, call);
}

constexpr char kHelpersLua[] = R"lua(
local M = ...
local run, log, json = M.cli, log, json

local function push(args, ...)
  for i = 1, select("#", ...) do args[#args + 1] = select(i, ...) end
  return args
end

-- A copy of a list (an argument list to extend without touching the caller's).
local function copy(t)
  local out = {}
  for i, v in ipairs(t) do out[i] = v end
  return out
end

local function list(v)
  if v == nil then return {} end
  if type(v) == "table" then return v end
  return { v }
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t or {}) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

-- Options given as a bare string mean {[key] = string} (key defaults to workdir).
local function opts_of(o, key)
  if type(o) == "string" then return { [key or "workdir"] = o } end
  return o or {}
end

local function lines(s)
  local out = {}
  for l in (s or ""):gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- A value for the command line: tables as JSON (valid HCL/YAML too), the rest as text.
local function scalar(v)
  if type(v) == "table" then return json.encode(v) end
  return tostring(v)
end

-- A failed result as an error, for the calls that return objects instead of results.
local function raise(fn, r)
  local msg = r.error or ((r.stderr or "") ~= "" and r.stderr or r.stdout or "")
  msg = msg:gsub("%s+$", "")
  error(("%s: `%s` failed (exit %d): %s"):format(fn, r.command, r.exit_code, msg), 0)
end
)lua";

}  // namespace

int ToolCheckMode(lua_State* L) {
  lua_pushboolean(L, Runtime::From(L).CheckMode(L));
  return 1;
}

std::string ToolLua(const char* body) { return std::string(kHelpersLua) + body; }

std::optional<std::string> FindTool(const std::string& prog, const std::vector<std::string>& env) {
  if (prog.find('/') != std::string::npos)
    return access(prog.c_str(), X_OK) == 0 ? std::optional(prog) : std::nullopt;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& e : env)
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + prog;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

int RunTool(lua_State* L, ToolCall call) {
  Runtime& rt = Runtime::From(L);
  bool check = rt.CheckMode(L);
  if (check && !call.read_only && call.check_args.empty()) return PushSkipped(L, call);
  std::vector<std::string> args = check && !call.read_only ? call.check_args : call.args;
  ProcessSpec spec = MakeSpec(L, call, call.tool, args);
  auto program = FindTool(call.tool, spec.env);
  if (!program) return PushNotFound(L, call);
  spec.argv[0] = *program;
  std::string command = Describe(call.tool, args);
  ExecOptions opts;
  opts.run_in_check_mode = true;  // decided above
  opts.stream = call.stream;
  opts.timeout = call.timeout;
  bool substituted = check && !call.read_only;
  ToolJson json = call.json;
  opts.on_exit = [command, json, substituted](lua_State* co, const ProcessExit& e) {
    PushBase(co, command, e.exit_code, e.out, e.err);  // result
    lua_pushinteger(co, ToMillis(e.elapsed));
    lua_setfield(co, -2, "duration_ms");
    SetParsed(co, json, e.out);
    if (substituted) SetBool(co, "check_mode", true);
    return 1;
  };
  if (call.stream) rt.Log(L, LogLevel::kInfo, "running: " + command);
  return RunCommand(L, std::move(spec), opts);
}

int RunToolFromLua(lua_State* L, const char* tool) {
  luaL_checktype(L, 1, LUA_TTABLE);
  ToolCall call;
  call.tool = tool;
  call.args = StringList(L, 1, "args");
  ReadOptions(L, 2, call);
  return RunTool(L, std::move(call));
}

}  // namespace sloth
