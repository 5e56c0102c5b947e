#include "store/sqlite_state_store.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <nlohmann/json.hpp>

namespace sloth {
namespace {

using nlohmann::json;

constexpr char kReadLive[] =
    "SELECT value, expires_at FROM state_kv WHERE key = ? AND "
    "(expires_at IS NULL OR expires_at > ?)";

Result<json> Parse(const std::string& text, const std::string& key) {
  json value = json::parse(text, nullptr, false);
  if (value.is_discarded()) return Status::Error("value of " + key + " is not valid JSON");
  return value;
}

std::string ThisHost() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0) return "";
  return name;
}

// A holder on this host whose process is gone holds nothing.
bool HolderAlive(const LockInfo& info) {
  if (info.pid <= 0 || info.host.empty() || info.host != ThisHost()) return true;
  if (info.pid == getpid()) return true;
  return kill(static_cast<pid_t>(info.pid), 0) == 0 || errno != ESRCH;
}

bool Held(const LockInfo& info, int64_t now) {
  return !info.owner.empty() && info.expires_at_ms > now && HolderAlive(info);
}

}  // namespace

Result<std::unique_ptr<SqliteStateStore>> SqliteStateStore::Open(const std::string& path) {
  Result<std::shared_ptr<Db>> db = OpenDatabase(path);
  if (!db.ok()) return db.status();
  return std::make_unique<SqliteStateStore>(std::move(*db));
}

Status SqliteStateStore::Group(const std::function<void()>& calls) {
  // Each call's own Transaction runs as a savepoint inside this one (Db::Transaction).
  return db_->Transaction([&]() -> Status {
    if (Status s = Purge(NowUnixMs()); !s.ok()) return s;
    grouped_ = true;
    calls();
    grouped_ = false;
    return Status::Ok();
  });
}

Result<std::optional<StateEntry>> SqliteStateStore::ReadLive(const std::string& key, int64_t now) {
  Result<Statement> st = db_->Cached(kReadLive);
  if (!st.ok()) return st.status();
  st->Bind(1, key).Bind(2, now);
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<StateEntry>();
  return std::optional<StateEntry>(StateEntry{key, st->Text(0), st->OptInt(1)});
}

Status SqliteStateStore::Write(const std::string& key, const std::string& value,
                               std::optional<int64_t> expires_at) {
  Result<Statement> st = db_->Cached(
      "INSERT INTO state_kv (key, value, expires_at, updated_at) VALUES (?, ?, ?, ?) "
      "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, "
      "updated_at = excluded.updated_at");
  if (!st.ok()) return st.status();
  return st->Bind(1, key).Bind(2, value).Bind(3, expires_at).Bind(4, NowUnixMs()).Run();
}

Status SqliteStateStore::Remove(const std::string& key) {
  Result<Statement> st = db_->Cached("DELETE FROM state_kv WHERE key = ?");
  if (!st.ok()) return st.status();
  return st->Bind(1, key).Run();
}

Result<std::optional<std::string>> SqliteStateStore::Get(const std::string& key) {
  Result<std::optional<StateEntry>> e = ReadLive(key, NowUnixMs());
  if (!e.ok()) return e.status();
  if (!*e) return std::optional<std::string>();
  return std::optional<std::string>((*e)->value);
}

Result<std::optional<StateEntry>> SqliteStateStore::GetEntry(const std::string& key) {
  return ReadLive(key, NowUnixMs());
}

Status SqliteStateStore::Set(const std::string& key, const std::string& value,
                             std::optional<int64_t> ttl_ms) {
  return db_->Transaction([&]() -> Status {
    int64_t now = NowUnixMs();
    if (!grouped_)  // a group purged once for all its calls
      if (Status s = Purge(now); !s.ok()) return s;
    return Write(key, value, ttl_ms ? std::optional<int64_t>(now + *ttl_ms) : std::nullopt);
  });
}

// Lazy purge: expired rows go when someone writes (the partial index keeps this cheap).
Status SqliteStateStore::Purge(int64_t now) {
  Result<Statement> purge =
      db_->Cached("DELETE FROM state_kv WHERE expires_at IS NOT NULL AND expires_at <= ?");
  if (!purge.ok()) return purge.status();
  return purge->Bind(1, now).Run();
}

Result<bool> SqliteStateStore::Delete(const std::string& key) {
  bool deleted = false;
  Status s = db_->Transaction([&]() -> Status {
    Result<std::optional<StateEntry>> e = ReadLive(key, NowUnixMs());
    if (!e.ok()) return e.status();
    deleted = e->has_value();
    return Remove(key);
  });
  if (!s.ok()) return s;
  return deleted;
}

