// The version every component reports (CLI, master, agents).
#pragma once

namespace sloth {
inline constexpr char kVersion[] = "0.1.0";
}  // namespace sloth
