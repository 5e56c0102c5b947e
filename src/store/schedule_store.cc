#include "store/schedule_store.h"

#include <nlohmann/json.hpp>

#include "core/state_store.h"

namespace sloth {
namespace {

constexpr char kColumns[] =
    "stack, cron, file, values_json, enabled, revision, created_at, updated_at, anchor_at, "
    "last_due, last_run, last_status, last_error, last_run_pid";

std::vector<std::string> ParseList(const std::string& text) {
  nlohmann::json list = nlohmann::json::parse(text, nullptr, false);
  std::vector<std::string> out;
  if (!list.is_array()) return out;
  for (const nlohmann::json& item : list)
    if (item.is_string()) out.push_back(item.get<std::string>());
  return out;
}

ScheduleRecord ReadSchedule(const Statement& st) {
  ScheduleRecord r;
  r.stack = st.Text(0);
  r.cron = st.Text(1);
  r.file = st.Text(2);
  r.values_files = ParseList(st.Text(3));
  r.enabled = st.Int(4) != 0;
  r.revision = st.Int(5);
  r.created_at_ms = st.Int(6);
  r.updated_at_ms = st.Int(7);
  r.anchor_at_ms = st.Int(8);
  r.last_due_ms = st.OptInt(9);
  r.last_run_ms = st.OptInt(10);
  r.last_status = st.Text(11);
  r.last_error = st.Text(12);
  r.last_run_pid = st.Int(13);
  return r;
}

}  // namespace

Result<ScheduleRecord> ScheduleStore::Enable(const std::string& stack, const std::string& cron,
                                             const std::string& file,
                                             const std::vector<std::string>& values_files) {
  int64_t now = NowUnixMs();
  std::string values = nlohmann::json(values_files).dump();
  Result<Statement> st = db_->Cached(
      "INSERT INTO schedules (stack, cron, file, values_json, enabled, revision, created_at, "
      "updated_at, anchor_at) VALUES (?1, ?2, ?3, ?4, 1, 1, ?5, ?5, ?5) "
      "ON CONFLICT (stack) DO UPDATE SET cron = ?2, file = ?3, values_json = ?4, enabled = 1, "
      "revision = revision + 1, updated_at = ?5, anchor_at = ?5");
  if (!st.ok()) return st.status();
  st->Bind(1, stack).Bind(2, cron).Bind(3, file).Bind(4, values).Bind(5, now);
  if (Status s = st->Run(); !s.ok()) return s;
  Result<std::optional<ScheduleRecord>> stored = Get(stack);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return Status::Error("schedule " + stack + " vanished");
  return **stored;
}

Result<bool> ScheduleStore::Disable(const std::string& stack) {
  Result<Statement> st = db_->Cached(
      "UPDATE schedules SET enabled = 0, revision = revision + 1, updated_at = ? WHERE stack = ?");
  if (!st.ok()) return st.status();
  if (Status s = st->Bind(1, NowUnixMs()).Bind(2, stack).Run(); !s.ok()) return s;
  return db_->Changes() > 0;
}

Result<bool> ScheduleStore::Delete(const std::string& stack) {
  Result<Statement> st = db_->Cached("DELETE FROM schedules WHERE stack = ?");
  if (!st.ok()) return st.status();
  if (Status s = st->Bind(1, stack).Run(); !s.ok()) return s;
  return db_->Changes() > 0;
}

Result<std::optional<ScheduleRecord>> ScheduleStore::Get(const std::string& stack) {
  Result<Statement> st =
      db_->Cached(std::string("SELECT ") + kColumns + " FROM schedules WHERE stack = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, stack);
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<ScheduleRecord>();
  return std::optional<ScheduleRecord>(ReadSchedule(*st));
}

Result<std::vector<ScheduleRecord>> ScheduleStore::List() {
  Result<Statement> st =
      db_->Cached(std::string("SELECT ") + kColumns + " FROM schedules ORDER BY stack");
  if (!st.ok()) return st.status();
  return CollectRows<ScheduleRecord>(*st, ReadSchedule);
}

Result<bool> ScheduleStore::RecordDue(const std::string& stack, const ScheduleResult& result) {
  // A missed time leaves the last run's time alone; a started run replaces it.
  Result<Statement> st = db_->Cached(
      "UPDATE schedules SET last_due = ?, last_run = COALESCE(?, last_run), last_status = ?, "
      "last_error = ?, last_run_pid = ? WHERE stack = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, result.due_ms).Bind(2, result.run_ms).Bind(3, result.status);
  st->Bind(4, result.error).Bind(5, result.pid).Bind(6, stack);
  if (Status s = st->Run(); !s.ok()) return s;
  return db_->Changes() > 0;
}

Result<bool> ScheduleStore::RecordFinish(const std::string& stack, int64_t run_ms,
                                         const std::string& status, const std::string& error) {
  Result<Statement> st = db_->Cached(
      "UPDATE schedules SET last_status = ?, last_error = ? WHERE stack = ? AND last_run = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, status).Bind(2, error).Bind(3, stack).Bind(4, run_ms);
  if (Status s = st->Run(); !s.ok()) return s;
  return db_->Changes() > 0;
}

Result<int64_t> ScheduleStore::DataVersion() {
  Result<Statement> st = db_->Cached("PRAGMA data_version");
  if (!st.ok()) return st.status();
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return Status::Error("PRAGMA data_version returned nothing");
  return st->Int(0);
}

}  // namespace sloth
