// RAII wrappers over the SQLite C API: a connection (Db) and a prepared statement (Statement).
// Errors come back as Status/Result with SQLite's message; nothing here throws.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
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
  Statement(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}
  sqlite3_stmt* stmt_ = nullptr;
  sqlite3* db_ = nullptr;
};

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
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK when it fails). IMMEDIATE takes
  // the write lock at once, so read-modify-write bodies are atomic across processes.
  Status Transaction(const std::function<Status()>& body);
  // Applies the migrations newer than the recorded schema_version, each in its own
  // transaction, in order.
  Status Migrate(const std::vector<Migration>& migrations);
  Result<int> SchemaVersion();
  int64_t Changes() const;
  const std::string& path() const { return path_; }

 private:
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  std::string Error(const std::string& what) const;
  sqlite3* db_;
  std::string path_;
};

}  // namespace sloth
