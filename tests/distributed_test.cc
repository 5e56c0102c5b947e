// A master and agents over mTLS (distributed.md), driven as a user would: real processes, real
// ports, kill -9 for the faults. Every test starts its own master on a free port, gives each agent
// its own data dir, and kills whatever it started when it ends, also on failure.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "e2e_util.h"

namespace sloth::e2e {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

// Polls `done` every 200 ms until it holds or `timeout` passes.
template <typename F>
bool WaitFor(F done, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(200));
  }
  return done();
}

// One test's cluster: the master uses the sandbox's home (so the CLI, run with the same home, holds
// the admin certificate); each agent gets root()/agent-NAME as its data dir.
class Cluster {
 public:
  explicit Cluster(Sandbox& box) : box_(box) {}
  ~Cluster() {
    for (pid_t pid : pids_) Kill(pid);
  }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Starts a master (on `port`, 0 = any free one) and waits for "listening on"; false if it never
  // said so. The master judges each agent by the heartbeat interval the agent announces, so fast
  // liveness only needs `--heartbeat 1s` on the agents.
  bool StartMaster(int port = 0) {
    std::string name = "master" + std::to_string(++masters_);
    std::vector<std::string> args = {"master", "start",    "--port", std::to_string(port),
                                     "--bind", "127.0.0.1"};
    master_pid_ = Track(box_.RunInBackground(name, args));
    const std::string marker = "listening on 127.0.0.1:";
    bool up = WaitFor(
        [&] { return ReadFile(box_.root() / (name + ".out")).find(marker) != std::string::npos; },
        seconds(15));
    if (!up) return false;
    std::string out = ReadFile(box_.root() / (name + ".out"));
    port_ = std::stoi(out.substr(out.find(marker) + marker.size()));
    return true;
  }
  std::string MasterLog() const {
    return ReadFile(box_.root() / ("master" + std::to_string(masters_) + ".out")) +
           ReadFile(box_.root() / ("master" + std::to_string(masters_) + ".err"));
  }
  void KillMaster() { Kill(master_pid_); }
  int port() const { return port_; }
  std::string master() const { return "127.0.0.1:" + std::to_string(port_); }

  // Runs a CLI command against the master.
  CmdResult Cli(std::vector<std::string> args, seconds timeout = seconds(30)) const {
    args.insert(args.end(), {"--master", master()});
    return box_.Run(args, "", timeout);
  }

  // `count` fresh join tokens (each alone on one of the last lines of stdout).
  std::vector<std::string> Tokens(int count = 1) const {
    CmdResult r = Cli({"agent", "token", "create", "--count", std::to_string(count)});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    std::vector<std::string> lines = Lines(r.out);
    if (static_cast<int>(lines.size()) < count) return {};
    return {lines.end() - count, lines.end()};
  }
  std::string Token() const {
    std::vector<std::string> t = Tokens(1);
    return t.empty() ? "" : t[0];
  }

