// The `json` renderer: one JSON document on stdout at the end (cli.md), logs on stderr.
#include <nlohmann/json.hpp>

#include "cli/output.h"

namespace sloth {
namespace {

nlohmann::ordered_json TaskJson(const TaskResult& t) {
  nlohmann::ordered_json j;
  j["status"] = TaskStatusName(t.status);
  j["duration"] = FormatSeconds(t.duration);
  j["duration_ms"] = ToMillis(t.duration);
  j["attempts"] = t.attempts;
  j["changed"] = t.changed;
  j["error"] = t.error.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(t.error);
  if (!t.message.empty()) j["message"] = t.message;
  j["output"] = nlohmann::ordered_json::parse(t.output_json, nullptr, false);
  if (j["output"].is_discarded()) j["output"] = nlohmann::ordered_json::object();
  return j;
}

class JsonRenderer : public Renderer {
 public:
  explicit JsonRenderer(RenderOptions options) : opt_(options) {}

  void WorkflowStarted(const Plan& plan, const RunInfo& info) override { plan_ = &plan; }

  void Log(const std::string& task, LogLevel level, std::string_view text) override {
    if (level == LogLevel::kDebug && !opt_.verbose) return;
    std::string line = task.empty() ? std::string(text) : "[" + task + "] " + std::string(text);
    std::fprintf(stderr, "%s\n", line.c_str());
  }

  void TaskFinished(size_t i, const TaskResult& r) override {
    if (r.status == TaskStatus::kFailed && plan_)
      std::fprintf(stderr, "[%s] failed: %s\n", plan_->task(i).name.c_str(), r.error.c_str());
  }

  void WorkflowFinished(const Plan& plan, const RunInfo& info, const WorkflowOutcome& o) override {
    nlohmann::ordered_json j;
    j["status"] = RunStatusName(o.result.status);
    j["duration"] = FormatSeconds(o.result.duration);
    j["duration_ms"] = ToMillis(o.result.duration);
    j["run_id"] = info.run_id;
    j["workflow"] = plan.workflow().name;
    j["stack"] = {{"id", StackId(info.stack)}, {"name", info.stack}};
    if (!o.result.error.empty()) j["error"] = o.result.error;
    nlohmann::ordered_json tasks = nlohmann::ordered_json::object();
    auto* fields = tasks.get_ptr<nlohmann::ordered_json::object_t*>();
    for (size_t i : plan.order())  // names are unique: append, no lookup (keeps this linear)
      if (plan.selected(i)) fields->emplace_back(plan.task(i).name, TaskJson(o.result.tasks[i]));
    j["tasks"] = tasks;
    j["outputs"] = nlohmann::ordered_json::parse(o.outputs_json, nullptr, false);
    if (j["outputs"].is_discarded()) j["outputs"] = nlohmann::ordered_json::object();
    workflows_.push_back(std::move(j));
  }

  void RunFinished(const RunSummary& summary) override {
    nlohmann::ordered_json doc;
    if (workflows_.size() == 1) {
      doc = workflows_[0];
    } else {
      doc["status"] = RunStatusName(summary.status);
      doc["duration"] = FormatSeconds(summary.duration);
      doc["duration_ms"] = ToMillis(summary.duration);
      doc["run_id"] = summary.run_id;
      doc["workflows"] = workflows_;
    }
    std::string text = doc.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    std::fprintf(opt_.out, "%s\n", text.c_str());
    std::fflush(opt_.out);
  }

 private:
  RenderOptions opt_;
  const Plan* plan_ = nullptr;
  std::vector<nlohmann::ordered_json> workflows_;
};

}  // namespace

std::unique_ptr<Renderer> MakeJsonRenderer(RenderOptions options) {
  return std::make_unique<JsonRenderer>(options);
}

std::string StackId(const std::string& name) {
  // Two FNV-1a hashes with different offsets, printed as a version-8 (custom) UUID.
  auto fnv = [&](uint64_t h) {
    for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
    return h;
  };
  uint64_t a = fnv(14695981039346656037ULL), b = fnv(0x9E3779B97F4A7C15ULL);
  a = (a & ~0xF000ULL) | 0x8000ULL;
  b = (b & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
  char out[40];
  std::snprintf(
      out, sizeof out, "%08llx-%04llx-%04llx-%04llx-%012llx",
      static_cast<unsigned long long>(a >> 32), static_cast<unsigned long long>((a >> 16) & 0xFFFF),
      static_cast<unsigned long long>(a & 0xFFFF), static_cast<unsigned long long>(b >> 48),
      static_cast<unsigned long long>(b & 0xFFFFFFFFFFFFULL));
  return out;
}

}  // namespace sloth
