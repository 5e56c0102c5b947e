// Child processes driven by the loop: posix_spawn into their own process group, output read
// through non-blocking pipes and delivered line by line, exits seen through SIGCHLD.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "exec/loop.h"

namespace sloth {

struct ProcessSpec {
  std::vector<std::string> argv;          // argv[0] is looked up on PATH
  std::string cwd;                        // empty: inherit
  std::vector<std::string> env;           // the complete environment, KEY=VALUE
  std::optional<std::string> stdin_data;  // none: /dev/null
};

struct ProcessExit {
  int exit_code = -1;   // 128 + signal when killed by a signal
  int term_signal = 0;  // the signal that ended it, if any
  std::string out;
  std::string err;
  Duration elapsed{};
  bool killed = false;  // we terminated it (timeout, cancellation)
};

class Processes {
 public:
  using LineFn = std::function<void(bool is_stderr, std::string_view line)>;
  using DoneFn = std::function<void(ProcessExit)>;

  explicit Processes(Loop& loop);
  ~Processes();

  // Starts a process; `on_line` sees each output line as it arrives, `done` runs once after it
  // exited and its pipes closed. Fails (no callback) when the program cannot be started.
  Result<pid_t> Spawn(const ProcessSpec& spec, LineFn on_line, DoneFn done);
  // Takes over a child started some other way (a shell on a pseudo-terminal, which posix_spawn
  // cannot start): `done` gets its exit like a spawned child's (no output is collected). Call on
  // the loop thread right after starting it.
  void Adopt(pid_t pid, DoneFn done);
  // SIGTERM to the process's group, SIGKILL after `grace`. `done` still runs.
  void Terminate(pid_t pid, Duration grace);
  // SIGKILL to every group still running (used on the way out).
  void KillAll();
  size_t running() const { return children_.size(); }

 private:
  struct Child;
  struct Stream {
    int fd = -1;
    std::string buffer;  // bytes after the last newline
    std::string all;
  };
  void OnReadable(pid_t pid, bool is_stderr);
  void OnWritable(pid_t pid);
  void Reap();
  void Exited(pid_t pid, int status);
  void MaybeDone(pid_t pid);
  void CloseStream(Stream& s);

  struct Child {
    Stream out, err;
    int stdin_fd = -1;
    std::string stdin_data;
    size_t stdin_written = 0;
    bool exited = false;
    int status = 0;
    bool killed = false;
    uint64_t kill_timer = 0;
    Clock::time_point started;
    LineFn on_line;
    DoneFn done;
  };

  Loop& loop_;
  uint64_t sigchld_handler_ = 0;
  std::unordered_map<pid_t, Child> children_;
};

}  // namespace sloth
