// `master ...` and `agent ...` (except the hidden `agent run-task`): option structs and commands.
// The gRPC work happens in the plugin (rpc/plugin.h); `master add|list|select|show|update|
// remove` only edit DATA/masters.json.
#pragma once

#include <string>
#include <vector>

#include "cli/commands.h"

namespace sloth {

struct MasterCliOptions {
  int port = 50053;
  std::string bind = "0.0.0.0";
  bool daemon = false;
  std::string grace = "5m";  // the scheduler's --grace
  // master add/select/...
  std::string name;
  std::string address;
  std::string description;
  std::string output = "table";
};

struct AgentCliOptions {
  std::string name;
  std::string master;
  std::string token;
  std::vector<std::string> labels;
  bool daemon = false;
  std::string heartbeat = "5s";
  std::string report_every = "60s";
  int simulate = 0;
  // admin commands
  std::string command;
  bool all = false;
  std::string label;
  std::string output = "table";
  std::string ttl = "1h";
  int count = 1;
  std::string timeout = "0";
  int ignored_port = 0;  // seed spelling `agent start --port`: agents listen nowhere
  // agent install
  std::string ssh_host;
  std::string ssh_user = "root";
  int ssh_port = 22;
  std::string ssh_key;
  std::string known_hosts;
  std::string prefix = "/usr/local";
  std::string agent_master;    // the master's address as the new agent reaches it
  std::string agent_data_dir;  // the new agent's --data-dir
};

int CmdMasterInit(const GlobalOptions& global);
int CmdMasterStart(const GlobalOptions& global, const MasterCliOptions& options);
int CmdMasterAdd(const GlobalOptions& global, const MasterCliOptions& options);
int CmdMasterList(const GlobalOptions& global, const MasterCliOptions& options);
int CmdMasterSelect(const GlobalOptions& global, const MasterCliOptions& options);
int CmdMasterShow(const GlobalOptions& global, const MasterCliOptions& options);
int CmdMasterUpdate(const GlobalOptions& global, const MasterCliOptions& options);
int CmdMasterRemove(const GlobalOptions& global, const MasterCliOptions& options);

int CmdAgentStart(const GlobalOptions& global, const AgentCliOptions& options);
// agent install: copies this binary and its plugin to a host over SSH (OpenSSH's ssh and scp),
// enrols an agent there with a fresh token and starts it in the background.
int CmdAgentInstall(const GlobalOptions& global, const AgentCliOptions& options);
// list, get, exec, stop, delete, metrics, token
int CmdAgentAdmin(const GlobalOptions& global, const std::string& verb,
                  const AgentCliOptions& options);

}  // namespace sloth
