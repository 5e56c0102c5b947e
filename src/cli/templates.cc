// The starter projects behind `workflow init`. basic and cicd run on any machine (exec, log and
// plain Lua only); infra and distributed need agents to run (see docs/distributed.md).
#include "cli/templates.h"

namespace sloth {
namespace {

constexpr char kBasic[] = R"lua(-- {{name}}: a starter workflow.
--   sloth-runner run -f {{name}}.sloth               run it
--   sloth-runner validate -f {{name}}.sloth          check it without running anything
--   sloth-runner workflow preview -f {{name}}.sloth  show the plan

local hello = task("hello")
  :description("Say hello")
  :command(function(this, params)
    log.info("Hello from " .. params.workflow_name .. "!")
    return true, "said hello", { greeting = "hello" }
  end)
  :build()

local system_info = task("system_info")
  :description("Show where the workflow runs")
  :depends_on({ "hello" })
  :timeout("30s")
  :command(function(this, params, deps)
    local result = exec.run("uname -sr")
    if not result.success then
      return false, "uname failed: " .. result.stderr
    end
    local kernel = result.stdout:gsub("%s+$", "")
    log.info("Kernel: " .. kernel)
    return true, "collected system info", { kernel = kernel, greeting = deps.hello.greeting }
  end)
  :build()

workflow.define("{{name}}", {
  description = "Starter workflow for {{name}}",
  version = "1.0.0",
  tasks = { hello, system_info },
  config = { timeout = "5m" },
})
)lua";

constexpr char kCicd[] =
    R"lua(-- {{name}}: a CI/CD pipeline. Each stage is a task; replace the commands with your own
-- (make, npm, go, docker ...). Everything happens in ./build.
--   sloth-runner run -f {{name}}.sloth                      run the pipeline
--   sloth-runner run -f {{name}}.sloth --set version=1.2.3  choose the release version
--   sloth-runner workflow preview -f {{name}}.sloth -o dot  draw the pipeline (Graphviz)

local version = tostring(values.version or "0.1.0")

local checkout = task("checkout")
  :description("Prepare a clean workspace")
  :workdir("build")
  :command(function(this, params)
    local r = exec.run("rm -rf dist && mkdir -p dist")
    if not r.success then return false, r.stderr end
    return true, "workspace ready", { workdir = this.workdir.get() }
  end)
  :build()

local lint = task("lint")
  :description("Static checks")
  :depends_on("checkout")
  :workdir("build")
  :command("test -d dist") -- a string command: exit status 0 is success
  :timeout("2m")
  :tags({ "quality" })
  :build()

local unit_tests = task("unit_tests")
  :description("Unit tests (retried up to twice, with growing delays)")
  :depends_on("lint")
  :workdir("build")
  :timeout("5m")
  :retries(2, "exponential")
  :tags({ "quality", "tests" })
  :command(function(this, params)
    local r = exec.run("echo 'unit tests: 3 passed'")
    if not r.success then return false, "unit tests failed" end
    log.info(r.stdout)
    return true, "unit tests passed"
  end)
  :build()

local integration_tests = task("integration_tests")
  :description("Integration tests (run alongside the unit tests)")
  :depends_on("lint")
  :workdir("build")
  :timeout("10m")
  :tags({ "quality", "tests" })
  :command(function(this, params)
    local r = exec.run("echo 'integration tests: 1 passed'")
    if not r.success then return false, "integration tests failed" end
    log.info(r.stdout)
    return true, "integration tests passed"
  end)
  :build()

local package = task("package")
  :description("Build the release archive")
  :depends_on({ "unit_tests", "integration_tests" })
  :workdir("build")
  :command(function(this, params)
    local archive = params.workflow_name .. "-" .. version .. ".tar.gz"
    -- argv lists run without a shell, so the version needs no quoting
    local r = exec.run({ "sh", "-c", 'printf "%s\\n" "$1" > dist/VERSION', "sh", version })
    if not r.success then return false, "cannot write VERSION: " .. r.stderr end
    r = exec.run({ "tar", "-czf", archive, "dist" })
    if not r.success then return false, "tar failed: " .. r.stderr end
    return true, "built " .. archive, { archive = archive }
  end)
  :artifacts({ "*.tar.gz" }) -- kept in the run's artifact folder under the data directory
  :build()

local publish = task("publish")
  :description("Publish the archive (checks it and says what it would upload)")
  :depends_on("package")
  :workdir("build")
  :command(function(this, params, deps)
    local archive = deps.package.archive
    local r = exec.run({ "tar", "-tzf", archive })
    if not r.success then return false, "archive is unreadable: " .. r.stderr end
    log.info("would publish " .. archive)
    return true, "ready to publish " .. archive, { archive = archive }
  end)
  :build()

workflow.define("{{name}}", {
  description = "CI/CD pipeline for {{name}}",
  version = "1.0.0",
  tasks = { checkout, lint, unit_tests, integration_tests, package, publish },
  config = { max_parallel_tasks = 2, fail_fast = true, timeout = "30m" },
  metadata = { template = "cicd" },
  on_complete = function(success, results)
    log.info("pipeline " .. (success and "succeeded" or "failed") .. " for version " .. version)
  end,
})
)lua";

