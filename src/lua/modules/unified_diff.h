// Line-based unified diffs (as `diff -u` prints them) for modules that rewrite files, so check
// mode and `--diff` can show what a change does.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sloth {

// Inputs larger than this are not diffed: the diff says so instead.
inline constexpr size_t kMaxDiffBytes = size_t{5} << 20;

// The unified diff from `before` to `after` with `context` lines around each change, headed
// `--- old_name` / `+++ new_name`; "" when the texts are equal. A last line without a newline
// is followed by "\ No newline at end of file". The diff is minimal (longest common
// subsequence) unless the differing middle part is very large, where it falls back to one
// replace-everything hunk, which is still a correct diff.
std::string UnifiedDiff(std::string_view before, std::string_view after,
                        const std::string& old_name, const std::string& new_name, int context = 3);

}  // namespace sloth
