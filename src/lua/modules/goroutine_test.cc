#include <gtest/gtest.h>

#include <filesystem>

#include "lua/test_util.h"

namespace sloth {
using testing::LuaEnv;

struct GoroutineTest : ::testing::Test {
  static void SetUpTestSuite() { Loop::BlockSignals(); }
};

TEST_F(GoroutineTest, RequireReturnsTheModuleAndAsyncIsAnAlias) {
  LuaEnv env;
  EXPECT_EQ(env.Eval("require('goroutine') == goroutine and async == goroutine"), "true");
  // The primitives for the Lua layer are not part of the table.
  EXPECT_EQ(env.Eval("goroutine._park == nil and goroutine._wake == nil"), "true");
}

TEST_F(GoroutineTest, GoroutinesInterleaveAndResultsKeepInputOrder) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local order = {}
    local hs = {}
    for i = 1, 3 do
      hs[i] = goroutine.async(function(x)
        goroutine.sleep(30 * (4 - x))  -- the last one finishes first
        order[#order + 1] = x
        return x, x * 10
      end, i)
    end
    local rs = goroutine.await_all(hs)
    assert(table.concat(order, ",") == "3,2,1", table.concat(order, ","))
    for i = 1, 3 do
      assert(rs[i].success and rs[i].values[1] == i and rs[i].values[2] == i * 10)
    end
    local ok, a, b = goroutine.await(hs[2])
    assert(ok and a == 2 and b == 20)
  )")
                  .ok());
}

TEST_F(GoroutineTest, ManySleepersRunConcurrently) {
  LuaEnv env;
  auto start = Clock::now();
  ASSERT_TRUE(env.RunInTask(R"(
    local hs = goroutine.spawn_many(500, function(i) goroutine.sleep(100); return i end)
    local rs = goroutine.await_all(hs)
    assert(#rs == 500 and rs[500].values[1] == 500)
  )")
                  .ok());
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(2));
}

TEST_F(GoroutineTest, AnErrorFailsOnlyItsGoroutine) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local bad = goroutine.async(function() goroutine.sleep(5); error("boom inside") end)
    local good = goroutine.async(function() goroutine.sleep(10); return "fine" end)
    local ok, err = goroutine.await(bad)
    assert(ok == false and err:find("boom inside"), tostring(err))
    local rs = goroutine.await_all({ bad, good })
    assert(rs[1].success == false and rs[1].error:find("boom inside"))
    assert(rs[2].success and rs[2].values[1] == "fine")
    -- spawn: fire and forget; its error is logged, the caller goes on
    goroutine.spawn(function() error("spawned failure") end)
    local ok2, e2 = pcall(goroutine.map, { 1, 2, 3 }, function(x)
      if x == 2 then error("map item 2") end
      return x
    end)
    assert(not ok2 and e2:find("map item 2"))
  )")
                  .ok());
  EXPECT_TRUE(env.sink().Contains("goroutine failed: "));
  EXPECT_TRUE(env.sink().Contains("spawned failure"));
}

TEST_F(GoroutineTest, SeedAliasesMapAndParallel) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local g1 = goroutine.create(function() goroutine.sleep(10); return "a", "b" end)
    local g2 = goroutine.create(function() goroutine.sleep(5000); return "late" end)
    local rs = goroutine.wait_all({ g1, g2 }, 0.1)
    assert(rs[1].success and rs[1].value == "a" and rs[1].values[2] == "b")
    assert(rs[2].success == false and rs[2].error == "timeout exceeded")
    local sq = goroutine.map({ 1, 2, 3, 4 }, function(x, i)
      goroutine.sleep(10 * (5 - x))
      assert(i == x)
      return x * x
    end)
    assert(sq[1] == 1 and sq[2] == 4 and sq[3] == 9 and sq[4] == 16)
    local pr = goroutine.parallel({ function() return 1 end, function() error("p2") end })
    assert(pr[1].values[1] == 1 and pr[2].success == false and pr[2].error:find("p2"))
  )")
                  .ok());
}

