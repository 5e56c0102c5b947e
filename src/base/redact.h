// Redactor: replaces known secret values with "***" wherever they appear in a text. Redaction
// is by value, not by variable name: a secret copied into any string is still caught.
#pragma once

#include <bitset>
#include <string>
#include <string_view>
#include <vector>

namespace sloth {

class Redactor {
 public:
  // Values shorter than this are not redacted: masking every "a" or "42" would wreck the output
  // and hide almost nothing (such a value is guessed in a few tries anyway).
  static constexpr size_t kMinLength = 4;
  static constexpr std::string_view kMask = "***";

  // Remembers `value`, and also each of its lines (log lines are split at newlines) and its
  // form inside a JSON string (outputs and run records are JSON), when they differ.
  void Add(std::string_view value);
  bool empty() const { return values_.empty(); }
  // `text` with every occurrence of a remembered value replaced by kMask, longest value first.
  std::string Apply(std::string_view text) const;

 private:
  void AddOne(std::string_view value);
  std::vector<std::string> values_;  // longest first
  std::bitset<256> first_bytes_;     // a quick filter for Apply's scan
};

// `text` as it appears between the quotes of a JSON string (nlohmann's escaping, UTF-8 kept).
std::string JsonEscaped(std::string_view text);

}  // namespace sloth
