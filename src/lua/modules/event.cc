// event: workflows dispatch their own events (`deploy.started`), which are stored and delivered
// to the hooks that match them (events-and-scheduler.md).
#include <lua.hpp>
#include <nlohmann/json.hpp>

#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

// dispatch(type, data?) -> id
int Dispatch(lua_State* L) {
  std::string type = luaL_checkstring(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  Runtime& rt = Runtime::From(L);
  // A dry run is never wet: hooks would act on the event. A task marked :check_mode(false)
  // dispatches for real.
  if (rt.CheckMode(L)) {
    rt.Log(L, LogLevel::kInfo, "check mode: would dispatch " + type);
    lua_pushnil(L);
    return 1;
  }
  if (!rt.options().dispatch_event)
    return luaL_error(L, "event.dispatch: events are not available here");
  std::string data = lua_isnoneornil(L, 2) ? "{}" : ToJsonText(L, 2);
  if (data == "[]") data = "{}";  // an empty table
  Result<std::string> id = rt.options().dispatch_event(L, type, data);
  if (!id.ok()) return luaL_error(L, "event.dispatch: %s", id.error().c_str());
  lua_pushstring(L, id->c_str());
  return 1;
}

}  // namespace

const Module& EventModule() {
  static const Module m = {
      "event",
      "Dispatch events to hooks",
      {
          {"dispatch", Dispatch, "dispatch(type, data?) -> id (nil in check mode)",
           "Store an event (a dotted type such as deploy.started) and deliver it to matching "
           "hooks"},
      },
  };
  return m;
}

}  // namespace sloth
