// SecretStore: the secrets of each stack, sealed at rest (state-and-stacks.md "Secrets"). A
// stack's key comes from its password with Argon2id and a per-stack salt; each value is sealed
// with XChaCha20-Poly1305 and bound to its stack and name, so a sealed value moved to another
// row does not open. Plain values exist only in memory, never in the database.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "store/db.h"

namespace sloth {

struct SecretInfo {
  std::string name;
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
};

class SecretStore {
 public:
  explicit SecretStore(std::shared_ptr<Db> db);

  // Seals `value` as `name` of `stack`, replacing an existing one; true when it is new. The
  // first secret of a stack sets the stack's password; later calls must give the same one.
  Result<bool> Put(const std::string& stack, const std::string& name, const std::string& value,
                   const std::string& password);
  // The plain value; nullopt when the stack has no secret of that name.
  Result<std::optional<std::string>> Get(const std::string& stack, const std::string& name,
                                         const std::string& password);
  // Every secret of the stack, opened with one key derivation.
  Result<std::map<std::string, std::string>> GetAll(const std::string& stack,
                                                    const std::string& password);
  // Names and times only: needs no password. Sorted by name.
  Result<std::vector<SecretInfo>> List(const std::string& stack);
  // False when there was no such secret. Removing a stack's last secret also forgets its
  // password, so the next `add` may choose a new one.
  Result<bool> Remove(const std::string& stack, const std::string& name);

  // Whether an error from Put/Get/GetAll is "wrong secrets password for stack S".
  static bool IsWrongPassword(const Status& status);

 private:
  struct KeyRecord;
  class Key;
  Result<std::optional<KeyRecord>> ReadKeyRecord(const std::string& stack);
  Result<KeyRecord> CreateKeyRecord(const std::string& stack, const std::string& password);
  Status Unlock(const std::string& stack, const KeyRecord& record, const std::string& password,
                Key& key);
  Result<std::string> Open(const std::string& stack, const std::string& name, const Key& key,
                           const std::string& nonce, const std::string& ciphertext);

  std::shared_ptr<Db> db_;
};

}  // namespace sloth
