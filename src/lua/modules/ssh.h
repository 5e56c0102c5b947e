// The ssh module's entry for `run --ssh PROFILE`: exec.run and friends go over one SSH connection.
#pragma once

#include <string>

#include "base/status.h"

namespace sloth {

class Runtime;

// A stored SSH profile (`ssh add`): where and how to connect.
struct SshProfile {
  std::string name;
  std::string host;
  int port = 22;
  std::string user;         // empty: the current user
  std::string key;          // private key file; empty: ssh-agent and the default keys
  std::string known_hosts;  // empty: ~/.ssh/known_hosts
};

// Replaces exec.run, exec.command and exec.sh (and its aliases) in `rt` with versions that run
// the command on the profile's host. The connection opens on the first command.
Status UseSshForExec(Runtime& rt, const SshProfile& profile);

}  // namespace sloth
