// The embedded Lua prelude (compat aliases, the DSL builders, the attempt runner) and the
// internal C helpers it calls.
#pragma once

struct lua_State;

namespace sloth {

// Runs the prelude in L. The `internal` table it fills is kept in the registry.
void LoadPrelude(lua_State* L);
// Pushes the prelude's internal table.
void PushInternal(lua_State* L);

}  // namespace sloth
