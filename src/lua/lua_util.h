// Helpers for module code: argument checking, table fields, and Lua <-> JSON conversion.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/duration.h"

struct lua_State;
struct luaL_Reg;

namespace sloth {

// Pushes a JSON value as Lua data: objects -> tables, arrays -> sequences (marked as arrays so
// they encode back as arrays), null -> data.null, integers stay integers.
void PushJson(lua_State* L, const nlohmann::json& value);
// Converts the Lua value at `index` to JSON. Tables with only keys 1..n become arrays (an empty
// table becomes {} unless marked as an array). Functions and userdata become their tostring().
// Raises a Lua error for cycles.
nlohmann::json ToJson(lua_State* L, int index);
std::string ToJsonText(lua_State* L, int index);

// Table field readers for option tables at `index`; they raise "<fn>: <field> must be ..." on a
// wrong type and return nullopt when the field is absent (nil).
std::optional<std::string> OptString(lua_State* L, int index, const char* field);
std::optional<double> OptNumber(lua_State* L, int index, const char* field);
std::optional<bool> OptBool(lua_State* L, int index, const char* field);
// A duration field: a number of seconds or a duration string ("500ms").
std::optional<Duration> OptDuration(lua_State* L, int index, const char* field);
// A list of strings: a string (one item) or a sequence of strings.
std::vector<std::string> OptStringList(lua_State* L, int index, const char* field);

// Reads the value at `index` as a duration (number of seconds or duration string).
Duration CheckDuration(lua_State* L, int index);

// Pushes the `nil, message` pair that queries return on failure; returns 2.
int PushFailure(lua_State* L, const std::string& message);

// Registry key of the data.null sentinel (a light userdata).
void PushNull(lua_State* L);
bool IsNull(lua_State* L, int index);
// Registers the metatable `name` for a kind of object: `methods` become its __index, `gc` (if
// any) its __gc.
void NewClass(lua_State* L, const char* name, const luaL_Reg* methods, int (*gc)(lua_State*));

// Marks the table at `index` as a JSON array (so an empty one encodes as []).
void MarkArray(lua_State* L, int index);

}  // namespace sloth
