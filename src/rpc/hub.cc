#include "rpc/hub.h"

#include <nlohmann/json.hpp>

#include "base/ids.h"
#include "core/state_store.h"

namespace sloth {
namespace {

constexpr auto kKeepResults = std::chrono::minutes(10);
constexpr auto kFlushEvery = std::chrono::seconds(5);

nlohmann::json LabelsJson(const v1::Hello& hello) {
  nlohmann::json labels = nlohmann::json::object();
  for (const auto& [k, v] : hello.labels()) labels[k] = v;
  return labels;
}

bool HasLabel(const std::string& labels_json, const std::string& label) {
  size_t eq = label.find('=');
  if (eq == std::string::npos) return false;
  nlohmann::json labels = nlohmann::json::parse(labels_json, nullptr, false);
  std::string key = label.substr(0, eq);
  return labels.is_object() && labels.contains(key) && labels[key].is_string() &&
         labels[key] == label.substr(eq + 1);
}

}  // namespace

// agent.* events carry data.agent = {name, address, version, labels} (events-and-scheduler.md).
void Hub::Emit(const std::string& type, const AgentRecord& r) {
  if (!options_.emit) return;
  nlohmann::json labels = nlohmann::json::parse(r.labels_json, nullptr, false);
  if (!labels.is_object()) labels = nlohmann::json::object();
  nlohmann::json data = {
      {"agent",
       {{"name", r.name}, {"address", r.address}, {"version", r.version}, {"labels", labels}}}};
  options_.emit(type, data.dump());
}

Hub::Hub(std::shared_ptr<Db> db, HubOptions options)
    : db_(db), registry_(db), options_(options), admit_tokens_(options.admissions_per_second) {
  sweeper_ = std::thread([this] { SweepLoop(); });
}

Hub::~Hub() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    FlushLocked();
  }
  wake_.notify_all();
  sweeper_.join();
}

Status Hub::Load() {
  std::lock_guard lock(mu_);
  Result<std::unordered_set<std::string>> revoked = registry_.RevokedFingerprints();
  if (!revoked.ok()) return revoked.status();
  revoked_ = std::move(*revoked);
  return Status::Ok();
}

bool Hub::IsRevoked(const std::string& fingerprint) {
  std::lock_guard lock(mu_);
  return revoked_.count(fingerprint) > 0;
}

Result<std::string> Hub::CreateToken(const std::string& ca_hash, std::chrono::milliseconds ttl,
                                     int64_t* expires_ms) {
  pki::Token parts;
  std::string text = pki::NewTokenText(ca_hash, &parts);
  *expires_ms = NowUnixMs() + ttl.count();
  std::lock_guard lock(mu_);
  if (Status s = registry_.AddToken(parts.id, parts.secret, *expires_ms); !s.ok()) return s;
  return text;
}

Status Hub::Enroll(const pki::Token& token, const std::string& name,
                   const std::string& fingerprint) {
  std::lock_guard lock(mu_);
  Status s = registry_.Enroll(token.id, token.secret, name, fingerprint);
  if (s.ok()) {
    AgentRecord record;
    record.name = name;
    Emit("agent.registered", record);
  }
  return s;
}

bool Hub::Admit() {
  auto now = SteadyClock::now();
  double rate = options_.admissions_per_second;
  admit_tokens_ = std::min(
      rate, admit_tokens_ + rate * std::chrono::duration<double>(now - admit_refill_).count());
  admit_refill_ = now;
  if (admit_tokens_ < 1) return false;
  admit_tokens_ -= 1;
  return true;
}

grpc::Status Hub::Register(AgentLink* link, const v1::Hello& hello,
                           const std::string& peer_address) {
  std::lock_guard lock(mu_);
  Result<AgentRecord> record = registry_.Get(hello.name());
  if (!record.ok())
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "agent " + hello.name() + " is not enrolled (deleted?)");
  if (!Admit())
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "the master is admitting other agents: retry later");
  Live& live = live_[hello.name()];
  if (live.link && live.link != link)
    live.link->Close(grpc::Status(grpc::StatusCode::ABORTED, "replaced by a newer connection"));
  live.link = link;
  live.record = *record;
  live.record.address = peer_address;
  live.record.version = hello.version();
  live.record.labels_json = LabelsJson(hello).dump();
  if (!hello.facts_json().empty()) live.record.facts_json = hello.facts_json();
  live.record.last_heartbeat_ms = NowUnixMs();
  live.last_heartbeat = SteadyClock::now();
  live.connected_ms = NowUnixMs();
  if (hello.heartbeat_ms() > 0) live.heartbeat = std::chrono::milliseconds(hello.heartbeat_ms());
  live.dirty = true;
  // Jobs still running on the agent are its again; the others may yet come from its outbox.
  for (const std::string& id : hello.running_jobs()) {
    auto job = jobs_.find(id);
    if (job != jobs_.end() && job->second.agent == hello.name()) job->second.lost_at.reset();
  }
  Emit("agent.connected", live.record);
  return grpc::Status::OK;
}

