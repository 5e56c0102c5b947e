// state: persistent key/value data with TTL, atomic updates and lease locks, kept in the data
// dir's database (state-and-stacks.md). Values keep their Lua type: they are stored as JSON.
#include <unistd.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include <lua.hpp>

#include "core/state_store.h"
#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

using nlohmann::json;

constexpr char kGuardMeta[] = "sloth.state_lock_guard";
constexpr int64_t kDefaultLeaseMs = 30000;
constexpr Duration kDefaultLockTimeout = std::chrono::seconds(30);

StateStore& Store(lua_State* L) {
  Runtime& rt = Runtime::From(L);
  if (!rt.options().state_store) luaL_error(L, "state: no state store in this runtime");
  Result<StateStore*> store = rt.options().state_store();
  if (!store.ok()) luaL_error(L, "state: %s", store.error().c_str());
  return **store;
}

// The value of a store call, or a Lua error "state.FN: message".
template <typename T>
T Check(lua_State* L, const char* fn, Result<T> result) {
  if (!result.ok()) luaL_error(L, "state.%s: %s", fn, result.error().c_str());
  return std::move(*result);
}

std::string CheckKey(lua_State* L, int index) {
  size_t len = 0;
  const char* key = luaL_checklstring(L, index, &len);
  if (len == 0) luaL_argerror(L, index, "must not be empty");
  return std::string(key, len);
}

std::string OptPrefix(lua_State* L, int index) {
  return lua_isnoneornil(L, index) ? std::string() : std::string(luaL_checkstring(L, index));
}

// The value at `index` as JSON text: strings, numbers, booleans and tables.
std::string CheckValue(lua_State* L, int index) {
  int t = lua_type(L, index);
  if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN && t != LUA_TTABLE)
    luaL_typeerror(L, index, "string, number, boolean or table");
  return ToJson(L, index).dump();
}

// A time-to-live argument (seconds or a duration string) in milliseconds.
int64_t CheckTtl(lua_State* L, int index) {
  int64_t ms = ToMillis(CheckDuration(L, index));
  if (ms <= 0) luaL_argerror(L, index, "ttl must be at least 1ms");
  return ms;
}

std::optional<int64_t> OptTtl(lua_State* L, int index) {
  if (lua_isnoneornil(L, index)) return std::nullopt;
  return CheckTtl(L, index);
}

void PushText(lua_State* L, const std::string& text) { PushJson(L, json::parse(text)); }

bool CheckMode(lua_State* L, const std::string& what) {
  Runtime& rt = Runtime::From(L);
  if (!rt.CheckMode(L)) return false;
  rt.Log(L, LogLevel::kInfo, "[check] would " + what);
  return true;
}

// --- group commit ------------------------------------------------------------------------
//
// A commit costs SQLite a write to the WAL, so a writer that commits every write is bounded by
// the commits per second (tens of thousands at best). Writes that different coroutines (tasks,
// goroutines) issue in the same loop turn therefore share one transaction: the first queued write
// posts a flush to the loop, and by the time the flush runs the other coroutines of that turn have
// queued theirs. The flush runs them all through StateStore::Group (BEGIN IMMEDIATE, each write in
// its own savepoint, COMMIT) and only then lets the writers go on, each with its own result: a
// write is durable when the call returns, and one write's failure does not undo the others. Code
// that cannot yield (the top level of a file, a metamethod) writes at once, in its own transaction.

constexpr char kGroupMeta[] = "sloth.state_group_commit";  // the metatable (registry key)
constexpr char kGroupKey[] = "sloth.state_group";          // the registry key of the instance

class GroupCommit : public std::enable_shared_from_this<GroupCommit> {
 public:
  struct Write {
    std::function<void(StateStore&)> run;          // the store call; it keeps its own result
    std::function<void(const Status&)> committed;  // then called with the commit's status
    bool cancelled = false;                        // its waiter went away before the flush
  };

  explicit GroupCommit(Loop& loop) : loop_(loop) {}

