#include "rpc/client.h"

#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/ids.h"
#include "cli/commands.h"
#include "core/state_store.h"
#include "rpc/credentials.h"
#include "sloth/v1/agent.grpc.pb.h"

namespace sloth {
namespace {

namespace v1 = ::sloth::v1;
using nlohmann::json;

constexpr auto kCallDeadline = std::chrono::seconds(10);

void Deadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
}

// Exit code and message for a failed call (cli.md "Exit codes").
int Fail(const grpc::Status& s, const std::string& what) {
  std::string why = s.error_message();
  switch (s.error_code()) {
    case grpc::StatusCode::NOT_FOUND:
      std::fprintf(stderr, "error: %s\n", why.c_str());
      return kExitFailed;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      std::fprintf(stderr, "error: %s: %s\n", what.c_str(), why.c_str());
      return kExitUnreachable;
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      std::fprintf(stderr, "error: refused by the master: %s\n", why.c_str());
      return kExitFailed;
    default:
      std::fprintf(stderr, "error: %s: %s\n", what.c_str(), why.c_str());
      return kExitFailed;
  }
}

std::string Ago(int64_t unix_ms) {
  if (unix_ms <= 0) return "never";
  int64_t s = (NowUnixMs() - unix_ms) / 1000;
  if (s < 0) s = 0;
  if (s < 120) return std::to_string(s) + (s == 1 ? " second ago" : " seconds ago");
  if (s < 7200) return std::to_string(s / 60) + " minutes ago";
  if (s < 172800) return std::to_string(s / 3600) + " hours ago";
  return std::to_string(s / 86400) + " days ago";
}

json AgentJson(const v1::AgentInfo& a, bool details) {
  json labels = json::object();
  for (const auto& [k, v] : a.labels()) labels[k] = v;
  json j = {{"name", a.name()},
            {"address", a.address()},
            {"status", a.active() ? "Active" : "Inactive"},
            {"last_heartbeat", Ago(a.last_heartbeat_unix_ms())},
            {"last_heartbeat_unix_ms", a.last_heartbeat_unix_ms()},
            {"version", a.version()},
            {"labels", labels},
            {"enrolled_unix_ms", a.enrolled_unix_ms()}};
  if (details) {
    j["facts"] = json::parse(a.facts_json().empty() ? "{}" : a.facts_json(), nullptr, false);
    j["metrics"] = json::parse(a.metrics_json().empty() ? "{}" : a.metrics_json(), nullptr, false);
  }
  return j;
}

std::string LabelsText(const v1::AgentInfo& a) {
  std::string out;
  for (const auto& [k, v] : a.labels()) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out.empty() ? "-" : out;
}

class Admin {
 public:
  Admin(const AgentCommandOptions& o, std::shared_ptr<grpc::Channel> channel)
      : o_(o), stub_(v1::Master::NewStub(channel)) {}

  int Dispatch() {
    if (o_.verb == "token") return Token();
    if (o_.verb == "list") return List();
    if (o_.verb == "get" || o_.verb == "metrics") return Get();
    if (o_.verb == "exec") return o_.all || !o_.label.empty() ? ExecMany() : ExecOne();
    if (o_.verb == "stop" || o_.verb == "delete") return StopOrDelete();
    if (o_.verb == "shell") return Shell();
    std::fprintf(stderr, "error: unknown agent command %s\n", o_.verb.c_str());
    return kExitBadInput;
  }

 private:
  int Token() {
    if (o_.count < 1) {
      std::fprintf(stderr, "error: --count must be at least 1\n");
      return kExitBadInput;
    }
    std::vector<std::string> tokens;
    int64_t expires = 0;
    for (int i = 0; i < o_.count; ++i) {
      grpc::ClientContext ctx;
      Deadline(ctx);
      v1::CreateTokenRequest req;
      req.set_ttl_ms(std::chrono::duration_cast<std::chrono::milliseconds>(o_.ttl).count());
      v1::CreateTokenResponse resp;
      grpc::Status s = stub_->CreateToken(&ctx, req, &resp);
      if (!s.ok()) return Fail(s, "cannot create a join token");
      tokens.push_back(resp.token());
      expires = resp.expires_unix_ms();
    }
    std::time_t t = expires / 1000;
    char when[64];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
    std::printf("join token%s (each works once, until %s):\n", o_.count > 1 ? "s" : "", when);
    for (const std::string& token : tokens) std::printf("%s\n", token.c_str());
    return kExitOk;
  }

