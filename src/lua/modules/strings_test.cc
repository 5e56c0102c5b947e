#include <gtest/gtest.h>

#include "lua/test_util.h"

namespace sloth {
using testing::LuaEnv;

TEST(StringsTest, Functions) {
  LuaEnv env;
  struct Case {
    const char* expr;
    const char* want;
  } cases[] = {
      {"table.concat(strings.split('a,b,,c', ','), '|')", "a|b||c"},
      {"table.concat(strings.split('a.b.c', '.'), '|')", "a|b|c"},  // not a pattern
      {"table.concat(strings.split('a::b', '::'), '|')", "a|b"},
      {"#strings.split('', ',')", "1"},
      {"table.concat(strings.split('  one  two\\tthree\\n'), '|')", "one|two|three"},
      {"#strings.split('   ')", "0"},
      {"table.concat(strings.split('añb', ''), '|')", "a|ñ|b"},
      {"strings.join({'a', 'b', 3}, ', ')", "a, b, 3"},
      {"strings.join({'a', 'b'})", "ab"},
      {"strings.join({}, ',')", ""},
      {"'[' .. strings.trim(' \\t x y \\n') .. ']'", "[x y]"},
      {"'[' .. strings.ltrim('  x  ') .. ']'", "[x  ]"},
      {"'[' .. strings.rtrim('  x  ') .. ']'", "[  x]"},
      {"'[' .. strings.trim('   ') .. ']'", "[]"},
      {"strings.starts_with('hello', 'he')", "true"},
      {"strings.starts_with('hello', 'lo')", "false"},
      {"strings.ends_with('hello', 'lo')", "true"},
      {"strings.contains('a.b', '.')", "true"},
      {"strings.contains('ab', '.')", "false"},
      {"strings.replace('a.b.c', '.', '%')", "a%b%c"},
      {"strings.replace('aaa', 'a', 'b', 2)", "bba"},
      {"strings.replace('aaa', 'a', 'b', 0)", "aaa"},
      {"strings.replace('x', 'y', 'z')", "x"},
      {"strings.upper('abc-ñ')", "ABC-ñ"},
      {"strings.lower('ABC-Ñ')", "abc-Ñ"},
      {"strings.title('hello big  world')", "Hello Big  World"},
      {"strings.pad_left('7', 3, '0')", "007"},
      {"strings.pad_left('ñ', 3)", "  ñ"},
      {"strings.pad_right('ab', 4, '.')", "ab.."},
      {"strings.pad_right('abcdef', 3)", "abcdef"},
      {"strings.pad_left('x', 3, '·')", "··x"},
      {"strings.truncate('hello', 3)", "hel"},
      {"strings.truncate('ñandú', 2)", "ña"},
      {"strings.truncate('hi', 10)", "hi"},
      {"table.concat(strings.lines('a\\r\\nb\\n\\nc\\n'), '|')", "a|b||c"},
      {"#strings.lines('')", "0"},
      {"strings.is_empty('')", "true"},
      {"strings.is_empty(nil)", "true"},
      {"strings.is_empty(' ')", "false"},
      {"json.encode(strings.split('   '))", "[]"},
  };
  for (const Case& c : cases) EXPECT_EQ(env.Eval(c.expr), c.want) << c.expr;
}

TEST(StringsTest, BadArgumentsRaise) {
  LuaEnv env;
  for (const char* code :
       {"strings.split()", "strings.split({}, ',')", "strings.join('a')", "strings.join({{}})",
        "strings.replace('a', '', 'b')", "strings.pad_left('a', 3, 'ab')", "strings.pad_left('a')",
        "strings.truncate('a', -1)", "strings.upper()", "strings.is_empty({})",
        "strings.contains('a')"}) {
    Status s = env.Run(code);
    EXPECT_FALSE(s.ok()) << code;
    EXPECT_NE(s.message().find("bad argument"), std::string::npos) << code << ": " << s.message();
  }
}

}  // namespace sloth
