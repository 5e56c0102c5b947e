-- dsl.lua: task() and workflow builders. Definitions are collected in `defs`; once the file has
-- loaded, the C++ side calls defs.finalize() and turns what it returns into core specs.
local internal = ...
local defs = { tasks = {}, workflows = {} }
internal.defs = defs

-- "file:line" of the code that called into the DSL `level` frames up.
local function where(level)
  local info = debug.getinfo(level + 1, "Sl")
  if not info then return "?" end
  local src = info.source:sub(1, 1) == "@" and info.source:sub(2) or info.short_src
  return src .. ":" .. (info.currentline or 0)
end

local function fail(level, fmt, ...)
  error(where(level + 1) .. ": " .. fmt:format(...), 0)
end

local function check_type(level, what, value, ...)
  local t = type(value)
  for i = 1, select("#", ...) do if t == select(i, ...) then return end end
  fail(level + 1, "%s must be %s, got %s", what, table.concat({ ... }, " or "), t)
end

local function string_list(level, what, v)
  if type(v) == "string" then return { v } end
  check_type(level + 1, what, v, "table", "string")
  local out = {}
  for i, item in ipairs(v) do
    check_type(level + 1, what .. "[" .. i .. "]", item, "string")
    out[i] = item
  end
  return out
end

-- delegate_to: an agent name, a list of names, or { label = "k=v" } (kept as "label:k=v", which
-- the C++ side reads as every agent with that label).
local function delegate_list(level, v)
  if type(v) == "table" and v.label ~= nil then
    check_type(level + 1, "delegate_to.label", v.label, "string")
    return { "label:" .. v.label }
  end
  return string_list(level + 1, "delegate_to", v)
end

local function duration(level, what, v)
  local seconds, err = internal.duration(v)
  if not seconds then fail(level + 1, "%s: %s", what, err) end
  return seconds
end

-- Setters shared by the builder methods and the table form. Each takes (def, value, level).
local setters = {}
local function fn_or_string(key)
  return function(def, v, level)
    check_type(level + 1, key, v, "function", "string", "boolean")
    def[key] = v
  end
end
local function fn_only(key)
  return function(def, v, level)
    check_type(level + 1, key, v, "function")
    def[key] = v
  end
end
function setters.description(def, v, level) check_type(level + 1, "description", v, "string"); def.description = v end
function setters.workdir(def, v, level) check_type(level + 1, "workdir", v, "string"); def.workdir = v end
function setters.depends_on(def, v, level) def.depends_on = string_list(level + 1, "depends_on", v) end
function setters.command(def, v, level)
  check_type(level + 1, "command", v, "function", "string")
  def.command = v
end
setters.run = setters.command
function setters.timeout(def, v, level) def.timeout = duration(level + 1, "timeout", v) end
function setters.retries(def, n, level, strategy)
  check_type(level + 1, "retries", n, "number")
  if n < 0 or n ~= math.floor(n) then fail(level + 1, "retries must be a whole number >= 0") end
  def.retries = math.tointeger(n)
  if strategy ~= nil then setters.retry_strategy(def, strategy, level + 1) end
end
function setters.retry_strategy(def, v, level)
  check_type(level + 1, "retry strategy", v, "string")
  if not internal.retry_strategy(v) then
    fail(level + 1, "unknown retry strategy '%s' (fixed, linear or exponential)", v)
  end
  def.retry_strategy = v
end
function setters.retry_delay(def, v, level) def.retry_delay = duration(level + 1, "retry_delay", v) end
setters.run_if = fn_or_string("run_if")
setters.abort_if = fn_or_string("abort_if")
setters.on_success = fn_only("on_success")
setters.on_failure = fn_only("on_failure")
setters.on_timeout = fn_only("on_timeout")
setters.pre_hook = fn_only("pre_hook")
setters.post_hook = fn_only("post_hook")
setters.undo = fn_only("undo")
function setters.artifacts(def, v, level) def.artifacts = string_list(level + 1, "artifacts", v) end
function setters.consumes(def, v, level) def.consumes = string_list(level + 1, "consumes", v) end
function setters.tags(def, v, level) def.tags = string_list(level + 1, "tags", v) end
function setters.delegate_to(def, v, level) def.delegate_to = delegate_list(level + 1, v) end
function setters.async(def, v, level)
  if v == nil then v = true end
  check_type(level + 1, "async", v, "boolean")
  def.async = v
