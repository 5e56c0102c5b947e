#include "store/db.h"

#include <sqlite3.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <filesystem>
#include <system_error>

namespace sloth {

Statement::~Statement() { Release(); }

Statement::Statement(Statement&& other) noexcept
    : stmt_(other.stmt_), db_(other.db_), pool_(other.pool_) {
  other.stmt_ = nullptr;
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    Release();
    stmt_ = other.stmt_;
    db_ = other.db_;
    pool_ = other.pool_;
    other.stmt_ = nullptr;
  }
  return *this;
}

void Statement::Release() {
  if (!stmt_) return;
  if (pool_) {
    // Reset also ends the statement's read transaction, which an unfinished SELECT keeps open.
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    pool_->push_back(stmt_);
  } else {
    sqlite3_finalize(stmt_);
  }
  stmt_ = nullptr;
}

Statement& Statement::Bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Statement& Statement::Bind(int index, double value) {
  sqlite3_bind_double(stmt_, index, value);
  return *this;
}

Statement& Statement::Bind(int index, const std::string& value) {
  sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::BindNull(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

Statement& Statement::Bind(int index, const std::optional<int64_t>& value) {
  return value ? Bind(index, *value) : BindNull(index);
}

Result<bool> Statement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  std::string message = sqlite3_errmsg(db_);
  sqlite3_reset(stmt_);
  if (rc == SQLITE_BUSY) message = "database is locked (busy timeout expired): " + message;
  return Status::Error(message);
}

Status Statement::Run() {
  for (;;) {
    Result<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return Status::Ok();
  }
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Statement::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int64_t Statement::Int(int col) const { return sqlite3_column_int64(stmt_, col); }
double Statement::Double(int col) const { return sqlite3_column_double(stmt_, col); }

std::string Statement::Text(int col) const {
  const unsigned char* text = sqlite3_column_text(stmt_, col);
  if (!text) return "";
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

std::optional<int64_t> Statement::OptInt(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Int(col);
}

namespace {

// Why SQLite may fail to open or write a database in `dir`, when the file system says so: its
// own messages ("unable to open database file", "disk I/O error") do not tell.
std::string Why(const std::filesystem::path& dir) {
  std::string d = dir.empty() ? "." : dir.string();
  if (access(d.c_str(), W_OK) != 0)
    return " (" + d + ": " + std::strerror(errno) + ")";  // EROFS also applies to root
  struct statvfs fs;
  if (statvfs(d.c_str(), &fs) == 0 && fs.f_bavail * fs.f_frsize < 64 * 1024)
    return " (" + d + ": no space left on the device)";
  return "";
}

}  // namespace

Result<std::unique_ptr<Db>> Db::Open(const std::string& path, int busy_timeout_ms) {
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::filesystem::create_directories(parent, ec);
    if (ec) return Status::Error("cannot create " + parent.string() + ": " + ec.message());
  }
  // Memory statistics take a global mutex around every SQLite allocation: threads using their own
  // connections (a run and its event writer) would queue on it. Set once, before SQLite starts.
  static const bool configured = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK;
  (void)configured;
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close(raw);
    return Status::Error("cannot open " + path + ": " + message + Why(parent));
  }
  std::unique_ptr<Db> db(new Db(raw, path));
  db->busy_timeout_ms_ = busy_timeout_ms;
  sqlite3_busy_handler(raw, &Db::OnBusy, db.get());
  // journal_mode returns a row; a read-only file or directory fails here or at the first write.
  Status wal = db->Exec("PRAGMA journal_mode=WAL");
  if (wal.ok()) wal = db->Exec("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON");
  if (!wal.ok()) return Status::Error("cannot open " + path + ": " + wal.message() + Why(parent));
  return db;
}

// SQLite's own busy handler sleeps 1, 2, 5, 10... ms between tries: a short run whose writes
// meet the event writer's for a moment lost several milliseconds. Locks here are held for
// microseconds to a few milliseconds, so try again soon: 50 us, doubling up to 2 ms.
int Db::OnBusy(void* self, int count) {
  Db* db = static_cast<Db*>(self);
  auto now = std::chrono::steady_clock::now();
  if (count == 0) db->busy_since_ = now;
  if (now - db->busy_since_ >= std::chrono::milliseconds(db->busy_timeout_ms_)) return 0;
  usleep(static_cast<useconds_t>(std::min(50 << std::min(count, 6), 2000)));
  return 1;
}

Db::~Db() {
  for (auto& [sql, pool] : cache_)
    for (sqlite3_stmt* stmt : pool) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

std::string Db::Error(const std::string& what) const {
  int rc = sqlite3_errcode(db_);
  std::string message = sqlite3_errmsg(db_);
  if (rc == SQLITE_BUSY) message = "database is locked (busy timeout expired): " + message;
  return what + ": " + message;
}

Status Db::Exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::Ok();
  std::string message = err ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  if (rc == SQLITE_BUSY) message = "database is locked (busy timeout expired): " + message;
  return Status::Error(message);
}

Result<Statement> Db::Prepare(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return Status::Error(Error("cannot prepare \"" + sql + "\""));
  return Statement(stmt, db_);
}

Result<Statement> Db::Cached(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) it = cache_.emplace(std::string(sql), Statement::Pool()).first;
  Statement::Pool& pool = it->second;
  if (!pool.empty()) {
    sqlite3_stmt* stmt = pool.back();
    pool.pop_back();
    return Statement(stmt, db_, &pool);
  }
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return Status::Error(Error("cannot prepare \"" + std::string(sql) + "\""));
  return Statement(stmt, db_, &pool);
}

