// `state ...`: the key/value state of the data dir's database, from the command line.
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "base/duration.h"
#include "cli/commands.h"
#include "cli/data_dir.h"
#include "store/sqlite_state_store.h"

namespace sloth {
namespace {

using nlohmann::json;

// Exit code for a store error: 3 when the database stayed locked past its timeout.
int StoreFailure(const std::string& message) {
  bool locked = message.find("database is locked") != std::string::npos;
  return Fail(locked ? kExitUnreachable : kExitFailed, message);
}

Result<std::unique_ptr<SqliteStateStore>> OpenStore(const GlobalOptions& global) {
  return SqliteStateStore::Open(DatabasePath(DataDir(global.data_dir)));
}

bool ValidFormat(const std::string& format) { return format == "table" || format == "json"; }

// The raw form of a value: strings unquoted, everything else as JSON.
std::string Raw(const std::string& text) {
  json value = json::parse(text, nullptr, false);
  if (value.is_string()) return value.get<std::string>();
  return value.is_discarded() ? text : value.dump();
}

std::string ExpiresIn(const std::optional<int64_t>& expires_at) {
  if (!expires_at) return "-";
  int64_t left = std::max<int64_t>(*expires_at - NowUnixMs(), 0);
  return FormatHuman(std::chrono::milliseconds(left));
}

}  // namespace

int CmdStateList(const GlobalOptions& global, const StateOptions& options) {
  if (!ValidFormat(options.output))
    return Fail(kExitBadInput, "unknown output \"" + options.output + "\" (table or json)");
  auto store = OpenStore(global);
  if (!store.ok()) return StoreFailure(store.error());
  auto entries = (*store)->List(options.key);
  if (!entries.ok()) return StoreFailure(entries.error());
  if (options.output == "json") {
    json out = json::object();
    for (const StateEntry& e : *entries) {
      json value = json::parse(e.value, nullptr, false);
      out[e.key] = value.is_discarded() ? json(e.value) : value;
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (entries->empty()) {
    std::cout << "no keys" << (options.key.empty() ? "" : " starting with " + options.key) << "\n";
    return kExitOk;
  }
  size_t width = 3;
  for (const StateEntry& e : *entries) width = std::max(width, e.key.size());
  std::cout << std::left << std::setw(static_cast<int>(width) + 2) << "KEY" << std::setw(12)
            << "EXPIRES IN"
            << "VALUE\n";
  for (const StateEntry& e : *entries) {
    std::string value = Raw(e.value);
    if (value.size() > 80) value = value.substr(0, 77) + "...";
    std::cout << std::setw(static_cast<int>(width) + 2) << e.key << std::setw(12)
              << ExpiresIn(e.expires_at_ms) << value << "\n";
  }
  return kExitOk;
}

int CmdStateGet(const GlobalOptions& global, const StateOptions& options) {
  auto store = OpenStore(global);
  if (!store.ok()) return StoreFailure(store.error());
  auto value = (*store)->Get(options.key);
  if (!value.ok()) return StoreFailure(value.error());
  if (!value->has_value()) return Fail(kExitFailed, "key \"" + options.key + "\" not found");
  std::cout << Raw(**value) << "\n";
  return kExitOk;
}

int CmdStateSet(const GlobalOptions& global, const StateOptions& options) {
  if (options.key.empty()) return Fail(kExitBadInput, "the key must not be empty");
  std::optional<int64_t> ttl_ms;
  if (!options.ttl.empty()) {
    auto ttl = ParseDuration(options.ttl);
    if (!ttl.ok()) return Fail(kExitBadInput, "--ttl: " + ttl.error());
    if (ToMillis(*ttl) <= 0) return Fail(kExitBadInput, "--ttl must be at least 1ms");
    ttl_ms = ToMillis(*ttl);
  }
  json value = json::parse(options.value, nullptr, false);
  if (value.is_discarded()) value = options.value;  // not JSON: a string
  auto store = OpenStore(global);
  if (!store.ok()) return StoreFailure(store.error());
  if (Status s = (*store)->Set(options.key, value.dump(), ttl_ms); !s.ok())
    return StoreFailure(s.message());
  return kExitOk;
}

int CmdStateDelete(const GlobalOptions& global, const StateOptions& options) {
  auto store = OpenStore(global);
  if (!store.ok()) return StoreFailure(store.error());
  auto deleted = (*store)->Delete(options.key);
  if (!deleted.ok()) return StoreFailure(deleted.error());
  if (!*deleted) return Fail(kExitFailed, "key \"" + options.key + "\" not found");
  return kExitOk;
}

int CmdStateClear(const GlobalOptions& global, const StateOptions& options) {
  auto store = OpenStore(global);
  if (!store.ok()) return StoreFailure(store.error());
  std::string what = options.key.empty() ? "every key" : "the keys starting with " + options.key;
  if (!options.force) {
    auto entries = (*store)->List(options.key);
    if (!entries.ok()) return StoreFailure(entries.error());
    return Fail(kExitBadInput, "this would delete " + std::to_string(entries->size()) +
                                   " key(s) (" + what + "); run again with --force");
  }
  auto removed = (*store)->Clear(options.key);
  if (!removed.ok()) return StoreFailure(removed.error());
  std::cout << "deleted " << *removed << " key(s)\n";
  return kExitOk;
}

int CmdStateStats(const GlobalOptions& global, const StateOptions& options) {
  if (!ValidFormat(options.output))
    return Fail(kExitBadInput, "unknown output \"" + options.output + "\" (table or json)");
  std::string path = DatabasePath(DataDir(global.data_dir));
  auto store = SqliteStateStore::Open(path);
  if (!store.ok()) return StoreFailure(store.error());
  auto stats = (*store)->Stats();
  if (!stats.ok()) return StoreFailure(stats.error());
  if (options.output == "json") {
    json out = {{"keys", stats->keys},
                {"expired", stats->expired},
                {"value_bytes", stats->value_bytes},
                {"locks_held", stats->locks_held},
                {"database", path}};
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "database:    " << path << "\n"
            << "keys:        " << stats->keys << "\n"
            << "expired:     " << stats->expired << " (not purged yet)\n"
            << "value bytes: " << stats->value_bytes << "\n"
            << "locks held:  " << stats->locks_held << "\n";
  return kExitOk;
}

}  // namespace sloth
