// strings: plain-text helpers (no Lua patterns anywhere: separators and replacements are taken
// literally). Widths and lengths count UTF-8 characters; case changes touch ASCII letters only.
#include <algorithm>
#include <string>
#include <string_view>

#include <lua.hpp>

#include "lua/lua_util.h"
#include "lua/module.h"

namespace sloth {
namespace {

constexpr std::string_view kSpace = " \t\n\r\f\v";

std::string_view CheckText(lua_State* L, int arg) {
  size_t len;
  const char* s = luaL_checklstring(L, arg, &len);
  return {s, len};
}

int PushText(lua_State* L, std::string_view text) {
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

int PushBool(lua_State* L, bool value) {
  lua_pushboolean(L, value);
  return 1;
}

// Bytes in the UTF-8 character starting at text[i] (a stray byte counts as one character).
size_t CharBytes(std::string_view text, size_t i) {
  unsigned char c = static_cast<unsigned char>(text[i]);
  size_t n = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 1;
  return std::min(n, text.size() - i);
}

size_t CountChars(std::string_view text) {
  size_t count = 0;
  for (size_t i = 0; i < text.size(); i += CharBytes(text, i)) ++count;
  return count;
}

// The first `n` characters of `text`.
std::string_view FirstChars(std::string_view text, size_t n) {
  size_t i = 0;
  for (; i < text.size() && n > 0; --n) i += CharBytes(text, i);
  return text.substr(0, i);
}

// Appends each piece to the list at the top of the stack.
class ListBuilder {
 public:
  explicit ListBuilder(lua_State* L) : L_(L) {
    lua_newtable(L);
    MarkArray(L, -1);
  }
  void Add(std::string_view piece) {
    lua_pushlstring(L_, piece.data(), piece.size());
    lua_rawseti(L_, -2, ++n_);
  }

 private:
  lua_State* L_;
  lua_Integer n_ = 0;
};

// split(s, sep?): by a literal separator; "" splits into characters; nil splits on runs of
// whitespace and drops empty fields.
int StrSplit(lua_State* L) {
  std::string_view text = CheckText(L, 1);
  bool fields = lua_isnoneornil(L, 2);
  std::string_view sep = fields ? kSpace : CheckText(L, 2);
  ListBuilder list(L);
  if (fields) {
    for (size_t start = text.find_first_not_of(kSpace); start != std::string_view::npos;) {
      size_t end = std::min(text.find_first_of(kSpace, start), text.size());
      list.Add(text.substr(start, end - start));
      start = text.find_first_not_of(kSpace, end);
    }
  } else if (sep.empty()) {
    for (size_t i = 0; i < text.size(); i += CharBytes(text, i))
      list.Add(text.substr(i, CharBytes(text, i)));
  } else {
    size_t start = 0;
    for (size_t at; (at = text.find(sep, start)) != std::string_view::npos; start = at + sep.size())
      list.Add(text.substr(start, at - start));
    list.Add(text.substr(start));
  }
  return 1;
}

int StrJoin(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  std::string_view sep = luaL_opt(L, CheckText, 2, std::string_view());
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_Integer n = luaL_len(L, 1);
  for (lua_Integer i = 1; i <= n; ++i) {
    if (i > 1) luaL_addlstring(&b, sep.data(), sep.size());
    lua_geti(L, 1, i);  // ... item
    if (!lua_isstring(L, -1)) {
      return luaL_argerror(L, 1,
                           lua_pushfstring(L, "item %d is a %s, not a string", static_cast<int>(i),
                                           luaL_typename(L, -1)));
    }
    luaL_addvalue(&b);  // ...
  }
  luaL_pushresult(&b);
  return 1;
}

template <bool kLeft, bool kRight>
int StrTrim(lua_State* L) {
  std::string_view text = CheckText(L, 1);
  if (kLeft) text.remove_prefix(std::min(text.find_first_not_of(kSpace), text.size()));
  if (kRight) text = text.substr(0, text.find_last_not_of(kSpace) + 1);
  return PushText(L, text);
}

int StrStartsWith(lua_State* L) {
  return PushBool(L, CheckText(L, 1).starts_with(CheckText(L, 2)));
}
int StrEndsWith(lua_State* L) { return PushBool(L, CheckText(L, 1).ends_with(CheckText(L, 2))); }
int StrContains(lua_State* L) {
  return PushBool(L, CheckText(L, 1).find(CheckText(L, 2)) != std::string_view::npos);
}

// replace(s, old, new, n?): the first n occurrences (all when n is absent or negative).
int StrReplace(lua_State* L) {
  std::string_view text = CheckText(L, 1), from = CheckText(L, 2), to = CheckText(L, 3);
  lua_Integer limit = luaL_optinteger(L, 4, -1);
  if (from.empty()) luaL_argerror(L, 2, "must not be empty");
  std::string out;
  size_t start = 0;
  for (size_t at; limit != 0 && (at = text.find(from, start)) != std::string_view::npos; --limit) {
    out.append(text.substr(start, at - start)).append(to);
    start = at + from.size();
  }
  out.append(text.substr(start));
  return PushText(L, out);
}

char AsciiUpper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }
char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

template <char (*Convert)(char)>
int StrMapAscii(lua_State* L) {
  std::string text(CheckText(L, 1));
  for (char& c : text) c = Convert(c);
  return PushText(L, text);
}

// title(s): the first letter of each whitespace-separated word in upper case; the rest kept.
int StrTitle(lua_State* L) {
  std::string text(CheckText(L, 1));
  bool word_start = true;
  for (char& c : text) {
    if (word_start) c = AsciiUpper(c);
    word_start = kSpace.find(c) != std::string_view::npos;
  }
  return PushText(L, text);
}

template <bool kLeft>
int StrPad(lua_State* L) {
  std::string_view text = CheckText(L, 1);
  lua_Integer width = luaL_checkinteger(L, 2);
  std::string_view fill = luaL_opt(L, CheckText, 3, std::string_view(" "));
  if (fill.empty() || CharBytes(fill, 0) != fill.size())
    luaL_argerror(L, 3, "must be one character");
  size_t have = CountChars(text);
  if (width <= 0 || have >= static_cast<size_t>(width)) return PushText(L, text);
  std::string pad;
  for (size_t i = have; i < static_cast<size_t>(width); ++i) pad.append(fill);
  return PushText(L, kLeft ? pad + std::string(text) : std::string(text) + pad);
}

int StrTruncate(lua_State* L) {
  std::string_view text = CheckText(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 0, 2, "must not be negative");
  return PushText(L, FirstChars(text, static_cast<size_t>(n)));
}

// lines(s): "\n" or "\r\n" separated; a final newline does not start an empty line.
int StrLines(lua_State* L) {
  std::string_view text = CheckText(L, 1);
  ListBuilder list(L);
  for (size_t start = 0; start < text.size();) {
    size_t end = std::min(text.find('\n', start), text.size());
    std::string_view line = text.substr(start, end - start);
    if (line.ends_with('\r')) line.remove_suffix(1);
    list.Add(line);
    start = end + 1;
  }
  return 1;
}

int StrIsEmpty(lua_State* L) {
  if (lua_isnoneornil(L, 1)) return PushBool(L, true);
  return PushBool(L, CheckText(L, 1).empty());
}

}  // namespace

const Module& StringsModule() {
  static const Module m = {
      "strings",
      "Plain string helpers (literal separators, UTF-8 aware widths, ASCII case)",
      {
          {"split", StrSplit, "split(s, sep?) -> {parts}",
           "Splits on a literal separator (nil: on whitespace; \"\": into characters)"},
          {"join", StrJoin, "join(list, sep?) -> string", "Joins strings with a separator"},
          {"trim", StrTrim<true, true>, "trim(s) -> string", "Strips whitespace at both ends"},
          {"ltrim", StrTrim<true, false>, "ltrim(s) -> string", "Strips leading whitespace"},
          {"rtrim", StrTrim<false, true>, "rtrim(s) -> string", "Strips trailing whitespace"},
          {"starts_with", StrStartsWith, "starts_with(s, prefix) -> bool", "Prefix test"},
          {"ends_with", StrEndsWith, "ends_with(s, suffix) -> bool", "Suffix test"},
          {"contains", StrContains, "contains(s, sub) -> bool", "Substring test"},
          {"replace", StrReplace, "replace(s, old, new, n?) -> string",
           "Replaces literal occurrences (the first n, or all)"},
          {"upper", StrMapAscii<AsciiUpper>, "upper(s) -> string", "ASCII letters to upper case"},
          {"lower", StrMapAscii<AsciiLower>, "lower(s) -> string", "ASCII letters to lower case"},
          {"title", StrTitle, "title(s) -> string", "Capitalizes the first letter of each word"},
          {"pad_left", StrPad<true>, "pad_left(s, width, char?) -> string",
           "Pads on the left to width characters"},
          {"pad_right", StrPad<false>, "pad_right(s, width, char?) -> string",
           "Pads on the right to width characters"},
          {"truncate", StrTruncate, "truncate(s, n) -> string", "The first n characters"},
          {"lines", StrLines, "lines(s) -> {lines}", "Splits into lines (\\n or \\r\\n)"},
          {"is_empty", StrIsEmpty, "is_empty(s) -> bool", "True for nil or \"\""},
      },
  };
  return m;
}

}  // namespace sloth
