// The master's persistent registry (SQLite, migration 7): enrolled agents, join tokens and
// revoked certificates. Liveness (Active/Inactive) is not here: it is the master's memory of
// live streams. All calls are serialised by the caller (the master's registry mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "base/status.h"
#include "store/db.h"

namespace sloth {

struct AgentRecord {
  std::string name;
  std::string fingerprint;
  std::string labels_json = "{}";
  std::string address;
  std::string version;
  std::string facts_json = "{}";
  std::string metrics_json = "{}";
  int64_t enrolled_at_ms = 0;
  int64_t last_heartbeat_ms = 0;
};

class AgentRegistry {
 public:
  explicit AgentRegistry(std::shared_ptr<Db> db) : db_(std::move(db)) {}

  // Stores a new token (the secret only as its SHA-256).
  Status AddToken(const std::string& id, const std::string& secret, int64_t expires_at_ms);
  // Checks and uses up a token for agent `name` atomically with enrolling it: fails with the
  // reason ("unknown join token", "join token already used", "join token expired",
  // "agent name NAME is taken") and changes nothing then.
  Status Enroll(const std::string& token_id, const std::string& secret, const std::string& name,
                const std::string& fingerprint);

  Result<std::vector<AgentRecord>> List();
  Result<AgentRecord> Get(const std::string& name);  // error "not found"
  // Called at (re)connection and by the periodic flush.
  Status UpdateSeen(const AgentRecord& record);
  // Removes the agent and revokes its certificate for good.
  Status Delete(const std::string& name);
  Result<std::unordered_set<std::string>> RevokedFingerprints();

 private:
  std::shared_ptr<Db> db_;
};

}  // namespace sloth
