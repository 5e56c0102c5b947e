// pkg: installs and removes system packages with the machine's package manager. Idempotent:
// what is already installed is not asked for again (and the manager is not run at all when
// nothing is missing); check mode reports what would be installed or removed. Installed
// versions come from the package database read directly (dpkg, apk, pacman) or `rpm -q`.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <lua.hpp>
#include <nlohmann/json.hpp>

#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/modules/host_util.h"
#include "lua/modules/stack.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

enum class Db { kDpkg, kApk, kPacman, kRpm };

struct Manager {
  const char* name;
  const char* binary;
  Db db;
  std::vector<std::string> install, remove, update, upgrade;
  const char* pin;  // joins name and version ("nginx=1.24"); null: no version pins
};

// Tried in this order; the first whose binary is on PATH wins. apt-get comes first because
// Debian-family systems may also carry other managers' tools (e.g. the `apk` of a container).
const std::vector<Manager>& Managers() {
  static const std::vector<Manager> kManagers = {
      {"apt",
       "apt-get",
       Db::kDpkg,
       {"apt-get", "install", "-y"},
       {"apt-get", "remove", "-y"},
       {"apt-get", "update"},
       {"apt-get", "upgrade", "-y"},
       "="},
      {"dnf",
       "dnf",
       Db::kRpm,
       {"dnf", "install", "-y"},
       {"dnf", "remove", "-y"},
       {"dnf", "makecache"},
       {"dnf", "upgrade", "-y"},
       "-"},
      {"yum",
       "yum",
       Db::kRpm,
       {"yum", "install", "-y"},
       {"yum", "remove", "-y"},
       {"yum", "makecache"},
       {"yum", "update", "-y"},
       "-"},
      {"pacman",
       "pacman",
       Db::kPacman,
       {"pacman", "-S", "--noconfirm", "--needed"},
       {"pacman", "-R", "--noconfirm"},
       {"pacman", "-Sy"},
       {"pacman", "-Syu", "--noconfirm"},
       nullptr},
      {"zypper",
       "zypper",
       Db::kRpm,
       {"zypper", "--non-interactive", "install"},
       {"zypper", "--non-interactive", "remove"},
       {"zypper", "--non-interactive", "refresh"},
       {"zypper", "--non-interactive", "update"},
       "="},
      {"apk",
       "apk",
       Db::kApk,
       {"apk", "add"},
       {"apk", "del"},
       {"apk", "update"},
       {"apk", "upgrade"},
       "="},
  };
  return kManagers;
}

const Manager* DetectManager() {
  for (const Manager& m : Managers())
    if (OnPath(m.binary)) return &m;
  return nullptr;
}

const Manager& CheckManager(lua_State* L, const char* fn) {
  const Manager* m = DetectManager();
  if (!m) {
    luaL_error(L,
               "pkg.%s: no supported package manager found on PATH (looked for apt-get, dnf, "
               "yum, pacman, zypper, apk)",
               fn);
  }
  return *m;
}

using Versions = std::map<std::string, std::optional<std::string>>;  // name -> installed version

// pacman keeps one directory per installed package, /var/lib/pacman/local/NAME-VER-REL/desc.
std::optional<std::string> PacmanVersion(const std::string& name) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/var/lib/pacman/local", ec)) {
    if (entry.path().filename().string().rfind(name + "-", 0) != 0) continue;
    std::ifstream in(entry.path() / "desc");
    std::string line, field, pkg, version;
    while (std::getline(in, line)) {
      if (!line.empty() && line.front() == '%') {
        field = line;
      } else if (!line.empty()) {
        if (field == "%NAME%") pkg = line;
        if (field == "%VERSION%") version = line;
      }
    }
    if (pkg == name) return version;
  }
  return std::nullopt;
}

// The installed version of each of `names` for databases we read directly.
Versions ReadVersions(const Manager& m, const std::vector<std::string>& names) {
  Versions out;
  for (const auto& n : names)
    out[n] = m.db == Db::kPacman ? PacmanVersion(n) : FindPackage(n).version;
  return out;
}

