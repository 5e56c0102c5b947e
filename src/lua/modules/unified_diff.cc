// LCS on lines (after trimming the common prefix and suffix, which is all most config edits
// leave to compare), then hunks grouped the way `diff -u` groups them.
#include "lua/modules/unified_diff.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace sloth {
namespace {

// Above this many table cells the middle is replaced wholesale (memory stays under 64 MB).
constexpr size_t kMaxLcsCells = size_t{16} << 20;

// Lines keep their "\n", so "a" and "a\n" differ, as they do for diff(1).
std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    size_t len = nl == std::string_view::npos ? text.size() : nl + 1;
    lines.push_back(text.substr(0, len));
    text.remove_prefix(len);
  }
  return lines;
}

struct Op {
  char kind;  // ' ', '-', '+'
  std::string_view line;
  size_t old_pos;  // lines of `before` consumed before this op
  size_t new_pos;
};

// Appends the ops turning a[a0,a1) into b[b0,b1), minimal when the table fits.
void DiffMiddle(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b,
                size_t a0, size_t a1, size_t b0, size_t b1, std::vector<Op>& ops) {
  size_t n = a1 - a0, m = b1 - b0;
  if (n * m > kMaxLcsCells || n == 0 || m == 0) {
    for (size_t i = a0; i < a1; ++i) ops.push_back({'-', a[i], i, b0});
    for (size_t j = b0; j < b1; ++j) ops.push_back({'+', b[j], a1, j});
    return;
  }
  // lcs[i][j]: LCS length of a[a0+i..a1) and b[b0+j..b1).
  std::vector<uint32_t> lcs((n + 1) * (m + 1), 0);
  auto at = [&](size_t i, size_t j) -> uint32_t& { return lcs[i * (m + 1) + j]; };
  for (size_t i = n; i-- > 0;)
    for (size_t j = m; j-- > 0;)
      at(i, j) =
          a[a0 + i] == b[b0 + j] ? at(i + 1, j + 1) + 1 : std::max(at(i + 1, j), at(i, j + 1));
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[a0 + i] == b[b0 + j]) {
      ops.push_back({' ', a[a0 + i], a0 + i, b0 + j});
      ++i, ++j;
    } else if (j == m || (i < n && at(i + 1, j) >= at(i, j + 1))) {
      ops.push_back({'-', a[a0 + i], a0 + i, b0 + j});
      ++i;
    } else {
      ops.push_back({'+', b[b0 + j], a0 + i, b0 + j});
      ++j;
    }
  }
}

std::vector<Op> EditScript(const std::vector<std::string_view>& a,
                           const std::vector<std::string_view>& b) {
  size_t pre = 0;
  while (pre < a.size() && pre < b.size() && a[pre] == b[pre]) ++pre;
  size_t suf = 0;
  while (suf < a.size() - pre && suf < b.size() - pre &&
         a[a.size() - 1 - suf] == b[b.size() - 1 - suf])
    ++suf;
  std::vector<Op> ops;
  for (size_t i = 0; i < pre; ++i) ops.push_back({' ', a[i], i, i});
  DiffMiddle(a, b, pre, a.size() - suf, pre, b.size() - suf, ops);
  for (size_t k = suf; k > 0; --k) {
    size_t i = a.size() - k, j = b.size() - k;
    ops.push_back({' ', a[i], i, j});
  }
  return ops;
}

// "-3,2" style range; an empty range names the line before it, a one-line range drops ",1".
std::string Range(size_t start, size_t count) {
  std::string out = std::to_string(count == 0 ? start : start + 1);
  if (count != 1) out += "," + std::to_string(count);
  return out;
}

void AppendHunk(const std::vector<Op>& ops, size_t begin, size_t end, std::string& out) {
  size_t old_count = 0, new_count = 0;
  for (size_t k = begin; k < end; ++k) {
    if (ops[k].kind != '+') ++old_count;
    if (ops[k].kind != '-') ++new_count;
  }
  out += "@@ -" + Range(ops[begin].old_pos, old_count) + " +" +
         Range(ops[begin].new_pos, new_count) + " @@\n";
  for (size_t k = begin; k < end; ++k) {
    out += ops[k].kind;
    out += ops[k].line;
    if (ops[k].line.empty() || ops[k].line.back() != '\n')
      out += "\n\\ No newline at end of file\n";
  }
}

}  // namespace

std::string UnifiedDiff(std::string_view before, std::string_view after,
                        const std::string& old_name, const std::string& new_name, int context) {
  if (before == after) return "";
  std::string out = "--- " + old_name + "\n+++ " + new_name + "\n";
  if (before.size() > kMaxDiffBytes || after.size() > kMaxDiffBytes)
    return out + "(diff omitted: file too large)\n";
  std::vector<std::string_view> a = SplitLines(before), b = SplitLines(after);
  std::vector<Op> ops = EditScript(a, b);
  size_t ctx = static_cast<size_t>(std::max(context, 0));
  size_t n = ops.size(), i = 0;
  while (i < n) {
    if (ops[i].kind == ' ') {
      ++i;
      continue;
    }
    size_t begin = i >= ctx ? i - ctx : 0, last = i, j = i;
    // Extend over changes separated by at most 2*ctx unchanged lines (their contexts touch).
    while (j < n) {
      if (ops[j].kind != ' ') {
        last = j++;
        continue;
      }
      size_t k = j;
      while (k < n && ops[k].kind == ' ') ++k;
      if (k == n || k - j > 2 * ctx) break;
      j = k;
    }
    size_t end = std::min(n, last + 1 + ctx);
    AppendHunk(ops, begin, end, out);
    i = end;
  }
  return out;
}

}  // namespace sloth