Result<bool> SqliteStateStore::Exists(const std::string& key) {
  Result<std::optional<StateEntry>> e = ReadLive(key, NowUnixMs());
  if (!e.ok()) return e.status();
  return e->has_value();
}

Result<bool> SqliteStateStore::SetTtl(const std::string& key, std::optional<int64_t> ttl_ms) {
  bool found = false;
  Status s = db_->Transaction([&]() -> Status {
    int64_t now = NowUnixMs();
    Result<std::optional<StateEntry>> e = ReadLive(key, now);
    if (!e.ok()) return e.status();
    found = e->has_value();
    if (!found) return Status::Ok();
    return Write(key, (*e)->value, ttl_ms ? std::optional<int64_t>(now + *ttl_ms) : std::nullopt);
  });
  if (!s.ok()) return s;
  return found;
}

Result<std::vector<StateEntry>> SqliteStateStore::List(const std::string& prefix) {
  Result<Statement> st = db_->Cached(
      "SELECT key, value, expires_at FROM state_kv WHERE substr(key, 1, length(?1)) "
      "= ?1 AND (expires_at IS NULL OR expires_at > ?2) ORDER BY key");
  if (!st.ok()) return st.status();
  st->Bind(1, prefix).Bind(2, NowUnixMs());
  std::vector<StateEntry> out;
  for (;;) {
    Result<bool> row = st->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({st->Text(0), st->Text(1), st->OptInt(2)});
  }
  return out;
}

