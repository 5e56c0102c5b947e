// The interactive prompt: one question at a time, answered with r/s/a/c and Enter.
#include "cli/terminal_gate.h"

#include <unistd.h>

#include <cstdio>

namespace sloth {

TerminalGate::~TerminalGate() {
  if (watching_) loop_.Unwatch(fd_);
}

void TerminalGate::BeforeStart(size_t index, std::function<void(GateAnswer)> answer) {
  if (run_all_) return answer(GateAnswer::kRun);
  queue_.emplace_back(index, std::move(answer));
  if (!asking_) Ask();
}

void TerminalGate::Ask() {
  asking_ = true;
  std::string name = plan_ ? plan_->task(queue_.front().first).name : "?";
  std::fprintf(stderr,
               "? run task %s? [r]un, [s]kip, [a]bort, [c]ontinue without asking: ", name.c_str());
  std::fflush(stderr);
  if (!watching_) {
    loop_.Watch(fd_, EPOLLIN, [this](uint32_t) { OnInput(); });
    watching_ = true;
  }
}

void TerminalGate::OnInput() {
  char buf[256];
  ssize_t n = read(fd_, buf, sizeof buf);
  if (n <= 0) {  // the terminal went away: nobody can answer, so stop
    abort_();
    return Release();
  }
  buffer_.append(buf, static_cast<size_t>(n));
  size_t nl;
  while (!queue_.empty() && (nl = buffer_.find('\n')) != std::string::npos) {
    std::string line = buffer_.substr(0, nl);
    buffer_.erase(0, nl + 1);
    char c = line.empty() ? 'r' : line[0];  // Enter alone runs the task
    if (c == 'r' || c == 'y')
      Answer(GateAnswer::kRun);
    else if (c == 's' || c == 'n')
      Answer(GateAnswer::kSkip);
    else if (c == 'c') {
      run_all_ = true;
      Answer(GateAnswer::kRun);
      while (!queue_.empty()) Answer(GateAnswer::kRun);
    } else if (c == 'a' || c == 'q') {
      abort_();
      Release();
    } else {
      std::fprintf(stderr, "please answer r, s, a or c\n");
      Ask();
    }
  }
}

void TerminalGate::Answer(GateAnswer a) {
  auto answer = std::move(queue_.front().second);
  queue_.erase(queue_.begin());
  asking_ = false;
  answer(a);  // may start the next task, which may ask at once
  if (!queue_.empty()) {
    if (!asking_ && !run_all_) Ask();
  } else if (watching_) {
    loop_.Unwatch(fd_);
    watching_ = false;
  }
}

void TerminalGate::Release() {
  while (!queue_.empty()) Answer(GateAnswer::kSkip);
}

}  // namespace sloth