// `rpm -q` output: "NAME VERSION-RELEASE" lines for installed packages, "package X is not
// installed" for the others.
Versions ParseRpmQuery(const std::string& out, const std::vector<std::string>& names) {
  Versions v;
  for (const auto& n : names) v[n] = std::nullopt;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string name, version, extra;
    if (fields >> name >> version && !(fields >> extra) && v.count(name)) v[name] = version;
  }
  return v;
}

using Then = std::function<int(lua_State*, Versions)>;

// Looks up the installed versions of `names`, then continues with `then` (after `rpm -q` on rpm
// systems, which yields the task; a probe, so it runs in check mode too).
int WithVersions(lua_State* L, const Manager& m, const std::vector<std::string>& names, Then then) {
  if (m.db != Db::kRpm) return then(L, ReadVersions(m, names));
  ProcessSpec spec;
  spec.argv = {"rpm", "-q", "--qf", "%{NAME} %{VERSION}-%{RELEASE}\n", "--"};
  spec.argv.insert(spec.argv.end(), names.begin(), names.end());
  spec.env = Runtime::From(L).ChildEnvironment(L);
  spec.cwd = "/";
  return RunHostCommand(L, std::move(spec), [names, then](lua_State* co, const ProcessExit& e) {
    return then(co, ParseRpmQuery(e.out, names));
  });
}

// --- arguments ------------------------------------------------------------------------------

struct Wanted {
  std::string name;
  std::string version;  // empty: any version
};

std::string ItemString(lua_State* L, const char* fn) {
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "pkg.%s: package names must be strings", fn);
  return lua_tostring(L, -1);
}

// Accepts "name", {"a", "b"}, {name = "a", version = "1.2"}, {packages = {...}} and
// {names = {...}}. version "latest" means any version.
std::vector<Wanted> ParseWanted(lua_State* L, const char* fn) {
  std::vector<Wanted> out;
  if (lua_type(L, 1) == LUA_TSTRING) {
    out.push_back({lua_tostring(L, 1), ""});
  } else if (lua_type(L, 1) == LUA_TTABLE) {
    if (auto target = OptString(L, 1, "target")) {
      luaL_error(L,
                 "pkg.%s: installing on agent %s needs a master (distributed execution is not "
                 "available yet)",
                 fn, target->c_str());
    }
    std::string version = OptString(L, 1, "version").value_or("");
    if (version == "latest") version.clear();
    if (auto name = OptString(L, 1, "name")) out.push_back({*name, version});
    for (const char* field : {"packages", "names"})
      for (auto& n : OptStringList(L, 1, field)) out.push_back({n, ""});
    for (lua_Integer i = 1; lua_rawgeti(L, 1, i) != LUA_TNIL; ++i) {
      out.push_back({ItemString(L, fn), ""});
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  } else {
    luaL_error(L, "pkg.%s: expected a package name, a list of names or {name = ..., version = ...}",
               fn);
  }
  if (out.empty()) luaL_error(L, "pkg.%s: no package named", fn);
  for (const auto& w : out)
    if (w.name.empty() || w.name.front() == '-')
      luaL_error(L, "pkg.%s: bad package name \"%s\"", fn, w.name.c_str());
  return out;
}

std::vector<std::string> Names(const std::vector<Wanted>& wanted) {
  std::vector<std::string> names;
  for (const auto& w : wanted) names.push_back(w.name);
  return names;
}

// --- results --------------------------------------------------------------------------------

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

void SetStringList(lua_State* L, const char* field, const std::vector<std::string>& items) {
  lua_createtable(L, static_cast<int>(items.size()), 0);
  for (size_t i = 0; i < items.size(); ++i) {
    lua_pushstring(L, items[i].c_str());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  MarkArray(L, -1);
  lua_setfield(L, -2, field);
}

// {changed, msg, manager, packages = {name = version|false}, [list_field] = {...}, check_mode?}
int PushResult(lua_State* L, const Manager& m, bool changed, const std::string& msg,
               const Versions& versions, const char* list_field,
               const std::vector<std::string>& list) {
  Runtime& rt = Runtime::From(L);
  lua_newtable(L);
  lua_pushboolean(L, changed);
  lua_setfield(L, -2, "changed");
  lua_pushstring(L, msg.c_str());
  lua_setfield(L, -2, "msg");
  lua_pushstring(L, m.name);
  lua_setfield(L, -2, "manager");
  lua_newtable(L);
  for (const auto& [name, v] : versions) {
    if (v)
      lua_pushstring(L, v->c_str());
    else
      lua_pushboolean(L, 0);
    lua_setfield(L, -2, name.c_str());
  }
  lua_setfield(L, -2, "packages");
  if (list_field) SetStringList(L, list_field, list);
  if (rt.CheckMode(L)) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "check_mode");
  }
  rt.Log(L, LogLevel::kInfo, std::string(rt.CheckMode(L) ? "[check] " : "") + "pkg: " + msg);
  lua_pushvalue(L, -1);  // twice, like file_ops: `local ok, res = pkg.install(...)` works too
  return 2;
}

