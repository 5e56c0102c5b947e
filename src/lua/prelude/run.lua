-- run.lua: how one attempt of a task runs: conditions, hooks, the command, and the return
-- conventions. Runs inside the task's coroutine, so anything in it may yield.
local internal = ...
local getlocal = debug.getlocal

-- Argument binding by parameter name: a first parameter named `this` or `self` gets the task
-- object; the others get params and then the hook's third value.
local function bind_call(fn, this, params, third)
  local first = getlocal(fn, 1)
  if first == "this" or first == "self" then return fn(this, params, third) end
  return fn(params, third)
end
internal.bind_call = bind_call

local function condition(c, this, params, deps)
  if type(c) == "string" then return internal.shell_probe(c).exit_code == 0 end
  if type(c) == "function" then return bind_call(c, this, params, deps) and true or false end
  return c and true or false
end

-- Methods work with `.` and `:`, so they ignore their arguments.
local function method(value) return function() return value end end

-- The task object. `name`, `workdir` and `agent` are made on first use: most tasks never ask,
-- and a run may have thousands of tasks.
local lazy_members = {
  name = function(ctx) return method(ctx.name) end,
  workdir = function(ctx)
    return {
      get = method(ctx.workdir),
      exists = function() return internal.is_dir(ctx.workdir) end,
      ensure = function() return internal.mkdir_p(ctx.workdir) end,
    }
  end,
  agent = function(ctx) return { get = method(ctx.agent) } end,
}
local CONTEXT = {}  -- private key: the task's context inside its `this`
local This = {
  __index = function(this, key)
    local make = lazy_members[key]
    if not make then return nil end
    local value = make(rawget(this, CONTEXT))
    rawset(this, key, value)
    return value
  end,
}

function internal.make_this(def, ctx)
  ctx.name = def.name
  return setmetatable({ params = ctx.params, attempt = ctx.attempt, [CONTEXT] = ctx }, This)
end

function internal.make_params(wf_params, task_params, extra)
  local p = {}
  for k, v in pairs(wf_params or {}) do p[k] = v end
  for k, v in pairs(task_params or {}) do p[k] = v end
  for k, v in pairs(extra) do p[k] = v end
  return p
end

local function stderr_tail(r)
  local err = tostring(r.stderr or ""):gsub("%s+$", "")
  local last = err:match("([^\n]*)$") or ""
  local msg = "command exited with code " .. tostring(r.exit_code)
  if last ~= "" then msg = msg .. ": " .. last end
  return msg
end

-- The return conventions: nil = success; true/false, message, output; a table with a boolean
-- `success` decides and becomes the output; `nil, "err"` is a failure.
local function normalize(n, first, second, third)
  if n == 0 or (first == nil and second == nil) then return true, nil, nil end
  if type(first) == "table" and type(first.success) == "boolean" then
    local msg = first.message
    if not first.success and msg == nil then msg = first.error or stderr_tail(first) end
    return first.success, msg ~= nil and tostring(msg) or nil, first
  end
  if first == nil then return false, tostring(second), nil end
  if first == false then
    return false, second ~= nil and tostring(second) or "task returned false",
           type(third) == "table" and third or nil
  end
  return true, second ~= nil and tostring(second) or nil, type(third) == "table" and third or nil
end

-- Returns kind ("skipped" | "aborted" | "failed" | "ok"), message, output. An abort is a failure
-- that is not retried.
function internal.run_attempt(def, this, params, deps)
  if def.run_if ~= nil and not condition(def.run_if, this, params, deps) then
    return "skipped", "run_if condition is false"
  end
  if def.abort_if ~= nil and condition(def.abort_if, this, params, deps) then
    return "aborted", "aborted: abort_if condition is true"
  end
  if def.pre_hook then
    local ok, msg = bind_call(def.pre_hook, this, params, deps)
    if ok == false then return "failed", "pre_hook failed: " .. tostring(msg) end
  end
  local cmd = def.command
  local ok, msg, output
  if type(cmd) == "string" then
    local r = internal.shell_command(cmd)
    ok, msg = r.success, nil
    if not ok then msg = stderr_tail(r) end
    output = { stdout = r.stdout, stderr = r.stderr, exit_code = r.exit_code }
    if r.skipped then output.skipped = true end
  elseif type(cmd) == "function" then
    local r = table.pack(bind_call(cmd, this, params, deps))
    ok, msg, output = normalize(r.n, r[1], r[2], r[3])
  else
    ok = true
  end
  if def.post_hook then bind_call(def.post_hook, this, params, output) end
  return ok and "ok" or "failed", msg, output
end

-- A built task's :run(): runs it at once inside the current coroutine (another task, say) and
-- returns ok, message, output.
function internal.run_task_now(def, params)
  if def.delegate_to and #def.delegate_to > 0 then
    -- Running it here would silently do on this machine what was meant for an agent.
    error("task " .. tostring(def.name) .. ": :run() of a delegated task is not supported yet; "
      .. "make it a task of the workflow (its :delegate_to runs it on the agent)", 3)
  end
  local ctx = { params = internal.make_params(nil, def.params, params or {}), attempt = 1,
                workdir = internal.resolve(def.workdir or ".") }
  local kind, msg, output = internal.run_attempt(def, internal.make_this(def, ctx), ctx.params, {})
  return kind == "ok" or kind == "skipped", msg, output
end
