// fs: files and directories. Relative paths resolve against the calling task's workdir; the
// functions that move file contents run on the thread pool so a big file never stalls the
// other tasks. In check mode nothing on disk changes.
#include <fcntl.h>
#include <glob.h>
#include <grp.h>
#include <pwd.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <lua.hpp>

#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

namespace stdfs = std::filesystem;

// What a pool job reports: `error` is empty on success; `value` is the result for reads.
struct Outcome {
  std::string error;
  std::string value;
};

Outcome Fail(const char* op, const std::string& path, const std::string& why) {
  return {std::string("fs.") + op + ": " + path + ": " + why, {}};
}

Outcome FailErrno(const char* op, const std::string& path, int err) {
  return Fail(op, path, std::strerror(err));
}

// --- paths as strings (no disk access) --------------------------------------------------

std::string Basename(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path == "/") return path;
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string Dirname(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  while (slash > 0 && path[slash - 1] == '/') --slash;
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool IsDir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// cp/mv semantics: an existing directory as destination receives the source under its name.
std::string IntoDir(const std::string& src, const std::string& dest) {
  return IsDir(dest) ? dest + "/" + Basename(src) : dest;
}

// --- blocking work (runs on the pool) ---------------------------------------------------

int WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

// Writes, syncs and closes `fd`; returns the first errno or 0.
int FinishFile(int fd, std::string_view content) {
  int err = WriteAll(fd, content);
  if (!err && fsync(fd) != 0) err = errno;
  if (close(fd) != 0 && !err) err = errno;
  return err;
}

Outcome ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FailErrno("read", path, errno);
  Outcome out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) out = FailErrno("read", path, errno);
    if (n <= 0) break;
    out.value.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

// The file a write replaces: a symlink's target, so that the link itself survives.
std::string WriteTarget(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return path;
  std::error_code ec;
  stdfs::path target = stdfs::weakly_canonical(path, ec);
  return ec ? path : target.string();
}

// Creates a new, empty file next to `path` with a random name; stores the name in `tmp`.
int OpenTempBeside(const std::string& path, std::string& tmp) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string stem = Dirname(path) + "/." + Basename(path).substr(0, 200) + ".sloth-";
  for (int attempt = 0; attempt < 100; ++attempt) {
    char suffix[17];
    std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(rng()));
    tmp = stem + suffix;
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);  // umask applies
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  return -1;
}

// Gives the new file the old one's owner and mode (owner first: chown clears setuid bits).
int CopyModeAndOwner(int fd, const struct stat& old) {
  struct stat now;
  if (fstat(fd, &now) != 0) return errno;
  bool other_owner = now.st_uid != old.st_uid || now.st_gid != old.st_gid;
  if (other_owner && fchown(fd, old.st_uid, old.st_gid) != 0) return errno;
  return fchmod(fd, old.st_mode & 07777) == 0 ? 0 : errno;
}

// Used when the atomic path cannot keep the file's owner or the directory is not writable.
Outcome WriteInPlace(const std::string& path, std::string_view content) {
  int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return FailErrno("write", path, errno);
  int err = FinishFile(fd, content);
  return err ? FailErrno("write", path, err) : Outcome{};
}

void SyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);  // best effort: the rename is already visible
  close(fd);
}

// Temp file in the same directory + fsync + rename: readers see the old or the new content.
Outcome AtomicWrite(const std::string& path, std::string_view content) {
  std::string target = WriteTarget(path);
  struct stat old;
  bool exists = stat(target.c_str(), &old) == 0;
  if (exists && !S_ISREG(old.st_mode)) return Fail("write", target, "not a regular file");
  std::string tmp;
  int fd = OpenTempBeside(target, tmp);
  if (fd < 0 && exists && errno == EACCES) return WriteInPlace(target, content);
  if (fd < 0) return FailErrno("write", target, errno);
  int err = exists ? CopyModeAndOwner(fd, old) : 0;
  if (err == EPERM) {
    close(fd);
    unlink(tmp.c_str());
    return WriteInPlace(target, content);
  }
  if (err) close(fd);
  if (!err) err = FinishFile(fd, content);
  if (!err && rename(tmp.c_str(), target.c_str()) != 0) err = errno;
  if (err) {
    unlink(tmp.c_str());
    return FailErrno("write", target, err);
  }
  SyncDir(Dirname(target));
  return {};
}

