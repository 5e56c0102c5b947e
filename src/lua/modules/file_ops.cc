// file_ops: idempotent host configuration of files (Ansible-style lineinfile, blockinfile,
// replace, copy, template, file, stat). Every change-making function computes the content it
// wants, compares it with what is there, and only then writes (atomically, keeping the file's
// mode and owner unless asked otherwise). In check mode it stops after the comparison and
// reports what it would do, with the diff. Regular expressions are ECMAScript (std::regex).
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include <lua.hpp>
#include <nlohmann/json.hpp>

#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/modules/atomic_write.h"
#include "lua/modules/exec.h"
#include "lua/modules/http.h"
#include "lua/modules/stack.h"
#include "lua/modules/template.h"
#include "lua/modules/unified_diff.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

namespace stdfs = std::filesystem;

// --- arguments ---------------------------------------------------------------------------

void CheckOptions(lua_State* L, const char* fn) {
  if (!lua_istable(L, 1)) luaL_error(L, "file_ops.%s: expected a table of options", fn);
}

std::optional<std::string> OptField(lua_State* L, const char* fn, const char* field) {
  lua_getfield(L, 1, field);
  std::optional<std::string> out;
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t n;
    const char* s = lua_tolstring(L, -1, &n);
    out.emplace(s, n);
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "file_ops.%s: %s must be a string", fn, field);
  }
  lua_pop(L, 1);
  return out;
}

std::string ReqField(lua_State* L, const char* fn, const char* field) {
  std::optional<std::string> v = OptField(L, fn, field);
  if (!v) luaL_error(L, "file_ops.%s: %s is required (a string)", fn, field);
  return *v;
}

std::string ReqPath(lua_State* L, const char* fn, const char* field) {
  std::string path = ReqField(L, fn, field);
  if (path.empty()) luaL_error(L, "file_ops.%s: %s must not be empty", fn, field);
  return Runtime::From(L).ResolvePath(L, path);
}

bool OptFlag(lua_State* L, const char* fn, const char* field, bool fallback) {
  lua_getfield(L, 1, field);
  int t = lua_type(L, -1);
  if (t != LUA_TNIL && t != LUA_TBOOLEAN)
    luaL_error(L, "file_ops.%s: %s must be a boolean", fn, field);
  bool out = t == LUA_TNIL ? fallback : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return out;
}

std::string OptChoice(lua_State* L, const char* fn, const char* field,
                      const std::vector<std::string>& allowed, const std::string& fallback) {
  std::optional<std::string> v = OptField(L, fn, field);
  if (!v) return fallback;
  for (const auto& a : allowed)
    if (*v == a) return a;
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  luaL_error(L, "file_ops.%s: %s must be one of %s, not \"%s\"", fn, field, list.c_str(),
             v->c_str());
  return fallback;
}

// What the caller asked the file's metadata to be; unset fields are left as they are.
using Meta = FileMeta;

// A mode as "0644", "644" or a number (420 == 0644), as fs.chmod takes it.
std::optional<mode_t> OptMode(lua_State* L, const char* fn) {
  lua_getfield(L, 1, "mode");
  std::optional<mode_t> out;
  bool bad = false;
  if (lua_type(L, -1) == LUA_TNUMBER) {
    lua_Integer n = lua_tointeger(L, -1);
    bad = !lua_isinteger(L, -1) || n < 0 || n > 07777;
    out = static_cast<mode_t>(n);
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    std::string s = lua_tostring(L, -1);
    bad = s.empty() || s.size() > 5;
    unsigned v = 0;
    for (char c : s) {
      if (c < '0' || c > '7') bad = true;
      v = v * 8 + static_cast<unsigned>(c - '0');
    }
    bad = bad || v > 07777;
    out = static_cast<mode_t>(v);
  } else if (!lua_isnil(L, -1)) {
    bad = true;
  }
  lua_pop(L, 1);
  if (bad) luaL_error(L, "file_ops.%s: mode must be an octal string like \"0644\" or a number", fn);
  return out;
}

// A user or group given by name or numeric id.
template <typename Id, typename Lookup>
std::optional<Id> OptId(lua_State* L, const char* fn, const char* field, Lookup lookup) {
  lua_getfield(L, 1, field);
  std::optional<Id> out;
  if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0) {
    out = static_cast<Id>(lua_tointeger(L, -1));
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    std::string name = lua_tostring(L, -1);
    bool numeric = !name.empty() && name.find_first_not_of("0123456789") == std::string::npos;
    out = numeric ? std::optional<Id>(static_cast<Id>(std::stoul(name))) : lookup(name);
    if (!out) luaL_error(L, "file_ops.%s: %s: no such %s \"%s\"", fn, field, field, name.c_str());
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "file_ops.%s: %s must be a name or a numeric id", fn, field);
  }
  lua_pop(L, 1);
  return out;
}

