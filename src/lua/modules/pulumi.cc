// pulumi: preview/up/destroy/refresh, stack outputs, config and stack selection over the pulumi
// CLI (non-interactive). Under --check, up runs a preview and destroy/refresh run with
// --preview-only.
#include <string>

#include <lua.hpp>

#include "lua/module.h"
#include "lua/modules/cli_tool.h"

namespace sloth {
namespace {

int PulumiRun(lua_State* L) { return RunToolFromLua(L, "pulumi"); }

constexpr char kPulumiLua[] = R"lua(
local function common(args, o)
  push(args, "--non-interactive")
  if o.stack then push(args, "--stack", o.stack) end
  return args
end

local function pulumi(args, o, extra)
  local env = { PULUMI_SKIP_UPDATE_CHECK = "true" }
  for k, v in pairs(o.env or {}) do env[k] = v end
  local ro = { workdir = o.workdir or o.dir, env = env, stream = o.quiet ~= true, timeout = o.timeout }
  for k, v in pairs(extra or {}) do ro[k] = v end
  if ro.check_args then common(ro.check_args, o) end
  return run(common(args, o), ro)
end

-- --config k=v for each o.config entry, sorted.
local function config_args(args, o)
  for _, k in ipairs(sorted_keys(o.config)) do push(args, "--config", k .. "=" .. scalar(o.config[k])) end
  for _, t in ipairs(list(o.target or o.targets)) do push(args, "--target", t) end
  return args
end

-- result.changes: the preview's change summary ({create = 1, same = 2...}).
function M.preview(o)
  o = opts_of(o)
  local r = pulumi(config_args({ "preview", "--json" }, o), o, { read_only = true, json = true, stream = false })
  if type(r.data) == "table" then r.changes = r.data.changeSummary end
  return r
end

function M.up(o)
  o = opts_of(o)
  return pulumi(config_args({ "up", "--yes", "--skip-preview" }, o), o,
                { check_args = config_args({ "preview" }, o) })
end

function M.destroy(o)
  o = opts_of(o)
  return pulumi({ "destroy", "--yes", "--skip-preview" }, o, { check_args = { "destroy", "--preview-only" } })
end

function M.refresh(o)
  o = opts_of(o)
  return pulumi({ "refresh", "--yes", "--skip-preview" }, o, { check_args = { "refresh", "--preview-only" } })
end

-- result.outputs = {name = value}.
function M.outputs(o)
  o = opts_of(o)
  local r = pulumi({ "stack", "output", "--json" }, o, { read_only = true, json = true, stream = false })
  if type(r.data) == "table" then r.outputs = r.data end
  return r
end

function M.config_set(key, value, o)
  o = opts_of(o)
  local args = { "config", "set", key, scalar(value) }
  if o.secret then push(args, "--secret") end
  if o.path then push(args, "--path") end
  return pulumi(args, o, { stream = false })
end

function M.stack_select(name, o)
  o = opts_of(o)
  local args = { "stack", "select", name }
  if o.create then push(args, "--create") end
  return pulumi(args, o, { stream = false, read_only = not o.create })
end
)lua";

}  // namespace

const Module& PulumiModule() {
  static const std::string code = ToolLua(kPulumiLua);
  static const Module m = {
      "pulumi",
      "The pulumi CLI: preview/up/destroy/refresh, stack outputs, config",
      {
          {"cli", PulumiRun, "cli(args, opts?) -> result", "Runs pulumi with an argument list"},
          {"preview", nullptr, "preview(opts) -> result",
           "{workdir, stack, config, target}; result.changes"},
          {"up", nullptr, "up(opts) -> result", "pulumi up --yes; a preview under --check"},
          {"destroy", nullptr, "destroy(opts) -> result", "--preview-only under --check"},
          {"refresh", nullptr, "refresh(opts) -> result", "--preview-only under --check"},
          {"outputs", nullptr, "outputs(opts) -> result", "result.outputs = {name = value}"},
          {"config_set", nullptr, "config_set(key, value, opts?) -> result", "{secret, path}"},
          {"stack_select", nullptr, "stack_select(name, opts?) -> result", "{create}"},
      },
      {},
      code.c_str(),
  };
  return m;
}

}  // namespace sloth