  // This runtime's instance (kept in the registry, so it lives as long as the Lua state).
  static std::shared_ptr<GroupCommit> Of(lua_State* L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, kGroupKey) == LUA_TUSERDATA) {
      auto group = *static_cast<std::shared_ptr<GroupCommit>*>(lua_touserdata(L, -1));
      lua_pop(L, 1);
      return group;
    }
    lua_pop(L, 1);
    auto* slot = new (lua_newuserdatauv(L, sizeof(std::shared_ptr<GroupCommit>), 0))
        std::shared_ptr<GroupCommit>(std::make_shared<GroupCommit>(Runtime::From(L).loop()));
    luaL_setmetatable(L, kGroupMeta);
    lua_setfield(L, LUA_REGISTRYINDEX, kGroupKey);
    return *slot;
  }

  void Submit(StateStore* store, std::shared_ptr<Write> write) {
    store_ = store;  // a runtime has one store
    queue_.push_back(std::move(write));
    if (scheduled_) return;
    scheduled_ = true;
    loop_.Post([self = weak_from_this()] {
      if (auto group = self.lock()) group->Flush();
    });
  }

 private:
  void Flush() {
    scheduled_ = false;
    std::vector<std::shared_ptr<Write>> batch;
    batch.swap(queue_);
    bool ran = false;
    Status commit = store_->Group([&] {
      for (auto& write : batch) {
        if (write->cancelled) continue;
        ran = true;
        write->run(*store_);
      }
    });
    if (!commit.ok() && ran && batch.size() > 1) {
      // The transaction itself failed (disk full, I/O error) and kept nothing. Each write again
      // on its own, so that one write that cannot fit does not fail the others.
      for (auto& write : batch) {
        if (write->cancelled) continue;
        write->committed(store_->Group([&] { write->run(*store_); }));
      }
      return;
    }
    for (auto& write : batch)
      if (!write->cancelled) write->committed(commit);
  }

  Loop& loop_;
  StateStore* store_ = nullptr;
  std::vector<std::shared_ptr<Write>> queue_;
  bool scheduled_ = false;
};

int GroupGc(lua_State* L) {
  static_cast<std::shared_ptr<GroupCommit>*>(luaL_checkudata(L, 1, kGroupMeta))->~shared_ptr();
  return 0;
}

// Runs the store write `op`, then `push` turns its value into the function's results. In a
// coroutine that can wait, the write joins this loop turn's group commit; elsewhere it runs at
// once. Errors (the write's own, or the commit's) raise "state.FN: message".
template <typename T>
int Commit(lua_State* L, const char* fn, std::function<Result<T>(StateStore&)> op,
           std::function<int(lua_State*, T&)> push) {
  StateStore* store = &Store(L);
  if (!lua_isyieldable(L)) {
    T value = Check(L, fn, op(*store));
    return push(L, value);
  }
  auto result = std::make_shared<std::optional<Result<T>>>();
  auto write = std::make_shared<GroupCommit::Write>();
  write->run = [op = std::move(op), result](StateStore& s) { result->emplace(op(s)); };
  std::shared_ptr<GroupCommit> group = GroupCommit::Of(L);
  return Runtime::From(L).Await(
      L,
      [group, store, write, result, fn, push = std::move(push)](Runtime::Done done) {
        write->committed = [done, result, fn, push](const Status& commit) {
          done([result, fn, push, commit](lua_State* co) {
            if (!commit.ok()) return luaL_error(co, "state.%s: %s", fn, commit.message().c_str());
            T value = Check(co, fn, std::move(result->value()));
            return push(co, value);
          });
        };
        group->Submit(store, write);
      },
      // Weak: the write holds `done`, which holds this cancel function.
      [weak = std::weak_ptr<GroupCommit::Write>(write)] {
        if (auto w = weak.lock()) w->cancelled = true;
      });
}

