#include "store/secret_store.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "store/migrations.h"

namespace sloth {
namespace {

std::string FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class SecretStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sloth-secrets.XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    auto db = OpenDatabase(DatabasePath(dir_));
    ASSERT_TRUE(db.ok()) << db.error();
    db_ = *db;
    store_ = std::make_unique<SecretStore>(db_);
  }
  void TearDown() override {
    store_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Put(const std::string& stack, const std::string& name, const std::string& value,
           const std::string& password = "pw-1") {
    auto r = store_->Put(stack, name, value, password);
    ASSERT_TRUE(r.ok()) << r.error();
  }
  void Exec(const std::string& sql) { ASSERT_TRUE(db_->Exec(sql).ok()) << sql; }

  std::string dir_;
  std::shared_ptr<Db> db_;
  std::unique_ptr<SecretStore> store_;
};

TEST_F(SecretStoreTest, RoundTripAndReplace) {
  auto created = store_->Put("prod", "db_password", "s3cr3t value\n", "pw-1");
  ASSERT_TRUE(created.ok()) << created.error();
  EXPECT_TRUE(*created);
  auto got = store_->Get("prod", "db_password", "pw-1");
  ASSERT_TRUE(got.ok()) << got.error();
  EXPECT_EQ(**got, "s3cr3t value\n");
  created = store_->Put("prod", "db_password", "other", "pw-1");
  ASSERT_TRUE(created.ok());
  EXPECT_FALSE(*created);
  EXPECT_EQ(**store_->Get("prod", "db_password", "pw-1"), "other");
}

TEST_F(SecretStoreTest, UnknownNameIsNotFoundWithoutPassword) {
  Put("prod", "a", "value-a");
  auto got = store_->Get("prod", "nope", "any password");
  ASSERT_TRUE(got.ok()) << got.error();
  EXPECT_FALSE(got->has_value());
  got = store_->Get("other-stack", "a", "pw-1");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
}

TEST_F(SecretStoreTest, WrongPasswordIsDetected) {
  Put("prod", "a", "value-a");
  auto got = store_->Get("prod", "a", "pw-2");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error(), "wrong secrets password for stack prod");
  EXPECT_TRUE(SecretStore::IsWrongPassword(got.status()));
  auto put = store_->Put("prod", "b", "value-b", "pw-2");
  ASSERT_FALSE(put.ok());
  EXPECT_TRUE(SecretStore::IsWrongPassword(put.status()));
  EXPECT_EQ(store_->List("prod")->size(), 1u);  // nothing was added
  EXPECT_FALSE(store_->GetAll("prod", "pw-2").ok());
}

TEST_F(SecretStoreTest, EachStackHasItsOwnPassword) {
  Put("prod", "a", "value-prod", "pw-prod");
  Put("dev", "a", "value-dev", "pw-dev");
  EXPECT_EQ(**store_->Get("prod", "a", "pw-prod"), "value-prod");
  EXPECT_EQ(**store_->Get("dev", "a", "pw-dev"), "value-dev");
  EXPECT_FALSE(store_->Get("dev", "a", "pw-prod").ok());
}

TEST_F(SecretStoreTest, GetAllAndListAreSortedByName) {
  Put("prod", "zeta", "value-z");
  Put("prod", "alpha", "value-a");
  auto all = store_->GetAll("prod", "pw-1");
  ASSERT_TRUE(all.ok()) << all.error();
  EXPECT_EQ(*all, (std::map<std::string, std::string>{{"alpha", "value-a"}, {"zeta", "value-z"}}));
  auto list = store_->List("prod");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "alpha");
  EXPECT_GT((*list)[0].created_at_ms, 0);
  EXPECT_TRUE(store_->GetAll("empty", "whatever")->empty());
}

TEST_F(SecretStoreTest, TamperedCiphertextDoesNotOpen) {
  Put("prod", "a", "value-a");
  // Flip one base64 character of the sealed value.
  Exec(
      "UPDATE secrets SET ciphertext = CASE WHEN substr(ciphertext, 1, 1) = 'A' THEN 'B' "
      "ELSE 'A' END || substr(ciphertext, 2)");
  auto got = store_->Get("prod", "a", "pw-1");
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().find("does not open"), std::string::npos) << got.error();
  EXPECT_FALSE(SecretStore::IsWrongPassword(got.status()));
}

TEST_F(SecretStoreTest, CiphertextMovedToAnotherNameDoesNotOpen) {
  Put("prod", "a", "value-a");
  Put("prod", "b", "value-b");
  Exec(
      "UPDATE secrets SET (nonce, ciphertext) = (SELECT nonce, ciphertext FROM secrets "
      "WHERE name = 'a') WHERE name = 'b'");
  EXPECT_EQ(**store_->Get("prod", "a", "pw-1"), "value-a");
  EXPECT_FALSE(store_->Get("prod", "b", "pw-1").ok());
}

TEST_F(SecretStoreTest, RemovingTheLastSecretForgetsThePassword) {
  Put("prod", "a", "value-a", "old");
  Put("prod", "b", "value-b", "old");
  EXPECT_TRUE(*store_->Remove("prod", "a"));
  EXPECT_FALSE(*store_->Remove("prod", "a"));
  EXPECT_FALSE(store_->Put("prod", "c", "value-c", "new").ok());  // b still uses "old"
  EXPECT_TRUE(*store_->Remove("prod", "b"));
  EXPECT_TRUE(store_->List("prod")->empty());
  Put("prod", "c", "value-c", "new");
  EXPECT_EQ(**store_->Get("prod", "c", "new"), "value-c");
}

TEST_F(SecretStoreTest, NoPlainValueInTheDatabaseFiles) {
  const std::string value = "PlainTextMarker-7f3a9c";
  Put("prod", "marker", value);
  Put("prod", "marker2", value + "-again");
  std::string bytes;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"})
    bytes += FileBytes(DatabasePath(dir_) + suffix);
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(bytes.find(value), std::string::npos);
  EXPECT_EQ(bytes.find("pw-1"), std::string::npos);     // nor the password
  EXPECT_NE(bytes.find("marker2"), std::string::npos);  // names are not secret
}

}  // namespace
}  // namespace sloth
