// Bundles for delegated tasks: which files a workflow loaded, packing and unpacking, and the
// agent's answer.
#include "lua/delegate.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include <lua.hpp>

#include "base/strings.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sloth {
namespace {

constexpr char kLoadedKey[] = "sloth.loaded_files";  // registry: list of paths as loaded

// Wraps the ways Lua code loads a file (a "?" before a path: found by require). `import` (prelude)
// calls the global loadfile; require goes through package.searchers[2], which we precede with a
// lookup of the same path.
constexpr char kTracker[] = R"(
local files = ...
local function note(path) if type(path) == "string" then files[#files + 1] = path end end
local orig_loadfile, orig_dofile = loadfile, dofile
loadfile = function(path, ...)
  local f, err = orig_loadfile(path, ...)
  if f then note(path) end
  return f, err
end
dofile = function(path) note(path); return orig_dofile(path) end
local searcher = package.searchers[2]
package.searchers[2] = function(name)
  local path = package.searchpath(name, package.path)
  if path then note("?" .. path) end
  return searcher(name)
end
)";

Result<std::string> ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error("cannot read " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A path a bundle may write: relative, and never climbing out of the bundle's root.
bool SafeRelative(const std::string& path) {
  if (path.empty() || path[0] == '/') return false;
  for (const auto& part : fs::path(path))
    if (part == "..") return false;
  return true;
}

json ParseOr(const std::string& text, json fallback) {
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? fallback : j;
}

}  // namespace

void TrackLoadedFiles(lua_State* L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, kLoadedKey) != LUA_TNIL) return lua_pop(L, 1);
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, kLoadedKey);  // files
  if (luaL_loadbuffer(L, kTracker, sizeof(kTracker) - 1, "=[prelude tracker]") != LUA_OK) {
    lua_pop(L, 2);  // cannot happen: the chunk is ours
    return;
  }
  lua_insert(L, -2);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
}

