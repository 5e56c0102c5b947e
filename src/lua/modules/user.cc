// user and group: local accounts, managed with useradd/usermod/userdel and groupadd/groupmod/
// groupdel (through sudo -n when not root). Idempotent: the current entry is read with
// getpwnam_r/getgrouplist and only what differs is changed; check mode reports the change it
// would make. Lookups (exists, get) only read, so they run in check mode too.
#include <grp.h>
#include <pwd.h>
#include <shadow.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <lua.hpp>
#include <nlohmann/json.hpp>

#include "lua/lua_util.h"
#include "lua/module.h"
#include "lua/modules/host_util.h"
#include "lua/modules/stack.h"
#include "lua/runtime.h"

namespace sloth {
namespace {

// --- account database -----------------------------------------------------------------------

struct Account {
  std::string name, home, shell, comment;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<std::string> groups;  // supplementary groups, by name, sorted
};

std::string GroupNameOf(gid_t gid) {
  std::vector<char> buf(16384);
  struct group gr {};
  struct group* found = nullptr;
  if (getgrgid_r(gid, &gr, buf.data(), buf.size(), &found) == 0 && found) return found->gr_name;
  return std::to_string(gid);
}

struct GroupEntry {
  std::string name;
  gid_t gid = 0;
  std::vector<std::string> members;
};

std::optional<GroupEntry> LookupGroup(const std::string& name) {
  std::vector<char> buf(65536);
  struct group gr {};
  struct group* found = nullptr;
  if (getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found)
    return std::nullopt;
  GroupEntry g{found->gr_name, found->gr_gid, {}};
  for (char** m = found->gr_mem; m && *m; ++m) g.members.emplace_back(*m);
  return g;
}

std::optional<Account> LookupUser(const std::string& name) {
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* found = nullptr;
  if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found)
    return std::nullopt;
  Account a{found->pw_name,
            found->pw_dir,
            found->pw_shell,
            found->pw_gecos,
            found->pw_uid,
            found->pw_gid,
            {}};
  int n = 64;
  std::vector<gid_t> gids(n);
  while (getgrouplist(a.name.c_str(), a.gid, gids.data(), &n) < 0) gids.resize(n);
  gids.resize(n);
  for (gid_t g : gids)
    if (g != a.gid) a.groups.push_back(GroupNameOf(g));
  std::sort(a.groups.begin(), a.groups.end());
  return a;
}

// --- arguments ------------------------------------------------------------------------------

// The wanted state of an account; unset fields are left as they are.
struct UserSpec {
  std::string name;
  std::optional<lua_Integer> uid;
  std::optional<std::string> group;  // primary group: a name or a numeric gid
  std::optional<std::vector<std::string>> groups;
  bool append = false;  // groups are added to the current ones instead of replacing them
  std::optional<std::string> home, shell, comment, password_hash;
  bool system = false;
  std::optional<bool> create_home;
};

std::optional<lua_Integer> OptInteger(lua_State* L, const char* fn, const char* field) {
  lua_getfield(L, 1, field);
  std::optional<lua_Integer> v;
  if (!lua_isnil(L, -1)) {
    int ok = 0;
    v = lua_tointegerx(L, -1, &ok);
    if (!ok || *v < 0) luaL_error(L, "%s: %s must be a non-negative whole number", fn, field);
  }
  lua_pop(L, 1);
  return v;
}

// The name at index 1: a string, or the table's `name` (or `username`) field.
std::string NameArg(lua_State* L, const char* fn) {
  std::optional<std::string> name;
  if (lua_type(L, 1) == LUA_TSTRING) {
    name = lua_tostring(L, 1);
  } else if (lua_type(L, 1) == LUA_TTABLE) {
    name = OptString(L, 1, "name");
    if (!name) name = OptString(L, 1, "username");
  } else {
    luaL_error(L, "%s: expected a name or a table with `name`", fn);
  }
  if (!name || name->empty() || name->front() == '-')
    luaL_error(L, "%s: a name is required (not empty, not starting with '-')", fn);
  return *name;
}

UserSpec ParseUser(lua_State* L, const char* fn) {
  UserSpec s;
  s.name = NameArg(L, fn);
  if (lua_type(L, 1) != LUA_TTABLE) return s;
  s.uid = OptInteger(L, fn, "uid");
  s.group = OptString(L, 1, "group");
  if (!s.group) {
    if (auto gid = OptInteger(L, fn, "gid")) s.group = std::to_string(*gid);
  }
  lua_getfield(L, 1, "groups");
  bool has_groups = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (has_groups) {
    s.groups = OptStringList(L, 1, "groups");
    std::sort(s.groups->begin(), s.groups->end());
  }
  s.append = OptBool(L, 1, "append").value_or(false);
  s.home = OptString(L, 1, "home");
  s.shell = OptString(L, 1, "shell");
  s.comment = OptString(L, 1, "comment");
  s.password_hash = OptString(L, 1, "password_hash");
  s.system = OptBool(L, 1, "system").value_or(false);
  s.create_home = OptBool(L, 1, "create_home");
  return s;
}

// A group given by name or number -> its gid, if it exists.
std::optional<gid_t> ResolveGid(const std::string& group) {
  if (!group.empty() && std::all_of(group.begin(), group.end(), ::isdigit))
    return static_cast<gid_t>(std::stoul(group));
  if (auto g = LookupGroup(group)) return g->gid;
  return std::nullopt;
}

// --- results --------------------------------------------------------------------------------

std::string Join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

void PushStrings(lua_State* L, const std::vector<std::string>& items) {
  lua_createtable(L, static_cast<int>(items.size()), 0);
  for (size_t i = 0; i < items.size(); ++i) {
    lua_pushstring(L, items[i].c_str());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  MarkArray(L, -1);
}

void PushAccount(lua_State* L, const Account& a) {
  lua_newtable(L);
  lua_pushstring(L, a.name.c_str());
  lua_setfield(L, -2, "name");
  lua_pushinteger(L, a.uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, a.gid);
  lua_setfield(L, -2, "gid");
  lua_pushstring(L, GroupNameOf(a.gid).c_str());
  lua_setfield(L, -2, "group");
  lua_pushstring(L, a.home.c_str());
  lua_setfield(L, -2, "home");
  lua_pushstring(L, a.shell.c_str());
  lua_setfield(L, -2, "shell");
  lua_pushstring(L, a.comment.c_str());
  lua_setfield(L, -2, "comment");
  PushStrings(L, a.groups);
  lua_setfield(L, -2, "groups");
}

// Pushes {changed, msg, name, changes = {...}, check_mode?} twice; logs the message.
int PushResult(lua_State* L, const char* module, const std::string& name, bool changed,
               const std::string& msg, const std::vector<std::string>& changes = {}) {
  Runtime& rt = Runtime::From(L);
  lua_newtable(L);
  lua_pushboolean(L, changed);
  lua_setfield(L, -2, "changed");
  lua_pushstring(L, msg.c_str());
  lua_setfield(L, -2, "msg");
  lua_pushstring(L, name.c_str());
  lua_setfield(L, -2, "name");
  PushStrings(L, changes);
  lua_setfield(L, -2, "changes");
  if (rt.CheckMode(L)) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "check_mode");
  }
  rt.Log(L, LogLevel::kInfo, std::string(rt.CheckMode(L) ? "[check] " : "") + module + ": " + msg);
  // Twice, like file_ops: `local ok, res = user.create{...}` (the seed's shape) and
  // `local res = user.create{...}` both work.
  lua_pushvalue(L, -1);
  return 2;
}

