#include "store/sqlite_state_store.h"

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

namespace sloth {
namespace {

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sloth-store.XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    store_ = Open();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<SqliteStateStore> Open() {
    auto s = SqliteStateStore::Open(DatabasePath(dir_));
    EXPECT_TRUE(s.ok()) << s.error();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::string Value(const std::string& key) {
    auto v = store_->Get(key);
    EXPECT_TRUE(v.ok()) << v.error();
    return v.ok() && v->has_value() ? **v : "<absent>";
  }
  static LockOwner Me(const std::string& tag = "") {
    return LockOwner{"test:" + std::to_string(getpid()) + tag, "", getpid()};
  }

  std::string dir_;
  std::unique_ptr<SqliteStateStore> store_;
};

TEST_F(StateStoreTest, SetGetDeleteExists) {
  ASSERT_TRUE(store_->Set("a", R"({"x":[1,2]})", std::nullopt).ok());
  EXPECT_EQ(Value("a"), R"({"x":[1,2]})");
  EXPECT_TRUE(*store_->Exists("a"));
  EXPECT_TRUE(*store_->Delete("a"));
  EXPECT_FALSE(*store_->Delete("a"));
  EXPECT_FALSE(*store_->Exists("a"));
  EXPECT_EQ(Value("a"), "<absent>");
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/sloth.db"));
}

TEST_F(StateStoreTest, ExpiredKeysAreAbsentEverywhere) {
  ASSERT_TRUE(store_->Set("short", "1", 30).ok());
  ASSERT_TRUE(store_->Set("long", "2", 60000).ok());
  auto entry = store_->GetEntry("long");
  ASSERT_TRUE(entry->has_value());
  EXPECT_GT(*(*entry)->expires_at_ms, NowUnixMs() + 50000);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_EQ(Value("short"), "<absent>");
  EXPECT_FALSE(*store_->Exists("short"));
  EXPECT_EQ(store_->List("")->size(), 1u);
  auto stats = store_->Stats();
  EXPECT_EQ(stats->keys, 1);
  EXPECT_EQ(stats->expired, 1);
  EXPECT_FALSE(*store_->SetTtl("short", 1000));
  EXPECT_FALSE(store_->ListPop("short")->has_value());
  EXPECT_FALSE(*store_->CompareSwap("short", std::string("1"), std::string("2")));
  EXPECT_EQ(*store_->Increment("short", "5"), "5");  // counts from 0, not from the old value
  ASSERT_TRUE(store_->Set("gone", "1", 1).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(store_->Set("other", "1", std::nullopt).ok());
  EXPECT_EQ(store_->Stats()->expired, 0);  // writes purge expired rows
  EXPECT_FALSE(*store_->Delete("gone"));
}

TEST_F(StateStoreTest, SetTtlAddsAndRemovesExpiry) {
  ASSERT_TRUE(store_->Set("k", "\"v\"", std::nullopt).ok());
  EXPECT_FALSE((*store_->GetEntry("k"))->expires_at_ms.has_value());
  EXPECT_TRUE(*store_->SetTtl("k", 10000));
  EXPECT_TRUE((*store_->GetEntry("k"))->expires_at_ms.has_value());
  EXPECT_TRUE(*store_->SetTtl("k", std::nullopt));
  EXPECT_FALSE((*store_->GetEntry("k"))->expires_at_ms.has_value());
}

TEST_F(StateStoreTest, ListAndClearUseLiteralPrefixes) {
  for (const char* k : {"app.one", "app.two", "appX", "a%b", "a_c", "other"})
    ASSERT_TRUE(store_->Set(k, "1", std::nullopt).ok());
  auto list = store_->List("app.");
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].key, "app.one");
  EXPECT_EQ(store_->List("a%")->size(), 1u);
  EXPECT_EQ(store_->List("a_")->size(), 1u);
  EXPECT_EQ(store_->List("")->size(), 6u);
  EXPECT_EQ(*store_->Clear("app"), 3);
  EXPECT_EQ(store_->List("")->size(), 3u);
  EXPECT_EQ(*store_->Clear(""), 3);
}

TEST_F(StateStoreTest, IncrementKeepsIntegersAndRejectsNonNumbers) {
  EXPECT_EQ(*store_->Increment("n", "1"), "1");
  EXPECT_EQ(*store_->Increment("n", "5"), "6");
  EXPECT_EQ(*store_->Increment("n", "-2"), "4");
  EXPECT_EQ(*store_->Increment("n", "0.5"), "4.5");
  ASSERT_TRUE(store_->Set("s", "\"text\"", std::nullopt).ok());
  auto bad = store_->Increment("s", "1");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("not a number"), std::string::npos);
  EXPECT_FALSE(store_->Increment("n", "\"x\"").ok());
}

