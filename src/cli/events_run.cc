#include "cli/events_run.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "base/strings.h"
#include "store/migrations.h"

namespace sloth {

std::string SelfExecutable() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "/proc/self/exe" : self.string();
}

int EventDepth() {
  const char* depth = std::getenv(kEventDepthVariable);
  if (!depth || !*depth) return 0;
  int n = std::atoi(depth);
  return n < 0 ? 0 : n;
}

Result<std::unique_ptr<EventBus>> OpenEventBus(Loop& loop, const std::string& data_dir,
                                               bool take_orphans, std::shared_ptr<Db> db) {
  EventBusOptions options;
  options.data_dir = data_dir;
  options.db_path = DatabasePath(data_dir);
  options.hook_command = {SelfExecutable(), "--data-dir", data_dir, "hook", "exec"};
  options.take_orphans = take_orphans;
  options.db = std::move(db);
  return EventBus::Open(loop, options);
}

Result<std::unique_ptr<EventStore>> OpenEventStore(const std::string& data_dir) {
  auto db = OpenDatabase(DatabasePath(data_dir));
  if (!db.ok()) return db.status();
  auto store = std::make_unique<EventStore>(*db);
  auto replayed = RecoverJournals(data_dir + "/events", [&](std::vector<Event>& events) {
    return store->db().Transaction([&]() -> Status {
      for (const Event& e : events)
        if (Status s = store->InsertEvent(e, "pending", "", ""); !s.ok()) return s;
      return Status::Ok();
    });
  });
  if (!replayed.ok()) return replayed.status();
  return store;
}

nlohmann::json RedactJson(nlohmann::json value, const Runtime& rt) {
  if (value.is_string()) return rt.Redact(value.get<std::string>());
  if (value.is_structured()) {
    for (auto& item : value) item = RedactJson(std::move(item), rt);
  }
  return value;
}

void EmitEvent(EventBus* bus, const std::string& type, const nlohmann::json& data,
               const std::string& stack, const std::string& run_id, const std::string& source) {
  if (!bus) return;
  Event e;
  e.type = type;
  e.source = source;
  e.stack = stack;
  e.run_id = run_id;
  e.depth = EventDepth();
  e.data_json = data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (auto id = bus->Dispatch(std::move(e)); !id.ok())
    std::fprintf(stderr, "warning: cannot store the %s event: %s\n", type.c_str(),
                 id.error().c_str());
}

void ConnectEventModule(Runtime& rt, EventBus& bus, const std::string& source_prefix) {
  rt.SetEventDispatcher([&rt, &bus, source_prefix](lua_State* L, const std::string& type,
                                                   const std::string& data_json) {
    Event e;
    e.type = type;
    TaskContext* task = rt.TaskOf(L);
    e.source = source_prefix + (task ? task->name : std::string("workflow"));
    if (const RunScope* scope = rt.run_scope()) {
      e.stack = scope->stack;
      e.run_id = scope->run_id;
    }
    e.depth = EventDepth();
    e.data_json = RedactJson(nlohmann::json::parse(data_json), rt)
                      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return bus.Dispatch(std::move(e));
  });
}

TaskEvents::TaskEvents(EventBus* bus, const Runtime& rt, const Plan& plan, std::string workflow,
                       std::string stack, std::string run_id, Progress& next)
    : bus_(bus),
      rt_(rt),
      plan_(plan),
      workflow_(std::move(workflow)),
      stack_(std::move(stack)),
      run_id_(std::move(run_id)),
      next_(next) {}

void TaskEvents::Emit(const std::string& type, size_t index, const std::string& status,
                      const std::string& error, int attempt, int64_t duration_ms) {
  if (!bus_) return;
  nlohmann::json task = {{"task_name", plan_.task(index).name},
                         {"workflow_name", workflow_},
                         {"stack", stack_},
                         {"agent_name", Join(plan_.task(index).delegate_to, ",")},
                         {"status", status},
                         {"error", rt_.Redact(error)},
                         {"attempt", attempt},
                         {"duration_ms", duration_ms}};
  EmitEvent(bus_, type, {{"task", std::move(task)}}, stack_, run_id_);
}

void TaskEvents::TaskStarted(size_t index) {
  next_.TaskStarted(index);
  Emit("task.started", index, "running", "", 1, 0);
}

void TaskEvents::TaskRetrying(size_t index, int next_attempt, int max_attempts, Duration delay,
                              const std::string& error) {
  next_.TaskRetrying(index, next_attempt, max_attempts, delay, error);
  // The scheduler says "timed out after ..." when an attempt ran out of time.
  if (error.starts_with("timed out after"))
    Emit("task.timeout", index, "timeout", error, next_attempt - 1, 0);
  Emit("task.retrying", index, "retrying", error, next_attempt, 0);
}

void TaskEvents::TaskFinished(size_t index, const TaskResult& result) {
  next_.TaskFinished(index, result);
  int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(result.duration).count();
  std::string status(TaskStatusName(result.status));
  switch (result.status) {
    case TaskStatus::kSuccess:
    case TaskStatus::kUnchanged:
      Emit("task.completed", index, status, "", result.attempts, ms);
      break;
    case TaskStatus::kFailed:
      if (result.error.starts_with("timed out after"))
        Emit("task.timeout", index, "timeout", result.error, result.attempts, ms);
      Emit("task.failed", index, status, result.error, result.attempts, ms);
      break;
    case TaskStatus::kSkipped:
    case TaskStatus::kNotRun:
      Emit("task.skipped", index, status, result.message, result.attempts, ms);
      break;
    default:
      break;
  }
}

nlohmann::json WorkflowEventData(const std::string& name, const std::string& stack,
                                 const std::string& status, const std::string& error,
                                 int64_t duration_ms) {
  return {{"workflow",
           {{"name", name},
            {"stack", stack},
            {"status", status},
            {"error", error},
            {"duration_ms", duration_ms}}}};
}

}  // namespace sloth