void RecordUser(lua_State* L, const std::string& name) {
  auto a = LookupUser(name);
  nlohmann::json props = nlohmann::json::object();
  if (a) {
    props = {{"uid", a->uid},
             {"gid", a->gid},
             {"home", a->home},
             {"shell", a->shell},
             {"groups", a->groups}};
  }
  RecordManagedResource(L, "user", name, "user", props);
}

void RecordGroup(lua_State* L, const std::string& name) {
  auto g = LookupGroup(name);
  nlohmann::json props = nlohmann::json::object();
  if (g) props = {{"gid", g->gid}};
  RecordManagedResource(L, "group", name, "group", props);
}

// Runs a change command; raises with its output when it fails, else `after` pushes the result.
int RunChange(lua_State* L, const char* fn, std::vector<std::string> argv,
              std::function<int(lua_State*)> after) {
  ProcessSpec spec = PrivilegedSpec(L, std::move(argv));
  std::string cmd = Join(spec.argv, " ");
  return RunHostCommand(L, spec, [fn, cmd, after](lua_State* co, const ProcessExit& e) {
    if (e.exit_code != 0) {
      luaL_error(co, "%s: `%s` failed with exit code %d: %s", fn, cmd.c_str(), e.exit_code,
                 CommandOutputTail(e).c_str());
    }
    return after(co);
  });
}

