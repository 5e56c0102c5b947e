#include "store/secret_store.h"

#include <sodium.h>

#include <array>
#include <cstdlib>
#include <tuple>

#include "core/state_store.h"

namespace sloth {
namespace {

constexpr size_t kKeyBytes = crypto_aead_xchacha20poly1305_ietf_KEYBYTES;
constexpr size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
// Sealed into each key record: a wrong password fails to open it, before any secret is tried.
constexpr char kCheckText[] = "sloth-runner secrets key check v1";
constexpr char kWrongPassword[] = "wrong secrets password for stack ";

const unsigned char* Bytes(const std::string& s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::string Base64(const std::string& raw) {
  std::string out(sodium_base64_ENCODED_LEN(raw.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), Bytes(raw), raw.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

Result<std::string> Unbase64(const std::string& text) {
  std::string out(text.size(), '\0');
  size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0)
    return Status::Error("corrupt secrets table (bad base64)");
  out.resize(len);
  return out;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  randombytes_buf(out.data(), n);
  return out;
}

// The additional data each value is sealed with: what it belongs to. The prefixes keep a key
// check and a secret from ever sharing one.
std::string CheckAd(const std::string& stack) { return std::string("check\0", 6) + stack; }
std::string SecretAd(const std::string& stack, const std::string& name) {
  return std::string("secret\0", 7) + stack + '\0' + name;
}

}  // namespace

struct SecretStore::KeyRecord {
  std::string salt;  // raw bytes
  int alg = crypto_pwhash_ALG_ARGON2ID13;
  unsigned long long opslimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
  size_t memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;
  std::string check_nonce, check_ct;  // raw bytes
};

// A derived key, wiped when it goes out of scope.
class SecretStore::Key {
 public:
  Key() = default;
  ~Key() { sodium_memzero(bytes_, sizeof bytes_); }
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;

  Status Derive(const std::string& password, const KeyRecord& r) {
    if (r.salt.size() != crypto_pwhash_SALTBYTES)
      return Status::Error("corrupt secrets key record");
    if (crypto_pwhash(bytes_, sizeof bytes_, password.data(), password.size(), Bytes(r.salt),
                      r.opslimit, r.memlimit, r.alg) != 0)
      return Status::Error("cannot derive the secrets key (out of memory?)");
    return Status::Ok();
  }
  // nonce + ciphertext of `plain`, bound to `ad`.
  std::pair<std::string, std::string> Seal(const std::string& plain, const std::string& ad) const {
    std::string nonce = RandomBytes(kNonceBytes), ct(plain.size() + kTagBytes, '\0');
    unsigned long long len = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(reinterpret_cast<unsigned char*>(ct.data()), &len,
                                               Bytes(plain), plain.size(), Bytes(ad), ad.size(),
                                               nullptr, Bytes(nonce), bytes_);
    ct.resize(len);
    return {nonce, ct};
  }
  // The plain text, or nullopt when the tag does not verify (wrong key, altered or moved).
  std::optional<std::string> Unseal(const std::string& nonce, const std::string& ct,
                                    const std::string& ad) const {
    if (nonce.size() != kNonceBytes || ct.size() < kTagBytes) return std::nullopt;
    std::string plain(ct.size() - kTagBytes, '\0');
    unsigned long long len = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(plain.data()),
                                                   &len, nullptr, Bytes(ct), ct.size(), Bytes(ad),
                                                   ad.size(), Bytes(nonce), bytes_) != 0)
      return std::nullopt;
    plain.resize(len);
    return plain;
  }

