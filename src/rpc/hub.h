// The master's shared state: which agents are connected, the jobs in flight, and the results
// waiting for a runner that lost its connection. One mutex; reactors call in from gRPC threads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "rpc/agent_registry.h"
#include "rpc/pki.h"
#include "sloth/v1/agent.grpc.pb.h"

namespace sloth {

namespace v1 = ::sloth::v1;
using SteadyClock = std::chrono::steady_clock;

// Where a job's output and result go: the admin's Run call.
class JobWaiter {
 public:
  virtual ~JobWaiter() = default;
  virtual void Output(const v1::JobOutput& output) = 0;
  virtual void Result(const v1::JobResult& result) = 0;  // the last call
};

// One agent's stream, as the hub sees it.
class AgentLink {
 public:
  virtual ~AgentLink() = default;
  virtual void Send(const v1::MasterMessage& message) = 0;
  virtual void Close(const grpc::Status& status) = 0;
};

struct HubOptions {
  double admissions_per_second = 200;  // reconnect storms are paced to this
  // agent.* events (type, data JSON); thread-safe. May be empty.
  std::function<void(const std::string& type, const std::string& data_json)> emit;
};

class Hub {
 public:
  Hub(std::shared_ptr<Db> db, HubOptions options);
  ~Hub();

  Status Load();  // revoked fingerprints
  bool IsRevoked(const std::string& fingerprint);

  Result<std::string> CreateToken(const std::string& ca_hash, std::chrono::milliseconds ttl,
                                  int64_t* expires_ms);
  Status Enroll(const pki::Token& token, const std::string& name, const std::string& fingerprint);

  // A stream said Hello. Fails (with the status to finish it with) when the agent is unknown
  // or the master is pacing admissions.
  grpc::Status Register(AgentLink* link, const v1::Hello& hello, const std::string& peer_address);
  void Unregister(AgentLink* link, const std::string& name);
  void Heartbeat(const std::string& name);
  void Report(const std::string& name, const v1::Report& report);
  void Output(const std::string& agent, const v1::JobOutput& output);
  void Finished(const std::string& agent, const v1::JobResult& result);

  std::vector<v1::AgentInfo> List(const std::string& name, const std::string& label);
  Status Delete(const std::string& name);
  Status Stop(const std::string& name);

  // Starts (or re-attaches to) a job on an agent. Errors: NOT_FOUND, UNAVAILABLE.
  grpc::Status StartJob(const v1::RunRequest& request, JobWaiter* waiter, std::string* job_id);
  // Keystrokes or a window size for a shell job the waiter started.
  void Input(const std::string& job_id, JobWaiter* waiter, const v1::Input& input);
  // The waiter is going away; `cancel`: also ask the agent to stop the job.
  void Detach(const std::string& job_id, JobWaiter* waiter, bool cancel);

 private:
  struct Live {
    AgentLink* link = nullptr;
    AgentRecord record;
    SteadyClock::time_point last_heartbeat;
    int64_t connected_ms = 0;
    std::chrono::milliseconds heartbeat{5000};  // the interval the agent announced
    bool dirty = false;
  };
  struct Job {
    std::string agent;
    JobWaiter* waiter = nullptr;
    std::chrono::milliseconds grace{0};
    std::optional<SteadyClock::time_point> lost_at;  // the agent's stream dropped
  };
  void Sweep();
  void SweepLoop();
  void Emit(const std::string& type, const AgentRecord& record);
  void FlushLocked();
  bool Admit();

  std::shared_ptr<Db> db_;
  AgentRegistry registry_;
  HubOptions options_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::unordered_set<std::string> revoked_;
  std::unordered_map<std::string, Live> live_;
  std::unordered_map<std::string, Job> jobs_;
  // Results that came with nobody waiting (runner gone, master restarted): kept 10 minutes.
  std::unordered_map<std::string, std::pair<v1::JobResult, SteadyClock::time_point>> done_;
  double admit_tokens_ = 0;
  SteadyClock::time_point admit_refill_ = SteadyClock::now();
  SteadyClock::time_point last_flush_ = SteadyClock::now();
  std::thread sweeper_;
};

}  // namespace sloth