TEST_F(GoroutineTest, Timeout) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local ok, err = goroutine.timeout(30, function() goroutine.sleep(2000) end)
    assert(ok == false and err == "timeout exceeded")
    local ok2, a, b = goroutine.timeout(1000, function() goroutine.sleep(5); return 1, 2 end)
    assert(ok2 and a == 1 and b == 2)
    local ok3, e3 = goroutine.timeout(1000, function() error("inner") end)
    assert(ok3 == false and e3:find("inner"))
  )")
                  .ok());
}

TEST_F(GoroutineTest, BufferedChannelBlocksWhenFullAndWhenEmpty) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local ch = goroutine.channel(2)
    assert(ch:cap() == 2 and ch:len() == 0)
    local log = {}
    goroutine.spawn(function()
      for i = 1, 4 do ch:send(i); log[#log + 1] = "sent" .. i end
    end)
    -- the producer filled the buffer and blocks on the third send
    assert(ch:len() == 2 and #log == 2, #log)
    assert(ch:try_send(99) == false)
    local v, ok = ch:receive()
    assert(v == 1 and ok)
    goroutine.sleep(1)
    assert(#log == 3 and ch:len() == 2)
    assert(ch:receive() == 2 and ch:receive() == 3 and ch:receive() == 4)
    -- empty: a receiver blocks until a send
    local got
    goroutine.spawn(function() got = ch:receive() end)
    assert(got == nil)
    ch:send("x")
    goroutine.sleep(1)
    assert(got == "x")
    local tv, tok = ch:try_receive()
    assert(tv == nil and tok == false)
  )")
                  .ok());
}

TEST_F(GoroutineTest, UnbufferedChannelIsARendezvous) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local ch = goroutine.channel()
    local steps = {}
    goroutine.spawn(function()
      steps[#steps + 1] = "send start"
      ch:send("ping")
      steps[#steps + 1] = "send done"
    end)
    assert(table.concat(steps, ",") == "send start")  -- no receiver yet: the sender waits
    assert(ch:try_send("nope") == false)
    local v, ok = ch:receive()
    assert(v == "ping" and ok)
    goroutine.sleep(1)
    assert(table.concat(steps, ",") == "send start,send done")
  )")
                  .ok());
}

TEST_F(GoroutineTest, CloseWakesReceiversAndFailsSenders) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local ch = goroutine.channel(3)
    ch:send(1); ch:send(2)
    ch:close()
    assert(ch:is_closed())
    -- buffered values are still received, then nil, false
    assert(ch:receive() == 1)
    local seen = {}
    ch:range(function(v) seen[#seen + 1] = v end)
    assert(#seen == 1 and seen[1] == 2)
    local v, ok = ch:receive()
    assert(v == nil and ok == false)
    local sok, serr = pcall(ch.send, ch, 3)
    assert(not sok and serr:find("send on closed channel"))
    assert(not pcall(ch.close, ch))
    -- waiting receivers and senders are released by close
    local u = goroutine.channel()
    local r1 = goroutine.async(function() return u:receive() end)
    local s1 = goroutine.async(function() u:send("x") end)
    local u2 = goroutine.channel()
    local r2 = goroutine.async(function() return u2:receive() end)
    u2:close()
    local a, rv, rok = goroutine.await(r2)
    assert(a and rv == nil and rok == false)
    -- r1 took s1's value already (rendezvous); close now has no waiters
    local b1, bv = goroutine.await(r1)
    assert(b1 and bv == "x")
    local u3 = goroutine.channel()
    local s3 = goroutine.async(function() u3:send("y") end)
    u3:close()
    local c1, cerr = goroutine.await(s3)
    assert(c1 == false and cerr:find("send on closed channel"))
  )")
                  .ok());
}

TEST_F(GoroutineTest, Select) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local a, b = goroutine.channel(), goroutine.channel(1)
    local r = goroutine.select({
      { channel = a, receive = true },
      { default = true, handler = function() return "default" end },
    })
    assert(r == "default")
    goroutine.spawn(function() goroutine.sleep(10); a:send("from a") end)
    local got = goroutine.select({
      { channel = b, receive = true, handler = function(v) return "b:" .. tostring(v) end },
      { channel = a, receive = true, handler = function(v) return "a:" .. v end },
    })
    assert(got == "a:from a", got)
    -- a send case; the buffered channel has room
    assert(goroutine.select({ { channel = b, send = 5, handler = function() return "sent" end } }) == "sent")
    assert(b:receive() == 5)
    local tv, terr = goroutine.select_timeout(20, { { channel = a, receive = true } })
    assert(tv == nil and terr == "timeout")
    -- the timed-out select left no waiter behind that could swallow a value
    goroutine.spawn(function() a:send("later") end)
    assert(a:receive() == "later")
  )")
                  .ok());
}

