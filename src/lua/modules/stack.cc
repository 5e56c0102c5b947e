// stack: the resources and outputs of the stack the run works on (state-and-stacks.md).
// register_resource compares the properties given now with those recorded by earlier runs and
// says whether the resource is new, changed or unchanged; outputs go into the run's `outputs`
// table, which `run` saves on the stack when the run succeeds.
#include <string>

#include <lua.hpp>
#include <nlohmann/json.hpp>

#include "core/stack_store.h"
#include "core/state_store.h"
#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/modules/stack.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

using nlohmann::json;

const RunScope& Scope(lua_State* L, const char* fn) {
  const RunScope* scope = Runtime::From(L).run_scope();
  if (!scope || !scope->stacks)
    luaL_error(L, "stack.%s: there is no stack here (stacks exist while `run` runs a workflow)",
               fn);
  return *scope;
}

template <typename T>
T Check(lua_State* L, const char* fn, Result<T> result) {
  if (!result.ok()) luaL_error(L, "stack.%s: %s", fn, result.error().c_str());
  return std::move(*result);
}

void Check(lua_State* L, const char* fn, const Status& status) {
  if (!status.ok()) luaL_error(L, "stack.%s: %s", fn, status.message().c_str());
}

// Where the values of two JSON documents differ, as "a.b" -> {old, new}; objects are compared
// key by key, anything else as a whole.
void Diff(const json& before, const json& after, const std::string& path, json& out) {
  if (before.is_object() && after.is_object()) {
    for (const auto& [key, value] : before.items()) {
      std::string sub = path.empty() ? key : path + "." + key;
      Diff(value, after.contains(key) ? after[key] : json(), sub, out);
    }
    for (const auto& [key, value] : after.items())
      if (!before.contains(key)) Diff(json(), value, path.empty() ? key : path + "." + key, out);
    return;
  }
  if (before != after) out[path.empty() ? "." : path] = {{"old", before}, {"new", after}};
}

json ParseOr(const std::string& text, json fallback) {
  json value = json::parse(text, nullptr, false);
  return value.is_discarded() ? fallback : value;
}

void PushResource(lua_State* L, const ResourceRecord& r) {
  json attributes = ParseOr(r.attributes_json, json::object());
  json out = attributes.is_object() ? attributes : json::object();
  out["type"] = r.type;
  out["name"] = r.name;
  out["module"] = r.module;
  out["properties"] = ParseOr(r.properties_json, json::object());
  out["dependencies"] = ParseOr(r.dependencies_json, json::array());
  out["state"] = r.state;
  out["created_at"] = r.created_at_ms / 1000;
  out["updated_at"] = r.updated_at_ms / 1000;
  PushJson(L, out);
}

std::string FieldString(lua_State* L, const char* fn, const char* field) {
  std::optional<std::string> value = OptString(L, 1, field);
  if (!value || value->empty()) luaL_error(L, "stack.%s: `%s` is required", fn, field);
  return *value;
}

json FieldJson(lua_State* L, const char* field, json fallback) {
  lua_getfield(L, 1, field);
  json value = lua_isnil(L, -1) ? fallback : ToJson(L, -1);
  lua_pop(L, 1);
  return value;
}

int RegisterResource(lua_State* L) {
  const char* fn = "register_resource";
  luaL_checktype(L, 1, LUA_TTABLE);
  const RunScope& scope = Scope(L, fn);
  ResourceRecord r;
  r.type = FieldString(L, fn, "type");
  r.name = FieldString(L, fn, "name");
  r.module = OptString(L, 1, "module").value_or("");
  json properties = FieldJson(L, "properties", json::object());
  r.properties_json = properties.dump();
  r.dependencies_json = FieldJson(L, "dependencies", json::array()).dump();
  r.run_id = scope.run_id;
  r.created_at_ms = r.updated_at_ms = NowUnixMs();
  auto known = Check(L, fn, scope.stacks->GetResource(scope.stack_id, r.type, r.name));
  const char* status = "created";
  json diff = json::object();
  if (known) {
    Diff(ParseOr(known->properties_json, json::object()), properties, "", diff);
    status = diff.empty() ? "unchanged" : "changed";
    r.created_at_ms = known->created_at_ms;
    r.attributes_json = known->attributes_json;
    // An unchanged resource keeps what the last apply left (its state); a changed one must be
    // applied again.
    if (diff.empty()) r.state = known->state;
  }
  if (scope.resources) {
    json event = {{"type", r.type}, {"name", r.name}, {"status", status}};
    if (!diff.empty()) event["diff"] = diff;
    scope.resources->push_back(event.dump());
  }
  bool dry = Runtime::From(L).CheckMode(L);
  if (dry)
    Runtime::From(L).Log(L, LogLevel::kInfo,
                         "[check] resource " + r.type + "/" + r.name + " would be " + status);
  else if (std::string(status) != "unchanged")
    Check(L, fn, scope.stacks->PutResource(scope.stack_id, r));
  lua_pushstring(L, status);
  PushResource(L, r);
  if (known && !diff.empty()) {
    PushJson(L, ParseOr(known->properties_json, json::object()));
    lua_setfield(L, -2, "old_properties");
    PushJson(L, properties);
    lua_setfield(L, -2, "new_properties");
    PushJson(L, diff);
    lua_setfield(L, -2, "diff");
  }
  return 2;
}

