// The plugin object the CLI gets from sloth_rpc_plugin() (plugin_entry.cc).
#include <grpc/grpc.h>

#include <cstdio>

#include "rpc/agent.h"
#include "rpc/client.h"
#include "rpc/credentials.h"
#include "rpc/master.h"
#include "rpc/state_remote.h"

namespace sloth {
namespace {

class Plugin final : public RpcPlugin {
 public:
  int MasterInit(const std::string& data_dir) override {
    bool created = false;
    if (Status s = InitCluster(data_dir, &created); !s.ok()) {
      std::fprintf(stderr, "error: %s\n", s.message().c_str());
      return 1;
    }
    std::printf(
        "%s %s\n",
        created ? "created the cluster CA and certificates in" : "the cluster is set up already in",
        ClusterDir(data_dir).c_str());
    return 0;
  }
  void Shutdown() override {
    // Our own reference, dropped at once: the last one shuts gRPC down, here, synchronously.
    grpc_init();
    grpc_shutdown_blocking();
  }
  Result<std::unique_ptr<MasterServer>> StartMaster(const MasterStartOptions& options) override {
    return sloth::StartMaster(options);
  }
  int AgentStart(const AgentStartOptions& options) override { return RunAgent(options); }
  int AgentCommand(const AgentCommandOptions& options) override { return RunAgentCommand(options); }
  Result<std::string> CreateJoinToken(const std::string& data_dir, const std::string& master,
                                      Duration ttl) override {
    return sloth::CreateJoinToken(data_dir, master, ttl);
  }
  Result<bool> WaitForAgent(const std::string& data_dir, const std::string& master,
                            const std::string& name, Duration timeout) override {
    return sloth::WaitForAgent(data_dir, master, name, timeout);
  }
  Result<std::unique_ptr<Delegator>> OpenDelegator(Loop& loop, const std::string& data_dir,
                                                   const std::string& master) override {
    return MakeRemoteDelegator(loop, data_dir, master);
  }
  Result<std::unique_ptr<StateStore>> OpenRemoteState(const std::string& data_dir,
                                                      const std::string& agent,
                                                      const std::string& master) override {
    auto channel = AgentChannel(data_dir, agent, master);
    if (!channel.ok()) return channel.status();
    return MakeRemoteStateStore(*channel);
  }
  Result<std::unique_ptr<StackStore>> OpenRemoteStack(const std::string& data_dir,
                                                      const std::string& agent,
                                                      const std::string& master) override {
    auto channel = AgentChannel(data_dir, agent, master);
    if (!channel.ok()) return channel.status();
    return MakeRemoteStackStore(*channel);
  }

 private:
  // A delegated task talks to the master with its agent's certificate.
  static Result<std::shared_ptr<grpc::Channel>> AgentChannel(const std::string& data_dir,
                                                             const std::string& agent,
                                                             const std::string& master) {
    Result<AgentIdentity> id = LoadAgentIdentity(AgentDir(data_dir, agent));
    if (!id.ok()) return Status::Error(id.error() + " to reach the master's stores");
    return MakeChannel(master, TlsCredentials(id->ca_pem, id->key_pem, id->cert_pem));
  }
};

}  // namespace

RpcPlugin* NewRpcPlugin() { return new Plugin(); }

}  // namespace sloth
