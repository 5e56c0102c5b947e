#include "rpc/agent_jobs.h"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>

#include <filesystem>

#include "cli/events_run.h"
#include "rpc/credentials.h"

extern char** environ;

namespace fs = std::filesystem;

namespace sloth {
namespace {

constexpr auto kKillGrace = std::chrono::seconds(3);

// The agent's environment, with its data dir as the children's SLOTH_RUNNER_HOME.
std::vector<std::string> ChildEnv(const std::string& data_dir, const std::string& agent,
                                  const std::string& master) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    if (kv.starts_with("SLOTH_RUNNER_HOME=") || kv.starts_with("SLOTH_AGENT_NAME=") ||
        kv.starts_with("SLOTH_AGENT_MASTER="))
      continue;
    env.emplace_back(kv);
  }
  env.push_back("SLOTH_RUNNER_HOME=" + data_dir);
  env.push_back("SLOTH_AGENT_NAME=" + agent);
  env.push_back("SLOTH_AGENT_MASTER=" + master);  // a delegated task's state.* goes there
  return env;
}

}  // namespace

JobRunner::JobRunner(Loop& loop, std::string agent_name, std::string data_dir, std::string master,
                     SendFn send)
    : loop_(loop),
      processes_(loop),
      agent_name_(std::move(agent_name)),
      data_dir_(std::move(data_dir)),
      master_(std::move(master)),
      outbox_dir_(AgentDir(data_dir_, agent_name_) + "/outbox"),
      send_(std::move(send)) {
  std::error_code ec;
  fs::create_directories(outbox_dir_, ec);
}

JobRunner::~JobRunner() { processes_.KillAll(); }

std::string JobRunner::OutboxPath(const std::string& id) const {
  return outbox_dir_ + "/" + pki::Sha256Hex(id) + ".result";
}

std::vector<std::string> JobRunner::Running() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> ids;
  for (const auto& [id, r] : running_) ids.push_back(id);
  return ids;
}

void JobRunner::Start(const v1::Job& job) {
  const std::string id = job.id();
  {
    std::lock_guard lock(mu_);
    if (running_.count(id)) return;  // a resend of a job still running here
  }
  if (fs::exists(OutboxPath(id))) return ResendOutbox();  // done already: send the result again
  if (job.work_case() == v1::Job::kShell) {
    if (Status s = StartShell(id, job.shell()); !s.ok()) {
      {
        std::lock_guard lock(mu_);
        running_[id].error = s.message();
      }
      ProcessExit failed;
      Finish(id, failed);
    }
    return;
  }
  ProcessSpec spec;
  spec.env = ChildEnv(data_dir_, agent_name_, master_);
  spec.cwd = data_dir_;
  bool task = job.work_case() == v1::Job::kBundleJson;
  if (task) {
    spec.argv = {SelfExecutable(), "--data-dir", data_dir_,  "agent",
                 "run-task",       "--agent",    agent_name_};
    spec.stdin_data = job.bundle_json();
  } else {
    spec.argv = {"/bin/sh", "-c", job.command()};
  }
  std::error_code ec;
  fs::create_directories(data_dir_, ec);
  Result<pid_t> pid = processes_.Spawn(
      spec, [this, id](bool is_stderr, std::string_view line) { SendOutput(id, is_stderr, line); },
      [this, id](ProcessExit exit) { Finish(id, exit); });
  if (!pid.ok()) {
    ProcessExit failed;
    failed.exit_code = -1;
    {
      std::lock_guard lock(mu_);
      running_[id].error = pid.error();
    }
    return Finish(id, failed);
  }
  std::lock_guard lock(mu_);
  struct Running& r = running_[id];
  r.pid = *pid;
  r.task = task;
  r.started = Clock::now();
  if (job.timeout_ms() > 0) {
    r.timer = loop_.After(std::chrono::milliseconds(job.timeout_ms()), [this, id, job] {
      Cancel(id, "timed out after " + std::to_string(job.timeout_ms()) + " ms");
    });
  }
}

void JobRunner::SendOutput(const std::string& id, bool is_stderr, std::string_view line) {
  std::string text(line);
  {
    std::lock_guard lock(mu_);
    auto it = running_.find(id);
    if (it != running_.end() && it->second.task) {
      if (!is_stderr) {
        std::swap(text, it->second.held_line);  // hold the latest: the last one is the result
        if (text.empty()) return;
      }
      text += "\n";
    } else if (it != running_.end()) {
      // A command's output goes byte for byte: a line's newline is sent with the next line, or
      // at the end if the output really ended with one.
      bool& pending = it->second.newline_pending[is_stderr];
      if (pending) text.insert(0, "\n");
      pending = true;
    }
  }
  SendChunk(id, is_stderr, text);
}

void JobRunner::SendChunk(const std::string& id, bool is_stderr, const std::string& data) {
  v1::AgentMessage message;
  v1::JobOutput* out = message.mutable_output();
  out->set_job_id(id);
  out->set_stream(is_stderr ? v1::STDERR : v1::STDOUT);
  out->set_data(data);
  send_(message);  // output made while disconnected is lost; the result is not
}

