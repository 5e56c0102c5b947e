// Spawning, reading and reaping child processes.
#include "exec/process.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>

namespace sloth {
namespace {

constexpr size_t kReadChunk = 65536;

struct Pipe {
  int fds[2] = {-1, -1};
  bool Open() { return pipe2(fds, O_CLOEXEC) == 0; }
  void Close() {
    for (int& fd : fds)
      if (fd >= 0) close(fd), fd = -1;
  }
};

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// posix_spawn attributes: own process group, default signal dispositions, empty mask.
struct SpawnAttr {
  posix_spawnattr_t attr;
  SpawnAttr() {
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s : {SIGINT, SIGTERM, SIGCHLD, SIGPIPE, SIGQUIT, SIGHUP}) sigaddset(&defaults, s);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_USEVFORK);
  }
  ~SpawnAttr() { posix_spawnattr_destroy(&attr); }
};

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const std::string& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

// Every Processes of this process by the children it started: waitpid(-1) in one instance reaps
// the children of all, so each exit is handed to the instance that owns the child. (Several
// instances share a loop: a run's runtime and its event bus.)
static std::mutex owners_mu;
static std::unordered_map<pid_t, Processes*>& Owners() {
  static std::unordered_map<pid_t, Processes*> owners;
  return owners;
}

Processes::Processes(Loop& loop) : loop_(loop) {
  sigchld_handler_ = loop_.OnSignal(SIGCHLD, [this] { Reap(); });
}

Processes::~Processes() {
  KillAll();
  loop_.RemoveSignalHandler(sigchld_handler_);
  std::lock_guard<std::mutex> lock(owners_mu);
  for (const auto& [pid, child] : children_) Owners().erase(pid);
}

Result<pid_t> Processes::Spawn(const ProcessSpec& spec, LineFn on_line, DoneFn done) {
  if (spec.argv.empty()) return Status::Error("empty command");
  Pipe out, err, in;
  if (!out.Open() || !err.Open() || (spec.stdin_data && !in.Open())) {
    std::string why = std::strerror(errno);
    out.Close(), err.Close(), in.Close();
    return Status::Error("pipe: " + why);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (spec.stdin_data)
    posix_spawn_file_actions_adddup2(&actions, in.fds[0], 0);
  else
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out.fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err.fds[1], 2);
  if (!spec.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, spec.cwd.c_str());
  SpawnAttr attr;
  auto argv = CStrings(spec.argv);
  auto envp = CStrings(spec.env);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv[0], &actions, &attr.attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  out.fds[1] = (close(out.fds[1]), -1);
  err.fds[1] = (close(err.fds[1]), -1);
  if (in.fds[0] >= 0) in.fds[0] = (close(in.fds[0]), -1);
  if (rc != 0) {
    out.Close(), err.Close(), in.Close();
    if (rc == ENOENT) return Status::Error(spec.argv[0] + ": command not found");
    if (!spec.cwd.empty() && access(spec.cwd.c_str(), X_OK) != 0)
      return Status::Error("cannot enter directory " + spec.cwd + ": " + std::strerror(errno));
    return Status::Error(spec.argv[0] + ": " + std::strerror(rc));
  }
  loop_.Ref();  // the loop must wait for this child's exit even when no pipe is open
  {
    std::lock_guard<std::mutex> lock(owners_mu);
    Owners()[pid] = this;
  }
  Child& c = children_[pid];
  c.out.fd = out.fds[0];
  c.err.fd = err.fds[0];
  c.started = Clock::now();
  c.on_line = std::move(on_line);
  c.done = std::move(done);
  SetNonBlocking(c.out.fd);
  SetNonBlocking(c.err.fd);
  loop_.Watch(c.out.fd, EPOLLIN, [this, pid](uint32_t) { OnReadable(pid, false); });
  loop_.Watch(c.err.fd, EPOLLIN, [this, pid](uint32_t) { OnReadable(pid, true); });
  if (spec.stdin_data) {
    c.stdin_fd = in.fds[1];
    c.stdin_data = *spec.stdin_data;
    SetNonBlocking(c.stdin_fd);
    loop_.Watch(c.stdin_fd, EPOLLOUT, [this, pid](uint32_t) { OnWritable(pid); });
  }
  return pid;
}

