#include "exec/loop.h"
#include "exec/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

using namespace std::chrono_literals;

namespace sloth {

TEST(Loop, TimersFireInDeadlineOrder) {
  Loop loop;
  std::vector<int> fired;
  loop.After(30ms, [&] { fired.push_back(3); });
  loop.After(10ms, [&] { fired.push_back(1); });
  loop.After(20ms, [&] { fired.push_back(2); });
  loop.RunUntil([&] { return fired.size() == 3; });
  EXPECT_EQ(fired, (std::vector<int>{1, 2, 3}));
}

TEST(Loop, CancelledTimerNeverFires) {
  Loop loop;
  bool fired = false, other = false;
  uint64_t id = loop.After(5ms, [&] { fired = true; });
  loop.After(20ms, [&] { other = true; });
  loop.Cancel(id);
  loop.RunUntil([&] { return other; });
  EXPECT_FALSE(fired);
}

TEST(Loop, PostFromAnotherThreadRunsOnLoop) {
  Loop loop;
  std::thread::id ran_on;
  bool done = false;
  loop.Ref();
  std::thread t([&] {
    loop.Post([&] {
      loop.Unref();
      ran_on = std::this_thread::get_id();
      done = true;
    });
  });
  loop.RunUntil([&] { return done; });
  t.join();
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(Loop, RunOnceReportsNothingToWaitFor) {
  Loop loop;
  EXPECT_FALSE(loop.RunOnce());
}

TEST(Loop, BackgroundTimersFireButDoNotKeepTheLoopAlive) {
  Loop loop;
  int fired = 0;
  loop.AfterInBackground(std::chrono::hours(1), [&] { ++fired; });
  EXPECT_FALSE(loop.RunOnce());  // only a background timer: nothing to wait for
  loop.AfterInBackground(std::chrono::milliseconds(1), [&] { ++fired; });
  bool done = false;
  loop.After(std::chrono::milliseconds(20), [&] { done = true; });
  loop.RunUntil([&] { return done; });
  EXPECT_EQ(fired, 1);  // fired while a normal timer kept the loop running
  uint64_t id = loop.AfterInBackground(std::chrono::milliseconds(1), [&] { ++fired; });
  loop.Cancel(id);
  EXPECT_FALSE(loop.RunOnce());
}

}  // namespace sloth

namespace sloth {
namespace {

// A worker that has just finished a job counts as idle before it wakes for the next one: two
// jobs submitted back to back must still get two threads, not wait for each other.
TEST(ThreadPool, BackToBackJobsRunInParallelWithAnIdleWorker) {
  Loop loop;
  ThreadPool pool(loop, 4);
  bool warm = false;
  pool.Submit([] {}, [&] { warm = true; });
  loop.RunUntil([&] { return warm; });
  std::atomic<int> running{0}, most{0};
  int done = 0;
  auto job = [&] {
    int now = ++running;
    for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    --running;
  };
  pool.Submit(job, [&] { ++done; });
  pool.Submit(job, [&] { ++done; });
  loop.RunUntil([&] { return done == 2; });
  EXPECT_EQ(most.load(), 2);
}

}  // namespace
}  // namespace sloth
