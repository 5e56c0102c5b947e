// EventBus with real SQLite files and real child processes: a small shell script stands in for
// `sloth-runner hook exec` (it reads the event on stdin and answers like the runner does).
#include "events/bus.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "store/migrations.h"

namespace sloth {
namespace {

constexpr char kRunner[] = R"(#!/bin/sh
# $1: the hook's name. The event arrives on stdin.
event=$(cat)
echo "$1 $event" >>"$LOG"
case "$1" in
  ok*) echo '{"success": true, "output": "fine"}' ;;
  fail*) echo 'some log line'; echo '{"success": false, "error": "nope"}'; exit 1 ;;
  hang*) sleep 30 ;;
  crash*) echo 'exploded' >&2; exit 3 ;;
esac
)";

class BusTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Loop::BlockSignals(); }
  void SetUp() override {
    char tmpl[] = "/tmp/sloth-bus.XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::ofstream(dir_ + "/runner.sh") << kRunner;
    std::filesystem::permissions(dir_ + "/runner.sh", std::filesystem::perms::owner_all);
    setenv("LOG", (dir_ + "/log").c_str(), 1);
    auto db = OpenDatabase(dir_ + "/sloth.db");
    ASSERT_TRUE(db.ok()) << db.error();
    store_ = std::make_unique<EventStore>(*db);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  EventBusOptions Options() {
    EventBusOptions o;
    o.data_dir = dir_;
    o.db_path = dir_ + "/sloth.db";
    o.hook_command = {dir_ + "/runner.sh"};
    o.retry_delay = std::chrono::milliseconds(10);
    return o;
  }
  void AddHook(const std::string& name, const std::string& pattern, int retries = 0,
               int64_t timeout_ms = 30000, const std::string& stack = "") {
    HookInfo h;
    h.name = name;
    h.file = "/nonexistent/" + name + ".lua";
    h.event_type = pattern;
    h.stack = stack;
    h.retries = retries;
    h.timeout_ms = timeout_ms;
    ASSERT_TRUE(store_->PutHook(h).ok());
  }
  std::string Status(const std::string& id) {
    auto e = store_->GetEvent(id);
    return e.ok() && e->has_value() ? (*e)->status : "missing";
  }
  // Journal files left in the events directory (replay.lock is not one).
  int Journals() {
    int n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/events"))
      n += entry.path().filename().string().starts_with("journal-");
    return n;
  }
  int LogLines() {
    std::ifstream in(dir_ + "/log");
    std::string line;
    int n = 0;
    while (std::getline(in, line)) ++n;
    return n;
  }

  std::string dir_;
  std::unique_ptr<EventStore> store_;
  Loop loop_;
};

Event Ev(const std::string& type, const std::string& stack = "") {
  Event e;
  e.type = type;
  e.stack = stack;
  e.source = "test";
  e.data_json = R"({"n": 1})";
  return e;
}

TEST_F(BusTest, EventsWithoutHooksAreStoredAsDelivered) {
  auto bus = EventBus::Open(loop_, Options());
  ASSERT_TRUE(bus.ok()) << bus.error();
  std::vector<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    auto id = (*bus)->Dispatch(Ev("bulk.event"));
    ASSERT_TRUE(id.ok()) << id.error();
    ids.push_back(*id);
  }
  EXPECT_TRUE((*bus)->Drain(std::chrono::seconds(10)));
  EXPECT_EQ((*bus)->persisted(), 1000);
  std::string journal = (*bus)->store().db().path();  // keep the bus's connection alive
  (*bus)->Close();
  EXPECT_EQ(Status(ids.front()), "delivered");
  EXPECT_EQ(Status(ids.back()), "delivered");
  // A clean close leaves no journal behind.
  EXPECT_EQ(Journals(), 0);
}

TEST_F(BusTest, AFewEventsAreWrittenWithoutAThreadWhenTheBusCloses) {
  std::vector<std::string> ids;
  {
    auto bus = EventBus::Open(loop_, Options());
    ASSERT_TRUE(bus.ok());
    for (int i = 0; i < 3; ++i) ids.push_back(*(*bus)->Dispatch(Ev("few.events")));
    EXPECT_EQ((*bus)->persisted(), 0);  // nothing written yet: no thread, no timer fired
  }                                     // closed here, without Drain
  for (const std::string& id : ids) EXPECT_EQ(Status(id), "delivered");
  EXPECT_EQ(Journals(), 0);
}

TEST_F(BusTest, InvalidTypesAreRefused) {
  auto bus = EventBus::Open(loop_, Options());
  ASSERT_TRUE(bus.ok());
  auto id = (*bus)->Dispatch(Ev("not valid"));
  ASSERT_FALSE(id.ok());
  EXPECT_NE(id.error().find("invalid event type"), std::string::npos);
}

