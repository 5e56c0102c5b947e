#include "events/event.h"

#include <ctime>
#include <nlohmann/json.hpp>

namespace sloth {
namespace {

bool WordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// Checks dotted words; `star` allows a word that is exactly "*".
bool ValidDotted(std::string_view text, bool star) {
  if (text.empty() || text.size() > 200) return false;
  size_t start = 0;
  for (;;) {
    size_t dot = text.find('.', start);
    std::string_view word = text.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (word.empty()) return false;
    if (!(star && word == "*")) {
      for (char c : word)
        if (!WordChar(c)) return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

std::string Str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

bool ValidEventType(std::string_view type) { return ValidDotted(type, false); }
bool ValidEventPattern(std::string_view pattern) { return ValidDotted(pattern, true); }

bool EventTypeMatches(std::string_view pattern, std::string_view type) {
  for (;;) {
    size_t pdot = pattern.find('.');
    std::string_view pword = pattern.substr(0, pdot);
    if (pword == "*" && pdot == std::string_view::npos) return !type.empty();
    size_t tdot = type.find('.');
    std::string_view tword = type.substr(0, tdot);
    if (pword != "*" && pword != tword) return false;
    if (pdot == std::string_view::npos || tdot == std::string_view::npos)
      return pdot == std::string_view::npos && tdot == std::string_view::npos;
    pattern.remove_prefix(pdot + 1);
    type.remove_prefix(tdot + 1);
  }
}

std::string FormatRfc3339Ms(int64_t unix_ms) {
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[40];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(unix_ms % 1000));
  return buf;
}

nlohmann::json EventToJson(const Event& e) {
  nlohmann::json data = nlohmann::json::parse(e.data_json, nullptr, false);
  if (data.is_discarded()) data = nlohmann::json::object();
  return {{"id", e.id},
          {"type", e.type},
          {"timestamp", FormatRfc3339Ms(e.timestamp_ms)},
          {"timestamp_ms", e.timestamp_ms},
          {"source", e.source},
          {"stack", e.stack},
          {"agent", e.agent},
          {"run_id", e.run_id},
          {"depth", e.depth},
          {"data", std::move(data)}};
}

// The length of the valid UTF-8 sequence at the start of `s` (0: not valid).
static size_t Utf8Length(std::string_view s) {
  auto c = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  auto cont = [&](size_t i) { return i < s.size() && (c(i) & 0xc0) == 0x80; };
  unsigned char b = c(0);
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf) return cont(1) ? 2 : 0;
  if (b >= 0xe0 && b <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    if (b == 0xe0 && c(1) < 0xa0) return 0;  // overlong
    if (b == 0xed && c(1) > 0x9f) return 0;  // surrogates
    return 3;
  }
  if (b >= 0xf0 && b <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (b == 0xf0 && c(1) < 0x90) return 0;
    if (b == 0xf4 && c(1) > 0x8f) return 0;
    return 4;
  }
  return 0;
}

// Appends `text` as a JSON string; bytes that are not UTF-8 become U+FFFD, so the line always
// parses back.
static void AppendJsonString(std::string& out, std::string_view text) {
  static const char kHex[] = "0123456789abcdef";
  out += '"';
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += text[i++];
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
      ++i;
    } else if (size_t n = Utf8Length(text.substr(i)); n > 0) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  out += '"';
}

std::string SanitizeUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (size_t n = Utf8Length(text.substr(i)); n > 0) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  return out;
}

std::string EventToLine(const Event& e) {
  // Written by hand: this is the dispatch path, and the data is JSON text already.
  std::string line;
  line.reserve(160 + e.data_json.size());
  line += "{\"id\":";
  AppendJsonString(line, e.id);
  line += ",\"type\":";
  AppendJsonString(line, e.type);
  line += ",\"ts\":" + std::to_string(e.timestamp_ms) + ",\"source\":";
  AppendJsonString(line, e.source);
  line += ",\"stack\":";
  AppendJsonString(line, e.stack);
  line += ",\"agent\":";
  AppendJsonString(line, e.agent);
  line += ",\"run_id\":";
  AppendJsonString(line, e.run_id);
  line += ",\"depth\":" + std::to_string(e.depth) + ",\"data\":";
  line += e.data_json;
  line += '}';
  return line;
}

Result<Event> EventFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Status::Error("not a JSON object");
  Event e;
  e.id = Str(j, "id");
  e.type = Str(j, "type");
  if (e.id.empty() || !ValidEventType(e.type)) return Status::Error("not an event");
  auto ts = j.find("ts");
  if (ts == j.end()) ts = j.find("timestamp_ms");
  if (ts == j.end() || !ts->is_number_integer()) return Status::Error("not an event");
  e.timestamp_ms = ts->get<int64_t>();
  e.source = Str(j, "source");
  e.stack = Str(j, "stack");
  e.agent = Str(j, "agent");
  e.run_id = Str(j, "run_id");
  auto depth = j.find("depth");
  if (depth != j.end() && depth->is_number_integer()) e.depth = depth->get<int>();
  auto data = j.find("data");
  e.data_json = data != j.end() ? data->dump() : "{}";
  return e;
}

Result<Event> EventFromLine(std::string_view line) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded()) return Status::Error("not a JSON object");
  return EventFromJson(j);
}

}  // namespace sloth
