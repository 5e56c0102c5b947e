// Random identifiers (run ids, stack ids).
#pragma once

#include <string>

namespace sloth {

// A random RFC 4122 version-4 UUID in its canonical lowercase form.
std::string NewUuid();

}  // namespace sloth
