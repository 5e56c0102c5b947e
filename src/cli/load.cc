// Shared file loading for run, validate, list and preview.
#include "cli/load.h"

#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include <lua.hpp>

#include "cli/commands.h"
#include "lua/lua_util.h"
#include "store/sqlite_state_store.h"

namespace sloth {

Result<LoadedFile> LoadFile(Runtime& rt, const std::string& path) {
  struct stat st;
  if (path.empty()) return Status::Error("no workflow file given (use -f FILE)");
  if (stat(path.c_str(), &st) != 0) return Status::Error(path + ": no such file");
  if (S_ISDIR(st.st_mode)) return Status::Error(path + ": is a directory, not a workflow file");
  auto workflows = LoadWorkflows(rt, path);
  if (!workflows.ok()) return workflows.status();
  LoadedFile out;
  for (const LoadedWorkflow& wf : *workflows) {
    auto plan = Plan::Build(wf.spec);
    if (!plan.ok()) return plan.status();
    out.plans.push_back(std::move(*plan));
  }
  out.workflows = std::move(*workflows);
  return out;
}

int WithLoadedFile(const std::string& path, const std::string& data_dir,
                   const std::function<int(LoadedFile&)>& fn) {
  Loop loop;
  RuntimeOptions options;
  options.start_dir = std::filesystem::current_path().string();
  options.check_mode = true;
  std::unique_ptr<SqliteStateStore> state;
  options.state_store = [&]() -> Result<StateStore*> {
    if (!state) {
      auto opened = SqliteStateStore::Open(DatabasePath(data_dir));
      if (!opened.ok()) return opened.status();
      state = std::move(*opened);
    }
    return static_cast<StateStore*>(state.get());
  };
  Runtime rt(loop, options, nullptr);
  SetValues(rt, nlohmann::json::object());
  auto loaded = LoadFile(rt, path);
  if (!loaded.ok()) return Fail(kExitBadInput, loaded.error());
  return fn(*loaded);
}

void SetValues(Runtime& rt, const nlohmann::json& values) {
  lua_State* L = rt.state();
  PushJson(L, values);
  lua_pushvalue(L, -1);
  lua_setglobal(L, "values");
  lua_setglobal(L, "Values");
}

}  // namespace sloth
