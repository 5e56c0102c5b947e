// Mustache rendering shared by template.render and other modules that write files from
// templates (file_ops.template), so every template in a workflow behaves the same.
#pragma once

#include <string>

#include "base/status.h"

struct lua_State;

namespace sloth {

// Renders `source` with the vars table at stack index `vars` and the partials table (name ->
// template text) at `partials`; either index may be 0 or hold nil. No HTML escaping;
// `{{.name}}` is read as `{{name}}`. A malformed template is an error ("line L, column C:
// ..."); bad vars or partials (not tables, cycles) raise Lua errors.
Result<std::string> RenderTemplate(lua_State* L, const std::string& source, int vars, int partials);

}  // namespace sloth
