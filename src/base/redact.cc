#include "base/redact.h"

#include <algorithm>
#include <cstdio>

namespace sloth {

void Redactor::Add(std::string_view value) {
  AddOne(value);
  AddOne(JsonEscaped(value));
  size_t start = 0;
  while (start < value.size()) {
    size_t end = std::min(value.find('\n', start), value.size());
    std::string_view line = value.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() != value.size()) AddOne(line);
    start = end + 1;
  }
}

void Redactor::AddOne(std::string_view value) {
  if (value.size() < kMinLength) return;
  if (std::find(values_.begin(), values_.end(), value) != values_.end()) return;
  auto at = std::find_if(values_.begin(), values_.end(),
                         [&](const std::string& v) { return v.size() < value.size(); });
  values_.insert(at, std::string(value));
  first_bytes_.set(static_cast<unsigned char>(value[0]));
}

std::string Redactor::Apply(std::string_view text) const {
  if (values_.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const std::string* hit = nullptr;
    if (first_bytes_.test(static_cast<unsigned char>(text[i]))) {
      for (const std::string& v : values_)
        if (text.compare(i, v.size(), v) == 0) {
          hit = &v;
          break;
        }
    }
    if (hit) {
      out += kMask;
      i += hit->size();
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::string JsonEscaped(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

}  // namespace sloth
