#include "cli/secrets_run.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "cli/commands.h"
#include "lua/modules/secret.h"
#include "lua/runtime.h"
#include "store/secret_store.h"

namespace sloth {
namespace {

// Standard input up to the first newline, read a byte at a time so the rest stays unread
// (for `secrets add`'s value, or for the workflow's own commands).
Result<std::string> ReadStdinLine() {
  std::string line;
  char c = 0;
  ssize_t n = 0;
  while ((n = read(STDIN_FILENO, &c, 1)) == 1 || (n < 0 && errno == EINTR)) {
    if (n != 1) continue;
    if (c == '\n')
      return line.empty() || line.back() != '\r' ? line : line.substr(0, line.size() - 1);
    line += c;
  }
  if (line.empty()) return Status::Error("--password-stdin: standard input is empty");
  return line;
}

Result<std::optional<std::string>> ReadPassword(bool password_stdin) {
  if (password_stdin) {
    Result<std::string> line = ReadStdinLine();
    if (!line.ok()) return line.status();
    if (line->empty()) return Status::Error("--password-stdin: the password line is empty");
    return std::optional<std::string>(std::move(*line));
  }
  const char* env = std::getenv("SLOTH_SECRETS_PASSWORD");
  if (env && *env) return std::optional<std::string>(env);
  return std::optional<std::string>();
}

}  // namespace

Result<std::optional<std::string>> SecretsPassword(bool password_stdin) {
  // Process-wide on purpose: stdin's first line can be consumed only once.
  static std::optional<Result<std::optional<std::string>>> stdin_password;
  if (!password_stdin) return ReadPassword(false);
  if (!stdin_password) stdin_password = ReadPassword(true);
  return *stdin_password;
}

Status ExposeStackSecrets(Runtime& rt, const std::shared_ptr<Db>& db, const std::string& stack,
                          const std::optional<std::string>& password) {
  SecretStore store(db);
  RunSecrets secrets;
  if (password) {
    auto values = store.GetAll(stack, *password);
    if (!values.ok()) return values.status();
    secrets.values = std::move(*values);
  } else {
    auto names = store.List(stack);
    if (!names.ok()) return names.status();
    for (const SecretInfo& info : *names) secrets.locked.push_back(info.name);
  }
  SetSecrets(rt, secrets);
  return Status::Ok();
}

Status ExposeRunSecrets(Runtime& rt, const std::shared_ptr<Db>& db, const std::string& stack,
                        bool password_stdin) {
  auto password = SecretsPassword(password_stdin);
  if (!password.ok()) return password.status();
  return ExposeStackSecrets(rt, db, stack, *password);
}

int SecretsExitCode(const Status& status) {
  const std::string& m = status.message();
  if (SecretStore::IsWrongPassword(status) || m.rfind("--password-stdin", 0) == 0)
    return kExitBadInput;
  return m.find("database is locked") != std::string::npos ? kExitUnreachable : kExitFailed;
}

}  // namespace sloth
