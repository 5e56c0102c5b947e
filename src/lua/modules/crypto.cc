// crypto: digests (OpenSSL EVP), HMAC, base64/hex, randomness and UUIDs (libsodium), and
// password hashing: bcrypt through libcrypt, Argon2id through libsodium. Password hashing is
// slow on purpose, so it runs on the thread pool while the task waits.
#include <crypt.h>
#include <openssl/evp.h>
#include <sodium.h>

#include <cstring>
#include <memory>
#include <string>

#include <lua.hpp>

#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

constexpr size_t kMaxRandomBytes = size_t{1} << 20;
constexpr int kDefaultBcryptCost = 10;

std::string CheckBytes(lua_State* L, int index) {
  size_t n;
  const char* s = luaL_checklstring(L, index, &n);
  return std::string(s, n);
}

std::string Hex(const unsigned char* data, size_t n) {
  std::string hex(n * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), data, n);
  hex.pop_back();
  return hex;
}

void PushString(lua_State* L, const std::string& s) { lua_pushlstring(L, s.data(), s.size()); }

template <const EVP_MD* (*md)()>
int Digest(lua_State* L) {
  std::string input = CheckBytes(L, 1);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!EVP_Digest(input.data(), input.size(), out, &n, md(), nullptr))
    return luaL_error(L, "crypto: digest failed");
  PushString(L, Hex(out, n));
  return 1;
}

// hmac_sha256(key, message) -> hex
int HmacSha256(lua_State* L) {
  std::string key = CheckBytes(L, 1), msg = CheckBytes(L, 2);
  crypto_auth_hmacsha256_state state;
  unsigned char out[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key.data()),
                              key.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(msg.data()),
                                msg.size());
  crypto_auth_hmacsha256_final(&state, out);
  PushString(L, Hex(out, sizeof out));
  return 1;
}

// --- encodings ---------------------------------------------------------------------------

template <int variant>
int Base64Encode(lua_State* L) {
  std::string input = CheckBytes(L, 1);
  std::string out(sodium_base64_ENCODED_LEN(input.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(input.data()),
                    input.size(), variant);
  out.pop_back();  // the terminating NUL
  PushString(L, out);
  return 1;
}

// Decodes padded or unpadded input; whitespace (line breaks in PEM-like text) is skipped.
template <int padded, int unpadded>
int Base64Decode(lua_State* L) {
  std::string input = CheckBytes(L, 1);
  int variant = input.find('=') != std::string::npos ? padded : unpadded;
  std::string out(input.size(), '\0');
  size_t n = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), input.data(),
                        input.size(), " \t\r\n", &n, nullptr, variant) != 0)
    return PushFailure(L, padded == sodium_base64_VARIANT_ORIGINAL
                              ? "base64_decode: invalid base64"
                              : "base64url_decode: invalid base64url");
  out.resize(n);
  PushString(L, out);
  return 1;
}

int HexEncode(lua_State* L) {
  std::string input = CheckBytes(L, 1);
  PushString(L, Hex(reinterpret_cast<const unsigned char*>(input.data()), input.size()));
  return 1;
}

int HexDecode(lua_State* L) {
  std::string input = CheckBytes(L, 1);
  std::string out(input.size() / 2 + 1, '\0');
  size_t n = 0;
  const char* end = nullptr;
  if (sodium_hex2bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), input.data(),
                     input.size(), nullptr, &n, &end) != 0 ||
      end != input.data() + input.size())
    return PushFailure(L, "hex_decode: invalid hex (need an even number of 0-9a-f digits)");
  out.resize(n);
  PushString(L, out);
  return 1;
}

// --- randomness --------------------------------------------------------------------------

std::string RandomBytes(lua_State* L, int index) {
  lua_Integer n = luaL_checkinteger(L, index);
  luaL_argcheck(L, n >= 0 && static_cast<size_t>(n) <= kMaxRandomBytes, index,
                "byte count must be between 0 and 1048576");
  std::string out(static_cast<size_t>(n), '\0');
  randombytes_buf(out.data(), out.size());
  return out;
}

int RandomBytesFn(lua_State* L) {
  PushString(L, RandomBytes(L, 1));
  return 1;
}