// --- user -----------------------------------------------------------------------------------

std::vector<std::string> UseraddArgs(const UserSpec& s) {
  std::vector<std::string> a = {"useradd"};
  if (s.uid) a.insert(a.end(), {"-u", std::to_string(*s.uid)});
  if (s.group) a.insert(a.end(), {"-g", *s.group});
  if (s.groups && !s.groups->empty()) a.insert(a.end(), {"-G", Join(*s.groups, ",")});
  if (s.home) a.insert(a.end(), {"-d", *s.home});
  if (s.shell) a.insert(a.end(), {"-s", *s.shell});
  if (s.comment) a.insert(a.end(), {"-c", *s.comment});
  if (s.password_hash) a.insert(a.end(), {"-p", *s.password_hash});
  if (s.system) a.push_back("-r");
  // Like Ansible: a home directory for ordinary users unless told otherwise.
  a.push_back(s.create_home.value_or(!s.system) ? "-m" : "-M");
  a.insert(a.end(), {"--", s.name});
  return a;
}

// usermod arguments for what differs between `s` and `cur`; `changes` names each difference.
std::vector<std::string> UsermodArgs(lua_State* L, const UserSpec& s, const Account& cur,
                                     std::vector<std::string>& changes) {
  std::vector<std::string> a = {"usermod"};
  if (s.uid && static_cast<uid_t>(*s.uid) != cur.uid) {
    a.insert(a.end(), {"-u", std::to_string(*s.uid)});
    changes.push_back("uid " + std::to_string(cur.uid) + " -> " + std::to_string(*s.uid));
  }
  if (s.group) {
    auto gid = ResolveGid(*s.group);
    if (!gid) luaL_error(L, "user.create: group %s does not exist", s.group->c_str());
    if (*gid != cur.gid) {
      a.insert(a.end(), {"-g", *s.group});
      changes.push_back("group " + GroupNameOf(cur.gid) + " -> " + *s.group);
    }
  }
  if (s.groups) {
    std::vector<std::string> missing;
    std::set_difference(s.groups->begin(), s.groups->end(), cur.groups.begin(), cur.groups.end(),
                        std::back_inserter(missing));
    bool differs = s.append ? !missing.empty() : *s.groups != cur.groups;
    if (differs) {
      if (s.append) a.push_back("-a");
      a.insert(a.end(), {"-G", Join(s.append ? missing : *s.groups, ",")});
      changes.push_back("groups " + Join(cur.groups, ",") + " -> " + Join(*s.groups, ","));
    }
  }
  auto field = [&](const std::optional<std::string>& want, const std::string& have,
                   const char* flag, const char* what) {
    if (!want || *want == have) return;
    a.insert(a.end(), {flag, *want});
    changes.push_back(std::string(what) + " " + have + " -> " + *want);
  };
  field(s.home, cur.home, "-d", "home");
  field(s.shell, cur.shell, "-s", "shell");
  field(s.comment, cur.comment, "-c", "comment");
  a.insert(a.end(), {"--", s.name});
  return a;
}

