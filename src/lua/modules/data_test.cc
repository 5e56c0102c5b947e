#include <gtest/gtest.h>

#include "lua/test_util.h"

namespace sloth {
using testing::LuaEnv;

TEST(DataTest, JsonRoundTripsNullArraysAndObjects) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local v = data.json_decode('{"a":null,"list":[],"obj":{},"port":8080,"ratio":0.5,"ok":true}')
    assert(v.a == data.null and v.a == json.null)
    assert(math.type(v.port) == "integer" and v.port == 8080)
    assert(math.type(v.ratio) == "float")
    assert(data.json_encode(v) == '{"a":null,"list":[],"obj":{},"ok":true,"port":8080,"ratio":0.5}',
           data.json_encode(v))
  )")
                .message(),
            "");
  EXPECT_EQ(env.Eval("data.json_encode({})"), "{}");
  EXPECT_EQ(env.Eval("data.json_encode(data.array())"), "[]");
  EXPECT_EQ(env.Eval("data.json_encode(data.array({1, 2}))"), "[1,2]");
  EXPECT_EQ(env.Eval("data.json_encode({port = 8080, f = 2.5})"), R"({"f":2.5,"port":8080})");
  EXPECT_EQ(env.Eval("data.json_encode({1, 'two', {x = data.null}})"), R"([1,"two",{"x":null}])");
  EXPECT_EQ(env.Eval("data.json_encode('a\"b\\n')"), R"("a\"b\n")");
  EXPECT_EQ(env.Eval("json.encode(json.decode('[]'))"), "[]");
}

TEST(DataTest, JsonPrettyIndents) {
  LuaEnv env;
  EXPECT_EQ(env.Eval("json.pretty({a = {1, 2}})"), "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
  EXPECT_EQ(env.Eval("data.json_pretty({a = 1}, 4)"), "{\n    \"a\": 1\n}");
  EXPECT_NE(env.Eval("data.json_pretty({}, -1)").find("indent must be between"), std::string::npos);
}

TEST(DataTest, JsonDecodeErrorsSayWhere) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local v, err = data.json_decode('{"a": 1,')
    assert(v == nil)
    assert(err:find("^json_decode: ") and err:find("line 1, column 9"), err)
    assert(json.decode("") == nil)
    assert(select(2, data.parse_json("[1, 2")):find("column"))
  )")
                .message(),
            "");
}

TEST(DataTest, JsonDecodeLimitsNesting) {
  LuaEnv env;
  EXPECT_EQ(env.Eval("select(2, json.decode(string.rep('[', 100000) .. string.rep(']', 100000)))"),
            "json_decode: nested deeper than 512 levels");
  EXPECT_EQ(env.Eval("#json.encode(json.decode(string.rep('[', 500) .. string.rep(']', 500)))"),
            "1000");
}

TEST(DataTest, EncodingACycleRaises) {
  LuaEnv env;
  Status s = env.Run("local t = {}; t.self = t; data.json_encode(t)");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("contains itself"), std::string::npos);
  EXPECT_FALSE(env.Run("local t = {}; t[1] = t; yaml.encode(t)").ok());
}

TEST(DataTest, FunctionsEncodeAsTheirTostring) {
  LuaEnv env;
  EXPECT_NE(env.Eval("data.json_encode({f = print})").find("function"), std::string::npos);
}

TEST(DataTest, YamlTypesScalarsAsYaml12Core) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local v = assert(yaml.decode([[
port: 8080
ratio: 1.5
on: yes
enabled: true
name: "8080"
empty:
list: [a, 2]
]]))
    assert(math.type(v.port) == "integer" and v.port == 8080)
    assert(v.ratio == 1.5)
    assert(v.on == "yes")          -- YAML 1.2: only true/false are booleans
    assert(v.enabled == true)
    assert(v.name == "8080")       -- quoted stays a string
    assert(v.empty == data.null)
    assert(v.list[1] == "a" and v.list[2] == 2)
  )")
                .message(),
            "");
}

