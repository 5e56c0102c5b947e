// The systemd module against a recording stand-in for systemctl (this machine may have no
// running systemd): a shell script first on PATH that logs its arguments and keeps each unit's
// active / enabled state in files, so idempotence, check mode and the exact argument lists can
// be checked. A test against the real systemd runs where one is running.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "lua/test_util.h"
#include "store/migrations.h"
#include "store/sqlite_stack_store.h"

namespace sloth {
using testing::LuaEnv;

namespace {

namespace stdfs = std::filesystem;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Spit(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// @STATE@ is replaced by the directory holding the log and the state files.
// clang-format off
constexpr char kStandIn[] = R"sh(#!/bin/sh
# Recording stand-in for systemctl.
state="@STATE@"
echo "$*" >>"$state/calls"
verb=$1 unit=$2
if [ -f "$state/fail.$verb" ]; then echo "Job for $unit failed." >&2; exit 1; fi
case "$verb" in
  is-active)
    s=$(cat "$state/active.$unit" 2>/dev/null || echo inactive); echo "$s"; [ "$s" = active ] ;;
  is-enabled)
    if [ ! -f "$state/enabled.$unit" ]; then
      echo "Failed to get unit file state for $unit: No such file or directory" >&2; exit 1
    fi
    s=$(cat "$state/enabled.$unit"); echo "$s"
    case "$s" in enabled|static) exit 0 ;; *) exit 1 ;; esac ;;
  start|restart) echo active >"$state/active.$unit" ;;
  stop) echo inactive >"$state/active.$unit" ;;
  enable) echo enabled >"$state/enabled.$unit" ;;
  disable) echo disabled >"$state/enabled.$unit" ;;
  reload|daemon-reload) ;;
  show)
    printf 'Id=%s\nDescription=Test unit\nLoadState=loaded\nActiveState=%s\nSubState=running\n' \
      "$unit" "$(cat "$state/active.$unit" 2>/dev/null || echo inactive)"
    printf 'UnitFileState=%s\nMainPID=42\nFragmentPath=/etc/systemd/system/%s\n' \
      "$(cat "$state/enabled.$unit" 2>/dev/null)" "$unit" ;;
  list-units) cat "$state/units" ;;
  *) echo "stand-in: unknown verb $verb" >&2; exit 1 ;;
esac
)sh";
// clang-format on

RuntimeOptions CheckOptions() {
  RuntimeOptions o;
  o.check_mode = true;
  return o;
}

class SystemdTest : public ::testing::Test {
 protected:
  // Child processes are reaped through SIGCHLD, which the loop only sees when it is blocked in
  // every thread.
  static void SetUpTestSuite() { Loop::BlockSignals(); }

