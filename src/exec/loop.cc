// The epoll-based event loop.
#include "exec/loop.h"

#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace sloth {
namespace {

sigset_t HandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGCHLD);
  return set;
}

void Check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string(what) + ": " + std::strerror(errno));
}

}  // namespace

void Loop::BlockSignals() {
  sigset_t set = HandledSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a closed pipe is an error return, not a death
}

Loop::Loop() : rng_(std::random_device{}()) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  Check(epoll_fd_ >= 0, "epoll_create1");
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  Check(wake_fd_ >= 0, "eventfd");
  Watch(wake_fd_, EPOLLIN, [this](uint32_t) {
    uint64_t n;
    while (read(wake_fd_, &n, sizeof n) > 0) {
    }
    DrainPosted();
  });
  sigset_t set = HandledSignals();
  signal_fd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  Check(signal_fd_ >= 0, "signalfd");
}

Loop::~Loop() {
  if (signal_fd_ >= 0) close(signal_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

uint64_t Loop::After(Duration delay, std::function<void()> fn) {
  uint64_t id = next_timer_id_++;
  Clock::time_point when = Now() + delay;
  timers_.emplace(id, std::make_pair(when, std::move(fn)));
  timer_queue_.emplace(when, id);
  return id;
}

uint64_t Loop::AfterInBackground(Duration delay, std::function<void()> fn) {
  uint64_t id = After(delay, std::move(fn));
  background_.insert(id);
  return id;
}

void Loop::Cancel(uint64_t id) {
  timers_.erase(id);  // its queue entry is skipped later
  background_.erase(id);
}

double Loop::Random() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

void Loop::Watch(int fd, uint32_t events, std::function<void(uint32_t)> fn) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  bool known = watchers_.count(fd) > 0;
  watchers_[fd] = std::move(fn);
  Check(epoll_ctl(epoll_fd_, known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl");
}

void Loop::Unwatch(int fd) {
  if (watchers_.erase(fd)) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void Loop::Post(Callback fn) {
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    posted_.push_back(std::move(fn));
    // One wake-up per batch: the loop reads the eventfd before it takes the batch.
    if (posted_.size() > 1) return;
  }
  uint64_t one = 1;
  ssize_t n = write(wake_fd_, &one, sizeof one);
  (void)n;  // a full eventfd counter still wakes the loop
}

uint64_t Loop::OnSignal(int signal, std::function<void()> fn) {
  if (!signal_watched_) Watch(signal_fd_, EPOLLIN, [this](uint32_t) { ReadSignals(); });
  signal_watched_ = true;
  uint64_t id = next_signal_id_++;
  signal_handlers_[signal].emplace_back(id, std::move(fn));
  return id;
}

void Loop::RemoveSignalHandler(uint64_t id) {
  for (auto& [signal, handlers] : signal_handlers_)
    std::erase_if(handlers, [id](const auto& h) { return h.first == id; });
}

void Loop::ReadSignals() {
  signalfd_siginfo info;
  while (read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    auto it = signal_handlers_.find(static_cast<int>(info.ssi_signo));
    if (it == signal_handlers_.end()) continue;
    // By id: a handler may add or remove handlers (even its own owner's) while they run.
    std::vector<uint64_t> ids;
    for (const auto& h : it->second) ids.push_back(h.first);
    for (uint64_t id : ids) {
      auto& handlers = signal_handlers_[static_cast<int>(info.ssi_signo)];
      auto h = std::find_if(handlers.begin(), handlers.end(),
                            [id](const auto& entry) { return entry.first == id; });
      if (h == handlers.end()) continue;
      Callback fn = h->second;  // a copy: the handler may remove itself
      fn();
    }
  }
}

void Loop::DrainPosted() {
  std::vector<Callback> work;
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    work.swap(posted_);
  }
  for (Callback& fn : work) fn();
}

int Loop::NextTimeoutMs() const {
  for (const auto& [when, id] : timer_queue_) {
    if (!timers_.count(id)) continue;
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(when - Now()).count();
    return ms < 0 ? 0 : static_cast<int>(std::min<long long>(ms, 60000));
  }
  return -1;
}

void Loop::FireTimers() {
  Clock::time_point now = Now();
  while (!timer_queue_.empty() && timer_queue_.begin()->first <= now) {
    uint64_t id = timer_queue_.begin()->second;
    timer_queue_.erase(timer_queue_.begin());
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;  // cancelled
    Callback fn = std::move(it->second.second);
    timers_.erase(it);
    background_.erase(id);
    fn();
  }
}

bool Loop::RunOnce() {
  // The wake fd and the signal fd are our own; "nothing to wait for" means nothing else is
  // (child processes hold a Ref until they are reaped).
  size_t own = 1 + (signal_watched_ ? 1 : 0);
  if (timers_.size() == background_.size() && watchers_.size() <= own && refs_ == 0) {
    std::lock_guard<std::mutex> lock(posted_mu_);
    if (posted_.empty()) return false;
  }
  epoll_event events[64];
  int n = epoll_wait(epoll_fd_, events, 64, NextTimeoutMs());
  for (int i = 0; i < n; ++i) {
    auto it = watchers_.find(events[i].data.fd);
    if (it == watchers_.end()) continue;
    auto fn = it->second;  // a copy: the callback may unwatch itself
    fn(events[i].events);
  }
  FireTimers();
  return true;
}

void Loop::RunUntil(const std::function<bool()>& done) {
  while (!done()) {
    if (!RunOnce()) break;
  }
}

}  // namespace sloth