TEST(DataTest, YamlRoundTripKeepsTypes) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local src = {port = 8080, name = "web", tags = {"a", "b"}, version = "1.10", flag = "true",
                 nested = {x = data.null}, empty = data.array()}
    local text = data.yaml_encode(src)
    local back = assert(data.yaml_decode(text))
    assert(back.port == 8080 and math.type(back.port) == "integer", text)
    assert(back.version == "1.10" and back.flag == "true", text)   -- strings stay strings
    assert(back.tags[2] == "b" and back.nested.x == data.null, text)
    assert(data.json_encode(back.empty) == "[]", text)
    assert(data.to_yaml({a = 1}) == "a: 1\n")
    assert(data.parse_yaml("- 1\n- 2\n")[2] == 2)
  )")
                .message(),
            "");
}

TEST(DataTest, YamlDecodeErrorsSayWhere) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local v, err = yaml.decode("a: [1, 2\nb: 3\n")
    assert(v == nil and err:find("^yaml_decode: line %d+, column %d+"), err)
  )")
                .message(),
            "");
}

TEST(DataTest, CsvParseHandlesQuotesAndNewlines) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local rows = assert(data.csv_parse('a,b,c\r\n"x, y","say ""hi""","line1\nline2"\n,,\n'))
    assert(#rows == 3)
    assert(rows[1][3] == "c")
    assert(rows[2][1] == "x, y" and rows[2][2] == 'say "hi"' and rows[2][3] == "line1\nline2")
    assert(#rows[3] == 3 and rows[3][1] == "" and rows[3][3] == "")
    local semi = data.csv_parse("a;b\n1;2", {sep = ";"})
    assert(semi[2][2] == "2")                         -- no final newline needed
    assert(#data.csv_parse("a\n\n\nb\n") == 2)        -- blank lines are skipped
    assert(data.json_encode(data.csv_parse("")) == "[]")
    assert(data.csv_parse('""')[1][1] == "")
  )")
                .message(),
            "");
}

TEST(DataTest, CsvParseWithHeaderGivesRecords) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local recs = assert(data.csv_parse("name,port\nweb,80\ndb\n", {header = true}))
    assert(#recs == 2 and recs[1].name == "web" and recs[1].port == "80")
    assert(recs[2].name == "db" and recs[2].port == nil)
    local none, err = data.csv_parse("a,b\n1,2,3\n", {header = true})
    assert(none == nil and err:find("record 1 has 3 fields, the header has 2"), err)
  )")
                .message(),
            "");
}

TEST(DataTest, CsvParseRejectsMalformedInput) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local v, err = data.csv_parse('a,b\n"open,c\n')
    assert(v == nil and err == "csv_parse: line 2: unterminated quoted field", err)
    v, err = data.csv_parse('"a"b,c')
    assert(v == nil and err:find("line 1: unexpected 'b' after a closing quote"), err)
  )")
                .message(),
            "");
  EXPECT_NE(env.Eval("select(2, pcall(data.csv_parse, 'a', {sep = ';;'}))").find("'sep'"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(data.csv_parse, 'a', {header = 'yes'}))").find("'header'"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(data.csv_parse, {}))").find("string expected"),
            std::string::npos);
}

TEST(DataTest, CsvGenerateQuotesAndRoundTrips) {
  LuaEnv env;
  EXPECT_EQ(env.Eval(R"(data.csv_generate({{"a", "b,c"}, {'say "hi"', "x\ny"}, {1, true}}))"),
            "a,\"b,c\"\n\"say \"\"hi\"\"\",\"x\ny\"\n1,true\n");
  EXPECT_EQ(env.Eval(R"(data.csv_generate({{name = "web", port = 80}, {name = "db"}}))"),
            "name,port\nweb,80\ndb,\n");
  EXPECT_EQ(
      env.Eval(
          R"(data.csv_generate({{name = "web", port = 80}}, {header = {"port", "name"}, sep = ";"}))"),
      "port;name\n80;web\n");
  EXPECT_EQ(env.Eval(R"(data.csv_generate({{1, 2}}, {header = {"a", "b"}}))"), "a,b\n1,2\n");
  ASSERT_EQ(env.Run(R"(
    local rows = {{"a", "quote \" and , and \n"}, {"", "x"}}
    local back = data.csv_parse(data.csv_generate(rows))
    assert(back[1][2] == rows[1][2] and back[2][1] == "" and back[2][2] == "x")
  )")
                .message(),
            "");
  EXPECT_NE(env.Eval("select(2, pcall(data.csv_generate, {'x'}))").find("row 1 must be a table"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(data.csv_generate, {{{}}}))").find("row 1 has a table value"),
            std::string::npos);
}