Outcome AppendFile(const std::string& path, std::string_view content) {
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return FailErrno("append", path, errno);
  int err = WriteAll(fd, content);
  if (close(fd) != 0 && !err) err = errno;
  return err ? FailErrno("append", path, err) : Outcome{};
}

std::string Canonical(const std::string& path) {
  std::error_code ec;
  std::string out = stdfs::weakly_canonical(path, ec).string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// True when `inner` is `outer` or lies below it (after resolving symlinks and "..").
bool IsInside(const std::string& inner, const std::string& outer) {
  std::string a = Canonical(inner), b = Canonical(outer);
  return a == b || (a.size() > b.size() && a.compare(0, b.size(), b) == 0 && a[b.size()] == '/');
}

Outcome CopyPath(const std::string& src, const std::string& dest) {
  std::error_code ec;
  stdfs::file_status st = stdfs::status(src, ec);
  if (ec) return Fail("copy", src, ec.message());
  std::string to = IntoDir(src, dest);
  if (stdfs::is_directory(st)) {
    if (IsInside(to, src)) return Fail("copy", src, "cannot copy a directory into itself");
    stdfs::copy(src, to,
                stdfs::copy_options::recursive | stdfs::copy_options::overwrite_existing |
                    stdfs::copy_options::copy_symlinks,
                ec);
  } else {
    stdfs::copy_file(src, to, stdfs::copy_options::overwrite_existing, ec);
  }
  return ec ? Fail("copy", src + " -> " + to, ec.message()) : Outcome{};
}

Outcome MovePath(const std::string& src, const std::string& dest) {
  std::string to = IntoDir(src, dest);
  if (rename(src.c_str(), to.c_str()) == 0) return {};
  if (errno != EXDEV) return FailErrno("move", src + " -> " + to, errno);
  Outcome copied = CopyPath(src, to);  // another filesystem: copy, then remove the original
  if (!copied.error.empty()) return copied;
  std::error_code ec;
  stdfs::remove_all(src, ec);
  return ec ? Fail("move", src, ec.message()) : Outcome{};
}

Outcome RemoveTree(const std::string& path) {
  if (stdfs::path(path).lexically_normal() == "/")
    return Fail("rm_r", path, "refusing to remove /");
  std::error_code ec;
  stdfs::remove_all(path, ec);
  return ec ? Fail("rm_r", path, ec.message()) : Outcome{};
}

Outcome Sha256File(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FailErrno("sha256", path, errno);
  crypto_hash_sha256_state state;
  crypto_hash_sha256_init(&state);
  unsigned char buf[65536];
  int err = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) err = errno;
    if (n <= 0) break;
    crypto_hash_sha256_update(&state, buf, static_cast<unsigned long long>(n));
  }
  close(fd);
  if (err) return FailErrno("sha256", path, err);
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&state, digest);
  char hex[crypto_hash_sha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  return {{}, hex};
}

// --- Lua adapters -----------------------------------------------------------------------

std::string CheckPath(lua_State* L, int arg) {
  size_t len;
  const char* path = luaL_checklstring(L, arg, &len);
  if (len == 0) luaL_argerror(L, arg, "path must not be empty");
  return Runtime::From(L).ResolvePath(L, std::string(path, len));
}

int PushTrue(lua_State* L) {
  lua_pushboolean(L, 1);
  return 1;
}

