// TerminalGate: `run --interactive` asks on the terminal before each task starts.
#pragma once

#include <functional>
#include <string>

#include "core/executor.h"
#include "core/plan.h"
#include "exec/loop.h"

namespace sloth {

class TerminalGate : public Gate {
 public:
  // Reads answers from `tty_fd` (the caller keeps it open); `abort` stops the run.
  TerminalGate(Loop& loop, int tty_fd, std::function<void()> abort)
      : loop_(loop), fd_(tty_fd), abort_(std::move(abort)) {}
  ~TerminalGate() override;

  void SetPlan(const Plan* plan) { plan_ = plan; }
  void BeforeStart(size_t index, std::function<void(GateAnswer)> answer) override;
  // Answers a pending question with "skip" (used when the run is interrupted meanwhile).
  void Release();

 private:
  void Ask();
  void OnInput();
  void Answer(GateAnswer a);

  Loop& loop_;
  int fd_;
  std::function<void()> abort_;
  const Plan* plan_ = nullptr;
  bool run_all_ = false;
  bool watching_ = false;
  bool asking_ = false;  // a question is on the screen
  std::string buffer_;
  // Questions wait in line: parallel tasks may ask at once.
  std::vector<std::pair<size_t, std::function<void(GateAnswer)>>> queue_;
};

}  // namespace sloth
