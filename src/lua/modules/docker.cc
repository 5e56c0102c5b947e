// docker: images and containers over the docker CLI; ps/images/inspect parse docker's JSON.
// Docker has no dry run, so under --check every change is skipped (reported as skipped).
#include <string>

#include <lua.hpp>

#include "lua/module.h"
#include "lua/modules/cli_tool.h"

namespace sloth {
namespace {

int DockerRun(lua_State* L) { return RunToolFromLua(L, "docker"); }

constexpr char kDockerLua[] = R"lua(
local function docker(args, o, extra)
  o = o or {}
  local ro = { workdir = o.workdir, env = o.env, timeout = o.timeout, stdin = o.stdin }
  for k, v in pairs(extra or {}) do ro[k] = v end
  return run(args, ro)
end

local RO = { read_only = true }
local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- {tag | tags, file, context (default "."), build_args, target, no_cache, platform}
function M.build(o)
  o = opts_of(o, "context")
  local args = { "build" }
  for _, t in ipairs(list(o.tag or o.tags)) do push(args, "--tag", t) end
  if o.file then push(args, "--file", o.file) end
  for _, k in ipairs(sorted_keys(o.build_args)) do push(args, "--build-arg", k .. "=" .. scalar(o.build_args[k])) end
  if o.target then push(args, "--target", o.target) end
  if o.platform then push(args, "--platform", o.platform) end
  if o.no_cache then push(args, "--no-cache") end
  push(args, o.context or ".")
  return docker(args, o, { stream = o.quiet ~= true })
end

-- {image, name, detach, rm, ports, env, volumes, network, user, workdir_in, entrypoint, args | command}
function M.run(o)
  if type(o) == "string" then o = { image = o } end
  local args = { "run" }
  if o.detach then push(args, "--detach") end
  if o.rm then push(args, "--rm") end
  if o.name then push(args, "--name", o.name) end
  for _, p in ipairs(list(o.ports)) do push(args, "--publish", tostring(p)) end
  for _, k in ipairs(sorted_keys(o.environment or o.env_vars)) do
    push(args, "--env", k .. "=" .. scalar((o.environment or o.env_vars)[k]))
  end
  for _, v in ipairs(list(o.volumes)) do push(args, "--volume", v) end
  if o.network then push(args, "--network", o.network) end
  if o.user then push(args, "--user", o.user) end
  if o.restart then push(args, "--restart", o.restart) end
  if o.entrypoint then push(args, "--entrypoint", o.entrypoint) end
  push(args, o.image or error("docker.run: image is required", 0))
  for _, a in ipairs(list(o.args or o.command)) do push(args, a) end
  local r = docker(args, o)
  if o.detach and r.success then r.container_id = trim(r.stdout) end
  return r
end

function M.stop(name, o) return docker({ "stop", name }, o) end
function M.start(name, o) return docker({ "start", name }, o) end
function M.pull(image, o) return docker({ "pull", image }, o) end
function M.push(image, o) return docker({ "push", image }, o) end
function M.tag(source, target, o) return docker({ "tag", source, target }, o) end

function M.rm(name, o)
  local args = { "rm", name }
  if o and o.force then table.insert(args, 2, "--force") end
  return docker(args, o)
end

function M.rmi(image, o)
  local args = { "rmi", image }
  if o and o.force then table.insert(args, 2, "--force") end
  return docker(args, o)
end

-- cmd: a list (argv in the container) or a string (sh -c in the container).
function M.exec(container, cmd, o)
  local args = { "exec", container }
  if type(cmd) == "string" then push(args, "sh", "-c", cmd) else push(args, table.unpack(cmd)) end
  return docker(args, o)
end

-- result.containers: one table per container (docker ps --format '{{json .}}').
function M.ps(o)
  o = o or {}
  local args = { "ps", "--format", "{{json .}}", "--no-trunc" }
  if o.all then push(args, "--all") end
  for _, f in ipairs(list(o.filter)) do push(args, "--filter", f) end
  local r = docker(args, o, { read_only = true, json = "lines" })
  r.containers = r.data
  return r
end

function M.images(o)
  o = o or {}
  local r = docker({ "images", "--format", "{{json .}}" }, o, { read_only = true, json = "lines" })
  r.images = r.data
  return r
end

-- result.object: the first (only) inspected object.
function M.inspect(name, o)
  local r = docker({ "inspect", name }, o, { read_only = true, json = true })
  if type(r.data) == "table" then r.object = r.data[1] end
  return r
end

function M.logs(container, o)
  o = o or {}
  local args = { "logs", container }
  if o.tail then push(args, "--tail", tostring(o.tail)) end
  return docker(args, o, RO)
end

-- docker compose: {file, project, detach (default true), services}
local function compose(o, verb, ...)
  o = opts_of(o, "file")
  local args = { "compose" }
  for _, f in ipairs(list(o.file or o.files)) do push(args, "--file", f) end
  if o.project then push(args, "--project-name", o.project) end
  push(args, verb, ...)
  return args, o
end

function M.compose_up(o)
  local args
  args, o = compose(o, "up")
  if o.detach ~= false then push(args, "--detach") end
  for _, s in ipairs(list(o.services)) do push(args, s) end
  return docker(args, o, { stream = o.quiet ~= true })
end

function M.compose_down(o)
  local args
  args, o = compose(o, "down")
  return docker(args, o)
end
)lua";

}  // namespace

const Module& DockerModule() {
  static const std::string code = ToolLua(kDockerLua);
  static const Module m = {
      "docker",
      "The docker CLI: build/run/stop/rm/pull/push/exec, ps/images/inspect as data, compose",
      {
          {"cli", DockerRun, "cli(args, opts?) -> result", "Runs docker with an argument list"},
          {"build", nullptr, "build(opts) -> result", "{tag, file, context, build_args, target}"},
          {"run", nullptr, "run(opts) -> result",
           "{image, name, detach, rm, ports, environment, volumes, network, args}"},
          {"start", nullptr, "start(name, opts?) -> result", "docker start"},
          {"stop", nullptr, "stop(name, opts?) -> result", "docker stop"},
          {"rm", nullptr, "rm(name, opts?) -> result", "docker rm; {force}"},
          {"rmi", nullptr, "rmi(image, opts?) -> result", "docker rmi; {force}"},
          {"pull", nullptr, "pull(image, opts?) -> result", "docker pull"},
          {"push", nullptr, "push(image, opts?) -> result", "docker push"},
          {"tag", nullptr, "tag(source, target, opts?) -> result", "docker tag"},
          {"exec", nullptr, "exec(container, cmd, opts?) -> result", "A command in a container"},
          {"ps", nullptr, "ps(opts?) -> result", "result.containers; {all, filter}"},
          {"images", nullptr, "images(opts?) -> result", "result.images"},
          {"inspect", nullptr, "inspect(name, opts?) -> result", "result.object"},
          {"logs", nullptr, "logs(container, opts?) -> result", "{tail}"},
          {"compose_up", nullptr, "compose_up(opts?) -> result", "docker compose up --detach"},
          {"compose_down", nullptr, "compose_down(opts?) -> result", "docker compose down"},
      },
      {},
      code.c_str(),
  };
  return m;
}

}  // namespace sloth