// In check mode: logs what would happen and returns true (the caller then returns true too).
bool Skipped(lua_State* L, const std::string& what) {
  Runtime& rt = Runtime::From(L);
  if (!rt.CheckMode(L)) return false;
  rt.Log(L, LogLevel::kDebug, "[check] would " + what);
  return true;
}

// Runs `work` on the pool; pushes `true` (or the value, when `push_value`) or `nil, error`.
int Blocking(lua_State* L, std::function<Outcome()> work, bool push_value) {
  return Runtime::From(L).AwaitBlocking<Outcome>(
      L, std::move(work), [push_value](lua_State* co, Outcome& out) {
        if (!out.error.empty()) return PushFailure(co, out.error);
        if (!push_value) return PushTrue(co);
        lua_pushlstring(co, out.value.data(), out.value.size());
        return 1;
      });
}

int PushErrno(lua_State* L, const char* op, const std::string& path) {
  return PushFailure(L, FailErrno(op, path, errno).error);
}

int FsRead(lua_State* L) {
  std::string path = CheckPath(L, 1);
  return Blocking(
      L, [path] { return ReadFile(path); }, true);
}

int FsWrite(lua_State* L) {
  std::string path = CheckPath(L, 1);
  size_t len;
  const char* data = luaL_checklstring(L, 2, &len);
  if (Skipped(L, "write " + std::to_string(len) + " bytes to " + path)) return PushTrue(L);
  return Blocking(
      L, [path, content = std::string(data, len)] { return AtomicWrite(path, content); }, false);
}

int FsAppend(lua_State* L) {
  std::string path = CheckPath(L, 1);
  size_t len;
  const char* data = luaL_checklstring(L, 2, &len);
  if (Skipped(L, "append " + std::to_string(len) + " bytes to " + path)) return PushTrue(L);
  return Blocking(
      L, [path, content = std::string(data, len)] { return AppendFile(path, content); }, false);
}

template <bool (*Test)(const struct stat&)>
int FsTest(lua_State* L) {
  std::string path = CheckPath(L, 1);
  struct stat st;
  lua_pushboolean(L, stat(path.c_str(), &st) == 0 && Test(st));
  return 1;
}
bool AnyType(const struct stat&) { return true; }
bool DirType(const struct stat& st) { return S_ISDIR(st.st_mode); }
bool FileType(const struct stat& st) { return S_ISREG(st.st_mode); }

int FsMkdir(lua_State* L) {
  std::string path = CheckPath(L, 1);
  if (IsDir(path)) return PushTrue(L);
  if (Skipped(L, "create directory " + path)) return PushTrue(L);
  std::error_code ec;
  stdfs::create_directories(path, ec);
  if (ec) return PushFailure(L, Fail("mkdir", path, ec.message()).error);
  if (!IsDir(path))
    return PushFailure(L, Fail("mkdir", path, "exists and is not a directory").error);
  return PushTrue(L);
}

int FsRm(lua_State* L) {
  std::string path = CheckPath(L, 1);
  if (Skipped(L, "remove " + path)) return PushTrue(L);
  if (remove(path.c_str()) != 0) return PushErrno(L, "rm", path);
  return PushTrue(L);
}

int FsRmR(lua_State* L) {
  std::string path = CheckPath(L, 1);
  if (Skipped(L, "remove recursively " + path)) return PushTrue(L);
  return Blocking(
      L, [path] { return RemoveTree(path); }, false);
}

