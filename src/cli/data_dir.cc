// Data directory resolution.
#include "cli/data_dir.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

namespace sloth {

std::string DataDir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* home = std::getenv("SLOTH_RUNNER_HOME"); home && *home) return home;
  if (geteuid() == 0) return "/var/lib/sloth-runner";
  const char* user_home = std::getenv("HOME");
  if (!user_home || !*user_home) {
    passwd* pw = getpwuid(geteuid());
    user_home = pw ? pw->pw_dir : "/tmp";
  }
  return std::string(user_home) + "/.sloth-runner";
}

}  // namespace sloth