Meta OptMeta(lua_State* L, const char* fn) {
  Meta m;
  m.mode = OptMode(L, fn);
  m.uid = OptId<uid_t>(L, fn, "owner", [](const std::string& n) -> std::optional<uid_t> {
    struct passwd* pw = getpwnam(n.c_str());
    return pw ? std::optional<uid_t>(pw->pw_uid) : std::nullopt;
  });
  m.gid = OptId<gid_t>(L, fn, "group", [](const std::string& n) -> std::optional<gid_t> {
    struct group* gr = getgrnam(n.c_str());
    return gr ? std::optional<gid_t>(gr->gr_gid) : std::nullopt;
  });
  return m;
}

// Compiles `pattern` (ECMAScript, multiline), raising an error that names the argument.
std::regex CompileRegex(lua_State* L, const char* fn, const char* field,
                        const std::string& pattern) {
  std::string error;
  try {
    return std::regex(pattern, std::regex::ECMAScript | std::regex::multiline);
  } catch (const std::regex_error& e) {
    error = e.what();
  }
  luaL_error(L, "file_ops.%s: %s is not a valid regular expression: %s", fn, field, error.c_str());
  return {};
}

// --- disk --------------------------------------------------------------------------------

std::string OctalMode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

std::string ErrnoText(const std::string& path, int err) { return path + ": " + std::strerror(err); }

// The file's content, or nullopt with `error` set ("" when it simply does not exist).
std::optional<std::string> ReadFile(const std::string& path, std::string& error) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = errno == ENOENT ? "" : ErrnoText(path, errno);
    return std::nullopt;
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) error = ErrnoText(path, errno);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (!error.empty()) return std::nullopt;
  return out;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  char hex[crypto_hash_sha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  return hex;
}

// Descriptions of the metadata changes `m` asks for on the existing file `st`.
std::vector<std::string> MetaChanges(const struct stat& st, const Meta& m) {
  std::vector<std::string> out;
  if (m.mode && (st.st_mode & 07777) != *m.mode)
    out.push_back("mode " + OctalMode(st.st_mode) + " -> " + OctalMode(*m.mode));
  if (m.uid && st.st_uid != *m.uid)
    out.push_back("owner " + std::to_string(st.st_uid) + " -> " + std::to_string(*m.uid));
  if (m.gid && st.st_gid != *m.gid)
    out.push_back("group " + std::to_string(st.st_gid) + " -> " + std::to_string(*m.gid));
  return out;
}

// Owner first: chown clears setuid bits, so the mode goes on last.
std::string ApplyMeta(const std::string& path, const Meta& m) {
  if ((m.uid || m.gid) && chown(path.c_str(), m.uid ? *m.uid : static_cast<uid_t>(-1),
                                m.gid ? *m.gid : static_cast<gid_t>(-1)) != 0)
    return ErrnoText(path, errno);
  if (m.mode && chmod(path.c_str(), *m.mode) != 0) return ErrnoText(path, errno);
  return "";
}

std::string Dirname(const std::string& path) {
  std::string dir = stdfs::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

// A symlink is written through, so the link itself survives.
std::string WriteTarget(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return path;
  std::error_code ec;
  stdfs::path target = stdfs::weakly_canonical(path, ec);
  return ec ? path : target.string();
}

}  // namespace

std::string AtomicWrite(const std::string& path, std::string_view content, const FileMeta& m) {
  std::string target = WriteTarget(path);
  struct stat old;
  bool exists = stat(target.c_str(), &old) == 0;
  if (exists && !S_ISREG(old.st_mode)) return target + ": not a regular file";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    char suffix[17];
    std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(rng()));
    tmp = Dirname(target) + "/." + stdfs::path(target).filename().string().substr(0, 200) +
          ".sloth-" + suffix;
    fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);  // umask applies
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) return ErrnoText(target, errno);
  Meta want = m;
  if (exists) {
    if (!want.mode) want.mode = old.st_mode & 07777;
    if (!want.uid) want.uid = old.st_uid;
    if (!want.gid) want.gid = old.st_gid;
  }
  int err = 0;
  if ((want.uid || want.gid) && fchown(fd, want.uid ? *want.uid : static_cast<uid_t>(-1),
                                       want.gid ? *want.gid : static_cast<gid_t>(-1)) != 0)
    err = errno;
  if (!err && want.mode && fchmod(fd, *want.mode) != 0) err = errno;
  while (!err && !content.empty()) {
    ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) err = errno;
    if (n > 0) content.remove_prefix(static_cast<size_t>(n));
  }
  if (!err && fsync(fd) != 0) err = errno;
  if (close(fd) != 0 && !err) err = errno;
  if (!err && rename(tmp.c_str(), target.c_str()) != 0) err = errno;
  if (err) {
    unlink(tmp.c_str());
    return ErrnoText(target, err);
  }
  int dfd = open(Dirname(target).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);  // best effort: the rename is already visible
    close(dfd);
  }
  return "";
}