// Pushes `names` as a sequence marked as an array (so it encodes as a JSON array).
void PushList(lua_State* L, const std::vector<std::string>& names) {
  lua_createtable(L, static_cast<int>(names.size()), 0);
  for (size_t i = 0; i < names.size(); ++i) {
    lua_pushlstring(L, names[i].data(), names[i].size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  MarkArray(L, -1);
}

int FsLs(lua_State* L) {
  std::string path = lua_isnoneornil(L, 1) ? Runtime::From(L).ResolvePath(L, ".") : CheckPath(L, 1);
  std::error_code ec;
  std::vector<std::string> names;
  for (stdfs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec))
    names.push_back(it->path().filename().string());
  if (ec) return PushFailure(L, Fail("ls", path, ec.message()).error);
  std::sort(names.begin(), names.end());
  PushList(L, names);
  return 1;
}

int FsCopy(lua_State* L) {
  std::string src = CheckPath(L, 1), dest = CheckPath(L, 2);
  if (Skipped(L, "copy " + src + " to " + dest)) return PushTrue(L);
  return Blocking(
      L, [src, dest] { return CopyPath(src, dest); }, false);
}

int FsMove(lua_State* L) {
  std::string src = CheckPath(L, 1), dest = CheckPath(L, 2);
  if (Skipped(L, "move " + src + " to " + dest)) return PushTrue(L);
  return Blocking(
      L, [src, dest] { return MovePath(src, dest); }, false);
}

// symlink(target, link): `target` is stored as written (a relative target is relative to the
// link's directory, as with ln -s); an existing link to the same target is fine.
int FsSymlink(lua_State* L) {
  std::string target = luaL_checkstring(L, 1);
  std::string link = CheckPath(L, 2);
  char buf[PATH_MAX];
  ssize_t n = readlink(link.c_str(), buf, sizeof buf);
  if (n >= 0 && std::string(buf, static_cast<size_t>(n)) == target) return PushTrue(L);
  if (Skipped(L, "link " + link + " -> " + target)) return PushTrue(L);
  if (symlink(target.c_str(), link.c_str()) != 0) return PushErrno(L, "symlink", link);
  return PushTrue(L);
}

std::string OctalMode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

void SetField(lua_State* L, const char* key, lua_Integer value) {
  lua_pushinteger(L, value);
  lua_setfield(L, -2, key);
}

void SetBool(lua_State* L, const char* key, bool value) {
  lua_pushboolean(L, value);
  lua_setfield(L, -2, key);
}

// stat(path): follows a symlink for everything but is_link (a dangling link reports itself).
int FsStat(lua_State* L) {
  std::string path = CheckPath(L, 1);
  struct stat link, st;
  if (lstat(path.c_str(), &link) != 0) return PushErrno(L, "stat", path);
  if (stat(path.c_str(), &st) != 0) st = link;
  lua_createtable(L, 0, 9);
  SetField(L, "size", st.st_size);
  lua_pushstring(L, OctalMode(st.st_mode).c_str());
  lua_setfield(L, -2, "mode");
  SetField(L, "mode_num", st.st_mode & 07777);
  SetBool(L, "is_dir", S_ISDIR(st.st_mode));
  SetBool(L, "is_file", S_ISREG(st.st_mode));
  SetBool(L, "is_link", S_ISLNK(link.st_mode));
  SetField(L, "mtime", st.st_mtime);
  SetField(L, "uid", st.st_uid);
  SetField(L, "gid", st.st_gid);
  return 1;
}

int FsSize(lua_State* L) {
  std::string path = CheckPath(L, 1);
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return PushErrno(L, "size", path);
  lua_pushinteger(L, st.st_size);
  return 1;
}

// tmpname(prefix?): a new empty file in $TMPDIR (or /tmp); in check mode only its name.
int FsTmpname(lua_State* L) {
  std::string prefix = luaL_optstring(L, 1, "sloth-");
  if (prefix.find('/') != std::string::npos) luaL_argerror(L, 1, "prefix must not contain '/'");
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") + "/" + prefix + "XXXXXX";
  int fd = mkstemp(path.data());
  if (fd < 0) return PushErrno(L, "tmpname", path);
  close(fd);
  if (Runtime::From(L).CheckMode(L)) unlink(path.c_str());
  lua_pushstring(L, path.c_str());
  return 1;
}

int FsBasename(lua_State* L) {
  lua_pushstring(L, Basename(luaL_checkstring(L, 1)).c_str());
  return 1;
}

int FsDirname(lua_State* L) {
  lua_pushstring(L, Dirname(luaL_checkstring(L, 1)).c_str());
  return 1;
}

// A literal directory inside a glob pattern: its metacharacters escaped.
std::string EscapeGlob(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// glob(pattern): sorted matches; a relative pattern matches in the workdir and returns paths
// relative to it, as a shell would.
int FsGlob(lua_State* L) {
  std::string pattern = luaL_checkstring(L, 1);
  if (pattern.empty()) luaL_argerror(L, 1, "pattern must not be empty");
  std::string base = pattern[0] == '/' ? "" : Runtime::From(L).ResolvePath(L, ".") + "/";
  glob_t g;
  int rc = glob((EscapeGlob(base) + pattern).c_str(), 0, nullptr, &g);
  if (rc != 0 && rc != GLOB_NOMATCH) {
    globfree(&g);
    return PushFailure(L, "fs.glob: " + pattern + ": cannot read a directory");
  }
  std::vector<std::string> matches;
  for (size_t i = 0; rc == 0 && i < g.gl_pathc; ++i)
    matches.emplace_back(g.gl_pathv[i] + base.size());
  globfree(&g);
  PushList(L, matches);
  return 1;
}

// A mode as "0644", "644" or a number (420 == 0644).
mode_t CheckPermissions(lua_State* L, int arg) {
  const char* bad = "mode must be an octal string like \"0644\" or a number up to 4095";
  if (lua_type(L, arg) == LUA_TNUMBER) {
    lua_Integer n = 0;
    if (!lua_isinteger(L, arg) || (n = lua_tointeger(L, arg)) < 0 || n > 07777)
      luaL_argerror(L, arg, bad);
    return static_cast<mode_t>(n);
  }
  std::string text = luaL_checkstring(L, arg);
  if (text.empty() || text.size() > 5 || text.find_first_not_of("01234567") != std::string::npos)
    luaL_argerror(L, arg, bad);
  unsigned long n = std::strtoul(text.c_str(), nullptr, 8);
  if (n > 07777) luaL_argerror(L, arg, bad);
  return static_cast<mode_t>(n);
}

int FsChmod(lua_State* L) {
  std::string path = CheckPath(L, 1);
  mode_t mode = CheckPermissions(L, 2);
  if (Skipped(L, "chmod " + OctalMode(mode) + " " + path)) return PushTrue(L);
  if (chmod(path.c_str(), mode) != 0) return PushErrno(L, "chmod", path);
  return PushTrue(L);
}

// An owner argument: nil (keep), an id, or a name. Returns false with `error` set when a name is
// unknown.
template <typename Id, typename Entry, int (*Lookup)(const char*, Entry*, char*, size_t, Entry**),
          Id Entry::*kField>
bool CheckOwner(lua_State* L, int arg, const char* what, Id& id, std::string& error) {
  id = static_cast<Id>(-1);
  if (lua_isnoneornil(L, arg)) return true;
  if (lua_isinteger(L, arg) && lua_tointeger(L, arg) >= 0) {
    id = static_cast<Id>(lua_tointeger(L, arg));
    return true;
  }
  std::string name = luaL_checkstring(L, arg);
  if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos) {
    id = static_cast<Id>(std::strtoul(name.c_str(), nullptr, 10));
    return true;
  }
  Entry entry, *found = nullptr;
  std::vector<char> buf(16384);
  if (Lookup(name.c_str(), &entry, buf.data(), buf.size(), &found) != 0 || !found) {
    error = std::string("fs.chown: unknown ") + what + " '" + name + "'";
    return false;
  }
  id = entry.*kField;
  return true;
}

int FsChown(lua_State* L) {
  std::string path = CheckPath(L, 1);
  if (lua_isnoneornil(L, 2) && lua_isnoneornil(L, 3)) luaL_argerror(L, 2, "user or group expected");
  uid_t uid;
  gid_t gid;
  std::string error;
  if (!CheckOwner<uid_t, passwd, getpwnam_r, &passwd::pw_uid>(L, 2, "user", uid, error) ||
      !CheckOwner<gid_t, group, getgrnam_r, &group::gr_gid>(L, 3, "group", gid, error))
    return PushFailure(L, error);
  std::string what = "chown " + path + " to " + std::to_string(static_cast<int>(uid)) + ":" +
                     std::to_string(static_cast<int>(gid)) + " (-1 keeps)";
  if (Skipped(L, what)) return PushTrue(L);
  if (chown(path.c_str(), uid, gid) != 0) return PushErrno(L, "chown", path);
  return PushTrue(L);
}

int FsSha256(lua_State* L) {
  std::string path = CheckPath(L, 1);
  return Blocking(
      L, [path] { return Sha256File(path); }, true);
}

}  // namespace

