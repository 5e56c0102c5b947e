// The Delegator a run uses: one Run call per agent through the master, on its own thread;
// logs and the combined result are posted back to the run's loop.
#include <grpcpp/grpcpp.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_set>

#include "rpc/client.h"
#include "rpc/credentials.h"
#include "sloth/v1/agent.grpc.pb.h"

namespace sloth {
namespace {

namespace v1 = ::sloth::v1;
using nlohmann::json;

constexpr auto kReattachFor = std::chrono::seconds(15);  // 3 heartbeats

AttemptResult Failed(std::string message) {
  AttemptResult r;
  r.outcome = AttemptResult::Outcome::kFailed;
  r.message = std::move(message);
  return r;
}

// A task's result on one agent: the agent's answer, or why there is none.
AttemptResult FromJobResult(const v1::JobResult& r) {
  if (r.result_json().empty())
    return Failed(r.error().empty() ? "the agent returned no result" : r.error());
  Result<AttemptResult> parsed = ParseAgentResult(r.result_json());
  if (!parsed.ok()) return Failed(parsed.error());
  if (!r.error().empty()) {  // stopped (timeout, cancellation) after it answered
    parsed->outcome = AttemptResult::Outcome::kFailed;
    parsed->message = r.error();
  }
  return *parsed;
}

class RemoteDelegator final : public Delegator {
 public:
  RemoteDelegator(Loop& loop, std::shared_ptr<grpc::Channel> channel)
      : loop_(loop), stub_(v1::Master::NewStub(channel)) {}

  ~RemoteDelegator() override {
    {
      std::lock_guard lock(mu_);
      for (auto& [task, ctxs] : contexts_)
        for (grpc::ClientContext* c : ctxs) c->TryCancel();
    }
    for (std::thread& t : threads_) t.join();
  }

  void Run(const DelegateCall& call, LogFn log, std::function<void(AttemptResult)> done) override {
    loop_.Ref();
    {
      std::lock_guard lock(mu_);
      cancelled_.erase(call.task);
    }
    threads_.emplace_back([this, call, log, done] {
      AttemptResult result = RunAll(call, log);
      loop_.Post([this, done, result] {
        loop_.Unref();
        done(result);
      });
    });
  }

  void Cancel(const std::string& task, const std::string& reason) override {
    std::lock_guard lock(mu_);
    cancelled_.insert(task);
    for (grpc::ClientContext* c : contexts_[task]) c->TryCancel();
  }

 private:
  AttemptResult RunAll(const DelegateCall& call, const LogFn& log) {
    std::vector<std::string> agents = call.agents;
    if (!call.label.empty()) {
      Status s = AgentsWithLabel(call.label, &agents);
      if (!s.ok()) return Failed(s.message());
      if (agents.empty()) return Failed("no active agent has the label " + call.label);
    }
    json bundle = json::parse(call.bundle_json, nullptr, false);
    std::string base = bundle.is_object()
                           ? bundle.value("run_id", std::string()) + "/" + call.task + "/" +
                                 std::to_string(bundle.value("attempt", 1))
                           : call.task;
    std::vector<std::pair<std::string, AttemptResult>> results(agents.size());
    std::vector<char> reached(agents.size(), 0);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < agents.size(); ++i)
      threads.emplace_back([&, i] {
        bool ok = false;
        results[i] = {agents[i], RunOne(call, agents[i], base + "/" + agents[i], log, &ok)};
        reached[i] = ok;
      });
    for (std::thread& t : threads) t.join();
    AttemptResult r =
        call.keyed || results.size() != 1 ? MergeAgentResults(results) : results[0].second;
    for (size_t i = 0; i < agents.size(); ++i)
      if (reached[i]) r.agents.push_back(agents[i]);  // none: the task ran nowhere
    return r;
  }

  Status AgentsWithLabel(const std::string& label, std::vector<std::string>* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListAgentsRequest req;
    req.set_label(label);
    v1::ListAgentsResponse resp;
    grpc::Status s = stub_->ListAgents(&ctx, req, &resp);
    if (!s.ok()) return Status::Error("cannot list agents: " + s.error_message());
    for (const auto& a : resp.agents())
      if (a.active()) out->push_back(a.name());
    return Status::Ok();
  }