  void SetUp() override {
    std::string tmpl = (stdfs::temp_directory_path() / "sloth-systemd.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    stdfs::create_directories(root_ + "/bin");
    stdfs::create_directories(root_ + "/state");
    stdfs::create_directories(units());
    std::string script = kStandIn;
    script.replace(script.find("@STATE@"), 7, root_ + "/state");
    Spit(root_ + "/bin/systemctl", script);
    chmod((root_ + "/bin/systemctl").c_str(), 0755);
    const char* path = std::getenv("PATH");
    old_path_ = path ? path : "/usr/bin:/bin";
    setenv("PATH", (root_ + "/bin:" + old_path_).c_str(), 1);
  }

  void TearDown() override {
    setenv("PATH", old_path_.c_str(), 1);
    std::error_code ec;
    stdfs::remove_all(root_, ec);
  }

  std::string units() const { return root_ + "/units"; }
  std::string state(const std::string& file) const { return root_ + "/state/" + file; }

  // The stand-in's calls since the last Calls(), one "verb args..." string each.
  std::vector<std::string> Calls() {
    std::vector<std::string> out;
    std::ifstream in(state("calls"));
    for (std::string line; std::getline(in, line);) out.push_back(line);
    stdfs::remove(state("calls"));
    return out;
  }

  void SetActive(const std::string& unit, const std::string& s) {
    Spit(state("active." + unit), s);
  }
  void SetEnabled(const std::string& unit, const std::string& s) {
    Spit(state("enabled." + unit), s);
  }

  // Runs `code` as a task body with UNITS set to the unit directory.
  void RunOk(LuaEnv& env, const std::string& code) {
    Status s = env.RunInTask("local UNITS = '" + units() + "'\n" + code);
    ASSERT_TRUE(s.ok()) << s.message();
  }

  std::string root_, old_path_;
};

using CallList = std::vector<std::string>;

TEST_F(SystemdTest, StartAndStopAreIdempotentInBothCallShapes) {
  LuaEnv env;
  RunOk(env, R"(
    local r, r2 = systemd.start("nginx")
    assert(r == r2 and r.success and r.changed and r.check_mode == false, r.msg)
    assert(r.name == "nginx.service" and r.msg == "started nginx.service", r.msg)
  )");
  EXPECT_EQ(Calls(), (CallList{"is-active nginx.service", "start nginx.service"}));
  RunOk(env, R"(
    local r = systemd.start({name = "nginx"})
    assert(r.changed == false and r.msg == "nginx.service is active", r.msg)
  )");
  EXPECT_EQ(Calls(), (CallList{"is-active nginx.service"}));
  RunOk(env, R"(
    assert(systemd.stop({name = "nginx.service"}).changed)
    local r = systemd.stop("nginx")
    assert(r.changed == false and r.msg == "nginx.service is inactive", r.msg)
  )");
  EXPECT_EQ(Calls(),
            (CallList{"is-active nginx.service", "stop nginx.service", "is-active nginx.service"}));
}

TEST_F(SystemdTest, StartLeavesAStartingUnitAlone) {
  SetActive("db.service", "activating");
  LuaEnv env;
  RunOk(env, R"(assert(systemd.start("db").changed == false))");
  SetActive("db.service", "failed");
  RunOk(env, R"(assert(systemd.start("db").changed == true))");
  EXPECT_EQ(Calls(),
            (CallList{"is-active db.service", "is-active db.service", "start db.service"}));
}

TEST_F(SystemdTest, EnableAndDisableAreIdempotent) {
  LuaEnv env;
  RunOk(env, R"(
    local r = systemd.enable("nginx")
    assert(r.changed and r.msg == "enabled nginx.service", r.msg)
    assert(systemd.enable({name = "nginx"}).changed == false)
    assert(systemd.is_enabled("nginx") == true)
    r = systemd.disable("nginx")
    assert(r.changed and r.msg == "disabled nginx.service", r.msg)
    r = systemd.disable("nginx")
    assert(r.changed == false and r.msg == "nginx.service is disabled", r.msg)
    assert(systemd.is_enabled("nginx") == false)
  )");
  EXPECT_EQ(Calls(), (CallList{"is-enabled nginx.service", "enable nginx.service",
                               "is-enabled nginx.service", "is-enabled nginx.service",
                               "is-enabled nginx.service", "disable nginx.service",
                               "is-enabled nginx.service", "is-enabled nginx.service"}));
}

TEST_F(SystemdTest, StaticAndMissingUnitsAreReportedAsTheyAre) {
  SetEnabled("tmp.mount", "static");
  LuaEnv env;
  RunOk(env, R"(
    local r = systemd.enable("tmp.mount")
    assert(r.changed == false and r.name == "tmp.mount" and r.msg == "tmp.mount is static", r.msg)
    assert(systemd.is_enabled("tmp.mount"))
    r = systemd.disable("ghost")
    assert(r.changed == false and r.msg == "ghost.service is not-found", r.msg)
    assert(systemd.is_enabled("ghost") == false)
  )");
}

TEST_F(SystemdTest, NowAlsoStartsOrStops) {
  LuaEnv env;
  RunOk(env, R"(
    local r = systemd.enable({name = "web", now = true})
    assert(r.changed and r.msg == "enabled web.service; started web.service", r.msg)
    assert(systemd.enable({name = "web", now = true}).changed == false)
    r = systemd.disable({name = "web", now = true})
    assert(r.changed and r.msg == "stopped web.service; disabled web.service", r.msg)
  )");
  EXPECT_EQ(Calls(),
            (CallList{"is-enabled web.service", "enable web.service", "is-active web.service",
                      "start web.service", "is-enabled web.service", "is-active web.service",
                      "is-active web.service", "stop web.service", "is-enabled web.service",
                      "disable web.service"}));
}

TEST_F(SystemdTest, RestartReloadAndDaemonReloadAlwaysRun) {
  LuaEnv env;
  RunOk(env, R"(
    assert(systemd.restart("nginx").changed and systemd.restart("nginx").changed)
    local r = systemd.reload({name = "nginx"})
    assert(r.changed and r.msg == "reloaded nginx.service", r.msg)
    r = systemd.daemon_reload()
    assert(r.success and r.changed == false and r.msg == "reloaded systemd's unit files", r.msg)
  )");
  EXPECT_EQ(Calls(), (CallList{"restart nginx.service", "restart nginx.service",
                               "reload nginx.service", "daemon-reload"}));
}

TEST_F(SystemdTest, Queries) {
  SetActive("nginx.service", "active");
  SetEnabled("nginx.service", "enabled");
  Spit(state("units"),
       "cron.service loaded active running Regular background program processing daemon\n"
       "\xe2\x97\x8f broken.service loaded failed failed Broken thing\n");
  LuaEnv env;
  RunOk(env, R"(
    assert(systemd.is_active("nginx") == true and systemd.is_active("other") == false)
    local s = systemd.status("nginx")
    assert(s.name == "nginx.service" and s.is_active and s.is_enabled and s.exists, s.name)
    assert(s.active_state == "active" and s.sub_state == "running" and s.main_pid == 42)
    assert(s.load_state == "loaded" and s.unit_file_state == "enabled")
    assert(s.description == "Test unit" and s.fragment_path == "/etc/systemd/system/nginx.service")
    local list = systemd.list_services()
    assert(#list == 2 and list[1].name == "cron.service" and list[1].active == "active", #list)
    assert(list[1].description == "Regular background program processing daemon")
    assert(list[2].name == "broken.service" and list[2].sub == "failed")
    systemd.list_services({state = "running", all = false})
  )");
  CallList calls = Calls();
  ASSERT_EQ(calls.size(), 5u);
  EXPECT_EQ(calls[2],
            "show nginx.service --no-pager "
            "--property=Id,Description,LoadState,ActiveState,SubState,UnitFileState,MainPID,"
            "FragmentPath");
  EXPECT_EQ(calls[3], "list-units --type=service --no-legend --no-pager --plain --all");
  EXPECT_EQ(calls[4], "list-units --type=service --no-legend --no-pager --plain --state=running");
}

constexpr char kAppUnit[] = R"(# Managed by sloth-runner: changes made here are overwritten.
[Unit]
Description=My app
After=network.target postgresql.service

[Service]
User=app
WorkingDirectory=/srv/app
Environment="GREETING=hello \"you\" 100%%"
Environment="PORT=8080"
ExecStart=/srv/app/bin/app --name "two words" --cost "$$5"
Restart=on-failure
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
)";

constexpr char kAppSpec[] = R"(
  local spec = {
    name = "app", description = "My app", unit_dir = UNITS,
    exec_start = {"/srv/app/bin/app", "--name", "two words", "--cost", "$5"},
    user = "app", working_directory = "/srv/app", restart = "on-failure",
    environment = {PORT = 8080, GREETING = 'hello "you" 100%'},
    after = {"network.target", "postgresql.service"},
    service = {LimitNOFILE = 65536},
  }
)";