int UpdateResource(lua_State* L) {
  const char* fn = "update_resource";
  std::string type = luaL_checkstring(L, 1);
  std::string name = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  const RunScope& scope = Scope(L, fn);
  auto known = Check(L, fn, scope.stacks->GetResource(scope.stack_id, type, name));
  if (!known)
    return luaL_error(L, "stack.%s: resource %s/%s not found (register it first)", fn, type.c_str(),
                      name.c_str());
  json fields = ToJson(L, 3);
  if (!fields.is_object()) fields = json::object();
  json attributes = ParseOr(known->attributes_json, json::object());
  for (const auto& [key, value] : fields.items()) {
    if (key == "state") {
      if (!value.is_string()) return luaL_error(L, "stack.%s: `state` must be a string", fn);
      known->state = value.get<std::string>();
    } else if (key == "properties") {
      known->properties_json = value.dump();
    } else {
      attributes[key] = value;
    }
  }
  known->attributes_json = attributes.dump();
  known->run_id = scope.run_id;
  known->updated_at_ms = NowUnixMs();
  if (Runtime::From(L).CheckMode(L))
    Runtime::From(L).Log(L, LogLevel::kInfo,
                         "[check] resource " + type + "/" + name + " would be updated");
  else
    Check(L, fn, scope.stacks->PutResource(scope.stack_id, *known));
  PushResource(L, *known);
  return 1;
}

int GetResource(lua_State* L) {
  const char* fn = "get_resource";
  std::string type = luaL_checkstring(L, 1);
  std::string name = luaL_checkstring(L, 2);
  const RunScope& scope = Scope(L, fn);
  auto known = Check(L, fn, scope.stacks->GetResource(scope.stack_id, type, name));
  if (!known) return 0;
  PushResource(L, *known);
  return 1;
}

int ResourceExists(lua_State* L) {
  const char* fn = "resource_exists";
  std::string type = luaL_checkstring(L, 1);
  std::string name = luaL_checkstring(L, 2);
  const RunScope& scope = Scope(L, fn);
  auto known = Check(L, fn, scope.stacks->GetResource(scope.stack_id, type, name));
  lua_pushboolean(L, known.has_value());
  return 1;
}

int DeleteResource(lua_State* L) {
  const char* fn = "delete_resource";
  std::string type = luaL_checkstring(L, 1);
  std::string name = luaL_checkstring(L, 2);
  const RunScope& scope = Scope(L, fn);
  if (Runtime::From(L).CheckMode(L)) {
    auto known = Check(L, fn, scope.stacks->GetResource(scope.stack_id, type, name));
    Runtime::From(L).Log(L, LogLevel::kInfo,
                         "[check] resource " + type + "/" + name + " would be deleted");
    lua_pushboolean(L, known.has_value());
    return 1;
  }
  lua_pushboolean(L, Check(L, fn, scope.stacks->DeleteResource(scope.stack_id, type, name)));
  return 1;
}

