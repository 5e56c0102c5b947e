// salt: runs Salt execution and state functions through the salt CLI (or salt-call --local)
// with JSON output. Under --check, state.apply runs with test=True; other functions that are not
// known to be read-only are skipped.
#include <string>

#include <lua.hpp>

#include "lua/module.h"
#include "lua/modules/cli_tool.h"

namespace sloth {
namespace {

int SaltRun(lua_State* L) { return RunToolFromLua(L, "salt"); }

constexpr char kSaltLua[] = R"lua(
local TARGETING = { glob = nil, pcre = "--pcre", list = "--list", grain = "--grain",
                    pillar = "--pillar", compound = "--compound", nodegroup = "--nodegroup" }
local READ_ONLY = { ["test.ping"] = true, ["test.version"] = true }

local function read_only(fun)
  return READ_ONLY[fun] or fun:match("^grains%.") or fun:match("^pillar%.") or fun:match("%.list") or false
end

-- salt [targeting] TARGET FUN ARGS... (or salt-call --local FUN ARGS... with o["local"]).
local function command(target, fun, fun_args, o)
  local args = { "--out=json" }
  if o["local"] then
    push(args, "--local")
  else
    push(args, "--static")
    if TARGETING[o.tgt_type or "glob"] then push(args, TARGETING[o.tgt_type]) end
    if type(target) == "table" then
      if not o.tgt_type then push(args, "--list") end
      target = table.concat(target, ",")
    end
    push(args, target)
  end
  push(args, fun)
  for _, a in ipairs(fun_args or {}) do push(args, scalar(a)) end
  for _, k in ipairs(sorted_keys(fun_args)) do
    if type(k) == "string" then push(args, k .. "=" .. scalar(fun_args[k])) end
  end
  return args
end

local function salt(args, o, extra)
  local ro = { workdir = o.workdir, env = o.env, timeout = o.timeout, json = true,
               program = o["local"] and "salt-call" or nil }
  for k, v in pairs(extra or {}) do ro[k] = v end
  local r = run(args, ro)
  r.returns = r.data
  if o["local"] and type(r.data) == "table" then r.returns = r.data["local"] end
  return r
end

-- cmd(target, fun, args?, opts?): args is a list of positional arguments plus key = value pairs.
function M.cmd(target, fun, fun_args, o)
  o = o or {}
  return salt(command(target, fun, fun_args, o), o, { read_only = (o.read_only or read_only(fun)) and true or false })
end

function M.ping(target, o)
  return M.cmd(target, "test.ping", nil, o)
end

-- state.apply [sls]; under --check the same with test=True (Salt's own dry run).
function M.state_apply(target, sls, o)
  if type(sls) == "table" then sls, o = nil, sls end
  o = o or {}
  local fun_args = {}
  for _, s in ipairs(list(sls)) do fun_args[#fun_args + 1] = s end
  if o.pillar then fun_args.pillar = o.pillar end
  if o.test then fun_args.test = "True" end
  local args = command(target, "state.apply", fun_args, o)
  return salt(args, o, { check_args = push(command(target, "state.apply", fun_args, o), "test=True") })
end
)lua";

}  // namespace

const Module& SaltModule() {
  static const std::string code = ToolLua(kSaltLua);
  static const Module m = {
      "salt",
      "Salt execution and state functions through the salt CLI (JSON output); test=True under "
      "--check",
      {
          {"cli", SaltRun, "cli(args, opts?) -> result", "Runs salt with an argument list"},
          {"cmd", nullptr, "cmd(target, fun, args?, opts?) -> result",
           "salt TARGET FUN ARGS; result.returns = {minion = value}; {tgt_type, local}"},
          {"ping", nullptr, "ping(target, opts?) -> result", "test.ping"},
          {"state_apply", nullptr, "state_apply(target, sls?, opts?) -> result",
           "state.apply; {pillar, test}"},
      },
      {},
      code.c_str(),
  };
  return m;
}

}  // namespace sloth
