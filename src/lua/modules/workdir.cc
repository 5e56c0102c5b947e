// workdir: the calling task's working directory (the run's start directory outside a task):
// where relative paths of fs, exec and the other modules resolve.
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <lua.hpp>

#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

namespace stdfs = std::filesystem;

std::string Workdir(lua_State* L) { return Runtime::From(L).ResolvePath(L, "."); }

// Absolute, with symlinks and ".." resolved and no trailing slash.
std::string Canonical(const std::string& path) {
  std::error_code ec;
  std::string out = stdfs::weakly_canonical(path, ec).string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

bool SamePath(const std::string& a, const std::string& b) { return Canonical(a) == Canonical(b); }

int WorkdirGet(lua_State* L) {
  lua_pushstring(L, Workdir(L).c_str());
  return 1;
}

int WorkdirExists(lua_State* L) {
  std::error_code ec;
  lua_pushboolean(L, stdfs::is_directory(Workdir(L), ec));
  return 1;
}

int WorkdirCreate(lua_State* L) {
  Runtime& rt = Runtime::From(L);
  std::string dir = Workdir(L);
  std::error_code ec;
  if (stdfs::is_directory(dir, ec)) return lua_pushboolean(L, 1), 1;
  if (rt.CheckMode(L)) {
    rt.Log(L, LogLevel::kDebug, "[check] would create directory " + dir);
    return lua_pushboolean(L, 1), 1;
  }
  stdfs::create_directories(dir, ec);
  if (ec || !stdfs::is_directory(dir)) {
    return PushFailure(
        L, "workdir.create: " + dir + ": " + (ec ? ec.message() : "exists and is not a directory"));
  }
  return lua_pushboolean(L, 1), 1;
}

// Why `dir` must not be emptied, or "" when it may be.
std::string Refusal(lua_State* L, const std::string& dir) {
  const char* home = std::getenv("HOME");
  if (SamePath(dir, "/")) return "it is /";
  if (SamePath(dir, Runtime::From(L).options().start_dir)) return "it is the run's start directory";
  if (home && *home && SamePath(dir, home)) return "it is $HOME";
  return "";
}

// Removes everything inside `dir` (not `dir` itself); returns an error message or "".
std::string RemoveContents(const std::string& dir) {
  std::error_code ec;
  std::vector<stdfs::path> entries;
  for (stdfs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    entries.push_back(it->path());
  for (const auto& entry : entries) {
    if (ec) break;
    stdfs::remove_all(entry, ec);
  }
  return ec ? "workdir.cleanup: " + dir + ": " + ec.message() : "";
}

int WorkdirCleanup(lua_State* L) {
  Runtime& rt = Runtime::From(L);
  std::string dir = Workdir(L);
  std::string refusal = Refusal(L, dir);
  if (!refusal.empty())
    return PushFailure(L, "workdir.cleanup: refusing to empty " + dir + ": " + refusal);
  std::error_code ec;
  if (!stdfs::is_directory(dir, ec)) return lua_pushboolean(L, 1), 1;
  if (rt.CheckMode(L)) {
    rt.Log(L, LogLevel::kDebug, "[check] would remove the contents of " + dir);
    return lua_pushboolean(L, 1), 1;
  }
  return rt.AwaitBlocking<std::string>(
      L, [dir] { return RemoveContents(dir); },
      [](lua_State* co, std::string& error) {
        if (!error.empty()) return PushFailure(co, error);
        lua_pushboolean(co, 1);
        return 1;
      });
}

}  // namespace

const Module& WorkdirModule() {
  static const Module m = {
      "workdir",
      "The calling task's working directory",
      {
          {"get", WorkdirGet, "get() -> path",
           "The task's workdir (the start directory outside tasks)"},
          {"exists", WorkdirExists, "exists() -> bool",
           "Whether the workdir is an existing directory"},
          {"create", WorkdirCreate, "create() -> true", "Creates the workdir and its parents"},
          {"cleanup", WorkdirCleanup, "cleanup() -> true",
           "Removes everything inside the workdir (never /, $HOME or the start directory)"},
      },
  };
  return m;
}

}  // namespace sloth
