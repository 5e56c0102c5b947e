// The CLI's side of events: opening the bus of a command, the events a run emits
// (workflow.*, task.*, stack.*), and event.dispatch for the `event` module.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/executor.h"
#include "core/plan.h"
#include "events/bus.h"
#include "lua/runtime.h"

namespace sloth {

// This binary's path, for the child processes it starts of itself.
std::string SelfExecutable();

// How deep the events of this process are: 0, or one more than the event a hook handles
// ($SLOTH_EVENT_DEPTH, set for hooks and what they start).
int EventDepth();
constexpr char kEventDepthVariable[] = "SLOTH_EVENT_DEPTH";

// A bus on the data directory whose hooks run as `sloth-runner hook exec NAME`.
// `db`: the command's connection to the data dir's database, if it has one (saves an open).
Result<std::unique_ptr<EventBus>> OpenEventBus(Loop& loop, const std::string& data_dir,
                                               bool take_orphans = false,
                                               std::shared_ptr<Db> db = nullptr);

// The store of events and hooks for commands that read or change them; events of dead
// processes still in their journals are moved into the database first, so lists are complete.
Result<std::unique_ptr<EventStore>> OpenEventStore(const std::string& data_dir);

// Every string in `value` with secrets redacted.
nlohmann::json RedactJson(nlohmann::json value, const Runtime& rt);

// Emits one event of the runtime (source "runtime"); a failure is printed as a warning: an
// event that cannot be stored must not change the run's result. No bus: nothing (check runs).
void EmitEvent(EventBus* bus, const std::string& type, const nlohmann::json& data,
               const std::string& stack, const std::string& run_id,
               const std::string& source = "runtime");

// Makes event.dispatch store events on `bus` (stack and run from the runtime's run scope).
void ConnectEventModule(Runtime& rt, EventBus& bus, const std::string& source_prefix);

// A Progress in the chain of a run that emits task.started/completed/failed/retrying/timeout/
// skipped with data.task = {task_name, workflow_name, stack, agent_name, status, error, attempt,
// duration_ms}.
class TaskEvents : public Progress {
 public:
  TaskEvents(EventBus* bus, const Runtime& rt, const Plan& plan, std::string workflow,
             std::string stack, std::string run_id, Progress& next);
  void TaskStarted(size_t index) override;
  void TaskRetrying(size_t index, int next_attempt, int max_attempts, Duration delay,
                    const std::string& error) override;
  void TaskFinished(size_t index, const TaskResult& result) override;

 private:
  void Emit(const std::string& type, size_t index, const std::string& status,
            const std::string& error, int attempt, int64_t duration_ms);

  EventBus* bus_;
  const Runtime& rt_;
  const Plan& plan_;
  std::string workflow_;
  std::string stack_;
  std::string run_id_;
  Progress& next_;
};

// data.workflow = {name, stack, status, error, duration_ms}
nlohmann::json WorkflowEventData(const std::string& name, const std::string& stack,
                                 const std::string& status, const std::string& error,
                                 int64_t duration_ms);

}  // namespace sloth
