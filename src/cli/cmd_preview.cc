// `workflow preview`: the plan of each workflow (order, dependencies, delegation, limits) as
// text, JSON, Graphviz or Mermaid, without running any task.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "cli/commands.h"
#include "cli/data_dir.h"
#include "cli/load.h"

namespace sloth {
namespace {

using Json = nlohmann::ordered_json;

// "1h30m", "5m", "2.5s", "500ms": the way users write durations.
std::string Compact(Duration d) {
  long long ms = ToMillis(d);
  if (ms < 1000 || ms % 1000 != 0) {
    if (ms < 1000) return std::to_string(ms) + "ms";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%gs", static_cast<double>(ms) / 1000.0);
    return buf;
  }
  long long s = ms / 1000;
  std::string out;
  if (s >= 3600) out += std::to_string(s / 3600) + "h";
  if (s % 3600 >= 60) out += std::to_string(s % 3600 / 60) + "m";
  if (s % 60 != 0) out += std::to_string(s % 60) + "s";
  return out;
}

std::string RetryText(const RetryPolicy& r) {
  std::string text = std::to_string(r.retries) + " (" + std::string(RetryStrategyName(r.strategy));
  return text + ", delay " + Compact(r.delay.value_or(std::chrono::seconds(1))) + ")";
}

Json DurationJson(const std::optional<Duration>& d) {
  return d ? Json(Compact(*d)) : Json(nullptr);
}
Json MillisJson(const std::optional<Duration>& d) { return d ? Json(ToMillis(*d)) : Json(nullptr); }

Json TaskJson(const Plan& plan, size_t i, int step) {
  const TaskSpec& t = plan.task(i);
  Json deps = Json::array();
  for (size_t d : plan.deps(i)) deps.push_back(plan.task(d).name);
  Json retries = {{"count", t.retry.retries},
                  {"strategy", RetryStrategyName(t.retry.strategy)},
                  {"delay", Compact(t.retry.delay.value_or(std::chrono::seconds(1)))}};
  return {{"step", step},
          {"name", t.name},
          {"description", t.description},
          {"depends_on", deps},
          {"timeout", DurationJson(t.timeout)},
          {"timeout_ms", MillisJson(t.timeout)},
          {"retries", retries},
          {"async", t.async},
          {"delegate_to", t.delegate_to},
          {"tags", t.tags},
          {"workdir", t.workdir.empty() ? Json(nullptr) : Json(t.workdir)},
          {"command", t.command_text.empty() ? Json(nullptr) : Json(t.command_text)},
          {"artifacts", t.artifacts},
          {"consumes", t.consumes},
          {"always_run", t.always_run},
          {"source", t.source}};
}

Json WorkflowJson(const LoadedWorkflow& wf, const Plan& plan) {
  const WorkflowConfig& c = wf.spec.config;
  Json config = {{"max_parallel_tasks", c.max_parallel_tasks},
                 {"fail_fast", c.fail_fast},
                 {"timeout", DurationJson(c.timeout)},
                 {"timeout_ms", MillisJson(c.timeout)}};
  Json tasks = Json::array();
  int step = 0;
  for (size_t i : plan.order()) tasks.push_back(TaskJson(plan, i, ++step));
  return {{"name", wf.spec.name},
          {"description", wf.spec.description},
          {"version", wf.spec.version},
          {"source", wf.spec.source},
          {"config", config},
          {"metadata", Json::parse(wf.metadata_json)},
          {"delegate_to", wf.spec.delegate_to},
          {"tasks", tasks}};
}

// --- tree -------------------------------------------------------------------------------

void PrintTaskTree(std::ostream& out, const Plan& plan, size_t i, int step) {
  const TaskSpec& t = plan.task(i);
  out << "    " << step << ". " << t.name << "\n";
  auto line = [&](const std::string& key, const std::string& value) {
    if (!value.empty()) out << "       " << key << ": " << value << "\n";
  };
  std::vector<std::string> deps;
  for (size_t d : plan.deps(i)) deps.push_back(plan.task(d).name);
  line("description", t.description);
  line("depends on", Join(deps, ", "));
  line("command", t.command_text);
  line("workdir", t.workdir);
  line("delegate to", Join(t.delegate_to, ", "));
  line("timeout", t.timeout ? Compact(*t.timeout) : "");
  line("retries", t.retry.retries > 0 ? RetryText(t.retry) : "");
  line("async", t.async ? "yes" : "");
  line("tags", Join(t.tags, ", "));
  line("artifacts", Join(t.artifacts, ", "));
  line("consumes", Join(t.consumes, ", "));
  line("check mode", t.always_run ? "always runs" : "");
}

void PrintTree(std::ostream& out, const LoadedWorkflow& wf, const Plan& plan) {
  const WorkflowSpec& spec = wf.spec;
  out << "Workflow " << spec.name;
  if (!spec.version.empty()) out << " (version " << spec.version << ")";
  out << "\n";
  if (!spec.description.empty()) out << "  description: " << spec.description << "\n";
  out << "  source: " << spec.source << "\n";
  out << "  config: max_parallel_tasks=" << spec.config.max_parallel_tasks
      << " fail_fast=" << (spec.config.fail_fast ? "true" : "false")
      << " timeout=" << (spec.config.timeout ? Compact(*spec.config.timeout) : "none") << "\n";
  if (wf.metadata_json != "{}" && wf.metadata_json != "[]")
    out << "  metadata: " << wf.metadata_json << "\n";
  out << "  tasks (" << plan.size() << ", in execution order):\n";
  int step = 0;
  for (size_t i : plan.order()) PrintTaskTree(out, plan, i, ++step);
}

// --- graphs -----------------------------------------------------------------------------

std::string DotQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";  // a line break inside a label
    } else {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
  }
  return out + "\"";
}

