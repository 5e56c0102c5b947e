// template: Mustache rendering through kainjow-mustache, without HTML escaping (the output is
// config files, not HTML). Go-template style `{{.name}}` is read as `{{name}}`, and a boolean
// printed with `{{flag}}` shows as true/false, so templates from the original keep working.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <kainjow/mustache.hpp>
#include <map>
#include <string>
#include <unordered_set>
#include <vector>

#include <lua.hpp>

#include "base/strings.h"
#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/modules/template.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

using Data = kainjow::mustache::data;
constexpr char kVarMark = '\x01';       // appended to the names of variable tags; see Context::get
constexpr char kStandalone[] = "\x02";  // an always-true section; see StandaloneMark
constexpr int kMaxDepth = 100;

// --- rewriting tags before kainjow parses them ----------------------------------------------

struct Prepared {
  std::string source;
  std::string text;
  std::vector<std::string> partials;               // names of the partials it includes
  std::vector<std::pair<size_t, size_t>> anchors;  // (offset in text, offset in the source)
};

// `.name` (Go-template style) -> `name`; `.` alone stays.
std::string StripDot(std::string_view name) {
  if (name.empty()) return "";
  unsigned char next = name.size() > 1 ? static_cast<unsigned char>(name[1]) : 0;
  if (name[0] == '.' && (std::isalnum(next) || next == '_' || next >= 0x80)) name.remove_prefix(1);
  return std::string(name);
}

// Reads "=<% %>=" into new delimiters; false when malformed (kainjow then reports it).
bool ParseDelimiters(std::string_view content, std::string& open, std::string& close) {
  if (content.size() < 5 || content.back() != '=') return false;
  std::string_view inner = Trim(content.substr(1, content.size() - 2));
  size_t space = inner.find(' ');
  if (space == std::string_view::npos) return false;
  std::string_view end = Trim(inner.substr(space));
  if (end.empty()) return false;
  open = std::string(inner.substr(0, space));
  close = std::string(end);
  return true;
}

// kainjow drops a line that rendered only whitespace if a section was rendered on it, but not
// if the section was skipped or the line held a comment, partial or delimiter change, which
// would leave blank lines. An empty section that always renders, after each of those tags,
// makes those lines vanish too, as Mustache's standalone-tag rule says.
std::string StandaloneMark(const std::string& open, const std::string& close) {
  return open + "#" + kStandalone + close + open + "/" + kStandalone + close;
}

// One tag with its content rewritten (see Prepare).
std::string RewriteTag(std::string_view content, bool triple, const std::string& open,
                       const std::string& close, Prepared& out) {
  if (triple) return "{{{" + StripDot(content) + kVarMark + "}}}";
  if (content.empty()) return open + close;
  char kind = content[0];
  std::string name = StripDot(Trim(content.substr(1)));
  switch (kind) {
    case '!':
      return open + std::string(content) + close + StandaloneMark(open, close);
    case '=':
      return open + std::string(content) + close;  // Prepare adds the mark
    case '#':
    case '^':
      return open + kind + name + close;
    case '/':
      return open + kind + name + close + StandaloneMark(open, close);
    case '>':
      out.partials.push_back(name);
      return open + ">" + name + close + StandaloneMark(open, close);
    case '&':
      return open + "&" + name + kVarMark + close;
    default:
      return open + StripDot(content) + kVarMark + close;
  }
}

// Rewrites `{{.name}}` to `{{name}}`, marks variable tags and adds standalone marks, following
// delimiter changes.
Prepared Prepare(const std::string& source) {
  Prepared out;
  out.source = source;
  std::string open = "{{", close = "}}";
  size_t pos = 0;
  for (size_t start; (start = source.find(open, pos)) != std::string::npos;) {
    out.text.append(source, pos, start - pos);
    out.anchors.emplace_back(out.text.size(), start);
    bool triple = open == "{{" && source.compare(start + 2, 1, "{") == 0;
    size_t body = start + open.size() + (triple ? 1 : 0);
    size_t stop = source.find(triple ? "}}}" : close, body);
    if (stop == std::string::npos) {
      pos = start;  // kainjow reports the unclosed tag
      break;
    }
    std::string_view content = Trim(std::string_view(source).substr(body, stop - body));
    out.text += RewriteTag(content, triple, open, close, out);
    pos = stop + (triple ? 3 : close.size());
    if (!triple && !content.empty() && content[0] == '=' && ParseDelimiters(content, open, close))
      out.text += StandaloneMark(open, close);
    out.anchors.emplace_back(out.text.size(), pos);
  }
  out.text.append(source, pos);
  return out;
}