TEST_F(SystemdTest, CreateServiceWritesOnceAndReloadsOnlyWhenTheUnitChanged) {
  LuaEnv env;
  RunOk(env, std::string(kAppSpec) + R"(
    local r, r2 = systemd.create_service(spec)
    assert(r == r2 and r.changed and r.path == UNITS .. "/app.service", r.path)
    assert(r.msg == "created " .. r.path .. "; reloaded systemd's unit files", r.msg)
    assert(r.diff:find("+ExecStart=", 1, true), r.diff)
  )");
  std::string path = units() + "/app.service";
  EXPECT_EQ(Slurp(path), kAppUnit);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(Calls(), (CallList{"daemon-reload"}));

  RunOk(env, std::string(kAppSpec) + R"(
    local r = systemd.create_service(spec)
    assert(r.changed == false and r.diff == nil and r.msg == r.path .. " is up to date", r.msg)
  )");
  EXPECT_EQ(Calls(), CallList{});  // nothing run: no daemon-reload for an unchanged unit

  chmod(path.c_str(), 0640);  // a rewrite keeps the file's mode
  RunOk(env, std::string(kAppSpec) + R"(
    spec.description = "My app, v2"
    local r = systemd.create_service(spec)
    assert(r.changed and r.msg:find("^updated "), r.msg)
    assert(r.diff:find("-Description=My app\n+Description=My app, v2\n", 1, true), r.diff)
  )");
  EXPECT_EQ(Calls(), (CallList{"daemon-reload"}));
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_NE(Slurp(path).find("Description=My app, v2\n"), std::string::npos);
  // No temp files are left beside it.
  EXPECT_EQ(std::distance(stdfs::directory_iterator(units()), stdfs::directory_iterator()), 1);
}

