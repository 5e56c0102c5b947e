// libFuzzer target: the events journal's lines. Any bytes given to the parser never crash it;
// what it accepts writes back to a line that parses to the same event; and an event whose text
// fields are arbitrary bytes (not UTF-8, quotes, control characters) always writes a line that
// parses back, so a replay after a crash never drops it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "events/event.h"

namespace {

void Same(const sloth::Event& a, const sloth::Event& b) {
  if (a.id != b.id || a.type != b.type || a.timestamp_ms != b.timestamp_ms ||
      a.source != b.source || a.stack != b.stack || a.agent != b.agent || a.run_id != b.run_id ||
      a.depth != b.depth ||
      nlohmann::json::parse(a.data_json) != nlohmann::json::parse(b.data_json))
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = sloth::EventFromLine(text);
  if (parsed.ok()) {
    auto again = sloth::EventFromLine(sloth::EventToLine(*parsed));
    if (!again.ok()) std::abort();
    Same(*parsed, *again);
  }
  sloth::Event raw;
  raw.id = "id";
  raw.type = "fuzz.event";
  raw.timestamp_ms = 1;
  raw.source = std::string(text);
  raw.stack = std::string(text.substr(0, size / 2));
  raw.data_json = "{}";
  auto back = sloth::EventFromLine(sloth::EventToLine(raw));
  if (!back.ok()) std::abort();
  // Valid UTF-8 comes back unchanged.
  if (nlohmann::json(raw.source).dump(-1, ' ', false, nlohmann::json::error_handler_t::ignore) ==
          nlohmann::json(raw.source)
              .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) &&
      back->source != raw.source)
    std::abort();
  return 0;
}