namespace {

// --- results -----------------------------------------------------------------------------

struct Change {
  bool changed = false;
  std::string path;
  std::string diff;
  std::string msg;
  nlohmann::json resource;  // properties for the stack; null: nothing recorded
  std::string state = "file";
};

// Records the resource and returns the result table twice (see modules.md conventions).
int PushChange(lua_State* L, Change& c) {
  bool check = Runtime::From(L).CheckMode(L);
  if (check && c.changed) {
    c.msg = "would " + c.msg;
    // The desired properties can equal the recorded ones while the disk has drifted from
    // them; the pending change makes `stack drift` and `run --check` report it either way.
    if (c.resource.is_object()) c.resource["pending"] = c.msg;
  }
  if (!c.resource.is_null()) RecordManagedResource(L, "file", c.path, "file_ops", c.resource);
  lua_newtable(L);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "success");
  lua_pushboolean(L, c.changed);
  lua_setfield(L, -2, "changed");
  lua_pushboolean(L, check);
  lua_setfield(L, -2, "check_mode");
  lua_pushstring(L, c.path.c_str());
  lua_setfield(L, -2, "path");
  if (!c.diff.empty()) {
    lua_pushlstring(L, c.diff.data(), c.diff.size());
    lua_setfield(L, -2, "diff");
  }
  lua_pushstring(L, c.msg.c_str());
  lua_setfield(L, -2, "msg");
  lua_pushstring(L, c.msg.c_str());
  lua_setfield(L, -2, "message");  // the seed's name
  if (c.changed) Runtime::From(L).Log(L, LogLevel::kInfo, c.path + ": " + c.msg);
  // `run --diff` shows the diff in the log, line by line; otherwise only --debug does.
  if (!c.diff.empty()) {
    Runtime& rt = Runtime::From(L);
    LogLevel level = rt.options().show_diff ? LogLevel::kInfo : LogLevel::kDebug;
    std::string_view rest = c.diff;
    while (!rest.empty()) {
      size_t end = rest.find('\n');
      rt.Log(L, level, rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    }
  }
  lua_pushvalue(L, -1);
  return 2;
}

int Fail(lua_State* L, const char* fn, const std::string& why) {
  return PushFailure(L, std::string("file_ops.") + fn + ": " + why);
}

nlohmann::json FileResource(const std::optional<std::string>& content, std::optional<mode_t> mode,
                            const std::string& state) {
  return {{"checksum", content ? nlohmann::json(Sha256Hex(*content)) : nlohmann::json()},
          {"mode", mode ? nlohmann::json(OctalMode(*mode)) : nlohmann::json()},
          {"state", state}};
}

// The shared tail of every function that manages a file's content: compares, diffs, and in a
// real run writes and applies `meta`. `before` is nullopt when the file does not exist.
int SettleContent(lua_State* L, const char* fn, const std::string& path,
                  const std::optional<std::string>& before, const std::string& after,
                  const Meta& meta) {
  Change c;
  c.path = path;
  struct stat st {};
  bool exists = before.has_value() && stat(path.c_str(), &st) == 0;
  bool content_changed = !before || *before != after;
  std::vector<std::string> meta_changes =
      exists ? MetaChanges(st, meta) : std::vector<std::string>{};
  c.changed = content_changed || !meta_changes.empty();
  if (content_changed)
    c.diff = UnifiedDiff(before ? *before : "", after, before ? path : "/dev/null", path);
  if (!before) {
    c.msg = "create " + path;
  } else if (content_changed) {
    c.msg = "update " + path;
  } else {
    c.msg = meta_changes.empty() ? "unchanged" : "set";
  }
  for (const auto& m : meta_changes) c.msg += (c.msg == "set" ? " " : ", ") + m;
  std::optional<mode_t> mode = meta.mode;
  if (!mode && exists) mode = st.st_mode & 07777;
  if (c.changed && !Runtime::From(L).CheckMode(L)) {
    std::string err = content_changed ? AtomicWrite(path, after, meta) : ApplyMeta(path, meta);
    if (!err.empty()) return Fail(L, fn, err);
    if (stat(path.c_str(), &st) == 0) mode = st.st_mode & 07777;
  }
  c.resource = FileResource(after, mode, "file");
  return PushChange(L, c);
}

// --- lines -------------------------------------------------------------------------------

// A text as lines without their "\n"; `final_newline` says whether the last one had it.
struct Lines {
  std::vector<std::string> lines;
  bool final_newline = true;