TEST_F(SystemdTest, CreateServiceEnablesStartsAndRestartsOnChange) {
  LuaEnv env;
  std::string spec = R"(
    local spec = {name = "worker", exec_start = "/bin/sleep 1000", unit_dir = UNITS,
                  enabled = true, state = "started", wanted_by = {"default.target"}})";
  RunOk(env, spec + R"(
    local r = systemd.create_service(spec)
    assert(r.changed and r.msg:find("; enabled worker.service; started worker.service$"), r.msg)
  )");
  EXPECT_EQ(Calls(),
            (CallList{"daemon-reload", "is-enabled worker.service", "enable worker.service",
                      "is-active worker.service", "start worker.service"}));
  EXPECT_NE(Slurp(units() + "/worker.service").find("[Install]\nWantedBy=default.target\n"),
            std::string::npos);
  RunOk(env, spec + R"(assert(systemd.create_service(spec).changed == false))");
  EXPECT_EQ(Calls(), (CallList{"is-enabled worker.service", "is-active worker.service"}));
  // A running service restarts when its unit changed, so the new unit takes effect.
  RunOk(env, spec + R"(
    spec.exec_start = "/bin/sleep 2000"
    local r = systemd.create_service(spec)
    assert(r.changed and r.msg:find("restarted worker.service$"), r.msg)
  )");
  EXPECT_EQ(Calls(), (CallList{"daemon-reload", "is-enabled worker.service",
                               "is-active worker.service", "restart worker.service"}));
}

TEST_F(SystemdTest, CreateServiceFromContentAndWithoutInstall) {
  LuaEnv env;
  RunOk(env, R"(
    local text = "[Timer]\nOnCalendar=daily\n"
    local r = systemd.create_service({name = "backup.timer", content = text, unit_dir = UNITS})
    assert(r.changed and r.name == "backup.timer")
    r = systemd.create_service({name = "oneshot", exec_start = "/bin/true", type = "oneshot",
                                wanted_by = false, unit_dir = UNITS})
    assert(r.changed)
  )");
  EXPECT_EQ(Slurp(units() + "/backup.timer"), "[Timer]\nOnCalendar=daily\n");
  EXPECT_EQ(Slurp(units() + "/oneshot.service"),
            "# Managed by sloth-runner: changes made here are overwritten.\n"
            "[Service]\nType=oneshot\nExecStart=/bin/true\n");
}

