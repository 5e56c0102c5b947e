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
  bool interactive = false;  // ask before each task (needs a terminal)
  bool yes = false;  // never prompt: nothing prompts unless asked, so this only documents intent
  std::string lock_timeout = "0";  // --lock-timeout: how long to wait for the stack's lock
  bool diff = false;               // --diff: show a unified diff of every file change
  bool password_stdin = false;     // --password-stdin: the secrets password is stdin's first line
  std::string junit;               // --junit FILE: write the tasks as a JUnit XML report
};

int CmdRun(const GlobalOptions& global, const RunOptions& options);

struct FileOptions {
  std::string file;  // empty: every *.sloth file in the current directory
  std::string format;
};

int CmdWorkflowList(const GlobalOptions& global, const FileOptions& options);
int CmdValidate(const GlobalOptions& global, const FileOptions& options);

struct PreviewOptions {
  std::string file;
  std::string name;             // only this workflow; empty: every workflow in the file
  std::string format = "tree";  // tree, json, dot or mermaid
};

int CmdWorkflowPreview(const GlobalOptions& global, const PreviewOptions& options);

struct InitOptions {
  std::string name;  // project and workflow name
  std::string template_name = "basic";
  std::string dir;  // empty: ./NAME
};

int CmdWorkflowInit(const GlobalOptions& global, const InitOptions& options);
// `format`: table or json.
int CmdWorkflowListTemplates(const GlobalOptions& global, const std::string& format);

struct ModulesOptions {
  std::string module;  // empty: every module
  std::string format = "table";
};

int CmdModulesList(const GlobalOptions& global, const ModulesOptions& options);

// `state list|get|set|delete|clear|stats` (cmd_state.cc).
struct StateOptions {
  std::string key;  // KEY, or PREFIX for list and clear
  std::string value;
  std::string ttl;  // --ttl: seconds or a duration ("1h"); empty: no expiry
  std::string output = "table";
  bool force = false;
};

int CmdStateList(const GlobalOptions& global, const StateOptions& options);
int CmdStateGet(const GlobalOptions& global, const StateOptions& options);
int CmdStateSet(const GlobalOptions& global, const StateOptions& options);
int CmdStateDelete(const GlobalOptions& global, const StateOptions& options);
int CmdStateClear(const GlobalOptions& global, const StateOptions& options);
int CmdStateStats(const GlobalOptions& global, const StateOptions& options);

// `secrets add|get|list|remove` (cmd_secrets.cc). --stack is required.
struct SecretsOptions {
  std::string name;
  std::string stack;
  std::string from_file;        // add: the value is this file's bytes (else standard input)
  bool password_stdin = false;  // the password is standard input's first line
  std::string output = "table";
};

int CmdSecretsAdd(const GlobalOptions& global, const SecretsOptions& options);
int CmdSecretsGet(const GlobalOptions& global, const SecretsOptions& options);
int CmdSecretsList(const GlobalOptions& global, const SecretsOptions& options);
int CmdSecretsRemove(const GlobalOptions& global, const SecretsOptions& options);

// `stack new|list|show|resources|outputs|history|export|import|delete|lock|unlock|drift`
// (cmd_stack.cc).
struct StackOptions {
  std::string name;
  std::string description;  // new -d
  std::string file;         // new/drift -f, export --file, import FILE
  std::string output = "table";
  int limit = 0;           // history -n (0: all)
  std::string reason;      // lock --reason
  std::string ttl = "1h";  // lock --ttl
  bool force = false;
};

int CmdStackNew(const GlobalOptions& global, const StackOptions& options);
int CmdStackList(const GlobalOptions& global, const StackOptions& options);
int CmdStackShow(const GlobalOptions& global, const StackOptions& options);
int CmdStackResources(const GlobalOptions& global, const StackOptions& options);
int CmdStackOutputs(const GlobalOptions& global, const StackOptions& options);
int CmdStackHistory(const GlobalOptions& global, const StackOptions& options);
int CmdStackExport(const GlobalOptions& global, const StackOptions& options);
int CmdStackImport(const GlobalOptions& global, const StackOptions& options);
int CmdStackDelete(const GlobalOptions& global, const StackOptions& options);
int CmdStackLock(const GlobalOptions& global, const StackOptions& options);
int CmdStackUnlock(const GlobalOptions& global, const StackOptions& options);
int CmdStackDrift(const GlobalOptions& global, const StackOptions& options);

// The command tree as plain data (main.cc fills it from the parser), for `completion`.
struct OptionInfo {
  std::vector<std::string> names;  // "-f", "--file"; empty for a positional argument
  std::string value;               // "" for a flag; else "FILE", "DIR", "a|b|c" (choices) or a type
  std::string description;
};

struct CommandInfo {
  std::string name;
  std::string description;
  std::vector<OptionInfo> options;  // including the inherited global options
  std::vector<OptionInfo> positionals;
  std::vector<CommandInfo> subcommands;
};

int CmdCompletion(const CommandInfo& root, const std::string& shell);

// Prints "error: <message>" to stderr and returns `code`.
int Fail(int code, const std::string& message);

}  // namespace sloth
