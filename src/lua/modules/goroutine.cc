// goroutine: Go-like concurrency inside a run. Goroutines are coroutines on the runtime's loop
// (Runtime::Spawn), bound to the caller's task, so cancelling the task stops them. C++ provides
// four primitives (spawn, sleep, and the hidden park/wake pair); handles, channels, locks and
// the rest are written in Lua on top of them (lua_code below).
#include <map>
#include <string>

#include <lua.hpp>

#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/runtime.h"

namespace sloth {

namespace {

constexpr const char* kStateKey = "sloth.goroutine";

// One wait of the Lua layer, from new_id() until a wake, a timeout or a cancellation ends it.
struct Waiting {
  std::string what;     // what it waits on, for the deadlock report
  bool parked = false;  // park() was called; `done` completes it
  Runtime::Done done;
  int values_ref = LUA_NOREF;  // a wake that came before park(): {n = ..., ...}
  uint64_t timer = 0;
};

// Per runtime, a userdata in the registry.
struct GoState {
  uint64_t next_id = 1;
  std::map<uint64_t, Waiting> waits;
};

GoState& State(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, kStateKey);
  auto* st = static_cast<GoState*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return *st;
}

int GoStateGc(lua_State* L) {
  static_cast<GoState*>(lua_touserdata(L, 1))->~GoState();
  return 0;
}

// Pushes true and the values packed in `ref` (then frees it) onto the woken thread.
Runtime::Pusher PushValues(int ref) {
  return [ref](lua_State* co) {
    lua_rawgeti(co, LUA_REGISTRYINDEX, ref);
    luaL_unref(co, LUA_REGISTRYINDEX, ref);
    lua_getfield(co, -1, "n");
    int n = static_cast<int>(lua_tointeger(co, -1));
    lua_pop(co, 1);
    luaL_checkstack(co, n + 2, "goroutine: too many values");
    lua_pushboolean(co, 1);
    for (int i = 1; i <= n; ++i) lua_rawgeti(co, -2 - (i - 1), i);
    lua_remove(co, -(n + 2));  // the table
    return n + 1;
  };
}

// spawn(fn, ...): runs fn(...) as a new goroutine of the caller's task. It starts at once and
// runs until its first wait. An error ends only that goroutine; it is logged.
int GoSpawn(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  Runtime& rt = Runtime::From(L);
  TaskContext* task = rt.TaskOf(L);
  int nargs = lua_gettop(L) - 1;
  lua_State* main = rt.state();
  if (L != main) {
    luaL_checkstack(main, nargs + 3, "goroutine.spawn: too many arguments");
    lua_xmove(L, main, nargs + 1);
  }
  // The name, not the context: the goroutine may finish after its task (and context) are gone.
  std::string task_name = task ? task->name : std::string();
  rt.Spawn(nargs, task, [&rt, task_name](lua_State* co, int status) {
    if (status == LUA_OK || !rt.log()) return;
    std::string msg = luaL_tolstring(co, -1, nullptr);
    if (msg.find(Runtime::kTaskEnded) != std::string::npos) return;  // stopped with its task
    rt.log()->Log(task_name, LogLevel::kError, "goroutine failed: " + msg);
  });
  return 0;
}

// sleep(ms): waits on a loop timer; other goroutines and tasks run meanwhile.
int GoSleep(lua_State* L) {
  double ms = luaL_checknumber(L, 1);
  if (!(ms >= 0)) return luaL_argerror(L, 1, "goroutine.sleep: milliseconds must be >= 0");
  Runtime& rt = Runtime::From(L);
  Loop& loop = rt.loop();
  auto delay = std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::milli>(ms));
  auto timer = std::make_shared<uint64_t>(0);
  return rt.Await(
      L,
      [&loop, delay, timer](Runtime::Done done) {
        *timer = loop.After(delay, [done] { done([](lua_State*) { return 0; }); });
      },
      [&loop, timer] { loop.Cancel(*timer); });
}

// _new_id() -> id: a wait to register in a queue before parking on it.
int GoNewId(lua_State* L) {
  GoState& st = State(L);
  uint64_t id = st.next_id++;
  st.waits[id];
  lua_pushinteger(L, static_cast<lua_Integer>(id));
  return 1;
}