// The lines of a task's node label after its name: where it runs and its limits.
std::vector<std::string> NodeNotes(const TaskSpec& t) {
  std::vector<std::string> notes;
  if (!t.delegate_to.empty()) notes.push_back("on " + Join(t.delegate_to, ", "));
  if (t.timeout) notes.push_back("timeout " + Compact(*t.timeout));
  if (t.retry.retries > 0)
    notes.push_back("retries " + std::to_string(t.retry.retries) + " " +
                    std::string(RetryStrategyName(t.retry.strategy)));
  if (t.async) notes.push_back("async");
  return notes;
}

void PrintDot(std::ostream& out, const std::vector<const LoadedWorkflow*>& wfs,
              const std::vector<const Plan*>& plans) {
  out << "digraph sloth {\n  rankdir=TB;\n  node [shape=box, style=rounded];\n";
  for (size_t w = 0; w < wfs.size(); ++w) {
    const Plan& plan = *plans[w];
    std::string prefix = wfs[w]->spec.name + "/";
    out << "  subgraph " << DotQuote("cluster_" + std::to_string(w)) << " {\n";
    out << "    label=" << DotQuote(wfs[w]->spec.name) << ";\n";
    for (size_t i : plan.order()) {
      std::vector<std::string> label = {plan.task(i).name};
      for (const std::string& note : NodeNotes(plan.task(i))) label.push_back(note);
      out << "    " << DotQuote(prefix + plan.task(i).name)
          << " [label=" << DotQuote(Join(label, "\n")) << "];\n";
    }
    for (size_t i : plan.order())
      for (size_t d : plan.deps(i))
        out << "    " << DotQuote(prefix + plan.task(d).name) << " -> "
            << DotQuote(prefix + plan.task(i).name) << ";\n";
    out << "  }\n";
  }
  out << "}\n";
}

// Mermaid labels are quoted strings in which '"' must be written as an entity.
std::string MermaidText(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"')
      out += "#quot;";
    else if (c == '\n')
      out += "<br/>";
    else
      out += c;
  }
  return out;
}

void PrintMermaid(std::ostream& out, const std::vector<const LoadedWorkflow*>& wfs,
                  const std::vector<const Plan*>& plans) {
  out << "graph TD\n";
  for (size_t w = 0; w < wfs.size(); ++w) {
    const Plan& plan = *plans[w];
    auto id = [&](size_t i) { return "w" + std::to_string(w) + "_t" + std::to_string(i); };
    out << "  subgraph w" << w << "[\"" << MermaidText(wfs[w]->spec.name) << "\"]\n";
    for (size_t i : plan.order()) {
      std::vector<std::string> label = {plan.task(i).name};
      for (const std::string& note : NodeNotes(plan.task(i))) label.push_back(note);
      out << "    " << id(i) << "[\"" << MermaidText(Join(label, "\n")) << "\"]\n";
    }
    for (size_t i : plan.order())
      for (size_t d : plan.deps(i)) out << "    " << id(d) << " --> " << id(i) << "\n";
    out << "  end\n";
  }
}

}  // namespace

int CmdWorkflowPreview(const GlobalOptions& global, const PreviewOptions& options) {
  static const std::vector<std::string> kFormats = {"tree", "json", "dot", "mermaid"};
  if (std::find(kFormats.begin(), kFormats.end(), options.format) == kFormats.end())
    return Fail(kExitBadInput,
                "unknown format \"" + options.format + "\" (tree, json, dot or mermaid)");
  return WithLoadedFile(options.file, DataDir(global.data_dir), [&](LoadedFile& loaded) {
    std::vector<const LoadedWorkflow*> wfs;
    std::vector<const Plan*> plans;
    for (size_t i = 0; i < loaded.workflows.size(); ++i) {
      if (!options.name.empty() && loaded.workflows[i].spec.name != options.name) continue;
      wfs.push_back(&loaded.workflows[i]);
      plans.push_back(&loaded.plans[i]);
    }
    if (wfs.empty())
      return Fail(kExitFailed, "workflow \"" + options.name + "\" not found in " + options.file);
    if (options.format == "json") {
      Json doc = {{"file", options.file}, {"workflows", Json::array()}};
      for (size_t w = 0; w < wfs.size(); ++w)
        doc["workflows"].push_back(WorkflowJson(*wfs[w], *plans[w]));
      std::cout << doc.dump(2) << "\n";
    } else if (options.format == "dot") {
      PrintDot(std::cout, wfs, plans);
    } else if (options.format == "mermaid") {
      PrintMermaid(std::cout, wfs, plans);
    } else {
      for (size_t w = 0; w < wfs.size(); ++w) {
        if (w > 0) std::cout << "\n";
        PrintTree(std::cout, *wfs[w], *plans[w]);
      }
    }
    return kExitOk;
  });
}

}  // namespace sloth
