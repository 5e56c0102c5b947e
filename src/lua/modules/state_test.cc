#include <sys/resource.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "lua/test_util.h"
#include "store/sqlite_state_store.h"

namespace sloth {
namespace {

using testing::LuaEnv;

double CpuSeconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// A LuaEnv whose `state` module uses a real database in its own temp dir.
class StateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sloth-state.XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
  }
  void TearDown() override {
    env_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  LuaEnv& Env(bool check_mode = false) {
    auto opened = SqliteStateStore::Open(DatabasePath(dir_));
    EXPECT_TRUE(opened.ok()) << opened.error();
    store_ = std::move(*opened);
    RuntimeOptions options;
    options.check_mode = check_mode;
    options.state_store = [this]() -> Result<StateStore*> { return store_.get(); };
    env_ = std::make_unique<LuaEnv>(options);
    return *env_;
  }
  // A second connection, as another process would have.
  std::unique_ptr<SqliteStateStore> Other() {
    auto opened = SqliteStateStore::Open(DatabasePath(dir_));
    EXPECT_TRUE(opened.ok());
    return std::move(*opened);
  }
  static LockOwner Stranger() { return LockOwner{"someone else", "elsewhere", 1}; }

  std::string dir_;
  std::unique_ptr<SqliteStateStore> store_;
  std::unique_ptr<LuaEnv> env_;
};

TEST_F(StateTest, ValuesKeepTheirTypes) {
  LuaEnv& env = Env();
  Status s = env.Run(R"(
    assert(state.set("n", 41) == true)
    assert(math.type(state.get("n")) == "integer" and state.get("n") == 41)
    state.set("f", 1.5); assert(state.get("f") == 1.5)
    state.set("s", "text"); assert(state.get("s") == "text")
    state.set("b", false); assert(state.get("b") == false)
    state.set("t", {name = "web", ports = {80, 443}, tls = true})
    local t = state.get("t")
    assert(t.name == "web" and t.ports[2] == 443 and t.tls == true)
    assert(state.get("missing") == nil)
    assert(state.get("missing", "dflt") == "dflt")
    assert(state.exists("n") and not state.exists("missing"))
    assert(state.delete("n") == true and state.delete("n") == false)
    assert(state.get("n") == nil)
  )");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(**store_->Get("s"), "\"text\"");  // stored as JSON
}