TEST_F(SystemdTest, CheckModeRunsOnlyQueriesAndWritesNothing) {
  SetActive("nginx.service", "active");
  SetEnabled("nginx.service", "enabled");
  Spit(units() + "/old.service", "[Service]\nExecStart=/bin/old\n");
  LuaEnv env(CheckOptions());
  RunOk(env, R"(
    local r = systemd.create_service({name = "app", exec_start = "/bin/app", unit_dir = UNITS,
                                      enabled = true, state = "started"})
    assert(r.changed and r.check_mode, r.msg)
    assert(r.msg == "would create " .. UNITS .. "/app.service; would reload systemd's unit files; "
           .. "would enable app.service; would start app.service", r.msg)
    assert(r.diff:find("+ExecStart=/bin/app", 1, true), r.diff)
    local function would(r, msg)
      assert(r.changed and r.check_mode and r.msg == msg, r.msg .. " vs " .. msg)
    end
    would(systemd.start("web"), "would start web.service")
    would(systemd.stop("nginx"), "would stop nginx.service")
    would(systemd.enable("web"), "would enable web.service")
    would(systemd.disable("nginx"), "would disable nginx.service")
    would(systemd.restart("nginx"), "would restart nginx.service")
    would(systemd.reload("nginx"), "would reload nginx.service")
    r = systemd.daemon_reload()
    assert(not r.changed and r.check_mode and r.msg == "would reload systemd's unit files")
    would(systemd.remove_service({name = "old", unit_dir = UNITS}),
          "old.service is inactive; old.service is not-found; would remove " .. UNITS ..
          "/old.service; would reload systemd's unit files")
    assert(systemd.start("nginx").changed == false)
    assert(systemd.is_active("nginx") and systemd.is_enabled("nginx"))
    assert(systemd.status("nginx").is_active)
  )");
  EXPECT_FALSE(stdfs::exists(units() + "/app.service"));
  EXPECT_TRUE(stdfs::exists(units() + "/old.service"));
  for (const auto& call : Calls()) {
    EXPECT_TRUE(call.starts_with("is-active ") || call.starts_with("is-enabled ") ||
                call.starts_with("show "))
        << "ran a change in check mode: " << call;
  }
  EXPECT_EQ(Slurp(state("active.nginx.service")), "active");
  EXPECT_EQ(Slurp(state("enabled.nginx.service")), "enabled");
}

TEST_F(SystemdTest, RemoveServiceStopsDisablesDeletesAndReloads) {
  LuaEnv env;
  RunOk(env, R"(
    assert(systemd.create_service({name = "app", exec_start = "/bin/app", unit_dir = UNITS,
                                   enabled = true, state = "started"}).changed)
  )");
  Calls();
  RunOk(env, R"(
    local r = systemd.remove_service({name = "app", unit_dir = UNITS})
    assert(r.changed and r.msg == "stopped app.service; disabled app.service; removed " .. UNITS ..
           "/app.service; reloaded systemd's unit files", r.msg)
    r = systemd.remove_service({name = "app", unit_dir = UNITS})
    assert(r.changed == false, r.msg)
  )");
  EXPECT_FALSE(stdfs::exists(units() + "/app.service"));
  EXPECT_EQ(Calls(), (CallList{"is-active app.service", "stop app.service",
                               "is-enabled app.service", "disable app.service", "daemon-reload",
                               "is-active app.service", "is-enabled app.service"}));
}

TEST_F(SystemdTest, WorksOutsideATaskToo) {
  // Top-level code waits by driving the loop instead of yielding; chained commands must too.
  LuaEnv env;
  Status s = env.Run("local r = systemd.enable({name = 'top', now = true}); assert(r.changed)");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(Calls().size(), 4u);
}