// random_hex(n): n random bytes as 2n hex digits.
int RandomHex(lua_State* L) {
  std::string bytes = RandomBytes(L, 1);
  PushString(L, Hex(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()));
  return 1;
}

// A random (version 4) UUID, lowercase: xxxxxxxx-xxxx-4xxx-Yxxx-xxxxxxxxxxxx.
int Uuid(lua_State* L) {
  unsigned char b[16];
  randombytes_buf(b, sizeof b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  std::string hex = Hex(b, sizeof b);
  std::string out = hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
                    hex.substr(16, 4) + "-" + hex.substr(20);
  PushString(L, out);
  return 1;
}

// --- password hashing --------------------------------------------------------------------

// Passwords go to C APIs that stop at a NUL byte, so one inside would silently shorten it.
std::string CheckPassword(lua_State* L, int index) {
  std::string s = CheckBytes(L, index);
  luaL_argcheck(L, s.find('\0') == std::string::npos, index, "password contains a NUL byte");
  return s;
}

struct HashResult {
  std::string hash;
  std::string error;
};

int PushHash(lua_State* L, HashResult& r) {
  if (!r.error.empty()) return PushFailure(L, r.error);
  PushString(L, r.hash);
  return 1;
}

// 1 = match, 0 = no match, -1 = not a hash of this kind (message in `error`).
struct VerifyResult {
  int verdict = 0;
  std::string error;
};

int PushVerdict(lua_State* L, VerifyResult& r) {
  if (r.verdict < 0) return PushFailure(L, r.error);
  lua_pushboolean(L, r.verdict);
  return 1;
}

HashResult BcryptHash(const std::string& password, int cost) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (!crypt_gensalt_rn("$2b$", cost, nullptr, 0, salt, sizeof salt))
    return {"", "bcrypt_hash: cannot make a salt"};
  auto data = std::make_unique<crypt_data>();
  const char* out = crypt_r(password.c_str(), salt, data.get());
  if (!out || out[0] == '*') return {"", "bcrypt_hash: hashing failed"};
  return {out, ""};
}

// bcrypt_hash(password, cost?) -> "$2b$..." (cost 4..31, default 10)
int BcryptHashFn(lua_State* L) {
  std::string password = CheckPassword(L, 1);
  lua_Integer cost = luaL_optinteger(L, 2, kDefaultBcryptCost);
  luaL_argcheck(L, cost >= 4 && cost <= 31, 2, "cost must be between 4 and 31");
  return Runtime::From(L).AwaitBlocking<HashResult>(
      L, [password, cost] { return BcryptHash(password, static_cast<int>(cost)); }, PushHash);
}

bool IsBcryptHash(const std::string& hash) {
  return hash.size() == 60 &&
         (hash.rfind("$2a$", 0) == 0 || hash.rfind("$2b$", 0) == 0 || hash.rfind("$2y$", 0) == 0);
}

VerifyResult BcryptVerify(const std::string& password, const std::string& hash) {
  auto data = std::make_unique<crypt_data>();
  const char* out = crypt_r(password.c_str(), hash.c_str(), data.get());
  if (!out || out[0] == '*') return {-1, "bcrypt_verify: malformed bcrypt hash"};
  bool same = std::strlen(out) == hash.size() && sodium_memcmp(out, hash.data(), hash.size()) == 0;
  return {same ? 1 : 0, ""};
}

// bcrypt_verify(password, hash) -> true | false; nil, err when `hash` is not a bcrypt hash.
int BcryptVerifyFn(lua_State* L) {
  std::string password = CheckPassword(L, 1), hash = CheckBytes(L, 2);
  if (!IsBcryptHash(hash))
    return PushFailure(L, "bcrypt_verify: not a bcrypt hash ($2a$, $2b$ or $2y$)");
  return Runtime::From(L).AwaitBlocking<VerifyResult>(
      L, [password, hash] { return BcryptVerify(password, hash); }, PushVerdict);
}

HashResult Argon2Hash(const std::string& password) {
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
    return {"", "argon2_hash: out of memory"};
  return {out, ""};
}