// Every installed package the call asked for is a resource of the run's stack.
void RecordPackages(lua_State* L, const Versions& versions) {
  for (const auto& [name, v] : versions)
    if (v) RecordManagedResource(L, "package", name, "pkg", {{"version", *v}});
}

[[noreturn]] void CommandFailed(lua_State* L, const char* fn, const ProcessSpec& spec,
                                const ProcessExit& e) {
  std::string cmd;
  for (const auto& a : spec.argv) cmd += (cmd.empty() ? "" : " ") + a;
  luaL_error(L, "pkg.%s: `%s` failed with exit code %d: %s", fn, cmd.c_str(), e.exit_code,
             CommandOutputTail(e).c_str());
  std::abort();
}

ProcessSpec ManagerSpec(lua_State* L, const Manager& m, std::vector<std::string> argv,
                        const std::vector<std::string>& args = {}) {
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> env;
  if (m.db == Db::kDpkg) env = {"DEBIAN_FRONTEND=noninteractive"};
  return PrivilegedSpec(L, std::move(argv), env);
}

// Runs the manager; on success pushes the result with the versions read afterwards.
int RunChange(lua_State* L, const Manager& m, const char* fn, ProcessSpec spec,
              std::vector<std::string> names, std::string msg, const char* list_field,
              std::vector<std::string> list, bool record) {
  const Manager* mp = &m;
  return RunHostCommand(L, spec, [=](lua_State* co, const ProcessExit& e) {
    if (e.exit_code != 0) CommandFailed(co, fn, spec, e);
    return WithVersions(co, *mp, names, [=](lua_State* co2, Versions after) {
      if (record) RecordPackages(co2, after);
      return PushResult(co2, *mp, true, msg, after, list_field, list);
    });
  });
}

// --- functions ------------------------------------------------------------------------------

int Install(lua_State* L) {
  std::vector<Wanted> wanted = ParseWanted(L, "install");
  const Manager& m = CheckManager(L, "install");
  return WithVersions(L, m, Names(wanted), [wanted, &m](lua_State* co, Versions before) {
    std::vector<std::string> missing, args;
    for (const auto& w : wanted) {
      const auto& v = before[w.name];
      if (v && (w.version.empty() || VersionMatches(*v, w.version))) continue;
      if (!w.version.empty() && !m.pin)
        luaL_error(co, "pkg.install: %s cannot install a given version (%s)", m.name,
                   w.name.c_str());
      missing.push_back(w.name);
      args.push_back(w.version.empty() ? w.name : w.name + m.pin + w.version);
    }
    if (missing.empty()) {
      RecordPackages(co, before);
      return PushResult(co, m, false, "already installed: " + Join(Names(wanted)), before,
                        "installed", {});
    }
    if (Runtime::From(co).CheckMode(co)) {
      for (const auto& n : missing)
        RecordManagedResource(co, "package", n, "pkg", nlohmann::json::object());
      return PushResult(co, m, true, "would install: " + Join(missing), before, "installed",
                        missing);
    }
    return RunChange(co, m, "install", ManagerSpec(co, m, m.install, args), Names(wanted),
                     "installed: " + Join(missing), "installed", missing, true);
  });
}