// Commit for a write without a value (set).
int CommitStatus(lua_State* L, const char* fn, std::function<Status(StateStore&)> op) {
  return Commit<bool>(
      L, fn,
      [op = std::move(op)](StateStore& s) -> Result<bool> {
        if (Status st = op(s); !st.ok()) return st;
        return true;
      },
      [](lua_State* co, bool&) {
        lua_pushboolean(co, 1);
        return 1;
      });
}

int PushBool(lua_State* L, bool& value) {
  lua_pushboolean(L, value);
  return 1;
}

int PushInteger(lua_State* L, int64_t& value) {
  lua_pushinteger(L, value);
  return 1;
}

int PushJsonText(lua_State* L, std::string& text) {
  PushText(L, text);
  return 1;
}

int StateSet(lua_State* L) {
  std::string key = CheckKey(L, 1);
  luaL_checkany(L, 2);
  if (lua_isnil(L, 2)) luaL_argerror(L, 2, "value must not be nil (use state.delete)");
  std::string value = CheckValue(L, 2);
  std::optional<int64_t> ttl = OptTtl(L, 3);
  if (CheckMode(L, "set " + key)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return CommitStatus(L, "set", [key, value = std::move(value), ttl](StateStore& s) {
    return s.Set(key, value, ttl);
  });
}

int StateGet(lua_State* L) {
  std::string key = CheckKey(L, 1);
  auto value = Check(L, "get", Store(L).Get(key));
  if (value)
    PushText(L, *value);
  else if (lua_gettop(L) >= 2)
    lua_pushvalue(L, 2);
  else
    lua_pushnil(L);
  return 1;
}

int StateDelete(lua_State* L) {
  std::string key = CheckKey(L, 1);
  if (CheckMode(L, "delete " + key)) {
    lua_pushboolean(L, Check(L, "delete", Store(L).Exists(key)));
    return 1;
  }
  return Commit<bool>(
      L, "delete", [key](StateStore& s) { return s.Delete(key); }, PushBool);
}

int StateExists(lua_State* L) {
  std::string key = CheckKey(L, 1);
  lua_pushboolean(L, Check(L, "exists", Store(L).Exists(key)));
  return 1;
}

int StateSetTtl(lua_State* L) {
  std::string key = CheckKey(L, 1);
  int64_t ttl = CheckTtl(L, 2);
  if (CheckMode(L, "set the ttl of " + key)) {
    lua_pushboolean(L, Check(L, "set_ttl", Store(L).Exists(key)));
    return 1;
  }
  return Commit<bool>(
      L, "set_ttl", [key, ttl](StateStore& s) { return s.SetTtl(key, ttl); }, PushBool);
}

int StateGetTtl(lua_State* L) {
  std::string key = CheckKey(L, 1);
  auto entry = Check(L, "get_ttl", Store(L).GetEntry(key));
  if (!entry || !entry->expires_at_ms) {
    lua_pushnil(L);
    return 1;
  }
  int64_t left = std::max<int64_t>(*entry->expires_at_ms - NowUnixMs(), 0);
  lua_pushnumber(L, static_cast<double>(left) / 1000.0);
  return 1;
}

// increment/decrement(key, by = 1) -> new value
int Add(lua_State* L, const char* fn, bool negate) {
  std::string key = CheckKey(L, 1);
  json delta = 1;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checknumber(L, 2);
    delta = lua_isinteger(L, 2) ? json(lua_tointeger(L, 2)) : json(lua_tonumber(L, 2));
  }
  if (negate)
    delta = delta.is_number_integer() ? json(-delta.get<int64_t>()) : json(-delta.get<double>());
  StateStore& store = Store(L);
  if (CheckMode(L, std::string(fn) + " " + key)) {
    // What the value would become, from the current one.
    auto current = Check(L, fn, store.Get(key));
    json now = current ? json::parse(*current) : json(0);
    if (!now.is_number()) luaL_error(L, "state.%s: value of %s is not a number", fn, key.c_str());
    json next = now.is_number_integer() && delta.is_number_integer()
                    ? json(now.get<int64_t>() + delta.get<int64_t>())
                    : json(now.get<double>() + delta.get<double>());
    PushJson(L, next);
    return 1;
  }
  return Commit<std::string>(
      L, fn, [key, step = delta.dump()](StateStore& s) { return s.Increment(key, step); },
      PushJsonText);
}