const Module& FsModule() {
  static const Module m = {
      "fs",
      "Files and directories (relative paths resolve against the task's workdir)",
      {
          {"read", FsRead, "read(path) -> string", "The whole file's content"},
          {"read_file", FsRead, "read_file(path) -> string", "Alias of read"},
          {"write", FsWrite, "write(path, content) -> true",
           "Atomic replace (temp file + fsync + rename), keeping mode and owner"},
          {"write_file", FsWrite, "write_file(path, content) -> true", "Alias of write"},
          {"append", FsAppend, "append(path, content) -> true", "Appends, creating the file"},
          {"exists", FsTest<AnyType>, "exists(path) -> bool", "Whether the path exists"},
          {"is_dir", FsTest<DirType>, "is_dir(path) -> bool", "Whether the path is a directory"},
          {"is_file", FsTest<FileType>, "is_file(path) -> bool",
           "Whether the path is a regular file"},
          {"mkdir", FsMkdir, "mkdir(path) -> true",
           "Creates a directory and its parents (mkdir -p)"},
          {"rm", FsRm, "rm(path) -> true", "Removes a file or an empty directory"},
          {"rm_r", FsRmR, "rm_r(path) -> true", "Removes a tree (rm -rf); a missing path is fine"},
          {"rmr", FsRmR, "rmr(path) -> true", "Alias of rm_r"},
          {"ls", FsLs, "ls(path?) -> {names}", "Sorted entry names of a directory"},
          {"list", FsLs, "list(path?) -> {names}", "Alias of ls"},
          {"copy", FsCopy, "copy(src, dest) -> true", "Copies a file or a tree (cp -r)"},
          {"move", FsMove, "move(src, dest) -> true", "Renames or moves across filesystems (mv)"},
          {"symlink", FsSymlink, "symlink(target, link) -> true",
           "Creates link pointing at target"},
          {"stat", FsStat, "stat(path) -> {size, mode, mode_num, is_dir, is_file, is_link, ...}",
           "File metadata"},
          {"size", FsSize, "size(path) -> bytes", "File size in bytes"},
          {"tmpname", FsTmpname, "tmpname(prefix?) -> path", "Creates a new empty temporary file"},
          {"basename", FsBasename, "basename(path) -> string", "Last path component"},
          {"dirname", FsDirname, "dirname(path) -> string", "All but the last path component"},
          {"glob", FsGlob, "glob(pattern) -> {paths}", "Sorted paths matching a shell pattern"},
          {"chmod", FsChmod, "chmod(path, mode) -> true", "Sets permissions (\"0644\" or 420)"},
          {"chown", FsChown, "chown(path, user?, group?) -> true", "Sets owner and/or group"},
          {"sha256", FsSha256, "sha256(path) -> hex", "SHA-256 of a file's content"},
      },
  };
  return m;
}

}  // namespace sloth