  static Lines Parse(const std::string& text) {
    Lines out;
    size_t start = 0;
    while (start < text.size()) {
      size_t nl = text.find('\n', start);
      if (nl == std::string::npos) {
        out.lines.push_back(text.substr(start));
        out.final_newline = false;
        break;
      }
      out.lines.push_back(text.substr(start, nl - start));
      start = nl + 1;
    }
    return out;
  }

  std::string Join() const {
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
      out += lines[i];
      if (i + 1 < lines.size() || final_newline) out += '\n';
    }
    return out;
  }

  // Inserts at `pos`; a line added at the end gets its newline, as if it had always been there.
  void Insert(size_t pos, const std::string& line) {
    if (pos >= lines.size()) final_newline = true;
    lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(std::min(pos, lines.size())), line);
  }
};

// The file's current content for the line-editing functions; nullopt + pushed failure count.
struct Current {
  std::optional<std::string> text;
  std::string error;
};

Current ReadCurrent(const std::string& path) {
  Current c;
  c.text = ReadFile(path, c.error);
  return c;
}

// Reads the file a line or block edit works on. When the call ends here (a read error, nothing
// to remove from an absent file, a missing file without `create`) returns what it pushed.
std::optional<int> ReadForEdit(lua_State* L, const char* fn, const std::string& path, bool removing,
                               bool create, Current* cur) {
  *cur = ReadCurrent(path);
  if (!cur->error.empty()) return Fail(L, fn, cur->error);
  if (!cur->text && removing) {
    Change c;
    c.path = path;
    c.msg = "unchanged (file does not exist)";
    return PushChange(L, c);
  }
  if (!cur->text && !create) return Fail(L, fn, path + ": file does not exist (set create = true)");
  return std::nullopt;
}

int FileOpsLineInFile(lua_State* L) {
  const char* fn = "lineinfile";
  CheckOptions(L, fn);
  std::string path = ReqPath(L, fn, "path");
  std::string state = OptChoice(L, fn, "state", {"present", "absent"}, "present");
  std::optional<std::string> line = OptField(L, fn, "line");
  std::optional<std::string> regexp_text = OptField(L, fn, "regexp");
  std::optional<std::string> after = OptField(L, fn, "insertafter");
  std::optional<std::string> before = OptField(L, fn, "insertbefore");
  bool create = OptFlag(L, fn, "create", false);
  Meta meta = OptMeta(L, fn);
  if (state == "present" && !line) luaL_error(L, "file_ops.%s: line is required (a string)", fn);
  if (state == "absent" && !line && !regexp_text)
    luaL_error(L, "file_ops.%s: line or regexp is required with state = \"absent\"", fn);
  if (after && before) luaL_error(L, "file_ops.%s: give insertafter or insertbefore, not both", fn);
  if (line && line->find('\n') != std::string::npos)
    luaL_error(L, "file_ops.%s: line must be a single line (use blockinfile for several)", fn);
  std::optional<std::regex> re, after_re, before_re;
  if (regexp_text) re = CompileRegex(L, fn, "regexp", *regexp_text);
  if (after && *after != "EOF") after_re = CompileRegex(L, fn, "insertafter", *after);
  if (before && *before != "BOF") before_re = CompileRegex(L, fn, "insertbefore", *before);

  Current cur;
  if (std::optional<int> done = ReadForEdit(L, fn, path, state == "absent", create, &cur))
    return *done;
  Lines text = Lines::Parse(cur.text.value_or(""));
  auto matches = [&](const std::string& l) {
    return re ? std::regex_search(l, *re) : (line && l == *line);
  };
  if (state == "absent") {
    std::erase_if(text.lines, matches);
    if (text.lines.empty()) text.final_newline = true;
  } else {
    std::optional<size_t> last;
    for (size_t i = 0; i < text.lines.size(); ++i)
      if (re && std::regex_search(text.lines[i], *re)) last = i;
    bool present = false;
    for (const auto& l : text.lines) present = present || l == *line;
    if (last) {
      text.lines[*last] = *line;
    } else if (!present) {
      size_t pos = text.lines.size();
      if (before && *before == "BOF") pos = 0;
      if (after_re)
        for (size_t i = 0; i < text.lines.size(); ++i)
          if (std::regex_search(text.lines[i], *after_re)) pos = i + 1;
      if (before_re)
        for (size_t i = 0; i < text.lines.size(); ++i)
          if (std::regex_search(text.lines[i], *before_re)) {
            pos = i;
            break;
          }
      text.Insert(pos, *line);
    }
  }
  return SettleContent(L, fn, path, cur.text, text.Join(), meta);
}