int StateIncrement(lua_State* L) { return Add(L, "increment", false); }
int StateDecrement(lua_State* L) { return Add(L, "decrement", true); }

// compare_swap(key, expected, new) -> bool; nil as `expected` means "absent", nil as `new`
// deletes the key.
int StateCompareSwap(lua_State* L) {
  std::string key = CheckKey(L, 1);
  std::optional<std::string> expected, desired;
  if (!lua_isnoneornil(L, 2)) expected = CheckValue(L, 2);
  if (!lua_isnoneornil(L, 3)) desired = CheckValue(L, 3);
  if (CheckMode(L, "compare_swap " + key)) {
    auto current = Check(L, "compare_swap", Store(L).Get(key));
    lua_pushboolean(L, current.has_value() == expected.has_value() &&
                           (!current || json::parse(*current) == json::parse(*expected)));
    return 1;
  }
  return Commit<bool>(
      L, "compare_swap",
      [key, expected, desired](StateStore& s) { return s.CompareSwap(key, expected, desired); },
      PushBool);
}

// append(key, text) -> the new string
int StateAppend(lua_State* L) {
  std::string key = CheckKey(L, 1);
  size_t len = 0;
  const char* text = luaL_checklstring(L, 2, &len);
  StateStore& store = Store(L);
  if (CheckMode(L, "append to " + key)) {
    auto current = Check(L, "append", store.Get(key));
    json now = current ? json::parse(*current) : json("");
    if (!now.is_string()) luaL_error(L, "state.append: value of %s is not a string", key.c_str());
    PushJson(L, now.get<std::string>() + std::string(text, len));
    return 1;
  }
  return Commit<std::string>(
      L, "append",
      [key, suffix = std::string(text, len)](StateStore& s) { return s.Append(key, suffix); },
      PushJsonText);
}

int StateListPush(lua_State* L) {
  std::string key = CheckKey(L, 1);
  luaL_checkany(L, 2);
  std::string value = CheckValue(L, 2);
  if (CheckMode(L, "push to " + key)) {
    lua_pushinteger(L, Check(L, "list_push", Store(L).ListLength(key)) + 1);
    return 1;
  }
  return Commit<int64_t>(
      L, "list_push", [key, value](StateStore& s) { return s.ListPush(key, value); }, PushInteger);
}

int StateListPop(lua_State* L) {
  std::string key = CheckKey(L, 1);
  auto push = [](lua_State* co, std::optional<std::string>& last) {
    if (last)
      PushText(co, *last);
    else
      lua_pushnil(co);
    return 1;
  };
  if (CheckMode(L, "pop from " + key)) {
    auto last = Check(L, "list_pop", Store(L).ListPeek(key));
    return push(L, last);
  }
  return Commit<std::optional<std::string>>(
      L, "list_pop", [key](StateStore& s) { return s.ListPop(key); }, push);
}

int StateListLength(lua_State* L) {
  std::string key = CheckKey(L, 1);
  lua_pushinteger(L, Check(L, "list_length", Store(L).ListLength(key)));
  return 1;
}

