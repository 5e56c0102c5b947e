// `master ...` and `agent ...`: option checks, --daemon, the masters file; the rest is the
// plugin's (rpc/plugin.h).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "base/duration.h"
#include "cli/data_dir.h"
#include "cli/distributed.h"
#include "cli/events_run.h"
#include "core/state_store.h"
#include "rpc/plugin.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sloth {
namespace {

Result<RpcPlugin*> Plugin() {
  Result<RpcPlugin*> plugin = LoadRpcPlugin();
  if (!plugin.ok()) Fail(kExitFailed, plugin.error());
  return plugin;
}

bool ParseDurationOption(const std::string& name, const std::string& text, Duration* out) {
  Result<Duration> d = ParseDuration(text);
  if (!d.ok() || d->count() < 0) {
    Fail(kExitBadInput, name + ": " + (d.ok() ? "must not be negative" : d.error()));
    return false;
  }
  *out = *d;
  return true;
}

// --daemon: the process carries on in the background, detached, output appended to `log`.
// Returns false in the original process (which has printed the daemon's pid and must exit 0).
bool Daemonize(const std::string& log, const std::string& what) {
  int fds[2];
  if (pipe(fds) != 0) return true;  // cannot: stay in the foreground
  pid_t first = fork();
  if (first < 0) return true;
  if (first > 0) {
    close(fds[1]);
    pid_t daemon = 0;
    ssize_t n = read(fds[0], &daemon, sizeof daemon);
    close(fds[0]);
    waitpid(first, nullptr, 0);
    if (n == sizeof daemon)
      std::printf("%s started in the background (pid %d), logging to %s\n", what.c_str(), daemon,
                  log.c_str());
    std::fflush(stdout);
    _exit(n == sizeof daemon ? 0 : 1);
  }
  setsid();
  pid_t second = fork();
  if (second != 0) {
    if (second > 0) (void)!write(fds[1], &second, sizeof second);
    _exit(0);
  }
  close(fds[0]);
  close(fds[1]);
  std::error_code ec;
  fs::create_directories(fs::path(log).parent_path(), ec);
  int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (in >= 0) dup2(in, 0);
  if (out >= 0) dup2(out, 1), dup2(out, 2);
  return true;
}

// DATA/masters.json: {"selected": NAME, "masters": {NAME: {address, description, added_at}}}
std::string MastersPath(const GlobalOptions& g) { return DataDir(g.data_dir) + "/masters.json"; }

json ReadMasters(const GlobalOptions& g) {
  std::ifstream in(MastersPath(g));
  json j = in ? json::parse(in, nullptr, false) : json::object();
  if (!j.is_object()) j = json::object();
  if (!j.contains("masters") || !j["masters"].is_object()) j["masters"] = json::object();
  return j;
}

int WriteMasters(const GlobalOptions& g, const json& j) {
  std::string path = MastersPath(g);
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    if (!out) return Fail(kExitFailed, "cannot write " + tmp);
  }
  fs::rename(tmp, path, ec);
  if (ec) return Fail(kExitFailed, "cannot write " + path + ": " + ec.message());
  return kExitOk;
}

bool ValidAddress(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string port = address.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  for (char c : port)
    if (!isdigit(static_cast<unsigned char>(c))) return false;
  int p = std::stoi(port);
  return p > 0 && p < 65536;
}

// Runs a program (argv[0] on PATH) with this process's stdio; its exit code, 127 if it could not
// start.
int RunProgram(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return 127;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// 'text' for a POSIX shell.
std::string ShellQuote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The options ssh and scp share (scp spells the port -P).
std::vector<std::string> SshArgs(const AgentCliOptions& o, const char* port_flag) {
  std::vector<std::string> args = {"-o", "BatchMode=yes", port_flag, std::to_string(o.ssh_port)};
  if (!o.ssh_key.empty()) args.insert(args.end(), {"-i", o.ssh_key});
  if (!o.known_hosts.empty())
    args.insert(args.end(), {"-o", "UserKnownHostsFile=" + o.known_hosts});
  return args;
}

}  // namespace

int CmdMasterInit(const GlobalOptions& global) {
  Result<RpcPlugin*> plugin = Plugin();
  return plugin.ok() ? (*plugin)->MasterInit(DataDir(global.data_dir)) : kExitFailed;
}

