// libFuzzer target: YAML values files and --set assignments never crash, and YAML we accept
// survives a write/read round trip.
#include <cstddef>
#include <cstdint>
#include <string>

#include "data/values.h"
#include "data/yaml_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto doc = sloth::ParseYaml(text);
  if (doc.ok()) {
    auto again = sloth::ParseYaml(sloth::ToYaml(*doc));
    if (!again.ok()) __builtin_trap();  // we must read back what we write
  }
  nlohmann::json values = nlohmann::json::object();
  (void)sloth::ApplySet(values, text);
  return 0;
}