TEST_F(StateStoreTest, IncrementFromTwoConnectionsAndProcessesLosesNothing) {
  auto other = Open();
  std::thread t([&] {
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(other->Increment("c", "1").ok());
  });
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(store_->Increment("c", "1").ok());
  t.join();
  EXPECT_EQ(Value("c"), "400");
  // Two more processes, each with its own connection.
  std::vector<pid_t> kids;
  for (int p = 0; p < 2; ++p) {
    pid_t pid = fork();
    if (pid == 0) {
      auto s = SqliteStateStore::Open(DatabasePath(dir_));
      if (!s.ok()) _exit(2);
      for (int i = 0; i < 100; ++i)
        if (!(*s)->Increment("c", "1").ok()) _exit(1);
      _exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  EXPECT_EQ(Value("c"), "600");
}

TEST_F(StateStoreTest, CompareSwap) {
  EXPECT_TRUE(*store_->CompareSwap("s", std::nullopt, std::string("\"a\"")));
  EXPECT_FALSE(*store_->CompareSwap("s", std::nullopt, std::string("\"b\"")));
  EXPECT_FALSE(*store_->CompareSwap("s", std::string("\"x\""), std::string("\"b\"")));
  EXPECT_TRUE(*store_->CompareSwap("s", std::string("\"a\""), std::string("\"b\"")));
  EXPECT_EQ(Value("s"), "\"b\"");
  ASSERT_TRUE(store_->Set("t", R"({"a":1,"b":2})", std::nullopt).ok());
  EXPECT_TRUE(*store_->CompareSwap("t", std::string(R"({"b":2.0,"a":1})"), std::string("3")));
  EXPECT_TRUE(*store_->CompareSwap("t", std::string("3"), std::nullopt));  // deletes
  EXPECT_EQ(Value("t"), "<absent>");
}

TEST_F(StateStoreTest, AppendAndLists) {
  EXPECT_EQ(*store_->Append("log", "a"), "\"a\"");
  EXPECT_EQ(*store_->Append("log", "bc"), "\"abc\"");
  EXPECT_EQ(*store_->ListLength("q"), 0);
  EXPECT_FALSE(store_->ListPop("q")->has_value());
  EXPECT_EQ(*store_->ListPush("q", "\"a\""), 1);
  EXPECT_EQ(*store_->ListPush("q", R"({"b":1})"), 2);
  EXPECT_EQ(**store_->ListPeek("q"), R"({"b":1})");
  EXPECT_EQ(*store_->ListLength("q"), 2);
  EXPECT_EQ(**store_->ListPop("q"), R"({"b":1})");
  EXPECT_EQ(**store_->ListPop("q"), "\"a\"");
  EXPECT_FALSE(store_->ListPop("q")->has_value());
  EXPECT_FALSE(store_->ListPush("log", "1").ok());  // a string is not a list
  EXPECT_FALSE(store_->ListLength("log").ok());
  EXPECT_FALSE(store_->Append("q", "x").ok());  // a list is not a string
}

TEST_F(StateStoreTest, LocksExcludeAndFencingTokensIncrease) {
  auto a = store_->TryLock("L", Me("a"), 10000);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a->acquired);
  auto other = Open();
  auto b = other->TryLock("L", Me("b"), 10000);
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->acquired);
  EXPECT_EQ(b->holder.owner, Me("a").owner);
  EXPECT_EQ((*store_->LockHolder("L"))->token, a->token);
  EXPECT_FALSE(*store_->Unlock("L", a->token + 1));  // a wrong token releases nothing
  EXPECT_TRUE(*store_->Unlock("L", a->token));
  EXPECT_FALSE(*store_->Unlock("L", a->token));
  EXPECT_FALSE(store_->LockHolder("L")->has_value());
  auto c = other->TryLock("L", Me("b"), 10000);
  ASSERT_TRUE(c->acquired);
  EXPECT_GT(c->token, a->token);
  EXPECT_EQ(store_->Stats()->locks_held, 1);
}