int StateKeys(lua_State* L) {
  std::string prefix = OptPrefix(L, 1);
  auto entries = Check(L, "keys", Store(L).List(prefix));
  lua_createtable(L, static_cast<int>(entries.size()), 0);
  MarkArray(L, -1);
  lua_Integer i = 0;
  for (const StateEntry& e : entries) {
    lua_pushlstring(L, e.key.data(), e.key.size());
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

int StateList(lua_State* L) {
  std::string prefix = OptPrefix(L, 1);
  auto entries = Check(L, "list", Store(L).List(prefix));
  lua_createtable(L, 0, static_cast<int>(entries.size()));
  for (const StateEntry& e : entries) {
    PushText(L, e.value);
    lua_setfield(L, -2, e.key.c_str());
  }
  return 1;
}

int StateClear(lua_State* L) {
  std::string prefix = OptPrefix(L, 1);
  if (CheckMode(L, prefix.empty() ? "clear every key" : "clear the keys starting with " + prefix)) {
    lua_pushinteger(L, static_cast<int64_t>(Check(L, "clear", Store(L).List(prefix)).size()));
    return 1;
  }
  return Commit<int64_t>(
      L, "clear", [prefix](StateStore& s) { return s.Clear(prefix); }, PushInteger);
}

int StateStatsFn(lua_State* L) {
  StateStats stats = Check(L, "stats", Store(L).Stats());
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, stats.keys);
  lua_setfield(L, -2, "keys");
  lua_pushinteger(L, stats.expired);
  lua_setfield(L, -2, "expired");
  lua_pushinteger(L, stats.value_bytes);
  lua_setfield(L, -2, "value_bytes");
  lua_pushinteger(L, stats.locks_held);
  lua_setfield(L, -2, "locks_held");
  return 1;
}

// --- locks -------------------------------------------------------------------------------

LockOwner Owner(lua_State* L) {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  LockOwner owner;
  owner.host = host;
  owner.pid = getpid();
  owner.owner = owner.host + ":" + std::to_string(owner.pid);
  if (TaskContext* task = Runtime::From(L).TaskOf(L); task && !task->name.empty())
    owner.owner += " (task " + task->name + ")";
  return owner;
}

std::string Held(const LockInfo& holder) {
  int64_t left = std::max<int64_t>(holder.expires_at_ms - NowUnixMs(), 0);
  return "held by " + holder.owner + ", token " + std::to_string(holder.token) +
         ", lease ends in " + FormatHuman(std::chrono::milliseconds(left));
}

struct LockRequest {
  std::string fn;
  std::string name;
  LockOwner owner;
  int64_t ttl_ms = kDefaultLeaseMs;
  Duration timeout{};
  Clock::time_point deadline;
};

using LockPush = std::function<int(lua_State*, Result<LockAttempt>&)>;

// Tries to take the lock at once, then again every 20-40 ms on loop timers (the caller's
// coroutine yields meanwhile, other tasks keep running) until it is taken or the deadline
// passes. `push` turns the last attempt into the function's results. When the caller can
// yield, each attempt joins the loop turn's group commit (see Commit).
int AwaitLock(lua_State* L, std::shared_ptr<LockRequest> req, LockPush push) {
  StateStore* store = &Store(L);
  Runtime& rt = Runtime::From(L);
  Loop* loop = &rt.loop();
  std::shared_ptr<GroupCommit> group = lua_isyieldable(L) ? GroupCommit::Of(L) : nullptr;
  auto timer = std::make_shared<uint64_t>(0);
  auto stopped = std::make_shared<bool>(false);
  auto queued = std::make_shared<std::weak_ptr<GroupCommit::Write>>();  // the attempt in a group
  using Poll = std::shared_ptr<std::function<void()>>;
  return rt.Await(
      L,
      [store, loop, group, req, timer, stopped, queued, push](Runtime::Done done) {
        // After an attempt: finish, or try again later (`again` keeps the poll alive).
        auto decide = [loop, req, timer, stopped, push, done](Result<LockAttempt> attempt,
                                                              Poll again) {
          if (*stopped) return;
          if (!attempt.ok() || attempt->acquired || Clock::now() >= req->deadline) {
            auto last = std::make_shared<Result<LockAttempt>>(std::move(attempt));
            done([push, last](lua_State* co) { return push(co, *last); });
            return;
          }
          auto delay = std::chrono::milliseconds(20 + static_cast<int>(loop->Random() * 20));
          *timer = loop->After(delay, [again] { (*again)(); });
        };
        auto poll = std::make_shared<std::function<void()>>();
        std::weak_ptr<std::function<void()>> weak = poll;
        *poll = [store, group, req, stopped, queued, decide, weak] {
          Poll self = weak.lock();
          if (*stopped) return;
          if (!group) return decide(store->TryLock(req->name, req->owner, req->ttl_ms), self);
          auto attempt = std::make_shared<std::optional<Result<LockAttempt>>>();
          auto write = std::make_shared<GroupCommit::Write>();
          write->run = [req, attempt](StateStore& s) {
            attempt->emplace(s.TryLock(req->name, req->owner, req->ttl_ms));
          };
          write->committed = [decide, attempt, self](const Status& commit) {
            decide(commit.ok() ? std::move(attempt->value()) : Result<LockAttempt>(commit), self);
          };
          *queued = write;
          group->Submit(store, write);
        };
        (*poll)();
      },
      [loop, timer, stopped, queued] {
        *stopped = true;
        loop->Cancel(*timer);
        if (auto write = queued->lock()) write->cancelled = true;
      });
}

std::shared_ptr<LockRequest> NewRequest(lua_State* L, const char* fn, Duration timeout,
                                        int64_t ttl_ms) {
  auto req = std::make_shared<LockRequest>();
  req->fn = fn;
  req->name = CheckKey(L, 1);
  req->owner = Owner(L);
  req->ttl_ms = ttl_ms;
  req->timeout = timeout;
  req->deadline = Clock::now() + timeout;
  return req;
}

Duration OptTimeout(lua_State* L, int index) {
  if (lua_isnoneornil(L, index)) return kDefaultLockTimeout;
  Duration d = CheckDuration(L, index);
  return d;
}

// Pushes the token, or nil + "state.lock: NAME is held by ..." when not acquired.
int PushAttempt(lua_State* L, const LockRequest& req, Result<LockAttempt>& attempt) {
  if (!attempt.ok()) return luaL_error(L, "state.%s: %s", req.fn.c_str(), attempt.error().c_str());
  if (attempt->acquired) {
    lua_pushinteger(L, attempt->token);
    return 1;
  }
  std::string why =
      req.timeout > Duration::zero() ? " (waited " + FormatHuman(req.timeout) + ")" : "";
  return PushFailure(L, "lock " + req.name + " is " + Held(attempt->holder) + why);
}

// lock(name, ttl?, timeout?) -> token | nil, message (the spec's order: the lease comes first)
int StateLock(lua_State* L) {
  int64_t ttl = OptTtl(L, 2).value_or(kDefaultLeaseMs);
  Duration timeout = OptTimeout(L, 3);
  auto req = NewRequest(L, "lock", timeout, ttl);
  return AwaitLock(
      L, req, [req](lua_State* co, Result<LockAttempt>& a) { return PushAttempt(co, *req, a); });
}

// try_lock(name, ttl?) -> token | nil, message
int StateTryLock(lua_State* L) {
  int64_t ttl = OptTtl(L, 2).value_or(kDefaultLeaseMs);
  auto req = NewRequest(L, "try_lock", Duration::zero(), ttl);
  return Commit<LockAttempt>(
      L, "try_lock", [req](StateStore& s) { return s.TryLock(req->name, req->owner, req->ttl_ms); },
      [req](lua_State* co, LockAttempt& attempt) {
        Result<LockAttempt> result(attempt);
        return PushAttempt(co, *req, result);
      });
}

// unlock(name, token) -> bool
int StateUnlock(lua_State* L) {
  std::string name = CheckKey(L, 1);
  lua_Integer token = luaL_checkinteger(L, 2);
  return Commit<bool>(
      L, "unlock", [name, token](StateStore& s) { return s.Unlock(name, token); }, PushBool);
}

// renew_lock(name, token, ttl?) -> bool
int StateRenewLock(lua_State* L) {
  std::string name = CheckKey(L, 1);
  lua_Integer token = luaL_checkinteger(L, 2);
  int64_t ttl = OptTtl(L, 3).value_or(kDefaultLeaseMs);
  return Commit<bool>(
      L, "renew_lock", [name, token, ttl](StateStore& s) { return s.RenewLock(name, token, ttl); },
      PushBool);
}

// is_locked(name) -> bool, holder?
int StateIsLocked(lua_State* L) {
  std::string name = CheckKey(L, 1);
  auto holder = Check(L, "is_locked", Store(L).LockHolder(name));
  lua_pushboolean(L, holder.has_value());
  if (!holder) return 1;
  lua_pushstring(L, holder->owner.c_str());
  return 2;
}

// Held by with_lock while its function runs: renews the lease every third of its length, and
// (on __gc) stops doing so if the coroutine is abandoned.
struct LockGuard {
  Loop* loop;
  StateStore* store;
  std::string name;
  int64_t token;
  int64_t ttl_ms;
  uint64_t timer = 0;
  bool active = false;

  void Start() {
    active = true;
    Schedule();
  }
  void Schedule() {
    auto every = std::chrono::milliseconds(std::max<int64_t>(ttl_ms / 3, 10));
    // In the background: a deadlock inside the locked function must still be seen as one.
    timer = loop->AfterInBackground(every, [this] {
      if (!active) return;
      (void)store->RenewLock(name, token, ttl_ms);
      Schedule();
    });
  }
  void Stop() {
    if (active) loop->Cancel(timer);
    active = false;
  }
};

int GuardGc(lua_State* L) {
  auto* guard = static_cast<LockGuard*>(luaL_checkudata(L, 1, kGuardMeta));
  guard->Stop();
  guard->~LockGuard();
  return 0;
}

// After with_lock's function: stop renewing, release, re-raise its error or return its results.
// Stack: 1 name, 2 fn, 3 opts, 4 guard, then fn's results (or its error).
int FinishLocked(lua_State* L, int status, lua_KContext) {
  auto* guard = static_cast<LockGuard*>(luaL_checkudata(L, 4, kGuardMeta));
  guard->Stop();
  Result<bool> released = guard->store->Unlock(guard->name, guard->token);
  if (status != LUA_OK && status != LUA_YIELD) return lua_error(L);
  if (!released.ok()) return luaL_error(L, "state.with_lock: %s", released.error().c_str());
  if (!*released)
    Runtime::From(L).Log(L, LogLevel::kWarn,
                         "state.with_lock: the lease on " + guard->name +
                             " ended before the function finished (token " +
                             std::to_string(guard->token) + ")");
  return lua_gettop(L) - 4;
}

int RunLocked(lua_State* L, const LockRequest& req, int64_t token) {
  lua_settop(L, 3);
  Runtime& rt = Runtime::From(L);
  auto* guard = new (lua_newuserdatauv(L, sizeof(LockGuard), 0))
      LockGuard{&rt.loop(), &Store(L), req.name, token, req.ttl_ms};
  luaL_setmetatable(L, kGuardMeta);
  guard->Start();
  lua_pushvalue(L, 2);
  int status = lua_pcallk(L, 0, LUA_MULTRET, 0, 0, FinishLocked);
  return FinishLocked(L, status, 0);
}

// with_lock(name, fn, timeout | {timeout=, ttl=}?) -> fn's results
int StateWithLock(lua_State* L) {
  luaL_checktype(L, 2, LUA_TFUNCTION);
  Duration timeout = kDefaultLockTimeout;
  int64_t ttl = kDefaultLeaseMs;
  if (lua_type(L, 3) == LUA_TTABLE) {
    timeout = OptDuration(L, 3, "timeout").value_or(kDefaultLockTimeout);
    if (auto t = OptDuration(L, 3, "ttl")) {
      ttl = ToMillis(*t);
      if (ttl <= 0) luaL_argerror(L, 3, "ttl must be at least 1ms");
    }
  } else if (!lua_isnoneornil(L, 3)) {
    timeout = CheckDuration(L, 3);
  }
  lua_settop(L, 3);
  auto req = NewRequest(L, "with_lock", timeout, ttl);
  return AwaitLock(L, req, [req](lua_State* co, Result<LockAttempt>& a) {
    if (!a.ok()) return luaL_error(co, "state.with_lock: %s", a.error().c_str());
    if (!a->acquired)
      return luaL_error(co, "state.with_lock: timed out after %s: lock %s is %s",
                        FormatHuman(req->timeout).c_str(), req->name.c_str(),
                        Held(a->holder).c_str());
    return RunLocked(co, *req, a->token);
  });
}

int Setup(lua_State* L) {
  static const luaL_Reg no_methods[] = {{nullptr, nullptr}};
  NewClass(L, kGuardMeta, no_methods, GuardGc);
  NewClass(L, kGroupMeta, no_methods, GroupGc);
  return 0;
}

}  // namespace