int FileOpsBlockInFile(lua_State* L) {
  const char* fn = "blockinfile";
  CheckOptions(L, fn);
  std::string path = ReqPath(L, fn, "path");
  std::string state = OptChoice(L, fn, "state", {"present", "absent"}, "present");
  std::optional<std::string> block = OptField(L, fn, "block");
  std::string marker = OptField(L, fn, "marker").value_or("# {mark} SLOTH MANAGED BLOCK");
  bool create = OptFlag(L, fn, "create", false);
  Meta meta = OptMeta(L, fn);
  if (state == "present" && !block) luaL_error(L, "file_ops.%s: block is required (a string)", fn);
  size_t mark = marker.find("{mark}");
  if (mark == std::string::npos || marker.find('\n') != std::string::npos)
    luaL_error(L, "file_ops.%s: marker must be one line containing {mark}", fn);
  // The seed's marker_begin / marker_end name the two lines directly.
  std::string begin =
      OptField(L, fn, "marker_begin").value_or(std::string(marker).replace(mark, 6, "BEGIN"));
  std::string end =
      OptField(L, fn, "marker_end").value_or(std::string(marker).replace(mark, 6, "END"));
  if (begin == end) luaL_error(L, "file_ops.%s: marker_begin and marker_end must differ", fn);

  Current cur;
  if (std::optional<int> done = ReadForEdit(L, fn, path, state == "absent", create, &cur))
    return *done;
  Lines text = Lines::Parse(cur.text.value_or(""));
  auto& ls = text.lines;
  auto b = std::find(ls.begin(), ls.end(), begin);
  auto e = b == ls.end() ? ls.end() : std::find(b, ls.end(), end);
  size_t pos = ls.size();
  if (b != ls.end() && e != ls.end()) pos = static_cast<size_t>(ls.erase(b, e + 1) - ls.begin());
  if (state == "present") {
    std::vector<std::string> insert = {begin};
    Lines body = Lines::Parse(*block);
    insert.insert(insert.end(), body.lines.begin(), body.lines.end());
    insert.push_back(end);
    if (pos >= ls.size()) text.final_newline = true;
    ls.insert(ls.begin() + static_cast<std::ptrdiff_t>(pos), insert.begin(), insert.end());
  }
  if (ls.empty()) text.final_newline = true;
  return SettleContent(L, fn, path, cur.text, text.Join(), meta);
}

int FileOpsReplace(lua_State* L) {
  const char* fn = "replace";
  CheckOptions(L, fn);
  std::string path = ReqPath(L, fn, "path");
  // pattern / replacement: the seed's names for regexp / replace.
  std::optional<std::string> pattern = OptField(L, fn, "regexp");
  if (!pattern) pattern = OptField(L, fn, "pattern");
  if (!pattern) luaL_error(L, "file_ops.%s: regexp is required (a string)", fn);
  std::regex re = CompileRegex(L, fn, "regexp", *pattern);
  std::optional<std::string> replacement = OptField(L, fn, "replace");
  if (!replacement) replacement = OptField(L, fn, "replacement");
  if (!replacement) luaL_error(L, "file_ops.%s: replace is required (a string)", fn);
  Meta meta = OptMeta(L, fn);
  Current cur = ReadCurrent(path);
  if (!cur.error.empty()) return Fail(L, fn, cur.error);
  if (!cur.text) return Fail(L, fn, path + ": file does not exist");
  std::string after = std::regex_replace(*cur.text, re, *replacement);
  return SettleContent(L, fn, path, cur.text, after, meta);
}

// --- copy and template -------------------------------------------------------------------

