#include "base/strings.h"

#include <gtest/gtest.h>

namespace sloth {

TEST(Strings, SplitKeepsEmptyParts) {
  EXPECT_EQ(Split("a.b..c", '.'), (std::vector<std::string>{"a", "b", "", "c"}));
}

TEST(Strings, TrimRemovesWhitespace) { EXPECT_EQ(Trim("  hi \n"), "hi"); }

TEST(Strings, ClosestMatchSuggestsTypos) {
  EXPECT_EQ(ClosestMatch("biuld", {"build", "deploy", "test"}), "build");
  EXPECT_EQ(ClosestMatch("zzzzzz", {"build", "deploy"}), "");
}

TEST(Strings, EditDistance) {
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
  EXPECT_EQ(EditDistance("", "abc"), 3u);
}

}  // namespace sloth