 private:
  unsigned char bytes_[kKeyBytes];
};

SecretStore::SecretStore(std::shared_ptr<Db> db) : db_(std::move(db)) {
  // Idempotent and thread-safe; fails only when the system has no randomness source.
  if (sodium_init() < 0) std::abort();
}

bool SecretStore::IsWrongPassword(const Status& status) {
  return status.message().rfind(kWrongPassword, 0) == 0;
}

Result<std::optional<SecretStore::KeyRecord>> SecretStore::ReadKeyRecord(const std::string& stack) {
  Result<Statement> st = db_->Prepare(
      "SELECT salt, alg, opslimit, memlimit, check_nonce, check_ct FROM secret_keys "
      "WHERE stack = ?");
  if (!st.ok()) return st.status();
  st->Bind(1, stack);
  Result<bool> row = st->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<KeyRecord>();
  KeyRecord r;
  auto salt = Unbase64(st->Text(0)), nonce = Unbase64(st->Text(4)), ct = Unbase64(st->Text(5));
  if (!salt.ok() || !nonce.ok() || !ct.ok()) return Status::Error("corrupt secrets key record");
  r.salt = *salt;
  r.alg = static_cast<int>(st->Int(1));
  r.opslimit = static_cast<unsigned long long>(st->Int(2));
  r.memlimit = static_cast<size_t>(st->Int(3));
  r.check_nonce = *nonce;
  r.check_ct = *ct;
  return std::optional<KeyRecord>(std::move(r));
}

Status SecretStore::Unlock(const std::string& stack, const KeyRecord& record,
                           const std::string& password, Key& key) {
  if (Status s = key.Derive(password, record); !s.ok()) return s;
  if (!key.Unseal(record.check_nonce, record.check_ct, CheckAd(stack)))
    return Status::Error(kWrongPassword + stack);
  return Status::Ok();
}

// Inserts a key record made from `password` unless another process got there first; returns
// the record now in the table.
Result<SecretStore::KeyRecord> SecretStore::CreateKeyRecord(const std::string& stack,
                                                            const std::string& password) {
  KeyRecord r;
  r.salt = RandomBytes(crypto_pwhash_SALTBYTES);
  Key key;
  if (Status s = key.Derive(password, r); !s.ok()) return s;
  std::tie(r.check_nonce, r.check_ct) = key.Seal(kCheckText, CheckAd(stack));
  Result<Statement> st = db_->Prepare(
      "INSERT INTO secret_keys (stack, salt, alg, opslimit, memlimit, check_nonce, check_ct, "
      "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(stack) DO NOTHING");
  if (!st.ok()) return st.status();
  st->Bind(1, stack)
      .Bind(2, Base64(r.salt))
      .Bind(3, int64_t{r.alg})
      .Bind(4, static_cast<int64_t>(r.opslimit))
      .Bind(5, static_cast<int64_t>(r.memlimit))
      .Bind(6, Base64(r.check_nonce))
      .Bind(7, Base64(r.check_ct))
      .Bind(8, NowUnixMs());
  if (Status s = st->Run(); !s.ok()) return s;
  if (db_->Changes() > 0) return r;
  Result<std::optional<KeyRecord>> theirs = ReadKeyRecord(stack);
  if (!theirs.ok()) return theirs.status();
  if (!*theirs) return Status::Error("the secrets of stack " + stack + " changed; try again");
  return std::move(**theirs);
}

Result<std::string> SecretStore::Open(const std::string& stack, const std::string& name,
                                      const Key& key, const std::string& nonce,
                                      const std::string& ciphertext) {
  auto raw_nonce = Unbase64(nonce), raw_ct = Unbase64(ciphertext);
  std::optional<std::string> plain;
  if (raw_nonce.ok() && raw_ct.ok()) plain = key.Unseal(*raw_nonce, *raw_ct, SecretAd(stack, name));
  if (!plain)
    return Status::Error("secret " + name + " of stack " + stack +
                         " does not open: its stored form was altered or moved");
  return std::move(*plain);
}

Result<bool> SecretStore::Put(const std::string& stack, const std::string& name,
                              const std::string& value, const std::string& password) {
  Result<std::optional<KeyRecord>> found = ReadKeyRecord(stack);
  if (!found.ok()) return found.status();
  Result<KeyRecord> record =
      *found ? Result<KeyRecord>(std::move(**found)) : CreateKeyRecord(stack, password);
  if (!record.ok()) return record.status();
  Key key;
  if (Status s = Unlock(stack, *record, password, key); !s.ok()) return s;
  std::string nonce, ct;  // not a structured binding: the lambda below captures them
  std::tie(nonce, ct) = key.Seal(value, SecretAd(stack, name));
  bool created = false;
  Status s = db_->Transaction([&]() -> Status {
    Result<Statement> exists = db_->Prepare("SELECT 1 FROM secrets WHERE stack = ? AND name = ?");
    if (!exists.ok()) return exists.status();
    Result<bool> row = exists->Bind(1, stack).Bind(2, name).Step();
    if (!row.ok()) return row.status();
    created = !*row;
    // Only while the key record is the one the value was sealed for (not replaced meanwhile).
    Result<Statement> put = db_->Prepare(
        "INSERT INTO secrets (stack, name, nonce, ciphertext, created_at, updated_at) "
        "SELECT ?1, ?2, ?3, ?4, ?5, ?5 WHERE EXISTS "
        "(SELECT 1 FROM secret_keys WHERE stack = ?1 AND salt = ?6) "
        "ON CONFLICT(stack, name) DO UPDATE SET nonce = excluded.nonce, "
        "ciphertext = excluded.ciphertext, updated_at = excluded.updated_at");
    if (!put.ok()) return put.status();
    put->Bind(1, stack).Bind(2, name).Bind(3, Base64(nonce)).Bind(4, Base64(ct));
    put->Bind(5, NowUnixMs()).Bind(6, Base64(record->salt));
    if (Status run = put->Run(); !run.ok()) return run;
    if (db_->Changes() == 0)
      return Status::Error("the secrets of stack " + stack + " changed; try again");
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return created;
}

Result<std::optional<std::string>> SecretStore::Get(const std::string& stack,
                                                    const std::string& name,
                                                    const std::string& password) {
  Result<Statement> st =
      db_->Prepare("SELECT nonce, ciphertext FROM secrets WHERE stack = ? AND name = ?");
  if (!st.ok()) return st.status();
  Result<bool> row = st->Bind(1, stack).Bind(2, name).Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<std::string>();
  Result<std::optional<KeyRecord>> record = ReadKeyRecord(stack);
  if (!record.ok()) return record.status();
  if (!*record) return Status::Error("corrupt secrets table (no key record for " + stack + ")");
  Key key;
  if (Status s = Unlock(stack, **record, password, key); !s.ok()) return s;
  Result<std::string> plain = Open(stack, name, key, st->Text(0), st->Text(1));
  if (!plain.ok()) return plain.status();
  return std::optional<std::string>(std::move(*plain));
}

Result<std::map<std::string, std::string>> SecretStore::GetAll(const std::string& stack,
                                                               const std::string& password) {
  Result<Statement> st =
      db_->Prepare("SELECT name, nonce, ciphertext FROM secrets WHERE stack = ? ORDER BY name");
  if (!st.ok()) return st.status();
  st->Bind(1, stack);
  std::vector<std::array<std::string, 3>> rows;
  Result<bool> row = st->Step();
  for (; row.ok() && *row; row = st->Step())
    rows.push_back({st->Text(0), st->Text(1), st->Text(2)});
  if (!row.ok()) return row.status();
  std::map<std::string, std::string> out;
  if (rows.empty()) return out;  // no password needed to learn there is nothing
  Result<std::optional<KeyRecord>> record = ReadKeyRecord(stack);
  if (!record.ok()) return record.status();
  if (!*record) return Status::Error("corrupt secrets table (no key record for " + stack + ")");
  Key key;
  if (Status s = Unlock(stack, **record, password, key); !s.ok()) return s;
  for (const auto& [name, nonce, ct] : rows) {
    Result<std::string> plain = Open(stack, name, key, nonce, ct);
    if (!plain.ok()) return plain.status();
    out.emplace(name, std::move(*plain));
  }
  return out;
}

Result<std::vector<SecretInfo>> SecretStore::List(const std::string& stack) {
  Result<Statement> st = db_->Prepare(
      "SELECT name, created_at, updated_at FROM secrets WHERE stack = ? ORDER BY name");
  if (!st.ok()) return st.status();
  st->Bind(1, stack);
  std::vector<SecretInfo> out;
  Result<bool> row = st->Step();
  for (; row.ok() && *row; row = st->Step()) out.push_back({st->Text(0), st->Int(1), st->Int(2)});
  if (!row.ok()) return row.status();
  return out;
}

Result<bool> SecretStore::Remove(const std::string& stack, const std::string& name) {
  bool removed = false;
  Status s = db_->Transaction([&]() -> Status {
    Result<Statement> del = db_->Prepare("DELETE FROM secrets WHERE stack = ? AND name = ?");
    if (!del.ok()) return del.status();
    if (Status run = del->Bind(1, stack).Bind(2, name).Run(); !run.ok()) return run;
    removed = db_->Changes() > 0;
    Result<Statement> forget = db_->Prepare(
        "DELETE FROM secret_keys WHERE stack = ?1 AND NOT EXISTS "
        "(SELECT 1 FROM secrets WHERE stack = ?1)");
    if (!forget.ok()) return forget.status();
    return forget->Bind(1, stack).Run();
  });
  if (!s.ok()) return s;
  return removed;
}

}  // namespace sloth
