// `modules list`: the built-in Lua modules, straight from the registry that binds them, so it
// never names a function that does not exist.
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "lua/module.h"

namespace sloth {
namespace {

using Json = nlohmann::ordered_json;

// Functions whose name starts with "__" are internal (metamethods, helpers for the prelude).
bool Visible(const ModuleFunction& f) { return std::strncmp(f.name, "__", 2) != 0; }

std::string Text(const char* s) { return s ? s : ""; }

const Module* FindModule(const std::string& name) {
  for (const Module* m : AllModules()) {
    if (name == m->name) return m;
    for (const char* alias : m->aliases)
      if (name == alias) return m;
  }
  return nullptr;
}

Json ModuleJson(const Module& m) {
  Json functions = Json::array();
  for (const ModuleFunction& f : m.functions)
    if (Visible(f))
      functions.push_back(
          {{"name", f.name}, {"signature", Text(f.signature)}, {"summary", Text(f.summary)}});
  Json aliases = Json::array();
  for (const char* alias : m.aliases) aliases.push_back(alias);
  return {{"name", m.name},
          {"summary", Text(m.summary)},
          {"aliases", aliases},
          {"functions", functions}};
}

// "name - summary", the aliases, then each function's signature with its summary under it.
void PrintModule(const Module& m) {
  std::cout << m.name << " - " << Text(m.summary) << "\n";
  if (!m.aliases.empty()) {
    std::cout << "  also available as:";
    for (const char* alias : m.aliases) std::cout << " " << alias;
    std::cout << "\n";
  }
  for (const ModuleFunction& f : m.functions) {
    if (!Visible(f)) continue;
    std::string signature = f.signature ? f.signature : std::string(f.name) + "(...)";
    std::cout << "  " << m.name << "." << signature << "\n      " << Text(f.summary) << "\n";
  }
}

}  // namespace

int CmdModulesList(const GlobalOptions&, const ModulesOptions& options) {
  if (options.format != "table" && options.format != "json")
    return Fail(kExitBadInput, "unknown format \"" + options.format + "\" (table or json)");
  std::vector<const Module*> modules = AllModules();
  if (!options.module.empty()) {
    const Module* m = FindModule(options.module);
    if (!m) return Fail(kExitFailed, "module \"" + options.module + "\" not found");
    modules = {m};
  }
  if (options.format == "json") {
    if (!options.module.empty()) {
      std::cout << ModuleJson(*modules[0]).dump(2) << "\n";
      return kExitOk;
    }
    Json all = Json::array();
    for (const Module* m : modules) all.push_back(ModuleJson(*m));
    std::cout << all.dump(2) << "\n";
    return kExitOk;
  }
  for (size_t i = 0; i < modules.size(); ++i) {
    if (i > 0) std::cout << "\n";
    PrintModule(*modules[i]);
  }
  return kExitOk;
}

}  // namespace sloth