TEST_F(GoroutineTest, WaitGroup) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local wg = goroutine.wait_group()
    local done = 0
    for i = 1, 5 do
      wg:add(1)
      goroutine.spawn(function() goroutine.sleep(i * 5); done = done + 1; wg:done() end)
    end
    wg:wait()
    assert(done == 5)
    wg:wait()  -- zero: returns at once
    assert(not pcall(wg.done, wg))  -- negative counter
  )")
                  .ok());
}

TEST_F(GoroutineTest, MutexExcludesAcrossYields) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local mu = goroutine.mutex()
    local counter, inside, max_inside = 0, 0, 0
    local hs = {}
    for i = 1, 20 do
      hs[i] = goroutine.async(function()
        mu:lock()
        inside = inside + 1
        if inside > max_inside then max_inside = inside end
        local c = counter
        goroutine.sleep(1)
        counter = c + 1
        inside = inside - 1
        mu:unlock()
      end)
    end
    goroutine.await_all(hs)
    assert(counter == 20 and max_inside == 1, counter .. " " .. max_inside)
    assert(mu:try_lock() == true and mu:try_lock() == false)
    mu:unlock()
    assert(not pcall(mu.unlock, mu))
  )")
                  .ok());
}

TEST_F(GoroutineTest, SemaphoreBoundsConcurrency) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local sem = goroutine.semaphore(3)
    assert(sem:capacity() == 3 and sem:available() == 3)
    local active, peak = 0, 0
    local hs = {}
    for i = 1, 10 do
      hs[i] = goroutine.async(function()
        sem:acquire()
        active = active + 1
        if active > peak then peak = active end
        goroutine.sleep(10)
        active = active - 1
        sem:release()
      end)
    end
    goroutine.await_all(hs)
    assert(peak == 3, peak)
    assert(sem:available() == 3)
    assert(sem:try_acquire() and sem:available() == 2)
    sem:release()
    assert(not pcall(sem.release, sem))
    assert(not pcall(goroutine.semaphore, 0))
  )")
                  .ok());
}

TEST_F(GoroutineTest, AtomicIntAndOnce) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local a = goroutine.atomic_int(5)
    assert(a:add(2) == 7 and a:load() == 7)
    a:store(1)
    assert(a:swap(9) == 1 and a:load() == 9)
    assert(a:compare_and_swap(9, 10) == true and a:compare_and_swap(9, 11) == false)
    assert(a:load() == 10)
    assert(not pcall(a.add, a, 1.5))
    local o = goroutine.once()
    local runs = 0
    local hs = {}
    for i = 1, 3 do
      hs[i] = goroutine.async(function() o:call(function() goroutine.sleep(10); runs = runs + 1 end); return runs end)
    end
    local rs = goroutine.await_all(hs)
    -- everyone waited for the one run to finish
    assert(runs == 1 and rs[1].values[1] == 1 and rs[2].values[1] == 1 and rs[3].values[1] == 1)
  )")
                  .ok());
}

TEST_F(GoroutineTest, Pools) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    assert(goroutine.pool_create("p", { workers = 2, queue = 3 }))
    local active, peak = 0, 0
    local function job(ms)
      active = active + 1
      if active > peak then peak = active end
      goroutine.sleep(ms)
      active = active - 1
    end
    local ids = {}
    for i = 1, 5 do ids[i] = assert(goroutine.pool_submit("p", job, 10)) end
    assert(ids[5] == 5)
    local none, full = goroutine.pool_submit("p", job, 10)
    assert(none == nil and full:find("full"), full)

    local st = goroutine.pool_stats("p")
    assert(st.workers == 2 and st.active == 2 and st.queued == 3)
    goroutine.pool_wait("p")
    assert(goroutine.pool_submit("p", function() error("job fails") end))
    goroutine.pool_wait("p")
    st = goroutine.pool_stats("p")
    assert(peak == 2 and st.completed == 5 and st.failed == 1 and st.active == 0)
    assert(goroutine.pool_close("p"))
    local n, err = goroutine.pool_submit("p", job, 1)
    assert(n == nil and err:find("no pool named p"))
    assert(goroutine.pool_stats("missing") == nil)
  )")
                  .ok());
}