// An existing directory as destination receives the file under the source's name.
std::string IntoDir(const std::string& dest, const std::optional<std::string>& src) {
  struct stat st;
  if (!src || stat(dest.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return dest;
  return dest + "/" + stdfs::path(*src).filename().string();
}

int FileOpsCopy(lua_State* L) {
  const char* fn = "copy";
  CheckOptions(L, fn);
  std::optional<std::string> src = OptField(L, fn, "src");
  std::optional<std::string> content = OptField(L, fn, "content");
  if (src.has_value() == content.has_value())
    luaL_error(L, "file_ops.%s: give src (a file) or content (a string), exactly one", fn);
  std::string dest = ReqPath(L, fn, "dest");
  Meta meta = OptMeta(L, fn);
  if (src) {
    src = Runtime::From(L).ResolvePath(L, *src);
    std::string error;
    content = ReadFile(*src, error);
    if (!content) return Fail(L, fn, error.empty() ? *src + ": file does not exist" : error);
  }
  dest = IntoDir(dest, src);
  Current cur = ReadCurrent(dest);
  if (!cur.error.empty()) return Fail(L, fn, cur.error);
  return SettleContent(L, fn, dest, cur.text, *content, meta);
}

int FileOpsTemplate(lua_State* L) {
  const char* fn = "template";
  CheckOptions(L, fn);
  std::string src = ReqPath(L, fn, "src");
  std::string dest = ReqPath(L, fn, "dest");
  Meta meta = OptMeta(L, fn);
  lua_getfield(L, 1, "vars");
  int vars = lua_gettop(L);
  if (!lua_isnil(L, vars) && !lua_istable(L, vars))
    luaL_error(L, "file_ops.%s: vars must be a table", fn);
  std::string error;
  std::optional<std::string> source = ReadFile(src, error);
  if (!source) return Fail(L, fn, error.empty() ? src + ": file does not exist" : error);
  Result<std::string> rendered = RenderTemplate(L, *source, vars, 0);
  if (!rendered.ok())
    luaL_error(L, "file_ops.%s: %s: %s", fn, src.c_str(), rendered.error().c_str());
  dest = IntoDir(dest, std::nullopt);
  Current cur = ReadCurrent(dest);
  if (!cur.error.empty()) return Fail(L, fn, cur.error);
  return SettleContent(L, fn, dest, cur.text, *rendered, meta);
}

// fetch{src = url, dest}: the body replaces dest when it differs. A GET changes nothing here, so
// check mode downloads too and can show the real diff.
int FileOpsFetch(lua_State* L) {
  const char* fn = "fetch";
  CheckOptions(L, fn);
  HttpRequest req;
  req.url = ReqField(L, fn, "src");
  if (req.url.rfind("http://", 0) != 0 && req.url.rfind("https://", 0) != 0)
    return FileOpsCopy(L);  // a local path: the seed's fetch copied files
  std::string dest = ReqPath(L, fn, "dest");
  Meta meta = OptMeta(L, fn);
  req.timeout = OptDuration(L, 1, "timeout");
  req.retries = 2;
  return AwaitHttp(L, std::move(req), [dest, meta](lua_State* co, HttpResult& res) {
    const char* name = "fetch";
    if (!res.ok()) return Fail(co, name, res.url + ": " + res.error);
    if (res.status >= 400) return Fail(co, name, res.url + ": HTTP " + std::to_string(res.status));
    std::string target = IntoDir(dest, res.url.substr(res.url.rfind('/') + 1));
    Current cur = ReadCurrent(target);
    if (!cur.error.empty()) return Fail(co, name, cur.error);
    return SettleContent(co, name, target, cur.text, res.body, meta);
  });
}

// unarchive{src, dest}: extracts with tar (argument list, no shell) into dest, then leaves a
// marker holding the archive's checksum, so the same archive is not extracted twice. What an
// extraction changes cannot be predicted without doing it, so check mode refuses unless the
// marker says it is already done.
int FileOpsUnarchive(lua_State* L) {
  const char* fn = "unarchive";
  CheckOptions(L, fn);
  std::string src = ReqPath(L, fn, "src");
  std::string dest = ReqPath(L, fn, "dest");
  std::string error;
  std::optional<std::string> archive = ReadFile(src, error);
  if (!archive) return Fail(L, fn, error.empty() ? src + ": file does not exist" : error);
  std::string sum = Sha256Hex(*archive);
  std::string marker = dest + "/.sloth-unarchive-" + stdfs::path(src).filename().string();
  Change c;
  c.path = dest;
  c.resource = {{"checksum", sum}, {"mode", nullptr}, {"state", "directory"}, {"src", src}};
  std::string recorded;
  if (ReadFile(marker, recorded).value_or("") == sum + "\n") {
    c.msg = "unchanged (already extracted)";
    return PushChange(L, c);
  }
  if (Runtime::From(L).CheckMode(L))
    return Fail(L, fn,
                "check mode cannot predict what extracting " + src + " into " + dest +
                    " would change (a dry run never extracts)");
  std::error_code ec;
  stdfs::create_directories(dest, ec);
  if (ec) return Fail(L, fn, dest + ": " + ec.message());
  ProcessSpec spec = ShellSpec(L, "");
  bool zip = src.size() > 4 && src.compare(src.size() - 4, 4, ".zip") == 0;
  if (zip) {
    spec.argv = {"unzip", "-o", "-q", src, "-d", dest};
  } else {
    spec.argv = {"tar", "-xf", src, "-C", dest};
  }
  ExecOptions opts;
  opts.stream = false;
  opts.on_exit = [c, marker, sum, zip](lua_State* co, const ProcessExit& exit) mutable {
    if (exit.exit_code != 0)
      return Fail(co, "unarchive",
                  std::string(zip ? "unzip" : "tar") + " exited with " +
                      std::to_string(exit.exit_code) + ": " + exit.err);
    std::string err = AtomicWrite(marker, sum + "\n", {});
    if (!err.empty()) return Fail(co, "unarchive", err);
    c.changed = true;
    c.msg = "extract into " + c.path;
    return PushChange(co, c);
  };
  return RunCommand(L, std::move(spec), opts);
}

// --- file --------------------------------------------------------------------------------

// Sets the metadata `m` asks for on an existing path (unless in check mode).
int SettleMeta(lua_State* L, const char* fn, Change& c, const struct stat& st, const Meta& m,
               bool created) {
  std::vector<std::string> changes = MetaChanges(st, m);
  if (!created) c.msg = changes.empty() ? "unchanged" : "set";
  for (const auto& d : changes) c.msg += (c.msg == "set" ? " " : ", ") + d;
  c.changed = created || !changes.empty();
  std::optional<mode_t> mode = m.mode ? m.mode : std::optional<mode_t>(st.st_mode & 07777);
  if (!changes.empty() && !Runtime::From(L).CheckMode(L)) {
    std::string err = ApplyMeta(c.path, m);
    if (!err.empty()) return Fail(L, fn, err);
  }
  c.resource = FileResource(std::nullopt, mode, c.state);
  return PushChange(L, c);
}

int FileOpsFile(lua_State* L) {
  const char* fn = "file";
  CheckOptions(L, fn);
  std::string path = ReqPath(L, fn, "path");
  std::string state =
      OptChoice(L, fn, "state", {"file", "directory", "link", "absent", "touch"}, "");
  struct stat probe;
  if (state.empty())  // no state: an existing directory is managed as one
    state = stat(path.c_str(), &probe) == 0 && S_ISDIR(probe.st_mode) ? "directory" : "file";
  std::optional<std::string> src = OptField(L, fn, "src");
  Meta meta = OptMeta(L, fn);
  if (state == "link" && !src)
    luaL_error(L, "file_ops.%s: src is required with state = \"link\"", fn);
  bool check = Runtime::From(L).CheckMode(L);
  Change c;
  c.path = path;
  c.state = state;
  struct stat st;
  bool exists = lstat(path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return Fail(L, fn, ErrnoText(path, errno));

  if (state == "absent") {
    c.changed = exists;
    c.msg = exists ? "remove " + path : "unchanged (already absent)";
    if (exists && !check) {
      std::error_code ec;
      stdfs::remove_all(path, ec);
      if (ec) return Fail(L, fn, path + ": " + ec.message());
    }
    c.resource = {{"checksum", nullptr}, {"mode", nullptr}, {"state", "absent"}};
    return PushChange(L, c);
  }
  if (state == "link") {
    char target[PATH_MAX];
    ssize_t n =
        exists && S_ISLNK(st.st_mode) ? readlink(path.c_str(), target, sizeof target - 1) : -1;
    if (exists && !S_ISLNK(st.st_mode)) return Fail(L, fn, path + ": exists and is not a symlink");
    bool same = n >= 0 && std::string(target, static_cast<size_t>(n)) == *src;
    c.changed = !same;
    c.msg = same ? "unchanged" : (exists ? "repoint " : "create link ") + path + " -> " + *src;
    if (!same && !check) {
      // A new link beside the old one, renamed over it: the path never goes missing.
      std::string tmp = path + ".sloth-link-" + std::to_string(getpid());
      unlink(tmp.c_str());
      if (symlink(src->c_str(), tmp.c_str()) != 0) return Fail(L, fn, ErrnoText(path, errno));
      if (rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        unlink(tmp.c_str());
        return Fail(L, fn, ErrnoText(path, err));
      }
    }
    c.resource = {{"checksum", nullptr}, {"mode", nullptr}, {"state", "link"}, {"src", *src}};
    return PushChange(L, c);
  }
  if (state == "directory") {
    if (exists && !S_ISDIR(st.st_mode))
      return Fail(L, fn, path + ": exists and is not a directory");
    bool created = false;
    if (!exists) {
      created = true;
      c.msg = "create directory " + path;
      if (check) {
        c.changed = true;
        c.resource = FileResource(std::nullopt, meta.mode, "directory");
        return PushChange(L, c);
      }
      std::error_code ec;
      stdfs::create_directories(path, ec);
      if (ec) return Fail(L, fn, path + ": " + ec.message());
      stat(path.c_str(), &st);
    }
    return SettleMeta(L, fn, c, st, meta, created);
  }
  if (state == "touch") {
    // Like touch(1): always a change, creating the file or updating its times.
    c.msg = exists ? "update times of " + path : "create " + path;
    if (check) {
      c.changed = true;
      c.resource = FileResource(std::nullopt, meta.mode, "file");
      return PushChange(L, c);
    }
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return Fail(L, fn, ErrnoText(path, errno));
    futimens(fd, nullptr);
    close(fd);
    stat(path.c_str(), &st);
    Change done = c;
    int pushed = SettleMeta(L, fn, done, st, meta, true);
    return pushed;
  }
  // state == "file": the file must already exist; only its metadata is managed.
  if (!exists) return Fail(L, fn, path + ": file does not exist (use state = \"touch\" or copy)");
  if (S_ISDIR(st.st_mode)) return Fail(L, fn, path + ": is a directory");
  stat(path.c_str(), &st);
  return SettleMeta(L, fn, c, st, meta, false);
}

// --- stat --------------------------------------------------------------------------------

void SetInt(lua_State* L, const char* k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}
void SetBool(lua_State* L, const char* k, bool v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, k);
}
void SetStr(lua_State* L, const char* k, const std::string& v) {
  lua_pushlstring(L, v.data(), v.size());
  lua_setfield(L, -2, k);
}

int FileOpsStat(lua_State* L) {
  const char* fn = "stat";
  std::string path;
  if (lua_type(L, 1) == LUA_TSTRING) {  // stat("path") as well as stat{path = ...}
    path = Runtime::From(L).ResolvePath(L, lua_tostring(L, 1));
  } else {
    CheckOptions(L, fn);
    path = ReqPath(L, fn, "path");
  }
  struct stat st;
  lua_newtable(L);
  SetStr(L, "path", path);
  if (lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return Fail(L, fn, ErrnoText(path, errno));
    SetBool(L, "exists", false);
    lua_pushvalue(L, -1);
    return 2;
  }
  SetBool(L, "exists", true);
  SetBool(L, "islnk", S_ISLNK(st.st_mode));
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX];
    ssize_t n = readlink(path.c_str(), target, sizeof target - 1);
    if (n >= 0) SetStr(L, "lnk_target", std::string(target, static_cast<size_t>(n)));
  }
  SetBool(L, "isdir", S_ISDIR(st.st_mode));
  SetBool(L, "isreg", S_ISREG(st.st_mode));
  SetBool(L, "is_dir", S_ISDIR(st.st_mode));  // the seed's names
  SetBool(L, "is_file", S_ISREG(st.st_mode));
  SetInt(L, "size", st.st_size);
  SetStr(L, "mode", OctalMode(st.st_mode));
  SetInt(L, "uid", st.st_uid);
  SetInt(L, "gid", st.st_gid);
  struct passwd* pw = getpwuid(st.st_uid);
  SetStr(L, "owner", pw ? pw->pw_name : std::to_string(st.st_uid));
  struct group* gr = getgrgid(st.st_gid);
  SetStr(L, "group", gr ? gr->gr_name : std::to_string(st.st_gid));
  SetInt(L, "mtime", st.st_mtim.tv_sec);
  if (S_ISREG(st.st_mode)) {
    std::string error;
    std::optional<std::string> content = ReadFile(path, error);
    if (content) SetStr(L, "checksum", Sha256Hex(*content));
  }
  lua_pushvalue(L, -1);  // twice: `local st = ...` and the seed's `local ok, st = ...`
  return 2;
}

}  // namespace