int ListResources(lua_State* L) {
  const char* fn = "list_resources";
  std::string type = luaL_optstring(L, 1, "");
  const RunScope& scope = Scope(L, fn);
  auto all = Check(L, fn, scope.stacks->ListResources(scope.stack_id));
  lua_newtable(L);
  lua_Integer n = 0;
  for (const ResourceRecord& r : all) {
    if (!type.empty() && r.type != type) continue;
    PushResource(L, r);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

// The run's `outputs` global (made a table if the workflow replaced it with something else).
void PushOutputs(lua_State* L) {
  if (lua_getglobal(L, "outputs") == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_setglobal(L, "outputs");
}

int SetOutput(lua_State* L) {
  luaL_checkstring(L, 1);
  luaL_checkany(L, 2);
  Scope(L, "set_output");
  PushOutputs(L);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_settable(L, -3);
  return 0;
}

int GetOutput(lua_State* L) {
  const char* fn = "get_output";
  std::string key = luaL_checkstring(L, 1);
  const RunScope& scope = Scope(L, fn);
  PushOutputs(L);
  if (lua_getfield(L, -1, key.c_str()) != LUA_TNIL) return 1;
  // Not set by this run: what earlier runs left on the stack.
  auto stack = Check(L, fn, scope.stacks->FindStack(scope.stack));
  if (!stack) return 0;
  json outputs = ParseOr(stack->outputs_json, json::object());
  if (!outputs.is_object() || !outputs.contains(key)) return 0;
  PushJson(L, outputs[key]);
  return 1;
}

int Current(lua_State* L) {
  const RunScope& scope = Scope(L, "current");
  lua_createtable(L, 0, 3);
  lua_pushstring(L, scope.stack.c_str());
  lua_setfield(L, -2, "name");
  lua_pushstring(L, scope.stack_id.c_str());
  lua_setfield(L, -2, "id");
  lua_pushstring(L, scope.run_id.c_str());
  lua_setfield(L, -2, "run_id");
  return 1;
}

}  // namespace

std::string RecordManagedResource(lua_State* L, const std::string& type, const std::string& name,
                                  const std::string& module, const json& properties) {
  Runtime& rt = Runtime::From(L);
  const RunScope* scope = rt.run_scope();
  if (!scope || !scope->stacks) return "";
  auto known = scope->stacks->GetResource(scope->stack_id, type, name);
  if (!known.ok()) {
    rt.Log(L, LogLevel::kWarn, "cannot read resource " + type + "/" + name + ": " + known.error());
    return "";
  }
  json diff = json::object();
  if (*known) Diff(ParseOr((*known)->properties_json, json::object()), properties, "", diff);
  std::string status = !*known ? "created" : diff.empty() ? "unchanged" : "changed";
  if (scope->resources) {
    json event = {{"type", type}, {"name", name}, {"status", status}};
    if (!diff.empty()) event["diff"] = diff;
    scope->resources->push_back(event.dump());
  }
  if (rt.CheckMode(L)) return status;
  ResourceRecord r;
  r.type = type;
  r.name = name;
  r.module = module;
  r.properties_json = properties.dump();
  r.state = "applied";
  r.run_id = scope->run_id;
  r.created_at_ms = *known ? (*known)->created_at_ms : NowUnixMs();
  r.updated_at_ms = NowUnixMs();
  if (*known) r.attributes_json = (*known)->attributes_json;
  if (status != "unchanged" || (*known)->state != "applied")
    if (Status s = scope->stacks->PutResource(scope->stack_id, r); !s.ok())
      rt.Log(L, LogLevel::kWarn,
             "cannot record resource " + type + "/" + name + ": " + s.message());
  return status;
}

const Module& StackModule() {
  static const Module m = {
      "stack",
      "Resources and outputs of the run's stack (created / changed / unchanged tracking)",
      {
          {"register_resource", RegisterResource,
           "register_resource{type, name, module?, properties?, dependencies?} -> status, resource",
           "Records a resource; status is created, changed (with old/new properties and a diff) "
           "or unchanged"},
          {"update_resource", UpdateResource, "update_resource(type, name, fields) -> resource",
           "Sets state (applied, failed...) and other fields of a registered resource"},
          {"get_resource", GetResource, "get_resource(type, name) -> resource | nil",
           "The recorded resource"},
          {"resource_exists", ResourceExists, "resource_exists(type, name) -> bool",
           "Whether the stack has the resource"},
          {"delete_resource", DeleteResource, "delete_resource(type, name) -> bool",
           "Forgets a resource; false when there was none"},
          {"list_resources", ListResources, "list_resources(type?) -> {resource...}",
           "The stack's resources by type and name"},
          {"set_output", SetOutput, "set_output(key, value)",
           "Sets an output (saved on the stack when the run succeeds)"},
          {"get_output", GetOutput, "get_output(key) -> value | nil",
           "An output of this run, else the one saved by earlier runs"},
          {"current", Current, "current() -> {name, id, run_id}", "The stack and run"},
      },
  };
  return m;
}

}  // namespace sloth