// A login-less interactive shell ($SHELL, else /bin/sh) on a new pseudo-terminal, in the
// agent's data dir. forkpty, not posix_spawn: the shell needs the terminal as its controlling
// one. Everything the child uses is prepared before the fork (the agent has other threads).
Status JobRunner::StartShell(const std::string& id, const v1::ShellSpec& spec) {
  const char* env_shell = std::getenv("SHELL");
  std::string shell =
      env_shell && *env_shell && access(env_shell, X_OK) == 0 ? env_shell : "/bin/sh";
  std::vector<std::string> env = ChildEnv(data_dir_, agent_name_, master_);
  std::erase_if(env, [](const std::string& e) { return e.starts_with("TERM="); });
  env.push_back("TERM=" + (spec.term().empty() ? std::string("xterm-256color") : spec.term()));
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string dash_i = "-i";
  char* argv[] = {shell.data(), dash_i.data(), nullptr};
  winsize ws{};
  ws.ws_row = static_cast<unsigned short>(spec.size().rows() ? spec.size().rows() : 24);
  ws.ws_col = static_cast<unsigned short>(spec.size().cols() ? spec.size().cols() : 80);
  std::error_code ec;
  fs::create_directories(data_dir_, ec);
  int fd = -1;
  pid_t pid = forkpty(&fd, nullptr, nullptr, &ws);
  if (pid < 0)
    return Status::Error(std::string("cannot open a pseudo-terminal: ") + strerror(errno));
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGINT, SIGTERM, SIGCHLD, SIGPIPE, SIGQUIT, SIGHUP}) signal(sig, SIG_DFL);
    if (chdir(data_dir_.c_str()) != 0) _exit(126);
    execve(argv[0], argv, envp.data());
    _exit(127);
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  {
    std::lock_guard lock(mu_);
    struct Running& r = running_[id];
    r.pid = pid;
    r.pty_fd = fd;
    r.started = Clock::now();
  }
  processes_.Adopt(pid, [this, id](ProcessExit exit) { Finish(id, exit); });
  loop_.Watch(fd, EPOLLIN, [this, id, fd](uint32_t) { ReadPty(id, fd); });
  return Status::Ok();
}

void JobRunner::ReadPty(const std::string& id, int fd) {
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      SendChunk(id, false, std::string(buf, static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // EIO: the shell closed the terminal (it is exiting); Finish closes the fd.
    if (n == 0 || errno != EAGAIN) loop_.Unwatch(fd);
    return;
  }
}

void JobRunner::Input(const v1::Input& input) {
  int fd = -1;
  {
    std::lock_guard lock(mu_);
    auto it = running_.find(input.job_id());
    if (it == running_.end()) return;
    fd = it->second.pty_fd;
  }
  if (fd < 0) return;
  if (input.has_resize()) {
    winsize ws{};
    ws.ws_row = static_cast<unsigned short>(input.resize().rows());
    ws.ws_col = static_cast<unsigned short>(input.resize().cols());
    ioctl(fd, TIOCSWINSZ, &ws);  // the kernel tells the shell (SIGWINCH)
  }
  const std::string& data = input.data();
  for (size_t done = 0; done < data.size();) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, 100);  // keystrokes are small: the terminal's buffer empties quickly
    } else if (!(n < 0 && errno == EINTR)) {
      return;
    }
  }
}

void JobRunner::Cancel(const std::string& job_id, const std::string& reason) {
  std::lock_guard lock(mu_);
  auto it = running_.find(job_id);
  if (it == running_.end() || it->second.pid <= 0) return;
  it->second.error = reason;
  processes_.Terminate(it->second.pid, kKillGrace);
}

void JobRunner::Finish(const std::string& id, const ProcessExit& exit) {
  struct Running r;
  {
    std::lock_guard lock(mu_);
    auto it = running_.find(id);
    if (it != running_.end()) {
      r = std::move(it->second);
      running_.erase(it);
    }
  }
  if (r.timer) loop_.Cancel(r.timer);
  if (r.pty_fd >= 0) {
    ReadPty(id, r.pty_fd);  // what the shell wrote last
    loop_.Unwatch(r.pty_fd);
    close(r.pty_fd);
  }
  if (r.newline_pending[0] && exit.out.ends_with('\n')) SendChunk(id, false, "\n");
  if (r.newline_pending[1] && exit.err.ends_with('\n')) SendChunk(id, true, "\n");
  v1::AgentMessage message;
  v1::JobResult* result = message.mutable_result();
  result->set_job_id(id);
  result->set_exit_code(exit.exit_code);
  result->set_error(r.error);
  result->set_duration_ms(
      std::chrono::duration_cast<std::chrono::milliseconds>(exit.elapsed).count());
  if (r.task) {
    if (r.held_line.starts_with("{"))
      result->set_result_json(r.held_line);
    else if (r.error.empty())
      result->set_error("the task runner ended without a result (exit " +
                        std::to_string(exit.exit_code) + "): " + exit.err.substr(0, 2000));
  }
  // Into the outbox first: if the master is away now, the result goes when it is back.
  Status saved = WriteTextFile(OutboxPath(id), message.SerializeAsString(), true);
  if (!saved.ok()) std::fprintf(stderr, "agent: %s\n", saved.message().c_str());
  send_(message);
}

void JobRunner::Acked(const std::string& job_id) { unlink(OutboxPath(job_id).c_str()); }

void JobRunner::ResendOutbox() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(outbox_dir_, ec)) {
    if (entry.path().extension() != ".result") continue;
    Result<std::string> data = ReadTextFile(entry.path().string());
    v1::AgentMessage message;
    if (!data.ok() || !message.ParseFromString(*data) || !message.has_result()) {
      fs::remove(entry.path(), ec);  // unreadable: nothing can be delivered from it
      continue;
    }
    if (!send_(message)) return;
  }
}

}  // namespace sloth
