// Events and hooks end to end: the real binary, hooks in their child processes, a local HTTP
// server for a Slack-style hook, and a dispatcher killed in the middle of a burst.
#include <signal.h>
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "e2e_util.h"

namespace sloth::e2e {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

json Json(const CmdResult& r) {
  json j = json::parse(r.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << Describe(r);
  return j;
}

constexpr char kFailingFlow[] = R"(
local build = task("build"):command(function() return false, "compiler exploded" end):build()
workflow.define("ci", { tasks = { build } })
)";

// A webhook receiver: records each POST body (one JSON document per line) and answers 200.
constexpr char kWebhookServer[] = R"(
import http.server, sys
out = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
        with open(out, 'ab') as f:
            f.write(body + b'\n')
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'ok')
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
with open(sys.argv[1], 'w') as f:
    f.write(str(s.server_address[1]))
s.serve_forever()
)";

class EventsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }
  CmdResult Run(const std::vector<std::string>& args) const { return box_.Run(args); }
  Sandbox box_;
};

TEST_F(EventsTest, SlackStyleHookPostsFailuresToAWebhook) {
  box_.Write("server.py", kWebhookServer);
  pid_t py = fork();
  if (py == 0) {
    setpgid(0, 0);
    std::filesystem::current_path(box_.work());
    execlp("python3", "python3", "server.py", "port.txt", "posts.txt", nullptr);
    _exit(127);
  }
  for (int i = 0; i < 100 && !box_.Exists("port.txt"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(box_.Exists("port.txt"));
  box_.SetEnv("SLACK_WEBHOOK_URL", "http://127.0.0.1:" + box_.Read("port.txt") + "/hook");
  ASSERT_EQ(Run({"hook", "add", SourceDir() + "/examples/hooks/slack_failures.lua"}).exit_code, 0);
  box_.Write("ci.sloth", kFailingFlow);
  CmdResult r = Run({"run", "-f", "ci.sloth"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  kill(-py, SIGTERM);
  waitpid(py, nullptr, 0);
  json post = json::parse(box_.Read("posts.txt"), nullptr, false);
  ASSERT_TRUE(post.is_object()) << box_.Read("posts.txt");
  EXPECT_THAT(post["text"].get<std::string>(), HasSubstr("build failed in ci: compiler exploded"));
  json history = Json(Run({"hook", "history", "slack_failures", "-o", "json"}));
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0]["success"], true);
  EXPECT_EQ(history[0]["output"], "notified");
}

TEST_F(EventsTest, RunsEmitTheDocumentedEvents) {
  box_.Write("ci.sloth", kFailingFlow);
  EXPECT_EQ(Run({"run", "-f", "ci.sloth"}).exit_code, 1);
  json events = Json(Run({"events", "list", "-o", "json"}));
  std::vector<std::string> types;
  for (const json& e : events) types.insert(types.begin(), e["type"].get<std::string>());
  EXPECT_EQ(types, (std::vector<std::string>{"stack.locked", "workflow.started", "task.started",
                                             "task.failed", "stack.unlocked", "workflow.failed"}));
  json failed = Json(Run({"events", "list", "--type", "task.failed", "-o", "json"}));
  ASSERT_EQ(failed.size(), 1u);
  const json& task = failed[0]["data"]["task"];
  EXPECT_EQ(task["task_name"], "build");
  EXPECT_EQ(task["workflow_name"], "ci");
  EXPECT_EQ(task["stack"], "ci");
  EXPECT_EQ(task["status"], "Failed");
  EXPECT_EQ(task["error"], "compiler exploded");
  EXPECT_EQ(task["attempt"], 1);
  EXPECT_TRUE(task.contains("duration_ms") && task.contains("agent_name"));
  EXPECT_EQ(failed[0]["stack"], "ci");
  EXPECT_EQ(failed[0]["status"], "delivered");
  json wf = Json(Run({"events", "list", "--type", "workflow.*", "--limit", "1", "-o", "json"}));
  ASSERT_EQ(wf.size(), 1u);
  EXPECT_EQ(wf[0]["data"]["workflow"]["status"], "failed");
  EXPECT_EQ(wf[0]["data"]["workflow"]["error"], "task build failed: compiler exploded");
  CmdResult show = Run({"events", "show", failed[0]["id"].get<std::string>()});
  EXPECT_EQ(show.exit_code, 0) << Describe(show);
  EXPECT_THAT(show.out, HasSubstr("type:    task.failed"));
}

TEST_F(EventsTest, SecretsAreRedactedFromEventData) {
  box_.Write("flow.sloth", R"(
local t = task("t"):command(function()
  event.dispatch("custom.thing", { note = "token is " .. secrets.api_token, nested = { secrets.api_token } })
  return false, "failed with " .. secrets.api_token
end):build()
workflow.define("sec", { tasks = { t } })
)");
  ASSERT_EQ(box_.Run({"secrets", "add", "api_token", "--stack", "sec", "--password-stdin"},
                     "pw-123456\ns3cr3t-value\n")
                .exit_code,
            0);
  EXPECT_EQ(box_.Run({"run", "-f", "flow.sloth", "--password-stdin"}, "pw-123456\n").exit_code, 1);
  CmdResult all = Run({"events", "list", "-o", "json"});
  EXPECT_THAT(all.out, HasSubstr("token is ***"));
  EXPECT_EQ(all.out.find("s3cr3t-value"), std::string::npos) << all.out;
}

TEST_F(EventsTest, HookAddRefusesWhatIsNotAHook) {
  box_.Write("nothook.lua", "local x = 1\n");
  box_.Write("broken.lua", "function on_event(e\n");
  box_.Write("ok.lua", "function on_event(e) return true end\n");
  CmdResult r = Run({"hook", "add", "nothook.lua"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("not a hook"));
  r = Run({"hook", "add", "x", "--file", "broken.lua", "--event", "a.b"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("broken.lua:"));
  r = Run({"hook", "add", "x", "--file", "missing.lua", "--event", "a.b"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("no such hook file"));
  r = Run({"hook", "add", "x", "--file", "ok.lua", "--event", "a..b"});
  EXPECT_EQ(r.exit_code, 2);
  r = Run({"hook", "add", "bad name", "--file", "ok.lua", "--event", "a.b"});
  EXPECT_EQ(r.exit_code, 2);
  r = Run({"hook", "add", "x", "--file", "ok.lua", "--event", "a.b", "--timeout", "soon"});
  EXPECT_EQ(r.exit_code, 2);
  r = Run({"hook", "add", "ok.lua"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("does not name its hook"));
  EXPECT_EQ(Json(Run({"hook", "list", "-o", "json"})).size(), 0u);
}

TEST_F(EventsTest, HookFileIsReadAtEachRunAndShowSaysWhenItIsMissing) {
  box_.Write("h.lua", "function on_event(e) return true, 'first' end\n");
  ASSERT_EQ(Run({"hook", "add", "h", "--file", "h.lua", "--event", "x.y"}).exit_code, 0);
  CmdResult r = Run({"hook", "test", "h"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("first"));
  box_.Write("h.lua", "function on_event(e) return false, 'second ' .. e.type end\n");
  r = Run({"hook", "test", "h", "--type", "x.z"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("second x.z"));
  std::filesystem::remove(box_.work() / "h.lua");
  r = Run({"hook", "show", "h"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("missing"));
  EXPECT_EQ(Json(Run({"hook", "show", "h", "-o", "json"}))["file_exists"], false);
  EXPECT_EQ(Run({"hook", "test", "h", "--data", "[1]"}).exit_code, 2);
}

TEST_F(EventsTest, FailedDeliveryIsRetriedByEventsRetry) {
  box_.Write("h.lua",
             "function on_event(e) if fs.exists('fixed') then return true, 'ok now' end "
             "return false, 'not yet' end\n");
  ASSERT_EQ(Run({"hook", "add", "h", "--file", "h.lua", "--event", "custom.*", "--retries", "0"})
                .exit_code,
            0);
  box_.Write("flow.sloth", R"(
local t = task("t"):command(function() event.dispatch("custom.go", {}) return true end):build()
workflow.define("f", { tasks = { t } })
)");
  EXPECT_EQ(Run({"run", "-f", "flow.sloth"}).exit_code, 0);  // a hook never changes the result
  json failed = Json(Run({"events", "list", "--status", "failed", "-o", "json"}));
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_THAT(failed[0]["error"].get<std::string>(), HasSubstr("not yet"));
  std::string id = failed[0]["id"];
  CmdResult r = Run({"events", "retry", id});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  box_.Write("fixed", "");
  r = Run({"events", "retry", id});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  json shown = Json(Run({"events", "show", id, "-o", "json"}));
  EXPECT_EQ(shown["status"], "delivered");
  EXPECT_EQ(shown["executions"].size(), 3u);
}

TEST_F(EventsTest, AHangingHookIsKilledAndTheOthersStillRun) {
  box_.Write("hang.lua", "function on_event(e) exec.run('sleep 60') return true end\n");
  box_.Write("quick.lua", "function on_event(e) fs.write('quick.txt', e.type) return true end\n");
  ASSERT_EQ(Run({"hook", "add", "hang", "--file", "hang.lua", "--event", "task.completed",
                 "--timeout", "1s", "--retries", "0"})
                .exit_code,
            0);
  ASSERT_EQ(
      Run({"hook", "add", "quick", "--file", "quick.lua", "--event", "task.completed"}).exit_code,
      0);
  box_.Write("flow.sloth", R"(
local t = task("t"):command(function() return true end):build()
workflow.define("f", { tasks = { t } })
)");
  auto start = std::chrono::steady_clock::now();
  CmdResult r = Run({"run", "-f", "flow.sloth"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(box_.Read("quick.txt"), "task.completed");
  json hang = Json(Run({"hook", "history", "hang", "-o", "json"}));
  ASSERT_EQ(hang.size(), 1u);
  EXPECT_EQ(hang[0]["error"], "timed out after 1.0s");
  // No sleep was left behind.
  CmdResult ps = box_.Spawn({"sh", "-c", "pgrep -x sleep -a | grep -w 60 || true"});
  EXPECT_EQ(ps.out, "");
}

TEST_F(EventsTest, HooksThatDispatchEventsCannotLoopForever) {
  box_.Write(
      "loop.lua",
      "function on_event(e) event.dispatch('loop.again', { n = e.depth }) return true end\n");
  ASSERT_EQ(Run({"hook", "add", "looper", "--file", "loop.lua", "--event", "loop.*"}).exit_code, 0);
  box_.Write("flow.sloth", R"(
local t = task("t"):command(function() event.dispatch("loop.start", {}) return true end):build()
workflow.define("f", { tasks = { t } })
)");
  EXPECT_EQ(Run({"run", "-f", "flow.sloth"}).exit_code, 0);
  json events = Json(Run({"events", "list", "--type", "loop.*", "-o", "json"}));
  ASSERT_EQ(events.size(), 10u);  // depths 0 to 9
  EXPECT_EQ(events[0]["depth"], 9);
  EXPECT_EQ(events[0]["status"], "failed");
  EXPECT_THAT(events[0]["error"].get<std::string>(), HasSubstr("loop"));
  EXPECT_EQ(events[9]["depth"], 0);
}

// kill -9 in the middle of a burst: every dispatch that returned is in the database afterwards,
// and the hooked ones are delivered by the next process.
TEST_F(EventsTest, KillNineDuringABurstLosesNoAcknowledgedEvent) {
  box_.Write("mark.lua",
             "function on_event(e) fs.append('marks.txt', e.data.i .. '\\n') return true end\n");
  ASSERT_EQ(Run({"hook", "add", "mark", "--file", "mark.lua", "--event", "burst.mark"}).exit_code,
            0);
  box_.Write("burst.sloth", R"(
local t = task("t"):command(function()
  local acks = io.open("acks.txt", "w")
  for i = 1, 10000 do
    local kind = (i % 100 == 0) and "burst.mark" or "burst.plain"
    event.dispatch(kind, { i = i })
    acks:write(i, "\n")
    acks:flush()
  end
  acks:close()
  return true
end):build()
workflow.define("burst", { tasks = { t } })
)");
  pid_t pid = box_.RunInBackground("burst", {"run", "-f", "burst.sloth"});
  ASSERT_GT(pid, 0);
  // Wait until a good part of the burst is acknowledged, then kill -9.
  for (int i = 0; i < 600; ++i) {
    std::string acks = box_.Read("acks.txt");
    if (std::count(acks.begin(), acks.end(), '\n') >= 3000) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(-pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  std::string acks = box_.Read("acks.txt");
  int acked = static_cast<int>(std::count(acks.begin(), acks.end(), '\n'));
  ASSERT_GE(acked, 3000);
  // Listing replays the dead process's journal into the database.
  json all = Json(Run({"events", "list", "--type", "burst.*", "--limit", "0", "-o", "json"}));
  std::set<int> stored;
  for (const json& e : all) stored.insert(e["data"]["i"].get<int>());
  for (int i = 1; i <= acked; ++i) ASSERT_TRUE(stored.count(i)) << "event " << i << " was lost";
  // A long-running dispatcher (scheduler run) delivers the marks the killed run left pending.
  pid_t sched = box_.RunInBackground("sched", {"scheduler", "run"});
  ASSERT_GT(sched, 0);
  json pending;
  for (int i = 0; i < 300; ++i) {
    pending = Json(Run({"events", "list", "--type", "burst.mark", "--status", "pending", "--limit",
                        "0", "-o", "json"}));
    if (pending.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(-sched, SIGTERM);
  waitpid(sched, nullptr, 0);
  EXPECT_EQ(pending.size(), 0u) << pending.dump();
  std::string marks = box_.Read("marks.txt");
  for (int i = 100; i <= acked; i += 100)
    EXPECT_THAT(marks, HasSubstr(std::to_string(i) + "\n")) << "mark " << i << " not delivered";
}

}  // namespace
}  // namespace sloth::e2e
