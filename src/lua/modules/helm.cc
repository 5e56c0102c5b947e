// helm: releases and repositories over the helm CLI; install/upgrade/status/list parse helm's
// JSON. Under --check, install/upgrade/uninstall run with --dry-run; repo changes are skipped.
#include <string>

#include <lua.hpp>

#include "lua/module.h"
#include "lua/modules/cli_tool.h"

namespace sloth {
namespace {

int HelmRun(lua_State* L) { return RunToolFromLua(L, "helm"); }

constexpr char kHelmLua[] = R"lua(
local function common(args, o)
  if o.namespace then push(args, "--namespace", o.namespace) end
  if o.kube_context then push(args, "--kube-context", o.kube_context) end
  if o.kubeconfig then push(args, "--kubeconfig", o.kubeconfig) end
  return args
end

local function helm(args, o, extra)
  common(args, o)
  local ro = { workdir = o.workdir, env = o.env, timeout = o.timeout }
  for k, v in pairs(extra or {}) do ro[k] = v end
  return run(args, ro)
end

-- name, chart, opts or {name, chart, ...}
local function release(name, chart, o)
  if type(name) == "table" then return name.name, name.chart, name end
  return name, chart, o or {}
end

local function chart_args(args, o)
  for _, f in ipairs(list(o.values or o.values_files)) do push(args, "--values", f) end
  for _, k in ipairs(sorted_keys(o.set)) do push(args, "--set", k .. "=" .. scalar(o.set[k])) end
  if o.version then push(args, "--version", o.version) end
  if o.create_namespace then push(args, "--create-namespace") end
  if o.wait then push(args, "--wait") end
  if o.wait_timeout then push(args, "--timeout", o.wait_timeout) end
  return push(args, "-o", "json")
end

local function deploy(verb, name, chart, o)
  local args = chart_args({ verb, name, chart }, o)
  if verb == "upgrade" and o.install ~= false then push(args, "--install") end
  local r = helm(args, o, { json = true, check_args = push(common(copy(args), o), "--dry-run") })
  r.release = r.data
  return r
end

function M.install(name, chart, o)
  name, chart, o = release(name, chart, o)
  return deploy("install", name, chart, o)
end

-- upgrade --install unless install = false.
function M.upgrade(name, chart, o)
  name, chart, o = release(name, chart, o)
  return deploy("upgrade", name, chart, o)
end

function M.uninstall(name, o)
  o = o or {}
  local args = { "uninstall", name }
  return helm(args, o, { check_args = push(common(copy(args), o), "--dry-run") })
end

function M.list(o)
  o = o or {}
  local args = { "list", "-o", "json" }
  if o.all_namespaces then push(args, "--all-namespaces") end
  local r = helm(args, o, { read_only = true, json = true })
  r.releases = r.data
  return r
end

function M.status(name, o)
  o = o or {}
  local r = helm({ "status", name, "-o", "json" }, o, { read_only = true, json = true })
  r.release = r.data
  return r
end

function M.repo_add(name, url, o)
  return helm({ "repo", "add", name, url, "--force-update" }, o or {})
end

function M.repo_update(o)
  return helm({ "repo", "update" }, o or {})
end
)lua";

}  // namespace

const Module& HelmModule() {
  static const std::string code = ToolLua(kHelmLua);
  static const Module m = {
      "helm",
      "The helm CLI: install/upgrade/uninstall/list/status, repositories; --dry-run under --check",
      {
          {"cli", HelmRun, "cli(args, opts?) -> result", "Runs helm with an argument list"},
          {"install", nullptr, "install(name, chart, opts?) -> result",
           "{namespace, values, set, version, create_namespace, wait}; result.release"},
          {"upgrade", nullptr, "upgrade(name, chart, opts?) -> result",
           "upgrade --install (unless install = false)"},
          {"uninstall", nullptr, "uninstall(name, opts?) -> result", "helm uninstall"},
          {"list", nullptr, "list(opts?) -> result", "result.releases"},
          {"status", nullptr, "status(name, opts?) -> result", "result.release"},
          {"repo_add", nullptr, "repo_add(name, url, opts?) -> result", "helm repo add"},
          {"repo_update", nullptr, "repo_update(opts?) -> result", "helm repo update"},
      },
      {},
      code.c_str(),
  };
  return m;
}

}  // namespace sloth
