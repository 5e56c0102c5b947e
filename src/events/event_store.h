// Events, hooks and hook executions in the store (migration 4). Plain SQL over a Db: the bus's
// writer thread uses one on its own connection, commands and the dispatcher another.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "events/event.h"
#include "store/db.h"

namespace sloth {

struct HookInfo {
  std::string name;
  std::string file;        // absolute; read at each execution
  std::string event_type;  // a pattern: "task.failed", "deploy.*"
  std::string stack;       // empty: every stack
  std::string description;
  bool enabled = true;
  int64_t timeout_ms = 30000;
  int retries = 2;  // attempts after the first failure
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
};

struct HookExecution {
  int64_t id = 0;
  std::string hook;
  std::string event_id;
  std::string event_type;
  int attempt = 1;
  bool success = false;
  std::string output;
  std::string error;
  int64_t duration_ms = 0;
  int64_t at_ms = 0;
};

// pending: some matching hook has not finished; delivered: every matching hook succeeded (or
// none matched); failed: a hook gave up after its retries, or the event was too deep to deliver.
struct StoredEvent {
  Event event;
  std::string status;
  std::string error;
};

struct EventFilter {
  std::string type;  // a pattern; empty: any
  std::string status;
  std::string stack;
  int limit = 100;
};

class EventStore {
 public:
  explicit EventStore(std::shared_ptr<Db> db) : db_(std::move(db)) {}
  Db& db() { return *db_; }

  // Inserting an event that is there already (a replayed journal) changes nothing.
  Status InsertEvent(const Event& event, const std::string& status, const std::string& error,
                     const std::string& owner);
  Status SetEventStatus(const std::string& id, const std::string& status, const std::string& error);
  Status RecordExecution(const HookExecution& execution);

  Result<std::vector<StoredEvent>> ListEvents(const EventFilter& filter);  // newest first
  Result<std::optional<StoredEvent>> GetEvent(const std::string& id);
  // Removes events (and hook executions) older than `before_ms`; returns how many events.
  Result<int64_t> DeleteEventsBefore(int64_t before_ms);

  // Takes over the pending events of owners that are gone (`alive(owner)` is false): they
  // become `owner`'s to deliver. Returns them, oldest first.
  Result<std::vector<Event>> ClaimOrphans(const std::string& owner,
                                          const std::function<bool(const std::string&)>& alive);
  // Makes an event pending again, owned by `owner` (events retry).
  Status Requeue(const std::string& id, const std::string& owner);
  // Hooks that already ran successfully on an event: a redelivery does not run them again.
  Result<std::set<std::string>> SucceededHooks(const std::string& event_id);

  // Adds or replaces a hook (its history stays).
  Status PutHook(const HookInfo& hook);
  Result<std::optional<HookInfo>> GetHook(const std::string& name);
  Result<std::vector<HookInfo>> ListHooks();
  // false when there is no such hook.
  Result<bool> SetHookEnabled(const std::string& name, bool enabled);
  Result<bool> DeleteHook(const std::string& name);
  Result<std::vector<HookExecution>> HookHistory(const std::string& hook,
                                                 int limit);  // newest first
  Result<std::vector<HookExecution>> ExecutionsOf(const std::string& event_id);

 private:
  std::shared_ptr<Db> db_;
};

}  // namespace sloth
