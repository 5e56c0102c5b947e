// YAML <-> JSON conversion with YAML 1.2 core-schema typing (integers stay integers).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/status.h"

namespace sloth {

// Parses one YAML document. Errors carry "line N, column M".
Result<nlohmann::json> ParseYaml(std::string_view text);
// Types a plain (unquoted) YAML scalar: null, booleans, integers, floats, else a string.
nlohmann::json TypedScalar(const std::string& text);
std::string ToYaml(const nlohmann::json& value);

}  // namespace sloth
