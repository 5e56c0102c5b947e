#include "rpc/credentials.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace sloth {

std::string ClusterDir(const std::string& data_dir) { return data_dir + "/cluster"; }
std::string AgentDir(const std::string& data_dir, const std::string& name) {
  return data_dir + "/agent/" + name;
}

Result<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status WriteTextFile(const std::string& path, const std::string& text, bool secret) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return Status::Error("cannot create " + fs::path(path).parent_path().string());
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, secret ? 0600 : 0644);
  if (fd < 0) return Status::Error("cannot write " + tmp);
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = fsync(fd) == 0 && ok;
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return Status::Error("cannot write " + path);
  }
  return Status::Ok();
}

namespace {

Status WritePair(const std::string& dir, const std::string& stem, const pki::KeyCert& kc) {
  if (Status s = WriteTextFile(dir + "/" + stem + ".key", kc.key_pem, true); !s.ok()) return s;
  return WriteTextFile(dir + "/" + stem + ".crt", kc.cert_pem, false);
}

Result<pki::KeyCert> LoadPair(const std::string& dir, const std::string& stem) {
  Result<std::string> key = ReadTextFile(dir + "/" + stem + ".key");
  if (!key.ok()) return key.status();
  Result<std::string> cert = ReadTextFile(dir + "/" + stem + ".crt");
  if (!cert.ok()) return cert.status();
  return pki::KeyCert{*key, *cert};
}

}  // namespace

Result<pki::KeyCert> LoadCa(const std::string& data_dir) {
  return LoadPair(ClusterDir(data_dir), "ca");
}

Status InitCluster(const std::string& data_dir, bool* created) {
  std::string dir = ClusterDir(data_dir);
  *created = false;
  Result<pki::KeyCert> ca = LoadCa(data_dir);
  if (!ca.ok()) {
    if (fs::exists(dir + "/ca.crt"))
      return Status::Error("cannot read the cluster CA in " + dir + ": " + ca.error());
    ca = pki::CreateCa("sloth-runner cluster CA");
    if (!ca.ok()) return ca.status();
    if (Status s = WritePair(dir, "ca", *ca); !s.ok()) return s;
    *created = true;
  }
  struct Wanted {
    const char* stem;
    const char* name;
    const char* role;
    std::vector<std::string> dns;
  };
  const Wanted wanted[] = {{"master", kMasterCertName, "master", {kMasterCertName}},
                           {"admin", "admin", "admin", {}}};
  for (const Wanted& w : wanted) {
    if (fs::exists(dir + "/" + w.stem + ".crt")) continue;
    Result<pki::KeyCert> kc = pki::Issue(*ca, w.name, w.role, w.dns, 3650);
    if (!kc.ok()) return kc.status();
    if (Status s = WritePair(dir, w.stem, *kc); !s.ok()) return s;
    *created = true;
  }
  return Status::Ok();
}

Result<std::shared_ptr<grpc::ServerCredentials>> MasterCredentials(const std::string& data_dir) {
  std::string dir = ClusterDir(data_dir);
  Result<pki::KeyCert> ca = LoadCa(data_dir);
  if (!ca.ok()) return ca.status();
  Result<pki::KeyCert> master = LoadPair(dir, "master");
  if (!master.ok()) return master.status();
  grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = ca->cert_pem;
  options.pem_key_cert_pairs.push_back({master->key_pem, master->cert_pem + ca->cert_pem});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> TlsCredentials(const std::string& ca_pem,
                                                         const std::string& key_pem,
                                                         const std::string& cert_pem) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ca_pem;
  options.pem_private_key = key_pem;
  options.pem_cert_chain = cert_pem;
  return grpc::SslCredentials(options);
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           std::shared_ptr<grpc::ChannelCredentials> creds) {
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(kMasterCertName);
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // Reconnect attempts are ours (agent backoff); gRPC's own should not wait long.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  return grpc::CreateCustomChannel(address, creds, args);
}

Result<AgentIdentity> LoadAgentIdentity(const std::string& dir) {
  Result<std::string> ca = ReadTextFile(dir + "/ca.crt");
  Result<pki::KeyCert> pair = LoadPair(dir, "agent");
  if (!ca.ok() || !pair.ok()) return Status::Error("no agent certificate in " + dir);
  return AgentIdentity{*ca, pair->key_pem, pair->cert_pem};
}

Result<std::shared_ptr<grpc::Channel>> AdminChannel(const std::string& data_dir,
                                                    const std::string& address) {
  std::string dir = ClusterDir(data_dir);
  Result<std::string> ca = ReadTextFile(dir + "/ca.crt");
  Result<pki::KeyCert> admin = LoadPair(dir, "admin");
  if (!ca.ok() || !admin.ok())
    return Status::Error("no admin certificate in " + dir +
                         " (run `master init` there, or copy ca.crt, admin.crt and admin.key "
                         "from the master's " +
                         dir + ")");
  return MakeChannel(address, TlsCredentials(*ca, admin->key_pem, admin->cert_pem));
}

}  // namespace sloth
