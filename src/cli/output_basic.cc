// The `basic` and `enhanced` renderers: one line per task event, log lines indented under the
// task, and a summary table. Colour only on a terminal and without NO_COLOR.
#include <map>
#include <nlohmann/json.hpp>

#include "cli/output.h"

namespace sloth {
namespace {

const char* kReset = "\033[0m";
const char* kGreen = "\033[32m";
const char* kRed = "\033[31m";
const char* kYellow = "\033[33m";
const char* kBlue = "\033[34m";
const char* kDim = "\033[2m";
const char* kBold = "\033[1m";

std::string ValueText(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

class BasicRenderer : public Renderer {
 public:
  BasicRenderer(RenderOptions options, bool enhanced) : opt_(options), enhanced_(enhanced) {}

  void WorkflowStarted(const Plan& plan, const RunInfo& info) override {
    plan_ = &plan;
    size_t selected = 0;
    for (size_t i = 0; i < plan.size(); ++i) selected += plan.selected(i);
    prefix_tasks_ = info.max_parallel.value_or(plan.workflow().config.max_parallel_tasks) > 1;
    std::string title = "Workflow " + plan.workflow().name;
    if (!plan.workflow().description.empty()) title += ": " + plan.workflow().description;
    Print(Paint(kBold, title) +
          Paint(kDim, "  (" + std::to_string(selected) +
                          (selected == 1 ? " task, stack " : " tasks, stack ") + info.stack + ")"));
    if (enhanced_) Print(Paint(kDim, "  run " + info.run_id));
  }

  void TaskStarted(size_t i) override { Print(Paint(kBlue, "▶ ") + Name(i)); }

  void TaskRetrying(size_t i, int next, int max, Duration delay,
                    const std::string& error) override {
    Print(Paint(kYellow, "↻ ") + Name(i) + " retry " + std::to_string(next) + "/" +
          std::to_string(max) + " in " + FormatHuman(delay) + Paint(kDim, ": " + FirstLine(error)));
  }

  void TaskFinished(size_t i, const TaskResult& r) override {
    const std::string took = " (" + FormatHuman(r.duration) + ")";
    switch (r.status) {
      case TaskStatus::kSuccess:
        Print(Paint(kGreen, "✓ ") + Name(i) + Paint(kDim, took));
        break;
      case TaskStatus::kUnchanged:
        Print(Paint(kDim, "● ") + Name(i) + " unchanged" + Paint(kDim, took));
        break;
      case TaskStatus::kSkipped:
        Print(Paint(kYellow, "⊘ ") + Name(i) + " skipped: " + r.message);
        break;
      case TaskStatus::kFailed:
        Print(Paint(kRed, "✗ ") + Name(i) + ": " + r.error);
        break;
      default:
        break;  // NotRun shows in the summary
    }
  }

  void Log(const std::string& task, LogLevel level, std::string_view text) override {
    if (level == LogLevel::kDebug && !opt_.verbose) return;
    std::string prefix = task.empty() ? "" : "  ";
    if (prefix_tasks_ && !task.empty()) prefix += Paint(kDim, "[" + task + "] ");
    std::string line(text);
    switch (level) {
      case LogLevel::kWarn:
        line = Paint(kYellow, "WARN ") + line;
        break;
      case LogLevel::kError:
        line = Paint(kRed, "ERROR ") + line;
        break;
      case LogLevel::kSuccess:
        line = Paint(kGreen, "✔ ") + line;
        break;
      case LogLevel::kDebug:
        line = Paint(kDim, "DEBUG " + line);
        break;
      case LogLevel::kOutput:
        line = Paint(kDim, "│ ") + line;
        break;
      default:
        break;
    }
    Print(prefix + line);
  }

  void WorkflowFinished(const Plan& plan, const RunInfo& info, const WorkflowOutcome& o) override {
    PrintSummary(plan, o.result);
    if (enhanced_) PrintTimings(plan, o.result);
    if (enhanced_) PrintResources(o.resources, info.check_mode);
    const char* colour = o.result.status == RunStatus::kSuccess ? kGreen : kRed;
    std::string verdict = o.result.status == RunStatus::kSuccess     ? "succeeded"
                          : o.result.status == RunStatus::kCancelled ? "was cancelled"
                                                                     : "failed";
    std::string line = "Workflow " + plan.workflow().name + " " + verdict + " in " +
                       FormatHuman(o.result.duration);
    if (!o.result.error.empty()) line += ": " + o.result.error;
    Print(Paint(colour, line));
    auto outputs = nlohmann::json::parse(o.outputs_json, nullptr, false);
    if (o.result.status == RunStatus::kSuccess && outputs.is_object() && !outputs.empty()) {
      Print(Paint(kBold, "Exported Outputs:"));
      for (const auto& [k, v] : outputs.items()) Print("  " + k + ": " + ValueText(v));
    }
  }

  void RunFinished(const RunSummary&) override {}

 private:
  // The enhanced view: what the run did to the stack's resources, Pulumi-style.
  void PrintResources(const std::vector<std::string>& events, bool check) {
    if (events.empty()) return;
    Print(Paint(kBold, check ? "Resources (check: nothing was recorded):" : "Resources:"));
    std::map<std::string, int> counts;
    for (const std::string& text : events) {
      auto e = nlohmann::json::parse(text, nullptr, false);
      if (!e.is_object()) continue;
      std::string status = e.value("status", "");
      ++counts[status];
      const char* mark = status == "created" ? "+ " : status == "changed" ? "~ " : "  ";
      const char* colour = status == "created" ? kGreen : status == "changed" ? kYellow : kDim;
      Print(Paint(colour, "  " + std::string(mark) + e.value("type", "") + "/" +
                              e.value("name", "") + " " + status));
    }
    std::string line;
    for (const auto& [status, n] : counts)
      line += (line.empty() ? "  " : ", ") + std::to_string(n) + " " + status;
    Print(line);
  }

  // The enhanced view: each task's share of the run as a bar, Pulumi-style.
  void PrintTimings(const Plan& plan, const RunResult& r) {
    Duration longest{1};
    size_t name_width = 4;
    for (size_t i : plan.order()) {
      longest = std::max(longest, r.tasks[i].duration);
      name_width = std::max(name_width, Columns(plan.task(i).name));
    }
    Print(Paint(kBold, "Timings:"));
    for (size_t i : plan.order()) {
      if (!plan.selected(i) || r.tasks[i].attempts == 0) continue;
      const std::string& name = plan.task(i).name;
      auto width = static_cast<size_t>(30.0 * static_cast<double>(r.tasks[i].duration.count()) /
                                       static_cast<double>(longest.count()));
      std::string bar;
      for (size_t k = 0; k < std::max<size_t>(width, 1); ++k) bar += "█";
      Print("  " + name + std::string(name_width - Columns(name) + 2, ' ') + Paint(kBlue, bar) +
            " " + FormatHuman(r.tasks[i].duration));
    }
  }

  void PrintSummary(const Plan& plan, const RunResult& r) {
    std::vector<std::vector<std::string>> rows = {
        {"TASK", "STATUS", "DURATION", "ATTEMPTS", "ERROR"}};
    for (size_t i : plan.order()) {
      if (!plan.selected(i)) continue;
      const TaskResult& t = r.tasks[i];
      bool ran = t.attempts > 0;
      std::string note = t.status == TaskStatus::kSkipped ? t.message : FirstLine(t.error);
      rows.push_back({plan.task(i).name, std::string(TaskStatusName(t.status)),
                      ran ? FormatHuman(t.duration) : "-", ran ? std::to_string(t.attempts) : "-",
                      note});
    }
    std::vector<size_t> width(5, 0);
    for (const auto& row : rows)
      for (size_t c = 0; c < 4; ++c) width[c] = std::max(width[c], Columns(row[c]));
    for (size_t r_i = 0; r_i < rows.size(); ++r_i) {
      std::string line;
      for (size_t c = 0; c < 5; ++c) {
        line += rows[r_i][c];
        if (c < 4) line += std::string(width[c] - Columns(rows[r_i][c]) + 2, ' ');
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      Print(r_i == 0 ? Paint(kDim, line) : line);
    }
  }

  static size_t Columns(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  }
  static std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }
  std::string Name(size_t i) const { return plan_ ? plan_->task(i).name : "?"; }
  std::string Paint(const char* code, const std::string& s) const {
    return opt_.color ? code + s + kReset : s;
  }
  void Print(const std::string& text) {
    std::string line = Redact(text);
    std::fwrite(line.data(), 1, line.size(), opt_.out);
    std::fputc('\n', opt_.out);
    std::fflush(opt_.out);
  }

  RenderOptions opt_;
  bool enhanced_;
  const Plan* plan_ = nullptr;
  bool prefix_tasks_ = false;
};

}  // namespace

std::unique_ptr<Renderer> MakeBasicRenderer(RenderOptions options, bool enhanced) {
  return std::make_unique<BasicRenderer>(options, enhanced);
}

}  // namespace sloth