  Result<std::vector<v1::AgentInfo>> Fetch(const std::string& name, const std::string& label,
                                           int* code) {
    grpc::ClientContext ctx;
    Deadline(ctx);
    v1::ListAgentsRequest req;
    req.set_name(name);
    req.set_label(label);
    v1::ListAgentsResponse resp;
    grpc::Status s = stub_->ListAgents(&ctx, req, &resp);
    if (!s.ok()) {
      *code = Fail(s, "cannot reach the master at " + o_.master);
      return Status::Error(s.error_message());
    }
    return std::vector<v1::AgentInfo>(resp.agents().begin(), resp.agents().end());
  }

  int List() {
    int code = 0;
    Result<std::vector<v1::AgentInfo>> agents = Fetch("", o_.label, &code);
    if (!agents.ok()) return code;
    if (o_.output == "json") {
      json out = json::array();
      for (const auto& a : *agents) out.push_back(AgentJson(a, true));
      std::cout << out.dump(2) << "\n";
      return kExitOk;
    }
    if (agents->empty()) {
      std::printf("no agents (enrol one: `agent token create`, then `agent start --token`)\n");
      return kExitOk;
    }
    std::printf("%-20s %-16s %-9s %-18s %-8s %s\n", "NAME", "ADDRESS", "STATUS", "LAST HEARTBEAT",
                "VERSION", "LABELS");
    for (const auto& a : *agents)
      std::printf("%-20s %-16s %-9s %-18s %-8s %s\n", a.name().c_str(),
                  a.address().empty() ? "-" : a.address().c_str(),
                  a.active() ? "Active" : "Inactive", Ago(a.last_heartbeat_unix_ms()).c_str(),
                  a.version().empty() ? "-" : a.version().c_str(), LabelsText(a).c_str());
    return kExitOk;
  }

  int Get() {
    int code = 0;
    Result<std::vector<v1::AgentInfo>> agents = Fetch(o_.name, "", &code);
    if (!agents.ok()) return code;
    if (agents->empty()) {
      std::fprintf(stderr, "error: agent %s not found\n", o_.name.c_str());
      return kExitFailed;
    }
    json j = AgentJson(agents->front(), true);
    if (o_.verb == "metrics") {
      if (!agents->front().active()) {
        std::fprintf(stderr, "error: agent %s is inactive\n", o_.name.c_str());
        return kExitUnreachable;
      }
      std::cout << j["metrics"].dump(2) << "\n";
      return kExitOk;
    }
    if (o_.output == "json") {
      std::cout << j.dump(2) << "\n";
      return kExitOk;
    }
    for (const char* key : {"name", "address", "status", "last_heartbeat", "version"})
      std::printf("%-15s %s\n", key, j[key].get<std::string>().c_str());
    std::printf("%-15s %s\n", "labels", LabelsText(agents->front()).c_str());
    for (const char* key : {"facts", "metrics"})
      std::printf("%s:\n%s\n", key, j[key].dump(2).c_str());
    return kExitOk;
  }

  struct ExecOutcome {
    std::string agent;
    grpc::Status status;
    v1::JobResult result;
    std::string out, err;
  };

  ExecOutcome Exec(const std::string& agent, bool stream_live) {
    ExecOutcome r;
    r.agent = agent;
    grpc::ClientContext ctx;
    v1::RunRequest req;
    req.set_agent(agent);
    req.mutable_job()->set_command(o_.command);
    req.mutable_job()->set_timeout_ms(
        std::chrono::duration_cast<std::chrono::milliseconds>(o_.timeout).count());
    auto reader = stub_->Run(&ctx, req);
    v1::JobEvent event;
    bool have_result = false;
    while (reader->Read(&event)) {
      if (event.has_output()) {
        const std::string& data = event.output().data();
        bool err = event.output().stream() == v1::STDERR;
        (err ? r.err : r.out) += data;
        if (stream_live) {
          std::fwrite(data.data(), 1, data.size(), err ? stderr : stdout);
          std::fflush(err ? stderr : stdout);
        }
      } else if (event.has_result()) {
        r.result = event.result();
        have_result = true;
      }
    }
    r.status = reader->Finish();
    if (r.status.ok() && !have_result)
      r.status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the master sent no result");
    return r;
  }

  static bool Succeeded(const ExecOutcome& r) {
    return r.status.ok() && r.result.exit_code() == 0 && r.result.error().empty();
  }

  static json OutcomeJson(const ExecOutcome& r, const std::string& command) {
    json j = {{"agent", r.agent},
              {"command", command},
              {"exit_code", r.status.ok() ? r.result.exit_code() : -1},
              {"stdout", r.out},
              {"stderr", r.err},
              {"duration_ms", r.result.duration_ms()},
              {"success", Succeeded(r)}};
    std::string error = r.status.ok() ? r.result.error() : r.status.error_message();
    if (!error.empty()) j["error"] = error;
    return j;
  }