TEST(DataTest, DeepMergeReturnsANewTable) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local a = {server = {host = "a", port = 80, tls = {on = false}}, list = {1, 2, 3}, keep = "k"}
    local b = {server = {port = 8080, tls = {on = true}}, list = {9}, extra = data.null}
    local m = data.deep_merge(a, b)
    assert(m.server.host == "a" and m.server.port == 8080 and m.server.tls.on == true)
    assert(#m.list == 1 and m.list[1] == 9)       -- lists are replaced, not merged
    assert(m.keep == "k" and m.extra == data.null)
    assert(a.server.port == 80 and a.server.tls.on == false)  -- inputs untouched
    m.server.host = "changed"
    assert(a.server.host == "a")                  -- no shared sub-tables
    b.list[1] = 0
    assert(m.list[1] == 9)
  )")
                .message(),
            "");
  EXPECT_NE(
      env.Eval("select(2, pcall(data.deep_merge, {}, 5))").find("bad argument #2 to 'deep_merge'"),
      std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(function() local t = {}; t.t = t; return data.deep_merge({}, "
                     "t) end))")
                .find("contains itself"),
            std::string::npos);
}

TEST(DataTest, GetPathAndSetPath) {
  LuaEnv env;
  ASSERT_EQ(env.Run(R"(
    local t = {a = {b = {{c = "first"}, {c = "second"}}}, ["1"] = "string key"}
    assert(data.get_path(t, "a.b.1.c") == "first")
    assert(data.get_path(t, "a.b.2.c") == "second")
    assert(data.get_path(t, "1") == "string key")
    assert(data.get_path(t, "a.missing.c") == nil)
    assert(data.get_path(t, "a.b.1.c.d") == nil)      -- through a string
    assert(data.get_path(t, "a.x", "dflt") == "dflt")
    assert(data.get_path(t, {"a", "b", 2, "c"}) == "second")
    assert(data.get_path({flag = false}, "flag", true) == false)

    local s = {}
    assert(data.set_path(s, "x.y.z", 1) == s)
    assert(s.x.y.z == 1)
    data.set_path(s, "list.1", "a")
    assert(s.list[1] == "a" and data.json_encode(s.list) == '["a"]')
    data.set_path(s, "x.y.z", 2)
    assert(s.x.y.z == 2)
    local ok, err = pcall(data.set_path, s, "x.y.z.w", 3)
    assert(not ok and err:find("'x.y.z' is a number, not a table"), err)
    ok, err = pcall(data.set_path, s, "", 3)
    assert(not ok and err:find("empty path"), err)
    assert(data.get_path(s, "") == s)
  )")
                .message(),
            "");
}

TEST(DataTest, ArrayRejectsNonSequences) {
  LuaEnv env;
  EXPECT_NE(env.Eval("select(2, pcall(data.array, {x = 1}))").find("keys other than 1..n"),
            std::string::npos);
  EXPECT_NE(env.Eval("select(2, pcall(data.array, 'x'))").find("table expected"),
            std::string::npos);
  EXPECT_EQ(env.Eval("data.json_encode(data.array(nil))"), "[]");
}

TEST(DataTest, RequireReturnsTheSameTables) {
  LuaEnv env;
  EXPECT_EQ(
      env.Eval("require('data') == data and require('json') == json and require('yaml') == yaml"),
      "true");
  EXPECT_EQ(env.Eval("yaml.encode == data.yaml_encode and json.decode == data.json_decode"),
            "true");
}

}  // namespace sloth