// Creates the account, or brings an existing one to the given uid/group/groups/home/shell/
// comment (password_hash, system and create_home only apply when creating).
int CreateOrModify(lua_State* L, const char* fn, bool must_exist, UserSpec s) {
  Runtime& rt = Runtime::From(L);
  auto cur = LookupUser(s.name);
  if (!cur && must_exist) luaL_error(L, "%s: user %s does not exist", fn, s.name.c_str());
  if (!cur) {
    if (rt.CheckMode(L)) {
      RecordUser(L, s.name);
      return PushResult(L, "user", s.name, true, "would create user " + s.name, {"create"});
    }
    std::string name = s.name;
    return RunChange(L, fn, UseraddArgs(s), [name](lua_State* co) {
      RecordUser(co, name);
      return PushResult(co, "user", name, true, "created user " + name, {"create"});
    });
  }
  std::vector<std::string> changes;
  std::vector<std::string> args = UsermodArgs(L, s, *cur, changes);
  if (changes.empty()) {
    RecordUser(L, s.name);
    return PushResult(L, "user", s.name, false, "user " + s.name + " is up to date");
  }
  std::string msg = "user " + s.name + ": " + Join(changes);
  if (rt.CheckMode(L)) {
    RecordUser(L, s.name);
    return PushResult(L, "user", s.name, true, "would change " + msg, changes);
  }
  std::string name = s.name;
  return RunChange(L, fn, args, [name, msg, changes](lua_State* co) {
    RecordUser(co, name);
    return PushResult(co, "user", name, true, "changed " + msg, changes);
  });
}

int UserCreate(lua_State* L) {
  return CreateOrModify(L, "user.create", false, ParseUser(L, "user.create"));
}
int UserModify(lua_State* L) {
  return CreateOrModify(L, "user.modify", true, ParseUser(L, "user.modify"));
}

// set_shell(name, shell) / set_home(name, home): modify with one field.
int SetField(lua_State* L, const char* fn, std::optional<std::string> UserSpec::*field) {
  UserSpec s;
  s.name = NameArg(L, fn);
  s.*field = std::string(luaL_checkstring(L, 2));
  return CreateOrModify(L, fn, true, s);
}
int UserSetShell(lua_State* L) { return SetField(L, "user.set_shell", &UserSpec::shell); }
int UserSetHome(lua_State* L) { return SetField(L, "user.set_home", &UserSpec::home); }

// One change that is needed or not: reports "already" when not, "would" in check mode, else
// runs `argv` and reports `done`.
int ApplyChange(lua_State* L, const char* fn, const char* module, const std::string& name,
                bool needed, const std::string& done, const std::string& already,
                std::vector<std::string> argv) {
  if (!needed) return PushResult(L, module, name, false, already);
  if (Runtime::From(L).CheckMode(L))
    return PushResult(L, module, name, true, "would change: " + done, {done});
  return RunChange(L, fn, std::move(argv), [module, name, done](lua_State* co) {
    return PushResult(co, module, name, true, done, {done});
  });
}

bool IsMember(const std::string& user, const std::string& group) {
  auto a = LookupUser(user);
  return a && std::find(a->groups.begin(), a->groups.end(), group) != a->groups.end();
}

// Membership changes; `user_first` says which argument is the user.
int Membership(lua_State* L, const char* fn, bool user_first, bool add) {
  std::string user = luaL_checkstring(L, user_first ? 1 : 2);
  std::string group = luaL_checkstring(L, user_first ? 2 : 1);
  if (!LookupUser(user)) luaL_error(L, "%s: user %s does not exist", fn, user.c_str());
  if (!LookupGroup(group)) luaL_error(L, "%s: group %s does not exist", fn, group.c_str());
  bool member = IsMember(user, group);
  std::string what = user + (add ? " added to " : " removed from ") + group;
  std::string already = user + (add ? " is a member of " : " is not a member of ") + group;
  std::vector<std::string> argv =
      add ? std::vector<std::string>{"usermod", "-a", "-G", group, "--", user}
          : std::vector<std::string>{"gpasswd", "-d", user, group};
  return ApplyChange(L, fn, user_first ? "user" : "group", user_first ? user : group, add != member,
                     what, already, argv);
}
int UserAddToGroup(lua_State* L) { return Membership(L, "user.add_to_group", true, true); }
int UserRemoveFromGroup(lua_State* L) {
  return Membership(L, "user.remove_from_group", true, false);
}
int GroupAddMember(lua_State* L) { return Membership(L, "group.add_member", false, true); }
int GroupRemoveMember(lua_State* L) { return Membership(L, "group.remove_member", false, false); }

