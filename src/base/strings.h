// Small string helpers shared by every layer.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sloth {

std::vector<std::string> Split(std::string_view text, char sep);
std::string_view Trim(std::string_view text);
bool StartsWith(std::string_view text, std::string_view prefix);
bool EndsWith(std::string_view text, std::string_view suffix);
std::string Join(const std::vector<std::string>& parts, std::string_view sep);

// Edit distance, for "did you mean" suggestions.
size_t EditDistance(std::string_view a, std::string_view b);

// The candidate closest to `word`, or "" when none is close enough to suggest.
std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace sloth