constexpr char kInfra[] = R"lua(-- {{name}}: configure a web server on an agent, then verify it.
-- Runs on an agent, so it needs a master and an agent (docs/distributed.md):
--   sloth-runner master start --daemon
--   sloth-runner agent start --name web-01 --master 127.0.0.1:50053 --daemon
--   sloth-runner run -f {{name}}.sloth --check          see what would change
--   sloth-runner run -f {{name}}.sloth --set host=web-01

local host = values.host or "web-01"
local site = values.site or "{{name}}"

local install = task("install_packages")
  :description("Install nginx")
  :delegate_to(host)
  :timeout("10m")
  :retries(2, "exponential")
  :command(function(this, params)
    return pkg.install({ packages = { "nginx" } })
  end)
  :build()

local content = task("deploy_content")
  :description("Write the site's index page")
  :depends_on("install_packages")
  :delegate_to(host)
  :command(function(this, params)
    local ok, err = fs.write("/var/www/html/index.html", "<h1>" .. site .. "</h1>\n")
    if not ok then return false, err end
    return true, "index page written"
  end)
  :build()

local service = task("enable_service")
  :description("Enable and start nginx")
  :depends_on("deploy_content")
  :delegate_to(host)
  :command(function(this, params)
    local r, err = systemd.enable("nginx")
    if not r then return false, err end
    return systemd.start("nginx")
  end)
  :build()

local verify = task("verify")
  :description("Check that the site answers")
  :depends_on("enable_service")
  :delegate_to(host)
  :retries(3, "linear")
  :command(function(this, params)
    infra_test.service_is_running("nginx")
    infra_test.port_is_listening(80)
    infra_test.file_contains("/var/www/html/index.html", site)
    infra_test.command_stdout_contains("curl -fsS http://127.0.0.1/", site)
  end)
  :build()

workflow.define("{{name}}", {
  description = "Web server on " .. host,
  version = "1.0.0",
  tasks = { install, content, service, verify },
  config = { timeout = "30m", fail_fast = true },
  metadata = { template = "infra", host = host },
})
)lua";

constexpr char kDistributed[] =
    R"lua(-- {{name}}: run the same checks on several agents at once, then summarise them locally.
-- Needs a master and the agents named below (docs/distributed.md):
--   sloth-runner master start --daemon
--   sloth-runner agent start --name agent-01 --master 127.0.0.1:50053 --daemon
--   sloth-runner agent start --name agent-02 --master 127.0.0.1:50053 --daemon
--   sloth-runner run -f {{name}}.sloth
-- Pick other agents with a values file:  agents: [web-01, web-02, db-01]

local agents = values.agents or { "agent-01", "agent-02" }

local facts = task("collect_facts")
  :description("Kernel and uptime of every agent")
  :delegate_to(agents)
  :timeout("2m")
  :command(function(this, params)
    local r = exec.run("uname -sr && uptime")
    if not r.success then return false, r.stderr end
    return true, "facts collected", { facts = r.stdout }
  end)
  :build()

local disk = task("check_disk")
  :description("Free space on / of every agent")
  :delegate_to(agents)
  :timeout("1m")
  :retries(1)
  :command(function(this, params)
    local r = exec.run("df -P / | tail -n 1")
    if not r.success then return false, r.stderr end
    return true, "disk checked", { root = r.stdout }
  end)
  :build()

local summary = task("summary")
  :description("Summarise the results here, on the machine that started the run")
  :depends_on({ "collect_facts", "check_disk" })
  :command(function(this, params, deps)
    -- the output of a task delegated to several agents is keyed by agent name
    for agent, out in pairs(deps.collect_facts) do
      log.info(agent .. ": " .. tostring(out.facts))
    end
    for agent, out in pairs(deps.check_disk) do
      log.info(agent .. " disk: " .. tostring(out.root))
    end
    return true, "summary of " .. #agents .. " agents"
  end)
  :build()

workflow.define("{{name}}", {
  description = "Fan out checks to " .. #agents .. " agents",
  version = "1.0.0",
  tasks = { facts, disk, summary },
  config = { max_parallel_tasks = 2, fail_fast = false, timeout = "15m" },
  metadata = { template = "distributed" },
})
)lua";

}  // namespace

const std::vector<ProjectTemplate>& ProjectTemplates() {
  static const std::vector<ProjectTemplate> templates = {
      {"basic", "Two tasks with a dependency: log lines, a shell command, task outputs", kBasic},
      {"cicd", "A CI/CD pipeline: checkout, lint, parallel tests, package, publish", kCicd},
      {"infra", "Configure and verify a web server on an agent (pkg, fs, systemd, infra_test)",
       kInfra},
      {"distributed", "Fan the same checks out to several agents, then summarise locally",
       kDistributed},
  };
  return templates;
}

const ProjectTemplate* FindProjectTemplate(const std::string& name) {
  for (const ProjectTemplate& t : ProjectTemplates())
    if (name == t.name) return &t;
  return nullptr;
}

}  // namespace sloth