int CmdMasterStart(const GlobalOptions& global, const MasterCliOptions& o) {
  MasterStartOptions m;
  m.data_dir = DataDir(global.data_dir);
  m.port = o.port;
  m.bind = o.bind;
  if (o.port < 0 || o.port > 65535) return Fail(kExitBadInput, "--port must be 0..65535");
  if (o.daemon && !Daemonize(m.data_dir + "/logs/master.log", "master")) return kExitOk;
  Result<RpcPlugin*> plugin = Plugin();
  if (!plugin.ok()) return kExitFailed;
  // The master also runs the scheduler and the event queue (distributed.md "Topology").
  return ServeScheduler(
      global, o.grace, "master", [&](ServiceEmit emit) -> Result<std::function<void()>> {
        m.emit = emit;
        auto server = (*plugin)->StartMaster(m);
        if (!server.ok()) return server.status();
        // Every copy of the stop function shares one owner of the server.
        auto running = std::make_shared<std::unique_ptr<MasterServer>>(std::move(*server));
        return std::function<void()>([running] { running->reset(); });
      });
}

int CmdAgentStart(const GlobalOptions& global, const AgentCliOptions& o) {
  AgentStartOptions a;
  a.data_dir = DataDir(global.data_dir);
  a.name = o.name;
  a.master = o.master;
  a.token = o.token;
  a.labels = o.labels;
  a.simulate = o.simulate;
  if (o.simulate < 0) return Fail(kExitBadInput, "--simulate must not be negative");
  if (a.master.empty()) {
    Result<std::string> m = ResolveMaster(a.data_dir, "");
    if (!m.ok()) return Fail(kExitBadInput, m.error());
    a.master = *m;
  }
  if (!ValidAddress(a.master))
    return Fail(kExitBadInput, "--master: want HOST:PORT, got \"" + a.master + "\"");
  if (o.ignored_port)
    std::fprintf(stderr,
                 "note: agents listen on no port (they dial out to the master); --port is "
                 "ignored\n");
  for (const std::string& label : o.labels)
    if (label.find('=') == std::string::npos || label.front() == '=')
      return Fail(kExitBadInput, "--label: want KEY=VALUE, got \"" + label + "\"");
  if (!ParseDurationOption("--heartbeat", o.heartbeat, &a.heartbeat) ||
      !ParseDurationOption("--report-every", o.report_every, &a.report_every))
    return kExitBadInput;
  if (a.heartbeat < std::chrono::milliseconds(100))
    return Fail(kExitBadInput, "--heartbeat: at least 100ms");
  if (o.daemon && !Daemonize(a.data_dir + "/logs/agent-" + a.name + ".log", "agent " + a.name))
    return kExitOk;
  Result<RpcPlugin*> plugin = Plugin();
  return plugin.ok() ? (*plugin)->AgentStart(a) : kExitFailed;
}

