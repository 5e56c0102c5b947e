// `ssh add|list|remove`: named SSH connection settings kept in sloth.db, so that
// `run --ssh NAME` can send a workflow's commands to that host (modules/ssh.md).
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/data_dir.h"
#include "cli/ssh_profiles.h"
#include "store/migrations.h"

namespace sloth {
namespace {

constexpr size_t kMaxNameLength = 64;

// Letters, digits, '_', '-' and '.', as for secrets: names show up in tables and flags.
bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (unsigned char c : name)
    if (!std::isalnum(c) && c != '_' && c != '-' && c != '.') return false;
  return true;
}

int CheckName(const std::string& name) {
  if (ValidName(name)) return 0;
  return Fail(kExitBadInput,
              "invalid profile name \"" + name + "\" (1-64 letters, digits, '_', '-' or '.')");
}

Result<std::shared_ptr<Db>> Open(const GlobalOptions& global) {
  return OpenDatabase(DatabasePath(DataDir(global.data_dir)));
}

// Key and known_hosts paths are stored absolute: a run may start in another directory.
std::string Absolute(const std::string& path) {
  if (path.empty()) return path;
  std::error_code ec;
  auto abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

std::vector<SshProfile> ReadAll(Statement& st, Status& error) {
  std::vector<SshProfile> out;
  for (;;) {
    auto row = st.Step();
    if (!row.ok()) {
      error = row.status();
      break;
    }
    if (!*row) break;
    out.push_back(
        {st.Text(0), st.Text(1), static_cast<int>(st.Int(2)), st.Text(3), st.Text(4), st.Text(5)});
  }
  return out;
}

constexpr char kSelect[] = "SELECT name, host, port, user, key_file, known_hosts FROM ssh_profiles";

}  // namespace

Result<SshProfile> LoadSshProfile(Db& db, const std::string& name) {
  auto st = db.Prepare(std::string(kSelect) + " WHERE name = ?1");
  if (!st.ok()) return st.status();
  st->Bind(1, name);
  Status error;
  auto found = ReadAll(*st, error);
  if (!error.ok()) return error;
  if (found.empty())
    return Status::Error("no SSH profile \"" + name + "\" (add one with `sloth-runner ssh add`)");
  return found.front();
}

int CmdSshAdd(const GlobalOptions& global, const SshOptions& o) {
  if (int rc = CheckName(o.name)) return rc;
  if (o.host.empty()) return Fail(kExitBadInput, "--host must not be empty");
  if (o.port <= 0 || o.port > 65535) return Fail(kExitBadInput, "--port must be 1..65535");
  for (const std::string* file : {&o.key, &o.known_hosts})
    if (!file->empty() && access(file->c_str(), R_OK) != 0)
      return Fail(kExitBadInput, "cannot read " + *file);
  auto db = Open(global);
  if (!db.ok()) return Fail(kExitFailed, db.error());
  auto st = (*db)->Prepare(
      "INSERT INTO ssh_profiles (name, host, port, user, key_file, known_hosts, created_at) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(name) DO NOTHING");
  if (!st.ok()) return Fail(kExitFailed, st.error());
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  st->Bind(1, o.name).Bind(2, o.host).Bind(3, int64_t{o.port}).Bind(4, o.user);
  st->Bind(5, Absolute(o.key)).Bind(6, Absolute(o.known_hosts)).Bind(7, now);
  if (Status s = st->Run(); !s.ok()) return Fail(kExitFailed, s.message());
  if ((*db)->Changes() == 0)
    return Fail(kExitFailed, "SSH profile \"" + o.name + "\" exists (remove it first)");
  std::cout << "added SSH profile " << o.name << "\n";
  return kExitOk;
}

int CmdSshList(const GlobalOptions& global, const SshOptions& o) {
  if (o.output != "table" && o.output != "json")
    return Fail(kExitBadInput, "unknown output \"" + o.output + "\" (table or json)");
  auto db = Open(global);
  if (!db.ok()) return Fail(kExitFailed, db.error());
  auto st = (*db)->Prepare(std::string(kSelect) + " ORDER BY name");
  if (!st.ok()) return Fail(kExitFailed, st.error());
  Status error;
  auto all = ReadAll(*st, error);
  if (!error.ok()) return Fail(kExitFailed, error.message());
  if (o.output == "json") {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const SshProfile& p : all)
      out.push_back({{"name", p.name},
                     {"host", p.host},
                     {"port", p.port},
                     {"user", p.user},
                     {"key", p.key},
                     {"known_hosts", p.known_hosts}});
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (all.empty()) {
    std::cout << "no SSH profiles\n";
    return kExitOk;
  }
  size_t width = 4;
  for (const SshProfile& p : all) width = std::max(width, p.name.size());
  std::cout << std::left << std::setw(static_cast<int>(width) + 2) << "NAME"
            << "TARGET\n";
  for (const SshProfile& p : all)
    std::cout << std::left << std::setw(static_cast<int>(width) + 2) << p.name
              << (p.user.empty() ? "" : p.user + "@") << p.host << ":" << p.port << "\n";
  return kExitOk;
}

int CmdSshRemove(const GlobalOptions& global, const SshOptions& o) {
  if (int rc = CheckName(o.name)) return rc;
  auto db = Open(global);
  if (!db.ok()) return Fail(kExitFailed, db.error());
  auto st = (*db)->Prepare("DELETE FROM ssh_profiles WHERE name = ?1");
  if (!st.ok()) return Fail(kExitFailed, st.error());
  st->Bind(1, o.name);
  if (Status s = st->Run(); !s.ok()) return Fail(kExitFailed, s.message());
  if ((*db)->Changes() == 0) return Fail(kExitFailed, "SSH profile \"" + o.name + "\" not found");
  std::cout << "removed SSH profile " << o.name << "\n";
  return kExitOk;
}

}  // namespace sloth
