// An agent's jobs: commands (/bin/sh -c) and delegated tasks (a child `agent run-task`), run on
// the agent's loop. Results go to an outbox on disk before they are sent, and leave it when the
// master acknowledges them, so a result made while the master is away is delivered later.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "exec/loop.h"
#include "exec/process.h"
#include "sloth/v1/agent.pb.h"

namespace sloth {

class JobRunner {
 public:
  // Sends one message up the stream; false when there is no stream right now.
  using SendFn = std::function<bool(const sloth::v1::AgentMessage&)>;

  JobRunner(Loop& loop, std::string agent_name, std::string data_dir, std::string master,
            SendFn send);
  ~JobRunner();

  // All on the loop thread.
  void Start(const sloth::v1::Job& job);
  void Cancel(const std::string& job_id, const std::string& reason);
  // Keystrokes or a window size for a shell job.
  void Input(const sloth::v1::Input& input);
  void Acked(const std::string& job_id);
  void ResendOutbox();
  std::vector<std::string> Running() const;  // thread-safe
  size_t running() const { return Running().size(); }

 private:
  struct Running {
    pid_t pid = 0;
    bool task = false;
    bool newline_pending[2] = {false, false};  // stdout, stderr
    std::string held_line;  // a task's latest stdout line: the last one is its result
    uint64_t timer = 0;
    std::string error;  // why we stopped it
    int pty_fd = -1;    // a shell's pseudo-terminal
    Clock::time_point started;
  };
  void Finish(const std::string& id, const ProcessExit& exit);
  Status StartShell(const std::string& id, const sloth::v1::ShellSpec& spec);
  void ReadPty(const std::string& id, int fd);
  void SendOutput(const std::string& id, bool is_stderr, std::string_view line);
  void SendChunk(const std::string& id, bool is_stderr, const std::string& data);
  std::string OutboxPath(const std::string& id) const;

  Loop& loop_;
  Processes processes_;
  std::string agent_name_;
  std::string data_dir_;
  std::string master_;
  std::string outbox_dir_;
  SendFn send_;
  mutable std::mutex mu_;  // guards running_ against Running() from the stream thread
  std::unordered_map<std::string, struct Running> running_;
};

}  // namespace sloth
