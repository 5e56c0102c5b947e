// SqliteStateStore: StateStore over one SQLite file (normally <data dir>/sloth.db). Every
// read-modify-write runs in a BEGIN IMMEDIATE transaction, so concurrent processes never lose
// an update. Statements are compiled once and reused (Db::Cached). Not thread-safe: use one
// instance per thread (each opens its own connection).
#pragma once

#include <memory>
#include <string>

#include "core/state_store.h"
#include "store/db.h"
#include "store/migrations.h"

namespace sloth {

class SqliteStateStore : public StateStore {
 public:
  // Opens the database and applies pending migrations.
  static Result<std::unique_ptr<SqliteStateStore>> Open(const std::string& path);
  // Works on a connection shared with the other stores of this process.
  explicit SqliteStateStore(std::shared_ptr<Db> db) : db_(std::move(db)) {}

  Result<std::optional<std::string>> Get(const std::string& key) override;
  Status Set(const std::string& key, const std::string& value,
             std::optional<int64_t> ttl_ms) override;
  Result<bool> Delete(const std::string& key) override;
  Result<bool> Exists(const std::string& key) override;
  Result<bool> SetTtl(const std::string& key, std::optional<int64_t> ttl_ms) override;
  Result<std::optional<StateEntry>> GetEntry(const std::string& key) override;
  Result<std::vector<StateEntry>> List(const std::string& prefix) override;
  Result<int64_t> Clear(const std::string& prefix) override;
  Result<StateStats> Stats() override;
  Result<std::string> Increment(const std::string& key, const std::string& delta) override;
  Result<bool> CompareSwap(const std::string& key, const std::optional<std::string>& expected,
                           const std::optional<std::string>& desired) override;
  Result<std::string> Append(const std::string& key, const std::string& text) override;
  Result<int64_t> ListPush(const std::string& key, const std::string& value) override;
  Result<std::optional<std::string>> ListPop(const std::string& key) override;
  Result<std::optional<std::string>> ListPeek(const std::string& key) override;
  Result<int64_t> ListLength(const std::string& key) override;
  Result<LockAttempt> TryLock(const std::string& name, const LockOwner& owner,
                              int64_t ttl_ms) override;
  Result<bool> RenewLock(const std::string& name, int64_t token, int64_t ttl_ms) override;
  Result<bool> Unlock(const std::string& name, int64_t token) override;
  Result<std::optional<LockInfo>> LockHolder(const std::string& name) override;
  Result<bool> ForceUnlock(const std::string& name) override;
  // One BEGIN IMMEDIATE ... COMMIT around the calls, each call in its own savepoint.
  Status Group(const std::function<void()>& calls) override;

  Db& db() { return *db_; }

 private:
  Result<std::optional<StateEntry>> ReadLive(const std::string& key, int64_t now);
  Status Write(const std::string& key, const std::string& value, std::optional<int64_t> expires_at);
  Status Remove(const std::string& key);
  Result<std::optional<std::string>> Pop(const std::string& key, bool remove);
  Result<std::optional<LockInfo>> ReadLock(const std::string& name);
  Status Purge(int64_t now);

  std::shared_ptr<Db> db_;
  bool grouped_ = false;  // inside Group, which purged expired rows already
};

}  // namespace sloth
