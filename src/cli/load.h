// Loading a workflow file for any command: run it, collect workflows, build and check plans.
#pragma once

#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/plan.h"
#include "lua/workflow.h"

namespace sloth {

struct LoadedFile {
  std::vector<LoadedWorkflow> workflows;
  std::vector<Plan> plans;  // one per workflow, already checked
};

// Errors are ready to print: "FILE:LINE: message" or "FILE: message".
Result<LoadedFile> LoadFile(Runtime& rt, const std::string& path);

// Loads `path` in a fresh runtime with empty values (its top-level code runs, no task does) and
// returns fn(loaded); when the file does not load, prints the error and returns 2. The top-level
// code runs in check mode: it can read the state in `data_dir` but writes nothing.
int WithLoadedFile(const std::string& path, const std::string& data_dir,
                   const std::function<int(LoadedFile&)>& fn);

// Sets the `values` / `Values` globals.
void SetValues(Runtime& rt, const nlohmann::json& values);

}  // namespace sloth
