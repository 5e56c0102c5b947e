#include "events/event_store.h"

#include <algorithm>

#include "core/state_store.h"

namespace sloth {
namespace {

constexpr char kEventColumns[] =
    "id, type, timestamp, source, stack, agent, run_id, depth, data, status, error";

StoredEvent ReadEvent(const Statement& st) {
  StoredEvent s;
  s.event.id = st.Text(0);
  s.event.type = st.Text(1);
  s.event.timestamp_ms = st.Int(2);
  s.event.source = st.Text(3);
  s.event.stack = st.Text(4);
  s.event.agent = st.Text(5);
  s.event.run_id = st.Text(6);
  s.event.depth = static_cast<int>(st.Int(7));
  s.event.data_json = st.Text(8);
  s.status = st.Text(9);
  s.error = st.Text(10);
  return s;
}

constexpr char kHookColumns[] =
    "name, file, event_type, stack, description, enabled, timeout_ms, retries, created_at, "
    "updated_at";

HookInfo ReadHook(const Statement& st) {
  HookInfo h;
  h.name = st.Text(0);
  h.file = st.Text(1);
  h.event_type = st.Text(2);
  h.stack = st.Text(3);
  h.description = st.Text(4);
  h.enabled = st.Int(5) != 0;
  h.timeout_ms = st.Int(6);
  h.retries = static_cast<int>(st.Int(7));
  h.created_at_ms = st.Int(8);
  h.updated_at_ms = st.Int(9);
  return h;
}

constexpr char kExecutionColumns[] =
    "id, hook, event_id, event_type, attempt, success, output, error, duration_ms, at";

HookExecution ReadExecution(const Statement& st) {
  HookExecution x;
  x.id = st.Int(0);
  x.hook = st.Text(1);
  x.event_id = st.Text(2);
  x.event_type = st.Text(3);
  x.attempt = static_cast<int>(st.Int(4));
  x.success = st.Int(5) != 0;
  x.output = st.Text(6);
  x.error = st.Text(7);
  x.duration_ms = st.Int(8);
  x.at_ms = st.Int(9);
  return x;
}


// An event's type against a filter pattern: the pattern syntax of hooks, or an exact type.
bool Matches(const std::string& pattern, const std::string& type) {
  return pattern.empty() || pattern == type || EventTypeMatches(pattern, type);
}

}  // namespace

Status EventStore::InsertEvent(const Event& e, const std::string& status, const std::string& error,
                               const std::string& owner) {
  Result<Statement> st = db_->Cached(
      "INSERT OR IGNORE INTO events (id, type, timestamp, source, stack, agent, run_id, depth, "
      "data, status, error, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!st.ok()) return st.status();
  st->Bind(1, e.id).Bind(2, e.type).Bind(3, e.timestamp_ms).Bind(4, e.source).Bind(5, e.stack);
  st->Bind(6, e.agent).Bind(7, e.run_id).Bind(8, int64_t{e.depth}).Bind(9, e.data_json);
  st->Bind(10, status).Bind(11, error).Bind(12, owner);
  return st->Run();
}

Status EventStore::SetEventStatus(const std::string& id, const std::string& status,
                                  const std::string& error) {
  Result<Statement> st = db_->Cached("UPDATE events SET status = ?, error = ? WHERE id = ?");
  if (!st.ok()) return st.status();
  return st->Bind(1, status).Bind(2, error).Bind(3, id).Run();
}

Status EventStore::RecordExecution(const HookExecution& x) {
  Result<Statement> st = db_->Cached(
      "INSERT INTO hook_executions (hook, event_id, event_type, attempt, success, output, error, "
      "duration_ms, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!st.ok()) return st.status();
  st->Bind(1, x.hook).Bind(2, x.event_id).Bind(3, x.event_type).Bind(4, int64_t{x.attempt});
  st->Bind(5, int64_t{x.success}).Bind(6, x.output).Bind(7, x.error).Bind(8, x.duration_ms);
  return st->Bind(9, x.at_ms).Run();
}

Result<std::vector<StoredEvent>> EventStore::ListEvents(const EventFilter& filter) {
  // Newest first by insertion order; the type pattern is matched here (it is not SQL LIKE).
  Result<Statement> st = db_->Prepare(std::string("SELECT ") + kEventColumns +
                                      " FROM events WHERE (?1 = '' OR status = ?1) AND (?2 = '' "
                                      "OR stack = ?2) ORDER BY seq DESC");
  if (!st.ok()) return st.status();
  st->Bind(1, filter.status).Bind(2, filter.stack);
  std::vector<StoredEvent> out;
  while (filter.limit <= 0 || static_cast<int>(out.size()) < filter.limit) {
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (!Matches(filter.type, st->Text(1))) continue;
    out.push_back(ReadEvent(*st));
  }
  return out;
}

Result<std::optional<StoredEvent>> EventStore::GetEvent(const std::string& id) {
  Result<Statement> st =
      db_->Prepare(std::string("SELECT ") + kEventColumns + " FROM events WHERE id = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, id);
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<StoredEvent>();
  return std::optional<StoredEvent>(ReadEvent(*st));
}

Result<int64_t> EventStore::DeleteEventsBefore(int64_t before_ms) {
  int64_t removed = 0;
  Status s = db_->Transaction([&]() -> Status {
    Result<Statement> ex = db_->Prepare("DELETE FROM hook_executions WHERE at < ?");
    if (!ex.ok()) return ex.status();
    if (Status r = ex->Bind(1, before_ms).Run(); !r.ok()) return r;
    Result<Statement> ev = db_->Prepare("DELETE FROM events WHERE timestamp < ?");
    if (!ev.ok()) return ev.status();
    if (Status r = ev->Bind(1, before_ms).Run(); !r.ok()) return r;
    removed = db_->Changes();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return removed;
}

Result<std::vector<Event>> EventStore::ClaimOrphans(
    const std::string& owner, const std::function<bool(const std::string&)>& alive) {
  Result<Statement> owners =
      db_->Prepare("SELECT DISTINCT owner FROM events WHERE status = 'pending' AND owner != ?");
  if (!owners.ok()) return owners.status();
  owners->Bind(1, owner);
  auto others = CollectRows<std::string>(*owners, [](const Statement& st) { return st.Text(0); });
  if (!others.ok()) return others.status();
  std::vector<Event> claimed;
  for (const std::string& other : *others) {
    if (alive(other)) continue;
    Status s = db_->Transaction([&]() -> Status {
      // The owner in the WHERE clause makes the claim safe against another process claiming
      // the same events at the same time: only one UPDATE finds them still `other`'s.
      Result<Statement> st = db_->Prepare(
          std::string("UPDATE events SET owner = ? WHERE status = 'pending' AND owner = ? "
                      "RETURNING ") +
          kEventColumns);
      if (!st.ok()) return st.status();
      st->Bind(1, owner).Bind(2, other);
      auto rows = CollectRows<StoredEvent>(*st, ReadEvent);
      if (!rows.ok()) return rows.status();
      for (StoredEvent& row : *rows) claimed.push_back(std::move(row.event));
      return Status::Ok();
    });
    if (!s.ok()) return s;
  }
  std::sort(claimed.begin(), claimed.end(),
            [](const Event& a, const Event& b) { return a.timestamp_ms < b.timestamp_ms; });
  return claimed;
}

Status EventStore::Requeue(const std::string& id, const std::string& owner) {
  Result<Statement> st =
      db_->Prepare("UPDATE events SET status = 'pending', error = '', owner = ? WHERE id = ?");
  if (!st.ok()) return st.status();
  return st->Bind(1, owner).Bind(2, id).Run();
}

Result<std::set<std::string>> EventStore::SucceededHooks(const std::string& event_id) {
  Result<Statement> st =
      db_->Prepare("SELECT DISTINCT hook FROM hook_executions WHERE event_id = ? AND success = 1");
  if (!st.ok()) return st.status();
  st->Bind(1, event_id);
  auto rows = CollectRows<std::string>(*st, [](const Statement& s) { return s.Text(0); });
  if (!rows.ok()) return rows.status();
  return std::set<std::string>(rows->begin(), rows->end());
}

Status EventStore::PutHook(const HookInfo& h) {
  Result<Statement> st = db_->Prepare(
      std::string("INSERT INTO hooks (") + kHookColumns +
      ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET file = "
      "excluded.file, event_type = excluded.event_type, stack = excluded.stack, description = "
      "excluded.description, enabled = excluded.enabled, timeout_ms = excluded.timeout_ms, "
      "retries = excluded.retries, updated_at = excluded.updated_at");
  if (!st.ok()) return st.status();
  int64_t now = NowUnixMs();
  st->Bind(1, h.name).Bind(2, h.file).Bind(3, h.event_type).Bind(4, h.stack);
  st->Bind(5, h.description).Bind(6, int64_t{h.enabled}).Bind(7, h.timeout_ms);
  st->Bind(8, int64_t{h.retries}).Bind(9, now).Bind(10, now);
  return st->Run();
}

Result<std::optional<HookInfo>> EventStore::GetHook(const std::string& name) {
  Result<Statement> st =
      db_->Prepare(std::string("SELECT ") + kHookColumns + " FROM hooks WHERE name = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, name);
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<HookInfo>();
  return std::optional<HookInfo>(ReadHook(*st));
}

Result<std::vector<HookInfo>> EventStore::ListHooks() {
  Result<Statement> st = db_->Cached(
      "SELECT name, file, event_type, stack, description, enabled, timeout_ms, "
      "retries, created_at, updated_at FROM hooks ORDER BY name");
  if (!st.ok()) return st.status();
  return CollectRows<HookInfo>(*st, ReadHook);
}

Result<bool> EventStore::SetHookEnabled(const std::string& name, bool enabled) {
  Result<Statement> st =
      db_->Prepare("UPDATE hooks SET enabled = ?, updated_at = ? WHERE name = ?");
  if (!st.ok()) return st.status();
  if (Status s = st->Bind(1, int64_t{enabled}).Bind(2, NowUnixMs()).Bind(3, name).Run(); !s.ok())
    return s;
  return db_->Changes() > 0;
}

Result<bool> EventStore::DeleteHook(const std::string& name) {
  Result<Statement> st = db_->Prepare("DELETE FROM hooks WHERE name = ?");
  if (!st.ok()) return st.status();
  if (Status s = st->Bind(1, name).Run(); !s.ok()) return s;
  return db_->Changes() > 0;
}

Result<std::vector<HookExecution>> EventStore::HookHistory(const std::string& hook, int limit) {
  Result<Statement> st = db_->Prepare(std::string("SELECT ") + kExecutionColumns +
                                      " FROM hook_executions WHERE hook = ? ORDER BY id DESC "
                                      "LIMIT ?");
  if (!st.ok()) return st.status();
  st->Bind(1, hook).Bind(2, int64_t{limit > 0 ? limit : -1});
  return CollectRows<HookExecution>(*st, ReadExecution);
}

Result<std::vector<HookExecution>> EventStore::ExecutionsOf(const std::string& event_id) {
  Result<Statement> st = db_->Prepare(std::string("SELECT ") + kExecutionColumns +
                                      " FROM hook_executions WHERE event_id = ? ORDER BY id");
  if (!st.ok()) return st.status();
  st->Bind(1, event_id);
  return CollectRows<HookExecution>(*st, ReadExecution);
}

}  // namespace sloth