// _park(id, what, timeout_ms?) -> true, ...values | false (timed out). Suspends the caller
// until _wake(id, ...) hands it values.
int GoPark(lua_State* L) {
  auto id = static_cast<uint64_t>(luaL_checkinteger(L, 1));
  std::string what = luaL_optstring(L, 2, "something");
  bool has_timeout = !lua_isnoneornil(L, 3);
  double ms = has_timeout ? luaL_checknumber(L, 3) : 0;
  Runtime& rt = Runtime::From(L);
  GoState* st = &State(L);
  auto it = st->waits.find(id);
  if (it == st->waits.end()) return luaL_error(L, "goroutine: wait %d is not pending", int(id));
  if (it->second.values_ref != LUA_NOREF) {  // woken before it parked
    int ref = it->second.values_ref;
    st->waits.erase(it);
    return PushValues(ref)(L);
  }
  Loop* loop = &rt.loop();
  return rt.Await(
      L,
      [st, id, what, has_timeout, ms, loop](Runtime::Done done) {
        Waiting& w = st->waits.at(id);
        w.parked = true;
        w.what = what;
        w.done = done;
        if (has_timeout) {
          auto delay =
              std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::milli>(ms));
          w.timer = loop->After(delay, [st, id, done] {
            st->waits.erase(id);
            done([](lua_State* co) { return lua_pushboolean(co, 0), 1; });
          });
        }
      },
      [st, id, loop] {  // the task was cancelled
        auto found = st->waits.find(id);
        if (found == st->waits.end()) return;
        if (found->second.timer) loop->Cancel(found->second.timer);
        st->waits.erase(found);
      });
}

// _wake(id, ...) -> bool: hands the values to wait `id`; false if that wait is gone (timed
// out, cancelled, or already woken), so the caller can offer them to the next one.
int GoWake(lua_State* L) {
  auto id = static_cast<uint64_t>(luaL_checkinteger(L, 1));
  GoState& st = State(L);
  auto it = st.waits.find(id);
  if (it == st.waits.end() || it->second.values_ref != LUA_NOREF) {
    lua_pushboolean(L, 0);
    return 1;
  }
  int n = lua_gettop(L) - 1;
  lua_createtable(L, n, 1);
  for (int i = 1; i <= n; ++i) {
    lua_pushvalue(L, i + 1);
    lua_rawseti(L, -2, i);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (!it->second.parked) {
    it->second.values_ref = ref;
  } else {
    Runtime::Done done = std::move(it->second.done);
    if (it->second.timer) Runtime::From(L).loop().Cancel(it->second.timer);
    st.waits.erase(it);
    done(PushValues(ref));
  }
  lua_pushboolean(L, 1);
  return 1;
}

int GoSetup(lua_State* L) {
  // The per-runtime state, and the deadlock report of what every parked goroutine waits on.
  void* mem = lua_newuserdatauv(L, sizeof(GoState), 0);
  auto* st = new (mem) GoState();
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, GoStateGc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, kStateKey);
  Runtime::From(L).SetStallReport([st] {
    std::map<std::string, int> counts;
    for (const auto& [id, w] : st->waits)
      if (w.parked) ++counts[w.what];
    std::string out;
    for (const auto& [what, n] : counts) {
      if (!out.empty()) out += ", ";
      out += n == 1 ? what : std::to_string(n) + " x " + what;
    }
    return out;
  });
  // Hidden primitives for the Lua layer; lua_code takes them out of the table.
  lua_pushcfunction(L, GoNewId);
  lua_setfield(L, 1, "_new_id");
  lua_pushcfunction(L, GoPark);
  lua_setfield(L, 1, "_park");
  lua_pushcfunction(L, GoWake);
  lua_setfield(L, 1, "_wake");
  return 0;
}

// The Lua layer: handles, channels, select, locks, pools, on top of spawn/park/wake.
constexpr const char* kGoroutineLua = R"LUA(local M = ...
local spawn, sleep = M.spawn, M.sleep
local new_id, park, wake = M._new_id, M._park, M._wake
M._new_id, M._park, M._wake = nil, nil, nil
local pack, unpack, remove = table.pack, table.unpack, table.remove

local function now_ms() return time.now_ms() end

