// `secrets add|get|list|remove`: a stack's secrets from the command line (state-and-stacks.md).
// Values are sealed with the stack's password before they reach the database; `list` and
// `remove` need no password.
#include <unistd.h>

#include <cctype>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "base/redact.h"
#include "cli/commands.h"
#include "cli/data_dir.h"
#include "cli/secrets_run.h"
#include "store/migrations.h"
#include "store/secret_store.h"

namespace sloth {
namespace {

constexpr size_t kMaxNameLength = 128;

int StoreFailure(const Status& status) { return Fail(SecretsExitCode(status), status.message()); }

// Letters, digits, '_', '-' and '.': names show up in tables, logs and as `secrets.NAME`.
bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (unsigned char c : name)
    if (!std::isalnum(c) && c != '_' && c != '-' && c != '.') return false;
  return true;
}

// Checks the name (when the command takes one) and the stack; 0 when both are fine.
int CheckArgs(const SecretsOptions& o, bool needs_name) {
  if (needs_name && !ValidName(o.name))
    return Fail(kExitBadInput,
                "invalid secret name \"" + o.name + "\" (1-128 letters, digits, '_', '-' or '.')");
  if (o.stack.empty()) return Fail(kExitBadInput, "--stack must not be empty");
  return 0;
}

Result<std::unique_ptr<SecretStore>> OpenStore(const GlobalOptions& global) {
  auto db = OpenDatabase(DatabasePath(DataDir(global.data_dir)));
  if (!db.ok()) return db.status();
  return std::make_unique<SecretStore>(*db);
}

// The password, or an error saying how to give one.
Result<std::string> RequirePassword(bool password_stdin) {
  auto password = SecretsPassword(password_stdin);
  if (!password.ok()) return password.status();
  if (!*password)
    return Status::Error(
        "no secrets password: pass --password-stdin (first line of standard input) or set "
        "SLOTH_SECRETS_PASSWORD");
  return **password;
}

// The value to store: the file's bytes as they are, or the rest of standard input without
// its one trailing newline (what `echo value |` adds).
Result<std::string> ReadValue(const SecretsOptions& o) {
  if (!o.from_file.empty()) {
    std::ifstream in(o.from_file, std::ios::binary);
    if (!in) return Status::Error("--from-file: cannot read " + o.from_file);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  if (isatty(STDIN_FILENO)) std::cerr << "Enter the value, then Ctrl-D:\n";
  std::string value(std::istreambuf_iterator<char>(std::cin), {});
  if (!value.empty() && value.back() == '\n') value.pop_back();
  if (!value.empty() && value.back() == '\r') value.pop_back();
  return value;
}

std::string FormatTime(int64_t unix_ms) {
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char out[32];
  std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return out;
}

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

int CmdSecretsAdd(const GlobalOptions& global, const SecretsOptions& options) {
  if (int rc = CheckArgs(options, true)) return rc;
  auto password = RequirePassword(options.password_stdin);
  if (!password.ok()) return Fail(kExitBadInput, password.error());
  auto value = ReadValue(options);
  if (!value.ok()) return Fail(kExitBadInput, value.error());
  if (value->empty()) return Fail(kExitBadInput, "the secret's value is empty");
  auto store = OpenStore(global);
  if (!store.ok()) return StoreFailure(store.status());
  auto created = (*store)->Put(options.stack, options.name, *value, *password);
  if (!created.ok()) return StoreFailure(created.status());
  if (value->size() < Redactor::kMinLength)
    std::cerr << "warning: values shorter than " << Redactor::kMinLength
              << " characters are not redacted from output\n";
  std::cout << (*created ? "added" : "updated") << " secret " << options.name << " of stack "
            << options.stack << "\n";
  return kExitOk;
}

int CmdSecretsGet(const GlobalOptions& global, const SecretsOptions& options) {
  if (int rc = CheckArgs(options, true)) return rc;
  auto password = RequirePassword(options.password_stdin);
  if (!password.ok()) return Fail(kExitBadInput, password.error());
  auto store = OpenStore(global);
  if (!store.ok()) return StoreFailure(store.status());
  auto value = (*store)->Get(options.stack, options.name, *password);
  if (!value.ok()) return StoreFailure(value.status());
  if (!*value)
    return Fail(kExitFailed, "secret " + Quoted(options.name) + " of stack " +
                                 Quoted(options.stack) + " not found");
  std::cout << **value << "\n";
  return kExitOk;
}

int CmdSecretsList(const GlobalOptions& global, const SecretsOptions& options) {
  if (options.output != "table" && options.output != "json")
    return Fail(kExitBadInput, "unknown output \"" + options.output + "\" (table or json)");
  if (int rc = CheckArgs(options, false)) return rc;
  auto store = OpenStore(global);
  if (!store.ok()) return StoreFailure(store.status());
  auto list = (*store)->List(options.stack);
  if (!list.ok()) return StoreFailure(list.status());
  if (options.output == "json") {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const SecretInfo& s : *list)
      out.push_back({{"name", s.name},
                     {"stack", options.stack},
                     {"created_at", FormatTime(s.created_at_ms)},
                     {"updated_at", FormatTime(s.updated_at_ms)}});
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (list->empty()) {
    std::cout << "no secrets in stack " << options.stack << "\n";
    return kExitOk;
  }
  size_t width = 4;
  for (const SecretInfo& s : *list) width = std::max(width, s.name.size());
  auto row = [&](const std::string& a, const std::string& b, const std::string& c) {
    std::cout << std::left << std::setw(static_cast<int>(width) + 2) << a << std::setw(22) << b << c
              << "\n";
  };
  row("NAME", "CREATED", "UPDATED");
  for (const SecretInfo& s : *list)
    row(s.name, FormatTime(s.created_at_ms), FormatTime(s.updated_at_ms));
  return kExitOk;
}

int CmdSecretsRemove(const GlobalOptions& global, const SecretsOptions& options) {
  if (int rc = CheckArgs(options, true)) return rc;
  auto store = OpenStore(global);
  if (!store.ok()) return StoreFailure(store.status());
  auto removed = (*store)->Remove(options.stack, options.name);
  if (!removed.ok()) return StoreFailure(removed.status());
  if (!*removed)
    return Fail(kExitFailed, "secret " + Quoted(options.name) + " of stack " +
                                 Quoted(options.stack) + " not found");
  std::cout << "removed secret " << options.name << " of stack " << options.stack << "\n";
  return kExitOk;
}

}  // namespace sloth
