// What the CLI asks of the distributed layer. The layer is a plugin (libsloth-rpc.so) loaded on
// first use by cli/remote.cc; it exports one C function returning an RpcPlugin.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/duration.h"
#include "base/status.h"
#include "core/stack_store.h"
#include "core/state_store.h"
#include "exec/loop.h"
#include "lua/delegate.h"

namespace sloth {

struct MasterStartOptions {
  std::string data_dir;
  // agent.* events (type, data JSON); called from gRPC threads, so it must be thread-safe.
  std::function<void(const std::string& type, const std::string& data_json)> emit;
  int port = 50053;
  std::string bind = "0.0.0.0";
};

struct AgentStartOptions {
  std::string data_dir;
  std::string name;
  std::string master;  // host:port
  std::string token;
  std::vector<std::string> labels;  // "k=v"
  int simulate = 0;  // run N simulated agents named NAME-1..NAME-N (token: a file, one per line)
  Duration heartbeat = std::chrono::seconds(5);
  Duration report_every = std::chrono::seconds(60);
};

// One admin command against a master: agent list/get/exec/stop/delete/metrics, token create.
struct AgentCommandOptions {
  std::string data_dir;
  std::string master;  // resolved address
  std::string verb;
  std::string name;
  std::string command;
  bool all = false;
  std::string label;
  std::string output = "table";
  Duration ttl = std::chrono::hours(1);
  int count = 1;       // token create: how many
  Duration timeout{};  // exec: 0 = none
};

// A running master's server; destroying it stops serving (two seconds' grace for calls).
class MasterServer {
 public:
  virtual ~MasterServer() = default;
};

class RpcPlugin {
 public:
  virtual ~RpcPlugin() = default;
  virtual int MasterInit(const std::string& data_dir) = 0;
  // Shuts gRPC down and waits for its threads, once every channel and server is gone.
  virtual void Shutdown() = 0;
  // Serves in the background; prints "listening on ADDR:PORT" once the port is bound.
  virtual Result<std::unique_ptr<MasterServer>> StartMaster(const MasterStartOptions& options) = 0;
  virtual int AgentStart(const AgentStartOptions& options) = 0;
  virtual int AgentCommand(const AgentCommandOptions& options) = 0;
  // A one-time join token (agent install makes one for the agent it installs).
  virtual Result<std::string> CreateJoinToken(const std::string& data_dir,
                                              const std::string& master, Duration ttl) = 0;
  // Waits until agent `name` is Active; false when `timeout` passed first.
  virtual Result<bool> WaitForAgent(const std::string& data_dir, const std::string& master,
                                    const std::string& name, Duration timeout) = 0;
  virtual Result<std::unique_ptr<Delegator>> OpenDelegator(Loop& loop, const std::string& data_dir,
                                                           const std::string& master) = 0;
  // The master's state store, for a delegated task running on agent `agent` (its certificate).
  virtual Result<std::unique_ptr<StateStore>> OpenRemoteState(const std::string& data_dir,
                                                              const std::string& agent,
                                                              const std::string& master) = 0;
  // Likewise its stack store (stack.* inside a delegated task).
  virtual Result<std::unique_ptr<StackStore>> OpenRemoteStack(const std::string& data_dir,
                                                              const std::string& agent,
                                                              const std::string& master) = 0;
};

// Loads the plugin once (cli/remote.cc). Errors name the file it looked for.
Result<RpcPlugin*> LoadRpcPlugin();
// The file the plugin was loaded from (loading it if needed).
Result<std::string> RpcPluginPath();

// --master if given, else the selected entry of `master add/select`, else $SLOTH_RUNNER_MASTER.
Result<std::string> ResolveMaster(const std::string& data_dir, const std::string& flag);

}  // namespace sloth

extern "C" sloth::RpcPlugin* sloth_rpc_plugin();