end
function setters.params(def, v, level) check_type(level + 1, "params", v, "table"); def.params = v end
function setters.env(def, v, level) check_type(level + 1, "env", v, "table"); def.env = v end
function setters.user(def, v, level) check_type(level + 1, "user", v, "string"); def.user = v end
function setters.check_mode(def, v, level)
  check_type(level + 1, "check_mode", v, "boolean")
  def.always_run = (v == false)
end
function setters.name(def, v, level) check_type(level + 1, "name", v, "string"); def.name = v end

-- Built tasks: the definition table itself, with :run() to run it at once.
local Task = {}
Task.__index = Task
Task.__name = "task"
function Task:run(params) return internal.run_task_now(self, params) end

local Builder = {}
Builder.__name = "task builder"

local function new_def(name, level)
  local def = setmetatable({ name = name, source = where(level + 1) }, Task)
  defs.tasks[#defs.tasks + 1] = def
  return def
end

local function builder_method(key)
  local set = setters[key]
  return function(self, ...)
    set(rawget(self, "__def"), select(1, ...), 2, select(2, ...))
    return self
  end
end

local builder_methods = {}
for key in pairs(setters) do
  if key ~= "name" and key ~= "run" then builder_methods[key] = builder_method(key) end
end
function builder_methods.build(self) return rawget(self, "__def") end
function builder_methods.run(self, params) return internal.run_task_now(rawget(self, "__def"), params) end

Builder.__index = function(self, key)
  local m = builder_methods[key]
  if m then return m end
  error(("%s: unknown builder method '%s' on task %q"):format(where(2), tostring(key),
        rawget(self, "__def").name), 0)
end
Builder.__newindex = function(self, key)
  error(("%s: cannot set field '%s' on task builder %q"):format(where(2), tostring(key),
        rawget(self, "__def").name), 0)
end

-- Applies a task table's keys through the setters; unknown keys are errors.
local function apply_table(def, t, level)
  for key, value in pairs(t) do
    local set = setters[key]
    if key == "retries" then
      set(def, value, level + 1, t.retry_strategy)
    elseif set then
      set(def, value, level + 1)
    elseif key ~= "retry_strategy" then
      fail(level + 1, "unknown task field '%s' in task %q", tostring(key), tostring(t.name or def.name))
    end
  end
end

-- task("name") -> builder; task({ name = ..., ... }) -> built task.
function task(spec)
  if type(spec) == "table" then
    if type(spec.name) ~= "string" then fail(2, "task{...} needs a string 'name'") end
    local def = new_def(spec.name, 2)
    apply_table(def, spec, 2)
    return def
  end
  check_type(2, "task name", spec, "string")
  return setmetatable({ __def = new_def(spec, 2) }, Builder)
end

-- Turns one entry of a workflow's `tasks` into a task definition.
local function as_def(entry, key, level)
  if getmetatable(entry) == Builder then return rawget(entry, "__def") end
  if getmetatable(entry) == Task then return entry end
  if type(entry) ~= "table" then
    fail(level + 1, "tasks[%s] must be a task or a task table, got %s", tostring(key), type(entry))
  end
  local def = setmetatable({ source = where(level + 1) }, Task)
  if type(key) == "string" then def.name = key end
  if type(entry.command or entry.run) == "function" then
    local info = debug.getinfo(entry.command or entry.run, "S")
    if info.source:sub(1, 1) == "@" then def.source = info.source:sub(2) .. ":" .. info.linedefined end
    def.line = info.linedefined
  end
  apply_table(def, entry, level + 1)
  if type(def.name) ~= "string" then fail(level + 1, "tasks[%s] has no name", tostring(key)) end
  return def
end

-- A name -> task map keeps source order: the line of each command function, then string
-- commands by name.
local function map_order(tasks)
  local keys = {}
  for k in pairs(tasks) do keys[#keys + 1] = k end
  local function line(k)
    local c = type(tasks[k]) == "table" and (tasks[k].command or tasks[k].run)
    if type(c) == "function" then return debug.getinfo(c, "S").linedefined end
    return math.huge
  end
  table.sort(keys, function(a, b)
    local la, lb = line(a), line(b)
    if la ~= lb then return la < lb end
    return tostring(a) < tostring(b)
  end)
  return keys
end

local function normalize_tasks(tasks, level)
  check_type(level + 1, "tasks", tasks, "table")
  local out = {}
  local n = #tasks
  local is_list = true
  for k in pairs(tasks) do
    if type(k) ~= "number" or k < 1 or k > n then is_list = false end
  end
  if is_list then
    for i = 1, n do out[i] = as_def(tasks[i], i, level + 1) end
  else
    for _, k in ipairs(map_order(tasks)) do out[#out + 1] = as_def(tasks[k], k, level + 1) end
  end
  return out
end

local workflow_keys = {
  description = "string", version = "string", tasks = "table", config = "table",
  on_complete = "function", on_start = "function", params = "table", metadata = "table",
  delegate_to = "table|string", name = "string",
}

local function new_workflow(name, level)
  local wf = { name = name, source = where(level + 1), tasks = {}, config = {} }
  defs.workflows[#defs.workflows + 1] = wf
  return wf
end

local function set_workflow_field(wf, key, value, level)
  local expected = workflow_keys[key]
  if not expected then
    fail(level + 1, "unknown workflow field '%s' in workflow %q", tostring(key), wf.name)
  end
  if not expected:find(type(value), 1, true) then
    fail(level + 1, "workflow %q: %s must be a %s, got %s", wf.name, key, expected, type(value))
  end
  if key == "tasks" then value = normalize_tasks(value, level + 1) end
  if key == "delegate_to" then value = delegate_list(level + 1, value) end
  wf[key] = value
end

local WorkflowBuilder = {}
WorkflowBuilder.__name = "workflow builder"
local wf_methods = {}
for key in pairs(workflow_keys) do
  if key ~= "name" then
    wf_methods[key] = function(self, value)
      set_workflow_field(rawget(self, "__wf"), key, value, 2)
      return self
    end
  end
end
-- Chained form: workflow("x"):task("a", fn):task("b", fn) runs in the order written.
function wf_methods.task(self, name, fn)
  local wf = rawget(self, "__wf")
  check_type(2, "task name", name, "string")
  local def
  if type(fn) == "table" then
    def = as_def(fn, name, 2)
    def.name = name
  else
    def = setmetatable({ name = name, source = where(2) }, Task)
    if fn ~= nil then setters.command(def, fn, 2) end
  end
  local previous = wf.tasks[#wf.tasks]
  if previous and not def.depends_on then def.depends_on = { previous.name } end
  wf.tasks[#wf.tasks + 1] = def
  return self
end
WorkflowBuilder.__index = function(self, key)
  local m = wf_methods[key]
  if m then return m end
  error(("%s: unknown workflow method '%s' on workflow %q"):format(where(2), tostring(key),
        rawget(self, "__wf").name), 0)
end

local function define(name, spec)
  check_type(3, "workflow name", name, "string")
  local wf = new_workflow(name, 3)
  if spec == nil then return setmetatable({ __wf = wf }, WorkflowBuilder) end
  check_type(3, "workflow definition", spec, "table")
  for key, value in pairs(spec) do set_workflow_field(wf, key, value, 3) end
  return wf
end

-- The wrappers are not tail calls on purpose: error locations count stack frames.
workflow = setmetatable({
  define = function(name, spec) local wf = define(name, spec); return wf end,
}, {
  __call = function(_, name, spec) local wf = define(name, spec); return wf end,
})
Workflow = workflow

-- Called by the runner once the file has loaded: the workflows to run, or an implicit one made
-- of all tasks when the file defines none.
function defs.finalize(implicit_name)
  if #defs.workflows == 0 and #defs.tasks > 0 then
    local wf = { name = implicit_name, source = defs.tasks[1].source, tasks = {}, config = {} }
    for i, def in ipairs(defs.tasks) do wf.tasks[i] = def end
    defs.workflows[1] = wf
  end
  return defs.workflows
end