TEST_F(GoroutineTest, WaitingAtTopLevelDrivesTheLoop) {
  LuaEnv env;
  ASSERT_TRUE(env.Run(R"(
    local ch = goroutine.channel()
    goroutine.spawn(function() goroutine.sleep(10); ch:send("hi") end)
    assert(ch:receive() == "hi")
    local ok, v = goroutine.await(goroutine.async(function() goroutine.sleep(5); return 7 end))
    assert(ok and v == 7)
  )")
                  .ok());
}

TEST_F(GoroutineTest, DeadlockIsReportedInsteadOfHanging) {
  LuaEnv env;
  // Top level: the wait fails with the report.
  Status s = env.Run(R"(
    local ch = goroutine.channel()
    local wg = goroutine.wait_group()
    wg:add(1)
    goroutine.spawn(function() wg:wait() end)
    ch:receive()
  )");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("all goroutines are asleep - deadlock"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("channel receive"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("wait_group"), std::string::npos) << s.message();
  // In a task: the loop runs dry; the runtime's report is what RunWorkflow prints.
  LuaEnv env2;
  // The task never finishes: the loop runs dry with everything parked.
  static_cast<void>(env2.RunInTask(R"(
    local m = goroutine.mutex()
    m:lock()
    goroutine.spawn(function() m:lock() end)
    goroutine.spawn(function() m:lock() end)
    goroutine.channel():send(1)
  )"));
  EXPECT_EQ(env2.rt().StallMessage("x"),
            "all goroutines are asleep - deadlock (waiting on: channel send, 2 x mutex)");
  LuaEnv env3;
  EXPECT_EQ(env3.rt().StallMessage("nothing parked"), "nothing parked");
}

TEST_F(GoroutineTest, CancellingTheTaskStopsItsGoroutinesAndTheirProcesses) {
  LuaEnv env;
  TaskContext task;
  task.name = "t";
  task.workdir = env.dir();
  uint64_t timer = env.loop().After(std::chrono::milliseconds(300),
                                    [&] { env.rt().CancelTask(&task, "cancelled by test"); });
  auto start = Clock::now();
  Status s = env.RunInTask(R"(
    ticks = 0
    goroutine.spawn(function()
      while true do goroutine.sleep(10); ticks = ticks + 1 end
    end)
    goroutine.spawn(function()
      exec.run("sleep 5; touch marker")
      reached = true
    end)
    local ch = goroutine.channel()
    goroutine.spawn(function() ch:receive(); reached = true end)
    goroutine.sleep(60000)
  )",
                           &task);
  env.loop().Cancel(timer);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cancelled by test"), std::string::npos) << s.message();
  int ticks = std::stoi(env.Eval("ticks"));
  EXPECT_GT(ticks, 5);
  // Let anything still scheduled run; nothing of the task may go on.
  uint64_t tick = env.loop().After(std::chrono::milliseconds(200), [] {});
  env.loop().RunUntil([&] { return Clock::now() - start > std::chrono::milliseconds(600); });
  env.loop().Cancel(tick);
  EXPECT_EQ(std::stoi(env.Eval("ticks")), ticks);
  EXPECT_EQ(env.Eval("reached"), "nil");
  EXPECT_EQ(env.rt().processes().running(), 0u);
  EXPECT_FALSE(std::filesystem::exists(env.dir() + "/marker"));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(4));
  env.rt().KillProcesses();
  // The cancelled waits are gone: nothing is reported as parked.
  EXPECT_EQ(env.rt().StallMessage("none"), "none");
}