TEST_F(SystemdTest, FailuresReturnNilAndTheError) {
  Spit(state("fail.start"), "");
  Spit(state("fail.is-active"), "");
  LuaEnv env;
  RunOk(env, R"(
    local r, err = systemd.restart("x")
    assert(r.changed)
    r, err = systemd.start("nginx")
    assert(r == nil and err == "systemd.start: `systemctl is-active nginx.service` failed " ..
           "with exit code 1: Job for nginx.service failed.", err)
    r, err = systemd.is_active("nginx")
    assert(r == nil and err:find("is-active", 1, true), err)
    r, err = systemd.create_service({name = "x", exec_start = "/bin/x", unit_dir = UNITS .. "/nope"})
    assert(r == nil and err == "systemd.create_service: unit_dir " .. UNITS ..
           "/nope is not a directory", err)
  )");
  stdfs::remove(state("fail.is-active"));
  RunOk(env, R"(
    local r, err = systemd.start("nginx")
    assert(r == nil and err == "systemd.start: `systemctl start nginx.service` failed " ..
           "with exit code 1: Job for nginx.service failed.", err)
  )");
}

TEST_F(SystemdTest, AFailedDaemonReloadPutsTheOldUnitBack) {
  Spit(state("fail.daemon-reload"), "");
  Spit(units() + "/app.service", "old\n");
  LuaEnv env;
  RunOk(env, R"(
    local spec = {name = "app", exec_start = "/bin/app", unit_dir = UNITS}
    local r, err = systemd.create_service(spec)
    assert(r == nil and err:find("`systemctl daemon-reload` failed with exit code 1", 1, true) and
           err:find("the previous unit file was put back", 1, true), err)
    r, err = systemd.create_service({name = "new", exec_start = "/bin/new", unit_dir = UNITS})
    assert(r == nil, "a new unit file is removed again")
  )");
  EXPECT_EQ(Slurp(units() + "/app.service"), "old\n");
  EXPECT_FALSE(stdfs::exists(units() + "/new.service"));
  stdfs::remove(state("fail.daemon-reload"));
  Calls();
  RunOk(env, R"(
    assert(systemd.create_service({name = "app", exec_start = "/bin/app", unit_dir = UNITS}).changed)
  )");
  EXPECT_EQ(Calls(), (CallList{"daemon-reload"}));
}

TEST_F(SystemdTest, MissingSystemctlIsAClearError) {
  setenv("PATH", (root_ + "/state").c_str(), 1);  // a directory without systemctl
  LuaEnv env;
  RunOk(env, R"(
    for _, call in ipairs({
      function() return systemd.start("nginx") end,
      function() return systemd.enable({name = "nginx"}) end,
      function() return systemd.is_active("nginx") end,
      function() return systemd.list_services() end,
      function() return systemd.daemon_reload() end,
      function() return systemd.create_service({name = "a", exec_start = "/bin/a",
                                                unit_dir = UNITS}) end,
    }) do
      local r, err = call()
      assert(r == nil and err:find("^systemd%.[a-z_]+: systemctl not found on PATH$"), err)
    end
  )");
  EXPECT_FALSE(stdfs::exists(units() + "/a.service"));
}

TEST_F(SystemdTest, BadArgumentsRaise) {
  LuaEnv env;
  auto raises = [&](const std::string& call, const std::string& want) {
    Status s = env.RunInTask("local UNITS = '" + units() + "'\n" + call);
    ASSERT_FALSE(s.ok()) << call;
    EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
  };
  raises("systemd.start()", "systemd.start: expected a unit name or a table with `name`");
  raises("systemd.stop(42)", "systemd.stop: expected a unit name");
  raises("systemd.enable('a b')", "systemd.enable: bad unit name \"a b\"");
  raises("systemd.enable('$(reboot)')", "bad unit name");
  raises("systemd.disable('--now')", "bad unit name");
  raises("systemd.start('../etc/passwd')", "bad unit name");
  raises("systemd.create_service({name = 'x'})", "systemd.create_service: exec_start is required");
  raises("systemd.create_service({name = 'x', exec_start = 'a', wantedby = 'x'})",
         "unknown field `wantedby` (did you mean `wanted_by`?)");
  raises("systemd.create_service({name = 'x', exec_start = 'a\\nExecStartPre=/bin/evil'})",
         "exec_start must not contain a newline");
  raises("systemd.create_service({name = 'x', exec_start = 'a', environment = {['A B'] = 1}})",
         "bad environment variable name \"A B\"");
  raises("systemd.create_service({name = 'x', exec_start = 'a', state = 'running'})",
         "state must be \"started\", \"stopped\" or \"restarted\"");
  raises("systemd.create_service({name = 'x.timer', exec_start = 'a'})",
         "x.timer is not a service");
  EXPECT_EQ(Calls(), CallList{});
}