void Hub::Unregister(AgentLink* link, const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = live_.find(name);
  if (it == live_.end() || it->second.link != link) return;
  it->second.link = nullptr;
  it->second.dirty = true;
  for (auto& [id, job] : jobs_)
    if (job.agent == name && !job.lost_at) job.lost_at = SteadyClock::now();
  Emit("agent.disconnected", it->second.record);
}

void Hub::Heartbeat(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = live_.find(name);
  if (it == live_.end()) return;
  it->second.last_heartbeat = SteadyClock::now();
  it->second.record.last_heartbeat_ms = NowUnixMs();
  it->second.dirty = true;
}

void Hub::Report(const std::string& name, const v1::Report& report) {
  std::lock_guard lock(mu_);
  auto it = live_.find(name);
  if (it == live_.end()) return;
  if (!report.facts_json().empty()) it->second.record.facts_json = report.facts_json();
  if (!report.metrics_json().empty()) it->second.record.metrics_json = report.metrics_json();
  it->second.dirty = true;
}

void Hub::Output(const std::string& agent, const v1::JobOutput& output) {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(output.job_id());
  if (it == jobs_.end() || it->second.agent != agent || !it->second.waiter) return;
  it->second.waiter->Output(output);
}

void Hub::Finished(const std::string& agent, const v1::JobResult& result) {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(result.job_id());
  if (it != jobs_.end() && it->second.agent != agent) return;  // not its job: ignore
  if (it != jobs_.end() && it->second.waiter) {
    it->second.waiter->Result(result);
  } else if (!done_.count(result.job_id())) {
    done_[result.job_id()] = {result, SteadyClock::now()};
  }
  if (it != jobs_.end()) jobs_.erase(it);
  auto live = live_.find(agent);
  if (live != live_.end() && live->second.link) {
    v1::MasterMessage ack;
    ack.mutable_ack()->set_job_id(result.job_id());
    live->second.link->Send(ack);
  }
}

std::vector<v1::AgentInfo> Hub::List(const std::string& name, const std::string& label) {
  std::lock_guard lock(mu_);
  std::vector<v1::AgentInfo> out;
  Result<std::vector<AgentRecord>> records = registry_.List();
  if (!records.ok()) return out;
  for (AgentRecord& r : *records) {
    if (!name.empty() && r.name != name) continue;
    auto live = live_.find(r.name);
    bool active = live != live_.end() && live->second.link;
    if (live != live_.end()) r = live->second.record;  // fresher than the database
    if (!label.empty() && !HasLabel(r.labels_json, label)) continue;
    v1::AgentInfo info;
    info.set_name(r.name);
    info.set_address(r.address);
    info.set_active(active);
    info.set_last_heartbeat_unix_ms(r.last_heartbeat_ms);
    info.set_version(r.version);
    nlohmann::json labels = nlohmann::json::parse(r.labels_json, nullptr, false);
    if (labels.is_object())
      for (auto& [k, v] : labels.items())
        if (v.is_string()) (*info.mutable_labels())[k] = v.get<std::string>();
    info.set_facts_json(r.facts_json);
    info.set_metrics_json(r.metrics_json);
    info.set_enrolled_unix_ms(r.enrolled_at_ms);
    if (active) info.set_connected_unix_ms(live->second.connected_ms);
    out.push_back(std::move(info));
  }
  return out;
}

Status Hub::Delete(const std::string& name) {
  std::lock_guard lock(mu_);
  Result<AgentRecord> record = registry_.Get(name);
  if (!record.ok()) return Status::Error("agent " + name + " not found");
  if (Status s = registry_.Delete(name); !s.ok()) return s;
  revoked_.insert(record->fingerprint);
  auto live = live_.find(name);
  if (live != live_.end()) {
    if (live->second.link)
      live->second.link->Close(
          grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "certificate revoked"));
    live_.erase(live);
  }
  return Status::Ok();
}

