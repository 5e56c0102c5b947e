#include "lua/modules/host_util.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "lua/modules/exec.h"
#include "lua/runtime.h"

namespace sloth {

PackageInfo FindPackage(const std::string& name) {
  PackageInfo info;
  struct Db {
    const char* manager;
    const char* path;
    const char* name_field;
    const char* version_field;
  };
  static const Db kDbs[] = {{"dpkg", "/var/lib/dpkg/status", "Package: ", "Version: "},
                            {"apk", "/lib/apk/db/installed", "P:", "V:"}};
  for (const Db& db : kDbs) {
    std::ifstream in(db.path);
    if (!in) continue;
    info.manager = db.manager;
    std::string line, pkg, version;
    bool installed = db.manager[0] == 'a';  // apk lists installed packages only
    auto end_record = [&] {
      if (pkg == name && installed && !version.empty()) info.version = version;
      pkg.clear();
      version.clear();
      installed = db.manager[0] == 'a';
    };
    while (std::getline(in, line)) {
      if (line.empty()) end_record();
      if (line.rfind(db.name_field, 0) == 0) pkg = line.substr(std::strlen(db.name_field));
      if (line.rfind(db.version_field, 0) == 0)
        version = line.substr(std::strlen(db.version_field));
      if (line.rfind("Status: ", 0) == 0) installed = line.ends_with(" installed");
      if (info.version) break;
    }
    end_record();
    return info;
  }
  return info;
}

bool OnPath(const std::string& prog) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':'))
    if (!dir.empty() && access((dir + "/" + prog).c_str(), X_OK) == 0) return true;
  return false;
}

bool VersionMatches(const std::string& found, const std::string& want) {
  std::string v = found;
  size_t colon = v.find(':');
  if (want.find(':') == std::string::npos && colon != std::string::npos) v = v.substr(colon + 1);
  if (v == want || found == want) return true;
  return v.rfind(want, 0) == 0 && std::strchr(".-+~_", v[want.size()]) != nullptr;
}

ProcessSpec PrivilegedSpec(lua_State* L, std::vector<std::string> argv,
                           const std::vector<std::string>& env) {
  ProcessSpec spec;
  spec.env = Runtime::From(L).ChildEnvironment(L);
  spec.env.insert(spec.env.end(), env.begin(), env.end());
  if (geteuid() != 0) {
    std::vector<std::string> prefix = {"sudo", "-n"};
    if (!env.empty()) {
      prefix.push_back("env");
      prefix.insert(prefix.end(), env.begin(), env.end());
    }
    argv.insert(argv.begin(), prefix.begin(), prefix.end());
  }
  spec.argv = std::move(argv);
  spec.cwd = "/";  // the task's workdir may be gone or unreadable to the tool
  return spec;
}

int RunHostCommand(lua_State* L, ProcessSpec spec,
                   std::function<int(lua_State*, const ProcessExit&)> on_exit) {
  ExecOptions opts;
  opts.run_in_check_mode = true;
  opts.stream = false;
  opts.on_exit = std::move(on_exit);
  return RunCommand(L, std::move(spec), opts);
}

std::string CommandOutputTail(const ProcessExit& e, size_t max) {
  std::string s = e.err.empty() ? e.out : e.err;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s.size() <= max ? s : "..." + s.substr(s.size() - max);
}

}  // namespace sloth
