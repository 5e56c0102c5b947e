// RAII wrappers over the SQLite C API: a connection (Db) and a prepared statement (Statement).
// Errors come back as Status/Result with SQLite's message; nothing here throws.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sloth {

class Db;

class Statement {
 public:
  Statement() = default;
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are numbered from 1.
  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, double value);
  Statement& Bind(int index, const std::string& value);
  Statement& BindNull(int index);
  Statement& Bind(int index, const std::optional<int64_t>& value);

  // Runs one step: true when a row is available, false when done.
  Result<bool> Step();
  // Runs to completion (for statements without results).
  Status Run();
  // Clears the bindings and rewinds, for the next execution.
  void Reset();

  // Columns are numbered from 0.
  bool IsNull(int col) const;
  int64_t Int(int col) const;
  double Double(int col) const;
  std::string Text(int col) const;
  std::optional<int64_t> OptInt(int col) const;

 private:
  friend class Db;
  using Pool = std::vector<sqlite3_stmt*>;
  Statement(sqlite3_stmt* stmt, sqlite3* db, Pool* pool = nullptr)
      : stmt_(stmt), db_(db), pool_(pool) {}
  void Release();
  sqlite3_stmt* stmt_ = nullptr;
  sqlite3* db_ = nullptr;
  Pool* pool_ = nullptr;  // set for a cached statement: it goes back there instead of finalized
};

// Runs a statement that returns rows and collects them with `read(statement)`.
template <typename T, typename Read>
Result<std::vector<T>> CollectRows(Statement& st, Read read) {
  std::vector<T> rows;
  for (;;) {
    Result<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return rows;
    rows.push_back(read(st));
  }
}

struct Migration {
  int version;
  const char* sql;
};

class Db {
 public:
  // Opens (creating it and its directory if needed) a database file in WAL mode with
  // synchronous=NORMAL, foreign keys on and a busy timeout.
  static Result<std::unique_ptr<Db>> Open(const std::string& path, int busy_timeout_ms = 10000);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  Status Exec(const std::string& sql);
  Result<Statement> Prepare(const std::string& sql);
  // Like Prepare, for SQL run again and again (constant text): the compiled statement is kept,
  // keyed by its text, and reused. The Statement goes back to the cache, reset and unbound, when
  // it is destroyed; it must not outlive the Db. Nested use of the same text is safe: a text in
  // use gets a second statement.
  Result<Statement> Cached(std::string_view sql);
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK when it fails). IMMEDIATE takes
  // the write lock at once, so read-modify-write bodies are atomic across processes.
  // Called from inside another Transaction's body, it runs `body` in a SAVEPOINT instead: its
  // failure undoes only its own changes, and the enclosing transaction goes on (a group commit
  // runs many store calls this way, see StateStore::Group). If an error made SQLite roll the
  // whole transaction back (disk full, I/O error), the later nested bodies do not run and the
  // outer Transaction returns that error.
  Status Transaction(const std::function<Status()>& body);
  // Top-level transactions committed by this connection (for tests and benchmarks).
  int64_t commits() const { return commits_; }
  // Applies the migrations newer than the recorded schema_version, each in its own
  // transaction, in order.
  Status Migrate(const std::vector<Migration>& migrations);
  Result<int> SchemaVersion();
  int64_t Changes() const;
  const std::string& path() const { return path_; }

 private:
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  static int OnBusy(void* self, int count);
  std::string Error(const std::string& what) const;
  Status Step(std::string_view sql);
  Status Savepoint(const std::function<Status()>& body);

  // Heterogeneous lookup: Cached(string_view) finds a std::string key without a copy.
  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  sqlite3* db_;
  std::string path_;
  // Idle compiled statements by SQL text (unordered_map nodes are stable: Statements point at
  // their pool).
  std::unordered_map<std::string, Statement::Pool, TextHash, std::equal_to<>> cache_;
  int depth_ = 0;   // open Transaction bodies: > 0 means nested calls use savepoints
  Status aborted_;  // why SQLite rolled the current transaction back, if it did
  int64_t commits_ = 0;
  int busy_timeout_ms_ = 10000;
  std::chrono::steady_clock::time_point busy_since_;
};

}  // namespace sloth
