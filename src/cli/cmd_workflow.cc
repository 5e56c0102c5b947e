// `workflow list`, `list` and `validate`: load files without running anything.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/data_dir.h"
#include "cli/load.h"

namespace fs = std::filesystem;

namespace sloth {
namespace {

std::vector<std::string> SlothFilesHere() {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(fs::current_path()))
    if (entry.path().extension() == ".sloth") files.push_back(entry.path().filename().string());
  std::sort(files.begin(), files.end());
  return files;
}

nlohmann::ordered_json WorkflowJson(const std::string& file, const LoadedWorkflow& wf,
                                    const Plan& plan) {
  nlohmann::ordered_json tasks = nlohmann::ordered_json::array();
  for (size_t i : plan.order()) {
    const TaskSpec& t = plan.task(i);
    tasks.push_back(
        {{"name", t.name}, {"description", t.description}, {"depends_on", t.depends_on}});
  }
  return {{"file", file},
          {"name", wf.spec.name},
          {"description", wf.spec.description},
          {"version", wf.spec.version},
          {"tasks", tasks}};
}

}  // namespace

int CmdWorkflowList(const GlobalOptions& global, const FileOptions& options) {
  std::vector<std::string> files =
      options.file.empty() ? SlothFilesHere() : std::vector{options.file};
  if (files.empty())
    return Fail(kExitBadInput, "no -f FILE given and no *.sloth file in this directory");
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  for (const std::string& file : files) {
    int rc = WithLoadedFile(file, DataDir(global.data_dir), [&](LoadedFile& loaded) {
      for (size_t i = 0; i < loaded.workflows.size(); ++i) {
        const auto& wf = loaded.workflows[i];
        if (options.format == "json") {
          all.push_back(WorkflowJson(file, wf, loaded.plans[i]));
          continue;
        }
        std::cout << wf.spec.name;
        if (!wf.spec.description.empty()) std::cout << "  - " << wf.spec.description;
        if (files.size() > 1) std::cout << "  (" << file << ")";
        std::cout << "\n";
        for (size_t t : loaded.plans[i].order()) {
          const TaskSpec& task = loaded.plans[i].task(t);
          std::cout << "  " << task.name;
          if (!task.description.empty()) std::cout << "  - " << task.description;
          std::cout << "\n";
        }
      }
      return kExitOk;
    });
    if (rc != kExitOk) return rc;
  }
  if (options.format == "json") std::cout << all.dump(2) << "\n";
  return kExitOk;
}

int CmdValidate(const GlobalOptions& global, const FileOptions& options) {
  return WithLoadedFile(options.file, DataDir(global.data_dir), [&](LoadedFile& loaded) {
    size_t tasks = 0;
    for (const Plan& p : loaded.plans) tasks += p.size();
    std::cout << options.file << ": ok (" << loaded.workflows.size() << " workflow"
              << (loaded.workflows.size() == 1 ? "" : "s") << ", " << tasks << " task"
              << (tasks == 1 ? "" : "s") << ")\n";
    return kExitOk;
  });
}

}  // namespace sloth