TEST_F(GoroutineTest, RWMutexLetsReadersShareAndWritersExclude) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local rw = goroutine.rwmutex()
    local readers, peak_readers, writing, bad = 0, 0, false, false
    local hs = {}
    for i = 1, 6 do
      hs[#hs + 1] = goroutine.async(function()
        rw:rlock()
        readers = readers + 1
        peak_readers = math.max(peak_readers, readers)
        if writing then bad = true end
        goroutine.sleep(10)
        readers = readers - 1
        rw:runlock()
      end)
      if i == 3 then
        hs[#hs + 1] = goroutine.async(function()
          rw:lock()
          writing = true
          if readers > 0 then bad = true end
          goroutine.sleep(10)
          writing = false
          rw:unlock()
        end)
      end
    end
    goroutine.await_all(hs)
    assert(not bad and peak_readers >= 3, peak_readers)
    assert(rw:try_rlock() and rw:try_rlock() and not rw:try_lock())
    rw:runlock(); rw:runlock()
    assert(rw:try_lock() and not rw:try_rlock())
    rw:unlock()
    assert(not pcall(rw.unlock, rw) and not pcall(rw.runlock, rw))
  )")
                  .ok());
}

TEST_F(GoroutineTest, CondSignalAndBroadcast) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local mu = goroutine.mutex()
    local c = goroutine.cond(mu)
    local ready, woke = false, 0
    local hs = {}
    for i = 1, 3 do
      hs[i] = goroutine.async(function()
        mu:lock()
        while not ready do c:wait() end
        woke = woke + 1
        mu:unlock()
      end)
    end
    goroutine.sleep(5)
    assert(woke == 0)
    mu:lock(); ready = true; c:signal(); mu:unlock()
    goroutine.sleep(5)
    assert(woke == 1, woke)
    c:broadcast()
    goroutine.await_all(hs)
    assert(woke == 3)
    assert(not pcall(goroutine.cond, {}))
  )")
                  .ok());
}

TEST_F(GoroutineTest, ContextCancelTimeoutAndDone) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local root = goroutine.context()
    local child = root:with_cancel()
    local grandchild = child:with_timeout(10000)
    assert(not grandchild:is_cancelled() and grandchild:err() == nil)
    local seen
    goroutine.spawn(function()
      local _, ok = grandchild:done():receive()
      seen = ok
    end)
    child:cancel()
    assert(child:is_cancelled() and grandchild:is_cancelled() and not root:is_cancelled())
    assert(grandchild:err() == "context cancelled")
    goroutine.sleep(1)
    assert(seen == false)
    local t = root:with_timeout(20)
    local started = time.now_ms()
    t:done():receive()
    assert(t:err() == "context deadline exceeded" and time.now_ms() - started >= 15)
    local d = root:with_deadline(time.now_ms() - 5)
    goroutine.sleep(1)
    assert(d:is_cancelled())
    root:cancel("stop")
    assert(root:with_cancel():err() == "stop")
  )")
                  .ok());
}

TEST_F(GoroutineTest, PipelineFanOutFanIn) {
  LuaEnv env;
  ASSERT_TRUE(env.RunInTask(R"(
    local src = goroutine.channel()
    goroutine.spawn(function()
      for i = 1, 6 do src:send(i) end
      src:close()
    end)
    local out = goroutine.pipeline(src, {
      function(v) return v * 2 end,
      function(v) goroutine.sleep(1); return v + 1 end,
    })
    local got = {}
    out:range(function(v) got[#got + 1] = v end)
    assert(table.concat(got, ",") == "3,5,7,9,11,13")

    local src2 = goroutine.channel(10)
    for i = 1, 6 do src2:send(i) end
    src2:close()
    local parts = goroutine.fan_out(src2, 3)
    assert(#parts == 3)
    local merged = goroutine.fan_in(parts)
    local sum, n = 0, 0
    merged:range(function(v) sum = sum + v; n = n + 1 end)
    assert(sum == 21 and n == 6 and merged:is_closed())
  )")
                  .ok());
}

TEST_F(GoroutineTest, BadArgumentsRaise) {
  LuaEnv env;
  EXPECT_NE(env.Eval("select(2, pcall(goroutine.spawn, 1))").find("bad argument #1"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(goroutine.async, 'x'))").find("goroutine.async"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(goroutine.sleep, -1))").find("goroutine.sleep"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(goroutine.await, {}))").find("expected a handle"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(goroutine.channel, -1))").find("goroutine.channel"),
            std::string::npos);
  EXPECT_NE(
      env.Eval("select(2, pcall(goroutine.select, {{receive = true}}))").find("needs a channel"),
      std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(goroutine.timeout, 'x', print))").find("goroutine.timeout"),
            std::string::npos);
}

}  // namespace sloth
