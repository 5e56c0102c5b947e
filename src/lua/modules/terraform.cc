// terraform: init/plan/apply/destroy/output/validate/fmt/show over the terraform CLI, client
// objects bound to a working directory, and tfvars files. Under --check, apply and destroy run
// the matching plan instead; init (which only prepares the working directory) and plan run.
#include <string>

#include <lua.hpp>

#include "lua/module.h"
#include "lua/modules/cli_tool.h"

namespace sloth {
namespace {

int TerraformRun(lua_State* L) { return RunToolFromLua(L, "terraform"); }

constexpr char kTerraformLua[] = R"lua(
local fs_write = fs.write
local BASE = { "-input=false", "-no-color" }

local function tf(args, o, extra)
  local env = { TF_IN_AUTOMATION = "1", TF_INPUT = "0" }
  for k, v in pairs(o.env or {}) do env[k] = v end
  local ro = { workdir = o.workdir or o.dir or o.path, env = env, stream = o.quiet ~= true,
               timeout = o.timeout }
  for k, v in pairs(extra or {}) do ro[k] = v end
  return run(args, ro)
end

local function command(name, ...)
  local args = { name }
  for _, a in ipairs(BASE) do args[#args + 1] = a end
  return push(args, ...)
end

-- -var-file, -var and -target, in that order.
local function var_args(args, o)
  for _, f in ipairs(list(o.var_file or o.var_files)) do push(args, "-var-file=" .. f) end
  local vars = o.vars or {}
  for _, k in ipairs(sorted_keys(vars)) do push(args, "-var", k .. "=" .. scalar(vars[k])) end
  for _, t in ipairs(list(o.target or o.targets)) do push(args, "-target=" .. t) end
  return args
end

local function counts(r, pattern, names)
  local found = { r.stdout:match(pattern) }
  if #found == 0 then return nil end
  local out = {}
  for i, name in ipairs(names) do out[name] = tonumber(found[i]) end
  return out
end

local function plan_summary(r)
  r.changes = counts(r, "Plan: (%d+) to add, (%d+) to change, (%d+) to destroy", { "add", "change", "destroy" })
  if r.changes then r.has_changes = true
  elseif r.stdout:find("Changes to Outputs:", 1, true) then  -- outputs only: nothing to add
    r.changes, r.has_changes = { add = 0, change = 0, destroy = 0 }, true
  elseif r.stdout:find("No changes.", 1, true) then
    r.changes, r.has_changes = { add = 0, change = 0, destroy = 0 }, false
  end
  return r
end

function M.init(o)
  o = opts_of(o)
  local args = command("init")
  local backend = o.backend_config
  if type(backend) == "table" then
    for _, k in ipairs(sorted_keys(backend)) do push(args, "-backend-config=" .. k .. "=" .. scalar(backend[k])) end
  else
    for _, f in ipairs(list(backend)) do push(args, "-backend-config=" .. f) end
  end
  if o.backend == false then push(args, "-backend=false") end
  if o.upgrade then push(args, "-upgrade") end
  if o.reconfigure then push(args, "-reconfigure") end
  local r = tf(args, o, { read_only = true })
  local client = M.client(o.workdir or o.dir or o.path)
  for k, v in pairs(r) do client[k] = v end
  return client
end

function M.plan(o)
  o = opts_of(o)
  local args = var_args(command("plan"), o)
  if o.out then push(args, "-out=" .. o.out) end
  if o.destroy then push(args, "-destroy") end
  if o.detailed_exitcode then push(args, "-detailed-exitcode") end
  local r = plan_summary(tf(args, o, { read_only = true }))
  if o.detailed_exitcode and r.exit_code == 2 then r.success, r.has_changes = true, true end
  return r
end

function M.apply(o)
  o = opts_of(o)
  local plan_file = o.plan or o.plan_file
  local args = command("apply")
  if o.auto_approve then push(args, "-auto-approve") end
  local check
  if plan_file then
    push(args, plan_file)
    check = { "show", "-no-color", plan_file }
  else
    var_args(args, o)
    check = var_args(command("plan"), o)
  end
  local r = tf(args, o, { check_args = check })
  if r.check_mode then return plan_summary(r) end
  r.resources = counts(r, "Resources: (%d+) added, (%d+) changed, (%d+) destroyed", { "added", "changed", "destroyed" })
  return r
end

function M.destroy(o)
  o = opts_of(o)
  local args = command("destroy")
  if o.auto_approve then push(args, "-auto-approve") end
  var_args(args, o)
  local r = tf(args, o, { check_args = push(var_args(command("plan"), o), "-destroy") })
  if r.check_mode then return plan_summary(r) end
  r.resources = counts(r, "Resources: (%d+) destroyed", { "destroyed" })
  return r
end

-- result.outputs = {name = value}; with o.name, result.value is that output's value.
function M.output(o)
  o = opts_of(o)
  local args = { "output", "-json", "-no-color" }
  if o.name then push(args, o.name) end
  local r = tf(args, o, { read_only = true, json = true, stream = false })
  if not r.success or r.data == nil then return r end
  if o.name then
    r.value = r.data
  else
    r.outputs = {}
    for k, v in pairs(r.data) do r.outputs[k] = type(v) == "table" and v.value or v end
  end
  return r
end

function M.validate(o)
  o = opts_of(o)
  local r = tf({ "validate", "-json", "-no-color" }, o, { read_only = true, json = true, stream = false })
  if type(r.data) == "table" then
    r.valid, r.diagnostics = r.data.valid, r.data.diagnostics
    r.error_count, r.warning_count = r.data.error_count, r.data.warning_count
  end
  return r
end

-- result.files lists the files that were (or, with check / under --check, would be) rewritten.
function M.fmt(o)
  o = opts_of(o)
  local args = { "fmt", "-list=true", "-no-color" }
  if o.recursive then push(args, "-recursive") end
  if o.diff then push(args, "-diff") end
  local check = push({ "fmt", "-check", "-list=true", "-no-color" }, o.recursive and "-recursive" or nil)
  if o.check then args = check end
  local r = tf(args, o, { read_only = o.check, check_args = check, stream = false })
  r.files = lines(r.stdout)
  r.formatted = r.exit_code == 0 and (o.check or r.check_mode or #r.files == 0)
  if r.check_mode and r.exit_code == 3 then r.success = true end  -- "would reformat" is not a failure
  r.changed = not o.check and not r.check_mode and r.success and #r.files > 0
  return r
end

function M.show(o)
  o = opts_of(o)
  local args = { "show", "-json", "-no-color" }
  if o.plan or o.plan_file then push(args, o.plan or o.plan_file) end
  return tf(args, o, { read_only = true, json = true, stream = false })
end

-- "key = value" lines the way terraform fmt writes them: the = of consecutive one-line
-- attributes line up; a multi-line value ends the group.
local function aligned(items, pad)
  local out, i = {}, 1
  while i <= #items do
    local j, width = i, 0
    while j <= #items and not items[j][2]:find("\n") do
      width = math.max(width, #items[j][1])
      j = j + 1
    end
    for g = i, j - 1 do
      out[#out + 1] = pad .. items[g][1] .. string.rep(" ", width - #items[g][1]) .. " = " .. items[g][2]
    end
    if j <= #items then out[#out + 1] = pad .. items[j][1] .. " = " .. items[j][2] end
    i = j + 1
  end
  return table.concat(out, "\n")
end

-- HCL for a tfvars file: strings quoted (and ${ escaped), lists, maps, numbers, booleans.
local function hcl(v, indent)
  local t = type(v)
  if t == "string" then
    return '"' .. v:gsub('[\\"]', "\\%0"):gsub("\n", "\\n"):gsub("%${", "$${"):gsub("%%{", "%%%%{") .. '"'
  elseif t == "number" then
    return math.type(v) == "integer" and tostring(v) or string.format("%.17g", v)
  elseif t == "boolean" then
    return tostring(v)
  elseif t ~= "table" then
    error("terraform.create_tfvars: cannot write a " .. t, 0)
  end
  local pad = string.rep("  ", indent + 1)
  if #v > 0 or next(v) == nil then
    local items = {}
    for _, item in ipairs(v) do items[#items + 1] = hcl(item, indent + 1) end
    return "[" .. table.concat(items, ", ") .. "]"
  end
  local items = {}
  for _, k in ipairs(sorted_keys(v)) do items[#items + 1] = { '"' .. tostring(k) .. '"', hcl(v[k], indent + 1) } end
  return "{\n" .. aligned(items, pad) .. "\n" .. string.rep("  ", indent) .. "}"
end

local function tfvars_text(filename, vars)
  if filename:match("%.json$") then return json.encode(vars) .. "\n" end
  local items = {}
  for _, k in ipairs(sorted_keys(vars)) do
    if not tostring(k):match("^[%a_][%w_-]*$") then
      error("terraform.create_tfvars: '" .. tostring(k) .. "' is not a variable name", 0)
    end
    items[#items + 1] = { k, hcl(vars[k], 0) }
  end
  return aligned(items, "") .. "\n"
end

-- Writes `filename` (relative to workdir when given) -> {success, filename, path, content}.
function M.create_tfvars(filename, vars, workdir)
  if type(filename) ~= "string" or filename == "" then error("terraform.create_tfvars: filename must be a string", 0) end
  if type(vars) ~= "table" then error("terraform.create_tfvars: variables must be a table", 0) end
  local path = filename
  if workdir and filename:sub(1, 1) ~= "/" then path = workdir:gsub("/+$", "") .. "/" .. filename end
  local content = tfvars_text(filename, vars)
  fs_write(path, content)
  return { success = true, filename = filename, path = path, content = content }
end

-- Client objects: the functions above bound to a working directory.
local Client = {}
Client.__index = Client
Client.__tostring = function(c) return "terraform client " .. tostring(c.workdir) end

local function bound(self, o)
  local out = {}
  for k, v in pairs(self.defaults or {}) do out[k] = v end
  for k, v in pairs(opts_of(o)) do out[k] = v end
  out.workdir = out.workdir or self.workdir
  return out
end

for _, name in ipairs({ "init", "plan", "apply", "destroy", "validate", "fmt", "show" }) do
  Client[name] = function(self, o) return M[name](bound(self, o)) end
end

function Client:output(o)
  if type(o) == "string" then o = { name = o } end
  return M.output(bound(self, o))
end

function Client:create_tfvars(filename, vars)
  return M.create_tfvars(filename, vars, self.workdir)
end

-- client(workdir, defaults?): defaults (vars, var_file, env...) go into every call.
function M.client(workdir, defaults)
  if type(workdir) == "table" then workdir, defaults = workdir.workdir, workdir end
  return setmetatable({ workdir = workdir, defaults = defaults }, Client)
end
)lua";

}  // namespace

const Module& TerraformModule() {
  static const std::string code = ToolLua(kTerraformLua);
  static const Module m = {
      "terraform",
      "The terraform CLI: init/plan/apply/destroy/output/validate/fmt, clients, tfvars files",
      {
          {"cli", TerraformRun, "cli(args, opts?) -> result",
           "Runs terraform with an argument list"},
          {"init", nullptr, "init(workdir | opts) -> client",
           "terraform init; the client also carries the result (success, stdout...)"},
          {"plan", nullptr, "plan(opts) -> result",
           "{workdir, var_file, vars, target, out, destroy}; result.changes"},
          {"apply", nullptr, "apply(opts) -> result",
           "{workdir, var_file, vars, auto_approve, plan}; runs plan under --check"},
          {"destroy", nullptr, "destroy(opts) -> result", "Runs plan -destroy under --check"},
          {"output", nullptr, "output(opts) -> result", "result.outputs = {name = value}"},
          {"validate", nullptr, "validate(opts) -> result", "result.valid, result.diagnostics"},
          {"fmt", nullptr, "fmt(opts) -> result", "{check, recursive}; result.files"},
          {"show", nullptr, "show(opts) -> result", "show -json; result.data"},
          {"create_tfvars", nullptr, "create_tfvars(filename, vars, workdir?) -> {filename, path}",
           "Writes HCL (or JSON for *.json)"},
          {"client", nullptr, "client(workdir, defaults?) -> client",
           "Methods init/plan/apply/destroy/output/validate/fmt/show/create_tfvars"},
      },
      {},
      code.c_str(),
  };
  return m;
}

}  // namespace sloth