-- Parks the caller in `queue` (a list of wait ids or {id = ...} entries) until someone wakes
-- it; returns true, ...values, or false after timeout_ms.
local function block(queue, what, timeout_ms, entry)
  local id = new_id()
  if entry then
    entry.id = id
    queue[#queue + 1] = entry
  else
    queue[#queue + 1] = id
  end
  return park(id, what, timeout_ms)
end

-- Wakes the first waiter still waiting; false if there was none.
local function wake_one(queue, ...)
  while #queue > 0 do
    local e = remove(queue, 1)
    if wake(type(e) == "table" and e.id or e, ...) then return true end
  end
  return false
end

local function wake_all(queue, ...)
  for i = 1, #queue do
    local e = queue[i]
    queue[i] = nil
    wake(type(e) == "table" and e.id or e, ...)
  end
end

local function check_fn(fn, name, arg)
  if type(fn) ~= "function" then
    error(("goroutine.%s: argument #%d must be a function, got %s"):format(name, arg, type(fn)), 3)
  end
end

local function check_count(n, name, arg, min)
  if math.type(n) ~= "integer" or n < min then
    error(("goroutine.%s: argument #%d must be an integer >= %d"):format(name, arg, min), 3)
  end
end

-- Handles ---------------------------------------------------------------------------------

local Handle = {}
Handle.__index = Handle
Handle.__name = "goroutine.handle"

local function start(fn, ...)
  local h = setmetatable({ done = false, waiters = {} }, Handle)
  spawn(function(...)
    local r = pack(pcall(fn, ...))
    h.done = true
    h.ok = r[1]
    if r[1] then
      h.values = pack(unpack(r, 2, r.n))
    else
      h.err = r[2]
    end
    wake_all(h.waiters)
  end, ...)
  return h
end

local function check_handle(h, name)
  if getmetatable(h) ~= Handle then
    error(("goroutine.%s: expected a handle from goroutine.async, got %s"):format(name, type(h)), 3)
  end
end

-- Waits until h is done, or at most timeout_ms; true if it is done.
local function wait_handle(h, timeout_ms)
  local deadline = timeout_ms and now_ms() + timeout_ms
  while not h.done do
    local left = deadline and deadline - now_ms()
    if left and left <= 0 then return false end
    if not block(h.waiters, "await", left) then return false end
  end
  return true
end

function M.async(fn, ...)
  check_fn(fn, "async", 1)
  return start(fn, ...)
end

function M.create(fn)
  check_fn(fn, "create", 1)
  return start(fn)
end

function M.spawn_many(n, fn)
  check_count(n, "spawn_many", 1, 0)
  check_fn(fn, "spawn_many", 2)
  local hs = {}
  for i = 1, n do hs[i] = start(fn, i) end
  return hs
end

function M.await(h)
  check_handle(h, "await")
  wait_handle(h)
  if h.ok then return true, unpack(h.values, 1, h.values.n) end
  return false, h.err
end

local function result_of(h)
  if not h.done then return { success = false, error = "timeout exceeded" } end
  if h.ok then return { success = true, values = h.values, value = h.values[1] } end
  return { success = false, error = tostring(h.err) }
end

function M.await_all(hs)
  if type(hs) ~= "table" then error("goroutine.await_all: argument #1 must be a list of handles", 2) end
  for i = 1, #hs do check_handle(hs[i], "await_all") end
  local out = {}
  for i = 1, #hs do
    wait_handle(hs[i])
    out[i] = result_of(hs[i])
  end
  return out
end

function M.wait_all(hs, timeout_s)
  if type(hs) ~= "table" then error("goroutine.wait_all: argument #1 must be a list of handles", 2) end
  if timeout_s ~= nil and type(timeout_s) ~= "number" then
    error("goroutine.wait_all: argument #2 must be a number of seconds", 2)
  end
  for i = 1, #hs do check_handle(hs[i], "wait_all") end
  local deadline = timeout_s and now_ms() + timeout_s * 1000
  local out = {}
  for i = 1, #hs do
    local left = deadline and math.max(0, deadline - now_ms())
    wait_handle(hs[i], left)
    out[i] = result_of(hs[i])
  end
  return out
end

function M.map(list, fn)
  if type(list) ~= "table" then error("goroutine.map: argument #1 must be a list", 2) end
  check_fn(fn, "map", 2)
  local hs = {}
  for i = 1, #list do hs[i] = start(fn, list[i], i) end
  local out = {}
  local first_err
  for i = 1, #hs do
    wait_handle(hs[i])
    if hs[i].ok then
      out[i] = hs[i].values[1]
    elseif first_err == nil then
      first_err = hs[i].err
    end
  end
  if first_err ~= nil then error(first_err, 0) end
  return out
end

function M.parallel(fns)
  if type(fns) ~= "table" then error("goroutine.parallel: argument #1 must be a list of functions", 2) end
  for i = 1, #fns do check_fn(fns[i], "parallel", 1) end
  local hs = {}
  for i = 1, #fns do hs[i] = start(fns[i]) end
  return M.await_all(hs)
end

function M.timeout(ms, fn)
  if type(ms) ~= "number" or ms < 0 then error("goroutine.timeout: argument #1 must be milliseconds >= 0", 2) end
  check_fn(fn, "timeout", 2)
  local h = start(fn)
  if not wait_handle(h, ms) then return false, "timeout exceeded" end
  if h.ok then return true, unpack(h.values, 1, h.values.n) end
  return false, h.err
end

-- Channels --------------------------------------------------------------------------------

local Channel = {}
Channel.__index = Channel
Channel.__name = "goroutine.channel"

function M.channel(cap)
  cap = cap or 0
  check_count(cap, "channel", 1, 0)
  -- recvq: {id, tag} waiting receivers; sendq: {id, tag, v} waiting senders.
  return setmetatable({ _cap = cap, buf = {}, closed = false, recvq = {}, sendq = {} }, Channel)
end

-- Non-blocking halves shared by send/receive/select.
function Channel:_try_send(v)
  if self.closed then error("goroutine: send on closed channel", 3) end
  while #self.recvq > 0 do
    local e = remove(self.recvq, 1)
    if wake(e.id, e.tag, v, true) then return true end
  end
  if #self.buf < self._cap then
    self.buf[#self.buf + 1] = { v }
    return true
  end
  return false
end

-- -> got, v, ok
function Channel:_try_recv()
  if #self.buf > 0 then
    local v = remove(self.buf, 1)[1]
    while #self.sendq > 0 do  -- a waiting sender's value takes the freed slot
      local e = remove(self.sendq, 1)
      if wake(e.id, e.tag) then
        self.buf[#self.buf + 1] = { e.v }
        break
      end
    end
    return true, v, true
  end
  while #self.sendq > 0 do
    local e = remove(self.sendq, 1)
    if wake(e.id, e.tag) then return true, e.v, true end
  end
  if self.closed then return true, nil, false end
  return false
end

function Channel:send(v)
  if self:_try_send(v) then return true end
  local _, tag = block(self.sendq, "channel send", nil, { v = v })
  if tag == "closed" then error("goroutine: send on closed channel", 2) end
  return true
end

function Channel:receive()
  local got, v, ok = self:_try_recv()
  if got then return v, ok end
  local _, _, rv, rok = block(self.recvq, "channel receive", nil, {})
  return rv, rok
end

function Channel:try_send(v)
  return self:_try_send(v)
end

function Channel:try_receive()
  local got, v, ok = self:_try_recv()
  if got then return v, ok end
  return nil, false
end

function Channel:close()
  if self.closed then error("goroutine: close of closed channel", 2) end
  self.closed = true
  local r, s = self.recvq, self.sendq
  self.recvq, self.sendq = {}, {}
  for _, e in ipairs(r) do wake(e.id, e.tag, nil, false) end
  for _, e in ipairs(s) do wake(e.id, "closed") end
end

function Channel:len() return #self.buf end
function Channel:cap() return self._cap end
function Channel:is_closed() return self.closed end

function Channel:range(fn)
  check_fn(fn, "channel:range", 1)
  while true do
    local v, ok = self:receive()
    if not ok then return end
    if fn(v) == false then return end
  end
end

-- select ----------------------------------------------------------------------------------

local function run_case(c, ...)
  if c.handler then return c.handler(...) end
  return ...
end

local function do_select(name, cases, timeout_ms)
  if type(cases) ~= "table" then error(("goroutine.%s: cases must be a list"):format(name), 3) end
  local default
  for i, c in ipairs(cases) do
    if type(c) ~= "table" then error(("goroutine.%s: case %d is not a table"):format(name, i), 3) end
    if c.default then
      default = c
    elseif getmetatable(c.channel) ~= Channel then
      error(("goroutine.%s: case %d needs a channel (or default = true)"):format(name, i), 3)
    elseif not c.receive and c.send == nil then
      error(("goroutine.%s: case %d needs receive = true or send = value"):format(name, i), 3)
    end
  end
  for _, c in ipairs(cases) do
    if not c.default then
      if c.receive then
        local got, v, ok = c.channel:_try_recv()
        if got then return run_case(c, v, ok) end
      elseif c.channel:_try_send(c.send) then
        return run_case(c)
      end
    end
  end
  if default then return run_case(default) end
  -- One wait, queued on every channel; the first to wake it wins (later wakes fail).
  local id = new_id()
  for i, c in ipairs(cases) do
    if c.receive then
      local q = c.channel.recvq
      q[#q + 1] = { id = id, tag = i }
    else
      local q = c.channel.sendq
      q[#q + 1] = { id = id, tag = i, v = c.send }
    end
  end
  local r = pack(park(id, "select", timeout_ms))
  if not r[1] then return nil, "timeout" end
  local tag = r[2]
  if tag == "closed" then error("goroutine: send on closed channel", 3) end
  local c = cases[tag]
  if c.receive then return run_case(c, r[3], r[4]) end
  return run_case(c)
end

function M.select(cases) return do_select("select", cases) end

function M.select_timeout(ms, cases)
  if type(ms) ~= "number" or ms < 0 then
    error("goroutine.select_timeout: argument #1 must be milliseconds >= 0", 2)
  end
  return do_select("select_timeout", cases, ms)
end

-- Wait groups, locks, atomics -------------------------------------------------------------

local WaitGroup = {}
WaitGroup.__index = WaitGroup

function M.wait_group() return setmetatable({ n = 0, waiters = {} }, WaitGroup) end

function WaitGroup:add(n)
  n = n or 1
  if math.type(n) ~= "integer" then error("wait_group:add: n must be an integer", 2) end
  self.n = self.n + n
  if self.n < 0 then error("wait_group: negative counter", 2) end
  if self.n == 0 then wake_all(self.waiters) end
end

function WaitGroup:done() self:add(-1) end

function WaitGroup:wait()
  while self.n > 0 do block(self.waiters, "wait_group") end
end

local Mutex = {}
Mutex.__index = Mutex

function M.mutex() return setmetatable({ locked = false, waiters = {} }, Mutex) end

function Mutex:lock()
  if not self.locked then
    self.locked = true
    return
  end
  block(self.waiters, "mutex")  -- unlock hands the lock over: it stays locked
end

function Mutex:try_lock()
  if self.locked then return false end
  self.locked = true
  return true
end

function Mutex:unlock()
  if not self.locked then error("mutex:unlock: the mutex is not locked", 2) end
  if not wake_one(self.waiters) then self.locked = false end
end

local Semaphore = {}
Semaphore.__index = Semaphore

function M.semaphore(n)
  check_count(n, "semaphore", 1, 1)
  return setmetatable({ n = n, permits = n, waiters = {} }, Semaphore)
end

function Semaphore:acquire()
  if self.permits > 0 then
    self.permits = self.permits - 1
    return
  end
  block(self.waiters, "semaphore")  -- release hands its permit over
end

function Semaphore:try_acquire()
  if self.permits == 0 then return false end
  self.permits = self.permits - 1
  return true
end

function Semaphore:release()
  if wake_one(self.waiters) then return end
  if self.permits >= self.n then error("semaphore:release: released more than acquired", 2) end
  self.permits = self.permits + 1
end

function Semaphore:available() return self.permits end
function Semaphore:capacity() return self.n end

local Atomic = {}
Atomic.__index = Atomic

local function check_int(v, what)
  if math.type(v) ~= "integer" then error(("atomic_int:%s: expected an integer"):format(what), 3) end
end

function M.atomic_int(v)
  v = v or 0
  check_count(v, "atomic_int", 1, math.mininteger)
  return setmetatable({ v = v }, Atomic)
end

function Atomic:add(d)
  d = d or 1
  check_int(d, "add")
  self.v = self.v + d
  return self.v
end
function Atomic:load() return self.v end
function Atomic:store(v)
  check_int(v, "store")
  self.v = v
end
function Atomic:swap(v)
  check_int(v, "swap")
  local old = self.v
  self.v = v
  return old
end
function Atomic:compare_and_swap(old, new)
  check_int(new, "compare_and_swap")
  if self.v ~= old then return false end
  self.v = new
  return true
end

local Once = {}
Once.__index = Once

function M.once() return setmetatable({ state = 0, waiters = {} }, Once) end

function Once:call(fn)
  check_fn(fn, "once:call", 1)
  if self.state == 2 then return false end
  if self.state == 1 then  -- another goroutine runs it: wait for it, as sync.Once does
    while self.state == 1 do block(self.waiters, "once") end
    return false
  end
  self.state = 1
  local ok, err = pcall(fn)
  self.state = 2
  wake_all(self.waiters)
  if not ok then error(err, 0) end
  return true
end

-- Pools -----------------------------------------------------------------------------------

local pools = {}

local function get_pool(name, fn)
  if type(name) ~= "string" then error(("goroutine.%s: argument #1 must be a pool name"):format(fn), 3) end
  return pools[name]
end

function M.pool_create(name, opts)
  if get_pool(name, "pool_create") then return nil, "goroutine.pool_create: pool " .. name .. " exists" end
  opts = opts or {}
  if type(opts) ~= "table" then error("goroutine.pool_create: argument #2 must be a table", 2) end
  local workers = opts.workers or 4
  check_count(workers, "pool_create", 2, 1)
  if opts.queue ~= nil then check_count(opts.queue, "pool_create", 2, 0) end
  pools[name] = { workers = workers, limit = opts.queue, queue = {}, active = 0, completed = 0,
                  failed = 0, next_id = 0, idle = {} }
  return true
end

local function pump(p)
  while p.active < p.workers and #p.queue > 0 do
    local job = remove(p.queue, 1)
    p.active = p.active + 1
    spawn(function()
      local ok = pcall(job.fn, unpack(job.args, 1, job.args.n))
      p.active = p.active - 1
      if ok then p.completed = p.completed + 1 else p.failed = p.failed + 1 end
      pump(p)
      if p.active == 0 and #p.queue == 0 then wake_all(p.idle) end
    end)
  end
end

function M.pool_submit(name, fn, ...)
  local p = get_pool(name, "pool_submit")
  check_fn(fn, "pool_submit", 2)
  if not p then return nil, "goroutine.pool_submit: no pool named " .. name end
  if p.closed then return nil, "goroutine.pool_submit: pool " .. name .. " is closed" end
  if p.limit and #p.queue >= p.limit and p.active >= p.workers then
    return nil, "goroutine.pool_submit: queue of pool " .. name .. " is full"
  end
  p.next_id = p.next_id + 1
  p.queue[#p.queue + 1] = { fn = fn, args = pack(...) }
  pump(p)
  return p.next_id
end

function M.pool_wait(name)
  local p = get_pool(name, "pool_wait")
  if not p then return nil, "goroutine.pool_wait: no pool named " .. name end
  while p.active > 0 or #p.queue > 0 do block(p.idle, "pool " .. name) end
  return true
end

function M.pool_close(name)
  local p = get_pool(name, "pool_close")
  if not p then return nil, "goroutine.pool_close: no pool named " .. name end
  p.closed = true
  M.pool_wait(name)
  pools[name] = nil
  return true
end

function M.pool_stats(name)
  local p = get_pool(name, "pool_stats")
  if not p then return nil, "goroutine.pool_stats: no pool named " .. name end
  return { workers = p.workers, active = p.active, completed = p.completed, failed = p.failed,
           queued = #p.queue }
end

-- rwmutex, cond, context, pipelines -------------------------------------------------------

local RWMutex = {}
RWMutex.__index = RWMutex

function M.rwmutex()
  return setmetatable({ writer = false, readers = 0, rq = {}, wq = {} }, RWMutex)
end

-- The lock is free: hand it to a waiting writer (prefer_writer) or to every waiting reader.
local function rw_handoff(m, prefer_writer)
  if prefer_writer and wake_one(m.wq) then
    m.writer = true
    return
  end
  local rq = m.rq
  m.rq = {}
  for _, id in ipairs(rq) do
    if wake(id) then m.readers = m.readers + 1 end
  end
  if m.readers == 0 and not prefer_writer and wake_one(m.wq) then m.writer = true end
end

function RWMutex:lock()
  if not self.writer and self.readers == 0 then
    self.writer = true
    return
  end
  block(self.wq, "rwmutex write")
end

function RWMutex:try_lock()
  if self.writer or self.readers > 0 then return false end
  self.writer = true
  return true
end

function RWMutex:unlock()
  if not self.writer then error("rwmutex:unlock: not locked for writing", 2) end
  self.writer = false
  rw_handoff(self, false)
end

function RWMutex:rlock()
  if not self.writer and #self.wq == 0 then
    self.readers = self.readers + 1
    return
  end
  block(self.rq, "rwmutex read")
end

function RWMutex:try_rlock()
  if self.writer or #self.wq > 0 then return false end
  self.readers = self.readers + 1
  return true
end

function RWMutex:runlock()
  if self.readers == 0 then error("rwmutex:runlock: not locked for reading", 2) end
  self.readers = self.readers - 1
  if self.readers == 0 then rw_handoff(self, true) end
end

local Cond = {}
Cond.__index = Cond

function M.cond(mu)
  if mu ~= nil and getmetatable(mu) ~= Mutex then
    error("goroutine.cond: argument #1 must be a goroutine.mutex() or nil", 2)
  end
  return setmetatable({ mu = mu, waiters = {} }, Cond)
end

function Cond:wait()
  if self.mu then self.mu:unlock() end
  block(self.waiters, "cond")
  if self.mu then self.mu:lock() end
end

function Cond:signal() wake_one(self.waiters) end
function Cond:broadcast() wake_all(self.waiters) end

local Context = {}
Context.__index = Context

local function new_context(parent)
  local ctx = setmetatable({ cancelled = false, children = {}, done_ch = M.channel() }, Context)
  if parent then
    if parent.cancelled then
      ctx:cancel(parent.reason)
    else
      parent.children[#parent.children + 1] = ctx
    end
  end
  return ctx
end

function M.context() return new_context(nil) end

function Context:cancel(reason)
  if self.cancelled then return end
  self.cancelled = true
  self.reason = reason or "context cancelled"
  if self.timer then wake(self.timer) end
  self.done_ch:close()
  for _, child in ipairs(self.children) do child:cancel(self.reason) end
  self.children = {}
end

function Context:with_cancel() return new_context(self) end

function Context:with_timeout(ms)
  if type(ms) ~= "number" or ms < 0 then
    error("context:with_timeout: argument #1 must be milliseconds >= 0", 2)
  end
  local ctx = new_context(self)
  if not ctx.cancelled then
    local id = new_id()
    ctx.timer = id
    spawn(function()
      if not park(id, "context timer", ms) then ctx:cancel("context deadline exceeded") end
    end)
  end
  return ctx
end

function Context:with_deadline(epoch_ms)
  if type(epoch_ms) ~= "number" then
    error("context:with_deadline: argument #1 must be epoch milliseconds", 2)
  end
  return self:with_timeout(math.max(0, epoch_ms - now_ms()))
end

function Context:is_cancelled() return self.cancelled end
function Context:err() return self.reason end
function Context:done() return self.done_ch end

local function check_channel(ch, name, arg)
  if getmetatable(ch) ~= Channel then
    error(("goroutine.%s: argument #%d must be a channel"):format(name, arg), 3)
  end
end

function M.pipeline(input, stages)
  check_channel(input, "pipeline", 1)
  if type(stages) ~= "table" then error("goroutine.pipeline: argument #2 must be a list of functions", 2) end
  for i = 1, #stages do check_fn(stages[i], "pipeline", 2) end
  local prev = input
  for _, stage in ipairs(stages) do
    local from, to = prev, M.channel()
    spawn(function()
      from:range(function(v) to:send(stage(v)) end)
      to:close()
    end)
    prev = to
  end
  return prev
end

function M.fan_out(input, n)
  check_channel(input, "fan_out", 1)
  check_count(n, "fan_out", 2, 1)
  local outs = {}
  for i = 1, n do outs[i] = M.channel() end
  spawn(function()
    local i = 0
    input:range(function(v)
      outs[i % n + 1]:send(v)
      i = i + 1
    end)
    for _, ch in ipairs(outs) do ch:close() end
  end)
  return outs
end

function M.fan_in(chs)
  if type(chs) ~= "table" then error("goroutine.fan_in: argument #1 must be a list of channels", 2) end
  for i = 1, #chs do check_channel(chs[i], "fan_in", 1) end
  local out = M.channel()
  local wg = M.wait_group()
  for _, ch in ipairs(chs) do
    wg:add(1)
    spawn(function()
      ch:range(function(v) out:send(v) end)
      wg:done()
    end)
  end
  spawn(function()
    wg:wait()
    out:close()
  end)
  return out
end
)LUA";

}  // namespace

const Module& GoroutineModule() {
  static const Module m = {
      "goroutine",
      "Go-like concurrency: goroutines, channels, wait groups, locks (cooperative, on the loop)",
      {
          {"spawn", GoSpawn, "spawn(fn, ...)", "Runs fn(...) as a goroutine (fire and forget)"},
          {"sleep", GoSleep, "sleep(ms)", "Waits ms milliseconds; other goroutines run meanwhile"},
          {"async", nullptr, "async(fn, ...) -> handle", "Runs fn(...) as a goroutine; await it"},
          {"create", nullptr, "create(fn) -> handle", "async(fn) (seed name)"},
          {"spawn_many", nullptr, "spawn_many(n, fn(i)) -> {handles}", "n goroutines fn(1..n)"},
          {"await", nullptr, "await(handle) -> true, ... | false, err",
           "Waits for a goroutine's results or its error"},
          {"await_all", nullptr, "await_all(handles) -> {{success, values | error}}",
           "Waits for all, results in input order"},
          {"wait_all", nullptr,
           "wait_all(handles, timeout_s?) -> {{success, value, values, error}}",
           "await_all with an overall timeout in seconds (seed name)"},
          {"map", nullptr, "map(list, fn(item, i)) -> results",
           "Parallel map; ordered results; raises the first error after all finish"},
          {"parallel", nullptr, "parallel({fn, ...}) -> {{success, values | error}}",
           "Runs the functions concurrently and waits for all"},
          {"timeout", nullptr, "timeout(ms, fn) -> true, ... | false, \"timeout exceeded\"",
           "Runs fn as a goroutine, waiting at most ms"},
          {"channel", nullptr, "channel(cap = 0) -> channel",
           "send/receive/try_send/try_receive/close/len/cap/is_closed/range"},
          {"select", nullptr, "select(cases) -> ...", "Waits for the first ready channel case"},
          {"select_timeout", nullptr, "select_timeout(ms, cases) -> ... | nil, \"timeout\"",
           "select that gives up after ms"},
          {"wait_group", nullptr, "wait_group() -> wg", "add(n)/done()/wait()"},
          {"mutex", nullptr, "mutex() -> mu", "lock()/unlock()/try_lock()"},
          {"semaphore", nullptr, "semaphore(n) -> sem",
           "acquire/release/try_acquire/available/capacity"},
          {"atomic_int", nullptr, "atomic_int(v = 0) -> a", "add/load/store/swap/compare_and_swap"},
          {"once", nullptr, "once() -> o", "o:call(fn) runs fn the first time only"},
          {"rwmutex", nullptr, "rwmutex() -> rw",
           "lock/unlock/try_lock for writers, rlock/runlock/try_rlock for readers"},
          {"cond", nullptr, "cond(mu?) -> c", "wait()/signal()/broadcast()"},
          {"context", nullptr, "context() -> ctx",
           "with_cancel/with_timeout(ms)/with_deadline(epoch_ms)/cancel/is_cancelled/err/done"},
          {"pipeline", nullptr, "pipeline(in_ch, {fn, ...}) -> out_ch",
           "One goroutine per stage, channels between them"},
          {"fan_out", nullptr, "fan_out(ch, n) -> {chs}",
           "Deals ch's values round-robin to n channels"},
          {"fan_in", nullptr, "fan_in(chs) -> ch", "Merges channels; closed when all are"},
      },
      {"async"},
      kGoroutineLua,
      GoSetup,
  };
  return m;
}

}  // namespace sloth
