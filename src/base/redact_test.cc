#include "base/redact.h"

#include <gtest/gtest.h>

namespace sloth {
namespace {

TEST(Redactor, EmptyRedactorChangesNothing) {
  Redactor r;
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.Apply("hunter22 is here"), "hunter22 is here");
}

TEST(Redactor, ReplacesEveryOccurrence) {
  Redactor r;
  r.Add("hunter22");
  EXPECT_EQ(r.Apply("pw=hunter22 again hunter22"), "pw=*** again ***");
  EXPECT_EQ(r.Apply("hunter2"), "hunter2");
}

TEST(Redactor, LongestValueWinsWhenValuesOverlap) {
  Redactor r;
  r.Add("abcd");
  r.Add("abcdefgh");
  EXPECT_EQ(r.Apply("xabcdefghx abcdx"), "x***x ***x");
}

TEST(Redactor, ShortValuesAreNotRedacted) {
  Redactor r;
  r.Add("abc");
  r.Add("");
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.Apply("abcabc"), "abcabc");
}

TEST(Redactor, EachLineOfAMultiLineValueIsRedacted) {
  Redactor r;
  r.Add("-----BEGIN KEY-----\r\nc2VjcmV0\nEND\n");
  EXPECT_EQ(r.Apply("got c2VjcmV0 here"), "got *** here");
  EXPECT_EQ(r.Apply("-----BEGIN KEY-----"), "***");
  EXPECT_EQ(r.Apply("END"), "END");  // shorter than kMinLength
}

TEST(Redactor, JsonEscapedFormIsRedacted) {
  Redactor r;
  r.Add("pa\"ss\\wo\trd");
  EXPECT_EQ(r.Apply(R"({"out":"pa\"ss\\wo\trd"})"), R"({"out":"***"})");
}

TEST(JsonEscaped, MatchesJsonStringEscaping) {
  EXPECT_EQ(JsonEscaped("a\"b\\c\n\x01é"), "a\\\"b\\\\c\\n\\u0001é");
}

}  // namespace
}  // namespace sloth