void Processes::OnWritable(pid_t pid) {
  Child& c = children_.at(pid);
  while (c.stdin_written < c.stdin_data.size()) {
    ssize_t n = write(c.stdin_fd, c.stdin_data.data() + c.stdin_written,
                      c.stdin_data.size() - c.stdin_written);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) break;  // the reader went away: stop feeding it
    c.stdin_written += static_cast<size_t>(n);
  }
  loop_.Unwatch(c.stdin_fd);
  close(c.stdin_fd);
  c.stdin_fd = -1;
}

void Processes::OnReadable(pid_t pid, bool is_stderr) {
  auto it = children_.find(pid);
  if (it == children_.end()) return;
  Child& c = it->second;
  Stream& s = is_stderr ? c.err : c.out;
  char buf[kReadChunk];
  for (;;) {
    ssize_t n = read(s.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      if (!s.buffer.empty() && c.on_line) c.on_line(is_stderr, s.buffer);
      s.buffer.clear();
      CloseStream(s);
      MaybeDone(pid);
      return;
    }
    s.all.append(buf, static_cast<size_t>(n));
    s.buffer.append(buf, static_cast<size_t>(n));
    size_t start = 0, nl;
    while ((nl = s.buffer.find('\n', start)) != std::string::npos) {
      if (c.on_line) c.on_line(is_stderr, std::string_view(s.buffer).substr(start, nl - start));
      start = nl + 1;
    }
    s.buffer.erase(0, start);
  }
}

void Processes::CloseStream(Stream& s) {
  if (s.fd < 0) return;
  loop_.Unwatch(s.fd);
  close(s.fd);
  s.fd = -1;
}

void Processes::Reap() {
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    Processes* owner = nullptr;
    {
      std::lock_guard<std::mutex> lock(owners_mu);
      auto it = Owners().find(pid);
      if (it != Owners().end()) {
        owner = it->second;
        Owners().erase(it);
      }
    }
    if (owner) owner->Exited(pid, status);  // else an orphan we adopted as subreaper
  }
}

void Processes::Exited(pid_t pid, int status) {
  auto it = children_.find(pid);
  if (it == children_.end()) return;
  it->second.exited = true;
  it->second.status = status;
  // Killed on purpose: a grandchild may still hold the pipes, so do not wait for them; what
  // was not read yet is dropped.
  if (it->second.killed) {
    kill(-pid, SIGKILL);
    CloseStream(it->second.out);
    CloseStream(it->second.err);
  }
  MaybeDone(pid);
}

void Processes::MaybeDone(pid_t pid) {
  auto it = children_.find(pid);
  if (it == children_.end()) return;
  Child& c = it->second;
  if (!c.exited || c.out.fd >= 0 || c.err.fd >= 0) return;
  if (c.stdin_fd >= 0) {
    loop_.Unwatch(c.stdin_fd);
    close(c.stdin_fd);
  }
  if (c.kill_timer) loop_.Cancel(c.kill_timer);
  ProcessExit exit;
  if (WIFEXITED(c.status)) exit.exit_code = WEXITSTATUS(c.status);
  if (WIFSIGNALED(c.status)) {
    exit.term_signal = WTERMSIG(c.status);
    exit.exit_code = 128 + exit.term_signal;
  }
  exit.out = std::move(c.out.all);
  exit.err = std::move(c.err.all);
  exit.elapsed = Clock::now() - c.started;
  exit.killed = c.killed;
  DoneFn done = std::move(c.done);
  children_.erase(it);
  loop_.Unref();
  if (done) done(std::move(exit));
}

void Processes::Adopt(pid_t pid, DoneFn done) {
  loop_.Ref();
  {
    std::lock_guard<std::mutex> lock(owners_mu);
    Owners()[pid] = this;
  }
  Child& c = children_[pid];
  c.started = Clock::now();
  c.done = std::move(done);
}

void Processes::Terminate(pid_t pid, Duration grace) {
  auto it = children_.find(pid);
  if (it == children_.end() || it->second.killed) return;
  it->second.killed = true;
  kill(-pid, SIGTERM);
  it->second.kill_timer = loop_.After(grace, [this, pid] {
    auto child = children_.find(pid);
    if (child == children_.end()) return;
    child->second.kill_timer = 0;
    kill(-pid, SIGKILL);
  });
  // The child may already be a zombie we have not reaped: then its group is all that is left.
  if (it->second.exited) Reap();
}

void Processes::KillAll() {
  for (auto& [pid, child] : children_) {
    kill(-pid, SIGKILL);
    child.killed = true;
  }
}

}  // namespace sloth
