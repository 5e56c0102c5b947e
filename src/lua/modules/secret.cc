// secret: the stack's secrets, read-only (state-and-stacks.md "Secrets"). The values live in a
// registry table; the global `secrets` is an empty proxy whose metamethods read it, so tasks
// cannot change a secret and every read of a locked one fails with the same clear message.
#include "lua/modules/secret.h"

#include <lua.hpp>

#include "lua/module.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

constexpr char kValuesKey[] = "sloth.secrets";  // registry: name -> value | false (locked)
constexpr char kProxyMeta[] = "sloth.secrets_proxy";

// Pushes the secret named by the value at `name`: nil when unknown; raises when it is locked.
int PushSecret(lua_State* L, int name) {
  lua_getfield(L, LUA_REGISTRYINDEX, kValuesKey);  // ... values|nil
  if (!lua_istable(L, -1)) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushvalue(L, name);  // ... values name
  lua_rawget(L, -2);       // ... values value
  if (lua_isboolean(L, -1))
    return luaL_error(L,
                      "secret %s: the run has no secrets password (--password-stdin or "
                      "SLOTH_SECRETS_PASSWORD)",
                      lua_tostring(L, name));
  return 1;
}

int SecretGet(lua_State* L) {
  luaL_checkstring(L, 1);
  return PushSecret(L, 1);
}

int ProxyIndex(lua_State* L) { return PushSecret(L, 2); }  // (proxy, key)

int ProxyNewIndex(lua_State* L) {
  return luaL_error(L, "secrets are read-only (cannot set secrets.%s)",
                    luaL_tolstring(L, 2, nullptr));
}

// The iterator of pairs(secrets): next() over the registry table.
int ProxyNext(lua_State* L) {  // (proxy, key)
  lua_settop(L, 2);
  lua_getfield(L, LUA_REGISTRYINDEX, kValuesKey);  // proxy key values
  if (!lua_istable(L, -1)) return 0;
  lua_pushvalue(L, 2);                                // proxy key values key
  if (!lua_next(L, 3)) return 0;                      // proxy key values name value
  if (lua_isboolean(L, -1)) return PushSecret(L, 4);  // raises
  return 2;
}

int ProxyPairs(lua_State* L) {
  lua_pushcfunction(L, ProxyNext);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

void PushProxy(lua_State* L) {
  lua_newtable(L);  // proxy
  if (luaL_newmetatable(L, kProxyMeta)) {
    const luaL_Reg methods[] = {{"__index", ProxyIndex},
                                {"__newindex", ProxyNewIndex},
                                {"__pairs", ProxyPairs},
                                {nullptr, nullptr}};
    luaL_setfuncs(L, methods, 0);
    lua_pushliteral(L, "secrets are read-only");
    lua_setfield(L, -2, "__metatable");  // getmetatable/setmetatable cannot reach the values
  }
  lua_setmetatable(L, -2);  // proxy
}

}  // namespace

void SetSecrets(Runtime& rt, const RunSecrets& secrets) {
  lua_State* L = rt.state();
  for (const auto& [name, value] : secrets.values) rt.redactor().Add(value);
  if (secrets.values.empty() && secrets.locked.empty()) {
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, kValuesKey);
    lua_pushnil(L);
    lua_setglobal(L, "secrets");
    return;
  }
  lua_createtable(L, 0, static_cast<int>(secrets.values.size() + secrets.locked.size()));
  for (const auto& [name, value] : secrets.values) {
    lua_pushlstring(L, value.data(), value.size());
    lua_setfield(L, -2, name.c_str());
  }
  for (const std::string& name : secrets.locked) {
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, name.c_str());
  }
  lua_setfield(L, LUA_REGISTRYINDEX, kValuesKey);
  PushProxy(L);
  lua_setglobal(L, "secrets");
}

std::map<std::string, std::string> RunSecretValues(Runtime& rt) {
  lua_State* L = rt.state();
  std::map<std::string, std::string> out;
  if (lua_getfield(L, LUA_REGISTRYINDEX, kValuesKey) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING)
        out[lua_tostring(L, -2)] = std::string(lua_tostring(L, -1), lua_rawlen(L, -1));
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return out;
}

const Module& SecretModule() {
  static const Module m = {
      "secret",
      "The stack's secrets (decrypted for runs given the password; redacted from output)",
      {
          {"get", SecretGet, "get(name) -> string|nil",
           "The secret's value; nil when the stack has no such secret"},
      },
  };
  return m;
}

}  // namespace sloth
