// SSH profiles kept in sloth.db (`ssh add|list|remove`, cmd_ssh.cc), read by `run --ssh NAME`.
#pragma once

#include <string>

#include "base/status.h"
#include "lua/modules/ssh.h"
#include "store/db.h"

namespace sloth {

// The profile `name`; an error saying so when there is none.
Result<SshProfile> LoadSshProfile(Db& db, const std::string& name);

}  // namespace sloth
