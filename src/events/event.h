// An event: something that happened (a task failed, a deploy started), kept in the store and
// delivered to the hooks whose pattern matches its type (events-and-scheduler.md).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "base/status.h"

namespace sloth {

struct Event {
  std::string id;  // a UUID
  std::string type;
  int64_t timestamp_ms = 0;  // Unix time
  std::string source;        // who emitted it: "runtime", "task:NAME", "hook:NAME", "scheduler"
  std::string stack;
  std::string agent;
  std::string run_id;
  int depth = 0;  // 0 for a root event; a hook's events are one deeper than the one it handles
  std::string data_json = "{}";
};

// Hooks that dispatch events can form a loop: past this depth, events are stored but not
// delivered.
constexpr int kMaxEventDepth = 8;

// A dispatched type: dotted words of letters, digits, '_' and '-' ("deploy.started").
bool ValidEventType(std::string_view type);
// A hook's pattern: a type whose words may be "*", which matches any one or more words at the
// end ("task.*" matches "task.failed"; "*" matches everything).
bool ValidEventPattern(std::string_view pattern);
bool EventTypeMatches(std::string_view pattern, std::string_view type);

// The JSON form users see (events list/show, a hook's `event` argument) and the journal uses:
// {id, type, timestamp (RFC 3339), timestamp_ms, source, stack, agent, run_id, depth, data}.
nlohmann::json EventToJson(const Event& event);
// The journal's line (EventToJson, compact) and back; a line that is not a whole event is an
// error.
std::string EventToLine(const Event& event);
Result<Event> EventFromLine(std::string_view line);
// From EventToJson's form (or the journal's).
Result<Event> EventFromJson(const nlohmann::json& j);

// `text` with every byte that is not part of valid UTF-8 replaced by U+FFFD (JSON needs UTF-8).
std::string SanitizeUtf8(std::string_view text);

// "2026-11-22T17:03:05.123Z"
std::string FormatRfc3339Ms(int64_t unix_ms);

}  // namespace sloth
