// libFuzzer target: YAML values files and --set assignments never crash, and YAML we accept
// survives a write/read round trip.
#include <cstddef>
#include <cstdint>
#include <string>

#include "data/values.h"
#include "data/yaml_json.h"

// YAML is UTF-8 text: the round trip is only promised for valid UTF-8.
static bool ValidUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto doc = sloth::ParseYaml(text);
  if (doc.ok() && ValidUtf8(text)) {
    auto again = sloth::ParseYaml(sloth::ToYaml(*doc));
    if (!again.ok()) __builtin_trap();  // we must read back what we write
  }
  nlohmann::json values = nlohmann::json::object();
  (void)sloth::ApplySet(values, text);
  return 0;
}
