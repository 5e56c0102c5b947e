// Loading a workflow file for any command: run it, collect workflows, build and check plans.
#pragma once

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

// Sets the `values` / `Values` globals.
void SetValues(Runtime& rt, const nlohmann::json& values);

}  // namespace sloth
