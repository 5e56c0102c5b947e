#include "rpc/master.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/auth_context.h>

#include <atomic>
#include <cstdio>
#include <deque>
#include <mutex>

#include "base/version.h"
#include "rpc/credentials.h"
#include "rpc/hub.h"
#include "rpc/state_remote.h"
#include "store/migrations.h"
#include "store/sqlite_stack_store.h"
#include "store/sqlite_state_store.h"

namespace sloth {
namespace {

using grpc::CallbackServerContext;
using grpc::StatusCode;

void Log(const std::string& line) {
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

struct Peer {
  std::string name;
  std::string role;
};

// Who is calling, from the client certificate TLS already verified against the cluster CA.
class Authenticator {
 public:
  explicit Authenticator(Hub& hub) : hub_(hub) {}

  // `role` empty: any role of the cluster (agent or admin).
  grpc::Status Check(CallbackServerContext* ctx, const std::string& role, Peer* peer) {
    std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
    std::vector<grpc::string_ref> pem =
        auth ? auth->FindPropertyValues("x509_pem_cert") : std::vector<grpc::string_ref>{};
    if (pem.empty()) return Refuse(ctx, StatusCode::UNAUTHENTICATED, "no client certificate");
    Result<pki::CertInfo> info = Inspect(std::string(pem[0].data(), pem[0].size()));
    if (!info.ok()) return Refuse(ctx, StatusCode::UNAUTHENTICATED, info.error());
    if (hub_.IsRevoked(info->fingerprint))
      return Refuse(ctx, StatusCode::PERMISSION_DENIED, "certificate revoked");
    if (!role.empty() && info->role != role)
      return Refuse(ctx, StatusCode::PERMISSION_DENIED,
                    "this call needs the " + role + " role, the caller is " + info->role);
    peer->name = info->name;
    peer->role = info->role;
    return grpc::Status::OK;
  }

  static grpc::Status Refuse(CallbackServerContext* ctx, StatusCode code, const std::string& why) {
    Log("refused " + ctx->peer() + ": " + why);
    return grpc::Status(code, why);
  }

 private:
  // Parsing a certificate per call is measurable with many agents: keep the answers.
  Result<pki::CertInfo> Inspect(const std::string& pem) {
    std::lock_guard lock(mu_);
    auto it = cache_.find(pem);
    if (it != cache_.end()) return it->second;
    Result<pki::CertInfo> info = pki::Inspect(pem);
    if (info.ok()) {
      if (cache_.size() > 8192) cache_.clear();
      cache_.emplace(pem, *info);
    }
    return info;
  }
  Hub& hub_;
  std::mutex mu_;
  std::unordered_map<std::string, pki::CertInfo> cache_;
};

// One write at a time per stream (a gRPC rule): messages queue here.
template <typename Message>
class WriteQueue {
 public:
  // Returns the message to start writing now, if the queue was idle.
  const Message* Push(Message m) {
    queue_.push_back(std::move(m));
    if (writing_) return nullptr;
    writing_ = true;
    return &queue_.front();
  }
  // After a write completed: the next one, if any.
  const Message* Done() {
    queue_.pop_front();
    if (queue_.empty()) {
      writing_ = false;
      return nullptr;
    }
    return &queue_.front();
  }
  bool writing() const { return writing_; }

 private:
  std::deque<Message> queue_;
  bool writing_ = false;
};

class AgentStream final : public grpc::ServerBidiReactor<v1::AgentMessage, v1::MasterMessage>,
                          public AgentLink {
 public:
  AgentStream(Hub& hub, Authenticator& auth, CallbackServerContext* ctx) : hub_(hub), ctx_(ctx) {
    grpc::Status s = auth.Check(ctx, "agent", &peer_);
    if (!s.ok()) {
      Close(s);
      return;
    }
    StartRead(&in_);
  }

  void Send(const v1::MasterMessage& message) override {
    std::lock_guard lock(mu_);
    if (finishing_) return;
    if (const v1::MasterMessage* next = writes_.Push(message)) StartWrite(next);
  }

  void Close(const grpc::Status& status) override {
    std::lock_guard lock(mu_);
    if (finishing_) return;
    finishing_ = true;
    if (writes_.writing())
      pending_status_ = status;  // finish after the write in flight
    else
      Finish(status);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Gone();
      Close(grpc::Status::OK);
      return;
    }
    if (!Handle()) return;
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    const v1::MasterMessage* next = ok ? writes_.Done() : nullptr;
    if (next && !finishing_) return StartWrite(next);
    if (!ok) {
      finishing_ = true;
      Finish(grpc::Status(StatusCode::UNAVAILABLE, "write failed"));
      return;
    }
    if (finishing_ && pending_status_) {
      Finish(*pending_status_);
      pending_status_.reset();
    }
  }

  void OnDone() override {
    Gone();
    delete this;
  }

 private:
  // Handles one message; false when the stream was closed.
  bool Handle() {
    if (!registered_) {
      if (!in_.has_hello()) {
        Close(grpc::Status(StatusCode::INVALID_ARGUMENT, "the first message must be hello"));
        return false;
      }
      if (in_.hello().name() != peer_.name) {
        Close(Authenticator::Refuse(ctx_, StatusCode::PERMISSION_DENIED,
                                    "an agent can only act as itself (certificate of " +
                                        peer_.name + ", hello from " + in_.hello().name() + ")"));
        return false;
      }
      grpc::Status s = hub_.Register(this, in_.hello(), PeerAddress());
      if (!s.ok()) {
        Close(s);
        return false;
      }
      registered_ = true;
      Log("agent " + peer_.name + " connected from " + PeerAddress());
      v1::MasterMessage welcome;
      welcome.mutable_welcome()->set_master_version(kVersion);
      Send(welcome);
      return true;
    }
    switch (in_.kind_case()) {
      case v1::AgentMessage::kHeartbeat:
        hub_.Heartbeat(peer_.name);
        break;
      case v1::AgentMessage::kReport:
        hub_.Report(peer_.name, in_.report());
        break;
      case v1::AgentMessage::kOutput:
        hub_.Output(peer_.name, in_.output());
        break;
      case v1::AgentMessage::kResult:
        hub_.Finished(peer_.name, in_.result());
        break;
      default:
        Close(grpc::Status(StatusCode::INVALID_ARGUMENT, "unexpected message"));
        return false;
    }
    return true;
  }

  void Gone() {
    if (!registered_ || gone_.exchange(true)) return;
    hub_.Unregister(this, peer_.name);
    Log("agent " + peer_.name + " disconnected");
  }

  // "ipv4:127.0.0.1:4321" -> "127.0.0.1"
  std::string PeerAddress() const {
    std::string p = ctx_->peer();
    size_t colon = p.find(':');
    if (colon != std::string::npos) p = p.substr(colon + 1);
    size_t port = p.rfind(':');
    if (port != std::string::npos) p = p.substr(0, port);
    if (p.size() > 2 && p.front() == '[') p = p.substr(1, p.size() - 2);
    return p;
  }

  Hub& hub_;
  CallbackServerContext* ctx_;
  Peer peer_;
  v1::AgentMessage in_;
  std::mutex mu_;
  WriteQueue<v1::MasterMessage> writes_;
  bool finishing_ = false;
  std::optional<grpc::Status> pending_status_;
  bool registered_ = false;
  std::atomic<bool> gone_{false};
};

// What the admin's Run and Shell calls share: the job's output and result written back to the
// caller one event at a time (a gRPC rule), and a finish that waits for the write in flight.
// `Reactor` is a gRPC server reactor that writes JobEvents.
template <typename Reactor>
class JobEventCall : public Reactor, public JobWaiter {
 public:
  void Output(const v1::JobOutput& output) override {
    v1::JobEvent event;
    *event.mutable_output() = output;
    Write(std::move(event), false);
  }
  void Result(const v1::JobResult& result) override {
    v1::JobEvent event;
    *event.mutable_result() = result;
    Write(std::move(event), true);
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    if (!ok) return FinishNow(grpc::Status(StatusCode::UNAVAILABLE, "write failed"));
    const v1::JobEvent* next = writes_.Done();
    if (pending_) return FinishNow(*pending_);
    if (next) return this->StartWrite(next);
    if (last_queued_) FinishLocked(grpc::Status::OK);
  }

