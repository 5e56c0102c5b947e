#include "rpc/agent_registry.h"

#include "core/state_store.h"
#include "rpc/pki.h"

namespace sloth {
namespace {

AgentRecord ReadAgent(Statement& st) {
  AgentRecord r;
  r.name = st.Text(0);
  r.fingerprint = st.Text(1);
  r.labels_json = st.Text(2);
  r.address = st.Text(3);
  r.version = st.Text(4);
  r.facts_json = st.Text(5);
  r.metrics_json = st.Text(6);
  r.enrolled_at_ms = st.Int(7);
  r.last_heartbeat_ms = st.Int(8);
  return r;
}

constexpr const char* kAgentColumns =
    "SELECT name, fingerprint, labels, address, version, facts, metrics, enrolled_at, "
    "last_heartbeat FROM agents";

}  // namespace

Status AgentRegistry::AddToken(const std::string& id, const std::string& secret,
                               int64_t expires_at_ms) {
  Result<Statement> st = db_->Prepare(
      "INSERT INTO join_tokens (id, secret_hash, created_at, expires_at) VALUES (?, ?, ?, ?)");
  if (!st.ok()) return st.status();
  return st->Bind(1, id)
      .Bind(2, pki::Sha256Hex(secret))
      .Bind(3, NowUnixMs())
      .Bind(4, expires_at_ms)
      .Run();
}

Status AgentRegistry::Enroll(const std::string& token_id, const std::string& secret,
                             const std::string& name, const std::string& fingerprint) {
  return db_->Transaction([&]() -> Status {
    Result<Statement> tok =
        db_->Prepare("SELECT secret_hash, expires_at, used_at FROM join_tokens WHERE id = ?");
    if (!tok.ok()) return tok.status();
    tok->Bind(1, token_id);
    Result<bool> row = tok->Step();
    if (!row.ok()) return row.status();
    // A wrong secret reads like an unknown id: the answer must not help guessing.
    if (!*row || tok->Text(0) != pki::Sha256Hex(secret)) return Status::Error("unknown join token");
    if (!tok->IsNull(2)) return Status::Error("join token already used");
    if (tok->Int(1) < NowUnixMs()) return Status::Error("join token expired");
    Result<AgentRecord> existing = Get(name);
    if (existing.ok()) return Status::Error("agent name " + name + " is taken");
    Result<Statement> use =
        db_->Prepare("UPDATE join_tokens SET used_at = ?, used_by = ? WHERE id = ?");
    if (!use.ok()) return use.status();
    if (Status s = use->Bind(1, NowUnixMs()).Bind(2, name).Bind(3, token_id).Run(); !s.ok())
      return s;
    Result<Statement> add =
        db_->Prepare("INSERT INTO agents (name, fingerprint, enrolled_at) VALUES (?, ?, ?)");
    if (!add.ok()) return add.status();
    return add->Bind(1, name).Bind(2, fingerprint).Bind(3, NowUnixMs()).Run();
  });
}

Result<std::vector<AgentRecord>> AgentRegistry::List() {
  Result<Statement> st = db_->Prepare(std::string(kAgentColumns) + " ORDER BY name");
  if (!st.ok()) return st.status();
  return CollectRows<AgentRecord>(*st, ReadAgent);
}

Result<AgentRecord> AgentRegistry::Get(const std::string& name) {
  Result<Statement> st = db_->Prepare(std::string(kAgentColumns) + " WHERE name = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, name);
  Result<std::vector<AgentRecord>> rows = CollectRows<AgentRecord>(*st, ReadAgent);
  if (!rows.ok()) return rows.status();
  if (rows->empty()) return Status::Error("not found");
  return std::move(rows->front());
}

Status AgentRegistry::UpdateSeen(const AgentRecord& r) {
  Result<Statement> st = db_->Cached(
      "UPDATE agents SET labels = ?, address = ?, version = ?, facts = ?, metrics = ?, "
      "last_heartbeat = ? WHERE name = ?");
  if (!st.ok()) return st.status();
  return st->Bind(1, r.labels_json)
      .Bind(2, r.address)
      .Bind(3, r.version)
      .Bind(4, r.facts_json)
      .Bind(5, r.metrics_json)
      .Bind(6, r.last_heartbeat_ms)
      .Bind(7, r.name)
      .Run();
}

Status AgentRegistry::Delete(const std::string& name) {
  return db_->Transaction([&]() -> Status {
    Result<AgentRecord> agent = Get(name);
    if (!agent.ok()) return agent.status();
    Result<Statement> revoke = db_->Prepare(
        "INSERT OR REPLACE INTO revoked_certs (fingerprint, name, revoked_at) VALUES (?, ?, ?)");
    if (!revoke.ok()) return revoke.status();
    if (Status s = revoke->Bind(1, agent->fingerprint).Bind(2, name).Bind(3, NowUnixMs()).Run();
        !s.ok())
      return s;
    Result<Statement> del = db_->Prepare("DELETE FROM agents WHERE name = ?");
    if (!del.ok()) return del.status();
    return del->Bind(1, name).Run();
  });
}

Result<std::unordered_set<std::string>> AgentRegistry::RevokedFingerprints() {
  Result<Statement> st = db_->Prepare("SELECT fingerprint FROM revoked_certs");
  if (!st.ok()) return st.status();
  Result<std::vector<std::string>> rows =
      CollectRows<std::string>(*st, [](Statement& s) { return s.Text(0); });
  if (!rows.ok()) return rows.status();
  return std::unordered_set<std::string>(rows->begin(), rows->end());
}

}  // namespace sloth
