// kubernetes: kubectl with argument lists; `get` and `apply` parse kubectl's JSON. Under
// --check, changes run with --dry-run=client (nothing reaches the cluster); exec is skipped.
#include <string>

#include <lua.hpp>

#include "lua/module.h"
#include "lua/modules/cli_tool.h"

namespace sloth {
namespace {

int KubectlRun(lua_State* L) { return RunToolFromLua(L, "kubectl"); }

constexpr char kKubernetesLua[] = R"lua(
local function common(args, o)
  if o.namespace then push(args, "--namespace", o.namespace) end
  if o.context then push(args, "--context", o.context) end
  if o.kubeconfig then push(args, "--kubeconfig", o.kubeconfig) end
  return args
end

-- A change: under --check the same command runs with --dry-run=client.
local function change(args, o, extra)
  common(args, o)
  local ro = { workdir = o.workdir, env = o.env, timeout = o.timeout,
               check_args = push(copy(args), "--dry-run=client") }
  for k, v in pairs(extra or {}) do ro[k] = v end
  return run(args, ro)
end

local function look(args, o, json_out)
  return run(common(args, o), { workdir = o.workdir, env = o.env, timeout = o.timeout,
                                read_only = true, json = json_out })
end

-- kind, name, opts or {kind, name, ...}
local function target(kind, name, o)
  if type(kind) == "table" then return kind.kind, kind.name, kind end
  if type(name) == "table" then return kind, nil, name end
  return kind, name, o or {}
end

-- {file | files | kustomize | manifest (YAML/JSON text or a table), namespace, context}
function M.apply(o)
  o = opts_of(o, "file")
  local args, stdin = { "apply", "-o", "json" }, nil
  for _, f in ipairs(list(o.file or o.files)) do push(args, "-f", f) end
  if o.kustomize then push(args, "-k", o.kustomize) end
  if o.manifest then
    push(args, "-f", "-")
    stdin = type(o.manifest) == "table" and json.encode(o.manifest) or o.manifest
  end
  if o.server_side then push(args, "--server-side") end
  local r = change(args, o, { stdin = stdin, json = true })
  r.object = r.data
  return r
end

function M.get(kind, name, o)
  kind, name, o = target(kind, name, o)
  local args = { "get", kind }
  if name then push(args, name) end
  if o.selector then push(args, "--selector", o.selector) end
  if o.all_namespaces then push(args, "--all-namespaces") end
  push(args, "-o", "json")
  local r = look(args, o, true)
  if type(r.data) == "table" then
    if r.data.kind == "List" or (r.data.kind or ""):match("List$") then r.items = r.data.items
    else r.object = r.data end
  end
  return r
end

function M.describe(kind, name, o)
  kind, name, o = target(kind, name, o)
  return look({ "describe", kind, name }, o)
end

function M.delete(kind, name, o)
  kind, name, o = target(kind, name, o)
  local args = { "delete", "--ignore-not-found" }
  if o.file then push(args, "-f", o.file) else push(args, kind, name) end
  return change(args, o)
end

function M.logs(pod, o)
  o = o or {}
  local args = { "logs", pod }
  if o.container then push(args, "--container", o.container) end
  if o.tail then push(args, "--tail", tostring(o.tail)) end
  if o.since then push(args, "--since", o.since) end
  return look(args, o)
end

function M.rollout_status(resource, o)
  o = o or {}
  local args = { "rollout", "status", resource }
  if o.wait_timeout then push(args, "--timeout", o.wait_timeout) end
  return look(args, o)
end

function M.scale(resource, replicas, o)
  return change({ "scale", resource, "--replicas=" .. math.tointeger(replicas) }, o or {})
end

-- Idempotent: an existing namespace is left alone (changed = false).
function M.create_namespace(name, o)
  o = o or {}
  local found = look({ "get", "namespace", name, "-o", "name" }, o)
  if found.success then
    found.changed = false
    return found
  end
  if found.exit_code == 127 then return found end
  local r = change({ "create", "namespace", name }, o)
  r.changed = r.success
  return r
end

-- cmd: a list (argv in the container) or a string (run by sh -c in the container).
function M.exec(pod, cmd, o)
  o = o or {}
  local args = { "exec", pod }
  if o.container then push(args, "--container", o.container) end
  push(args, "--")
  if type(cmd) == "string" then push(args, "sh", "-c", cmd) else push(args, table.unpack(cmd)) end
  return run(common(args, o), { workdir = o.workdir, env = o.env, timeout = o.timeout, stdin = o.stdin })
end
)lua";

}  // namespace

const Module& KubernetesModule() {
  static const std::string code = ToolLua(kKubernetesLua);
  static const Module m = {
      "kubernetes",
      "kubectl: apply/get/delete/describe/logs/scale/rollout_status/exec; --dry-run under --check",
      {
          {"cli", KubectlRun, "cli(args, opts?) -> result", "Runs kubectl with an argument list"},
          {"apply", nullptr, "apply(opts) -> result",
           "{file, kustomize, manifest, namespace, context}; result.object"},
          {"get", nullptr, "get(kind, name?, opts?) -> result", "result.items or result.object"},
          {"describe", nullptr, "describe(kind, name, opts?) -> result", "kubectl describe"},
          {"delete", nullptr, "delete(kind, name, opts?) -> result", "--ignore-not-found"},
          {"logs", nullptr, "logs(pod, opts?) -> result", "{container, tail, since}"},
          {"rollout_status", nullptr, "rollout_status(resource, opts?) -> result",
           "Waits for a rollout; {wait_timeout}"},
          {"scale", nullptr, "scale(resource, replicas, opts?) -> result", "kubectl scale"},
          {"create_namespace", nullptr, "create_namespace(name, opts?) -> result",
           "Creates it unless it exists"},
          {"exec", nullptr, "exec(pod, cmd, opts?) -> result", "Runs a command in a pod"},
      },
      {"kubectl"},
      code.c_str(),
  };
  return m;
}

}  // namespace sloth
