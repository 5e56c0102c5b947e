#include "data/values.h"

#include <gtest/gtest.h>

#include "data/yaml_json.h"

namespace sloth {

TEST(Values, DeepMergeMergesMapsAndReplacesTheRest) {
  auto base = nlohmann::json::parse(R"({"a":{"x":1,"y":2},"list":[1,2],"s":"old"})");
  DeepMerge(base, nlohmann::json::parse(R"({"a":{"y":3},"list":[9],"s":"new"})"));
  EXPECT_EQ(base, nlohmann::json::parse(R"({"a":{"x":1,"y":3},"list":[9],"s":"new"})"));
}

TEST(Values, SetTypesValuesAsYaml) {
  nlohmann::json v = nlohmann::json::object();
  ASSERT_TRUE(ApplySet(v, "port=8080").ok());
  ASSERT_TRUE(ApplySet(v, "debug=true").ok());
  ASSERT_TRUE(ApplySet(v, "ratio=0.5").ok());
  ASSERT_TRUE(ApplySet(v, "name=web").ok());
  ASSERT_TRUE(ApplySet(v, "quoted=\"8080\"").ok());
  EXPECT_TRUE(v["port"].is_number_integer());
  EXPECT_EQ(v["port"], 8080);
  EXPECT_EQ(v["debug"], true);
  EXPECT_EQ(v["ratio"], 0.5);
  EXPECT_EQ(v["name"], "web");
  EXPECT_EQ(v["quoted"], "8080");
}

TEST(Values, SetCreatesNestedPathsAndIndexesLists) {
  nlohmann::json v = nlohmann::json::parse(R"({"servers":[{"name":"a"}]})");
  ASSERT_TRUE(ApplySet(v, "terraform.environment=staging").ok());
  ASSERT_TRUE(ApplySet(v, "servers.0.name=b").ok());
  EXPECT_EQ(v["terraform"]["environment"], "staging");
  EXPECT_EQ(v["servers"][0]["name"], "b");
}

TEST(Values, SetRejectsMalformedAssignments) {
  nlohmann::json v = nlohmann::json::object();
  EXPECT_FALSE(ApplySet(v, "novalue").ok());
  EXPECT_FALSE(ApplySet(v, "=x").ok());
  EXPECT_FALSE(ApplySet(v, "a..b=1").ok());
  EXPECT_TRUE(ApplySet(v, "empty=").ok());
  EXPECT_EQ(v["empty"], "");
}

TEST(Yaml, KeepsIntegersAndQuotedStrings) {
  auto doc = ParseYaml("n: 5\nf: 1.5\ns: \"5\"\nb: false\nnothing: ~\nlist: [1, two]\n");
  ASSERT_TRUE(doc.ok());
  EXPECT_TRUE((*doc)["n"].is_number_integer());
  EXPECT_TRUE((*doc)["f"].is_number_float());
  EXPECT_EQ((*doc)["s"], "5");
  EXPECT_EQ((*doc)["b"], false);
  EXPECT_TRUE((*doc)["nothing"].is_null());
  EXPECT_EQ((*doc)["list"][1], "two");
}

TEST(Yaml, OutOfRangeNumbersDoNotThrow) {  // found by fuzz/values_fuzz.cc
  nlohmann::json v = nlohmann::json::object();
  ASSERT_TRUE(ApplySet(v, "huge=6e696").ok());
  EXPECT_TRUE(v["huge"].is_number_float());
  ASSERT_TRUE(ApplySet(v, "big=99999999999999999999").ok());
  EXPECT_TRUE(v["big"].is_number_float());
  EXPECT_TRUE(TypedScalar("0xffffffffffffffffffff").is_string());
}

TEST(Yaml, WhatWeWriteReadsBack) {  // found by fuzz/values_fuzz.cc
  auto doc = nlohmann::json::parse(R"({"a b": "x:y", "": "", "k": "\u0000r", "n": "5", "t": "true",
                                       "s": " padded ", "dash": "- item", "ok": "plain text"})");
  auto back = ParseYaml(ToYaml(doc));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(*back, doc);
}

TEST(Yaml, LongKeysReadBack) {  // found by fuzz/values_fuzz.cc: implicit keys stop at 1024
  nlohmann::json doc = {
      {std::string(400, '\x02'), {{"null", nullptr}}}, {std::string(2000, 'k'), 1}, {"short", 2}};
  auto back = ParseYaml(ToYaml(doc));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(*back, doc);
}

TEST(Yaml, ErrorsNameTheLine) {
  auto doc = ParseYaml("a: [1, 2\nb: 3\n");
  ASSERT_FALSE(doc.ok());
  EXPECT_NE(doc.error().find("line"), std::string::npos);
}

TEST(Values, MissingFileIsAnError) {
  EXPECT_FALSE(LoadValues({"/nonexistent/values.yaml"}, {}).ok());
}

}  // namespace sloth
