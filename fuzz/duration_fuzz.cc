// libFuzzer target: duration strings ("1h30m", "500ms") never crash the parser, and whatever it
// accepts formats back without trouble.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/duration.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto d = sloth::ParseDuration(text);
  if (d.ok()) {
    (void)sloth::FormatSeconds(*d);
    (void)sloth::FormatHuman(*d);
  }
  return 0;
}