// kainjow's errors end in " at OFFSET" (an offset into the rewritten text); this says where
// that is in the source as "line L, column C: message".
std::string Locate(const std::string& error, const Prepared& p) {
  const std::string& source = p.source;
  size_t at = error.rfind(" at ");
  if (at == std::string::npos || error.find_first_not_of("0123456789", at + 4) != std::string::npos)
    return error;
  size_t offset = std::stoul(error.substr(at + 4)), src = offset;
  for (const auto& [text_pos, source_pos] : p.anchors)
    if (text_pos <= offset) src = source_pos + (offset - text_pos);
  src = std::min(src, source.size());
  size_t line = 1 + std::count(source.begin(), source.begin() + src, '\n');
  size_t line_start = source.rfind('\n', src == 0 ? 0 : src - 1);
  size_t column = src - (line_start == std::string::npos || src == 0 ? 0 : line_start + 1) + 1;
  return "line " + std::to_string(line) + ", column " + std::to_string(column) + ": " +
         error.substr(0, at);
}

// --- Lua values -> kainjow data ------------------------------------------------------------

// Integers (and floats with an integral value) print without ".0".
std::string FormatNumber(lua_State* L, int index) {
  if (lua_isinteger(L, index)) return std::to_string(lua_tointeger(L, index));
  double d = lua_tonumber(L, index);
  char buf[64];
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", d);
  else
    std::snprintf(buf, sizeof buf, "%.14g", d);
  return buf;
}

// Length n when the table's keys are exactly 1..n (0 for an empty table), else -1.
lua_Integer ListLength(lua_State* L, int index) {
  lua_Integer count = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, index)) {  // key value
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) return lua_pop(L, 1), -1;
    max = std::max(max, lua_tointeger(L, -1));
    ++count;
  }
  return count == max ? count : -1;
}

Data ToData(lua_State* L, int index, std::unordered_set<const void*>& seen, int depth);

// Sequences (and empty tables) become lists, so that an empty one is false in a section.
Data TableToData(lua_State* L, int index, std::unordered_set<const void*>& seen, int depth) {
  const void* p = lua_topointer(L, index);
  if (!seen.insert(p).second) luaL_error(L, "template: vars contain a table that contains itself");
  if (depth > kMaxDepth) luaL_error(L, "template: vars are nested too deeply");
  luaL_checkstack(L, 4, "template: vars are nested too deeply");
  Data out;
  if (lua_Integer n = ListLength(L, index); n >= 0) {
    out = Data(Data::type::list);
    for (lua_Integer i = 1; i <= n; ++i, lua_pop(L, 1))
      out.push_back(ToData(L, (lua_rawgeti(L, index, i), lua_gettop(L)), seen, depth + 1));
  } else {
    lua_pushnil(L);
    while (lua_next(L, index)) {  // key value
      lua_pushvalue(L, -2);       // key value key
      std::string key = luaL_tolstring(L, -1, nullptr);
      lua_pop(L, 2);  // key value
      out.set(key, ToData(L, lua_gettop(L), seen, depth + 1));
      lua_pop(L, 1);  // key
    }
  }
  seen.erase(p);
  return out;
}

Data ToData(lua_State* L, int index, std::unordered_set<const void*>& seen, int depth) {
  switch (lua_type(L, index)) {
    case LUA_TNIL:
      return Data(Data::type::list);  // empty: false in sections, prints nothing
    case LUA_TBOOLEAN:
      return Data(lua_toboolean(L, index) != 0);
    case LUA_TNUMBER:
      return Data(FormatNumber(L, index));
    case LUA_TSTRING: {
      size_t n;
      const char* s = lua_tolstring(L, index, &n);
      return Data(std::string(s, n));
    }
    case LUA_TTABLE:
      return TableToData(L, index, seen, depth);
    default:
      if (IsNull(L, index)) return Data(Data::type::list);
      std::string text = luaL_tolstring(L, index, nullptr);
      lua_pop(L, 1);
      return Data(text);
  }
}

// --- rendering -----------------------------------------------------------------------------

// Looks partials up in their own table, prints booleans in variable tags, and answers the
// standalone mark.
class Context : public kainjow::mustache::context<std::string> {
 public:
  Context(const Data* root, const std::map<std::string, Data>& partials)
      : context(root), partials_(partials) {}

  const Data* get(const std::string& name) const override {
    static const Data kAlways(true);
    if (name == kStandalone) return &kAlways;
    if (name.empty() || name.back() != kVarMark) return context::get(name);
    static const Data kTrue(std::string("true")), kFalse(std::string("false"));
    const Data* value = context::get(name.substr(0, name.size() - 1));
    if (value && value->is_bool()) return value->is_true() ? &kTrue : &kFalse;
    return value;
  }

