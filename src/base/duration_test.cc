#include "base/duration.h"

#include <gtest/gtest.h>

using namespace std::chrono_literals;

namespace sloth {

TEST(ParseDuration, AcceptsUnitsAndCombinations) {
  EXPECT_EQ(*ParseDuration("500ms"), 500ms);
  EXPECT_EQ(*ParseDuration("30s"), 30s);
  EXPECT_EQ(*ParseDuration("5m"), 5min);
  EXPECT_EQ(*ParseDuration("1h30m"), 90min);
  EXPECT_EQ(*ParseDuration("2.5s"), 2500ms);
  EXPECT_EQ(*ParseDuration("1d"), 24h);
  EXPECT_EQ(*ParseDuration(" 10us "), 10us);
}

TEST(ParseDuration, BareNumberIsSeconds) {
  EXPECT_EQ(*ParseDuration("90"), 90s);
  EXPECT_EQ(*ParseDuration("0.25"), 250ms);
}

TEST(ParseDuration, RejectsGarbage) {
  for (const char* bad : {"", "abc", "5x", "1h30", "-5s", "s", "1..2s", "5 s"})
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
}

TEST(ParseDuration, ErrorNamesTheInput) {
  auto r = ParseDuration("5parsecs");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("5parsecs"), std::string::npos);
}

TEST(FormatDuration, SecondsWithMillis) {
  EXPECT_EQ(FormatSeconds(9073ms), "9.073s");
  EXPECT_EQ(FormatSeconds(0ms), "0.000s");
}

TEST(FormatDuration, HumanForms) {
  EXPECT_EQ(FormatHuman(850ms), "850ms");
  EXPECT_EQ(FormatHuman(1200ms), "1.2s");
  EXPECT_EQ(FormatHuman(125s), "2m05s");
}

}  // namespace sloth
