// Loading the distributed layer's plugin, and finding the master to talk to.
#include "cli/remote.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/events_run.h"
#include "rpc/plugin.h"

namespace fs = std::filesystem;

namespace sloth {
namespace {

// Where the plugin may be: $SLOTH_RPC_PLUGIN, next to the binary (a build tree), or in
// ../lib/sloth-runner/ (an installation).
std::vector<std::string> PluginCandidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("SLOTH_RPC_PLUGIN"); env && *env) out.push_back(env);
  fs::path dir = fs::path(SelfExecutable()).parent_path();
  out.push_back((dir / "libsloth-rpc.so").string());
  out.push_back((dir.parent_path() / "lib/sloth-runner/libsloth-rpc.so").string());
  return out;
}

std::string& LoadedPath() {
  static std::string path;
  return path;
}

Result<RpcPlugin*> Load() {
  std::string tried;
  for (const std::string& path : PluginCandidates()) {
    if (!fs::exists(path)) {
      tried += (tried.empty() ? "" : ", ") + path;
      continue;
    }
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) return Status::Error("cannot load " + path + ": " + dlerror());
    auto entry = reinterpret_cast<RpcPlugin* (*)()>(dlsym(handle, "sloth_rpc_plugin"));
    if (!entry) return Status::Error(path + " is not a sloth-runner plugin");
    LoadedPath() = path;
    return entry();
  }
  return Status::Error(
      "the distributed layer (libsloth-rpc.so) is not installed next to this binary (looked "
      "for " +
      tried + ")");
}

}  // namespace

Result<RpcPlugin*> LoadRpcPlugin() {
  static Result<RpcPlugin*> plugin = Load();
  return plugin;
}

void ShutdownRpcPlugin() {
  if (LoadedPath().empty()) return;
  Result<RpcPlugin*> plugin = LoadRpcPlugin();
  if (plugin.ok()) (*plugin)->Shutdown();
}

Result<std::string> RpcPluginPath() {
  Result<RpcPlugin*> plugin = LoadRpcPlugin();
  if (!plugin.ok()) return plugin.status();
  return LoadedPath();
}

Result<std::string> ResolveMaster(const std::string& data_dir, const std::string& flag) {
  if (!flag.empty()) return flag;
  std::ifstream in(data_dir + "/masters.json");
  if (in) {
    nlohmann::json masters = nlohmann::json::parse(in, nullptr, false);
    if (masters.is_object() && masters.contains("selected") && masters["selected"].is_string()) {
      std::string name = masters["selected"];
      auto& list = masters["masters"];
      if (list.is_object() && list.contains(name) && list[name].contains("address"))
        return list[name]["address"].get<std::string>();
    }
  }
  if (const char* env = std::getenv("SLOTH_RUNNER_MASTER"); env && *env) return std::string(env);
  return Status::Error(
      "no master given: use --master HOST:PORT, `master add` + `master select`, or "
      "SLOTH_RUNNER_MASTER");
}

Result<std::unique_ptr<Delegator>> OpenDelegator(Loop& loop, const std::string& data_dir,
                                                 const std::string& master_flag) {
  Result<std::string> master = ResolveMaster(data_dir, master_flag);
  if (!master.ok()) return master.status();
  Result<RpcPlugin*> plugin = LoadRpcPlugin();
  if (!plugin.ok()) return plugin.status();
  return (*plugin)->OpenDelegator(loop, data_dir, *master);
}

}  // namespace sloth