// lock/unlock: the shadow entry's password starts with "!" when locked (usermod -L/-U).
int Lock(lua_State* L, const char* fn, bool lock) {
  std::string name = NameArg(L, fn);
  std::vector<char> buf(16384);
  struct spwd sp {};
  struct spwd* found = nullptr;
  if (getspnam_r(name.c_str(), &sp, buf.data(), buf.size(), &found) != 0 || !found) {
    luaL_error(L, "%s: cannot read the shadow entry of %s (no such user, or not root)", fn,
               name.c_str());
  }
  bool locked = found->sp_pwdp && found->sp_pwdp[0] == '!';
  return ApplyChange(L, fn, "user", name, lock != locked,
                     (lock ? "locked user " : "unlocked user ") + name,
                     "user " + name + (lock ? " is locked" : " is not locked"),
                     {"usermod", lock ? "-L" : "-U", "--", name});
}
int UserLock(lua_State* L) { return Lock(L, "user.lock", true); }
int UserUnlock(lua_State* L) { return Lock(L, "user.unlock", false); }

int UserList(lua_State* L) {
  std::vector<std::string> names;
  setpwent();
  while (struct passwd* pw = getpwent()) names.emplace_back(pw->pw_name);
  endpwent();
  PushStrings(L, names);
  return 1;
}

int UserRemove(lua_State* L) {
  std::string name = NameArg(L, "user.remove");
  bool remove_home = lua_istable(L, 1) && OptBool(L, 1, "remove_home").value_or(false);
  if (!LookupUser(name)) return PushResult(L, "user", name, false, "user " + name + " is absent");
  if (Runtime::From(L).CheckMode(L))
    return PushResult(L, "user", name, true, "would remove user " + name, {"remove"});
  std::vector<std::string> argv = {"userdel"};
  if (remove_home) argv.push_back("-r");
  argv.insert(argv.end(), {"--", name});
  return RunChange(L, "user.remove", argv, [name](lua_State* co) {
    return PushResult(co, "user", name, true, "removed user " + name, {"remove"});
  });
}

int UserExists(lua_State* L) {
  lua_pushboolean(L, LookupUser(NameArg(L, "user.exists")).has_value());
  return 1;
}

int UserGet(lua_State* L) {
  auto a = LookupUser(NameArg(L, "user.get"));
  if (!a) {
    lua_pushnil(L);
    return 1;
  }
  PushAccount(L, *a);
  return 1;
}

// --- group ----------------------------------------------------------------------------------

int GroupCreate(lua_State* L) {
  std::string name = NameArg(L, "group.create");
  std::optional<lua_Integer> gid;
  bool system = false;
  if (lua_istable(L, 1)) {
    gid = OptInteger(L, "group.create", "gid");
    system = OptBool(L, 1, "system").value_or(false);
  }
  bool check = Runtime::From(L).CheckMode(L);
  auto cur = LookupGroup(name);
  std::vector<std::string> argv;
  std::string msg;
  if (!cur) {
    argv = {"groupadd"};
    if (gid) argv.insert(argv.end(), {"-g", std::to_string(*gid)});
    if (system) argv.push_back("-r");
    msg = "created group " + name;
  } else if (gid && static_cast<gid_t>(*gid) != cur->gid) {
    argv = {"groupmod", "-g", std::to_string(*gid)};
    msg = "changed group " + name + ": gid " + std::to_string(cur->gid) + " -> " +
          std::to_string(*gid);
  } else {
    RecordGroup(L, name);
    return PushResult(L, "group", name, false, "group " + name + " is up to date");
  }
  RecordGroup(L, name);
  if (check) return PushResult(L, "group", name, true, "would have " + msg, {msg});
  argv.insert(argv.end(), {"--", name});
  return RunChange(L, "group.create", argv, [name, msg](lua_State* co) {
    RecordGroup(co, name);
    return PushResult(co, "group", name, true, msg, {msg});
  });
}

