// The command implementations behind main.cc's parser. Each takes plain options and returns the
// process exit code (cli.md "Exit codes").
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

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
  std::string ssh;                 // --ssh PROFILE: exec.run goes over SSH (cmd_ssh.cc)
  std::string master;              // --master ADDR: where delegated tasks go
  std::vector<std::string> delegate_to;  // -d NAME: agents for every task without its own
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

// `scheduler enable|disable|delete|list|run` (cmd_scheduler.cc).
struct ScheduleOptions {
  std::string stack;
  std::string cron;                       // enable: empty re-enables the stored schedule
  std::string file;                       // enable -f: empty keeps the stored one / the stack's
  std::vector<std::string> values_files;  // enable -v: empty keeps the stored ones
  std::string output = "table";           // list -o
  std::string grace = "5m";               // run --grace: how late a missed time may still run
};

int CmdSchedulerEnable(const GlobalOptions& global, const ScheduleOptions& options);
int CmdSchedulerDisable(const GlobalOptions& global, const ScheduleOptions& options);
int CmdSchedulerDelete(const GlobalOptions& global, const ScheduleOptions& options);
int CmdSchedulerList(const GlobalOptions& global, const ScheduleOptions& options);
// Runs in the foreground; its events (schedule.*, system.*) go to the event bus.
int CmdSchedulerRun(const GlobalOptions& global, const ScheduleOptions& options);

// The long-running service behind `scheduler run` and `master start`: the cron scheduler and the
// event queue on one loop until SIGINT/SIGTERM. `start` (may be empty) starts more work once
// they are up (the master's server), gets a thread-safe way to emit events with `who` as their
// source, and returns how to stop that work.
using ServiceEmit = std::function<void(const std::string& type, const std::string& data_json)>;
using ServiceStart = std::function<Result<std::function<void()>>(ServiceEmit emit)>;
int ServeScheduler(const GlobalOptions& global, const std::string& grace, const std::string& who,
                   const ServiceStart& start);

// `hook ...` (cmd_hook.cc).
struct HookOptions {
  std::string name;   // NAME; for `hook add FILE` without --file, the file
  std::string file;   // add --file
  std::string event;  // add --event: the type pattern
  std::string stack;  // add --stack: only this stack's events
  std::string description;
  std::string timeout;         // add --timeout: a duration
  std::optional<int> retries;  // add --retries
  std::string type;            // test --type
  std::string data;            // test --data: the event's data, JSON
  int limit = 20;              // history --limit
  std::string output = "table";
};

int CmdHookAdd(const GlobalOptions& global, const HookOptions& options);
int CmdHookList(const GlobalOptions& global, const HookOptions& options);
int CmdHookShow(const GlobalOptions& global, const HookOptions& options);
int CmdHookEnable(const GlobalOptions& global, const HookOptions& options);
int CmdHookDisable(const GlobalOptions& global, const HookOptions& options);
int CmdHookDelete(const GlobalOptions& global, const HookOptions& options);
int CmdHookTest(const GlobalOptions& global, const HookOptions& options);
int CmdHookHistory(const GlobalOptions& global, const HookOptions& options);
int CmdHookExec(const GlobalOptions& global, const HookOptions& options);

// `events ...` (cmd_events.cc).
struct EventsOptions {
  std::string id;      // show, retry
  std::string type;    // list --type: a type or a pattern (task.*)
  std::string status;  // list --status
  std::string stack;   // list --stack
  int limit = 50;      // list --limit
  double hours = 168;  // cleanup --hours: remove events older than this
  std::string output = "table";
};

int CmdEventsList(const GlobalOptions& global, const EventsOptions& options);
int CmdEventsShow(const GlobalOptions& global, const EventsOptions& options);
int CmdEventsCleanup(const GlobalOptions& global, const EventsOptions& options);
int CmdEventsRetry(const GlobalOptions& global, const EventsOptions& options);

// `ssh add|list|remove` (cmd_ssh.cc): SSH profiles for `run --ssh`.
struct SshOptions {
  std::string name;
  std::string host;
  int port = 22;
  std::string user;
  std::string key;          // private key file
  std::string known_hosts;  // known_hosts file
  std::string output = "table";
};

int CmdSshAdd(const GlobalOptions& global, const SshOptions& options);
int CmdSshList(const GlobalOptions& global, const SshOptions& options);
int CmdSshRemove(const GlobalOptions& global, const SshOptions& options);

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
