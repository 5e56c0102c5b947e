// Loop: the run's event loop (epoll): timers, file descriptors, signals, and callbacks posted
// from other threads. One thread runs it; only that thread touches Lua.
#pragma once

#include <sys/epoll.h>

#include <csignal>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/executor.h"

namespace sloth {

class Loop : public Timers {
 public:
  using Callback = std::function<void()>;

  // Blocks the signals the loop handles (SIGINT, SIGTERM, SIGCHLD) in the calling thread; call it
  // before starting any thread so that every thread inherits the mask.
  static void BlockSignals();

  Loop();
  ~Loop() override;
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Timers (core::Timers).
  uint64_t After(Duration delay, std::function<void()> fn) override;
  void Cancel(uint64_t id) override;
  // A timer that does not keep the loop alive (housekeeping such as renewing a lease): with
  // only such timers left, RunOnce reports that there is nothing to wait for.
  uint64_t AfterInBackground(Duration delay, std::function<void()> fn);
  Clock::time_point Now() const override { return Clock::now(); }
  double Random() override;

  // Calls fn(events) whenever fd is ready for `events` (EPOLLIN, EPOLLOUT...).
  void Watch(int fd, uint32_t events, std::function<void(uint32_t)> fn);
  void Unwatch(int fd);
  // Thread-safe: runs fn on the loop thread soon.
  void Post(Callback fn);
  // Work in flight elsewhere (a pool thread) that will Post() back: keeps RunOnce waiting.
  void Ref() { ++refs_; }
  void Unref() { --refs_; }
  // Runs fn on the loop thread whenever `signal` (one of the blocked ones) arrives; every
  // handler of a signal runs. Returns an id for RemoveSignalHandler.
  uint64_t OnSignal(int signal, std::function<void()> fn);
  void RemoveSignalHandler(uint64_t id);

  // Waits for and handles one round of events; returns false only if there is nothing at all to
  // wait for (no timers, fds or posted work).
  bool RunOnce();
  // Runs until done() is true.
  void RunUntil(const std::function<bool()>& done);

 private:
  void FireTimers();
  void DrainPosted();
  void ReadSignals();
  int NextTimeoutMs() const;

  int epoll_fd_ = -1;
  int wake_fd_ = -1;    // eventfd: Post() wakes the loop
  int signal_fd_ = -1;  // signalfd for the handled signals
  int refs_ = 0;
  uint64_t next_timer_id_ = 1;
  std::multimap<Clock::time_point, uint64_t> timer_queue_;
  std::unordered_map<uint64_t, std::pair<Clock::time_point, Callback>> timers_;
  std::unordered_set<uint64_t> background_;  // ids of timers made by AfterInBackground
  std::unordered_map<int, std::function<void(uint32_t)>> watchers_;
  std::map<int, std::vector<std::pair<uint64_t, Callback>>> signal_handlers_;
  uint64_t next_signal_id_ = 1;
  bool signal_watched_ = false;
  std::mutex posted_mu_;
  std::vector<Callback> posted_;  // guarded by posted_mu_
  std::mt19937_64 rng_;
};

}  // namespace sloth