 protected:
  explicit JobEventCall(Hub& hub) : hub_(hub) {}
  void FinishWith(const grpc::Status& s) {
    std::lock_guard lock(mu_);
    FinishLocked(s);
  }

  Hub& hub_;
  std::string job_id_;

 private:
  void Write(v1::JobEvent event, bool last) {
    std::lock_guard lock(mu_);
    if (finishing_ || last_queued_) return;
    last_queued_ = last;
    if (const v1::JobEvent* next = writes_.Push(std::move(event))) this->StartWrite(next);
  }
  void FinishLocked(const grpc::Status& s) {
    if (finishing_) return;
    finishing_ = true;
    if (writes_.writing()) {
      pending_ = s;
    } else {
      finished_ = true;
      this->Finish(s);
    }
  }
  void FinishNow(const grpc::Status& s) {
    finishing_ = true;
    pending_.reset();
    if (!finished_) this->Finish(s);
    finished_ = true;
  }

  std::mutex mu_;
  WriteQueue<v1::JobEvent> writes_;
  bool last_queued_ = false;
  bool finishing_ = false;
  bool finished_ = false;
  std::optional<grpc::Status> pending_;
};

// An admin's Run call: streams the job's output, then its result.
class RunCall final : public JobEventCall<grpc::ServerWriteReactor<v1::JobEvent>> {
 public:
  RunCall(Hub& hub, Authenticator& auth, CallbackServerContext* ctx, const v1::RunRequest* req)
      : JobEventCall(hub) {
    Peer peer;
    grpc::Status s = auth.Check(ctx, "admin", &peer);
    if (s.ok()) s = hub.StartJob(*req, this, &job_id_);
    if (!s.ok()) FinishWith(s);
  }
  void OnCancel() override { hub_.Detach(job_id_, this, true); }
  void OnDone() override {
    hub_.Detach(job_id_, this, false);
    delete this;
  }
};

// An admin's `agent shell`: keystrokes go down to the agent's pseudo-terminal, its output
// comes back; the call ends with the shell's exit (or when the admin goes away, which kills it).
class ShellCall final : public JobEventCall<grpc::ServerBidiReactor<v1::ShellInput, v1::JobEvent>> {
 public:
  ShellCall(Hub& hub, Authenticator& auth, CallbackServerContext* ctx) : JobEventCall(hub) {
    Peer peer;
    grpc::Status s = auth.Check(ctx, "admin", &peer);
    if (!s.ok()) {
      FinishWith(s);
      return;
    }
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the admin is gone: so is the shell
      if (started_) hub_.Detach(job_id_, this, true);
      return FinishWith(grpc::Status::OK);
    }
    if (!started_) {
      if (!in_.has_open())
        return FinishWith(grpc::Status(StatusCode::INVALID_ARGUMENT, "open the shell first"));
      v1::RunRequest req;
      req.set_agent(in_.open().agent());
      *req.mutable_job()->mutable_shell() = in_.open().spec();
      req.set_grace_ms(1);  // a shell whose agent is gone is gone
      started_ = true;
      grpc::Status s = hub_.StartJob(req, this, &job_id_);
      if (!s.ok()) return FinishWith(s);
    } else {
      v1::Input input;
      input.set_job_id(job_id_);
      input.set_data(in_.data());
      if (in_.has_resize()) *input.mutable_resize() = in_.resize();
      hub_.Input(job_id_, this, input);
    }
    StartRead(&in_);
  }
  void OnDone() override {
    if (started_) hub_.Detach(job_id_, this, true);
    delete this;
  }

