// Thread pool with lazily started workers.
#include "exec/thread_pool.h"

namespace sloth {

ThreadPool::ThreadPool(Loop& loop, size_t threads) : loop_(loop), max_threads_(threads) {}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void ThreadPool::Submit(std::function<void()> work, std::function<void()> then) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    loop_.Ref();
    queue_.emplace_back(std::move(work), [this, then = std::move(then)] {
      loop_.Unref();
      if (then) then();
    });
    // A worker counted idle may not have woken for earlier jobs yet: start another while there
    // are more queued jobs than idle workers, or two jobs could end up on one thread.
    if (idle_ < queue_.size() && threads_.size() < max_threads_)
      threads_.emplace_back([this] { Worker(); });
  }
  cv_.notify_one();
}

void ThreadPool::Worker() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) return;  // stopping and nothing left
    auto job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    job.first();
    loop_.Post(std::move(job.second));
    lock.lock();
  }
}

}  // namespace sloth