TEST_F(StateTest, TtlExpiresKeysEverywhere) {
  LuaEnv& env = Env();
  Status s = env.RunInTask(R"(
    state.set("short", "v", "100ms")
    state.set("long", "v", 60)
    state.set("forever", "v")
    local ttl = state.get_ttl("long")
    assert(ttl > 59 and ttl <= 60, tostring(ttl))
    assert(state.get_ttl("forever") == nil and state.get_ttl("missing") == nil)
    assert(state.set_ttl("forever", 0.1) == true)
    assert(state.set_ttl("missing", 10) == false)
    time.sleep(0.2)
    assert(state.get("short") == nil and not state.exists("short"))
    assert(state.get("forever") == nil)
    assert(#state.keys() == 1 and state.list().long == "v")
    assert(state.stats().keys == 1)
  )");
  ASSERT_TRUE(s.ok()) << s.message();
}

TEST_F(StateTest, AtomicsListsAndPrefixes) {
  LuaEnv& env = Env();
  Status s = env.Run(R"(
    assert(state.increment("c") == 1 and state.increment("c", 5) == 6)
    assert(state.decrement("c", 2) == 4 and state.decrement("c") == 3)
    assert(state.increment("x", 0.5) == 0.5)
    assert(state.compare_swap("st", nil, "a") == true)
    assert(state.compare_swap("st", nil, "b") == false)
    assert(state.compare_and_swap("st", "a", "b") == true)
    assert(state.compare_swap("st", "b", nil) == true and not state.exists("st"))
    assert(state.compare_swap("tbl", nil, {x = 1}) and state.compare_swap("tbl", {x = 1}, 2))
    assert(state.append("log", "a") == "a" and state.append("log", "bc") == "abc")
    assert(state.list_push("q", "a") == 1 and state.list_push("q", {b = 1}) == 2)
    assert(state.list_length("q") == 2 and state.list_pop("q").b == 1)
    assert(state.list_pop("q") == "a" and state.list_pop("q") == nil)
    assert(state.list_length("none") == 0)
    state.set("app.one", 1); state.set("app.two", 2); state.set("appx", 3); state.set("a%", 4)
    local keys = state.keys("app.")
    assert(#keys == 2 and keys[1] == "app.one" and keys[2] == "app.two")
    assert(#state.keys("a%") == 1)
    local l = state.list("app.")
    assert(l["app.one"] == 1 and l["app.two"] == 2 and l.appx == nil)
    assert(state.clear("app.") == 2 and state.get("appx") == 3)
    local st = state.stats()
    assert(st.keys > 0 and st.value_bytes > 0 and st.locks_held == 0 and st.expired == 0)
    assert(state.clear() == st.keys and #state.keys() == 0)
  )");
  ASSERT_TRUE(s.ok()) << s.message();
}

TEST_F(StateTest, BadArgumentsAndWrongTypesRaise) {
  LuaEnv& env = Env();
  EXPECT_NE(env.Eval("select(2, pcall(state.set, '', 1))").find("must not be empty"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(state.set, 'k', nil))").find("use state.delete"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(state.set, 'k', print))").find("string, number, boolean"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(state.set, 'k', 1, -1))").find("bad argument #3"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(state.set, 'k', 1, 'soon'))").find("bad argument #3"),
            std::string::npos);
  ASSERT_TRUE(env.Run("state.set('s', 'text')").ok());
  EXPECT_NE(env.Eval("select(2, pcall(state.increment, 's'))")
                .find("state.increment: cannot increment s: its value is not a number"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(state.increment, 'n', 'x'))").find("bad argument #2"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(state.list_push, 's', 1))").find("not a list"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(state.with_lock, 'L', 'notfn'))").find("bad argument #2"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(state.unlock, 'L'))").find("bad argument #2"),
            std::string::npos);
}

TEST_F(StateTest, CheckModeReadsButDoesNotWrite) {
  LuaEnv& env = Env(/*check_mode=*/true);
  ASSERT_TRUE(store_->Set("existing", "5", std::nullopt).ok());
  Status s = env.Run(R"(
    assert(state.get("existing") == 5)
    assert(state.set("new", 1) == true)
    assert(state.increment("existing") == 6)
    assert(state.delete("existing") == true)
    assert(state.list_push("q", 1) == 1)
    assert(state.compare_swap("existing", 5, 7) == true)
    assert(state.clear() == 1)
  )");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_FALSE(store_->Get("new")->has_value());
  EXPECT_FALSE(store_->Get("q")->has_value());
  EXPECT_EQ(**store_->Get("existing"), "5");
  EXPECT_TRUE(env.sink().Contains("[check] would set new"));
  EXPECT_TRUE(env.sink().Contains("[check] would increment existing"));
}

TEST_F(StateTest, UnusableDataDirIsALuaErrorNotACrash) {
  std::string file = dir_ + "/a-file";
  std::ofstream(file) << "x";
  RuntimeOptions options;
  options.state_store = [file]() -> Result<StateStore*> {
    auto opened = SqliteStateStore::Open(DatabasePath(file + "/data"));
    if (!opened.ok()) return opened.status();
    return Status::Error("unexpected success");
  };
  LuaEnv env(options);
  std::string err = env.Eval("select(2, pcall(state.get, 'k'))");
  EXPECT_NE(err.find("state: cannot create " + file + "/data"), std::string::npos) << err;
  LuaEnv none;  // no store configured at all
  EXPECT_NE(none.Eval("select(2, pcall(state.set, 'k', 1))").find("no state store"),
            std::string::npos);
}

TEST_F(StateTest, LocksHaveIncreasingFencingTokens) {
  LuaEnv& env = Env();
  Status s = env.Run(R"(
    local t1 = state.try_lock("L")
    assert(math.type(t1) == "integer")
    local again, err = state.try_lock("L")
    assert(again == nil and err:find("lock L is held by", 1, true), err)
    local locked, owner = state.is_locked("L")
    assert(locked and owner:find(":"), tostring(owner))
    assert(state.unlock("L", t1 + 1) == false)
    assert(state.unlock("L", t1) == true and not state.is_locked("L"))
    local t2 = state.lock("L", 60, 1)
    assert(t2 > t1)
    assert(state.renew_lock("L", t2, 120) == true)
    assert(state.unlock("L", t2))
    assert(state.renew_lock("L", t2) == false)
  )");
  ASSERT_TRUE(s.ok()) << s.message();
}

TEST_F(StateTest, LockTimesOutWhileAnotherHolds) {
  LuaEnv& env = Env();
  auto other = Other();
  ASSERT_TRUE(other->TryLock("L", Stranger(), 60000)->acquired);
  double cpu = CpuSeconds();
  Status s = env.RunInTask(R"(
    local start = time.now()
    local tok, err = state.lock("L", nil, 0.3)
    assert(tok == nil and err:find("held by someone else", 1, true), tostring(err))
    assert(time.now() - start >= 0.29)
    local ok, e = pcall(state.with_lock, "L", function() error("must not run") end, 0.1)
    assert(not ok and tostring(e):find("timed out", 1, true), tostring(e))
  )");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_LT(CpuSeconds() - cpu, 0.2) << "waiting for a lock must not spin";
}

TEST_F(StateTest, WaitingForALockDoesNotBlockOtherCoroutines) {
  LuaEnv& env = Env();
  auto other = Other();
  auto held = other->TryLock("L", Stranger(), 60000);
  ASSERT_TRUE(held->acquired);
  // The other holder lets go after 200 ms.
  env.loop().After(std::chrono::milliseconds(200), [&] { (void)other->Unlock("L", held->token); });
  lua_State* L = env.rt().state();
  ASSERT_EQ(luaL_dostring(L, R"(
    ticks = 0
    waiter = function()
      got = state.lock("L", nil, 5)
      ticks_when_acquired = ticks
    end
    ticker = function()
      for i = 1, 5 do time.sleep(0.02); ticks = ticks + 1 end
    end
  )"),
            LUA_OK);
  TaskContext task;
  task.name = "t";
  task.workdir = env.dir();
  int finished = 0;
  std::string errors;
  auto on_finish = [&](lua_State* co, int status) {
    if (status != LUA_OK) errors += luaL_tolstring(co, -1, nullptr);
    ++finished;
  };
  lua_getglobal(L, "waiter");
  env.rt().Spawn(0, &task, on_finish);
  lua_getglobal(L, "ticker");
  env.rt().Spawn(0, &task, on_finish);
  env.loop().RunUntil([&] { return finished == 2; });
  EXPECT_EQ(errors, "");
  EXPECT_EQ(env.Eval("ticks"), "5");
  EXPECT_EQ(env.Eval("ticks_when_acquired"), "5");  // the ticker ran while the waiter waited
  EXPECT_EQ(env.Eval("got > " + std::to_string(held->token)), "true");
}

TEST_F(StateTest, WithLockReturnsResultsAndReleasesOnError) {
  LuaEnv& env = Env();
  Status s = env.RunInTask(R"(
    local a, b = state.with_lock("L", function()
      assert(state.is_locked("L"))
      time.sleep(0.01)
      return "inside", 2
    end, 5)
    assert(a == "inside" and b == 2)
    assert(not state.is_locked("L"))
    local ok, err = pcall(state.with_lock, "L", function() error({code = 7}) end)
    assert(not ok and type(err) == "table" and err.code == 7)
    assert(not state.is_locked("L"))
    local ok2, err2 = pcall(state.with_lock, "L", function() error("boom") end, {timeout = 1})
    assert(not ok2 and err2:find("boom"))
    assert(not state.is_locked("L"))
  )");
  ASSERT_TRUE(s.ok()) << s.message();
}

TEST_F(StateTest, WithLockRenewsTheLeaseWhileItsFunctionRuns) {
  LuaEnv& env = Env();
  auto other = Other();
  Status s = env.RunInTask(R"(
    state.with_lock("L", function()
      time.sleep(0.35)  -- three leases long
      assert(state.is_locked("L"), "the lease was renewed")
      local tok = state.try_lock("L")
      assert(tok == nil, "nobody else got it")
    end, {timeout = 1, ttl = 0.1})
    assert(not state.is_locked("L"))
  )");
  ASSERT_TRUE(s.ok()) << s.message();
}

// with_lock that had to wait: the function then runs after the coroutine resumed, and a
// raise inside it still releases the lock.
TEST_F(StateTest, WithLockAfterWaitingRunsFnAndReleasesOnError) {
  LuaEnv& env = Env();
  auto other = Other();
  auto held = other->TryLock("L", Stranger(), 60000);
  ASSERT_TRUE(held->acquired);
  env.loop().After(std::chrono::milliseconds(100), [&] { (void)other->Unlock("L", held->token); });
  Status s = env.RunInTask(R"(
    local v = state.with_lock("L", function() time.sleep(0.01); return 7 end, 5)
    assert(v == 7 and not state.is_locked("L"))
    assert(state.try_lock("L", 0.05))  -- a short lease nobody renews
    local ok, err = pcall(state.with_lock, "L", function()
      time.sleep(0.01)
      error("inner failure")
    end, 5)
    assert(not ok and err:find("inner failure"), tostring(err))
    assert(not state.is_locked("L"))
  )");
  ASSERT_TRUE(s.ok()) << s.message();
}

// A second connection for the Lua code: other_get(key) reads what is committed (JSON text).
SqliteStateStore* g_other = nullptr;
int OtherGet(lua_State* L) {
  auto value = g_other->Get(luaL_checkstring(L, 1));
  if (!value.ok() || !*value) return 0;
  lua_pushstring(L, (*value)->c_str());
  return 1;
}

TEST_F(StateTest, WritesOfOneTurnShareOneCommitAndAreDurableOnReturn) {
  LuaEnv& env = Env();
  auto other = Other();
  g_other = other.get();
  lua_register(env.rt().state(), "other_get", OtherGet);
  ASSERT_TRUE(env.Run("state.set('warm', 1)").ok());  // opens the store
  int64_t before = store_->db().commits();
  Status s = env.RunInTask(R"(
    local hs = {}
    for i = 1, 50 do
      hs[i] = goroutine.async(function()
        assert(state.set("k" .. i, i) == true)
        assert(other_get("k" .. i) == tostring(i), "not committed when set returned")
        local n = state.increment("count")
        assert(math.type(n) == "integer" and n >= 1 and n <= 50)
        assert(state.list_push("list", i) >= 1)
        return n
      end)
    end
    local seen = {}
    for i, r in ipairs(goroutine.await_all(hs)) do
      assert(r.success, r.error)
      assert(not seen[r.values[1]], "two increments returned the same value")
      seen[r.values[1]] = true
    end
    assert(state.get("count") == 50 and state.list_length("list") == 50)
  )");
  ASSERT_TRUE(s.ok()) << s.message();
  int64_t commits = store_->db().commits() - before;
  EXPECT_GE(commits, 3);
  EXPECT_LE(commits, 10) << "150 writes from 50 goroutines should share a few commits";
  g_other = nullptr;
}

TEST_F(StateTest, OneFailingWriteInAGroupDoesNotUndoTheOthers) {
  LuaEnv& env = Env();
  ASSERT_TRUE(env.Run("state.set('text', 'abc'); state.set('n', 1)").ok());
  int64_t before = store_->db().commits();
  Status s = env.RunInTask(R"(
    local hs = {
      goroutine.async(function() return state.set("a", 1) end),
      goroutine.async(function() return state.increment("text") end),  -- not a number
      goroutine.async(function() return state.increment("n", 2) end),
      goroutine.async(function() return state.compare_swap("n", 1, 10) end),  -- 3 by then
      goroutine.async(function() return state.append("text", "d") end),
    }
    local rs = goroutine.await_all(hs)
    assert(rs[1].success and rs[1].values[1] == true)
    assert(not rs[2].success, "increment of a string succeeded")
    assert(rs[2].error:find("state.increment: cannot increment text: its value is not a number",
                            1, true), rs[2].error)
    assert(rs[3].success and rs[3].values[1] == 3)
    assert(rs[4].success and rs[4].values[1] == false)
    assert(rs[5].success and rs[5].values[1] == "abcd")
  )");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(store_->db().commits() - before, 1);  // the five writes, one of them failed
  EXPECT_EQ(**store_->Get("a"), "1");
  EXPECT_EQ(**store_->Get("n"), "3");
  EXPECT_EQ(**store_->Get("text"), "\"abcd\"");
}

TEST_F(StateTest, TopLevelAndSequentialWritesCommitOneByOne) {
  LuaEnv& env = Env();
  ASSERT_TRUE(env.Run("state.set('warm', 1)").ok());
  int64_t before = store_->db().commits();
  ASSERT_TRUE(env.Run("for i = 1, 10 do state.set('k' .. i, i) end").ok());  // cannot yield
  EXPECT_EQ(store_->db().commits() - before, 10);
  // A user's own coroutine can yield, but not to the loop: its write waits in place.
  ASSERT_TRUE(env.Run("coroutine.wrap(function() assert(state.increment('co') == 1) end)()").ok());
  EXPECT_EQ(**store_->Get("co"), "1");
  before = store_->db().commits();
  Status s = env.RunInTask(R"(
    for i = 1, 10 do assert(state.increment("c") == i) end
    local token = assert(state.try_lock("l"))
    assert(state.renew_lock("l", token) and state.unlock("l", token))
    assert(state.delete("c") and state.list_pop("none") == nil and state.clear("k") == 10)
  )");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(store_->db().commits() - before, 16);  // nobody else wrote: one commit each
}

TEST_F(StateTest, GroupedLockAttemptsGiveOneHolderAtATime) {
  LuaEnv& env = Env();
  Status s = env.RunInTask(R"(
    local holder, tokens = nil, {}
    local hs = {}
    for i = 1, 8 do
      hs[i] = goroutine.async(function()
        for round = 1, 3 do
          state.with_lock("m", function()
            assert(holder == nil, "two holders")
            holder = i
            goroutine.sleep(1)
            assert(holder == i)
            holder = nil
          end, 10)
          local t = assert(state.lock("m2", 5, 10))
          tokens[#tokens + 1] = t
          assert(state.unlock("m2", t))
        end
      end)
    end
    for _, r in ipairs(goroutine.await_all(hs)) do assert(r.success, r.error) end
    table.sort(tokens)
    for i = 2, #tokens do assert(tokens[i] > tokens[i - 1], "a token was given twice") end
    assert(#tokens == 24)
  )");
  ASSERT_TRUE(s.ok()) << s.message();
}

}  // namespace
}  // namespace sloth