Status Db::Step(std::string_view sql) {
  Result<Statement> st = Cached(sql);
  if (!st.ok()) return st.status();
  return st->Run();
}

namespace {

// Counts the open Transaction bodies, also when one throws.
struct Depth {
  explicit Depth(int& depth) : depth_(depth) { ++depth_; }
  ~Depth() { --depth_; }
  int& depth_;
};

}  // namespace

Status Db::Transaction(const std::function<Status()>& body) {
  if (depth_ > 0) return Savepoint(body);
  if (Status s = Step("BEGIN IMMEDIATE"); !s.ok()) return s;
  aborted_ = Status::Ok();
  Status result;
  {
    Depth depth(depth_);
    result = body();
  }
  if (result.ok()) result = aborted_;
  if (result.ok()) result = Step("COMMIT");
  if (result.ok()) ++commits_;
  if (!result.ok() && !sqlite3_get_autocommit(db_)) (void)Step("ROLLBACK");
  aborted_ = Status::Ok();
  return result;
}

Status Db::Savepoint(const std::function<Status()>& body) {
  if (!aborted_.ok()) return aborted_;
  if (Status s = Step("SAVEPOINT nested"); !s.ok()) return s;
  Status result;
  {
    Depth depth(depth_);
    result = body();
  }
  if (sqlite3_get_autocommit(db_)) {
    // SQLite rolled the whole transaction back (SQLITE_FULL, SQLITE_IOERR...): what the other
    // nested bodies did is gone too, so the enclosing transaction must fail.
    aborted_ = result.ok() ? Status::Error("the transaction was rolled back") : result;
    return aborted_;
  }
  if (result.ok()) {
    result = Step("RELEASE nested");  // keeps the changes in the enclosing transaction
    if (result.ok()) return result;
  }
  (void)Step("ROLLBACK TO nested");
  (void)Step("RELEASE nested");
  return result;
}

Result<int> Db::SchemaVersion() {
  if (Status s = Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
      !s.ok())
    return s;
  Result<Statement> st = Prepare("SELECT COALESCE(MAX(version), 0) FROM schema_version");
  if (!st.ok()) return st.status();
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  return static_cast<int>(st->Int(0));
}

Status Db::Migrate(const std::vector<Migration>& migrations) {
  Result<int> current = SchemaVersion();
  if (!current.ok()) return current.status();
  for (const Migration& m : migrations) {
    if (m.version <= *current) continue;
    Status s = Transaction([&]() -> Status {
      // Another process may have migrated while we waited for the write lock.
      Result<int> now = SchemaVersion();
      if (!now.ok()) return now.status();
      if (m.version <= *now) return Status::Ok();
      if (Status e = Exec(m.sql); !e.ok())
        return Status::Error("migration " + std::to_string(m.version) + ": " + e.message());
      Result<Statement> ins = Prepare("INSERT INTO schema_version (version) VALUES (?)");
      if (!ins.ok()) return ins.status();
      return ins->Bind(1, static_cast<int64_t>(m.version)).Run();
    });
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

int64_t Db::Changes() const { return sqlite3_changes64(db_); }

}  // namespace sloth