// argon2_hash(password) -> "$argon2id$v=19$m=65536,t=2,p=1$..."
int Argon2HashFn(lua_State* L) {
  std::string password = CheckPassword(L, 1);
  return Runtime::From(L).AwaitBlocking<HashResult>(
      L, [password] { return Argon2Hash(password); }, PushHash);
}

// argon2_verify(password, hash) -> true | false; nil, err when `hash` is not an Argon2 hash.
int Argon2VerifyFn(lua_State* L) {
  std::string password = CheckPassword(L, 1), hash = CheckBytes(L, 2);
  bool argon = hash.rfind(crypto_pwhash_argon2id_STRPREFIX, 0) == 0 ||
               hash.rfind(crypto_pwhash_argon2i_STRPREFIX, 0) == 0;
  if (!argon || hash.size() >= crypto_pwhash_STRBYTES || hash.find('\0') != std::string::npos)
    return PushFailure(L, "argon2_verify: not an Argon2 hash ($argon2id$ or $argon2i$)");
  return Runtime::From(L).AwaitBlocking<VerifyResult>(
      L,
      [password, hash] {
        int rc = crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size());
        return VerifyResult{rc == 0 ? 1 : 0, ""};
      },
      PushVerdict);
}

int CryptoSetup(lua_State* L) {
  if (sodium_init() < 0) return luaL_error(L, "crypto: libsodium failed to initialize");
  return 0;
}

}  // namespace

const Module& CryptoModule() {
  static const Module m = {
      "crypto",
      "Digests, HMAC, base64/hex, random bytes, UUIDs, bcrypt and Argon2id password hashes",
      {
          {"sha256", Digest<EVP_sha256>, "sha256(data) -> hex", "SHA-256, lowercase hex"},
          {"sha512", Digest<EVP_sha512>, "sha512(data) -> hex", "SHA-512, lowercase hex"},
          {"md5", Digest<EVP_md5>, "md5(data) -> hex", "MD5, lowercase hex (not for security)"},
          {"hmac_sha256", HmacSha256, "hmac_sha256(key, message) -> hex",
           "HMAC-SHA-256, lowercase hex"},
          {"base64_encode", Base64Encode<sodium_base64_VARIANT_ORIGINAL>,
           "base64_encode(data) -> string", "Standard base64 with padding"},
          {"base64_decode",
           Base64Decode<sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING>,
           "base64_decode(text) -> bytes", "Standard base64, padded or not; nil, err if invalid"},
          {"base64url_encode", Base64Encode<sodium_base64_VARIANT_URLSAFE_NO_PADDING>,
           "base64url_encode(data) -> string", "URL-safe base64 without padding (as in JWTs)"},
          {"base64url_decode",
           Base64Decode<sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING>,
           "base64url_decode(text) -> bytes",
           "URL-safe base64, padded or not; nil, err if invalid"},
          {"hex_encode", HexEncode, "hex_encode(data) -> hex", "Lowercase hex"},
          {"hex_decode", HexDecode, "hex_decode(hex) -> bytes",
           "Bytes from hex; nil, err if invalid"},
          {"random_bytes", RandomBytesFn, "random_bytes(n) -> bytes",
           "n cryptographically random bytes"},
          {"random_hex", RandomHex, "random_hex(n) -> hex", "n random bytes as 2n hex digits"},
          {"uuid", Uuid, "uuid() -> string", "Random version 4 UUID"},
          {"bcrypt_hash", BcryptHashFn, "bcrypt_hash(password, cost?) -> hash",
           "bcrypt ($2b$, cost 10)"},
          {"bcrypt_verify", BcryptVerifyFn, "bcrypt_verify(password, hash) -> bool",
           "Checks a password against a bcrypt hash"},
          {"argon2_hash", Argon2HashFn, "argon2_hash(password) -> hash",
           "Argon2id (libsodium, interactive)"},
          {"argon2_verify", Argon2VerifyFn, "argon2_verify(password, hash) -> bool",
           "Checks a password against an Argon2 hash"},
      },
      {},
      nullptr,
      CryptoSetup,
  };
  return m;
}

}  // namespace sloth