std::vector<LoadedSource> LoadedFiles(lua_State* L) {
  std::vector<LoadedSource> out;
  std::set<std::string> seen;
  if (lua_getfield(L, LUA_REGISTRYINDEX, kLoadedKey) == LUA_TTABLE) {
    for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TSTRING; ++i) {
      std::string_view noted = lua_tostring(L, -1);
      bool required = !noted.empty() && noted[0] == '?';
      if (required) noted.remove_prefix(1);
      std::string path = fs::absolute(fs::path(noted)).lexically_normal().string();
      if (seen.insert(path).second) out.push_back({path, required});
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return out;
}

Status AddBundleFiles(Bundle& bundle, const std::string& workflow_file,
                      const std::vector<LoadedSource>& loaded) {
  fs::path main = fs::absolute(workflow_file).lexically_normal();
  fs::path root = main.parent_path();
  bundle.entry = main.filename().string();
  std::vector<LoadedSource> all = {{main.string(), false}};
  all.insert(all.end(), loaded.begin(), loaded.end());
  for (const auto& [file, required] : all) {
    std::string rel = fs::path(file).lexically_relative(root).string();
    if (!SafeRelative(rel) && required) continue;
    if (!SafeRelative(rel))
      return Status::Error("cannot send " + file +
                           " to an agent: it lies outside the workflow's "
                           "directory " +
                           root.string() + " (only files under it travel)");
    if (bundle.files.count(rel)) continue;
    auto content = ReadWhole(file);
    if (!content.ok()) return content.status();
    bundle.files[rel] = std::move(*content);
  }
  return Status::Ok();
}

std::string BundleToJson(const Bundle& b) {
  json j = {{"version", 1},
            {"run_id", b.run_id},
            {"stack", b.stack},
            {"stack_id", b.stack_id},
            {"workflow", b.workflow},
            {"task", b.task},
            {"attempt", b.attempt},
            {"entry", b.entry},
            {"files", b.files},
            {"values", ParseOr(b.values_json, json::object())},
            {"params", ParseOr(b.params_json, json::object())},
            {"deps", ParseOr(b.deps_json, json::object())},
            {"secrets", b.secrets},
            {"check_mode", b.check_mode}};
  // Invalid UTF-8 in a file or value is replaced rather than failing the whole task.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<Bundle> ParseBundle(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  auto bad = [](const std::string& why) { return Status::Error("bad bundle: " + why); };
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  Bundle b;
  try {
    if (!j.contains("version") || j["version"] != 1) return bad("unsupported version (want 1)");
    for (const char* key : {"run_id", "workflow", "task", "entry"})
      if (!j.contains(key) || !j[key].is_string() || j[key].get<std::string>().empty())
        return bad(std::string("missing ") + key);
    b.run_id = j["run_id"];
    b.workflow = j["workflow"];
    b.task = j["task"];
    b.entry = j["entry"];
    b.stack = j.value("stack", b.workflow);
    b.stack_id = j.value("stack_id", "");
    b.attempt = j.value("attempt", 1);
    b.check_mode = j.value("check_mode", false);
    if (!j.contains("files") || !j["files"].is_object()) return bad("missing files");
    b.files = j["files"].get<std::map<std::string, std::string>>();
    if (j.contains("secrets")) b.secrets = j["secrets"].get<std::map<std::string, std::string>>();
    b.values_json = j.value("values", json::object()).dump();
    b.params_json = j.value("params", json::object()).dump();
    b.deps_json = j.value("deps", json::object()).dump();
  } catch (const json::exception& e) {
    return bad(e.what());
  }
  if (!SafeRelative(b.run_id) || b.run_id.find('/') != std::string::npos)
    return bad("run_id must be a plain name");
  for (const auto& [path, content] : b.files)
    if (!SafeRelative(path)) return bad("file path \"" + path + "\" is absolute or has ..");
  if (!b.files.count(b.entry)) return bad("the entry file " + b.entry + " is not in files");
  return b;
}

Result<AttemptResult> ParseAgentResult(const std::string& stdout_text) {
  std::string last;
  for (const std::string& line : Split(stdout_text, '\n'))
    if (!Trim(line).empty()) last = line;
  json j = json::parse(last, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("status"))
    return Status::Error("the agent gave no result" + (last.empty() ? "" : ": " + last));
  AttemptResult r;
  std::string status = j.value("status", "");
  r.outcome = status == "Success" || status == "Unchanged" ? AttemptResult::Outcome::kSuccess
              : status == "Skipped"                        ? AttemptResult::Outcome::kSkipped
                                                           : AttemptResult::Outcome::kFailed;
  r.changed = j.value("changed", status != "Unchanged");
  std::string error = j.contains("error") && j["error"].is_string() ? j["error"] : "";
  std::string message = j.contains("message") && j["message"].is_string() ? j["message"] : "";
  r.message = r.outcome == AttemptResult::Outcome::kFailed && !error.empty() ? error : message;
  if (r.outcome == AttemptResult::Outcome::kFailed && r.message.empty())
    r.message = "failed on the agent";
  r.output_json = j.contains("output") && j["output"].is_object() ? j["output"].dump() : "{}";
  return r;
}

AttemptResult MergeAgentResults(const std::vector<std::pair<std::string, AttemptResult>>& results) {
  AttemptResult merged;
  merged.changed = false;
  json outputs = json::object();
  std::vector<std::string> failures;
  bool all_skipped = !results.empty();
  for (const auto& [agent, r] : results) {
    outputs[agent] = ParseOr(r.output_json, json::object());
    merged.changed = merged.changed || r.changed;
    if (r.outcome == AttemptResult::Outcome::kFailed) failures.push_back(agent + ": " + r.message);
    if (r.outcome != AttemptResult::Outcome::kSkipped) all_skipped = false;
  }
  merged.output_json = outputs.dump();
  if (!failures.empty()) {
    merged.outcome = AttemptResult::Outcome::kFailed;
    merged.message = Join(failures, "; ");
  } else if (all_skipped) {
    merged.outcome = AttemptResult::Outcome::kSkipped;
  }
  return merged;
}

}  // namespace sloth