TEST_F(SystemdTest, DiffIsLoggedWithShowDiff) {
  RuntimeOptions o;
  o.show_diff = true;
  LuaEnv env(o);
  RunOk(env, R"(systemd.create_service({name = "d", exec_start = "/bin/d", unit_dir = UNITS}))");
  EXPECT_TRUE(env.sink().Contains("+ExecStart=/bin/d"));
  EXPECT_TRUE(env.sink().Contains("systemd: created "));
}

// Inside a run of a stack, the unit file is a resource of it.
TEST_F(SystemdTest, UnitFilesAreRecordedOnTheStack) {
  LuaEnv env;
  auto db = OpenDatabase(DatabasePath(env.dir() + "/data"));
  ASSERT_TRUE(db.ok()) << db.error();
  SqliteStackStore stacks(*db);
  auto stack = stacks.EnsureStack("prod", "");
  ASSERT_TRUE(stack.ok());
  std::vector<std::string> resources;
  RunScope scope{"prod", stack->id, "run-1", &stacks, &resources};
  env.rt().SetRunScope(&scope);
  RunOk(env, R"(systemd.create_service({name = "s", exec_start = "/bin/s", unit_dir = UNITS}))");
  auto r = stacks.GetResource(stack->id, "systemd_unit", units() + "/s.service");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->module, "systemd");
  EXPECT_NE((*r)->properties_json.find("\"unit\":\"s.service\""), std::string::npos);
  env.rt().SetRunScope(nullptr);
}

// The real thing, where systemd runs: a throwaway unit created, started, stopped and removed.
TEST(SystemdRealTest, RealUnitLifecycle) {
  if (!stdfs::exists("/run/systemd/system"))
    GTEST_SKIP() << "systemd is not running here (/run/systemd/system is missing)";
  if (geteuid() != 0) GTEST_SKIP() << "needs root to write /etc/systemd/system";
  Loop::BlockSignals();
  LuaEnv env;
  std::string name = "sloth-test-" + std::to_string(getpid());
  Status s = env.RunInTask("local NAME = '" + name + "'\n" + R"(
    local r = assert(systemd.create_service({name = NAME, exec_start = {"/bin/sleep", "300"},
                                             description = "sloth-runner test"}))
    assert(r.changed)
    assert(not systemd.create_service({name = NAME, exec_start = {"/bin/sleep", "300"},
                                       description = "sloth-runner test"}).changed)
    assert(assert(systemd.start(NAME)).changed and systemd.is_active(NAME))
    assert(not systemd.start(NAME).changed)
    local st = assert(systemd.status(NAME))
    assert(st.exists and st.active_state == "active" and st.main_pid > 0, st.active_state)
    assert(assert(systemd.enable(NAME)).changed and systemd.is_enabled(NAME))
    assert(assert(systemd.remove_service(NAME)).changed)
    assert(not systemd.is_active(NAME))
  )");
  std::string leftover = "/etc/systemd/system/" + name + ".service";
  if (stdfs::exists(leftover)) {
    (void)!std::system(("systemctl disable --now " + name + " >/dev/null 2>&1").c_str());
    stdfs::remove(leftover);
    (void)!std::system("systemctl daemon-reload");
  }
  ASSERT_TRUE(s.ok()) << s.message();
}

}  // namespace
}  // namespace sloth