  const Data* get_partial(const std::string& name) const override {
    auto it = partials_.find(name);
    return it == partials_.end() ? nullptr : &it->second;
  }

 private:
  const std::map<std::string, Data>& partials_;
};

// Checks that no partial includes itself, directly or through others (kainjow would recurse
// until the stack overflows).
std::string FindPartialCycle(const std::string& name, const std::map<std::string, Prepared>& all,
                             std::vector<std::string>& path) {
  if (std::find(path.begin(), path.end(), name) != path.end())
    return "partial '" + name + "' includes itself (" + Join(path, " > ") + " > " + name + ")";
  auto it = all.find(name);
  if (it == all.end()) return "";
  path.push_back(name);
  for (const auto& inner : it->second.partials)
    if (std::string err = FindPartialCycle(inner, all, path); !err.empty()) return err;
  path.pop_back();
  return "";
}

// Reads the partials table at `index` (name -> template text); none when it is 0 or nil.
std::map<std::string, Prepared> ReadPartials(lua_State* L, int index) {
  std::map<std::string, Prepared> partials;
  if (index == 0 || lua_isnoneornil(L, index)) return partials;
  luaL_checktype(L, index, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, index)) {  // name text
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "template: partials must map names to template strings");
    partials[lua_tostring(L, -2)] = Prepare(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return partials;
}

}  // namespace

Result<std::string> RenderTemplate(lua_State* L, const std::string& source, int vars,
                                   int partials_index) {
  std::map<std::string, Prepared> prepared = ReadPartials(L, partials_index);
  std::map<std::string, Data> partials;
  for (const auto& [name, p] : prepared) {
    kainjow::mustache::mustache check(p.text);
    if (!check.is_valid())
      return Status::Error("partial '" + name + "': " + Locate(check.error_message(), p));
    partials.emplace(name, Data(p.text));
  }
  Prepared main = Prepare(source);
  std::vector<std::string> path;
  for (const auto& name : main.partials)
    if (std::string err = FindPartialCycle(name, prepared, path); !err.empty())
      return Status::Error(err);

  bool no_vars = vars == 0 || lua_isnoneornil(L, vars);
  if (!no_vars) luaL_checktype(L, vars, LUA_TTABLE);
  std::unordered_set<const void*> seen;
  Data root = no_vars ? Data() : ToData(L, lua_absindex(L, vars), seen, 0);
  kainjow::mustache::mustache tmpl(main.text);
  tmpl.set_custom_escape([](const std::string& s) { return s; });
  Context ctx(&root, partials);
  std::string out;
  if (tmpl.is_valid()) out = tmpl.render(ctx);
  if (!tmpl.is_valid()) return Status::Error(Locate(tmpl.error_message(), main));
  return out;
}

namespace {

Result<std::string> ReadWholeFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error(std::strerror(errno));
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  int err = errno;
  close(fd);
  if (n < 0) return Status::Error(std::strerror(err));
  return out;
}

// render(text, vars?, partials?) -> string; raises on a malformed template.
int TemplateRender(lua_State* L) {
  size_t n;
  const char* text = luaL_checklstring(L, 1, &n);
  Result<std::string> out = RenderTemplate(L, std::string(text, n), 2, 3);
  if (!out.ok()) return luaL_error(L, "template.render: %s", out.error().c_str());
  lua_pushlstring(L, out->data(), out->size());
  return 1;
}

// render_file(path, vars?, partials?) -> string; nil, err when the file cannot be read.
int TemplateRenderFile(lua_State* L) {
  std::string path = Runtime::From(L).ResolvePath(L, luaL_checkstring(L, 1));
  Result<std::string> text = ReadWholeFile(path);
  if (!text.ok()) return PushFailure(L, "template.render_file: " + path + ": " + text.error());
  Result<std::string> out = RenderTemplate(L, *text, 2, 3);
  if (!out.ok())
    return luaL_error(L, "template.render_file: %s: %s", path.c_str(), out.error().c_str());
  lua_pushlstring(L, out->data(), out->size());
  return 1;
}

}  // namespace

const Module& TemplateModule() {
  static const Module m = {
      "template",
      "Mustache templates (no HTML escaping; {{.name}} accepted)",
      {
          {"render", TemplateRender, "render(text, vars?, partials?) -> string",
           "Renders a Mustache template string"},
          {"render_file", TemplateRenderFile, "render_file(path, vars?, partials?) -> string",
           "Renders a template file (relative to the task's workdir)"},
      },
  };
  return m;
}

}  // namespace sloth