int CmdAgentInstall(const GlobalOptions& global, const AgentCliOptions& o) {
  std::string data_dir = DataDir(global.data_dir);
  Result<std::string> master = ResolveMaster(data_dir, o.master);
  if (!master.ok()) return Fail(kExitBadInput, master.error());
  std::string agent_master = o.agent_master.empty() ? *master : o.agent_master;
  if (!ValidAddress(agent_master))
    return Fail(kExitBadInput, "--agent-master: want HOST:PORT, got \"" + agent_master + "\"");
  for (const std::string& label : o.labels)
    if (label.find('=') == std::string::npos || label.front() == '=')
      return Fail(kExitBadInput, "--label: want KEY=VALUE, got \"" + label + "\"");
  if (o.prefix.empty() || o.prefix.front() != '/')
    return Fail(kExitBadInput, "--prefix must be an absolute path");
  Result<RpcPlugin*> plugin = Plugin();
  if (!plugin.ok()) return kExitFailed;
  Result<std::string> plugin_path = RpcPluginPath();
  if (!plugin_path.ok()) return Fail(kExitFailed, plugin_path.error());
  Result<std::string> token = (*plugin)->CreateJoinToken(data_dir, *master, std::chrono::hours(1));
  if (!token.ok()) return Fail(kExitUnreachable, token.error());

  std::string target = o.ssh_user + "@" + o.ssh_host;
  std::string bin = o.prefix + "/bin/sloth-runner", lib = o.prefix + "/lib/sloth-runner";
  auto ssh = [&](const std::string& command) {
    std::vector<std::string> argv = {"ssh"};
    for (const std::string& a : SshArgs(o, "-p")) argv.push_back(a);
    argv.insert(argv.end(), {target, command});
    return RunProgram(argv);
  };
  auto scp = [&](const std::string& from, const std::string& to) {
    std::vector<std::string> argv = {"scp", "-q"};
    for (const std::string& a : SshArgs(o, "-P")) argv.push_back(a);
    argv.insert(argv.end(), {from, target + ":" + to});
    return RunProgram(argv);
  };
  std::printf("installing sloth-runner on %s in %s\n", o.ssh_host.c_str(), o.prefix.c_str());
  std::fflush(stdout);
  if (int rc = ssh("mkdir -p " + ShellQuote(o.prefix + "/bin") + " " + ShellQuote(lib)); rc != 0)
    return Fail(kExitUnreachable, "ssh to " + target + " failed (exit " + std::to_string(rc) + ")");
  // Copied aside, then renamed: an agent running the old binary keeps working until restarted.
  if (scp(SelfExecutable(), bin + ".new") != 0 ||
      scp(*plugin_path, lib + "/libsloth-rpc.so.new") != 0)
    return Fail(kExitFailed, "copying the binary to " + target + " failed");
  std::string start = ShellQuote(bin) + " agent start --daemon --name " + ShellQuote(o.name) +
                      " --master " + ShellQuote(agent_master) + " --token " + ShellQuote(*token);
  if (!o.agent_data_dir.empty()) start += " --data-dir " + ShellQuote(o.agent_data_dir);
  for (const std::string& label : o.labels) start += " --label " + ShellQuote(label);
  std::string install = "chmod 755 " + ShellQuote(bin + ".new") + " && mv -f " +
                        ShellQuote(bin + ".new") + " " + ShellQuote(bin) + " && mv -f " +
                        ShellQuote(lib + "/libsloth-rpc.so.new") + " " +
                        ShellQuote(lib + "/libsloth-rpc.so") + " && " + start;
  if (int rc = ssh(install); rc != 0)
    return Fail(kExitFailed,
                "starting the agent on " + target + " failed (exit " + std::to_string(rc) + ")");
  Result<bool> active =
      (*plugin)->WaitForAgent(data_dir, *master, o.name, std::chrono::seconds(30));
  if (!active.ok()) return Fail(kExitUnreachable, active.error());
  if (!*active)
    return Fail(kExitFailed, "agent " + o.name +
                                 " did not connect within 30 s (see its log in "
                                 "DATA/logs/ on " +
                                 o.ssh_host + ")");
  std::printf("agent %s is installed on %s and Active\n", o.name.c_str(), o.ssh_host.c_str());
  return kExitOk;
}

int CmdAgentAdmin(const GlobalOptions& global, const std::string& verb, const AgentCliOptions& o) {
  AgentCommandOptions c;
  c.data_dir = DataDir(global.data_dir);
  Result<std::string> master = ResolveMaster(c.data_dir, o.master);
  if (!master.ok()) return Fail(kExitBadInput, master.error());
  c.master = *master;
  c.verb = verb;
  c.name = o.name;
  c.command = o.command;
  c.all = o.all;
  c.label = o.label;
  c.output = o.output;
  c.count = o.count;
  if (!ParseDurationOption("--ttl", o.ttl, &c.ttl) ||
      !ParseDurationOption("--timeout", o.timeout, &c.timeout))
    return kExitBadInput;
  if (verb == "exec") {
    if (c.all && !c.label.empty()) return Fail(kExitBadInput, "give --all or --label, not both");
    bool many = c.all || !c.label.empty();
    // `agent exec --all CMD`: the one positional is the command.
    if (many && c.command.empty()) std::swap(c.command, c.name);
    if (!many && c.name.empty()) return Fail(kExitBadInput, "agent exec needs NAME and COMMAND");
    if (c.command.empty()) return Fail(kExitBadInput, "agent exec needs a COMMAND");
    if (many && !o.name.empty() && !o.command.empty())
      return Fail(kExitBadInput, "with --all or --label, give only the COMMAND");
  }
  if (c.output != "table" && c.output != "json" && c.output != "text")
    return Fail(kExitBadInput, "-o: table, text or json");
  Result<RpcPlugin*> plugin = Plugin();
  return plugin.ok() ? (*plugin)->AgentCommand(c) : kExitFailed;
}

