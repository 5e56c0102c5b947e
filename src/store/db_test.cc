#include "store/db.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace sloth {
namespace {

class DbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sloth-db.XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(DbTest, OpensInWalModeAndCreatesTheDirectory) {
  auto db = Db::Open(dir_ + "/sub/dir/x.db");
  ASSERT_TRUE(db.ok()) << db.error();
  auto st = (*db)->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(*st->Step());
  EXPECT_EQ(st->Text(0), "wal");
  auto fk = (*db)->Prepare("PRAGMA foreign_keys");
  ASSERT_TRUE(*fk->Step());
  EXPECT_EQ(fk->Int(0), 1);
}

TEST_F(DbTest, MigrationsRunOnceInOrder) {
  std::vector<Migration> m = {{1, "CREATE TABLE a (x INTEGER)"}, {2, "INSERT INTO a VALUES (7)"}};
  {
    auto db = Db::Open(dir_ + "/m.db");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Migrate(m).ok());
    EXPECT_EQ(*(*db)->SchemaVersion(), 2);
  }
  auto db = Db::Open(dir_ + "/m.db");
  ASSERT_TRUE(db.ok());
  m.push_back({3, "INSERT INTO a VALUES (8)"});
  ASSERT_TRUE((*db)->Migrate(m).ok());  // 1 and 2 are not applied again
  auto st = (*db)->Prepare("SELECT COUNT(*), SUM(x) FROM a");
  ASSERT_TRUE(*st->Step());
  EXPECT_EQ(st->Int(0), 2);
  EXPECT_EQ(st->Int(1), 15);
  EXPECT_EQ(*(*db)->SchemaVersion(), 3);
}

TEST_F(DbTest, FailedMigrationRollsBackAndReports) {
  auto db = Db::Open(dir_ + "/f.db");
  ASSERT_TRUE(db.ok());
  Status s = (*db)->Migrate({{1, "CREATE TABLE a (x); CREATE TABLE a (y)"}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("migration 1"), std::string::npos) << s.message();
  EXPECT_EQ(*(*db)->SchemaVersion(), 0);
  EXPECT_TRUE((*db)->Exec("CREATE TABLE a (z)").ok());  // the failed one left nothing behind
}

TEST_F(DbTest, TransactionRollsBackOnError) {
  auto db = Db::Open(dir_ + "/t.db");
  ASSERT_TRUE((*db)->Exec("CREATE TABLE a (x INTEGER)").ok());
  Status s = (*db)->Transaction([&]() -> Status {
    EXPECT_TRUE((*db)->Exec("INSERT INTO a VALUES (1)").ok());
    return Status::Error("boom");
  });
  EXPECT_EQ(s.message(), "boom");
  auto st = (*db)->Prepare("SELECT COUNT(*) FROM a");
  ASSERT_TRUE(*st->Step());
  EXPECT_EQ(st->Int(0), 0);
}

TEST_F(DbTest, BadSqlIsAnError) {
  auto db = Db::Open(dir_ + "/b.db");
  ASSERT_TRUE(db.ok());
  auto st = (*db)->Prepare("SELEC nonsense");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().find("syntax error"), std::string::npos) << st.error();
  EXPECT_FALSE((*db)->Exec("INSERT INTO missing VALUES (1)").ok());
}

TEST_F(DbTest, PathThatCannotExistIsAnError) {
  std::string file = dir_ + "/plain";
  std::ofstream(file) << std::string(4096, 'x');
  auto bad = Db::Open(file + "/x.db");  // a file where a directory should be
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("cannot create"), std::string::npos) << bad.error();
  auto not_db = Db::Open(file);  // a file that is not a database
  ASSERT_FALSE(not_db.ok());
  EXPECT_NE(not_db.error().find("cannot open"), std::string::npos) << not_db.error();
}

}  // namespace
}  // namespace sloth
