// Where the cluster's keys and certificates live and how they become gRPC credentials.
//   master: DATA/cluster/{ca.crt,ca.key,master.crt,master.key,admin.crt,admin.key}
//   admin clients (the CLI): DATA/cluster/{ca.crt,admin.crt,admin.key} (copyable elsewhere)
//   agents: DATA/agent/NAME/{ca.crt,agent.crt,agent.key}
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "base/status.h"
#include "rpc/pki.h"

namespace sloth {

// Every client checks the master's certificate against this name, whatever address it dials.
inline constexpr const char* kMasterCertName = "sloth-master";
// Messages larger than this are refused (a delegated task's bundle carries its files).
inline constexpr int kMaxMessageBytes = 64 << 20;

std::string ClusterDir(const std::string& data_dir);
std::string AgentDir(const std::string& data_dir, const std::string& name);

Result<std::string> ReadTextFile(const std::string& path);
// Writes atomically (temp file + rename) with mode 0600 (keys) or 0644.
Status WriteTextFile(const std::string& path, const std::string& text, bool secret);

// Creates the cluster CA, the master's and the admin's certificates if they do not exist yet.
// `created` tells whether anything was made.
Status InitCluster(const std::string& data_dir, bool* created);
Result<pki::KeyCert> LoadCa(const std::string& data_dir);

// TLS server credentials for the master: its chain (certificate + CA, so an enrolling agent
// can pin the CA), client certificates requested and verified when sent.
Result<std::shared_ptr<grpc::ServerCredentials>> MasterCredentials(const std::string& data_dir);

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           std::shared_ptr<grpc::ChannelCredentials> creds);
// An agent's identity, from DATA/agent/NAME/: the CA it trusts, its key and its certificate.
struct AgentIdentity {
  std::string ca_pem, key_pem, cert_pem;
};
// Fails when `dir` lacks any of ca.crt, agent.key, agent.crt (the agent is not enrolled).
Result<AgentIdentity> LoadAgentIdentity(const std::string& dir);

// mTLS channel with the admin certificate; fails with a clear message when it is missing.
Result<std::shared_ptr<grpc::Channel>> AdminChannel(const std::string& data_dir,
                                                    const std::string& address);
std::shared_ptr<grpc::ChannelCredentials> TlsCredentials(const std::string& ca_pem,
                                                         const std::string& key_pem,
                                                         const std::string& cert_pem);

}  // namespace sloth
