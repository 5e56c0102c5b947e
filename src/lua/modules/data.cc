// data: JSON, YAML and CSV encoding and decoding, plus table helpers (deep_merge, get_path,
// set_path). `json` and `yaml` are the same functions under shorter names, as their own globals.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <lua.hpp>

#include "data/yaml_json.h"
#include "lua/lua_util.h"
#include "lua/module.h"

namespace sloth {
namespace {

// Decoded values are built recursively, so a hostile document must not nest without bound.
constexpr int kMaxJsonDepth = 512;

// nlohmann's messages start with "[json.exception.parse_error.101] "; the rest says where.
std::string StripExceptionId(const std::string& what) {
  size_t end = what.find("] ");
  return what.rfind('[', 0) == 0 && end != std::string::npos ? what.substr(end + 2) : what;
}

int JsonEncode(lua_State* L) {
  luaL_checkany(L, 1);
  std::string text = ToJsonText(L, 1);
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

int JsonPretty(lua_State* L) {
  luaL_checkany(L, 1);
  lua_Integer indent = luaL_optinteger(L, 2, 2);
  luaL_argcheck(L, indent >= 0 && indent <= 16, 2, "indent must be between 0 and 16");
  std::string text = ToJson(L, 1).dump(static_cast<int>(indent), ' ', false,
                                       nlohmann::json::error_handler_t::replace);
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

int JsonDecode(lua_State* L) {
  size_t n;
  const char* text = luaL_checklstring(L, 1, &n);
  std::string error;
  nlohmann::json value;
  struct TooDeep {};
  auto limit_depth = [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > kMaxJsonDepth) throw TooDeep{};
    return true;
  };
  try {
    value = nlohmann::json::parse(text, text + n, limit_depth);
  } catch (const nlohmann::json::exception& e) {
    error = StripExceptionId(e.what());
  } catch (const TooDeep&) {
    error = "nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
  }
  if (!error.empty()) return PushFailure(L, "json_decode: " + error);
  PushJson(L, value);
  return 1;
}

int YamlEncode(lua_State* L) {
  luaL_checkany(L, 1);
  std::string text = ToYaml(ToJson(L, 1));
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

int YamlDecode(lua_State* L) {
  size_t n;
  const char* text = luaL_checklstring(L, 1, &n);
  Result<nlohmann::json> value = ParseYaml(std::string_view(text, n));
  if (!value.ok()) return PushFailure(L, "yaml_decode: " + value.error());
  PushJson(L, *value);
  return 1;
}

// --- CSV (RFC 4180) ----------------------------------------------------------------------

// Leaves an options table at `index` (an empty one when the argument is absent or nil).
void CheckOptions(lua_State* L, int index) {
  lua_settop(L, index);
  if (lua_isnil(L, index)) lua_newtable(L), lua_replace(L, index);
  luaL_checktype(L, index, LUA_TTABLE);
}

char CheckSeparator(lua_State* L, int opts, const char* fn) {
  std::string sep = OptString(L, opts, "sep").value_or(",");
  if (sep.size() != 1 || sep[0] == '"' || sep[0] == '\n' || sep[0] == '\r')
    luaL_error(L, "%s: option 'sep' must be one character other than a quote or newline", fn);
  return sep[0];
}

using CsvRow = std::vector<std::string>;

// Splits CSV text into rows of fields. Blank lines are skipped; a final newline is optional.
Result<std::vector<CsvRow>> SplitCsv(std::string_view text, char sep) {
  std::vector<CsvRow> rows;
  CsvRow row;
  std::string field;
  size_t line = 1, i = 0;
  bool row_started = false;
  auto end_row = [&] {
    if (row_started) row.push_back(std::move(field)), rows.push_back(std::move(row));
    row.clear(), field.clear(), row_started = false;
  };
  while (i < text.size()) {
    char c = text[i];
    if (c == '"' && field.empty()) {
      size_t start_line = line;
      for (++i;; ++i) {
        if (i >= text.size())
          return Status::Error("line " + std::to_string(start_line) +
                               ": unterminated quoted field");
        if (text[i] == '"' && i + 1 < text.size() && text[i + 1] == '"')
          field += text[i++];
        else if (text[i] == '"')
          break;
        else
          field += text[i], line += text[i] == '\n';
      }
      ++i;
      row_started = true;
      if (i < text.size() && text[i] != sep && text[i] != '\n' && text[i] != '\r')
        return Status::Error("line " + std::to_string(line) + ": unexpected '" +
                             std::string(1, text[i]) + "' after a closing quote");
      continue;
    }
    ++i;
    if (c == sep) {
      row.push_back(std::move(field)), field.clear(), row_started = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i < text.size() && text[i] == '\n') ++i;
      end_row();
      ++line;
    } else {
      field += c, row_started = true;
    }
  }
  end_row();
  return rows;
}

void PushStringList(lua_State* L, const CsvRow& row) {
  lua_createtable(L, static_cast<int>(row.size()), 0);  // list
  for (size_t i = 0; i < row.size(); ++i) {
    lua_pushlstring(L, row[i].data(), row[i].size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  MarkArray(L, -1);
}

// Rows as tables keyed by the header row; a row longer than the header is an error.
int PushRecords(lua_State* L, const std::vector<CsvRow>& rows) {
  lua_createtable(L, rows.empty() ? 0 : static_cast<int>(rows.size() - 1), 0);  // records
  MarkArray(L, -1);
  for (size_t r = 1; r < rows.size(); ++r) {
    if (rows[r].size() > rows[0].size())
      return PushFailure(L, "csv_parse: record " + std::to_string(r) + " has " +
                                std::to_string(rows[r].size()) + " fields, the header has " +
                                std::to_string(rows[0].size()));
    lua_createtable(L, 0, static_cast<int>(rows[r].size()));  // records record
    for (size_t c = 0; c < rows[r].size(); ++c) {
      lua_pushlstring(L, rows[r][c].data(), rows[r][c].size());
      lua_setfield(L, -2, rows[0][c].c_str());
    }
    lua_rawseti(L, -2, static_cast<lua_Integer>(r));  // records
  }
  return 1;
}

// csv_parse(text, opts?{header = bool, sep = ","})
int CsvParse(lua_State* L) {
  size_t n;
  const char* text = luaL_checklstring(L, 1, &n);
  CheckOptions(L, 2);
  char sep = CheckSeparator(L, 2, "csv_parse");
  bool header = OptBool(L, 2, "header").value_or(false);
  auto rows = SplitCsv(std::string_view(text, n), sep);
  if (!rows.ok()) return PushFailure(L, "csv_parse: " + rows.error());
  if (header) return PushRecords(L, *rows);
  lua_createtable(L, static_cast<int>(rows->size()), 0);  // rows
  MarkArray(L, -1);
  for (size_t r = 0; r < rows->size(); ++r) {
    PushStringList(L, (*rows)[r]);
    lua_rawseti(L, -2, static_cast<lua_Integer>(r + 1));
  }
  return 1;
}

std::string CsvField(const std::string& value, char sep) {
  if (value.find_first_of(std::string("\"\r\n") + sep) == std::string::npos) return value;
  std::string out = "\"";
  for (char c : value) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// The text of one cell value at `index`: strings, numbers and booleans; nil and null are empty.
std::string CellText(lua_State* L, int index, lua_Integer row) {
  switch (lua_type(L, index)) {
    case LUA_TNIL:
      return "";
    case LUA_TSTRING:
    case LUA_TNUMBER:
    case LUA_TBOOLEAN: {
      std::string s = luaL_tolstring(L, index, nullptr);
      lua_pop(L, 1);
      return s;
    }
    default:
      if (IsNull(L, index)) return "";
      luaL_error(L, "csv_generate: row %d has a %s value", static_cast<int>(row),
                 luaL_typename(L, index));
      return "";
  }
}

std::string CsvLine(const std::vector<std::string>& fields, char sep) {
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i)
    line += (i ? std::string(1, sep) : "") + CsvField(fields[i], sep);
  return line + "\n";
}

// True when the table's keys are exactly 1..n (n may be 0).
bool IsSequence(lua_State* L, int index) {
  lua_Integer count = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, index)) {  // key value
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) return lua_pop(L, 1), false;
    max = std::max(max, lua_tointeger(L, -1));
    ++count;
  }
  return count == max;
}

// Column names for rows given as tables: opts.header, or every key of every record, sorted.
std::vector<std::string> CsvColumns(lua_State* L, int rows, int opts) {
  std::vector<std::string> columns = OptStringList(L, opts, "header");
  if (!columns.empty()) return columns;
  for (lua_Integer r = 1; lua_rawgeti(L, rows, r) == LUA_TTABLE; ++r) {  // row
    if (!IsSequence(L, lua_gettop(L))) {
      lua_pushnil(L);
      while (lua_next(L, -2)) {  // row key value
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) columns.emplace_back(lua_tostring(L, -1));
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  std::sort(columns.begin(), columns.end());
  columns.erase(std::unique(columns.begin(), columns.end()), columns.end());
  return columns;
}

// csv_generate(rows, opts?{header = {...}, sep = ","}): rows are lists (written in order) or
// tables keyed by column name (written in header order, after a header line).
int CsvGenerate(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  CheckOptions(L, 2);
  char sep = CheckSeparator(L, 2, "csv_generate");
  std::vector<std::string> columns = CsvColumns(L, 1, 2);
  std::string out = columns.empty() ? "" : CsvLine(columns, sep);
  lua_Integer n = static_cast<lua_Integer>(lua_rawlen(L, 1));
  for (lua_Integer r = 1; r <= n; ++r) {
    if (lua_rawgeti(L, 1, r) != LUA_TTABLE)  // row
      return luaL_error(L, "csv_generate: row %d must be a table, got %s", static_cast<int>(r),
                        luaL_typename(L, -1));
    int row = lua_gettop(L);
    std::vector<std::string> fields;
    if (IsSequence(L, row)) {
      lua_Integer len = static_cast<lua_Integer>(lua_rawlen(L, row));
      for (lua_Integer c = 1; c <= len; ++c, lua_pop(L, 1))
        fields.push_back(CellText(L, (lua_rawgeti(L, row, c), -1), r));
    } else {
      for (const auto& col : columns)
        fields.push_back(CellText(L, (lua_getfield(L, row, col.c_str()), -1), r)), lua_pop(L, 1);
    }
    lua_pop(L, 1);
    out += CsvLine(fields, sep);
  }
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

// data.array(t?): marks t (or a new table) as a JSON array and returns it.
int DataArray(lua_State* L) {
  lua_settop(L, 1);
  if (lua_isnil(L, 1)) lua_newtable(L), lua_replace(L, 1);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argcheck(L, IsSequence(L, 1), 1, "table has keys other than 1..n");
  MarkArray(L, 1);
  return 1;
}

int SetNull(lua_State* L) {  // M
  PushNull(L);               // M null
  lua_setfield(L, 1, "null");
  return 0;
}

// The table helpers are plain table walks, clearer in Lua.
constexpr char kDataLua[] = R"lua(
local M = ...
M.to_json = M.json_encode
M.parse_json = M.json_decode
M.to_yaml = M.yaml_encode
M.parse_yaml = M.yaml_decode

local array_meta = getmetatable(M.array())

-- Marked arrays and non-empty tables whose keys are exactly 1..n.
local function is_list(t)
  if getmetatable(t) == array_meta then return true end
  local count, max = 0, 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return false end
    count, max = count + 1, math.max(max, k)
  end
  return count > 0 and count == max
end

local function copy(v, seen)
  if type(v) ~= "table" then return v end
  if seen[v] then error("deep_merge: a table contains itself", 0) end
  seen[v] = true
  local out = {}
  for k, item in pairs(v) do out[k] = copy(item, seen) end
  seen[v] = nil
  return setmetatable(out, getmetatable(v))
end

local function merge(a, b, seen)
  if type(a) ~= "table" or type(b) ~= "table" or is_list(a) or is_list(b) then
    return copy(b, seen)
  end
  if seen[a] or seen[b] then error("deep_merge: a table contains itself", 0) end
  seen[a], seen[b] = true, true
  local out = {}
  for k, v in pairs(a) do out[k] = copy(v, seen) end
  for k, v in pairs(b) do
    if out[k] == nil then out[k] = copy(v, seen) else out[k] = merge(out[k], v, seen) end
  end
  seen[a], seen[b] = nil, nil
  return setmetatable(out, getmetatable(a))
end

function M.deep_merge(a, b)
  if type(a) ~= "table" then error("bad argument #1 to 'deep_merge' (table expected, got " .. type(a) .. ")", 2) end
  if type(b) ~= "table" then error("bad argument #2 to 'deep_merge' (table expected, got " .. type(b) .. ")", 2) end
  return merge(a, b, {})
end

-- "a.b.1" or {"a", "b", 1} -> list of keys ("" -> none); numeric parts may address list items.
local function split(path, fn)
  if type(path) == "table" then return path end
  if type(path) ~= "string" then
    error("bad argument #2 to '" .. fn .. "' (string or list of keys expected, got " .. type(path) .. ")", 3)
  end
  local keys = {}
  if path == "" then return keys end
  for part in (path .. "."):gmatch("([^.]*)%.") do keys[#keys + 1] = part end
  return keys
end

-- A numeric part addresses a list item unless the table has that string key.
local function key_in(t, k)
  if type(k) == "string" and k:match("^%d+$") and t[k] == nil then
    return math.tointeger(tonumber(k)) or k
  end
  return k
end

function M.get_path(t, path, default)
  local v = t
  for _, k in ipairs(split(path, "get_path")) do
    if type(v) ~= "table" then return default end
    v = v[key_in(v, k)]
  end
  if v == nil then return default end
  return v
end

function M.set_path(t, path, value)
  if type(t) ~= "table" then error("bad argument #1 to 'set_path' (table expected, got " .. type(t) .. ")", 2) end
  local keys = split(path, "set_path")
  if #keys == 0 then error("bad argument #2 to 'set_path' (empty path)", 2) end
  local v = t
  for i = 1, #keys - 1 do
    local k = key_in(v, keys[i])
    if v[k] == nil then v[k] = {} end
    if type(v[k]) ~= "table" then
      error(("set_path: '%s' is a %s, not a table"):format(table.concat(keys, ".", 1, i), type(v[k])), 2)
    end
    v = v[k]
  end
  v[key_in(v, keys[#keys])] = value
  return t
end
)lua";

}  // namespace

const Module& DataModule() {
  static const Module m = {
      "data",
      "JSON, YAML and CSV encoding; deep_merge, get_path, set_path",
      {
          {"json_encode", JsonEncode, "json_encode(value) -> string", "Compact JSON (keys sorted)"},
          {"json_decode", JsonDecode, "json_decode(text) -> value",
           "Parses JSON; nil, err on bad input"},
          {"json_pretty", JsonPretty, "json_pretty(value, indent?) -> string",
           "Indented JSON (2 spaces)"},
          {"yaml_encode", YamlEncode, "yaml_encode(value) -> string", "YAML text"},
          {"yaml_decode", YamlDecode, "yaml_decode(text) -> value",
           "Parses YAML 1.2; nil, err on bad input"},
          {"to_json", nullptr, "to_json(value) -> string", "Alias of json_encode"},
          {"parse_json", nullptr, "parse_json(text) -> value", "Alias of json_decode"},
          {"to_yaml", nullptr, "to_yaml(value) -> string", "Alias of yaml_encode"},
          {"parse_yaml", nullptr, "parse_yaml(text) -> value", "Alias of yaml_decode"},
          {"csv_parse", CsvParse, "csv_parse(text, opts?) -> rows", "RFC 4180 CSV; {header, sep}"},
          {"csv_generate", CsvGenerate, "csv_generate(rows, opts?) -> string",
           "CSV text; {header, sep}"},
          {"deep_merge", nullptr, "deep_merge(a, b) -> table",
           "New table: b merged into a, recursively"},
          {"get_path", nullptr, "get_path(t, path, default?) -> value", "Value at \"a.b.1.c\""},
          {"set_path", nullptr, "set_path(t, path, value) -> t", "Sets \"a.b\", creating tables"},
          {"array", DataArray, "array(t?) -> t", "Marks a table as a JSON array"},
      },
      {},
      kDataLua,
      SetNull,
  };
  return m;
}

const Module& JsonModule() {
  static const Module m = {
      "json",
      "JSON encode/decode (the data module's json_* functions)",
      {
          {"encode", JsonEncode, "encode(value) -> string", "Compact JSON (keys sorted)"},
          {"decode", JsonDecode, "decode(text) -> value", "Parses JSON; nil, err on bad input"},
          {"pretty", JsonPretty, "pretty(value, indent?) -> string", "Indented JSON (2 spaces)"},
      },
      {},
      nullptr,
      SetNull,
  };
  return m;
}

const Module& YamlModule() {
  static const Module m = {
      "yaml",
      "YAML encode/decode (the data module's yaml_* functions)",
      {
          {"encode", YamlEncode, "encode(value) -> string", "YAML text"},
          {"decode", YamlDecode, "decode(text) -> value", "Parses YAML 1.2; nil, err on bad input"},
      },
  };
  return m;
}

}  // namespace sloth