int GroupRemove(lua_State* L) {
  std::string name = NameArg(L, "group.remove");
  if (!LookupGroup(name))
    return PushResult(L, "group", name, false, "group " + name + " is absent");
  if (Runtime::From(L).CheckMode(L))
    return PushResult(L, "group", name, true, "would remove group " + name, {"remove"});
  return RunChange(L, "group.remove", {"groupdel", "--", name}, [name](lua_State* co) {
    return PushResult(co, "group", name, true, "removed group " + name, {"remove"});
  });
}

int GroupExists(lua_State* L) {
  lua_pushboolean(L, LookupGroup(NameArg(L, "group.exists")).has_value());
  return 1;
}

int GroupMembers(lua_State* L) {
  auto g = LookupGroup(NameArg(L, "group.members"));
  if (!g) {
    lua_pushnil(L);
    return 1;
  }
  PushStrings(L, g->members);
  return 1;
}

}  // namespace

const Module& UserModule() {
  static const Module m = {
      "user",
      "Local user accounts (useradd/usermod/userdel): idempotent, check mode",
      {
          {"create", UserCreate,
           "create(name | {name|username, uid, group|gid, groups, append, home, shell, comment, "
           "system, create_home, password_hash}) -> result",
           "Creates the user or changes only what differs"},
          {"modify", UserModify, "modify({name, ...}) -> result",
           "Like create, but the user must exist"},
          {"remove", UserRemove, "remove(name | {name, remove_home}) -> result",
           "Removes the user if present"},
          {"delete", UserRemove, "delete(name | {name, remove_home}) -> result", "Alias of remove"},
          {"exists", UserExists, "exists(name) -> bool", "Whether the user exists"},
          {"get", UserGet, "get(name) -> {name, uid, gid, group, home, shell, comment, groups}|nil",
           "The account entry"},
          {"get_info", UserGet, "get_info(name) -> table|nil", "Alias of get"},
          {"list", UserList, "list() -> {names}", "Every account's name"},
          {"set_shell", UserSetShell, "set_shell(name, shell) -> result", "Sets the login shell"},
          {"set_home", UserSetHome, "set_home(name, home) -> result",
           "Sets the home directory (usermod -d; does not move files)"},
          {"add_to_group", UserAddToGroup, "add_to_group(user, group) -> result",
           "Adds a supplementary group"},
          {"remove_from_group", UserRemoveFromGroup, "remove_from_group(user, group) -> result",
           "Removes a supplementary group (gpasswd -d)"},
          {"lock", UserLock, "lock(name) -> result", "Locks the password (usermod -L)"},
          {"unlock", UserUnlock, "unlock(name) -> result", "Unlocks the password (usermod -U)"},
      },
  };
  return m;
}

const Module& GroupModule() {
  static const Module m = {
      "group",
      "Local groups (groupadd/groupmod/groupdel): idempotent, check mode",
      {
          {"create", GroupCreate, "create(name | {name, gid, system}) -> result",
           "Creates the group or sets its gid"},
          {"remove", GroupRemove, "remove(name) -> result", "Removes the group if present"},
          {"delete", GroupRemove, "delete(name) -> result", "Alias of remove"},
          {"exists", GroupExists, "exists(name) -> bool", "Whether the group exists"},
          {"members", GroupMembers, "members(name) -> {names}|nil",
           "The group's listed members (not users whose primary group it is)"},
          {"add_member", GroupAddMember, "add_member(group, user) -> result",
           "Adds the user to the group"},
          {"remove_member", GroupRemoveMember, "remove_member(group, user) -> result",
           "Removes the user from the group"},
      },
  };
  return m;
}

}  // namespace sloth