  int ExecOne() {
    bool json_out = o_.output == "json";
    ExecOutcome r = Exec(o_.name, !json_out);
    if (!r.status.ok()) return Fail(r.status, "cannot run on " + o_.name);
    if (json_out) std::cout << OutcomeJson(r, o_.command).dump(2) << "\n";
    if (Succeeded(r)) return kExitOk;
    if (!r.result.error().empty())
      std::fprintf(stderr, "error: %s: %s\n", o_.name.c_str(), r.result.error().c_str());
    else
      std::fprintf(stderr, "error: the command failed on %s (exit code %d)\n", o_.name.c_str(),
                   r.result.exit_code());
    return kExitFailed;
  }

  int ExecMany() {
    int code = 0;
    Result<std::vector<v1::AgentInfo>> agents = Fetch("", o_.label, &code);
    if (!agents.ok()) return code;
    std::vector<std::string> names;
    for (const auto& a : *agents)
      if (a.active()) names.push_back(a.name());
    if (names.empty()) {
      std::fprintf(stderr, "error: no active agent%s\n",
                   o_.label.empty() ? "" : (" with label " + o_.label).c_str());
      return kExitUnreachable;
    }
    std::vector<ExecOutcome> results(names.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < names.size(); ++i)
      threads.emplace_back([&, i] { results[i] = Exec(names[i], false); });
    for (std::thread& t : threads) t.join();
    bool all_ok = true;
    json out = json::array();
    for (const ExecOutcome& r : results) {
      all_ok = all_ok && Succeeded(r);
      out.push_back(OutcomeJson(r, o_.command));
    }
    if (o_.output == "json") {
      std::cout << out.dump(2) << "\n";
    } else {
      for (const ExecOutcome& r : results) {
        std::printf("== %s\n%s", r.agent.c_str(), r.out.c_str());
        if (!r.out.empty() && r.out.back() != '\n') std::printf("\n");
        if (!r.err.empty()) std::fprintf(stdout, "%s", r.err.c_str());
      }
      std::printf("\n%-20s %-8s %-6s %s\n", "AGENT", "RESULT", "EXIT", "DURATION");
      for (const ExecOutcome& r : results)
        std::printf("%-20s %-8s %-6d %lld ms\n", r.agent.c_str(), Succeeded(r) ? "ok" : "failed",
                    r.status.ok() ? r.result.exit_code() : -1,
                    static_cast<long long>(r.result.duration_ms()));
    }
    return all_ok ? kExitOk : kExitFailed;
  }

  int StopOrDelete() {
    grpc::ClientContext ctx;
    Deadline(ctx);
    v1::AgentRef ref;
    ref.set_name(o_.name);
    v1::Empty empty;
    grpc::Status s = o_.verb == "stop" ? stub_->StopAgent(&ctx, ref, &empty)
                                       : stub_->DeleteAgent(&ctx, ref, &empty);
    if (!s.ok()) return Fail(s, "cannot " + o_.verb + " " + o_.name);
    std::printf(o_.verb == "stop" ? "agent %s is stopping\n"
                                  : "agent %s deleted; its certificate is revoked\n",
                o_.name.c_str());
    return kExitOk;
  }

  // `agent shell`: this terminal, raw, wired to a shell on the agent's pseudo-terminal. Window
  // size changes are polled (the CLI blocks its signals, SIGWINCH included).
  int Shell() {
    grpc::ClientContext ctx;
    auto stream = stub_->Shell(&ctx);
    std::mutex write_mu;  // the input thread and this one both write
    bool tty = isatty(STDIN_FILENO);
    winsize size{};
    if (tty) ioctl(STDIN_FILENO, TIOCGWINSZ, &size);
    v1::ShellInput open;
    open.mutable_open()->set_agent(o_.name);
    const char* term = std::getenv("TERM");
    open.mutable_open()->mutable_spec()->set_term(term ? term : "");
    open.mutable_open()->mutable_spec()->mutable_size()->set_rows(size.ws_row);
    open.mutable_open()->mutable_spec()->mutable_size()->set_cols(size.ws_col);
    stream->Write(open);
    RawTerminal raw(tty);
    std::atomic<bool> done{false};
    std::thread input([&] { PumpInput(*stream, write_mu, tty, size, done); });
    v1::JobEvent event;
    std::optional<v1::JobResult> result;
    while (stream->Read(&event)) {
      if (event.has_output()) {
        const std::string& data = event.output().data();
        std::fwrite(data.data(), 1, data.size(), stdout);
        std::fflush(stdout);
      } else if (event.has_result()) {
        result = event.result();
      }
    }
    done = true;
    input.join();
    {
      std::lock_guard lock(write_mu);
      stream->WritesDone();
    }
    grpc::Status s = stream->Finish();
    raw.Restore();
    if (!result)
      return Fail(s.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "no result") : s,
                  "shell on " + o_.name);
    if (!result->error().empty()) {
      std::fprintf(stderr, "error: %s: %s\n", o_.name.c_str(), result->error().c_str());
      return kExitFailed;
    }
    return result->exit_code() == 0 ? kExitOk : kExitFailed;
  }

