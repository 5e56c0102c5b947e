// ThreadPool: runs blocking library calls (HTTP, DNS, big file copies) off the loop thread and
// posts their completions back to the loop. Threads start on first use.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "exec/loop.h"

namespace sloth {

class ThreadPool {
 public:
  ThreadPool(Loop& loop, size_t threads);
  ~ThreadPool();

  // Runs `work` on a pool thread, then `then` on the loop thread.
  void Submit(std::function<void()> work, std::function<void()> then);

 private:
  void Worker();

  Loop& loop_;
  size_t max_threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::function<void()>, std::function<void()>>> queue_;  // guarded by mu_
  bool stopping_ = false;                                                      // guarded by mu_
  size_t idle_ = 0;                                                            // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace sloth