Result<int64_t> SqliteStateStore::Clear(const std::string& prefix) {
  int64_t removed = 0;
  Status s = db_->Transaction([&]() -> Status {
    int64_t now = NowUnixMs();
    if (Status p = Purge(now); !p.ok()) return p;
    Result<Statement> st =
        db_->Cached("DELETE FROM state_kv WHERE substr(key, 1, length(?1)) = ?1");
    if (!st.ok()) return st.status();
    if (Status r = st->Bind(1, prefix).Run(); !r.ok()) return r;
    removed = db_->Changes();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return removed;
}

Result<StateStats> SqliteStateStore::Stats() {
  int64_t now = NowUnixMs();
  Result<Statement> st = db_->Cached(
      "SELECT COALESCE(SUM(CASE WHEN expires_at IS NULL OR expires_at > ?1 THEN 1 ELSE 0 END), 0),"
      " COALESCE(SUM(CASE WHEN expires_at IS NULL OR expires_at > ?1 THEN 0 ELSE 1 END), 0),"
      " COALESCE(SUM(CASE WHEN expires_at IS NULL OR expires_at > ?1 THEN length(CAST(value AS "
      "BLOB)) ELSE 0 END), 0) FROM state_kv");
  if (!st.ok()) return st.status();
  st->Bind(1, now);
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  StateStats stats;
  stats.keys = st->Int(0);
  stats.expired = st->Int(1);
  stats.value_bytes = st->Int(2);
  Result<Statement> locks = db_->Cached(
      "SELECT name, owner, host, pid, token, expires_at FROM state_locks "
      "WHERE owner != '' AND expires_at > ?");
  if (!locks.ok()) return locks.status();
  locks->Bind(1, now);
  for (;;) {
    Result<bool> r = locks->Step();
    if (!r.ok()) return r.status();
    if (!*r) break;
    LockInfo info{locks->Text(0), locks->Text(1), locks->Text(2),
                  locks->Int(3),  locks->Int(4),  locks->Int(5)};
    if (Held(info, now)) ++stats.locks_held;
  }
  return stats;
}

Result<std::string> SqliteStateStore::Increment(const std::string& key, const std::string& delta) {
  json step = json::parse(delta, nullptr, false);
  if (!step.is_number()) return Status::Error("increment of " + key + ": delta is not a number");
  std::string result;
  Status s = db_->Transaction([&]() -> Status {
    Result<std::optional<StateEntry>> e = ReadLive(key, NowUnixMs());
    if (!e.ok()) return e.status();
    json current = 0;
    std::optional<int64_t> expires;
    if (e->has_value()) {
      Result<json> parsed = Parse((*e)->value, key);
      if (!parsed.ok()) return parsed.status();
      current = *parsed;
      expires = (*e)->expires_at_ms;
      if (!current.is_number())
        return Status::Error("cannot increment " + key + ": its value is not a number");
    }
    json next;
    if (current.is_number_integer() && step.is_number_integer()) {
      int64_t a = current.get<int64_t>(), b = step.get<int64_t>(), sum = 0;
      if (__builtin_add_overflow(a, b, &sum))
        return Status::Error("cannot increment " + key + ": integer overflow");
      next = sum;
    } else {
      next = current.get<double>() + step.get<double>();
    }
    result = next.dump();
    return Write(key, result, expires);
  });
  if (!s.ok()) return s;
  return result;
}

Result<bool> SqliteStateStore::CompareSwap(const std::string& key,
                                           const std::optional<std::string>& expected,
                                           const std::optional<std::string>& desired) {
  std::optional<json> want;
  if (expected) {
    json parsed = json::parse(*expected, nullptr, false);
    if (parsed.is_discarded()) return Status::Error("compare_swap: expected value is not JSON");
    want = parsed;
  }
  bool swapped = false;
  Status s = db_->Transaction([&]() -> Status {
    Result<std::optional<StateEntry>> e = ReadLive(key, NowUnixMs());
    if (!e.ok()) return e.status();
    if (e->has_value() != want.has_value()) return Status::Ok();
    std::optional<int64_t> expires;
    if (want) {
      Result<json> current = Parse((*e)->value, key);
      if (!current.ok()) return current.status();
      if (*current != *want) return Status::Ok();
      expires = (*e)->expires_at_ms;
    }
    swapped = true;
    if (!desired) return Remove(key);
    return Write(key, *desired, expires);
  });
  if (!s.ok()) return s;
  return swapped;
}

Result<std::string> SqliteStateStore::Append(const std::string& key, const std::string& text) {
  std::string result;
  Status s = db_->Transaction([&]() -> Status {
    Result<std::optional<StateEntry>> e = ReadLive(key, NowUnixMs());
    if (!e.ok()) return e.status();
    std::string current;
    std::optional<int64_t> expires;
    if (e->has_value()) {
      Result<json> parsed = Parse((*e)->value, key);
      if (!parsed.ok()) return parsed.status();
      if (!parsed->is_string())
        return Status::Error("cannot append to " + key + ": its value is not a string");
      current = parsed->get<std::string>();
      expires = (*e)->expires_at_ms;
    }
    result = json(current + text).dump();
    return Write(key, result, expires);
  });
  if (!s.ok()) return s;
  return result;
}

Result<int64_t> SqliteStateStore::ListPush(const std::string& key, const std::string& value) {
  json item = json::parse(value, nullptr, false);
  if (item.is_discarded()) return Status::Error("list_push: value is not JSON");
  int64_t length = 0;
  Status s = db_->Transaction([&]() -> Status {
    Result<std::optional<StateEntry>> e = ReadLive(key, NowUnixMs());
    if (!e.ok()) return e.status();
    json list = json::array();
    std::optional<int64_t> expires;
    if (e->has_value()) {
      Result<json> parsed = Parse((*e)->value, key);
      if (!parsed.ok()) return parsed.status();
      if (!parsed->is_array())
        return Status::Error("cannot push to " + key + ": its value is not a list");
      list = std::move(*parsed);
      expires = (*e)->expires_at_ms;
    }
    list.push_back(std::move(item));
    length = static_cast<int64_t>(list.size());
    return Write(key, list.dump(), expires);
  });
  if (!s.ok()) return s;
  return length;
}

Result<std::optional<std::string>> SqliteStateStore::Pop(const std::string& key, bool remove) {
  std::optional<std::string> last;
  auto body = [&]() -> Status {
    Result<std::optional<StateEntry>> e = ReadLive(key, NowUnixMs());
    if (!e.ok()) return e.status();
    if (!e->has_value()) return Status::Ok();
    Result<json> parsed = Parse((*e)->value, key);
    if (!parsed.ok()) return parsed.status();
    if (!parsed->is_array())
      return Status::Error("cannot pop from " + key + ": its value is not a list");
    if (parsed->empty()) return Status::Ok();
    last = parsed->back().dump();
    if (!remove) return Status::Ok();
    parsed->erase(parsed->size() - 1);
    return Write(key, parsed->dump(), (*e)->expires_at_ms);
  };
  Status s = remove ? db_->Transaction(body) : body();
  if (!s.ok()) return s;
  return last;
}

Result<std::optional<std::string>> SqliteStateStore::ListPop(const std::string& key) {
  return Pop(key, true);
}

Result<std::optional<std::string>> SqliteStateStore::ListPeek(const std::string& key) {
  return Pop(key, false);
}

Result<int64_t> SqliteStateStore::ListLength(const std::string& key) {
  Result<std::optional<StateEntry>> e = ReadLive(key, NowUnixMs());
  if (!e.ok()) return e.status();
  if (!e->has_value()) return int64_t{0};
  Result<json> parsed = Parse((*e)->value, key);
  if (!parsed.ok()) return parsed.status();
  if (!parsed->is_array()) return Status::Error("value of " + key + " is not a list");
  return static_cast<int64_t>(parsed->size());
}

Result<std::optional<LockInfo>> SqliteStateStore::ReadLock(const std::string& name) {
  Result<Statement> st = db_->Cached(
      "SELECT owner, host, pid, token, expires_at, acquired_at FROM state_locks "
      "WHERE name = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, name);
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<LockInfo>();
  return std::optional<LockInfo>(
      LockInfo{name, st->Text(0), st->Text(1), st->Int(2), st->Int(3), st->Int(4), st->Int(5)});
}

Result<LockAttempt> SqliteStateStore::TryLock(const std::string& name, const LockOwner& owner,
                                              int64_t ttl_ms) {
  LockAttempt attempt;
  Status s = db_->Transaction([&]() -> Status {
    int64_t now = NowUnixMs();
    Result<std::optional<LockInfo>> current = ReadLock(name);
    if (!current.ok()) return current.status();
    if (current->has_value() && Held(**current, now)) {
      attempt.holder = **current;
      return Status::Ok();
    }
    int64_t token = current->has_value() ? (*current)->token + 1 : 1;
    Result<Statement> st = db_->Cached(
        "INSERT INTO state_locks (name, owner, host, pid, token, expires_at, acquired_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, "
        "host = excluded.host, pid = excluded.pid, token = excluded.token, "
        "expires_at = excluded.expires_at, acquired_at = excluded.acquired_at");
    if (!st.ok()) return st.status();
    st->Bind(1, name).Bind(2, owner.owner).Bind(3, owner.host).Bind(4, owner.pid);
    st->Bind(5, token).Bind(6, now + ttl_ms).Bind(7, now);
    if (Status r = st->Run(); !r.ok()) return r;
    attempt.acquired = true;
    attempt.token = token;
    attempt.holder = LockInfo{name, owner.owner, owner.host, owner.pid, token, now + ttl_ms, now};
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return attempt;
}

Result<bool> SqliteStateStore::RenewLock(const std::string& name, int64_t token, int64_t ttl_ms) {
  bool renewed = false;
  Status s = db_->Transaction([&]() -> Status {
    int64_t now = NowUnixMs();
    Result<Statement> st = db_->Cached(
        "UPDATE state_locks SET expires_at = ? WHERE name = ? AND token = ? AND owner != '' "
        "AND expires_at > ?");
    if (!st.ok()) return st.status();
    if (Status r = st->Bind(1, now + ttl_ms).Bind(2, name).Bind(3, token).Bind(4, now).Run();
        !r.ok())
      return r;
    renewed = db_->Changes() > 0;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return renewed;
}

Result<bool> SqliteStateStore::Unlock(const std::string& name, int64_t token) {
  bool released = false;
  Status s = db_->Transaction([&]() -> Status {
    // The row stays (with its last token) so the next holder's token is larger.
    Result<Statement> st = db_->Cached(
        "UPDATE state_locks SET owner = '', host = '', pid = 0, expires_at = 0 "
        "WHERE name = ? AND token = ? AND owner != '' AND expires_at > ?");
    if (!st.ok()) return st.status();
    if (Status r = st->Bind(1, name).Bind(2, token).Bind(3, NowUnixMs()).Run(); !r.ok()) return r;
    released = db_->Changes() > 0;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return released;
}

Result<std::optional<LockInfo>> SqliteStateStore::LockHolder(const std::string& name) {
  Result<std::optional<LockInfo>> current = ReadLock(name);
  if (!current.ok()) return current.status();
  if (!current->has_value() || !Held(**current, NowUnixMs())) return std::optional<LockInfo>();
  return current;
}

Result<bool> SqliteStateStore::ForceUnlock(const std::string& name) {
  bool released = false;
  Status s = db_->Transaction([&]() -> Status {
    Result<std::optional<LockInfo>> current = ReadLock(name);
    if (!current.ok()) return current.status();
    if (!current->has_value() || !Held(**current, NowUnixMs())) return Status::Ok();
    Result<Statement> st = db_->Cached(
        "UPDATE state_locks SET owner = '', host = '', pid = 0, expires_at = 0 WHERE name = ?");
    if (!st.ok()) return st.status();
    released = true;
    return st->Bind(1, name).Run();
  });
  if (!s.ok()) return s;
  return released;
}

}  // namespace sloth