  // Keystrokes (and window sizes) up the stream until the shell ends. At the end of a
  // non-terminal stdin, one Ctrl-D: the remote shell sees end of input.
  static void PumpInput(grpc::ClientReaderWriter<v1::ShellInput, v1::JobEvent>& stream,
                        std::mutex& write_mu, bool tty, winsize size, std::atomic<bool>& done) {
    bool eof = false;
    int idle_ticks = 0;
    char buf[4096];
    while (!done) {
      pollfd p{STDIN_FILENO, POLLIN, 0};
      int ready =
          eof ? (std::this_thread::sleep_for(std::chrono::milliseconds(200)), 0) : poll(&p, 1, 200);
      // A Ctrl-D that arrives while a command runs can be lost: repeat it every second.
      if (eof && ++idle_ticks % 5 == 0) ready = 1;
      v1::ShellInput in;
      winsize now{};
      if (tty && ioctl(STDIN_FILENO, TIOCGWINSZ, &now) == 0 &&
          (now.ws_row != size.ws_row || now.ws_col != size.ws_col)) {
        size = now;
        in.mutable_resize()->set_rows(now.ws_row);
        in.mutable_resize()->set_cols(now.ws_col);
      }
      if (ready > 0 && eof) {
        in.set_data("\x04");
      } else if (ready > 0) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n > 0) {
          in.set_data(std::string(buf, static_cast<size_t>(n)));
        } else {
          eof = true;
          in.set_data("\x04");
        }
      }
      if (in.kind_case() == v1::ShellInput::KIND_NOT_SET) continue;
      std::lock_guard lock(write_mu);
      if (!done) stream.Write(in);
    }
  }

  // Raw mode for the local terminal while the remote one is in charge; restored on the way out.
  class RawTerminal {
   public:
    explicit RawTerminal(bool tty) : tty_(tty) {
      if (!tty_ || tcgetattr(STDIN_FILENO, &saved_) != 0) {
        tty_ = false;
        return;
      }
      termios raw = saved_;
      cfmakeraw(&raw);
      tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    ~RawTerminal() { Restore(); }
    void Restore() {
      if (tty_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
      tty_ = false;
    }

   private:
    bool tty_;
    termios saved_{};
  };

  const AgentCommandOptions& o_;
  std::unique_ptr<v1::Master::Stub> stub_;
};

}  // namespace

Result<std::string> CreateJoinToken(const std::string& data_dir, const std::string& master,
                                    Duration ttl) {
  Result<std::shared_ptr<grpc::Channel>> channel = AdminChannel(data_dir, master);
  if (!channel.ok()) return channel.status();
  auto stub = v1::Master::NewStub(*channel);
  grpc::ClientContext ctx;
  Deadline(ctx);
  v1::CreateTokenRequest req;
  req.set_ttl_ms(std::chrono::duration_cast<std::chrono::milliseconds>(ttl).count());
  v1::CreateTokenResponse resp;
  grpc::Status s = stub->CreateToken(&ctx, req, &resp);
  if (!s.ok()) return Status::Error("cannot create a join token: " + s.error_message());
  return resp.token();
}

Result<bool> WaitForAgent(const std::string& data_dir, const std::string& master,
                          const std::string& name, Duration timeout) {
  Result<std::shared_ptr<grpc::Channel>> channel = AdminChannel(data_dir, master);
  if (!channel.ok()) return channel.status();
  auto stub = v1::Master::NewStub(*channel);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    grpc::ClientContext ctx;
    Deadline(ctx);
    v1::ListAgentsRequest req;
    req.set_name(name);
    v1::ListAgentsResponse resp;
    grpc::Status s = stub->ListAgents(&ctx, req, &resp);
    if (!s.ok()) return Status::Error("cannot list agents: " + s.error_message());
    for (const v1::AgentInfo& a : resp.agents())
      if (a.active()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

int RunAgentCommand(const AgentCommandOptions& options) {
  Result<std::shared_ptr<grpc::Channel>> channel = AdminChannel(options.data_dir, options.master);
  if (!channel.ok()) {
    std::fprintf(stderr, "error: %s\n", channel.error().c_str());
    return kExitFailed;
  }
  Admin admin(options, *channel);
  return admin.Dispatch();
}

}  // namespace sloth
