// git: clones and repository objects over the git command line (argument lists, run through
// the exec layer so the task yields). Credentials and ssh settings come from the user's own git
// configuration and environment; git never prompts (GIT_TERMINAL_PROMPT=0).
#include <lua.hpp>

#include "lua/module.h"
#include "lua/modules/cli_tool.h"

namespace sloth {
namespace {

int GitRun(lua_State* L) { return RunToolFromLua(L, "git"); }

// The repository logic is a sequence of git commands and string parsing, clearer in Lua.
constexpr char kGitLua[] = R"lua(
local M = ...
local run, log = M.cli, log
local RO = { read_only = true }

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

local function fail(fn, r)
  local msg = r.error or trim(r.stderr ~= "" and r.stderr or r.stdout)
  error(("git.%s: `%s` failed (exit %d): %s"):format(fn, r.command, r.exit_code, msg), 0)
end

local function must(fn, r)
  if not r.success and not r.skipped then fail(fn, r) end
  return r
end

-- git -C dir args...; o = {read_only, env, stream}
local function git(dir, args, o)
  o = o or {}
  local argv = { "-C", dir }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local env = { GIT_TERMINAL_PROMPT = "0" }
  for k, v in pairs(o.env or {}) do env[k] = v end
  return run(argv, { env = env, read_only = o.read_only, stream = o.stream })
end

local function check_string(fn, v, what)
  if type(v) ~= "string" or v == "" then
    error(("git.%s: %s must be a non-empty string"):format(fn, what), 0)
  end
  if v:sub(1, 1) == "-" then error(("git.%s: %s may not start with '-'"):format(fn, what), 0) end
end

local Repo = {}
Repo.__index = Repo
Repo.__tostring = function(r) return "git repository " .. r.path end

local function open(path, url) return setmetatable({ path = path, url = url }, Repo) end

local function toplevel(dir)
  local r = git(dir, { "rev-parse", "--show-toplevel" }, RO)
  if r.success then return trim(r.stdout) end
end

-- The origin URL when `dir` is itself the top of a work tree ("" without an origin), else nil.
local function origin_of(dir)
  local p = git(dir, { "rev-parse", "--show-prefix" }, RO)
  if not p.success or p.stdout:match("%S") then return nil end
  local r = git(dir, { "remote", "get-url", "origin" }, RO)
  return r.success and trim(r.stdout) or ""
end

local function same_remote(a, b)
  local function norm(u) return (u:gsub("/+$", ""):gsub("%.git$", "")) end
  return norm(a) == norm(b)
end

local function default_dest(url)
  local base = url:gsub("/+$", ""):match("([^/:]+)$") or "repo"
  return (base:gsub("%.git$", ""))
end

-- An existing clone of the same remote is fetched instead of cloned again.
local function refresh(url, dest, opts)
  must("clone", git(dest, { "fetch", "--prune", "origin" }))
  local repo = open(toplevel(dest), url)
  repo.fetched = true
  log.info("git: " .. dest .. " is already a clone of " .. url .. "; fetched")
  if opts.branch then repo:checkout(opts.branch) end
  return repo
end

function M.clone(url, dest, opts)
  if type(url) == "table" then
    opts = url
    url, dest = opts.url, opts.dest or opts.path or opts.directory
  end
  opts = opts or {}
  check_string("clone", url, "url")
  dest = dest or default_dest(url)
  check_string("clone", dest, "destination")
  local origin = origin_of(dest)
  if origin then
    if not same_remote(origin, url) then
      error(("git.clone: %s is already a git repository of another remote (%s)"):format(
        dest, origin == "" and "no origin" or origin), 0)
    end
    return refresh(url, dest, opts)
  end
  local args = { "clone" }
  if opts.branch then check_string("clone", opts.branch, "branch"); args[#args + 1] = "--branch"; args[#args + 1] = opts.branch end
  if opts.depth then args[#args + 1] = "--depth"; args[#args + 1] = tostring(math.tointeger(opts.depth)) end
  if opts.recursive or opts.submodules then args[#args + 1] = "--recurse-submodules" end
  for _, a in ipairs({ "--", url, dest }) do args[#args + 1] = a end
  local r = must("clone", run(args, { env = { GIT_TERMINAL_PROMPT = "0" } }))
  local repo = open(toplevel(dest) or dest, url)
  repo.cloned, repo.check_mode = not r.skipped, r.check_mode
  return repo
end

function M.open(path)
  check_string("open", path, "path")
  local top = toplevel(path)
  if not top then error("git.open: " .. path .. " is not inside a git work tree", 0) end
  local origin = git(top, { "remote", "get-url", "origin" }, RO)
  return open(top, origin.success and trim(origin.stdout) or nil)
end

local function has_ref(repo, ref)
  return git(repo.path, { "rev-parse", "--verify", "--quiet", ref }, RO).success
end

function Repo:current_branch()
  local r = git(self.path, { "symbolic-ref", "--short", "-q", "HEAD" }, RO)
  if r.success then return trim(r.stdout) end
end

function Repo:current_commit()
  return trim(must("current_commit", git(self.path, { "rev-parse", "HEAD" }, RO)).stdout)
end

-- A local branch, else origin/<ref> (creating a tracking branch), else a tag or commit.
function Repo:checkout(ref)
  check_string("checkout", ref, "ref")
  if self:current_branch() == ref then return self end
  local args
  if has_ref(self, "refs/heads/" .. ref) then
    args = { "checkout", ref, "--" }
  elseif has_ref(self, "refs/remotes/origin/" .. ref) then
    args = { "checkout", "-b", ref, "--track", "origin/" .. ref, "--" }
  elseif has_ref(self, ref .. "^{commit}") then
    args = { "checkout", "--detach", ref, "--" }
  else
    error(("git.checkout: no branch, tag or commit named '%s' in %s"):format(ref, self.path), 0)
  end
  must("checkout", git(self.path, args))
  return self
end

function Repo:fetch(opts)
  opts = opts or {}
  return must("fetch", git(self.path, { "fetch", "--prune", opts.remote or "origin" }))
end

function Repo:pull(opts)
  opts = opts or {}
  local before = self:current_commit()
  local args = { "pull", opts.rebase and "--rebase" or "--ff-only" }
  if opts.remote then args[#args + 1] = opts.remote end
  if opts.branch then args[#args + 1] = opts.branch end
  local r = must("pull", git(self.path, args))
  r.changed = not r.skipped and self:current_commit() ~= before
  return r
end

-- opts.author: "Name <email>" or {name, email}; sets author and committer for this commit.
local function identity(author)
  if author == nil then return {} end
  local name, email
  if type(author) == "table" then name, email = author.name, author.email
  else name, email = tostring(author):match("^%s*(.-)%s*<(.*)>%s*$") end
  if not name then error("git.commit: author must be \"Name <email>\" or {name, email}", 0) end
  return { GIT_AUTHOR_NAME = name, GIT_AUTHOR_EMAIL = email,
           GIT_COMMITTER_NAME = name, GIT_COMMITTER_EMAIL = email }
end

-- Stages everything (unless opts.all == false) and commits; nothing to commit -> changed = false.
function Repo:commit(message, opts)
  opts = opts or {}
  if type(message) ~= "string" or message == "" then error("git.commit: message must be a non-empty string", 0) end
  local env = identity(opts.author)
  local pending
  if opts.all == false then
    pending = not git(self.path, { "diff", "--cached", "--quiet" }, RO).success
  else
    pending = git(self.path, { "status", "--porcelain" }, RO).stdout:match("%S") ~= nil
  end
  if not pending then return { success = true, changed = false } end
  if opts.all ~= false then must("commit", git(self.path, { "add", "-A" })) end
  local r = must("commit", git(self.path, { "commit", "-m", message }, { env = env }))
  r.changed = true
  if not r.skipped then r.commit = self:current_commit() end
  return r
end

function Repo:push(opts)
  opts = opts or {}
  local args = { "push", "--porcelain" }
  if opts.set_upstream then args[#args + 1] = "--set-upstream" end
  if opts.force then args[#args + 1] = "--force-with-lease" end
  if opts.tags then args[#args + 1] = "--tags" end
  if opts.remote or opts.branch then args[#args + 1] = opts.remote or "origin" end
  if opts.branch then args[#args + 1] = opts.branch end
  local r = must("push", git(self.path, args))
  r.changed = r.skipped or r.stdout:match("\n[ %*%+%-]\t") ~= nil or r.stdout:match("^[ %*%+%-]\t") ~= nil
  return r
end

-- Idempotent: an existing tag is left alone (changed = false). opts = {message, ref, push}.
function Repo:tag(name, opts)
  opts = opts or {}
  check_string("tag", name, "tag name")
  if has_ref(self, "refs/tags/" .. name) then return { success = true, changed = false } end
  local args = { "tag" }
  if opts.message then args[#args + 1] = "-a"; args[#args + 1] = "-m"; args[#args + 1] = opts.message end
  args[#args + 1] = name
  if opts.ref then check_string("tag", opts.ref, "ref"); args[#args + 1] = opts.ref end
  local r = must("tag", git(self.path, args))
  if opts.push then must("tag", git(self.path, { "push", "origin", "refs/tags/" .. name })) end
  r.changed = true
  return r
end

-- {clean, branch, upstream, ahead, behind, files = {{status = "M ", path}...}}
function Repo:status()
  local r = must("status", git(self.path, { "status", "--porcelain=v1", "--branch" }, RO))
  local out = { clean = true, files = {}, ahead = 0, behind = 0 }
  for line in r.stdout:gmatch("[^\n]+") do
    if line:sub(1, 3) == "## " then
      local head = line:sub(4)
      out.branch = head:match("^(.-)%.%.%.") or head:match("^(%S+)")
      out.upstream = head:match("%.%.%.(%S+)")
      out.ahead = tonumber(head:match("ahead (%d+)")) or 0
      out.behind = tonumber(head:match("behind (%d+)")) or 0
    else
      out.files[#out.files + 1] = { status = line:sub(1, 2), path = line:sub(4) }
      out.clean = false
    end
  end
  return out
end

-- The last n commits (default 10), newest first: {hash, author, email, time, message}.
function Repo:log(n)
  n = math.tointeger(n or 10) or error("git.log: n must be an integer", 0)
  local fmt = "--format=%H%x1f%an%x1f%ae%x1f%at%x1f%s%x1e"
  local r = must("log", git(self.path, { "log", "-n", tostring(n), fmt }, RO))
  local out = {}
  for rec in r.stdout:gmatch("([^\30]+)\30") do
    local hash, author, email, time, message = trim(rec):match("^(%x+)\31(.-)\31(.-)\31(%d+)\31(.*)$")
    if hash then
      out[#out + 1] = { hash = hash, author = author, email = email, time = tonumber(time), message = message }
    end
  end
  return out
end

-- The free-function shapes: git.checkout(repo_or_path, ref), git.status(repo)...
local function as_repo(fn, r)
  if getmetatable(r) == Repo then return r end
  if type(r) == "string" then return open(r) end
  if type(r) == "table" and type(r.path) == "string" then return setmetatable(r, Repo) end
  error("git." .. fn .. ": expected a repository (from git.clone/git.open) or a path", 0)
end

for _, name in ipairs({ "checkout", "fetch", "pull", "commit", "push", "tag", "status", "log",
                        "current_commit", "current_branch" }) do
  M[name] = function(repo, ...)
    local r = as_repo(name, repo)
    return r[name](r, ...)
  end
end
)lua";

}  // namespace

const Module& GitModule() {
  static const Module m = {
      "git",
      "git over its command line: idempotent clone, repository objects, checkout/pull/commit/push",
      {
          {"cli", GitRun, "cli(args, opts?) -> result", "Runs git with an argument list"},
          {"clone", nullptr, "clone(url, dest?, opts?) -> repo",
           "Clones; an existing clone of the same remote is fetched. {branch, depth, recursive}"},
          {"open", nullptr, "open(path) -> repo", "The repository containing path"},
          {"checkout", nullptr, "checkout(repo, ref) -> repo",
           "Local branch, else origin/<ref> (tracking), else tag or commit"},
          {"fetch", nullptr, "fetch(repo, opts?) -> result", "git fetch --prune"},
          {"pull", nullptr, "pull(repo, opts?) -> result", "git pull --ff-only; result.changed"},
          {"commit", nullptr, "commit(repo, message, opts?) -> result",
           "Stages all and commits; nothing to commit -> changed = false"},
          {"push", nullptr, "push(repo, opts?) -> result", "git push; {remote, branch, tags}"},
          {"tag", nullptr, "tag(repo, name, opts?) -> result", "Creates a tag unless it exists"},
          {"status", nullptr, "status(repo) -> {clean, branch, files...}", "Work tree status"},
          {"log", nullptr, "log(repo, n?) -> commits", "The last n commits"},
          {"current_commit", nullptr, "current_commit(repo) -> sha", "HEAD's full hash"},
          {"current_branch", nullptr, "current_branch(repo) -> name|nil", "The checked-out branch"},
      },
      {},
      kGitLua,
  };
  return m;
}

}  // namespace sloth