const Module& StateModule() {
  static const Module m = {
      "state",
      "Persistent key/value state with TTL, atomic updates and lease locks",
      {
          {"set", StateSet, "set(key, value, ttl?) -> true",
           "Store a string, number, boolean or table (ttl: seconds or \"10m\")"},
          {"get", StateGet, "get(key, default?) -> value", "The stored value, else default/nil"},
          {"delete", StateDelete, "delete(key) -> existed", "Remove a key"},
          {"exists", StateExists, "exists(key) -> bool", "Whether a live key exists"},
          {"set_ttl", StateSetTtl, "set_ttl(key, ttl) -> found", "Expire a key after ttl"},
          {"get_ttl", StateGetTtl, "get_ttl(key) -> seconds | nil", "Seconds until a key expires"},
          {"increment", StateIncrement, "increment(key, by?) -> new", "Atomically add (default 1)"},
          {"decrement", StateDecrement, "decrement(key, by?) -> new",
           "Atomically subtract (default 1)"},
          {"compare_swap", StateCompareSwap, "compare_swap(key, expected, new) -> bool",
           "Set new only if the value equals expected (nil: absent)"},
          {"compare_and_swap", StateCompareSwap, "compare_and_swap(key, expected, new) -> bool",
           "Alias of compare_swap"},
          {"append", StateAppend, "append(key, text) -> string", "Atomically append to a string"},
          {"list_push", StateListPush, "list_push(key, value) -> length",
           "Atomically append to a list"},
          {"list_pop", StateListPop, "list_pop(key) -> value | nil",
           "Atomically remove and return a list's last element"},
          {"list_length", StateListLength, "list_length(key) -> n", "Length of a list (0: absent)"},
          {"keys", StateKeys, "keys(prefix?) -> {keys}", "Keys starting with a literal prefix"},
          {"list", StateList, "list(prefix?) -> {key = value}",
           "Keys and values starting with a literal prefix"},
          {"clear", StateClear, "clear(prefix?) -> n", "Delete the keys starting with a prefix"},
          {"stats", StateStatsFn, "stats() -> {keys, expired, value_bytes, locks_held}",
           "Counts of the store"},
          {"lock", StateLock, "lock(name, ttl?, timeout?) -> token | nil, err",
           "Wait (default 30s) for a lease lock; returns its fencing token"},
          {"try_lock", StateTryLock, "try_lock(name, ttl?) -> token | nil, err",
           "Take a lease lock if free, without waiting"},
          {"unlock", StateUnlock, "unlock(name, token) -> bool", "Release a lock you hold"},
          {"renew_lock", StateRenewLock, "renew_lock(name, token, ttl?) -> bool",
           "Extend the lease of a lock you hold"},
          {"is_locked", StateIsLocked, "is_locked(name) -> bool, owner?",
           "Whether someone holds a lock"},
          {"with_lock", StateWithLock, "with_lock(name, fn, timeout | opts?) -> fn's results",
           "Run fn holding a lock (released also when fn raises)"},
      },
      {},
      nullptr,
      Setup,
  };
  return m;
}

}  // namespace sloth