Status Hub::Stop(const std::string& name) {
  std::lock_guard lock(mu_);
  auto live = live_.find(name);
  if (live == live_.end() || !live->second.link)
    return Status::Error("agent " + name + " is inactive");
  v1::MasterMessage stop;
  stop.mutable_stop()->set_reason("agent stop");
  live->second.link->Send(stop);
  return Status::Ok();
}

grpc::Status Hub::StartJob(const v1::RunRequest& request, JobWaiter* waiter, std::string* job_id) {
  std::lock_guard lock(mu_);
  const std::string& agent = request.agent();
  v1::Job job = request.job();
  if (job.id().empty()) job.set_id(NewUuidV7(NowUnixMs()));
  *job_id = job.id();
  auto done = done_.find(job.id());
  if (done != done_.end()) {  // finished while the runner was away
    waiter->Result(done->second.first);
    done_.erase(done);
    return grpc::Status::OK;
  }
  auto running = jobs_.find(job.id());
  if (running != jobs_.end() && running->second.agent == agent) {
    running->second.waiter = waiter;  // the runner re-attaches
    return grpc::Status::OK;
  }
  auto live = live_.find(agent);
  if (live == live_.end() || !live->second.link) {
    if (!registry_.Get(agent).ok())
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "agent " + agent + " not found");
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "agent " + agent + " is inactive");
  }
  Job& entry = jobs_[job.id()];
  entry.agent = agent;
  entry.waiter = waiter;
  // A lost agent gets 3 heartbeats to come back, or the caller's grace if that is shorter.
  auto grace = std::chrono::milliseconds(request.grace_ms());
  entry.grace = 3 * live->second.heartbeat;
  if (grace.count() > 0 && grace < entry.grace) entry.grace = grace;
  v1::MasterMessage message;
  *message.mutable_job() = job;
  live->second.link->Send(message);
  return grpc::Status::OK;
}

void Hub::Input(const std::string& job_id, JobWaiter* waiter, const v1::Input& input) {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.waiter != waiter) return;
  auto live = live_.find(it->second.agent);
  if (live == live_.end() || !live->second.link) return;
  v1::MasterMessage message;
  *message.mutable_input() = input;
  live->second.link->Send(message);
}

void Hub::Detach(const std::string& job_id, JobWaiter* waiter, bool cancel) {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.waiter != waiter) return;
  it->second.waiter = nullptr;
  if (!cancel) return;
  auto live = live_.find(it->second.agent);
  if (live != live_.end() && live->second.link) {
    v1::MasterMessage message;
    message.mutable_cancel()->set_job_id(job_id);
    message.mutable_cancel()->set_reason("cancelled by the caller");
    live->second.link->Send(message);
  }
}

void Hub::SweepLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    wake_.wait_for(lock, std::chrono::milliseconds(200));
    if (stopping_) break;
    auto now = SteadyClock::now();
    for (auto& [name, live] : live_) {
      if (live.link && now - live.last_heartbeat > 3 * live.heartbeat) {
        live.link->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "missed 3 heartbeats"));
        live.link = nullptr;
        Emit("agent.heartbeat_failed", live.record);
        Emit("agent.disconnected", live.record);
        live.dirty = true;
        for (auto& [id, job] : jobs_)
          if (job.agent == name && !job.lost_at) job.lost_at = now;
      }
    }
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      Job& job = it->second;
      if (!job.lost_at || now - *job.lost_at < job.grace) {
        ++it;
        continue;
      }
      if (job.waiter) {
        v1::JobResult lost;
        lost.set_job_id(it->first);
        lost.set_exit_code(-1);
        lost.set_error("agent lost: " + job.agent + " went away and did not come back");
        job.waiter->Result(lost);
      }
      it = jobs_.erase(it);
    }
    for (auto it = done_.begin(); it != done_.end();)
      it = now - it->second.second > kKeepResults ? done_.erase(it) : std::next(it);
    if (now - last_flush_ > kFlushEvery) FlushLocked();
  }
}

void Hub::FlushLocked() {
  last_flush_ = SteadyClock::now();
  std::vector<AgentRecord*> dirty;
  for (auto& [name, live] : live_)
    if (live.dirty) dirty.push_back(&live.record);
  if (dirty.empty()) return;
  Status s = db_->Transaction([&]() -> Status {
    for (AgentRecord* r : dirty)
      if (Status u = registry_.UpdateSeen(*r); !u.ok()) return u;
    return Status::Ok();
  });
  if (s.ok())
    for (auto& [name, live] : live_) live.dirty = false;
  else
    fprintf(stderr, "master: cannot save agent state: %s\n", s.message().c_str());
}

}  // namespace sloth
