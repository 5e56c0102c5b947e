// aws, gcp and azure: their CLIs (aws, gcloud, az) with JSON output parsed into result.data.
// A call runs under --check only when it only reads (describe/list/get/show...); the S3
// copies run with --dryrun instead; everything else is skipped.
#include <string>

#include <lua.hpp>

#include "lua/module.h"
#include "lua/modules/cli_tool.h"

namespace sloth {
namespace {

int AwsRun(lua_State* L) { return RunToolFromLua(L, "aws"); }
int GcloudRun(lua_State* L) { return RunToolFromLua(L, "gcloud"); }
int AzRun(lua_State* L) { return RunToolFromLua(L, "az"); }

// call(args, opts): the tool's arguments, the common flags, JSON output, read-only detection.
// The module text defines FLAGS(o) -> list and READS(args) -> bool before this.
constexpr char kCallLua[] = R"lua(
function M.call(args, o)
  o = o or {}
  local full = {}
  for _, a in ipairs(args) do full[#full + 1] = a end
  for _, a in ipairs(FLAGS(o)) do full[#full + 1] = a end
  return run(full, { workdir = o.workdir, env = o.env, timeout = o.timeout, stdin = o.stdin,
                     json = true, read_only = (o.read_only or READS(args)) and true or false })
end
)lua";

constexpr char kAwsLua[] = R"lua(
function FLAGS(o)
  local f = { "--output", "json" }
  if o.region then push(f, "--region", o.region) end
  if o.profile then push(f, "--profile", o.profile) end
  return f
end
function READS(args)
  local verb = args[2] or ""
  return verb:match("^describe%-") or verb:match("^list%-") or verb:match("^get%-") or args[1] == "s3" and verb == "ls"
end
)lua";

constexpr char kAwsExtraLua[] = R"lua(
local function s3(verb, src, dest, o)
  o = o or {}
  local args = { "s3", verb, src, dest }
  if o.delete then push(args, "--delete") end
  for _, e in ipairs(list(o.exclude)) do push(args, "--exclude", e) end
  if o.region then push(args, "--region", o.region) end
  if o.profile then push(args, "--profile", o.profile) end
  local check = {}
  for i, a in ipairs(args) do check[i] = a end
  return run(args, { workdir = o.workdir, env = o.env, check_args = push(check, "--dryrun") })
end

function M.s3_sync(src, dest, o) return s3("sync", src, dest, o) end
function M.s3_cp(src, dest, o) return s3("cp", src, dest, o) end
function M.caller_identity(o) return M.call({ "sts", "get-caller-identity" }, o) end
)lua";

constexpr char kGcpLua[] = R"lua(
function FLAGS(o)
  local f = { "--format=json", "--quiet" }
  if o.project then push(f, "--project", o.project) end
  return f
end
function READS(args)
  for _, a in ipairs(args) do
    if a == "list" or a == "describe" or a == "get-value" then return true end
  end
  return false
end
function M.current_project(o)
  local r = M.call({ "config", "get-value", "project" }, o)
  r.value = r.data
  return r
end
)lua";

constexpr char kAzureLua[] = R"lua(
function FLAGS(o)
  local f = { "--output", "json" }
  if o.subscription then push(f, "--subscription", o.subscription) end
  return f
end
function READS(args)
  for _, a in ipairs(args) do
    if a == "list" or a == "show" then return true end
  end
  return false
end
function M.account(o) return M.call({ "account", "show" }, o) end
)lua";

// FLAGS and READS are locals of the module's chunk (declared before the text that uses them).
std::string CloudLua(const char* specific, const char* extra = "") {
  return ToolLua("local FLAGS, READS\n") + std::string(specific) + kCallLua + extra;
}

}  // namespace

const Module& AwsModule() {
  static const std::string code = CloudLua(kAwsLua, kAwsExtraLua);
  static const Module m = {
      "aws",
      "The aws CLI with JSON output; s3 copies with --dryrun under --check",
      {
          {"cli", AwsRun, "cli(args, opts?) -> result", "Runs aws with an argument list"},
          {"call", nullptr, "call(args, opts?) -> result",
           "aws ARGS --output json [--region] [--profile]; result.data"},
          {"s3_sync", nullptr, "s3_sync(src, dest, opts?) -> result", "{delete, exclude}"},
          {"s3_cp", nullptr, "s3_cp(src, dest, opts?) -> result", "aws s3 cp"},
          {"caller_identity", nullptr, "caller_identity(opts?) -> result",
           "sts get-caller-identity"},
      },
      {},
      code.c_str(),
  };
  return m;
}

const Module& GcpModule() {
  static const std::string code = CloudLua(kGcpLua);
  static const Module m = {
      "gcp",
      "The gcloud CLI with JSON output",
      {
          {"cli", GcloudRun, "cli(args, opts?) -> result", "Runs gcloud with an argument list"},
          {"call", nullptr, "call(args, opts?) -> result",
           "gcloud ARGS --format=json --quiet [--project]; result.data"},
          {"current_project", nullptr, "current_project(opts?) -> result", "result.value"},
      },
      {},
      code.c_str(),
  };
  return m;
}

const Module& AzureModule() {
  static const std::string code = CloudLua(kAzureLua);
  static const Module m = {
      "azure",
      "The az CLI with JSON output",
      {
          {"cli", AzRun, "cli(args, opts?) -> result", "Runs az with an argument list"},
          {"call", nullptr, "call(args, opts?) -> result",
           "az ARGS --output json [--subscription]; result.data"},
          {"account", nullptr, "account(opts?) -> result", "az account show"},
      },
      {},
      code.c_str(),
  };
  return m;
}

}  // namespace sloth
