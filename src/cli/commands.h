// The command implementations behind main.cc's parser. Each takes plain options and returns the
// process exit code (cli.md "Exit codes").
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace sloth {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitBadInput = 2;
constexpr int kExitUnreachable = 3;
constexpr int kExitInterrupted = 130;

struct GlobalOptions {
  std::string data_dir;  // --data-dir
  bool debug = false;    // --debug or SLOTH_LOG=debug
};

struct RunOptions {
  std::string name;  // workflow to run (and the stack name)
  std::string file;
  std::vector<std::string> values_files;
  std::vector<std::string> sets;
  std::vector<std::string> tasks;
  std::string output = "basic";
  std::optional<int> parallel;
  bool check = false;
  bool yes = false;  // never prompt: nothing prompts unless asked, so this only documents intent
};

int CmdRun(const GlobalOptions& global, const RunOptions& options);

struct FileOptions {
  std::string file;  // empty: every *.sloth file in the current directory
  std::string format;
};

int CmdWorkflowList(const GlobalOptions& global, const FileOptions& options);
int CmdValidate(const GlobalOptions& global, const FileOptions& options);

// Prints "error: <message>" to stderr and returns `code`.
int Fail(int code, const std::string& message);

}  // namespace sloth