 private:
  v1::ShellInput in_;
  bool started_ = false;
};

grpc::Status FromStatus(const Status& s, StatusCode code) {
  return s.ok() ? grpc::Status::OK : grpc::Status(code, s.message());
}

class MasterService final : public v1::Master::CallbackService {
 public:
  MasterService(Hub& hub, pki::KeyCert ca, std::unique_ptr<StateStore> state,
                std::unique_ptr<StackStore> stacks)
      : hub_(hub),
        auth_(hub),
        ca_(std::move(ca)),
        state_(std::move(state)),
        stacks_(std::move(stacks)) {
    Result<pki::CertInfo> info = pki::Inspect(ca_.cert_pem);
    ca_hash_ = info.ok() ? info->fingerprint : "";
  }

  grpc::ServerUnaryReactor* Enroll(CallbackServerContext* ctx, const v1::EnrollRequest* req,
                                   v1::EnrollResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(DoEnroll(ctx, *req, resp));
    return reactor;
  }

  grpc::ServerBidiReactor<v1::AgentMessage, v1::MasterMessage>* Connect(
      CallbackServerContext* ctx) override {
    return new AgentStream(hub_, auth_, ctx);
  }

  grpc::ServerUnaryReactor* CreateToken(CallbackServerContext* ctx,
                                        const v1::CreateTokenRequest* req,
                                        v1::CreateTokenResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    Peer peer;
    grpc::Status s = auth_.Check(ctx, "admin", &peer);
    if (s.ok()) {
      int64_t expires = 0;
      auto ttl = std::chrono::milliseconds(req->ttl_ms() > 0 ? req->ttl_ms() : 3600000);
      Result<std::string> token = hub_.CreateToken(ca_hash_, ttl, &expires);
      s = FromStatus(token.status(), StatusCode::INTERNAL);
      if (token.ok()) {
        resp->set_token(*token);
        resp->set_expires_unix_ms(expires);
      }
    }
    reactor->Finish(s);
    return reactor;
  }

