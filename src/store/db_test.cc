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

TEST_F(DbTest, CachedStatementsComeBackResetAndUnbound) {
  auto db = Db::Open(dir_ + "/c.db");
  ASSERT_TRUE(db.ok());
  {
    auto st = (*db)->Cached("SELECT ?1");
    ASSERT_TRUE(st.ok()) << st.error();
    st->Bind(1, int64_t{7});
    ASSERT_TRUE(*st->Step());
    EXPECT_EQ(st->Int(0), 7);
  }  // goes back to the cache without being stepped to the end
  auto again = (*db)->Cached("SELECT ?1");
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(*again->Step());
  EXPECT_TRUE(again->IsNull(0));  // the binding of the earlier use is gone
  auto bad = (*db)->Cached("SELEC nonsense");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("syntax error"), std::string::npos) << bad.error();
}

TEST_F(DbTest, CachedStatementsNestWithTheSameText) {
  auto db = Db::Open(dir_ + "/n.db");
  ASSERT_TRUE((*db)->Exec("CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1), (2), (3)").ok());
  const char* sql = "SELECT x FROM a WHERE x >= ? ORDER BY x";
  auto outer = (*db)->Cached(sql);
  ASSERT_TRUE(outer.ok());
  outer->Bind(1, int64_t{1});
  std::vector<int64_t> pairs;
  while (*outer->Step()) {
    auto inner = (*db)->Cached(sql);  // the outer one is in use: this is another statement
    ASSERT_TRUE(inner.ok());
    inner->Bind(1, outer->Int(0));
    while (*inner->Step()) pairs.push_back(outer->Int(0) * 10 + inner->Int(0));
  }
  EXPECT_EQ(pairs, (std::vector<int64_t>{11, 12, 13, 22, 23, 33}));
}

TEST_F(DbTest, CachedSelectDoesNotKeepAReadTransactionOpen) {
  auto db = Db::Open(dir_ + "/r.db");
  ASSERT_TRUE((*db)->Exec("CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1), (2)").ok());
  {
    auto st = (*db)->Cached("SELECT x FROM a");
    ASSERT_TRUE(*st->Step());  // one of two rows read, then dropped
  }
  // A second connection writes and checkpoints the whole WAL: a reader that still held its
  // snapshot would make the truncating checkpoint report busy.
  auto other = Db::Open(dir_ + "/r.db");
  ASSERT_TRUE((*other)->Exec("INSERT INTO a VALUES (3)").ok());
  auto ckpt = (*other)->Prepare("PRAGMA wal_checkpoint(TRUNCATE)");
  ASSERT_TRUE(*ckpt->Step());
  EXPECT_EQ(ckpt->Int(0), 0) << "checkpoint blocked by a reader";
}

int64_t Count(Db& db, const std::string& table) {
  auto st = db.Prepare("SELECT COUNT(*) FROM " + table);
  EXPECT_TRUE(*st->Step());
  return st->Int(0);
}

TEST_F(DbTest, NestedTransactionsAreSavepoints) {
  auto db = Db::Open(dir_ + "/s.db");
  ASSERT_TRUE((*db)->Exec("CREATE TABLE a (x INTEGER UNIQUE)").ok());
  int64_t before = (*db)->commits();
  std::vector<Status> inner;
  Status outer = (*db)->Transaction([&]() -> Status {
    inner.push_back((*db)->Transaction([&] { return (*db)->Exec("INSERT INTO a VALUES (1)"); }));
    inner.push_back((*db)->Transaction([&]() -> Status {
      EXPECT_TRUE((*db)->Exec("INSERT INTO a VALUES (2)").ok());
      return (*db)->Exec("INSERT INTO a VALUES (1)");  // fails: undoes 2, keeps 1
    }));
    inner.push_back((*db)->Transaction([&] { return (*db)->Exec("INSERT INTO a VALUES (3)"); }));
    return Status::Ok();
  });
  ASSERT_TRUE(outer.ok()) << outer.message();
  ASSERT_EQ(inner.size(), 3u);
  EXPECT_TRUE(inner[0].ok());
  EXPECT_NE(inner[1].message().find("UNIQUE"), std::string::npos) << inner[1].message();
  EXPECT_TRUE(inner[2].ok());
  EXPECT_EQ((*db)->commits(), before + 1);  // one COMMIT for the three
  auto st = (*db)->Prepare("SELECT group_concat(x) FROM (SELECT x FROM a ORDER BY x)");
  ASSERT_TRUE(*st->Step());
  EXPECT_EQ(st->Text(0), "1,3");
}

TEST_F(DbTest, AWholeTransactionRolledBackInsideFailsTheRest) {
  auto db = Db::Open(dir_ + "/w.db");
  ASSERT_TRUE((*db)->Exec("CREATE TABLE a (x INTEGER)").ok());
  int64_t before = (*db)->commits();
  bool third_ran = false;
  std::vector<Status> inner;
  Status outer = (*db)->Transaction([&]() -> Status {
    inner.push_back((*db)->Transaction([&] { return (*db)->Exec("INSERT INTO a VALUES (1)"); }));
    // What SQLite does on SQLITE_FULL or an I/O error: the whole transaction is gone.
    inner.push_back((*db)->Transaction([&]() -> Status {
      (void)(*db)->Exec("ROLLBACK");
      return Status::Error("database or disk is full");
    }));
    inner.push_back((*db)->Transaction([&] {
      third_ran = true;
      return (*db)->Exec("INSERT INTO a VALUES (3)");
    }));
    return Status::Ok();
  });
  EXPECT_EQ(outer.message(), "database or disk is full");
  EXPECT_TRUE(inner[0].ok());  // it ran, but its change went with the rest
  EXPECT_EQ(inner[2].message(), "database or disk is full");
  EXPECT_FALSE(third_ran);  // it would have committed on its own (autocommit)
  EXPECT_EQ((*db)->commits(), before);
  EXPECT_EQ(Count(**db, "a"), 0);
  // The connection is usable afterwards.
  ASSERT_TRUE((*db)->Transaction([&] { return (*db)->Exec("INSERT INTO a VALUES (4)"); }).ok());
  EXPECT_EQ(Count(**db, "a"), 1);
}

}  // namespace
}  // namespace sloth
