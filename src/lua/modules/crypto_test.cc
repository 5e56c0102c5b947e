#include <gtest/gtest.h>

#include "lua/test_util.h"

namespace sloth {
using testing::LuaEnv;

TEST(CryptoTest, DigestsMatchKnownVectors) {
  LuaEnv env;
  EXPECT_EQ(env.Eval("crypto.sha256('abc')"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(env.Eval("crypto.sha256('')"),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(env.Eval("crypto.sha512('abc')"),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
  EXPECT_EQ(env.Eval("crypto.md5('abc')"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(env.Eval("crypto.md5('')"), "d41d8cd98f00b204e9800998ecf8427e");
  // Binary input with a NUL byte is hashed whole.
  EXPECT_EQ(env.Eval("crypto.sha256('a\\0b') ~= crypto.sha256('a')"), "true");
  EXPECT_NE(env.Eval("select(2, pcall(crypto.sha256))").find("bad argument #1 to 'crypto.sha256'"),
            std::string::npos);
}

TEST(CryptoTest, HmacSha256MatchesRfc4231) {
  LuaEnv env;
  // Test case 2: a short key.
  EXPECT_EQ(env.Eval("crypto.hmac_sha256('Jefe', 'what do ya want for nothing?')"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 6: a key longer than the block size is hashed first.
  EXPECT_EQ(env.Eval("crypto.hmac_sha256(string.rep('\\xaa', 131), "
                     "'Test Using Larger Than Block-Size Key - Hash Key First')"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(CryptoTest, Base64AndHexRoundTrip) {
  LuaEnv env;
  EXPECT_EQ(env.Eval("crypto.base64_encode('hi')"), "aGk=");
  EXPECT_EQ(env.Eval("crypto.base64_encode('')"), "");
  EXPECT_EQ(env.Eval("crypto.base64_encode('\\xfb\\xff')"), "+/8=");
  EXPECT_EQ(env.Eval("crypto.base64url_encode('\\xfb\\xff')"), "-_8");
  EXPECT_EQ(env.Eval("crypto.base64_decode('aGk=')"), "hi");
  EXPECT_EQ(env.Eval("crypto.base64_decode('aGk')"), "hi");
  EXPECT_EQ(env.Eval("crypto.base64_decode('aGVs\\nbG8=\\n')"), "hello");
  EXPECT_EQ(env.Eval("crypto.base64url_decode('-_8') == '\\xfb\\xff'"), "true");
  EXPECT_EQ(env.Eval("crypto.base64url_decode('-_8=') == '\\xfb\\xff'"), "true");
  EXPECT_EQ(env.Eval("crypto.hex_encode('\\0\\1\\255')"), "0001ff");
  EXPECT_EQ(env.Eval("crypto.hex_decode('0001FF') == '\\0\\1\\255'"), "true");
  ASSERT_EQ(env.Run(R"(
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    all = table.concat(all)
    assert(crypto.base64_decode(crypto.base64_encode(all)) == all)
    assert(crypto.base64url_decode(crypto.base64url_encode(all)) == all)
    assert(crypto.hex_decode(crypto.hex_encode(all)) == all)
  )")
                .message(),
            "");
}

TEST(CryptoTest, InvalidEncodingsReturnNilAndMessage) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local v, err = crypto.base64_decode("a$b=")
    assert(v == nil and err == "base64_decode: invalid base64", err)
    assert(crypto.base64_decode("-_8") == nil)        -- URL-safe alphabet is not standard
    assert(crypto.base64url_decode("+/8") == nil)
    v, err = crypto.hex_decode("abc")
    assert(v == nil and err:find("^hex_decode: invalid hex"), err)
    assert(crypto.hex_decode("zz") == nil)
  )")
                .message(),
            "");
}

TEST(CryptoTest, RandomBytesUuidAndHex) {
  LuaEnv env;
  EXPECT_EQ(env.Eval("#crypto.random_bytes(32)"), "32");
  EXPECT_EQ(env.Eval("#crypto.random_bytes(0)"), "0");
  EXPECT_EQ(env.Eval("crypto.random_hex(8):match('^[0-9a-f]+$') ~= nil and #crypto.random_hex(8)"),
            "16");
  EXPECT_EQ(env.Eval("crypto.random_bytes(16) ~= crypto.random_bytes(16)"), "true");
  ASSERT_EQ(env.Run(R"(
    local seen = {}
    for _ = 1, 100 do
      local id = crypto.uuid()
      assert(id:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"), id)
      assert(not seen[id])
      seen[id] = true
    end
  )")
                .message(),
            "");
  EXPECT_NE(env.Eval("select(2, pcall(crypto.random_bytes, -1))").find("between 0 and"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(crypto.random_hex, 1 << 30))").find("between 0 and"),
            std::string::npos);
}

TEST(CryptoTest, BcryptRoundTripAndWrongPassword) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local h = assert(crypto.bcrypt_hash("s3cret", 4))
    assert(h:match("^%$2b%$04%$") and #h == 60, h)
    assert(crypto.bcrypt_verify("s3cret", h) == true)
    assert(crypto.bcrypt_verify("s3cret!", h) == false)
    assert(crypto.bcrypt_hash("s3cret", 4) ~= h)   -- a fresh salt every time
    assert(crypto.bcrypt_hash("x"):match("^%$2b%$10%$"))
  )")
                .message(),
            "");
}

TEST(CryptoTest, BcryptVerifiesAKnownHash) {
  LuaEnv env;  // From the crypt_blowfish test vectors.
  EXPECT_EQ(env.Eval("crypto.bcrypt_verify('U*U', "
                     "'$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW')"),
            "true");
  EXPECT_EQ(env.Eval("crypto.bcrypt_verify('U*V', "
                     "'$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW')"),
            "false");
}

TEST(CryptoTest, BcryptBadArgumentsAndMalformedHashes) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local v, err = crypto.bcrypt_verify("x", "not a hash")
    assert(v == nil and err:find("not a bcrypt hash"), err)
    v, err = crypto.bcrypt_verify("x", "$2b$04$" .. string.rep("!", 53))
    assert(v == nil and err:find("malformed"), err)
    local ok, e = pcall(crypto.bcrypt_hash, "x", 3)
    assert(not ok and e:find("cost must be between 4 and 31"), e)
    ok, e = pcall(crypto.bcrypt_hash, "a\0b")
    assert(not ok and e:find("NUL byte"), e)
  )")
                .message(),
            "");
}

TEST(CryptoTest, Argon2RoundTripAndWrongPassword) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local h = assert(crypto.argon2_hash("s3cret"))
    assert(h:find("^%$argon2id%$v=19%$"), h)
    assert(crypto.argon2_verify("s3cret", h) == true)
    assert(crypto.argon2_verify("wrong", h) == false)
    local v, err = crypto.argon2_verify("s3cret", "$2b$04$abc")
    assert(v == nil and err:find("not an Argon2 hash"), err)
    assert(crypto.argon2_verify("s3cret", "$argon2id$garbage") == false)
  )")
                .message(),
            "");
}

// Inside a task the hash runs on the thread pool and the coroutine yields meanwhile.
TEST(CryptoTest, PasswordHashingInTasksYields) {
  LuaEnv env;
  ASSERT_EQ(env.RunInTask(R"(
    local h = crypto.bcrypt_hash("pw", 4)
    assert(crypto.bcrypt_verify("pw", h))
    local a = crypto.argon2_hash("pw")
    assert(crypto.argon2_verify("pw", a))
  )")
                .message(),
            "");
}

}  // namespace sloth