  std::filesystem::path AgentDir(const std::string& name) const {
    return box_.root() / ("agent-" + name);
  }
  // The agent start arguments for NAME (its own data dir, fast heartbeats), plus `extra`.
  std::vector<std::string> AgentArgs(const std::string& name, const std::string& token,
                                     std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = {"agent",    "start",  "--name",     name,
                                     "--master", master(), "--data-dir", AgentDir(name).string()};
    if (!token.empty()) args.insert(args.end(), {"--token", token});
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  // Starts agent NAME in the background (enrolling with a fresh token unless one is given).
  pid_t StartAgent(const std::string& name, std::vector<std::string> extra = {},
                   std::string token = "", bool fast_heartbeat = true) {
    if (token.empty() && !std::filesystem::exists(AgentDir(name) / "agent")) token = Token();
    if (fast_heartbeat) extra.insert(extra.end(), {"--heartbeat", "1s"});
    pid_t pid = Track(box_.RunInBackground("agent-" + name + "-" + std::to_string(++agents_),
                                           AgentArgs(name, token, extra)));
    agent_logs_[pid] = "agent-" + name + "-" + std::to_string(agents_);
    return pid;
  }
  std::string AgentLog(pid_t pid) const {
    auto it = agent_logs_.find(pid);
    if (it == agent_logs_.end()) return "";
    return ReadFile(box_.root() / (it->second + ".out")) +
           ReadFile(box_.root() / (it->second + ".err"));
  }
  std::string AllAgentLogs() const {
    std::string all;
    for (const auto& [pid, name] : agent_logs_) all += "--- " + name + "\n" + AgentLog(pid);
    return all;
  }

  // `agent list -o json`, or null when it fails.
  json List() const {
    CmdResult r = Cli({"agent", "list", "-o", "json"}, seconds(10));
    if (r.exit_code != 0) return nullptr;
    return json::parse(r.out, nullptr, false);
  }
  std::string StatusOf(const std::string& name) const {
    json list = List();
    if (!list.is_array()) return "";
    for (const json& a : list)
      if (a.value("name", "") == name) return a.value("status", "");
    return "";
  }
  // Waits until every agent in `names` is listed Active.
  bool WaitActive(const std::vector<std::string>& names, seconds timeout) const {
    return WaitFor(
        [&] {
          json list = List();
          if (!list.is_array()) return false;
          std::set<std::string> active;
          for (const json& a : list)
            if (a.value("status", "") == "Active") active.insert(a.value("name", ""));
          for (const std::string& n : names)
            if (!active.count(n)) return false;
          return true;
        },
        timeout);
  }

  // Starts a background `sloth-runner args...` that the cluster kills at the end.
  pid_t Background(const std::string& name, const std::vector<std::string>& args) {
    return Track(box_.RunInBackground(name, args));
  }

  // Waits for a child to exit; its exit code (128 + signal), or -1 if it is still running.
  int WaitExit(pid_t pid, seconds timeout) {
    auto deadline = Clock::now() + timeout;
    int status = 0;
    while (true) {
      pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        reaped_.insert(pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (r < 0 || Clock::now() > deadline) return -1;
      std::this_thread::sleep_for(milliseconds(20));
    }
  }

  // kill -9 of a child's process group, then reaps it.
  void Kill(pid_t pid) {
    if (pid <= 0 || reaped_.count(pid)) return;
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    reaped_.insert(pid);
  }

 private:
  pid_t Track(pid_t pid) {
    if (pid > 0) pids_.push_back(pid);
    return pid;
  }

  Sandbox& box_;
  int port_ = 0;
  int masters_ = 0;
  int agents_ = 0;
  pid_t master_pid_ = -1;
  std::vector<pid_t> pids_;
  std::set<pid_t> reaped_;
  std::map<pid_t, std::string> agent_logs_;
};

json ParseJson(const std::string& text) { return json::parse(text, nullptr, false); }

// ---------------------------------------------------------------------------------------------

TEST(Distributed, AgentsComeBackByThemselvesAfterTheMasterIsKilledAndRestarted) {
  Sandbox box;
  Cluster c(box);
  ASSERT_TRUE(c.StartMaster()) << c.MasterLog();
  c.StartAgent("r1");
  c.StartAgent("r2");
  ASSERT_TRUE(c.WaitActive({"r1", "r2"}, seconds(10))) << c.List() << c.AllAgentLogs();

  c.KillMaster();
  ASSERT_TRUE(c.StartMaster(c.port())) << c.MasterLog();
  auto restarted = Clock::now();
  // Backoff 5 s, 10 s ... with full jitter: two attempts fit in 15 s, three in 35 s.
  ASSERT_TRUE(c.WaitActive({"r1", "r2"}, seconds(35)))
      << "after " << SecondsSince(restarted) << " s: " << c.List() << c.AllAgentLogs()
      << c.MasterLog();
  CmdResult r = c.Cli({"agent", "exec", "r2", "echo back-again"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("back-again"), std::string::npos) << Describe(r);
}

TEST(Distributed, AnAgentKilledMidTaskFailsTheTaskWithAgentLost) {
  Sandbox box;
  Cluster c(box);
  ASSERT_TRUE(c.StartMaster()) << c.MasterLog();
  pid_t victim = c.StartAgent("victim");
  ASSERT_TRUE(c.WaitActive({"victim"}, seconds(10))) << c.AllAgentLogs();
  box.Write("wf.sloth", R"(
local t = task("long"):delegate_to("victim"):command(function()
  log.info("long task started")
  exec.run("sleep 30")
  return true
end):build()
workflow.define("w", { tasks = { t } })
)");
  pid_t run = c.Background("run", {"run", "w", "-f", "wf.sloth", "--master", c.master()});
  auto run_log = [&] {
    return ReadFile(box.root() / "run.out") + ReadFile(box.root() / "run.err");
  };
  ASSERT_TRUE(WaitFor([&] { return run_log().find("long task started") != std::string::npos; },
                      seconds(15)))
      << run_log() << c.AllAgentLogs();
  c.Kill(victim);
  auto killed = Clock::now();
  int code = c.WaitExit(run, seconds(25));
  double took = SecondsSince(killed);
  EXPECT_EQ(code, 1) << run_log() << c.MasterLog();
  // The agent ran with --heartbeat 1s: the grace for a lost agent is 3 heartbeats, 3 s.
  EXPECT_LT(took, 12.0) << run_log() << c.MasterLog();
  EXPECT_NE(run_log().find("agent lost"), std::string::npos) << run_log();
}

TEST(Distributed, ATaskSurvivesTheMasterBeingKilledAndRestartedWhileItRuns) {
  Sandbox box;
  Cluster c(box);
  // Default heartbeats: the runner's grace for a returning agent is 3 of them (15 s), which
  // covers the agent's first reconnect backoff (up to 5 s with jitter).
  ASSERT_TRUE(c.StartMaster()) << c.MasterLog();
  c.StartAgent("steady", {}, "", /*fast_heartbeat=*/false);
  ASSERT_TRUE(c.WaitActive({"steady"}, seconds(10))) << c.AllAgentLogs();
  std::filesystem::path marks = box.root() / "marks";
  std::filesystem::create_directories(marks);
  box.Write("values.yaml", "dir: " + marks.string() + "\n");
  box.Write("wf.sloth", R"(
local t = task("slow"):delegate_to("steady"):command(function(this)
  exec.run("echo ran >> '" .. values.dir .. "/ran.txt'")
  exec.run("sleep 4")
  return true, "ok", { said = "done on " .. this.agent.get() }
end):build()
workflow.define("w", { tasks = { t } })
)");
  pid_t run = c.Background("run", {"run", "w", "-f", "wf.sloth", "-v", "values.yaml", "-o", "json",
                                   "--master", c.master()});
  auto run_log = [&] {
    return ReadFile(box.root() / "run.out") + ReadFile(box.root() / "run.err");
  };
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(marks / "ran.txt"); }, seconds(15)))
      << run_log() << c.AllAgentLogs();
  std::this_thread::sleep_for(seconds(1));
  c.KillMaster();
  ASSERT_TRUE(c.StartMaster(c.port())) << c.MasterLog();
  int code = c.WaitExit(run, seconds(35));
  EXPECT_EQ(code, 0) << run_log() << c.AllAgentLogs() << c.MasterLog();
  json out = ParseJson(ReadFile(box.root() / "run.out"));
  ASSERT_TRUE(out.is_object()) << run_log();
  EXPECT_EQ(out["tasks"]["slow"]["status"], "Success") << out.dump(2);
  EXPECT_EQ(out["tasks"]["slow"]["output"]["said"], "done on steady") << out.dump(2);
  EXPECT_EQ(Lines(ReadFile(marks / "ran.txt")).size(), 1u) << "the task must run once";
}