  // Runs on one agent; if the master goes away mid-task, calls again with the same job id
  // (the master re-attaches or hands over the result the agent delivered meanwhile).
  // `reached`: the agent took the job (the master answered with its result).
  AttemptResult RunOne(const DelegateCall& call, const std::string& agent, const std::string& id,
                       const LogFn& log, bool* reached) {
    auto give_up_at = std::chrono::steady_clock::time_point::max();
    // How long to keep calling while the master is unreachable; the master's own wait for a
    // lost agent is 3 of its heartbeats, or the task's timeout if shorter (grace_ms).
    auto grace = call.timeout && *call.timeout < kReattachFor
                     ? std::chrono::duration_cast<std::chrono::milliseconds>(*call.timeout)
                     : std::chrono::milliseconds(kReattachFor);
    int64_t master_grace_ms =
        call.timeout ? std::chrono::duration_cast<std::chrono::milliseconds>(*call.timeout).count()
                     : 0;
    for (;;) {
      grpc::ClientContext ctx;
      Track(call.task, &ctx, true);
      v1::RunRequest req;
      req.set_agent(agent);
      req.mutable_job()->set_id(id);
      req.mutable_job()->set_bundle_json(call.bundle_json);
      if (call.timeout)
        req.mutable_job()->set_timeout_ms(
            std::chrono::duration_cast<std::chrono::milliseconds>(*call.timeout).count());
      req.set_grace_ms(master_grace_ms);
      auto reader = stub_->Run(&ctx, req);
      v1::JobEvent event;
      std::optional<v1::JobResult> result;
      std::string partial;
      while (reader->Read(&event)) {
        if (event.has_result()) {
          result = event.result();
          continue;
        }
        partial += event.output().data();
        for (size_t nl; (nl = partial.find('\n')) != std::string::npos;) {
          std::string line = partial.substr(0, nl);
          partial.erase(0, nl + 1);
          loop_.Post([log, agent, line] { log(agent, line); });
        }
      }
      grpc::Status s = reader->Finish();
      bool cancelled = Track(call.task, &ctx, false);
      *reached = result.has_value();
      if (result) return FromJobResult(*result);
      if (cancelled || s.error_code() != grpc::StatusCode::UNAVAILABLE)
        return Failed(s.error_message());
      // The master is unreachable (or the agent is not back yet): try again for a while.
      auto now = std::chrono::steady_clock::now();
      bool first = give_up_at == std::chrono::steady_clock::time_point::max();
      if (first && s.error_message().find("is inactive") != std::string::npos)
        return Failed(s.error_message());  // inactive when we asked: fail at once
      if (first) give_up_at = now + grace;
      if (now >= give_up_at) return Failed("agent lost: " + s.error_message());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }

  // Registers (add) or removes a call's context; on removal, tells whether it was cancelled.
  bool Track(const std::string& task, grpc::ClientContext* ctx, bool add) {
    std::lock_guard lock(mu_);
    auto& list = contexts_[task];
    if (add) {
      list.push_back(ctx);
      if (cancelled_.count(task)) ctx->TryCancel();  // cancelled between two calls
      return false;
    }
    std::erase(list, ctx);
    return cancelled_.count(task) > 0;
  }

  Loop& loop_;
  std::unique_ptr<v1::Master::Stub> stub_;
  std::mutex mu_;
  std::unordered_map<std::string, std::vector<grpc::ClientContext*>> contexts_;
  std::unordered_set<std::string> cancelled_;  // tasks whose calls were cancelled
  std::vector<std::thread> threads_;
};

}  // namespace

Result<std::unique_ptr<Delegator>> MakeRemoteDelegator(Loop& loop, const std::string& data_dir,
                                                       const std::string& master) {
  Result<std::shared_ptr<grpc::Channel>> channel = AdminChannel(data_dir, master);
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<Delegator>(new RemoteDelegator(loop, *channel));
}

}  // namespace sloth