  grpc::ServerUnaryReactor* ListAgents(CallbackServerContext* ctx, const v1::ListAgentsRequest* req,
                                       v1::ListAgentsResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    Peer peer;
    grpc::Status s = auth_.Check(ctx, "admin", &peer);
    if (s.ok())
      for (v1::AgentInfo& info : hub_.List(req->name(), req->label()))
        *resp->add_agents() = std::move(info);
    reactor->Finish(s);
    return reactor;
  }

  grpc::ServerUnaryReactor* DeleteAgent(CallbackServerContext* ctx, const v1::AgentRef* req,
                                        v1::Empty*) override {
    auto* reactor = ctx->DefaultReactor();
    Peer peer;
    grpc::Status s = auth_.Check(ctx, "admin", &peer);
    if (s.ok()) s = FromStatus(hub_.Delete(req->name()), StatusCode::NOT_FOUND);
    if (s.ok()) Log("agent " + req->name() + " deleted; its certificate is revoked");
    reactor->Finish(s);
    return reactor;
  }

  grpc::ServerUnaryReactor* StopAgent(CallbackServerContext* ctx, const v1::AgentRef* req,
                                      v1::Empty*) override {
    auto* reactor = ctx->DefaultReactor();
    Peer peer;
    grpc::Status s = auth_.Check(ctx, "admin", &peer);
    if (s.ok()) s = FromStatus(hub_.Stop(req->name()), StatusCode::UNAVAILABLE);
    reactor->Finish(s);
    return reactor;
  }

  grpc::ServerWriteReactor<v1::JobEvent>* Run(CallbackServerContext* ctx,
                                              const v1::RunRequest* req) override {
    return new RunCall(hub_, auth_, ctx, req);
  }

  grpc::ServerBidiReactor<v1::ShellInput, v1::JobEvent>* Shell(
      CallbackServerContext* ctx) override {
    return new ShellCall(hub_, auth_, ctx);
  }

  grpc::ServerUnaryReactor* State(CallbackServerContext* ctx, const v1::StateCall* req,
                                  v1::StateReply* resp) override {
    return Store(ctx, *req, resp, [this](const std::string& method, const nlohmann::json& args) {
      return ServeStateCall(*state_, method, args);
    });
  }

  grpc::ServerUnaryReactor* Stack(CallbackServerContext* ctx, const v1::StateCall* req,
                                  v1::StateReply* resp) override {
    return Store(ctx, *req, resp, [this](const std::string& method, const nlohmann::json& args) {
      return ServeStackCall(*stacks_, method, args);
    });
  }

 private:
  // A State or Stack call: any role of the cluster; the stores' errors go in the reply.
  template <typename Serve>
  grpc::ServerUnaryReactor* Store(CallbackServerContext* ctx, const v1::StateCall& req,
                                  v1::StateReply* resp, Serve serve) {
    auto* reactor = ctx->DefaultReactor();
    Peer peer;
    grpc::Status s = auth_.Check(ctx, "", &peer);
    if (s.ok()) {
      nlohmann::json args = nlohmann::json::parse(req.args_json(), nullptr, false);
      std::lock_guard lock(store_mu_);
      Result<nlohmann::json> r = serve(req.method(), args);
      if (r.ok())
        resp->set_result_json(r->dump());
      else
        resp->set_error(r.error());
    }
    reactor->Finish(s);
    return reactor;
  }

