// Values loading and merging.
#include "data/values.h"

#include <fstream>
#include <sstream>

#include "base/strings.h"
#include "data/yaml_json.h"

namespace sloth {

void DeepMerge(nlohmann::json& base, const nlohmann::json& overlay) {
  if (!base.is_object() || !overlay.is_object()) {
    base = overlay;
    return;
  }
  for (const auto& [key, value] : overlay.items()) {
    if (base.contains(key))
      DeepMerge(base[key], value);
    else
      base[key] = value;
  }
}

Status ApplySet(nlohmann::json& values, const std::string& assignment) {
  size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    return Status::Error("--set expects key.path=value, got \"" + assignment + "\"");
  std::string path = assignment.substr(0, eq);
  auto typed = ParseYaml(assignment.substr(eq + 1));
  nlohmann::json value = typed.ok() && !typed->is_object() && !typed->is_array()
                             ? *typed
                             : nlohmann::json(assignment.substr(eq + 1));
  if (assignment.size() == eq + 1) value = "";
  nlohmann::json* node = &values;
  for (const std::string& part : Split(path, '.')) {
    if (part.empty()) return Status::Error("--set: empty key in \"" + path + "\"");
    bool index = node->is_array() && part.find_first_not_of("0123456789") == std::string::npos;
    if (index) {
      size_t i = std::stoul(part);
      if (i > node->size())
        return Status::Error("--set: index " + part + " is past the end of " + path);
      if (i == node->size()) node->push_back(nullptr);
      node = &(*node)[i];
      continue;
    }
    if (!node->is_object()) *node = nlohmann::json::object();
    node = &(*node)[part];
  }
  *node = value;
  return Status::Ok();
}

Result<nlohmann::json> LoadValues(const std::vector<std::string>& files,
                                  const std::vector<std::string>& sets) {
  nlohmann::json values = nlohmann::json::object();
  for (const std::string& file : files) {
    std::ifstream in(file);
    if (!in) return Status::Error("cannot read values file " + file);
    std::stringstream text;
    text << in.rdbuf();
    auto doc = ParseYaml(text.str());
    if (!doc.ok()) return Status::Error(file + ": " + doc.error());
    if (doc->is_null()) continue;
    if (!doc->is_object()) return Status::Error(file + ": values must be a map at the top level");
    DeepMerge(values, *doc);
  }
  for (const std::string& set : sets) {
    Status s = ApplySet(values, set);
    if (!s.ok()) return s;
  }
  return values;
}

}  // namespace sloth
