#include "lua/modules/unified_diff.h"

#include <string>

#include <gtest/gtest.h>

namespace sloth {
namespace {

std::string Diff(const std::string& a, const std::string& b) { return UnifiedDiff(a, b, "a", "b"); }

TEST(UnifiedDiffTest, EqualTextsGiveNothing) {
  EXPECT_EQ(Diff("", ""), "");
  EXPECT_EQ(Diff("x\ny\n", "x\ny\n"), "");
}

TEST(UnifiedDiffTest, FromEmptyFile) {
  EXPECT_EQ(Diff("", "one\ntwo\n"), "--- a\n+++ b\n@@ -0,0 +1,2 @@\n+one\n+two\n");
}

TEST(UnifiedDiffTest, ToEmptyFile) {
  EXPECT_EQ(Diff("one\n", ""), "--- a\n+++ b\n@@ -1 +0,0 @@\n-one\n");
}

TEST(UnifiedDiffTest, MissingTrailingNewline) {
  EXPECT_EQ(Diff("a\nb", "a\nb\n"),
            "--- a\n+++ b\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n");
}

TEST(UnifiedDiffTest, InsertAtStartAndEnd) {
  EXPECT_EQ(Diff("1\n2\n3\n4\n5\n", "0\n1\n2\n3\n4\n5\n"),
            "--- a\n+++ b\n@@ -1,3 +1,4 @@\n+0\n 1\n 2\n 3\n");
  EXPECT_EQ(Diff("1\n2\n3\n4\n5\n", "1\n2\n3\n4\n5\n6\n"),
            "--- a\n+++ b\n@@ -3,3 +3,4 @@\n 3\n 4\n 5\n+6\n");
}

TEST(UnifiedDiffTest, FarApartChangesMakeSeveralHunks) {
  std::string a, b;
  for (int i = 1; i <= 20; ++i) {
    a += std::to_string(i) + "\n";
    b += (i == 2 ? "two" : i == 18 ? "eighteen" : std::to_string(i)) + "\n";
  }
  EXPECT_EQ(Diff(a, b),
            "--- a\n+++ b\n"
            "@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n"
            "@@ -15,6 +15,6 @@\n 15\n 16\n 17\n-18\n+eighteen\n 19\n 20\n");
}

TEST(UnifiedDiffTest, NearChangesShareAHunk) {
  EXPECT_EQ(Diff("1\n2\n3\n4\n5\n6\n7\n8\n", "1\nX\n3\n4\n5\n6\nY\n8\n"),
            "--- a\n+++ b\n@@ -1,8 +1,8 @@\n 1\n-2\n+X\n 3\n 4\n 5\n 6\n-7\n+Y\n 8\n");
}

TEST(UnifiedDiffTest, MinimalInTheMiddle) {
  EXPECT_EQ(Diff("a\nb\nc\nd\n", "a\nc\nb\nd\n"),
            "--- a\n+++ b\n@@ -1,4 +1,4 @@\n a\n-b\n c\n+b\n d\n");
}

TEST(UnifiedDiffTest, HugeInputIsOmitted) {
  std::string big(kMaxDiffBytes + 1, 'x');
  EXPECT_EQ(Diff(big, "y\n"), "--- a\n+++ b\n(diff omitted: file too large)\n");
}

}  // namespace
}  // namespace sloth
