// Renderers for `run`: what the user sees while a run goes and when it ends. One renderer is
// both the scheduler's Progress sink and the runtime's LogSink.
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/executor.h"
#include "core/plan.h"
#include "lua/runtime.h"
#include "lua/workflow.h"

namespace sloth {

struct RunSummary {
  std::string run_id;
  Duration duration{};
  RunStatus status = RunStatus::kSuccess;
};

class Renderer : public Progress, public LogSink {
 public:
  // Called before each workflow runs and after it ended.
  virtual void WorkflowStarted(const Plan& plan, const RunInfo& info) = 0;
  virtual void WorkflowFinished(const Plan& plan, const RunInfo& info,
                                const WorkflowOutcome& outcome) = 0;
  // Called once at the very end.
  virtual void RunFinished(const RunSummary& summary) = 0;

  // The run's secret values (Runtime::redactor()): everything a renderer prints passes through
  // Redact(), so no secret reaches the terminal or the JSON document.
  void SetRedactor(const Redactor* redactor) { redactor_ = redactor; }

 protected:
  std::string Redact(std::string_view text) const {
    return redactor_ ? redactor_->Apply(text) : std::string(text);
  }

 private:
  const Redactor* redactor_ = nullptr;
};

enum class OutputFormat { kBasic, kEnhanced, kJson };

struct RenderOptions {
  bool color = false;
  bool verbose = false;  // show debug lines
  FILE* out = stdout;    // where the JSON document goes (the real stdout in json mode)
};

std::unique_ptr<Renderer> MakeBasicRenderer(RenderOptions options, bool enhanced);
std::unique_ptr<Renderer> MakeJsonRenderer(RenderOptions options);

}  // namespace sloth