TEST_F(StateStoreTest, ForceUnlockFreesAnyHolderAndKeepsTokensIncreasing) {
  EXPECT_FALSE(*store_->ForceUnlock("L"));  // never taken
  int64_t before = NowUnixMs();
  auto a = store_->TryLock("L", Me("a"), 10000);
  ASSERT_TRUE(a->acquired);
  EXPECT_GE((*store_->LockHolder("L"))->acquired_at_ms, before);
  EXPECT_TRUE(*store_->ForceUnlock("L"));
  EXPECT_FALSE(store_->LockHolder("L")->has_value());
  EXPECT_FALSE(*store_->Unlock("L", a->token));  // the old holder lost it
  auto b = store_->TryLock("L", Me("b"), 10000);
  ASSERT_TRUE(b->acquired);
  EXPECT_GT(b->token, a->token);
}

TEST_F(StateStoreTest, ExpiredLeaseIsTakenOverAndCannotBeRenewed) {
  auto a = store_->TryLock("L", Me("a"), 30);
  ASSERT_TRUE(a->acquired);
  EXPECT_TRUE(*store_->RenewLock("L", a->token, 40));
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_FALSE(store_->LockHolder("L")->has_value());
  auto b = store_->TryLock("L", Me("b"), 10000);
  ASSERT_TRUE(b->acquired);
  EXPECT_GT(b->token, a->token);
  EXPECT_FALSE(*store_->RenewLock("L", a->token, 10000));  // the old holder lost it
  EXPECT_FALSE(*store_->Unlock("L", a->token));
  EXPECT_TRUE(store_->LockHolder("L")->has_value());
}

TEST_F(StateStoreTest, LockOfADeadProcessOnThisHostIsFreeAtOnce) {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);  // `pid` no longer exists
  auto dead = store_->TryLock("L", LockOwner{"dead", host, pid}, 60000);
  ASSERT_TRUE(dead->acquired);
  EXPECT_FALSE(store_->LockHolder("L")->has_value());
  auto b = store_->TryLock("L", Me(), 60000);
  ASSERT_TRUE(b->acquired);
  // A live holder on this host keeps it.
  auto c = store_->TryLock("L", Me("c"), 60000);
  EXPECT_FALSE(c->acquired);
}

TEST_F(StateStoreTest, OpenFailsCleanlyWhereNoFileCanBeCreated) {
  std::string file = dir_ + "/plainfile";
  { std::ofstream(file) << "x"; }
  auto s = SqliteStateStore::Open(file + "/sub/sloth.db");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("cannot create"), std::string::npos) << s.error();
}

TEST_F(StateStoreTest, GroupCommitsItsCallsOnceAndIsolatesFailures) {
  ASSERT_TRUE(store_->Set("text", "\"abc\"", std::nullopt).ok());
  int64_t before = store_->db().commits();
  Status set_a, set_b;
  Result<std::string> bad = Status::Error("not run");
  Result<bool> swapped = Status::Error("not run");
  Status group = store_->Group([&] {
    set_a = store_->Set("a", "1", std::nullopt);
    bad = store_->Increment("text", "1");  // fails: its own error, nothing else undone
    set_b = store_->Set("b", "2", std::nullopt);
    swapped = store_->CompareSwap("a", "1", "10");  // sees the earlier call's write
  });
  ASSERT_TRUE(group.ok()) << group.message();
  EXPECT_TRUE(set_a.ok() && set_b.ok());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("not a number"), std::string::npos) << bad.error();
  ASSERT_TRUE(swapped.ok());
  EXPECT_TRUE(*swapped);
  EXPECT_EQ(store_->db().commits(), before + 1);
  auto other = Open();  // committed: another connection sees it
  EXPECT_EQ(**other->Get("a"), "10");
  EXPECT_EQ(**other->Get("b"), "2");
  EXPECT_EQ(**other->Get("text"), "\"abc\"");
}

}  // namespace
}  // namespace sloth
