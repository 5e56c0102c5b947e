#include "store/sqlite_stack_store.h"

#include <nlohmann/json.hpp>

#include "base/ids.h"
#include "core/state_store.h"

namespace sloth {
namespace {

constexpr char kStackColumns[] =
    "id, name, description, workflow_file, status, outputs, created_at, updated_at";

StackInfo ReadStack(const Statement& st) {
  return StackInfo{st.Text(0), st.Text(1), st.Text(2), st.Text(3),
                   st.Text(4), st.Text(5), st.Int(6),  st.Int(7)};
}

constexpr char kResourceColumns[] =
    "type, name, module, properties, dependencies, state, attributes, run_id, created_at, "
    "updated_at";

ResourceRecord ReadResource(const Statement& st) {
  return ResourceRecord{st.Text(0), st.Text(1), st.Text(2), st.Text(3), st.Text(4),
                        st.Text(5), st.Text(6), st.Text(7), st.Int(8),  st.Int(9)};
}

constexpr char kRunColumns[] =
    "id, stack_id, workflow, file, status, check_mode, started_at, ended_at, error, user, host, "
    "pid, values_json, outputs, metadata";

RunRecord ReadRun(const Statement& st) {
  RunRecord r;
  r.id = st.Text(0);
  r.stack_id = st.Text(1);
  r.workflow = st.Text(2);
  r.file = st.Text(3);
  r.status = st.Text(4);
  r.check_mode = st.Int(5) != 0;
  r.started_at_ms = st.Int(6);
  r.ended_at_ms = st.OptInt(7);
  r.error = st.Text(8);
  r.user = st.Text(9);
  r.host = st.Text(10);
  r.pid = st.Int(11);
  r.values_json = st.Text(12);
  r.outputs_json = st.Text(13);
  r.metadata_json = st.Text(14);
  return r;
}

}  // namespace

Result<std::optional<StackInfo>> SqliteStackStore::FindStack(const std::string& name) {
  Result<Statement> st =
      db_->Prepare(std::string("SELECT ") + kStackColumns + " FROM stacks WHERE name = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, name);
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<StackInfo>();
  return std::optional<StackInfo>(ReadStack(*st));
}

Status SqliteStackStore::InsertStack(const StackInfo& s) {
  Result<Statement> st = db_->Prepare(std::string("INSERT INTO stacks (") + kStackColumns +
                                      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  if (!st.ok()) return st.status();
  st->Bind(1, s.id).Bind(2, s.name).Bind(3, s.description).Bind(4, s.workflow_file);
  st->Bind(5, s.status).Bind(6, s.outputs_json).Bind(7, s.created_at_ms).Bind(8, s.updated_at_ms);
  return st->Run();
}

Result<StackInfo> SqliteStackStore::CreateStack(const std::string& name,
                                                const std::string& description,
                                                const std::string& workflow_file) {
  StackInfo stack;
  Status s = db_->Transaction([&]() -> Status {
    Result<std::optional<StackInfo>> existing = FindStack(name);
    if (!existing.ok()) return existing.status();
    if (existing->has_value()) return Status::Error("stack " + name + " already exists");
    int64_t now = NowUnixMs();
    stack = StackInfo{NewUuid(), name, description, workflow_file, "created", "{}", now, now};
    return InsertStack(stack);
  });
  if (!s.ok()) return s;
  return stack;
}

Result<StackInfo> SqliteStackStore::EnsureStack(const std::string& name,
                                                const std::string& workflow_file) {
  StackInfo stack;
  Status s = db_->Transaction([&]() -> Status {
    Result<std::optional<StackInfo>> existing = FindStack(name);
    if (!existing.ok()) return existing.status();
    int64_t now = NowUnixMs();
    if (!existing->has_value()) {
      stack = StackInfo{NewUuid(), name, "", workflow_file, "created", "{}", now, now};
      return InsertStack(stack);
    }
    stack = **existing;
    if (workflow_file.empty() || workflow_file == stack.workflow_file) return Status::Ok();
    stack.workflow_file = workflow_file;
    stack.updated_at_ms = now;
    Result<Statement> st =
        db_->Prepare("UPDATE stacks SET workflow_file = ?, updated_at = ? WHERE id = ?");
    if (!st.ok()) return st.status();
    return st->Bind(1, workflow_file).Bind(2, now).Bind(3, stack.id).Run();
  });
  if (!s.ok()) return s;
  return stack;
}

Status SqliteStackStore::ImportStack(const StackInfo& stack) {
  return db_->Transaction([&]() -> Status {
    Result<std::optional<StackInfo>> existing = FindStack(stack.name);
    if (!existing.ok()) return existing.status();
    if (existing->has_value()) return Status::Error("stack " + stack.name + " already exists");
    return InsertStack(stack);
  });
}

Result<std::vector<StackInfo>> SqliteStackStore::ListStacks() {
  Result<Statement> st =
      db_->Prepare(std::string("SELECT ") + kStackColumns + " FROM stacks ORDER BY name");
  if (!st.ok()) return st.status();
  return CollectRows<StackInfo>(*st, ReadStack);
}

Result<bool> SqliteStackStore::DeleteStack(const std::string& name) {
  // Resources, runs and their tasks go with it (ON DELETE CASCADE).
  Result<Statement> st = db_->Prepare("DELETE FROM stacks WHERE name = ?");
  if (!st.ok()) return st.status();
  if (Status s = st->Bind(1, name).Run(); !s.ok()) return s;
  return db_->Changes() > 0;
}

Status SqliteStackStore::SetStackStatus(const std::string& stack_id, const std::string& status) {
  Result<Statement> st = db_->Prepare("UPDATE stacks SET status = ?, updated_at = ? WHERE id = ?");
  if (!st.ok()) return st.status();
  return st->Bind(1, status).Bind(2, NowUnixMs()).Bind(3, stack_id).Run();
}

Status SqliteStackStore::MergeOutputs(const std::string& stack_id,
                                      const std::string& outputs_json) {
  nlohmann::json add = nlohmann::json::parse(outputs_json, nullptr, false);
  if (!add.is_object()) return Status::Error("stack outputs must be a JSON object");
  if (add.empty()) return Status::Ok();
  return db_->Transaction([&]() -> Status {
    Result<Statement> get = db_->Prepare("SELECT outputs FROM stacks WHERE id = ?");
    if (!get.ok()) return get.status();
    get->Bind(1, stack_id);
    Result<bool> row = get->Step();
    if (!row.ok()) return row.status();
    if (!*row) return Status::Error("no stack with id " + stack_id);
    nlohmann::json merged = nlohmann::json::parse(get->Text(0), nullptr, false);
    if (!merged.is_object()) merged = nlohmann::json::object();
    merged.update(add);
    Result<Statement> put =
        db_->Prepare("UPDATE stacks SET outputs = ?, updated_at = ? WHERE id = ?");
    if (!put.ok()) return put.status();
    return put->Bind(1, merged.dump()).Bind(2, NowUnixMs()).Bind(3, stack_id).Run();
  });
}

Result<std::optional<ResourceRecord>> SqliteStackStore::GetResource(const std::string& stack_id,
                                                                    const std::string& type,
                                                                    const std::string& name) {
  Result<Statement> st =
      db_->Prepare(std::string("SELECT ") + kResourceColumns +
                   " FROM stack_resources WHERE stack_id = ? AND type = ? AND name = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, stack_id).Bind(2, type).Bind(3, name);
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<ResourceRecord>();
  return std::optional<ResourceRecord>(ReadResource(*st));
}

Status SqliteStackStore::PutResource(const std::string& stack_id, const ResourceRecord& r) {
  Result<Statement> st = db_->Prepare(
      std::string("INSERT INTO stack_resources (stack_id, ") + kResourceColumns +
      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(stack_id, type, name) DO UPDATE SET "
      "module = excluded.module, properties = excluded.properties, "
      "dependencies = excluded.dependencies, state = excluded.state, "
      "attributes = excluded.attributes, run_id = excluded.run_id, "
      "updated_at = excluded.updated_at");
  if (!st.ok()) return st.status();
  st->Bind(1, stack_id).Bind(2, r.type).Bind(3, r.name).Bind(4, r.module);
  st->Bind(5, r.properties_json).Bind(6, r.dependencies_json).Bind(7, r.state);
  st->Bind(8, r.attributes_json).Bind(9, r.run_id).Bind(10, r.created_at_ms);
  st->Bind(11, r.updated_at_ms);
  return st->Run();
}

Result<bool> SqliteStackStore::DeleteResource(const std::string& stack_id, const std::string& type,
                                              const std::string& name) {
  Result<Statement> st =
      db_->Prepare("DELETE FROM stack_resources WHERE stack_id = ? AND type = ? AND name = ?");
  if (!st.ok()) return st.status();
  if (Status s = st->Bind(1, stack_id).Bind(2, type).Bind(3, name).Run(); !s.ok()) return s;
  return db_->Changes() > 0;
}

Result<std::vector<ResourceRecord>> SqliteStackStore::ListResources(const std::string& stack_id) {
  Result<Statement> st =
      db_->Prepare(std::string("SELECT ") + kResourceColumns +
                   " FROM stack_resources WHERE stack_id = ? ORDER BY type, name");
  if (!st.ok()) return st.status();
  st->Bind(1, stack_id);
  return CollectRows<ResourceRecord>(*st, ReadResource);
}

Status SqliteStackStore::InsertRun(const RunRecord& r, bool replace) {
  Result<Statement> st =
      db_->Prepare(std::string(replace ? "INSERT OR REPLACE" : "INSERT") + " INTO runs (" +
                   kRunColumns + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!st.ok()) return st.status();
  st->Bind(1, r.id).Bind(2, r.stack_id).Bind(3, r.workflow).Bind(4, r.file).Bind(5, r.status);
  st->Bind(6, int64_t{r.check_mode}).Bind(7, r.started_at_ms).Bind(8, r.ended_at_ms);
  st->Bind(9, r.error).Bind(10, r.user).Bind(11, r.host).Bind(12, r.pid);
  st->Bind(13, r.values_json).Bind(14, r.outputs_json).Bind(15, r.metadata_json);
  return st->Run();
}

Status SqliteStackStore::BeginRun(const RunRecord& run) { return InsertRun(run, false); }

Status SqliteStackStore::RecordTask(const std::string& run_id, int seq, const TaskRecord& t) {
  Result<Statement> st = db_->Prepare(
      "INSERT OR REPLACE INTO run_tasks (run_id, seq, name, status, attempts, duration_ms, "
      "changed, message, error, output, agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!st.ok()) return st.status();
  st->Bind(1, run_id).Bind(2, int64_t{seq}).Bind(3, t.name).Bind(4, t.status);
  st->Bind(5, int64_t{t.attempts}).Bind(6, t.duration_ms).Bind(7, int64_t{t.changed});
  st->Bind(8, t.message).Bind(9, t.error).Bind(10, t.output_json).Bind(11, t.agent);
  return st->Run();
}

Status SqliteStackStore::FinishRun(const std::string& run_id, const std::string& status,
                                   const std::string& error, const std::string& outputs_json) {
  Result<Statement> st =
      db_->Prepare("UPDATE runs SET status = ?, error = ?, outputs = ?, ended_at = ? WHERE id = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, status).Bind(2, error).Bind(3, outputs_json).Bind(4, NowUnixMs()).Bind(5, run_id);
  return st->Run();
}

Result<std::vector<TaskRecord>> SqliteStackStore::Tasks(const std::string& run_id) {
  Result<Statement> st = db_->Prepare(
      "SELECT name, status, attempts, duration_ms, changed, message, error, output, agent "
      "FROM run_tasks WHERE run_id = ? ORDER BY seq");
  if (!st.ok()) return st.status();
  st->Bind(1, run_id);
  return CollectRows<TaskRecord>(*st, [](const Statement& row) {
    return TaskRecord{row.Text(0), row.Text(1),     static_cast<int>(row.Int(2)),
                      row.Int(3),  row.Int(4) != 0, row.Text(5),
                      row.Text(6), row.Text(7),     row.Text(8)};
  });
}

Result<std::vector<RunRecord>> SqliteStackStore::History(const std::string& stack_id, int limit) {
  Result<Statement> st = db_->Prepare(std::string("SELECT ") + kRunColumns +
                                      " FROM runs WHERE stack_id = ? ORDER BY started_at DESC, "
                                      "rowid DESC LIMIT ?");
  if (!st.ok()) return st.status();
  st->Bind(1, stack_id).Bind(2, int64_t{limit > 0 ? limit : -1});
  Result<std::vector<RunRecord>> runs = CollectRows<RunRecord>(*st, ReadRun);
  if (!runs.ok()) return runs;
  for (RunRecord& run : *runs) {
    Result<std::vector<TaskRecord>> tasks = Tasks(run.id);
    if (!tasks.ok()) return tasks.status();
    run.tasks = std::move(*tasks);
  }
  return runs;
}

Status SqliteStackStore::ImportRun(const RunRecord& run) {
  return db_->Transaction([&]() -> Status {
    if (Status s = InsertRun(run, true); !s.ok()) return s;
    int seq = 0;
    for (const TaskRecord& t : run.tasks)
      if (Status s = RecordTask(run.id, seq++, t); !s.ok()) return s;
    return Status::Ok();
  });
}

}  // namespace sloth