// `agent start` that must be refused: exit 1 within 10 s with "enrolment refused".
void ExpectRefused(Sandbox& box, const std::vector<std::string>& args, const std::string& why,
                   const std::string& detail = "") {
  auto start = Clock::now();
  CmdResult r = box.Run(args, "", seconds(20));
  double took = SecondsSince(start);
  EXPECT_EQ(r.exit_code, 1) << why << ": " << Describe(r);
  EXPECT_LT(took, 10.0) << why << ": " << Describe(r);
  EXPECT_NE(r.err.find("enrolment refused"), std::string::npos) << why << ": " << Describe(r);
  if (!detail.empty()) {
    EXPECT_NE(r.err.find(detail), std::string::npos) << why << ": " << Describe(r);
  }
}

std::string RandomText(size_t n) {
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::mt19937 gen(std::random_device{}());
  std::string s;
  for (size_t i = 0; i < n; ++i) s += kChars[gen() % (sizeof kChars - 1)];
  return s;
}

TEST(Distributed, IntrudersAreRefusedAndTheMasterKeepsServingOthers) {
  Sandbox box;
  Cluster c(box);
  ASSERT_TRUE(c.StartMaster()) << c.MasterLog();
  std::string used = c.Token();
  c.StartAgent("good", {}, used);
  ASSERT_TRUE(c.WaitActive({"good"}, seconds(10))) << c.AllAgentLogs();

  ExpectRefused(box, c.AgentArgs("nobody", ""), "no token");
  ExpectRefused(box, c.AgentArgs("malformed", "not-a-real-token"), "malformed token");
  std::string ca_hash = used.substr(used.rfind('.') + 1);
  ExpectRefused(box, c.AgentArgs("forged", RandomText(8) + "." + RandomText(32) + "." + ca_hash),
                "forged token");
  ExpectRefused(box, c.AgentArgs("reuser", used), "reused token");
  // Same name as the enrolled agent, fresh token, another data dir.
  std::vector<std::string> twin = c.AgentArgs("good", c.Token());
  twin[7] = (box.root() / "twin").string();  // --data-dir
  ExpectRefused(box, twin, "name taken");

  // A CLI with another data dir has no admin certificate.
  auto start = Clock::now();
  CmdResult stranger =
      c.Cli({"agent", "list", "--data-dir", (box.root() / "stranger").string()}, seconds(20));
  EXPECT_NE(stranger.exit_code, 0) << Describe(stranger);
  EXPECT_LT(stranger.exit_code, 124) << Describe(stranger);
  EXPECT_LT(SecondsSince(start), 10.0) << Describe(stranger);
  EXPECT_EQ(stranger.out.find("good"), std::string::npos) << Describe(stranger);

  // Plain HTTP against the TLS port gets no HTTP answer.
  CmdResult curl = box.Spawn({"curl", "-s", "--max-time", "3", "-o", "/dev/null", "-w",
                              "%{http_code}", "http://" + c.master() + "/"},
                             "", seconds(10));
  EXPECT_NE(curl.exit_code, 0) << Describe(curl);
  EXPECT_EQ(curl.out, "000") << Describe(curl);

  // Oversized and malformed messages are refused by the master itself: src/rpc/rpc_test.cc
  // (a raw gRPC client can send them; this CLI cannot).

  // After all of this the enrolled agent still works.
  EXPECT_EQ(c.StatusOf("good"), "Active") << c.List();
  CmdResult r = c.Cli({"agent", "exec", "good", "echo still-here"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r) << c.MasterLog();
  EXPECT_NE(r.out.find("still-here"), std::string::npos) << Describe(r);
}

TEST(Distributed, DeletingAnAgentRevokesItsCertificate) {
  Sandbox box;
  Cluster c(box);
  ASSERT_TRUE(c.StartMaster()) << c.MasterLog();
  pid_t doomed = c.StartAgent("doomed");
  c.StartAgent("keeper");
  ASSERT_TRUE(c.WaitActive({"doomed", "keeper"}, seconds(10))) << c.AllAgentLogs();

  CmdResult del = c.Cli({"agent", "delete", "doomed"});
  EXPECT_EQ(del.exit_code, 0) << Describe(del);
  EXPECT_EQ(c.WaitExit(doomed, seconds(10)), 1) << c.AgentLog(doomed);
  std::string log = c.AgentLog(doomed);
  EXPECT_NE(log.find("enrolment refused"), std::string::npos) << log;
  EXPECT_NE(log.find("revoked"), std::string::npos) << log;

  // Its old certificate is still in its data dir; the master refuses it.
  ASSERT_TRUE(std::filesystem::exists(c.AgentDir("doomed")));
  ExpectRefused(box, c.AgentArgs("doomed", "", {"--heartbeat", "1s"}), "revoked certificate",
                "revoked");
  EXPECT_EQ(c.StatusOf("keeper"), "Active") << c.List();
}

TEST(Distributed, AgentExecResultsExitCodesJsonFanOutAndTimeout) {
  Sandbox box;
  Cluster c(box);
  ASSERT_TRUE(c.StartMaster()) << c.MasterLog();
  c.StartAgent("web1", {"--label", "role=web"});
  c.StartAgent("web2", {"--label", "role=web"});
  c.StartAgent("db1", {"--label", "role=db"});
  c.StartAgent("idle");
  ASSERT_TRUE(c.WaitActive({"web1", "web2", "db1", "idle"}, seconds(10))) << c.AllAgentLogs();

  CmdResult ok = c.Cli({"agent", "exec", "web1", "echo out-line; echo err-line >&2"});
  EXPECT_EQ(ok.exit_code, 0) << Describe(ok);
  EXPECT_NE(ok.out.find("out-line"), std::string::npos) << Describe(ok);
  EXPECT_NE(ok.output().find("err-line"), std::string::npos) << Describe(ok);

  CmdResult bad = c.Cli({"agent", "exec", "web1", "exit 7"});
  EXPECT_EQ(bad.exit_code, 1) << Describe(bad);
  EXPECT_NE(bad.err.find("7"), std::string::npos) << Describe(bad);

  CmdResult js = c.Cli({"agent", "exec", "web1", "printf 'a b'; printf oops >&2", "-o", "json"});
  EXPECT_EQ(js.exit_code, 0) << Describe(js);
  json one = ParseJson(js.out);
  ASSERT_TRUE(one.is_object()) << Describe(js);
  EXPECT_EQ(one["agent"], "web1");
  EXPECT_EQ(one["exit_code"], 0);
  EXPECT_EQ(one["success"], true);
  EXPECT_EQ(one["stdout"], "a b") << "stdout byte for byte, no newline added";
  EXPECT_EQ(one["stderr"], "oops");
  EXPECT_TRUE(one.contains("command"))
      << "cli.md: {agent, command, success, exit_code, stdout, stderr}: " << one.dump();
  CmdResult js_bad = c.Cli({"agent", "exec", "web1", "exit 3", "-o", "json"});
  EXPECT_EQ(js_bad.exit_code, 1) << Describe(js_bad);
  json failed = ParseJson(js_bad.out);
  EXPECT_EQ(failed.value("exit_code", -1), 3) << Describe(js_bad);
  EXPECT_EQ(failed.value("success", true), false) << Describe(js_bad);

  CmdResult unknown = c.Cli({"agent", "exec", "nosuch", "true"});
  EXPECT_EQ(unknown.exit_code, 1) << Describe(unknown);
  EXPECT_NE(unknown.err.find("not found"), std::string::npos) << Describe(unknown);

  CmdResult all = c.Cli({"agent", "exec", "--all", "echo fanned-out"});
  EXPECT_EQ(all.exit_code, 0) << Describe(all);
  for (const char* name : {"web1", "web2", "db1", "idle"})
    EXPECT_NE(all.out.find(name), std::string::npos) << name << ": " << Describe(all);
  EXPECT_NE(all.out.find("fanned-out"), std::string::npos) << Describe(all);

  CmdResult stop = c.Cli({"agent", "stop", "idle"});
  EXPECT_EQ(stop.exit_code, 0) << Describe(stop);
  ASSERT_TRUE(WaitFor([&] { return c.StatusOf("idle") == "Inactive"; }, seconds(10))) << c.List();
  CmdResult stopped = c.Cli({"agent", "exec", "idle", "true"});
  EXPECT_EQ(stopped.exit_code, 3) << Describe(stopped);

  CmdResult web = c.Cli({"agent", "exec", "--label", "role=web", "printf x", "-o", "json"});
  EXPECT_EQ(web.exit_code, 0) << Describe(web);
  json arr = ParseJson(web.out);
  ASSERT_TRUE(arr.is_array()) << Describe(web);
  std::set<std::string> names;
  for (const json& e : arr) {
    names.insert(e.value("agent", ""));
    EXPECT_EQ(e.value("stdout", ""), "x") << e.dump();
    EXPECT_EQ(e.value("success", false), true) << e.dump();
  }
  EXPECT_EQ(names, (std::set<std::string>{"web1", "web2"})) << arr.dump(2);

  CmdResult web_text = c.Cli({"agent", "exec", "--label", "role=web", "exit 1"});
  EXPECT_EQ(web_text.exit_code, 1) << Describe(web_text);
  EXPECT_NE(web_text.out.find("web1"), std::string::npos) << Describe(web_text);
  EXPECT_NE(web_text.out.find("web2"), std::string::npos) << Describe(web_text);
  EXPECT_EQ(web_text.out.find("db1"), std::string::npos) << Describe(web_text);

  auto start = Clock::now();
  CmdResult slow = c.Cli({"agent", "exec", "db1", "sleep 30", "--timeout", "1s"});
  EXPECT_NE(slow.exit_code, 0) << Describe(slow);
  EXPECT_FALSE(slow.timed_out) << Describe(slow);
  EXPECT_LT(SecondsSince(start), 5.0) << Describe(slow);
  // The agent still answers straight after.
  CmdResult after = c.Cli({"agent", "exec", "db1", "echo fine"});
  EXPECT_EQ(after.exit_code, 0) << Describe(after);
}

TEST(Distributed, AgentListShowsStatusAndAStoppedAgentGoesInactive) {
  Sandbox box;
  Cluster c(box);
  ASSERT_TRUE(c.StartMaster()) << c.MasterLog();
  c.StartAgent("lister", {"--label", "role=web", "--label", "zone=a"});
  pid_t quitter = c.StartAgent("quitter");
  ASSERT_TRUE(c.WaitActive({"lister", "quitter"}, seconds(10))) << c.AllAgentLogs();

  json list = c.List();
  ASSERT_TRUE(list.is_array()) << list;
  ASSERT_EQ(list.size(), 2u) << list.dump(2);
  for (const json& a : list) {
    for (const char* key : {"name", "address", "status", "last_heartbeat", "version", "labels"})
      EXPECT_TRUE(a.contains(key)) << key << " missing in " << a.dump(2);
    EXPECT_EQ(a.value("status", ""), "Active");
    EXPECT_EQ(a.value("address", ""), "127.0.0.1") << a.dump(2);
    EXPECT_FALSE(a.value("version", "").empty()) << a.dump(2);
    EXPECT_NE(a.value("last_heartbeat", "").find("ago"), std::string::npos) << a.dump(2);
    if (a["name"] == "lister") {
      EXPECT_EQ(a["labels"], (json{{"role", "web"}, {"zone", "a"}})) << a.dump(2);
    } else {
      EXPECT_TRUE(a["labels"].empty()) << a.dump(2);
    }
  }
  CmdResult table = c.Cli({"agent", "list"});
  EXPECT_EQ(table.exit_code, 0) << Describe(table);
  EXPECT_NE(table.out.find("role=web"), std::string::npos) << Describe(table);

  CmdResult stop = c.Cli({"agent", "stop", "quitter"});
  EXPECT_EQ(stop.exit_code, 0) << Describe(stop);
  EXPECT_EQ(c.WaitExit(quitter, seconds(10)), 0) << c.AgentLog(quitter);
  EXPECT_TRUE(WaitFor([&] { return c.StatusOf("quitter") == "Inactive"; }, seconds(5))) << c.List();
  EXPECT_EQ(c.StatusOf("lister"), "Active") << c.List();
  CmdResult get = c.Cli({"agent", "get", "quitter", "-o", "json"});
  EXPECT_EQ(get.exit_code, 0) << Describe(get);
  EXPECT_EQ(ParseJson(get.out).value("status", ""), "Inactive") << Describe(get);
}

TEST(Distributed, DelegatedTasksOnListsLabelsUnknownAgentsAndLiveLogs) {
  Sandbox box;
  Cluster c(box);
  ASSERT_TRUE(c.StartMaster()) << c.MasterLog();
  c.StartAgent("w1", {"--label", "role=web"});
  c.StartAgent("w2", {"--label", "role=web"});
  c.StartAgent("d1", {"--label", "role=db"});
  ASSERT_TRUE(c.WaitActive({"w1", "w2", "d1"}, seconds(10))) << c.AllAgentLogs();
  box.Write("wf.sloth", R"(
local pair = task("pair"):delegate_to({ "w1", "d1" })
  :command(function(this) return true, "ok", { me = this.agent.get() } end):build()
local web = task("web"):delegate_to({ label = "role=web" })
  :command(function(this) return true, "ok", { me = this.agent.get() } end):build()
local after = task("after"):depends_on({ "pair", "web" }):command(function(this, params, deps)
  local n = 0
  for _ in pairs(deps.web) do n = n + 1 end
  log.info("pair saw " .. deps.pair.w1.me .. "+" .. deps.pair.d1.me .. ", web count " .. n)
  return true
end):build()
workflow.define("w", { tasks = { pair, web, after } })
)");
  CmdResult r = c.Cli({"run", "w", "-f", "wf.sloth", "-o", "json"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  json out = ParseJson(r.out);
  ASSERT_TRUE(out.is_object()) << Describe(r);
  EXPECT_EQ(out["tasks"]["pair"]["output"], (json{{"w1", {{"me", "w1"}}}, {"d1", {{"me", "d1"}}}}))
      << out.dump(2);
  EXPECT_EQ(out["tasks"]["web"]["output"], (json{{"w1", {{"me", "w1"}}}, {"w2", {{"me", "w2"}}}}))
      << out.dump(2);
  EXPECT_EQ(out["tasks"]["after"]["status"], "Success") << out.dump(2);
  EXPECT_NE(r.output().find("pair saw w1+d1, web count 2"), std::string::npos) << Describe(r);

  box.Write("ghost.sloth", R"(
local t = task("t"):delegate_to("ghost"):command(function() return true end):build()
workflow.define("g", { tasks = { t } })
)");
  auto start = Clock::now();
  CmdResult ghost = c.Cli({"run", "g", "-f", "ghost.sloth"});
  EXPECT_NE(ghost.exit_code, 0) << Describe(ghost);
  EXPECT_LT(SecondsSince(start), 10.0);
  EXPECT_NE(ghost.output().find("agent ghost not found"), std::string::npos) << Describe(ghost);

  // Log lines arrive while the remote task still runs.
  box.Write("live.sloth", R"(
local t = task("live"):delegate_to("w2"):command(function()
  log.info("first tick")
  exec.run("sleep 4")
  log.info("last tick")
  return true
end):build()
workflow.define("l", { tasks = { t } })
)");
  pid_t run = c.Background("live", {"run", "l", "-f", "live.sloth", "--master", c.master()});
  auto live = [&] { return ReadFile(box.root() / "live.out") + ReadFile(box.root() / "live.err"); };
  EXPECT_TRUE(WaitFor([&] { return live().find("first tick") != std::string::npos; }, seconds(10)))
      << live();
  EXPECT_EQ(live().find("last tick"), std::string::npos) << "the log must be live: " << live();
  EXPECT_EQ(c.WaitExit(run, seconds(20)), 0) << live();
  EXPECT_NE(live().find("[w2] first tick"), std::string::npos) << live();
  EXPECT_NE(live().find("last tick"), std::string::npos) << live();
}

TEST(Distributed, TwentySimulatedAgentsInOneProcess) {
  Sandbox box;
  Cluster c(box);
  ASSERT_TRUE(c.StartMaster()) << c.MasterLog();
  std::vector<std::string> tokens = c.Tokens(20);
  ASSERT_EQ(tokens.size(), 20u);
  std::string file;
  for (const std::string& t : tokens) file += t + "\n";
  WriteFile(box.root() / "tokens.txt", file);
  c.StartAgent("sim", {"--simulate", "20"}, (box.root() / "tokens.txt").string());
  std::vector<std::string> names;
  for (int i = 1; i <= 20; ++i) names.push_back("sim-" + std::to_string(i));
  ASSERT_TRUE(c.WaitActive(names, seconds(20))) << c.List().dump(1) << c.AllAgentLogs();

  auto start = Clock::now();
  CmdResult r = c.Cli({"agent", "exec", "--all", "true", "-o", "json"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_LT(SecondsSince(start), 10.0);
  json arr = ParseJson(r.out);
  ASSERT_TRUE(arr.is_array()) << Describe(r);
  std::set<std::string> ok;
  for (const json& e : arr)
    if (e.value("success", false)) ok.insert(e.value("agent", ""));
  EXPECT_EQ(ok, std::set<std::string>(names.begin(), names.end())) << arr.dump(1);
}

// `agent shell`: what is typed reaches a shell on a pseudo-terminal on the agent; its exit status
// is the command's.
TEST(Distributed, AgentShellRunsAShellOnAPseudoTerminal) {
  Sandbox box;
  Cluster c(box);
  ASSERT_TRUE(c.StartMaster()) << c.MasterLog();
  c.StartAgent("sh1");
  ASSERT_TRUE(c.WaitActive({"sh1"}, seconds(15))) << c.AllAgentLogs();
  CmdResult r = box.Run({"agent", "shell", "sh1", "--master", c.master()},
                        "echo shell-says $((6*7)); tty; stty size\nexit 0\n", seconds(20));
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("shell-says 42"), std::string::npos) << Describe(r);
  EXPECT_NE(r.out.find("/dev/pts/"), std::string::npos) << Describe(r);
  EXPECT_NE(r.out.find("24 80"), std::string::npos) << Describe(r);  // no terminal here: 24x80
  CmdResult failed =
      box.Run({"agent", "shell", "sh1", "--master", c.master()}, "exit 4\n", seconds(20));
  EXPECT_EQ(failed.exit_code, 1) << Describe(failed);
  // The end of input ends the shell (Ctrl-D), even without `exit`.
  CmdResult eof = box.Run({"agent", "shell", "sh1", "--master", c.master()}, "true\n", seconds(20));
  EXPECT_EQ(eof.exit_code, 0) << Describe(eof);
  CmdResult ghost = box.Run({"agent", "shell", "ghost", "--master", c.master()}, "", seconds(20));
  EXPECT_EQ(ghost.exit_code, 1) << Describe(ghost);
  EXPECT_NE(ghost.err.find("not found"), std::string::npos) << Describe(ghost);
}

// Inside delegated tasks, state.* is the master's store: two agents incrementing under
// state.with_lock at once lose no update, and the master's data dir sees the values.
TEST(Distributed, DelegatedStateIsTheMastersStoreAndItsLockIsShared) {
  Sandbox box;
  Cluster c(box);
  ASSERT_TRUE(c.StartMaster()) << c.MasterLog();
  c.StartAgent("s1");
  c.StartAgent("s2");
  ASSERT_TRUE(c.WaitActive({"s1", "s2"}, seconds(15))) << c.AllAgentLogs();
  box.Write("wf.sloth", R"(
local bump = task("bump")
  :delegate_to({ "s1", "s2" })
  :command(function(this)
    for i = 1, 20 do
      state.with_lock("counter-lock", function()
        local n = state.get("counter") or 0
        state.set("counter", n + 1)
      end)
    end
    state.set("seen-" .. this.agent.get(), true)
    return true
  end)
  :build()
workflow.define("w", { tasks = { bump } })
)");
  CmdResult run = c.Cli({"run", "w", "-f", "wf.sloth", "-o", "json"}, seconds(60));
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  json doc = json::parse(run.out, nullptr, false);
  EXPECT_EQ(doc["tasks"]["bump"]["agents"], json::array({"s1", "s2"})) << run.out;
  CmdResult counter = box.Run({"state", "get", "counter"});  // the master's data dir
  EXPECT_EQ(counter.out, "40\n") << Describe(counter);
  EXPECT_EQ(box.Run({"state", "get", "seen-s1"}).out, "true\n");
  EXPECT_EQ(box.Run({"state", "get", "seen-s2"}).out, "true\n");
}

// stack.* inside a delegated task records on the run's stack in the master's store: a second run
// finds the resource unchanged.
TEST(Distributed, DelegatedStackCallsRecordOnTheRunnersStack) {
  Sandbox box;
  Cluster c(box);
  ASSERT_TRUE(c.StartMaster()) << c.MasterLog();
  c.StartAgent("k1");
  ASSERT_TRUE(c.WaitActive({"k1"}, seconds(15))) << c.AllAgentLogs();
  box.Write("wf.sloth", R"(
local t = task("vm"):delegate_to("k1"):command(function()
  local status = stack.register_resource({ type = "vm", name = "web", properties = { size = 2 } })
  return true, "ok", { status = status, stack = stack.current().name }
end):build()
workflow.define("infra", { tasks = { t } })
)");
  CmdResult first = c.Cli({"run", "infra", "-f", "wf.sloth", "-o", "json"}, seconds(60));
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  json doc = json::parse(first.out, nullptr, false);
  EXPECT_EQ(doc["tasks"]["vm"]["output"]["status"], "created") << first.out;
  EXPECT_EQ(doc["tasks"]["vm"]["output"]["stack"], "infra") << first.out;
  CmdResult resources = box.Run({"stack", "resources", "infra", "-o", "json"});
  json list = json::parse(resources.out, nullptr, false);
  ASSERT_TRUE(list.is_array() && list.size() == 1) << Describe(resources);
  EXPECT_EQ(list[0]["name"], "web");
  CmdResult second = c.Cli({"run", "infra", "-f", "wf.sloth", "-o", "json"}, seconds(60));
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_EQ(json::parse(second.out, nullptr, false)["tasks"]["vm"]["output"]["status"], "unchanged")
      << second.out;
  // The run record names the agent the task ran on.
  CmdResult history = box.Run({"stack", "history", "infra", "-o", "json"});
  json runs = json::parse(history.out, nullptr, false);
  ASSERT_TRUE(runs.is_array() && !runs.empty()) << Describe(history);
  EXPECT_EQ(runs[0]["tasks"][0]["agent"], "k1") << history.out;
}

// The master records agent.* events and runs the scheduler (system.startup).
TEST(Distributed, TheMasterEmitsAgentEvents) {
  Sandbox box;
  Cluster c(box);
  ASSERT_TRUE(c.StartMaster()) << c.MasterLog();
  pid_t agent = c.StartAgent("ev1", {"--label", "role=db"});
  ASSERT_TRUE(c.WaitActive({"ev1"}, seconds(15))) << c.AllAgentLogs();
  c.Kill(agent);
  ASSERT_TRUE(WaitFor([&] { return c.StatusOf("ev1") == "Inactive"; }, seconds(10)));
  auto types = [&] {
    CmdResult r = box.Run({"events", "list", "-o", "json", "--limit", "0"});
    std::set<std::string> seen;
    json list = json::parse(r.out, nullptr, false);
    if (list.is_array())
      for (const json& e : list) seen.insert(e.value("type", ""));
    return seen;
  };
  ASSERT_TRUE(WaitFor([&] { return types().count("agent.disconnected") > 0; }, seconds(10)))
      << c.MasterLog();
  std::set<std::string> seen = types();
  for (const char* t : {"system.startup", "agent.registered", "agent.connected"})
    EXPECT_EQ(seen.count(t), 1u) << t;
  CmdResult connected = box.Run({"events", "list", "--type", "agent.connected", "-o", "json"});
  json list = json::parse(connected.out, nullptr, false);
  ASSERT_TRUE(list.is_array() && !list.empty()) << connected.out;
  EXPECT_EQ(list[0]["data"]["agent"]["name"], "ev1") << connected.out;
  EXPECT_EQ(list[0]["data"]["agent"]["labels"]["role"], "db") << connected.out;
}

// A delegated task's :run() from inside another task is refused, not run here by mistake.
TEST(Distributed, RunningADelegatedTaskInlineIsAClearError) {
  Sandbox box;
  box.Write("wf.sloth", R"(
local outer = task("outer"):command(function()
  local sub = task("sub"):delegate_to("a1"):command(function() return true end):build()
  local ok, msg = sub:run()
  return ok, msg
end):build()
workflow.define("w", { tasks = { outer } })
)");
  CmdResult r = box.Run({"run", "w", "-f", "wf.sloth"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.output().find("wf.sloth:4"), std::string::npos) << Describe(r);
  EXPECT_NE(r.output().find(":run() of a delegated task is not supported"), std::string::npos)
      << Describe(r);
}

// `agent install` over a real sshd on 127.0.0.1: the binary and its plugin land under the prefix,
// an agent is enrolled there and started in the background, and it works.
TEST(Distributed, AgentInstallCopiesTheBinaryOverSshAndStartsTheAgent) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run sshd";
  if (access("/usr/sbin/sshd", X_OK) != 0) GTEST_SKIP() << "openssh-server is not installed";
  Sandbox box;
  Cluster c(box);
  ASSERT_TRUE(c.StartMaster()) << c.MasterLog();
  CmdResult sshd = box.Spawn({"bash", "-c", kStartSshd});
  ASSERT_EQ(sshd.exit_code, 0) << Describe(sshd);
  struct StopPids {  // sshd and the installed agent are daemons: end them whatever happens
    std::vector<pid_t> pids;
    ~StopPids() {
      for (pid_t p : pids) kill(p, SIGKILL);
    }
  } daemons;
  daemons.pids.push_back(std::stoi(ReadFile(box.work() / "sshd/sshd.pid")));
  std::string port = Lines(sshd.out).back();
  std::string prefix = (box.root() / "remote").string();
  std::string data = (box.root() / "remote-data").string();
  CmdResult r = c.Cli({"agent", "install", "far-1", "--ssh-host", "127.0.0.1", "--ssh-port", port,
                       "--ssh-key", "sshd/client_key", "--known-hosts", "sshd/known_hosts",
                       "--prefix", prefix, "--agent-data-dir", data, "--label", "role=far"},
                      seconds(90));
  std::string pid_marker = "(pid ";
  if (size_t at = r.out.find(pid_marker); at != std::string::npos)
    daemons.pids.push_back(std::atoi(r.out.c_str() + at + pid_marker.size()));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("agent far-1 is installed on 127.0.0.1 and Active"), std::string::npos)
      << Describe(r);
  EXPECT_TRUE(std::filesystem::exists(prefix + "/bin/sloth-runner"));
  EXPECT_TRUE(std::filesystem::exists(prefix + "/lib/sloth-runner/libsloth-rpc.so"));
  CmdResult home = c.Cli({"agent", "exec", "far-1", "printf %s \"$SLOTH_RUNNER_HOME\""});
  EXPECT_EQ(home.exit_code, 0) << Describe(home);
  EXPECT_EQ(home.out, data);
  CmdResult listed = c.Cli({"agent", "list", "--label", "role=far", "-o", "json"});
  EXPECT_NE(listed.out.find("far-1"), std::string::npos) << Describe(listed);
  EXPECT_EQ(c.Cli({"agent", "stop", "far-1"}).exit_code, 0);
  // A second install of the same name is refused by the master (the name is taken).
  CmdResult again = c.Cli({"agent", "install", "far-1", "--ssh-host", "127.0.0.1", "--ssh-port",
                           port, "--ssh-key", "sshd/client_key", "--known-hosts",
                           "sshd/known_hosts", "--prefix", prefix, "--agent-data-dir", data + "-2"},
                          seconds(90));
  EXPECT_NE(again.exit_code, 0) << Describe(again);
  // An unreachable host is exit 3.
  CmdResult nowhere = c.Cli({"agent", "install", "far-2", "--ssh-host", "127.0.0.1", "--ssh-port",
                             "1", "--known-hosts", "sshd/known_hosts", "--prefix", prefix},
                            seconds(30));
  EXPECT_EQ(nowhere.exit_code, 3) << Describe(nowhere);
}

// Two processes for one agent identity would push each other off the master: the second one
// exits at once.
TEST(Distributed, ASecondProcessForTheSameAgentIsRefused) {
  Sandbox box;
  Cluster c(box);
  ASSERT_TRUE(c.StartMaster()) << c.MasterLog();
  c.StartAgent("twin");
  ASSERT_TRUE(c.WaitActive({"twin"}, seconds(15))) << c.AllAgentLogs();
  CmdResult second = box.Run(c.AgentArgs("twin", ""), "", seconds(20));
  EXPECT_EQ(second.exit_code, 1) << Describe(second);
  EXPECT_NE(second.err.find("is running already"), std::string::npos) << Describe(second);
  EXPECT_EQ(c.StatusOf("twin"), "Active");
}

}  // namespace
}  // namespace sloth::e2e