int Remove(lua_State* L) {
  std::vector<Wanted> wanted = ParseWanted(L, "remove");
  const Manager& m = CheckManager(L, "remove");
  return WithVersions(L, m, Names(wanted), [wanted, &m](lua_State* co, Versions before) {
    std::vector<std::string> present;
    for (const auto& w : wanted)
      if (before[w.name]) present.push_back(w.name);
    if (present.empty())
      return PushResult(co, m, false, "not installed: " + Join(Names(wanted)), before, "removed",
                        {});
    if (Runtime::From(co).CheckMode(co))
      return PushResult(co, m, true, "would remove: " + Join(present), before, "removed", present);
    return RunChange(co, m, "remove", ManagerSpec(co, m, m.remove, present), Names(wanted),
                     "removed: " + Join(present), "removed", present, false);
  });
}

std::string CheckName(lua_State* L, const char* fn) {
  if (lua_type(L, 1) != LUA_TSTRING) luaL_error(L, "pkg.%s: expected a package name", fn);
  return lua_tostring(L, 1);
}

int IsInstalled(lua_State* L) {
  std::string name = CheckName(L, "is_installed");
  return WithVersions(L, CheckManager(L, "is_installed"), {name},
                      [name](lua_State* co, Versions v) {
                        lua_pushboolean(co, v[name].has_value());
                        return 1;
                      });
}

int Version(lua_State* L) {
  std::string name = CheckName(L, "version");
  return WithVersions(L, CheckManager(L, "version"), {name}, [name](lua_State* co, Versions v) {
    if (v[name])
      lua_pushstring(co, v[name]->c_str());
    else
      lua_pushnil(co);
    return 1;
  });
}

// A cheap fingerprint of the package databases: changes whenever a package is installed,
// removed or upgraded, so upgrade() can tell whether it changed anything.
std::string DbFingerprint() {
  std::string out;
  for (const char* p : {"/var/lib/dpkg/status", "/lib/apk/db/installed", "/var/lib/pacman/local",
                        "/var/lib/rpm", "/usr/lib/sysimage/rpm"}) {
    struct stat st {};
    if (stat(p, &st) != 0) continue;
    out += std::string(p) + ":" + std::to_string(st.st_size) + ":" +
           std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + ";";
  }
  return out;
}

// Refreshes the package index. It never counts as a change (no package is installed or
// removed), and check mode skips it.
int Update(lua_State* L) {
  const Manager& m = CheckManager(L, "update");
  if (Runtime::From(L).CheckMode(L))
    return PushResult(L, m, false, "would refresh the package index", {}, nullptr, {});
  ProcessSpec spec = ManagerSpec(L, m, m.update);
  const Manager* mp = &m;
  return RunHostCommand(L, spec, [mp, spec](lua_State* co, const ProcessExit& e) {
    if (e.exit_code != 0) CommandFailed(co, "update", spec, e);
    return PushResult(co, *mp, false, "package index refreshed", {}, nullptr, {});
  });
}