int CmdMasterAdd(const GlobalOptions& global, const MasterCliOptions& o) {
  if (!ValidAddress(o.address))
    return Fail(kExitBadInput, "want HOST:PORT, got \"" + o.address + "\"");
  json j = ReadMasters(global);
  if (j["masters"].contains(o.name))
    return Fail(kExitBadInput, "master " + o.name + " exists (use `master update`)");
  j["masters"][o.name] = {
      {"address", o.address}, {"description", o.description}, {"added_at", NowUnixMs()}};
  if (!j.contains("selected") || !j["selected"].is_string()) j["selected"] = o.name;
  if (int rc = WriteMasters(global, j); rc != kExitOk) return rc;
  std::printf("added master %s (%s)%s\n", o.name.c_str(), o.address.c_str(),
              j["selected"] == o.name ? ", selected" : "");
  return kExitOk;
}

int CmdMasterList(const GlobalOptions& global, const MasterCliOptions& o) {
  json j = ReadMasters(global);
  std::string selected = j.value("selected", "");
  if (o.output == "json") {
    json out = json::array();
    for (auto& [name, m] : j["masters"].items())
      out.push_back({{"name", name},
                     {"address", m.value("address", "")},
                     {"description", m.value("description", "")},
                     {"selected", name == selected}});
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (j["masters"].empty()) {
    std::printf("no masters (add one: `master add NAME HOST:PORT`)\n");
    return kExitOk;
  }
  for (auto& [name, m] : j["masters"].items())
    std::printf("%s %-16s %-24s %s\n", name == selected ? "*" : " ", name.c_str(),
                m.value("address", "").c_str(), m.value("description", "").c_str());
  return kExitOk;
}

int CmdMasterSelect(const GlobalOptions& global, const MasterCliOptions& o) {
  json j = ReadMasters(global);
  if (!j["masters"].contains(o.name)) return Fail(kExitFailed, "master " + o.name + " not found");
  j["selected"] = o.name;
  if (int rc = WriteMasters(global, j); rc != kExitOk) return rc;
  std::printf("selected master %s\n", o.name.c_str());
  return kExitOk;
}

int CmdMasterShow(const GlobalOptions& global, const MasterCliOptions& o) {
  json j = ReadMasters(global);
  std::string name = o.name.empty() ? j.value("selected", "") : o.name;
  if (name.empty()) return Fail(kExitFailed, "no master selected (`master select NAME`)");
  if (!j["masters"].contains(name)) return Fail(kExitFailed, "master " + name + " not found");
  json m = j["masters"][name];
  m["name"] = name;
  m["selected"] = name == j.value("selected", "");
  std::cout << m.dump(2) << "\n";
  return kExitOk;
}

int CmdMasterUpdate(const GlobalOptions& global, const MasterCliOptions& o) {
  if (!ValidAddress(o.address))
    return Fail(kExitBadInput, "want HOST:PORT, got \"" + o.address + "\"");
  json j = ReadMasters(global);
  if (!j["masters"].contains(o.name)) return Fail(kExitFailed, "master " + o.name + " not found");
  j["masters"][o.name]["address"] = o.address;
  if (!o.description.empty()) j["masters"][o.name]["description"] = o.description;
  if (int rc = WriteMasters(global, j); rc != kExitOk) return rc;
  std::printf("master %s is now %s\n", o.name.c_str(), o.address.c_str());
  return kExitOk;
}

int CmdMasterRemove(const GlobalOptions& global, const MasterCliOptions& o) {
  json j = ReadMasters(global);
  if (!j["masters"].contains(o.name)) return Fail(kExitFailed, "master " + o.name + " not found");
  j["masters"].erase(o.name);
  if (j.value("selected", "") == o.name) j.erase("selected");
  if (int rc = WriteMasters(global, j); rc != kExitOk) return rc;
  std::printf("removed master %s\n", o.name.c_str());
  return kExitOk;
}

}  // namespace sloth
