#include "rpc/agent.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "base/strings.h"
#include "base/version.h"
#include "rpc/agent_jobs.h"
#include "rpc/credentials.h"
#include "rpc/facts.h"
#include "sloth/v1/agent.grpc.pb.h"

namespace fs = std::filesystem;

namespace sloth {
namespace {

namespace v1 = ::sloth::v1;
using Stream = grpc::ClientReaderWriter<v1::AgentMessage, v1::MasterMessage>;

constexpr auto kBackoffBase = std::chrono::seconds(5);
constexpr auto kBackoffCap = std::chrono::seconds(60);

void Log(const std::string& line) {
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

// "host:port" -> parts; IPv6 as "[::1]:50053".
bool SplitAddress(const std::string& address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  *host = address.substr(0, colon);
  if (host->size() > 2 && host->front() == '[') *host = host->substr(1, host->size() - 2);
  *port = std::atoi(address.c_str() + colon + 1);
  return *port > 0 && *port < 65536;
}

class Agent {
 public:
  Agent(const AgentStartOptions& o, Loop& loop, std::function<void()> on_stop)
      : o_(o), dir_(AgentDir(o.data_dir, o.name)), loop_(loop), on_stop_(std::move(on_stop)) {}
  ~Agent() {
    RequestStop(0);
    if (session_.joinable()) session_.join();
    if (lock_fd_ >= 0) close(lock_fd_);
  }

  // One process per identity: a second one would take the stream over from the first, and the
  // two would push each other out for ever. The lock is held while this agent lives.
  Status Lock() {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    lock_fd_ = open((dir_ + "/agent.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0 || flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
      return Status::Error("agent " + o_.name + " is running already (data dir " + o_.data_dir +
                           ")");
    return Status::Ok();
  }
  Status Enrol() {
    if (Status s = Lock(); !s.ok()) return s;
    return LoadOrEnroll();
  }

  // Starts the stream thread and the timers; the loop must run (RunAgent).
  void Start() {
    started_ = true;
    jobs_ = std::make_unique<JobRunner>(loop_, o_.name, o_.data_dir, o_.master,
                                        [this](const v1::AgentMessage& m) { return Send(m); });
    StartTimers();
    session_ = std::thread([this] { SessionLoop(); });
  }
  void Stop() { RequestStop(0); }
  bool stopped() const { return stopping_; }
  int exit_code() {
    std::lock_guard lock(mu_);
    return exit_code_;
  }

 private:
  // --- identity and enrolment
  Status LoadOrEnroll() {
    if (Result<AgentIdentity> id = LoadAgentIdentity(dir_); id.ok()) {
      id_ = *id;
      if (!o_.token.empty())
        Log("agent " + o_.name + " is enrolled already; the join token was not used");
      return Status::Ok();
    }
    if (o_.token.empty())
      return Status::Error("enrolment refused: no join token and no certificate in " + dir_ +
                           " (create a token on the master with `agent token create`)");
    return Enroll();
  }

  Status Enroll() {
    Result<pki::Token> token = pki::ParseToken(o_.token);
    if (!token.ok()) return Status::Error("enrolment refused: " + token.error());
    std::string host;
    int port = 0;
    if (!SplitAddress(o_.master, &host, &port))
      return Status::Error("bad master address \"" + o_.master + "\" (want HOST:PORT)");
    for (int attempt = 0;; ++attempt) {
      Status s = TryEnroll(*token, host, port);
      if (s.ok() || StartsWith(s.message(), "enrolment refused")) return s;
      auto delay = Backoff(attempt);
      Log("cannot enrol yet (" + s.message() + "); retrying in " + Seconds(delay));
      if (Sleep(delay)) return Status::Error("stopped before enrolment");
    }
  }

  Status TryEnroll(const pki::Token& token, const std::string& host, int port) {
    Result<std::vector<std::string>> chain =
        pki::FetchPeerChain(host, port, std::chrono::seconds(10));
    if (!chain.ok()) return Status::Error("master unreachable: " + chain.error());
    std::string ca;
    for (const std::string& pem : *chain) {
      Result<pki::CertInfo> info = pki::Inspect(pem);
      if (info.ok() && info->fingerprint == token.ca_hash) ca = pem;
    }
    if (ca.empty())
      return Status::Error(
          "enrolment refused: the master's CA does not match the join token's (wrong master?)");
    Result<pki::KeyCsr> csr = pki::CreateCsr(o_.name);
    if (!csr.ok()) return csr.status();
    auto stub = v1::Master::NewStub(MakeChannel(o_.master, TlsCredentials(ca, "", "")));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::EnrollRequest req;
    req.set_token(o_.token);
    req.set_name(o_.name);
    req.set_csr_pem(csr->csr_pem);
    v1::EnrollResponse resp;
    grpc::Status s = stub->Enroll(&ctx, req, &resp);
    if (s.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
        s.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
      return Status::Error("enrolment refused: " + s.error_message());
    if (!s.ok()) return Status::Error(s.error_message());
    for (auto [file, text, secret] :
         {std::tuple{"ca.crt", ca, false}, std::tuple{"agent.key", csr->key_pem, true},
          std::tuple{"agent.crt", resp.cert_pem(), false}}) {
      if (Status w = WriteTextFile(dir_ + "/" + file, text, secret); !w.ok()) return w;
    }
    id_ = {ca, csr->key_pem, resp.cert_pem()};
    Log("agent " + o_.name + " enrolled with " + o_.master);
    return Status::Ok();
  }

  // --- the stream
  enum class End { kLost, kLostAfterWelcome, kRefused, kStopped };

  void SessionLoop() {
    auto creds = TlsCredentials(id_.ca_pem, id_.key_pem, id_.cert_pem);
    for (int attempt = 0; !stopping_;) {
      // A fresh channel per attempt: a reused one may still hold the last failure and fail at
      // once although the master is back.
      auto stub = v1::Master::NewStub(MakeChannel(o_.master, creds));
      std::string why;
      End end = Session(*stub, &why);
      if (end == End::kRefused) {
        std::fprintf(stderr, "error: enrolment refused: %s\n", why.c_str());
        return RequestStop(1);
      }
      if (end == End::kStopped || stopping_) return RequestStop(0);
      if (end == End::kLostAfterWelcome) attempt = 0;
      auto delay = Backoff(attempt++);
      Log("master " + o_.master + " unreachable (" + why + "); retrying in " + Seconds(delay));
      if (Sleep(delay)) return;
    }
  }

  End Session(v1::Master::Stub& stub, std::string* why) {
    grpc::ClientContext ctx;
    std::unique_ptr<Stream> stream = stub.Connect(&ctx);
    {
      std::lock_guard lock(mu_);
      ctx_ = &ctx;
      if (stopping_) ctx.TryCancel();
    }
    End end = Converse(*stream);
    {
      std::lock_guard lock(mu_);
      stream_ = nullptr;
      ctx_ = nullptr;
    }
    stream->WritesDone();
    grpc::Status s = stream->Finish();
    *why = s.ok() ? "stream closed" : s.error_message();
    if (end == End::kStopped) return end;
    if (s.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
        s.error_code() == grpc::StatusCode::UNAUTHENTICATED)
      return End::kRefused;
    return end;
  }

  End Converse(Stream& stream) {
    v1::AgentMessage hello;
    v1::Hello* h = hello.mutable_hello();
    h->set_name(o_.name);
    h->set_version(kVersion);
    h->set_facts_json(CollectFacts());
    h->set_heartbeat_ms(
        std::chrono::duration_cast<std::chrono::milliseconds>(o_.heartbeat).count());
    for (const std::string& label : o_.labels) {
      size_t eq = label.find('=');
      (*h->mutable_labels())[label.substr(0, eq)] =
          eq == std::string::npos ? "" : label.substr(eq + 1);
    }
    if (jobs_)
      for (const std::string& id : jobs_->Running()) h->add_running_jobs(id);
    if (!stream.Write(hello)) return End::kLost;
    v1::MasterMessage in;
    if (!stream.Read(&in) || !in.has_welcome()) return End::kLost;
    {
      std::lock_guard lock(mu_);
      stream_ = &stream;
    }
    Log("agent " + o_.name + " connected to master " + o_.master);
    loop_.Post([this] {
      if (jobs_) jobs_->ResendOutbox();
      SendReport();  // metrics from the start, not only after the first interval
    });
    while (stream.Read(&in)) {
      switch (in.kind_case()) {
        case v1::MasterMessage::kJob:
          loop_.Post([this, job = in.job()] {
            if (jobs_) jobs_->Start(job);
          });
          break;
        case v1::MasterMessage::kCancel:
          loop_.Post([this, c = in.cancel()] {
            if (jobs_) jobs_->Cancel(c.job_id(), c.reason());
          });
          break;
        case v1::MasterMessage::kInput:
          loop_.Post([this, input = in.input()] {
            if (jobs_) jobs_->Input(input);
          });
          break;
        case v1::MasterMessage::kAck:
          loop_.Post([this, id = in.ack().job_id()] {
            if (jobs_) jobs_->Acked(id);
          });
          break;
        case v1::MasterMessage::kStop:
          Log("agent " + o_.name + " stopped by the master: " + in.stop().reason());
          return End::kStopped;
        default:
          break;
      }
    }
    return End::kLostAfterWelcome;
  }

  bool Send(const v1::AgentMessage& message) {
    std::lock_guard lock(mu_);
    if (!stream_) return false;
    return stream_->Write(message);
  }

  // Heartbeats, and facts + metrics every report interval, from the loop.
  void StartTimers() {
    loop_.AfterInBackground(o_.heartbeat, [this] { Beat(); });
    loop_.AfterInBackground(o_.report_every, [this] { ReportNow(); });
  }
  void Beat() {
    v1::AgentMessage m;
    m.mutable_heartbeat()->set_unix_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
    Send(m);
    loop_.AfterInBackground(o_.heartbeat, [this] { Beat(); });
  }
  void ReportNow() {
    SendReport();
    loop_.AfterInBackground(o_.report_every, [this] { ReportNow(); });
  }
  void SendReport() {
    v1::AgentMessage m;
    m.mutable_report()->set_facts_json(CollectFacts());
    m.mutable_report()->set_metrics_json(metrics_.Sample());
    Send(m);
  }

  // --- stopping and waiting
  void RequestStop(int code) {
    {
      std::lock_guard lock(mu_);
      if (!stopping_) exit_code_ = code;
      stopping_ = true;
      if (ctx_) ctx_->TryCancel();
    }
    wake_.notify_all();
    loop_.Post(on_stop_);  // on the loop: it checks who is still running
  }

  // Sleeps; true when asked to stop meanwhile. Before the loop runs (enrolment), a SIGINT or
  // SIGTERM is taken here (every thread blocks them; the loop reads them later).
  bool Sleep(std::chrono::milliseconds delay) {
    if (!started_) {
      sigset_t stop;
      sigemptyset(&stop);
      sigaddset(&stop, SIGINT);
      sigaddset(&stop, SIGTERM);
      timespec ts{static_cast<time_t>(delay.count() / 1000),
                  static_cast<long>(delay.count() % 1000) * 1000000};
      return sigtimedwait(&stop, nullptr, &ts) > 0;
    }
    std::unique_lock lock(mu_);
    return wake_.wait_for(lock, delay, [this] { return stopping_.load(); });
  }

  std::chrono::milliseconds Backoff(int attempt) {
    auto cap = std::min<std::chrono::milliseconds>(kBackoffCap,
                                                   kBackoffBase * (1 << std::min(attempt, 4)));
    std::uniform_int_distribution<int64_t> pick(0, cap.count());
    std::lock_guard lock(mu_);
    return std::chrono::milliseconds(pick(rng_));
  }

  static std::string Seconds(std::chrono::milliseconds d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f s", d.count() / 1000.0);
    return buf;
  }

  AgentStartOptions o_;
  std::string dir_;
  AgentIdentity id_;
  Loop& loop_;
  std::function<void()> on_stop_;
  std::unique_ptr<JobRunner> jobs_;
  std::thread session_;
  MetricsSampler metrics_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;  // Start() ran: the loop handles signals
  int lock_fd_ = -1;
  int exit_code_ = 0;
  grpc::ClientContext* ctx_ = nullptr;
  Stream* stream_ = nullptr;
  std::mt19937_64 rng_{std::random_device{}()};
};

// --simulate N: the tokens for NAME-1..NAME-N, one per line of the --token file (a name that is
// enrolled already needs none).
Result<std::vector<AgentStartOptions>> Expand(const AgentStartOptions& options) {
  if (options.simulate <= 0) return std::vector<AgentStartOptions>{options};
  std::vector<std::string> tokens;
  if (!options.token.empty()) {
    Result<std::string> text = ReadTextFile(options.token);
    if (!text.ok())
      return Status::Error("--simulate reads its join tokens from the --token file: " +
                           text.error());
    for (std::string_view line : Split(*text, '\n'))
      if (!Trim(line).empty()) tokens.emplace_back(Trim(line));
  }
  std::vector<AgentStartOptions> out;
  for (int i = 1; i <= options.simulate; ++i) {
    AgentStartOptions o = options;
    o.name = options.name + "-" + std::to_string(i);
    o.token = static_cast<size_t>(i) <= tokens.size() ? tokens[i - 1] : "";
    o.simulate = 0;
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace

int RunAgent(const AgentStartOptions& options) {
  if (options.name.empty()) {
    std::fprintf(stderr, "error: agent start needs --name\n");
    return 2;
  }
  if (options.master.empty()) {
    std::fprintf(stderr, "error: agent start needs --master HOST:PORT\n");
    return 2;
  }
  Result<std::vector<AgentStartOptions>> each = Expand(options);
  if (!each.ok()) {
    std::fprintf(stderr, "error: %s\n", each.error().c_str());
    return 2;
  }
  Loop loop;
  std::vector<std::unique_ptr<Agent>> agents;
  bool all_stopped = false;
  auto check = [&] {
    all_stopped = true;
    for (auto& a : agents) all_stopped = all_stopped && a->stopped();
    // One refused identity stops a simulation: its numbers would be wrong.
    for (auto& a : agents)
      if (a->stopped() && a->exit_code() != 0)
        for (auto& other : agents) other->Stop();
  };
  for (const AgentStartOptions& o : *each) {
    agents.push_back(std::make_unique<Agent>(o, loop, check));
    if (Status s = agents.back()->Enrol(); !s.ok()) {
      std::fprintf(stderr, "error: %s\n", s.message().c_str());
      return 1;
    }
  }
  loop.OnSignal(SIGINT, [&] {
    for (auto& a : agents) a->Stop();
  });
  loop.OnSignal(SIGTERM, [&] {
    for (auto& a : agents) a->Stop();
  });
  for (auto& a : agents) a->Start();
  loop.Ref();  // run until every agent stopped, whatever else there is to wait for
  loop.RunUntil([&] { return all_stopped; });
  int code = 0;
  for (auto& a : agents) code = std::max(code, a->exit_code());
  agents.clear();  // joins their stream threads
  return code;
}

}  // namespace sloth