TEST_F(BusTest, MatchingHooksRunAndAreRecorded) {
  AddHook("ok_all", "deploy.*");
  AddHook("ok_other", "other.thing");
  AddHook("ok_prod_only", "deploy.*", 0, 30000, "prod");
  auto bus = EventBus::Open(loop_, Options());
  ASSERT_TRUE(bus.ok());
  auto id = (*bus)->Dispatch(Ev("deploy.started", "staging"));
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE((*bus)->Drain(std::chrono::seconds(10)));
  (*bus)->Close();
  EXPECT_EQ(Status(*id), "delivered");
  auto runs = store_->ExecutionsOf(*id);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].hook, "ok_all");
  EXPECT_TRUE((*runs)[0].success);
  EXPECT_EQ((*runs)[0].output, "fine");
  // The runner got the event's JSON on stdin.
  std::ifstream in(dir_ + "/log");
  std::string line;
  std::getline(in, line);
  EXPECT_NE(line.find("\"type\":\"deploy.started\""), std::string::npos) << line;
}

TEST_F(BusTest, FailingHooksAreRetriedThenDeadLettered) {
  AddHook("fail_hook", "x.y", 2);
  auto bus = EventBus::Open(loop_, Options());
  ASSERT_TRUE(bus.ok());
  auto id = (*bus)->Dispatch(Ev("x.y"));
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE((*bus)->Drain(std::chrono::seconds(10)));
  (*bus)->Close();
  auto e = store_->GetEvent(*id);
  ASSERT_TRUE(e.ok() && e->has_value());
  EXPECT_EQ((*e)->status, "failed");
  EXPECT_NE((*e)->error.find("fail_hook failed after 3 attempts: nope"), std::string::npos)
      << (*e)->error;
  auto history = store_->HookHistory("fail_hook", 10);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 3u);
  EXPECT_EQ((*history)[0].attempt, 3);  // newest first
  EXPECT_FALSE((*history)[0].success);
  EXPECT_EQ((*history)[0].error, "nope");
}

TEST_F(BusTest, ARunnerThatCrashesReportsItsStderr) {
  AddHook("crash_hook", "x.y");
  auto bus = EventBus::Open(loop_, Options());
  ASSERT_TRUE(bus.ok());
  auto id = (*bus)->Dispatch(Ev("x.y"));
  ASSERT_TRUE((*bus)->Drain(std::chrono::seconds(10)));
  (*bus)->Close();
  auto history = store_->HookHistory("crash_hook", 10);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].error, "exploded");
}

TEST_F(BusTest, AHangingHookIsKilledAtItsTimeoutAndOthersStillRun) {
  AddHook("hang_hook", "x.y", 0, 300);
  AddHook("ok_hook", "x.y");
  auto bus = EventBus::Open(loop_, Options());
  ASSERT_TRUE(bus.ok());
  auto id = (*bus)->Dispatch(Ev("x.y"));
  ASSERT_TRUE(id.ok());
  Clock::time_point start = Clock::now();
  ASSERT_TRUE((*bus)->Drain(std::chrono::seconds(20)));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));  // not the hook's 30 s sleep
  (*bus)->Close();
  EXPECT_EQ(Status(*id), "failed");
  auto hang = store_->HookHistory("hang_hook", 10);
  ASSERT_TRUE(hang.ok());
  ASSERT_EQ(hang->size(), 1u);
  EXPECT_EQ((*hang)[0].error, "timed out after 300ms");
  auto ok = store_->HookHistory("ok_hook", 10);
  ASSERT_TRUE(ok.ok());
  ASSERT_EQ(ok->size(), 1u);
  EXPECT_TRUE((*ok)[0].success);
}

TEST_F(BusTest, DisabledHooksDoNotRun) {
  AddHook("ok_hook", "x.y");
  ASSERT_TRUE(*store_->SetHookEnabled("ok_hook", false));
  auto bus = EventBus::Open(loop_, Options());
  ASSERT_TRUE(bus.ok());
  auto id = (*bus)->Dispatch(Ev("x.y"));
  ASSERT_TRUE((*bus)->Drain(std::chrono::seconds(10)));
  (*bus)->Close();
  EXPECT_EQ(Status(*id), "delivered");
  EXPECT_EQ(LogLines(), 0);
}

