// Random identifiers (run ids, stack ids).
#pragma once

#include <cstdint>
#include <string>

namespace sloth {

// A random RFC 4122 version-4 UUID in its canonical lowercase form.
std::string NewUuid();

// A version-7 UUID (RFC 9562): the Unix time in milliseconds, then random bits. Ids made later
// sort later, so a database index on them grows at its end. Cheap: the random bits come from a
// per-thread generator seeded from the kernel once.
std::string NewUuidV7(int64_t unix_ms);

}  // namespace sloth
