#include "events/event.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace sloth {
namespace {

TEST(EventType, ValidTypesAreDottedWords) {
  EXPECT_TRUE(ValidEventType("deploy.started"));
  EXPECT_TRUE(ValidEventType("custom"));
  EXPECT_TRUE(ValidEventType("a-b.c_d.E9"));
  EXPECT_FALSE(ValidEventType(""));
  EXPECT_FALSE(ValidEventType("deploy..started"));
  EXPECT_FALSE(ValidEventType(".deploy"));
  EXPECT_FALSE(ValidEventType("deploy."));
  EXPECT_FALSE(ValidEventType("task.*"));
  EXPECT_FALSE(ValidEventType("has space"));
  EXPECT_FALSE(ValidEventType(std::string(201, 'a')));
}

TEST(EventType, PatternsAllowStarWords) {
  EXPECT_TRUE(ValidEventPattern("task.*"));
  EXPECT_TRUE(ValidEventPattern("*"));
  EXPECT_TRUE(ValidEventPattern("a.*.c"));
  EXPECT_FALSE(ValidEventPattern("task.f*"));
  EXPECT_FALSE(ValidEventPattern(""));
}

TEST(EventType, Matching) {
  EXPECT_TRUE(EventTypeMatches("task.failed", "task.failed"));
  EXPECT_FALSE(EventTypeMatches("task.failed", "task.failed.more"));
  EXPECT_FALSE(EventTypeMatches("task.failed", "task"));
  EXPECT_TRUE(EventTypeMatches("task.*", "task.failed"));
  EXPECT_TRUE(EventTypeMatches("task.*", "task.a.b"));
  EXPECT_FALSE(EventTypeMatches("task.*", "task"));
  EXPECT_FALSE(EventTypeMatches("task.*", "workflow.failed"));
  EXPECT_TRUE(EventTypeMatches("*", "anything.at.all"));
  EXPECT_TRUE(EventTypeMatches("*.failed", "task.failed"));
  EXPECT_FALSE(EventTypeMatches("*.failed", "task.completed"));
  EXPECT_TRUE(EventTypeMatches("a.*.c", "a.b.c"));
  EXPECT_FALSE(EventTypeMatches("a.*.c", "a.b.d"));
}

TEST(EventLine, RoundTrips) {
  Event e{"id-1",
          "deploy.started",
          1700000000123,
          "task:deploy",
          "prod",
          "web-01",
          "run-9",
          2,
          R"({"version":"v2","n":[1,2]})"};
  auto back = EventFromLine(EventToLine(e));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->id, "id-1");
  EXPECT_EQ(back->type, "deploy.started");
  EXPECT_EQ(back->timestamp_ms, 1700000000123);
  EXPECT_EQ(back->source, "task:deploy");
  EXPECT_EQ(back->stack, "prod");
  EXPECT_EQ(back->agent, "web-01");
  EXPECT_EQ(back->run_id, "run-9");
  EXPECT_EQ(back->depth, 2);
  EXPECT_EQ(nlohmann::json::parse(back->data_json), nlohmann::json::parse(e.data_json));
}

TEST(EventLine, RejectsWhatIsNotAnEvent) {
  EXPECT_FALSE(EventFromLine("").ok());
  EXPECT_FALSE(EventFromLine("{\"id\":\"x\",\"type\":\"a.b\"").ok());  // torn
  EXPECT_FALSE(EventFromLine("[1,2]").ok());
  EXPECT_FALSE(EventFromLine(R"({"id":"x","type":"bad type","ts":1})").ok());
  EXPECT_FALSE(EventFromLine(R"({"id":"x","type":"a.b"})").ok());  // no timestamp
}

TEST(EventJson, HasTheDocumentedFields) {
  Event e{"id-1", "a.b", 1700000000123, "runtime", "s", "", "r", 0, R"({"k":1})"};
  nlohmann::json j = EventToJson(e);
  EXPECT_EQ(j["timestamp"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(j["data"]["k"], 1);
  for (const char* key :
       {"id", "type", "timestamp_ms", "source", "stack", "agent", "run_id", "depth"})
    EXPECT_TRUE(j.contains(key)) << key;
}

}  // namespace
}  // namespace sloth
