// incus: the seed's fluent API over the incus CLI: instances, networks, profiles, storage pools
// and snapshots. Each step returns its object (so calls chain) and raises when incus fails;
// creating what already exists is a no-op. Under --check, changes are logged and skipped.
#include <string>

#include <lua.hpp>

#include "lua/module.h"
#include "lua/modules/cli_tool.h"

namespace sloth {
namespace {

int IncusRun(lua_State* L) { return RunToolFromLua(L, "incus"); }

constexpr char kIncusLua[] = R"lua(
local sleep = time.sleep

local function incus(fn, args, read_only)
  local r = run(args, { read_only = read_only })
  if not r.success and not r.skipped then raise("incus." .. fn, r) end
  return r
end

-- Whether `args` (a show/list command) finds the object; raises when incus is missing.
local function exists(args)
  local r = run(args, { read_only = true })
  if r.exit_code == 127 then raise("incus", r) end
  return r.success
end

local function config_pairs(config)
  local out = {}
  for _, k in ipairs(sorted_keys(config)) do out[#out + 1] = k .. "=" .. scalar(config[k]) end
  return out
end

local function class(kind)
  local c = { kind = kind }
  c.__index = c
  c.__tostring = function(o) return "incus " .. kind .. " " .. tostring(o.name) end
  function c:set_config(config)
    self.config = self.config or {}
    for k, v in pairs(config) do self.config[k] = v end
    return self
  end
  function c:delegate_to(host)
    error("incus: running on " .. tostring(host) .. " needs a master (distributed execution is not available yet)", 0)
  end
  return c
end

local function new(c, spec, required)
  if type(spec) ~= "table" then error("incus." .. c.kind .. ": expected a table", 0) end
  for _, field in ipairs(required) do
    if type(spec[field]) ~= "string" then error("incus." .. c.kind .. ": " .. field .. " is required", 0) end
  end
  local o = {}
  for k, v in pairs(spec) do o[k] = v end
  return setmetatable(o, c)
end

-- Instances -------------------------------------------------------------------------------
local Instance = class("instance")

function M.instance(spec) return new(Instance, spec, { "name" }) end

-- The instance's state from `incus list`, or nil when it does not exist.
function Instance:state()
  local r = run({ "list", "^" .. self.name .. "$", "--format", "json" }, { read_only = true, json = true })
  if r.exit_code == 127 then raise("incus", r) end
  if type(r.data) == "table" and r.data[1] then return r.data[1] end
end

function Instance:create()
  if self:state() then return self end
  local args = { "init", self.image or error("incus.instance: image is required to create", 0), self.name }
  if self.type == "virtual-machine" or self.vm then push(args, "--vm") end
  for _, p in ipairs(list(self.profiles)) do push(args, "--profile", p) end
  for _, kv in ipairs(config_pairs(self.config)) do push(args, "--config", kv) end
  if self.storage then push(args, "--storage", self.storage) end
  if self.network then push(args, "--network", self.network) end
  incus("instance:create", args)
  return self
end

function Instance:start()
  local s = self:state()
  if not (s and s.status == "Running") then incus("instance:start", { "start", self.name }) end
  return self
end

function Instance:stop(opts)
  local s = self:state()
  if s and s.status ~= "Stopped" then
    incus("instance:stop", push({ "stop", self.name }, opts and opts.force and "--force" or nil))
  end
  return self
end

function Instance:restart() incus("instance:restart", { "restart", self.name }) return self end

function Instance:delete()
  if self:state() then incus("instance:delete", { "delete", self.name, "--force" }) end
  return self
end

-- Polls until the instance runs (default 60s); under --check returns at once.
function Instance:wait_running(timeout)
  if M.check_mode() then return self end  -- nothing was created or started
  local deadline = os.time() + (timeout or 60)
  while true do
    local s = self:state()
    if s and s.status == "Running" then return self end
    if os.time() >= deadline then
      error(("incus.instance:wait_running: %s is %s after %ds"):format(self.name, s and s.status or "missing", timeout or 60), 0)
    end
    sleep(1)
  end
end

-- cmd: a string (sh -c inside the instance) or an argv list. Raises unless it exits 0.
function Instance:exec(cmd, opts)
  local args = { "exec", self.name }
  for _, k in ipairs(sorted_keys(opts and opts.env)) do push(args, "--env", k .. "=" .. scalar(opts.env[k])) end
  push(args, "--")
  if type(cmd) == "string" then push(args, "sh", "-c", cmd) else push(args, table.unpack(cmd)) end
  self.last_result = incus("instance:exec", args)
  return self
end

function Instance:file_push(src, dest)
  incus("instance:file_push", { "file", "push", src, self.name .. dest })
  return self
end

function Instance:file_pull(src, dest)
  incus("instance:file_pull", { "file", "pull", self.name .. src, dest })
  return self
end

-- Networks --------------------------------------------------------------------------------
local Network = class("network")

function M.network(spec) return new(Network, spec, { "name" }) end

function Network:create()
  if exists({ "network", "show", self.name }) then return self end
  local args = { "network", "create", self.name }
  for _, kv in ipairs(config_pairs(self.config)) do push(args, kv) end
  if self.type then push(args, "--type", self.type) end
  incus("network:create", args)
  return self
end

function Network:delete()
  if exists({ "network", "show", self.name }) then incus("network:delete", { "network", "delete", self.name }) end
  return self
end

function Network:attach(instance, device)
  incus("network:attach", push({ "network", "attach", self.name, instance }, device))
  return self
end

function Network:detach(instance, device)
  incus("network:detach", push({ "network", "detach", self.name, instance }, device))
  return self
end

-- Profiles --------------------------------------------------------------------------------
local Profile = class("profile")

function M.profile(spec) return new(Profile, spec, { "name" }) end

function Profile:create()
  if not exists({ "profile", "show", self.name }) then
    incus("profile:create", { "profile", "create", self.name })
  end
  for _, k in ipairs(sorted_keys(self.config)) do
    incus("profile:create", { "profile", "set", self.name, k .. "=" .. scalar(self.config[k]) })
  end
  if self.description then
    incus("profile:create", { "profile", "set", self.name, "--property", "description=" .. self.description })
  end
  return self
end

function Profile:delete()
  if exists({ "profile", "show", self.name }) then incus("profile:delete", { "profile", "delete", self.name }) end
  return self
end

function Profile:apply(instance)
  incus("profile:apply", { "profile", "add", instance, self.name })
  return self
end

function Profile:remove_from(instance)
  incus("profile:remove_from", { "profile", "remove", instance, self.name })
  return self
end

-- Storage pools ---------------------------------------------------------------------------
local Storage = class("storage")

function M.storage(spec) return new(Storage, spec, { "name" }) end

function Storage:create()
  if exists({ "storage", "show", self.name }) then return self end
  local args = { "storage", "create", self.name, self.driver or "dir" }
  for _, kv in ipairs(config_pairs(self.config)) do push(args, kv) end
  incus("storage:create", args)
  return self
end

function Storage:delete()
  if exists({ "storage", "show", self.name }) then incus("storage:delete", { "storage", "delete", self.name }) end
  return self
end

-- Snapshots -------------------------------------------------------------------------------
local Snapshot = class("snapshot")

function M.snapshot(spec) return new(Snapshot, spec, { "instance", "name" }) end

function Snapshot:create()
  incus("snapshot:create", push({ "snapshot", "create", self.instance, self.name }, self.stateful and "--stateful" or nil))
  return self
end

function Snapshot:restore()
  incus("snapshot:restore", { "snapshot", "restore", self.instance, self.name })
  return self
end

function Snapshot:delete()
  incus("snapshot:delete", { "snapshot", "delete", self.instance, self.name })
  return self
end

-- Plain queries ---------------------------------------------------------------------------
function M.list(o)
  o = o or {}
  local r = run(push({ "list", "--format", "json" }, o.filter), { read_only = true, json = true })
  r.instances = r.data
  return r
end
)lua";

}  // namespace

const Module& IncusModule() {
  static const std::string code = ToolLua(kIncusLua);
  static const Module m = {
      "incus",
      "The incus CLI as a fluent API: instances, networks, profiles, storage pools, snapshots",
      {
          {"cli", IncusRun, "cli(args, opts?) -> result", "Runs incus with an argument list"},
          {"instance", nullptr, "instance{name, image, profiles, config, vm} -> instance",
           ":create():start():wait_running(), :stop, :restart, :delete, :exec, :file_push/pull"},
          {"network", nullptr, "network{name, type} -> network",
           ":set_config(t):create(), :delete, :attach(instance), :detach(instance)"},
          {"profile", nullptr, "profile{name, description} -> profile",
           ":set_config(t):create(), :delete, :apply(instance), :remove_from(instance)"},
          {"storage", nullptr, "storage{name, driver} -> pool", ":set_config(t):create(), :delete"},
          {"snapshot", nullptr, "snapshot{instance, name, stateful} -> snapshot",
           ":create, :restore, :delete"},
          {"check_mode", ToolCheckMode, "check_mode() -> bool", "Whether the run is under --check"},
          {"list", nullptr, "list(opts?) -> result", "result.instances (incus list as JSON)"},
      },
      {},
      code.c_str(),
  };
  return m;
}

}  // namespace sloth