const Module& FileOpsModule() {
  static const Module kModule{
      "file_ops",
      "Idempotent file management: lines, blocks, copies, templates, modes (check mode, diffs)",
      {
          {"lineinfile", FileOpsLineInFile,
           "lineinfile{path, line, regexp?, state?, create?, insertafter?, insertbefore?} -> "
           "result",
           "Ensures a line is present (replacing the last regexp match) or absent"},
          {"blockinfile", FileOpsBlockInFile,
           "blockinfile{path, block, marker?, marker_begin?, marker_end?, state?, create?} -> "
           "result",
           "Ensures a marked block of lines is present or absent"},
          {"replace", FileOpsReplace,
           "replace{path, regexp | pattern, replace | replacement} -> result",
           "Replaces every match of an ECMAScript regexp ($1 for groups)"},
          {"copy", FileOpsCopy, "copy{src | content, dest, mode?, owner?, group?} -> result",
           "Copies a file or writes a string when the content differs"},
          {"template", FileOpsTemplate,
           "template{src, dest, vars?, mode?, owner?, group?} -> result",
           "Renders a Mustache template file to dest when the result differs"},
          {"file", FileOpsFile, "file{path, state?, mode?, owner?, group?, src?} -> result",
           "Ensures a file, directory, symlink or absence, with mode and owner"},
          {"fetch", FileOpsFetch,
           "fetch{src = url or path, dest, mode?, owner?, group?, timeout?} -> result",
           "Downloads over HTTP(S) and replaces dest when the content differs"},
          {"unarchive", FileOpsUnarchive, "unarchive{src, dest} -> result",
           "Extracts a tar (any compression tar knows) or .zip archive once per archive checksum"},
          {"stat", FileOpsStat,
           "stat{path} -> st, st: {exists, isdir, isreg, islnk, size, mode, ...}",
           "Facts about a path, with the sha256 of a regular file"},
      }};
  return kModule;
}

}  // namespace sloth
