#include "events/journal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace sloth {
namespace {

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sloth-journal.XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

Event MakeEvent(const std::string& id) {
  return Event{id, "test.event", 1000, "test", "", "", "", 0, R"({"x":1})"};
}

TEST_F(JournalTest, LiveJournalsAreLeftAlone) {
  auto j = Journal::Create(dir_, "me");
  ASSERT_TRUE(j.ok()) << j.error();
  ASSERT_TRUE((*j)->Append(EventToLine(MakeEvent("a"))).ok());
  EXPECT_TRUE(JournalOwnerAlive(dir_, "me"));
  int calls = 0;
  auto n = RecoverJournals(dir_, [&](std::vector<Event>&) {
    ++calls;
    return Status::Ok();
  });
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  EXPECT_EQ(calls, 0);
}

TEST_F(JournalTest, DeadJournalsAreReplayedAndRemoved) {
  {
    auto j = Journal::Create(dir_, "gone");
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->Append(EventToLine(MakeEvent("a"))).ok());
    ASSERT_TRUE((*j)->Append(EventToLine(MakeEvent("b"))).ok());
  }  // closed without Remove: like a process that died
  // A torn last line (no newline) and garbage are skipped.
  std::ofstream(dir_ + "/journal-gone.log", std::ios::app) << "garbage\n{\"id\":\"c\"";
  EXPECT_FALSE(JournalOwnerAlive(dir_, "gone"));
  std::vector<std::string> ids;
  auto n = RecoverJournals(dir_, [&](std::vector<Event>& events) {
    for (const Event& e : events) ids.push_back(e.id);
    return Status::Ok();
  });
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/journal-gone.log"));
}

TEST_F(JournalTest, AFailedReplayKeepsTheJournal) {
  {
    auto j = Journal::Create(dir_, "gone");
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->Append(EventToLine(MakeEvent("a"))).ok());
  }
  auto n = RecoverJournals(dir_, [](std::vector<Event>&) { return Status::Error("disk full"); });
  EXPECT_FALSE(n.ok());
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/journal-gone.log"));
}

TEST_F(JournalTest, ANewJournalIsNeverSeenUnlocked) {
  // Another process replaying at the moment one is created must not take it: it appears
  // under its name already locked.
  for (int i = 0; i < 200; ++i) {
    auto j = Journal::Create(dir_, "t" + std::to_string(i));
    ASSERT_TRUE(j.ok()) << j.error();
    auto n = RecoverJournals(dir_, [](std::vector<Event>&) { return Status::Ok(); });
    ASSERT_TRUE(n.ok());
    EXPECT_TRUE(std::filesystem::exists((*j)->path()));
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir_))
    if (entry.path().filename() != "replay.lock")
      EXPECT_EQ(entry.path().extension(), ".log") << entry.path();
}

TEST_F(JournalTest, TruncateAndRemove) {
  auto j = Journal::Create(dir_, "me");
  ASSERT_TRUE(j.ok());
  auto end = (*j)->Append("x");
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(*end, 2);
  ASSERT_TRUE((*j)->Truncate().ok());
  EXPECT_EQ((*j)->size(), 0);
  end = (*j)->Append("yy");
  EXPECT_EQ(*end, 3);
  EXPECT_EQ(std::filesystem::file_size((*j)->path()), 3u);
  (*j)->Remove();
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/journal-me.log"));
}

}  // namespace
}  // namespace sloth
