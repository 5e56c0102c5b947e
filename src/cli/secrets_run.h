// Secrets for `run` and the `secrets` commands: where the password comes from, and handing a
// stack's secrets to the runtime.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "base/status.h"

namespace sloth {

class Db;
class Runtime;

// The secrets password: with `password_stdin`, standard input's first line (read once per
// process, whoever asks: stdin can be read only once); else $SLOTH_SECRETS_PASSWORD when set
// and not empty; else nullopt. Errors: empty input or an empty first line.
Result<std::optional<std::string>> SecretsPassword(bool password_stdin);

// Exposes the secrets of `stack` to the run (SetSecrets): decrypted with `password`, or, without
// one, as names whose reading raises an error. A stack without secrets sets none. Errors: a
// wrong password ("wrong secrets password for stack S"), an altered value, the database.
Status ExposeStackSecrets(Runtime& rt, const std::shared_ptr<Db>& db, const std::string& stack,
                          const std::optional<std::string>& password);

// For `run`, once per workflow: SecretsPassword(password_stdin), then ExposeStackSecrets.
Status ExposeRunSecrets(Runtime& rt, const std::shared_ptr<Db>& db, const std::string& stack,
                        bool password_stdin);

// The exit code for an error of the functions above or of the SecretStore: 2 for a wrong
// or missing password, 3 when the database stayed locked, else 1.
int SecretsExitCode(const Status& status);

}  // namespace sloth