TEST_F(BusTest, TooDeepEventsAreStoredButNotDelivered) {
  AddHook("ok_hook", "x.y");
  auto bus = EventBus::Open(loop_, Options());
  ASSERT_TRUE(bus.ok());
  Event e = Ev("x.y");
  e.depth = kMaxEventDepth + 1;
  auto id = (*bus)->Dispatch(e);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE((*bus)->Drain(std::chrono::seconds(10)));
  (*bus)->Close();
  auto stored = store_->GetEvent(*id);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->status, "failed");
  EXPECT_NE((*stored)->error.find("loop"), std::string::npos);
  EXPECT_EQ(LogLines(), 0);
}

TEST_F(BusTest, WhatADeadProcessLeftIsReplayedAndDelivered) {
  // A dead process's journal: two events, one of which reached the database as pending.
  Event a = Ev("x.y");
  a.id = "event-a";
  a.timestamp_ms = 1000;
  Event b = Ev("x.y");
  b.id = "event-b";
  b.timestamp_ms = 2000;
  {
    auto j = Journal::Create(dir_ + "/events", "dead-token");
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->Append(EventToLine(a)).ok());
    ASSERT_TRUE((*j)->Append(EventToLine(b)).ok());
  }
  ASSERT_TRUE(store_->InsertEvent(a, "pending", "", "dead-token").ok());
  AddHook("ok_hook", "x.y");
  EventBusOptions o = Options();
  o.take_orphans = true;
  auto bus = EventBus::Open(loop_, o);
  ASSERT_TRUE(bus.ok());
  ASSERT_TRUE((*bus)->Drain(std::chrono::seconds(10)));
  (*bus)->Close();
  EXPECT_EQ(Status("event-a"), "delivered");
  EXPECT_EQ(Status("event-b"), "delivered");
  EXPECT_EQ(LogLines(), 2);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/events/journal-dead-token.log"));
}

TEST_F(BusTest, ALiveOwnersEventsAreNotTaken) {
  AddHook("ok_hook", "x.y");
  auto first = EventBus::Open(loop_, Options());
  ASSERT_TRUE(first.ok());
  Event e = Ev("x.y");
  e.id = "theirs";
  ASSERT_TRUE(store_->InsertEvent(e, "pending", "", (*first)->token()).ok());
  EventBusOptions o = Options();
  o.take_orphans = true;
  auto second = EventBus::Open(loop_, o);
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE((*second)->Drain(std::chrono::seconds(5)));
  EXPECT_EQ(Status("theirs"), "pending");
  EXPECT_EQ(LogLines(), 0);
}

TEST_F(BusTest, ShortRunsLeaveOrphansToLongRunningProcesses) {
  Event a = Ev("x.y");
  a.id = "orphan";
  a.timestamp_ms = 1000;
  ASSERT_TRUE(store_->InsertEvent(a, "pending", "", "dead-token").ok());
  AddHook("ok_hook", "x.y");
  auto bus = EventBus::Open(loop_, Options());  // take_orphans is off by default
  ASSERT_TRUE(bus.ok());
  ASSERT_TRUE((*bus)->Drain(std::chrono::seconds(5)));
  (*bus)->Close();
  EXPECT_EQ(Status("orphan"), "pending");
  EXPECT_EQ(LogLines(), 0);
}

TEST_F(BusTest, RedeliveryOfATooDeepEventRunsNoHook) {
  AddHook("ok_hook", "x.y");
  Event e = Ev("x.y");
  e.id = "deep";
  e.timestamp_ms = 1000;
  e.depth = kMaxEventDepth + 1;
  ASSERT_TRUE(store_->InsertEvent(e, "pending", "", "dead-token").ok());
  EventBusOptions o = Options();
  o.take_orphans = true;
  auto bus = EventBus::Open(loop_, o);
  ASSERT_TRUE(bus.ok());
  ASSERT_TRUE((*bus)->Drain(std::chrono::seconds(5)));
  (*bus)->Close();
  EXPECT_EQ(Status("deep"), "failed");
  EXPECT_EQ(LogLines(), 0);
}

TEST_F(BusTest, RedeliverySkipsHooksThatSucceeded) {
  AddHook("ok_hook", "x.y");
  AddHook("fail_hook", "x.y");
  auto bus = EventBus::Open(loop_, Options());
  ASSERT_TRUE(bus.ok());
  auto id = (*bus)->Dispatch(Ev("x.y"));
  ASSERT_TRUE((*bus)->Drain(std::chrono::seconds(10)));
  EXPECT_EQ(LogLines(), 2);
  auto stored = store_->GetEvent(*id);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  ASSERT_TRUE((*bus)->Redeliver((*stored)->event).ok());
  ASSERT_TRUE((*bus)->Drain(std::chrono::seconds(10)));
  (*bus)->Close();
  EXPECT_EQ(LogLines(), 3);  // only fail_hook ran again
  EXPECT_EQ(Status(*id), "failed");
}

}  // namespace
}  // namespace sloth
