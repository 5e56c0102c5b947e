// Helpers for end-to-end tests: run the real sloth-runner binary ($SLOTH_BIN) in a temp dir with
// its own data dir ($SLOTH_RUNNER_HOME), and capture what it prints and how it exits.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace sloth::e2e {

// What a finished command left behind.
struct CmdResult {
  int exit_code = -1;  // 128 + signal when killed by a signal
  std::string out;     // stdout
  std::string err;     // stderr
  bool timed_out = false;
  std::string output() const { return out + err; }  // everything it printed
};

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void WriteFile(const std::filesystem::path& path, const std::string& content) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

// The binary under test and the source tree, from the environment ctest sets.
inline std::string SlothBin() {
  const char* bin = std::getenv("SLOTH_BIN");
  return bin ? bin : "";
}
inline std::string SourceDir() {
  const char* dir = std::getenv("SLOTH_SOURCE_DIR");
#ifdef SLOTH_SOURCE_DIR_DEFAULT
  if (!dir || !*dir) dir = SLOTH_SOURCE_DIR_DEFAULT;
#endif
  return dir ? dir : "";
}

// A temp dir holding `work/` (the current directory of every command) and `home/` (the data
// dir); removed when the test ends.
class Sandbox {
 public:
  Sandbox() {
    std::string pattern = (std::filesystem::temp_directory_path() / "sloth-e2e-XXXXXX").string();
    root_ = mkdtemp(pattern.data());
    std::filesystem::create_directories(work());
    std::filesystem::create_directories(home());
  }
  ~Sandbox() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  std::filesystem::path root() const { return root_; }
  std::filesystem::path work() const { return root_ / "work"; }
  std::filesystem::path home() const { return root_ / "home"; }

  // Writes / reads a file relative to work().
  void Write(const std::string& rel, const std::string& content) const {
    WriteFile(work() / rel, content);
  }
  std::string Read(const std::string& rel) const { return ReadFile(work() / rel); }
  bool Exists(const std::string& rel) const { return std::filesystem::exists(work() / rel); }

  // Extra environment variables for every command (on top of the inherited ones).
  void SetEnv(const std::string& name, const std::string& value) { env_[name] = value; }

  // Runs `sloth-runner args...` in work() and waits for it (killed after `timeout`).
  CmdResult Run(const std::vector<std::string>& args, const std::string& stdin_text = "",
                std::chrono::seconds timeout = std::chrono::seconds(60)) const {
    std::vector<std::string> argv = {SlothBin()};
    argv.insert(argv.end(), args.begin(), args.end());
    return Spawn(argv, stdin_text, timeout);
  }

  // Runs any program (argv[0] is looked up in PATH) in work(), with the same environment.
  CmdResult Spawn(const std::vector<std::string>& argv, const std::string& stdin_text = "",
                  std::chrono::seconds timeout = std::chrono::seconds(60)) const {
    std::filesystem::path in = root_ / ".stdin", out = root_ / ".stdout", err = root_ / ".stderr";
    WriteFile(in, stdin_text);
    CmdResult result;
    pid_t pid = Start(argv, in, out, err, &result.err);
    if (pid <= 0) return result;
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        result.timed_out = true;
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    result.out = ReadFile(out);
    result.err = ReadFile(err);
    return result;
  }

  // Starts `sloth-runner args...` in work() without waiting; its output goes to
  // root()/NAME.out and NAME.err. Returns its pid (its own process group), or -1.
  pid_t RunInBackground(const std::string& name, const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {SlothBin()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string error;
    return Start(argv, "/dev/null", root_ / (name + ".out"), root_ / (name + ".err"), &error);
  }

 private:
  pid_t Start(const std::vector<std::string>& argv, const std::filesystem::path& in,
              const std::filesystem::path& out, const std::filesystem::path& err,
              std::string* error) const {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, in.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addchdir_np(&actions, work().c_str());
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none;  // the child starts with no blocked signals, whatever the test runner blocks
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setpgroup(&attr, 0);  // its own process group, so a timeout kills it all
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);

    std::vector<std::string> env_strings = Environment();
    std::vector<char*> cargv, cenv;
    for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const std::string& e : env_strings) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);

    pid_t pid = 0;
    int rc = posix_spawnp(&pid, cargv[0], &actions, &attr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      *error = "cannot start " + argv[0] + ": " + std::strerror(rc);
      return -1;
    }
    return pid;
  }

  std::vector<std::string> Environment() const {
    std::map<std::string, std::string> vars;
    for (char** e = environ; *e; ++e) {
      std::string entry = *e;
      size_t eq = entry.find('=');
      if (eq != std::string::npos) vars[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
    vars["SLOTH_RUNNER_HOME"] = home().string();
    vars["HOME"] = home().string();  // nothing may fall back to the real home dir
    vars["NO_COLOR"] = "1";
    vars.erase("SLOTH_LOG");
    for (const auto& [k, v] : env_) vars[k] = v;
    std::vector<std::string> out;
    for (const auto& [k, v] : vars) out.push_back(k + "=" + v);
    return out;
  }

  std::filesystem::path root_;
  std::map<std::string, std::string> env_;
};

// Shows what a command printed when an expectation on it fails.
inline std::string Describe(const CmdResult& r) {
  return "exit " + std::to_string(r.exit_code) + (r.timed_out ? " (timed out)" : "") +
         "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

// Starts sshd (it daemonizes and writes its pid file) with a host key, a client key and a
// known_hosts file in the sandbox. Empty on success, else why not.
inline constexpr char kStartSshd[] = R"sh(
set -e
d=$PWD/sshd; mkdir -p "$d" /run/sshd; chmod 700 "$d"
ssh-keygen -q -t ed25519 -N '' -f "$d/host_key" </dev/null >/dev/null
ssh-keygen -q -t ed25519 -N '' -f "$d/client_key" </dev/null >/dev/null
cp "$d/client_key.pub" "$d/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$d/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $d/host_key
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
StrictModes no
Subsystem sftp internal-sftp
PidFile $d/sshd.pid
CFG
/usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log"
printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$d/host_key.pub")" >"$d/known_hosts"
for i in $(seq 1 50); do
  ssh -o BatchMode=yes -o UserKnownHostsFile="$d/known_hosts" -i "$d/client_key" -p "$port" root@127.0.0.1 true 2>/dev/null && { echo "$port"; exit 0; }
  sleep 0.1
done
exit 1
)sh";

}  // namespace sloth::e2e