// Runs a whole-system command (upgrade, autoremove); changed when the package database
// changed. Check mode does not run it.
int RunWhole(lua_State* L, const Manager& m, const char* fn, std::vector<std::string> argv,
             std::string done_msg, std::string nothing_msg) {
  if (Runtime::From(L).CheckMode(L))
    return PushResult(L, m, false, std::string("would run pkg.") + fn + " (not checked)", {},
                      nullptr, {});
  ProcessSpec spec = ManagerSpec(L, m, std::move(argv));
  const Manager* mp = &m;
  std::string before = DbFingerprint();
  return RunHostCommand(L, spec, [=](lua_State* co, const ProcessExit& e) {
    if (e.exit_code != 0) CommandFailed(co, fn, spec, e);
    bool changed = DbFingerprint() != before;
    return PushResult(co, *mp, changed, changed ? done_msg : nothing_msg, {}, nullptr, {});
  });
}

// Upgrades every installed package.
int Upgrade(lua_State* L) {
  const Manager& m = CheckManager(L, "upgrade");
  return RunWhole(L, m, "upgrade", m.upgrade, "packages upgraded", "nothing to upgrade");
}

// Removes packages installed only as dependencies that nothing needs any more.
int Autoremove(lua_State* L) {
  const Manager& m = CheckManager(L, "autoremove");
  std::string name = m.name;
  std::vector<std::string> argv;
  if (name == "apt") argv = {"apt-get", "autoremove", "-y"};
  if (name == "dnf" || name == "yum") argv = {name, "autoremove", "-y"};
  if (argv.empty()) luaL_error(L, "pkg.autoremove: not supported with %s", m.name);
  return RunWhole(L, m, "autoremove", argv, "unneeded packages removed", "nothing to remove");
}

// Empties the manager's download cache; never a change to what is installed.
int Clean(lua_State* L) {
  const Manager& m = CheckManager(L, "clean");
  std::string name = m.name;
  std::vector<std::string> argv = {"apk", "cache", "clean"};
  if (name == "apt") argv = {"apt-get", "clean"};
  if (name == "dnf" || name == "yum") argv = {name, "clean", "all"};
  if (name == "pacman") argv = {"pacman", "-Sc", "--noconfirm"};
  if (name == "zypper") argv = {"zypper", "--non-interactive", "clean"};
  if (Runtime::From(L).CheckMode(L))
    return PushResult(L, m, false, "would clean the package cache", {}, nullptr, {});
  ProcessSpec spec = ManagerSpec(L, m, argv);
  const Manager* mp = &m;
  return RunHostCommand(L, spec, [mp, spec](lua_State* co, const ProcessExit& e) {
    if (e.exit_code != 0) CommandFailed(co, "clean", spec, e);
    return PushResult(co, *mp, false, "package cache cleaned", {}, nullptr, {});
  });
}

int GetManager(lua_State* L) {
  const Manager* m = DetectManager();
  if (m)
    lua_pushstring(L, m->name);
  else
    lua_pushnil(L);
  return 1;
}

}  // namespace

const Module& PkgModule() {
  static const Module m = {
      "pkg",
      "System packages (apt, dnf, yum, pacman, zypper, apk): idempotent install/remove, check mode",
      {
          {"install", Install, "install(name | {names} | {name, version} | {packages}) -> result",
           "Installs what is missing; {changed, msg, installed, packages}"},
          {"remove", Remove, "remove(name | {names}) -> result",
           "Removes what is installed; {changed, msg, removed, packages}"},
          {"is_installed", IsInstalled, "is_installed(name) -> bool",
           "Whether the package is installed"},
          {"version", Version, "version(name) -> string|nil", "The installed version"},
          {"update", Update, "update() -> result", "Refreshes the package index (changed = false)"},
          {"upgrade", Upgrade, "upgrade() -> result", "Upgrades all packages"},
          {"autoremove", Autoremove, "autoremove() -> result",
           "Removes unneeded dependencies (apt, dnf, yum)"},
          {"clean", Clean, "clean() -> result", "Empties the download cache (changed = false)"},
          {"get_manager", GetManager, "get_manager() -> string|nil",
           "The detected package manager (apt, dnf, yum, pacman, zypper, apk)"},
      },
  };
  return m;
}

}  // namespace sloth
