// Run values: values files deep-merged in order, then --set key.path=value overrides.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/status.h"

namespace sloth {

// Merges `overlay` into `base`: maps merge key by key, anything else replaces.
void DeepMerge(nlohmann::json& base, const nlohmann::json& overlay);

// Applies one "--set a.b.c=value" (value typed as YAML; "a.list.0=x" indexes a list).
Status ApplySet(nlohmann::json& values, const std::string& assignment);

// Reads the files (YAML or JSON) in order, merges them, then applies the --set overrides.
Result<nlohmann::json> LoadValues(const std::vector<std::string>& files,
                                  const std::vector<std::string>& sets);

}  // namespace sloth
