#include "store/migrations.h"

namespace sloth {

const std::vector<Migration>& StoreMigrations() {
  static const std::vector<Migration> migrations = {
      {1,
       "CREATE TABLE state_kv ("
       "  key TEXT PRIMARY KEY,"
       "  value TEXT NOT NULL,"
       "  expires_at INTEGER,"
       "  updated_at INTEGER NOT NULL"
       ") WITHOUT ROWID;"
       "CREATE INDEX state_kv_expires ON state_kv(expires_at) WHERE expires_at IS NOT NULL;"
       "CREATE TABLE state_locks ("
       "  name TEXT PRIMARY KEY,"
       "  owner TEXT NOT NULL DEFAULT '',"
       "  host TEXT NOT NULL DEFAULT '',"
       "  pid INTEGER NOT NULL DEFAULT 0,"
       "  token INTEGER NOT NULL,"
       "  expires_at INTEGER NOT NULL,"
       "  acquired_at INTEGER NOT NULL"
       ") WITHOUT ROWID;"},
      // Stacks, their resources, and the record of every run with its tasks.
      {2,
       "CREATE TABLE stacks ("
       "  id TEXT PRIMARY KEY,"
       "  name TEXT NOT NULL UNIQUE,"
       "  description TEXT NOT NULL DEFAULT '',"
       "  workflow_file TEXT NOT NULL DEFAULT '',"
       "  status TEXT NOT NULL DEFAULT 'created',"
       "  outputs TEXT NOT NULL DEFAULT '{}',"
       "  created_at INTEGER NOT NULL,"
       "  updated_at INTEGER NOT NULL"
       ");"
       "CREATE TABLE stack_resources ("
       "  stack_id TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,"
       "  type TEXT NOT NULL,"
       "  name TEXT NOT NULL,"
       "  module TEXT NOT NULL DEFAULT '',"
       "  properties TEXT NOT NULL DEFAULT '{}',"
       "  dependencies TEXT NOT NULL DEFAULT '[]',"
       "  state TEXT NOT NULL DEFAULT 'pending',"
       "  attributes TEXT NOT NULL DEFAULT '{}',"
       "  run_id TEXT NOT NULL DEFAULT '',"
       "  created_at INTEGER NOT NULL,"
       "  updated_at INTEGER NOT NULL,"
       "  PRIMARY KEY (stack_id, type, name)"
       ") WITHOUT ROWID;"
       "CREATE TABLE runs ("
       "  id TEXT PRIMARY KEY,"
       "  stack_id TEXT NOT NULL REFERENCES stacks(id) ON DELETE CASCADE,"
       "  workflow TEXT NOT NULL,"
       "  file TEXT NOT NULL DEFAULT '',"
       "  status TEXT NOT NULL,"
       "  check_mode INTEGER NOT NULL DEFAULT 0,"
       "  started_at INTEGER NOT NULL,"
       "  ended_at INTEGER,"
       "  error TEXT NOT NULL DEFAULT '',"
       "  user TEXT NOT NULL DEFAULT '',"
       "  host TEXT NOT NULL DEFAULT '',"
       "  pid INTEGER NOT NULL DEFAULT 0,"
       "  values_json TEXT NOT NULL DEFAULT '{}',"
       "  outputs TEXT NOT NULL DEFAULT '{}',"
       "  metadata TEXT NOT NULL DEFAULT '{}'"
       ");"
       "CREATE INDEX runs_by_stack ON runs(stack_id, started_at);"
       "CREATE TABLE run_tasks ("
       "  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
       "  seq INTEGER NOT NULL,"
       "  name TEXT NOT NULL,"
       "  status TEXT NOT NULL,"
       "  attempts INTEGER NOT NULL DEFAULT 0,"
       "  duration_ms INTEGER NOT NULL DEFAULT 0,"
       "  changed INTEGER NOT NULL DEFAULT 0,"
       "  message TEXT NOT NULL DEFAULT '',"
       "  error TEXT NOT NULL DEFAULT '',"
       "  output TEXT NOT NULL DEFAULT '{}',"
       "  PRIMARY KEY (run_id, name)"
       ") WITHOUT ROWID;"},
      // Secrets, keyed by stack name so they can be added before the stack's first run. One key
      // record per stack (the salt and a sealed check value that tells a wrong password), and
      // the sealed values (base64 text).
      {3,
       "CREATE TABLE secret_keys ("
       "  stack TEXT PRIMARY KEY,"
       "  salt TEXT NOT NULL,"
       "  alg INTEGER NOT NULL,"
       "  opslimit INTEGER NOT NULL,"
       "  memlimit INTEGER NOT NULL,"
       "  check_nonce TEXT NOT NULL,"
       "  check_ct TEXT NOT NULL,"
       "  created_at INTEGER NOT NULL"
       ") WITHOUT ROWID;"
       "CREATE TABLE secrets ("
       "  stack TEXT NOT NULL REFERENCES secret_keys(stack),"
       "  name TEXT NOT NULL,"
       "  nonce TEXT NOT NULL,"
       "  ciphertext TEXT NOT NULL,"
       "  created_at INTEGER NOT NULL,"
       "  updated_at INTEGER NOT NULL,"
       "  PRIMARY KEY (stack, name)"
       ") WITHOUT ROWID;"},
      // Events (seq keeps their order), hooks, and each execution of a hook on an event. An
      // event's owner is the process that delivers it (its journal token).
      {4,
       "CREATE TABLE events ("
       "  seq INTEGER PRIMARY KEY,"
       "  id TEXT NOT NULL UNIQUE,"
       "  type TEXT NOT NULL,"
       "  timestamp INTEGER NOT NULL,"
       "  source TEXT NOT NULL DEFAULT '',"
       "  stack TEXT NOT NULL DEFAULT '',"
       "  agent TEXT NOT NULL DEFAULT '',"
       "  run_id TEXT NOT NULL DEFAULT '',"
       "  depth INTEGER NOT NULL DEFAULT 0,"
       "  data TEXT NOT NULL DEFAULT '{}',"
       "  status TEXT NOT NULL,"
       "  error TEXT NOT NULL DEFAULT '',"
       "  owner TEXT NOT NULL DEFAULT ''"
       ");"
       "CREATE INDEX events_pending ON events(owner) WHERE status = 'pending';"
       "CREATE TABLE hooks ("
       "  name TEXT PRIMARY KEY,"
       "  file TEXT NOT NULL,"
       "  event_type TEXT NOT NULL,"
       "  stack TEXT NOT NULL DEFAULT '',"
       "  description TEXT NOT NULL DEFAULT '',"
       "  enabled INTEGER NOT NULL DEFAULT 1,"
       "  timeout_ms INTEGER NOT NULL,"
       "  retries INTEGER NOT NULL,"
       "  created_at INTEGER NOT NULL,"
       "  updated_at INTEGER NOT NULL"
       ") WITHOUT ROWID;"
       "CREATE TABLE hook_executions ("
       "  id INTEGER PRIMARY KEY,"
       "  hook TEXT NOT NULL,"
       "  event_id TEXT NOT NULL,"
       "  event_type TEXT NOT NULL,"
       "  attempt INTEGER NOT NULL,"
       "  success INTEGER NOT NULL,"
       "  output TEXT NOT NULL DEFAULT '',"
       "  error TEXT NOT NULL DEFAULT '',"
       "  duration_ms INTEGER NOT NULL,"
       "  at INTEGER NOT NULL"
       ");"
       "CREATE INDEX hook_executions_by_hook ON hook_executions(hook, id);"
       "CREATE INDEX hook_executions_by_event ON hook_executions(event_id);"},
      // Cron schedules, one per stack. `anchor_at` is when the schedule was last enabled (the
      // start of @every intervals); `revision` changes with every change of the schedule itself
      // (not with run results), so a running scheduler can tell what to reload; `last_due` is
      // the scheduled time last handled (fired or reported missed).
      {5,
       "CREATE TABLE schedules ("
       "  stack TEXT PRIMARY KEY,"
       "  cron TEXT NOT NULL,"
       "  file TEXT NOT NULL,"
       "  values_json TEXT NOT NULL DEFAULT '[]',"
       "  enabled INTEGER NOT NULL DEFAULT 1,"
       "  revision INTEGER NOT NULL DEFAULT 1,"
       "  created_at INTEGER NOT NULL,"
       "  updated_at INTEGER NOT NULL,"
       "  anchor_at INTEGER NOT NULL,"
       "  last_due INTEGER,"
       "  last_run INTEGER,"
       "  last_status TEXT NOT NULL DEFAULT '',"
       "  last_error TEXT NOT NULL DEFAULT '',"
       "  last_run_pid INTEGER NOT NULL DEFAULT 0"
       ") WITHOUT ROWID;"},
      // SSH profiles (`ssh add`), used by `run --ssh NAME`.
      {6,
       "CREATE TABLE ssh_profiles ("
       "  name TEXT PRIMARY KEY,"
       "  host TEXT NOT NULL,"
       "  port INTEGER NOT NULL DEFAULT 22,"
       "  user TEXT NOT NULL DEFAULT '',"
       "  key_file TEXT NOT NULL DEFAULT '',"
       "  known_hosts TEXT NOT NULL DEFAULT '',"
       "  created_at INTEGER NOT NULL"
       ") WITHOUT ROWID;"},
      // The master's agent registry (distributed.md): enrolled agents, one-time join tokens
      // (only a hash of the secret is kept) and revoked certificate fingerprints.
      {7,
       "CREATE TABLE agents ("
       "  name TEXT PRIMARY KEY,"
       "  fingerprint TEXT NOT NULL,"
       "  labels TEXT NOT NULL DEFAULT '{}',"
       "  address TEXT NOT NULL DEFAULT '',"
       "  version TEXT NOT NULL DEFAULT '',"
       "  facts TEXT NOT NULL DEFAULT '{}',"
       "  metrics TEXT NOT NULL DEFAULT '{}',"
       "  enrolled_at INTEGER NOT NULL,"
       "  last_heartbeat INTEGER NOT NULL DEFAULT 0"
       ") WITHOUT ROWID;"
       "CREATE TABLE join_tokens ("
       "  id TEXT PRIMARY KEY,"
       "  secret_hash TEXT NOT NULL,"
       "  created_at INTEGER NOT NULL,"
       "  expires_at INTEGER NOT NULL,"
       "  used_at INTEGER,"
       "  used_by TEXT NOT NULL DEFAULT ''"
       ") WITHOUT ROWID;"
       "CREATE TABLE revoked_certs ("
       "  fingerprint TEXT PRIMARY KEY,"
       "  name TEXT NOT NULL,"
       "  revoked_at INTEGER NOT NULL"
       ") WITHOUT ROWID;"},
      // Where a delegated task ran, in the run record.
      {8, "ALTER TABLE run_tasks ADD COLUMN agent TEXT NOT NULL DEFAULT '';"},
  };
  return migrations;
}

std::string DatabasePath(const std::string& data_dir) { return data_dir + "/sloth.db"; }

Result<std::shared_ptr<Db>> OpenDatabase(const std::string& path) {
  Result<std::unique_ptr<Db>> db = Db::Open(path);
  if (!db.ok()) return db.status();
  if (Status s = (*db)->Migrate(StoreMigrations()); !s.ok())
    return Status::Error("cannot prepare " + path + ": " + s.message());
  return std::shared_ptr<Db>(std::move(*db));
}

}  // namespace sloth