  grpc::Status DoEnroll(CallbackServerContext* ctx, const v1::EnrollRequest& req,
                        v1::EnrollResponse* resp) {
    auto refuse = [&](const std::string& why) {
      return Authenticator::Refuse(ctx, StatusCode::PERMISSION_DENIED, why);
    };
    Result<pki::Token> token = pki::ParseToken(req.token());
    if (!token.ok()) return refuse(token.error());
    if (token->ca_hash != ca_hash_) return refuse("the join token is for another cluster");
    if (!ValidAgentName(req.name())) return refuse("invalid agent name \"" + req.name() + "\"");
    Result<std::string> cert = pki::SignCsr(ca_, req.csr_pem(), req.name(), "agent", 3650);
    if (!cert.ok()) return refuse(cert.error());
    Result<pki::CertInfo> info = pki::Inspect(*cert);
    if (!info.ok()) return grpc::Status(StatusCode::INTERNAL, info.error());
    if (Status s = hub_.Enroll(*token, req.name(), info->fingerprint); !s.ok())
      return refuse(s.message());
    Log("agent " + req.name() + " enrolled");
    resp->set_cert_pem(*cert);
    return grpc::Status::OK;
  }

  static bool ValidAgentName(const std::string& name) {
    if (name.empty() || name.size() > 63) return false;
    for (char c : name)
      if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
    return true;
  }

  Hub& hub_;
  Authenticator auth_;
  pki::KeyCert ca_;
  std::string ca_hash_;
  std::mutex store_mu_;  // one connection, calls from many gRPC threads
  std::unique_ptr<StateStore> state_;
  std::unique_ptr<StackStore> stacks_;
};

class Server final : public MasterServer {
 public:
  Server(std::shared_ptr<Db> db, HubOptions hub_options, pki::KeyCert ca,
         std::unique_ptr<StateStore> state, std::unique_ptr<StackStore> stacks)
      : hub_(std::move(db), std::move(hub_options)),
        service_(hub_, std::move(ca), std::move(state), std::move(stacks)) {}
  ~Server() override {
    if (server_) {
      Log("master stopping");
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    }
  }

  Status Start(const MasterStartOptions& options, std::shared_ptr<grpc::ServerCredentials> creds) {
    if (Status s = hub_.Load(); !s.ok()) return s;
    grpc::ServerBuilder builder;
    int port = 0;
    std::string address = options.bind + ":" + std::to_string(options.port);
    builder.AddListeningPort(address, creds, &port);
    builder.RegisterService(&service_);
    builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
    builder.SetMaxSendMessageSize(kMaxMessageBytes);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
    server_ = builder.BuildAndStart();
    if (!server_ || port == 0) return Status::Error("cannot listen on " + address);
    Log("listening on " + options.bind + ":" + std::to_string(port));
    return Status::Ok();
  }

 private:
  Hub hub_;
  MasterService service_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace

Result<std::unique_ptr<MasterServer>> StartMaster(const MasterStartOptions& options) {
  bool created = false;
  if (Status s = InitCluster(options.data_dir, &created); !s.ok()) return s;
  if (created) Log("created the cluster CA and certificates in " + ClusterDir(options.data_dir));
  Result<std::shared_ptr<Db>> db = OpenDatabase(DatabasePath(options.data_dir));
  if (!db.ok()) return db.status();
  Result<pki::KeyCert> ca = LoadCa(options.data_dir);
  if (!ca.ok()) return ca.status();
  Result<std::shared_ptr<grpc::ServerCredentials>> creds = MasterCredentials(options.data_dir);
  if (!creds.ok()) return creds.status();
  HubOptions hub_options;
  hub_options.emit = options.emit;
  auto state = SqliteStateStore::Open(DatabasePath(options.data_dir));
  if (!state.ok()) return state.status();
  // The stores of delegated tasks' state.* and stack.* calls: their own connection.
  auto store_db = OpenDatabase(DatabasePath(options.data_dir));
  if (!store_db.ok()) return store_db.status();
  auto stacks = std::make_unique<SqliteStackStore>(*store_db);
  auto server =
      std::make_unique<Server>(*db, hub_options, *ca, std::move(*state), std::move(stacks));
  if (Status s = server->Start(options, *creds); !s.ok()) return s;
  return std::unique_ptr<MasterServer>(std::move(server));
}

}  // namespace sloth
