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
  if (t.agents.size() == 1) j["agent"] = t.agents[0];
  if (t.agents.size() > 1) j["agents"] = t.agents;
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
    std::fprintf(stderr, "%s\n", Redact(line).c_str());
  }

  void TaskFinished(size_t i, const TaskResult& r) override {
    if (r.status == TaskStatus::kFailed && plan_)
      std::fprintf(stderr, "[%s] failed: %s\n", plan_->task(i).name.c_str(),
                   Redact(r.error).c_str());
  }

  void WorkflowFinished(const Plan& plan, const RunInfo& info, const WorkflowOutcome& o) override {
    nlohmann::ordered_json j;
    j["status"] = RunStatusName(o.result.status);
    j["duration"] = FormatSeconds(o.result.duration);
    j["duration_ms"] = ToMillis(o.result.duration);
    j["run_id"] = info.run_id;
    j["workflow"] = plan.workflow().name;
    j["stack"] = {{"id", info.stack_id}, {"name", info.stack}};
    if (!o.result.error.empty()) j["error"] = o.result.error;
    nlohmann::ordered_json tasks = nlohmann::ordered_json::object();
    auto* fields = tasks.get_ptr<nlohmann::ordered_json::object_t*>();
    for (size_t i : plan.order())  // names are unique: append, no lookup (keeps this linear)
      if (plan.selected(i)) fields->emplace_back(plan.task(i).name, TaskJson(o.result.tasks[i]));
    j["tasks"] = tasks;
    if (info.check_mode) {
      j["check"] = true;
      j["changes"] = nlohmann::ordered_json::array();
      for (const std::string& text : o.resources) {
        auto change = nlohmann::ordered_json::parse(text);
        if (change["status"] != "unchanged") j["changes"].push_back(std::move(change));
      }
    }
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
    RedactStrings(doc);
    std::string text = doc.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    std::fprintf(opt_.out, "%s\n", text.c_str());
    std::fflush(opt_.out);
  }

 private:
  // Redacts every string of the document (keys too) before it is serialized, so a secret with
  // quotes or backslashes is caught in its plain form.
  void RedactStrings(nlohmann::ordered_json& j) const {
    if (j.is_string()) {
      j = Redact(j.get_ref<const std::string&>());
    } else if (j.is_array()) {
      for (auto& item : j) RedactStrings(item);
    } else if (j.is_object()) {
      nlohmann::ordered_json out = nlohmann::ordered_json::object();
      for (auto& [key, value] : j.items()) {
        RedactStrings(value);
        out[Redact(key)] = std::move(value);
      }
      j = std::move(out);
    }
  }

  RenderOptions opt_;
  const Plan* plan_ = nullptr;
  std::vector<nlohmann::ordered_json> workflows_;
};

}  // namespace

std::unique_ptr<Renderer> MakeJsonRenderer(RenderOptions options) {
  return std::make_unique<JsonRenderer>(options);
}

}  // namespace sloth
