// sloth-runner's entry point: parses the command line (the only file that includes CLI11) and
// hands plain options to the command implementations.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "base/strings.h"
#include "base/version.h"
#include "cli/agent_task.h"
#include "cli/commands.h"
#include "cli/distributed.h"
#include "cli/remote.h"
#include "cli/templates.h"
#include "exec/loop.h"

namespace sloth {
namespace {

void AddRunFlags(CLI::App* cmd, RunOptions& o) {
  cmd->add_option("name", o.name, "Workflow to run (also the stack name)");
  cmd->add_option("-f,--file", o.file, "Workflow file (.sloth)")->required()->type_name("FILE");
  cmd->add_option("-v,--values", o.values_files, "Values file (YAML); repeatable, later wins")
      ->type_name("FILE");
  cmd->add_option("--set", o.sets, "Override a value: key.path=value (typed as YAML); repeatable");
  cmd->add_option("--task", o.tasks, "Run only this task and what it depends on; repeatable");
  cmd->add_option("-o,--output", o.output, "Output: basic, enhanced or json")
      ->type_name("basic|enhanced|json");
  cmd->add_option("--parallel", o.parallel, "Run up to N independent tasks at once");
  cmd->add_flag("--check,--dry-run", o.check, "Change nothing; report what would change");
  cmd->add_flag("--diff", o.diff, "Show a unified diff of every file change (or would-be change)");
  cmd->add_flag("--interactive", o.interactive, "Ask before each task: run, skip, abort, continue");
  cmd->add_flag("--yes", o.yes, "Never prompt (there is no prompt by default)");
  cmd->add_option("--lock-timeout", o.lock_timeout,
                  "Wait this long for the stack's lock (default 0: fail at once)")
      ->type_name("DURATION");
  cmd->add_flag("--password-stdin", o.password_stdin,
                "Read the secrets password from standard input's first line");
  cmd->add_option("--junit", o.junit, "Write a JUnit XML report of the tasks to FILE")
      ->type_name("FILE");
  cmd->add_option("--ssh", o.ssh, "Run exec.run commands on the host of this SSH profile")
      ->type_name("PROFILE");
  cmd->add_option("--master", o.master, "Master for delegated tasks (host:port)")
      ->type_name("ADDR");
  cmd->add_option("-d,--delegate-to", o.delegate_to,
                  "Run every task without its own delegate_to on this agent; repeatable")
      ->type_name("NAME");
}

// Describes the parser's command tree as plain data for `completion`. With fallthrough, a
// command also accepts the options of the commands above it.
OptionInfo DescribeOption(const CLI::Option& opt) {
  OptionInfo info;
  for (const std::string& s : opt.get_snames()) info.names.push_back("-" + s);
  for (const std::string& l : opt.get_lnames()) info.names.push_back("--" + l);
  if (opt.get_type_size_max() > 0) info.value = opt.get_type_name();
  info.description = opt.get_description();
  return info;
}

bool Declares(const std::vector<OptionInfo>& options, const OptionInfo& other) {
  for (const OptionInfo& o : options)
    for (const std::string& name : o.names)
      if (std::find(other.names.begin(), other.names.end(), name) != other.names.end()) return true;
  return false;
}

CommandInfo DescribeCommand(const CLI::App& app, const std::vector<OptionInfo>& inherited) {
  CommandInfo info;
  info.name = app.get_name();
  info.description = app.get_description();
  for (const CLI::Option* opt : app.get_options()) {
    OptionInfo o = DescribeOption(*opt);
    (o.names.empty() ? info.positionals : info.options).push_back(std::move(o));
  }
  for (const OptionInfo& o : inherited)
    if (!Declares(info.options, o)) info.options.push_back(o);
  std::vector<OptionInfo> passed = app.get_fallthrough() ? info.options : std::vector<OptionInfo>{};
  for (const CLI::App* sub : app.get_subcommands({}))
    info.subcommands.push_back(DescribeCommand(*sub, passed));
  return info;
}

std::string TemplateChoices() {
  std::vector<std::string> names;
  for (const ProjectTemplate& t : ProjectTemplates()) names.push_back(t.name);
  return Join(names, "|");
}

}  // namespace

int Main(int argc, char** argv) {
  Loop::BlockSignals();
  CLI::App app{"sloth-runner: task orchestration and infrastructure automation in Lua"};
  app.require_subcommand(1);
  app.fallthrough();  // global options work after the subcommand too: `state list --data-dir D`
  app.set_version_flag("--version", std::string("sloth-runner version ") + kVersion);
  GlobalOptions global;
  app.add_option("--data-dir", global.data_dir,
                 "Data directory (default $SLOTH_RUNNER_HOME or ~/.sloth-runner)")
      ->type_name("DIR");
  app.add_flag("--debug", global.debug, "Show debug logging");
  int rc = kExitOk;

  RunOptions run;
  auto* run_cmd = app.add_subcommand("run", "Run workflows from a file");
  AddRunFlags(run_cmd, run);
  run_cmd->callback([&] { rc = CmdRun(global, run); });

  auto* wf = app.add_subcommand("workflow", "Run, list and inspect workflows");
  wf->require_subcommand(1);
  RunOptions wf_run;
  auto* wf_run_cmd = wf->add_subcommand("run", "Run workflows from a file (same as `run`)");
  AddRunFlags(wf_run_cmd, wf_run);
  wf_run_cmd->callback([&] { rc = CmdRun(global, wf_run); });
  FileOptions list;
  auto* wf_list = wf->add_subcommand("list", "List the workflows and tasks of a file");
  wf_list->add_option("-f,--file", list.file, "Workflow file (default: *.sloth here)")
      ->type_name("FILE");
  wf_list->add_option("-o,--output", list.format, "table or json")->type_name("table|json");
  wf_list->callback([&] { rc = CmdWorkflowList(global, list); });
  PreviewOptions preview;
  auto* wf_preview =
      wf->add_subcommand("preview", "Show the plan of workflows without running them");
  wf_preview->add_option("name", preview.name, "Only this workflow");
  wf_preview->add_option("-f,--file", preview.file, "Workflow file")->required()->type_name("FILE");
  wf_preview->add_option("-o,--format", preview.format, "tree, json, dot (Graphviz) or mermaid")
      ->type_name("tree|json|dot|mermaid");
  wf_preview->callback([&] { rc = CmdWorkflowPreview(global, preview); });
  InitOptions init;
  auto* wf_init = wf->add_subcommand("init", "Write a starter project from a template");
  wf_init->add_option("name", init.name, "Project name (also the workflow name)")->required();
  wf_init->add_option("--template", init.template_name, "Template (see `workflow list-templates`)")
      ->type_name(TemplateChoices());
  wf_init->add_option("--dir", init.dir, "Where to write the project (default ./NAME)")
      ->type_name("DIR");
  wf_init->callback([&] { rc = CmdWorkflowInit(global, init); });
  std::string templates_format = "table";
  auto* wf_templates =
      wf->add_subcommand("list-templates", "List the templates of `workflow init`");
  wf_templates->add_option("-o,--output", templates_format, "table or json")
      ->type_name("table|json");
  wf_templates->callback([&] { rc = CmdWorkflowListTemplates(global, templates_format); });

  FileOptions legacy_list;
  auto* list_cmd = app.add_subcommand("list", "List workflows (same as `workflow list`)");
  list_cmd->add_option("-f,--file", legacy_list.file, "Workflow file")->type_name("FILE");
  list_cmd->add_option("-o,--output", legacy_list.format, "table or json")->type_name("table|json");
  list_cmd->callback([&] { rc = CmdWorkflowList(global, legacy_list); });

  FileOptions validate;
  auto* validate_cmd = app.add_subcommand("validate", "Check a workflow file without running it");
  validate_cmd->add_option("-f,--file", validate.file, "Workflow file")
      ->required()
      ->type_name("FILE");
  validate_cmd->callback([&] { rc = CmdValidate(global, validate); });

  auto* modules = app.add_subcommand("modules", "Show the built-in Lua modules");
  modules->require_subcommand(1);
  ModulesOptions modules_list;
  auto* modules_list_cmd = modules->add_subcommand("list", "List modules and their functions");
  modules_list_cmd->add_option("-m,--module", modules_list.module, "Only this module")
      ->type_name("MODULE");
  modules_list_cmd->add_option("-o,--format", modules_list.format, "table or json")
      ->type_name("table|json");
  modules_list_cmd->callback([&] { rc = CmdModulesList(global, modules_list); });

  auto* state = app.add_subcommand("state", "Read and change the persistent key/value state");
  state->require_subcommand(1);
  StateOptions st_list, st_get, st_set, st_delete, st_clear, st_stats;
  auto* state_list = state->add_subcommand("list", "List keys and values (internal keys hidden)");
  state_list->add_option("prefix", st_list.key, "Only keys starting with this (literal) prefix");
  state_list->add_option("-o,--output", st_list.output, "table or json")->type_name("table|json");
  state_list->callback([&] { rc = CmdStateList(global, st_list); });
  auto* state_get = state->add_subcommand("get", "Print a value (strings raw, the rest as JSON)");
  state_get->add_option("key", st_get.key, "Key")->required();
  state_get->callback([&] { rc = CmdStateGet(global, st_get); });
  auto* state_set =
      state->add_subcommand("set", "Store a value (JSON if it parses, else a string)");
  state_set->add_option("key", st_set.key, "Key")->required();
  state_set->add_option("value", st_set.value, "Value")->required();
  state_set->add_option("--ttl", st_set.ttl, "Expire after this long (\"1h\", \"90s\", seconds)")
      ->type_name("DURATION");
  state_set->callback([&] { rc = CmdStateSet(global, st_set); });
  auto* state_delete = state->add_subcommand("delete", "Delete a key");
  state_delete->add_option("key", st_delete.key, "Key")->required();
  state_delete->callback([&] { rc = CmdStateDelete(global, st_delete); });
  auto* state_clear = state->add_subcommand("clear", "Delete every key, or those with a prefix");
  state_clear->add_option("prefix", st_clear.key, "Only keys starting with this (literal) prefix");
  state_clear->add_flag("--force", st_clear.force,
                        "Really delete (without it, only says how many)");
  state_clear->callback([&] { rc = CmdStateClear(global, st_clear); });
  auto* state_stats = state->add_subcommand("stats", "Show counts of the state store");
  state_stats->add_option("-o,--output", st_stats.output, "table or json")->type_name("table|json");
  state_stats->callback([&] { rc = CmdStateStats(global, st_stats); });

  auto* secrets = app.add_subcommand("secrets", "Store a stack's secrets, encrypted at rest");
  secrets->require_subcommand(1);
  SecretsOptions sec_add, sec_get, sec_list, sec_remove;
  auto add_stack = [](CLI::App* cmd, SecretsOptions& o) {
    cmd->add_option("--stack", o.stack, "The stack the secret belongs to")
        ->required()
        ->type_name("STACK");
  };
  auto add_password = [](CLI::App* cmd, SecretsOptions& o) {
    cmd->add_flag("--password-stdin", o.password_stdin,
                  "Read the password from standard input's first line "
                  "(else $SLOTH_SECRETS_PASSWORD)");
  };
  auto* secrets_add = secrets->add_subcommand(
      "add", "Encrypt and store a value (from --from-file, else standard input)");
  secrets_add->add_option("name", sec_add.name, "Secret name")->required();
  add_stack(secrets_add, sec_add);
  secrets_add->add_option("--from-file", sec_add.from_file, "Read the value from this file")
      ->type_name("FILE");
  add_password(secrets_add, sec_add);
  secrets_add->callback([&] { rc = CmdSecretsAdd(global, sec_add); });
  auto* secrets_get = secrets->add_subcommand("get", "Decrypt and print a secret");
  secrets_get->add_option("name", sec_get.name, "Secret name")->required();
  add_stack(secrets_get, sec_get);
  add_password(secrets_get, sec_get);
  secrets_get->callback([&] { rc = CmdSecretsGet(global, sec_get); });
  auto* secrets_list =
      secrets->add_subcommand("list", "List a stack's secrets (names and times, no values)");
  add_stack(secrets_list, sec_list);
  secrets_list->add_option("-o,--output", sec_list.output, "table or json")
      ->type_name("table|json");
  secrets_list->callback([&] { rc = CmdSecretsList(global, sec_list); });
  auto* secrets_remove = secrets->add_subcommand("remove", "Delete a secret");
  secrets_remove->add_option("name", sec_remove.name, "Secret name")->required();
  add_stack(secrets_remove, sec_remove);
  secrets_remove->callback([&] { rc = CmdSecretsRemove(global, sec_remove); });

  auto* stack =
      app.add_subcommand("stack", "Stacks: resources, outputs, run history, locks, drift");
  stack->require_subcommand(1);
  StackOptions sk;  // one set of options: only one subcommand runs
  auto stack_cmd = [&](const char* name, const char* help,
                       int (*fn)(const GlobalOptions&, const StackOptions&)) {
    auto* cmd = stack->add_subcommand(name, help);
    cmd->callback([&, fn] { rc = fn(global, sk); });
    return cmd;
  };
  auto* stack_new = stack_cmd("new", "Create a stack", CmdStackNew);
  stack_new->add_option("name", sk.name, "Stack name")->required();
  stack_new->add_option("-d,--description", sk.description, "What the stack is for");
  stack_new->add_option("-f,--file", sk.file, "The stack's workflow file")->type_name("FILE");
  auto* stack_list = stack_cmd("list", "List stacks", CmdStackList);
  stack_list->add_option("-o,--output", sk.output, "table or json")->type_name("table|json");
  struct Named {
    const char* name;
    const char* help;
    int (*fn)(const GlobalOptions&, const StackOptions&);
    bool output;
  };
  for (const Named& n :
       {Named{"show", "Show a stack: outputs, resources, recent runs", CmdStackShow, true},
        Named{"resources", "List a stack's resources", CmdStackResources, true},
        Named{"outputs", "Print a stack's outputs", CmdStackOutputs, true}}) {
    auto* cmd = stack_cmd(n.name, n.help, n.fn);
    cmd->add_option("name", sk.name, "Stack name")->required();
    if (n.output)
      cmd->add_option("-o,--output", sk.output, "table or json")->type_name("table|json");
  }
  auto* stack_history = stack_cmd("history", "List a stack's runs, newest first", CmdStackHistory);
  stack_history->add_option("name", sk.name, "Stack name")->required();
  stack_history->add_option("-n,--limit", sk.limit, "Only the newest N runs");
  stack_history->add_option("-o,--output", sk.output, "table or json")->type_name("table|json");
  auto* stack_export = stack_cmd("export", "Write a whole stack as JSON", CmdStackExport);
  stack_export->add_option("name", sk.name, "Stack name")->required();
  stack_export->add_option("--file", sk.file, "Write here instead of stdout")->type_name("FILE");
  auto* stack_import =
      stack_cmd("import", "Read a stack written by `stack export`", CmdStackImport);
  stack_import->add_option("file", sk.file, "Export file")->required()->type_name("FILE");
  auto* stack_delete =
      stack_cmd("delete", "Delete a stack with its resources and history", CmdStackDelete);
  stack_delete->add_option("name", sk.name, "Stack name")->required();
  stack_delete->add_flag("--force", sk.force, "Really delete (also when locked)");
  auto* stack_lock =
      stack_cmd("lock", "Lock a stack by hand (runs of it wait or fail)", CmdStackLock);
  stack_lock->add_option("name", sk.name, "Stack name")->required();
  stack_lock->add_option("--reason", sk.reason, "Why (shown to whoever finds it locked)");
  stack_lock->add_option("--ttl", sk.ttl, "How long the lock lasts (default 1h)")
      ->type_name("DURATION");
  auto* stack_unlock = stack_cmd("unlock", "Release a stack's lock", CmdStackUnlock);
  stack_unlock->add_option("name", sk.name, "Stack name")->required();
  stack_unlock->add_flag("--force", sk.force, "Also release the lock of a running run");
  auto* stack_drift =
      stack_cmd("drift", "Re-run a stack's workflow in check mode and report what would change",
                CmdStackDrift);
  stack_drift->add_option("name", sk.name, "Stack name")->required();
  stack_drift->add_option("-f,--file", sk.file, "Workflow file (default: the stack's)")
      ->type_name("FILE");
  stack_drift->add_option("-o,--output", sk.output, "table or json")->type_name("table|json");

  auto* scheduler = app.add_subcommand("scheduler", "Run stacks on cron schedules");
  scheduler->require_subcommand(1);
  ScheduleOptions sc;  // one set of options: only one subcommand runs
  auto sched_cmd = [&](const char* name, const char* help,
                       int (*fn)(const GlobalOptions&, const ScheduleOptions&)) {
    auto* cmd = scheduler->add_subcommand(name, help);
    cmd->callback([&, fn] { rc = fn(global, sc); });
    return cmd;
  };
  auto* sched_enable =
      sched_cmd("enable", "Schedule a stack's workflow (or change or re-enable its schedule)",
                CmdSchedulerEnable);
  sched_enable->add_option("stack", sc.stack, "Stack name (also the workflow run)")->required();
  sched_enable->add_option("cron", sc.cron, "When: \"*/5 * * * *\", \"@every 10m\" (docs/cron.md)");
  sched_enable
      ->add_option("-f,--file", sc.file, "Workflow file (default: the stored or the stack's)")
      ->type_name("FILE");
  sched_enable->add_option("-v,--values", sc.values_files, "Values file (YAML); repeatable")
      ->type_name("FILE");
  sched_cmd("disable", "Stop a schedule (kept; `enable STACK` resumes it)", CmdSchedulerDisable)
      ->add_option("stack", sc.stack, "Stack name")
      ->required();
  sched_cmd("delete", "Delete a schedule", CmdSchedulerDelete)
      ->add_option("stack", sc.stack, "Stack name")
      ->required();
  sched_cmd("list", "List schedules: next run, last run and result", CmdSchedulerList)
      ->add_option("-o,--output", sc.output, "table or json")
      ->type_name("table|json");
  auto* sched_run = scheduler->add_subcommand("run", "Run the scheduler in the foreground");
  sched_run->add_option("--grace", sc.grace, "Run a missed time at start-up if at most this late")
      ->type_name("DURATION");
  sched_run->callback([&] { rc = CmdSchedulerRun(global, sc); });

  auto* hook = app.add_subcommand("hook", "Lua hooks that run when events happen");
  hook->require_subcommand(1);
  HookOptions hk;  // one set of options: only one subcommand runs
  auto hook_cmd = [&](const char* name, const char* help,
                      int (*fn)(const GlobalOptions&, const HookOptions&)) {
    auto* cmd = hook->add_subcommand(name, help);
    cmd->callback([&, fn] { rc = fn(global, hk); });
    return cmd;
  };
  auto* hook_add =
      hook_cmd("add", "Register a hook file (hook add FILE, or NAME --file --event)", CmdHookAdd);
  hook_add->add_option("name", hk.name, "Hook file, or the hook's name with --file")->required();
  hook_add->add_option("--file", hk.file, "The hook's Lua file")->type_name("FILE");
  hook_add->add_option("--event", hk.event, "Event type it runs on; * matches any words (task.*)")
      ->type_name("TYPE");
  hook_add->add_option("--stack", hk.stack, "Only events of this stack");
  hook_add->add_option("--description", hk.description, "What the hook does");
  hook_add->add_option("--timeout", hk.timeout, "Kill a run after this long (default 30s)")
      ->type_name("DURATION");
  hook_add->add_option("--retries", hk.retries, "Attempts after a failure (default 2)");
  auto* hook_list = hook_cmd("list", "List hooks", CmdHookList);
  hook_list->add_option("-o,--output", hk.output, "table or json")->type_name("table|json");
  auto* hook_show = hook_cmd("show", "Show a hook and its recent runs", CmdHookShow);
  hook_show->add_option("name", hk.name, "Hook name")->required();
  hook_show->add_option("-o,--output", hk.output, "table or json")->type_name("table|json");
  for (auto [name, help, fn] :
       {std::tuple{"enable", "Enable a hook", &CmdHookEnable},
        std::tuple{"disable", "Disable a hook (it stays registered)", &CmdHookDisable},
        std::tuple{"delete", "Delete a hook (its history is kept)", &CmdHookDelete}})
    hook_cmd(name, help, fn)->add_option("name", hk.name, "Hook name")->required();
  auto* hook_test = hook_cmd("test", "Run a hook once on a made-up event", CmdHookTest);
  hook_test->add_option("name", hk.name, "Hook name")->required();
  hook_test->add_option("--type", hk.type, "The event's type (default: the hook's)")
      ->type_name("TYPE");
  hook_test->add_option("--data", hk.data, "The event's data, a JSON object")->type_name("JSON");
  auto* hook_history = hook_cmd("history", "List a hook's runs, newest first", CmdHookHistory);
  hook_history->add_option("name", hk.name, "Hook name")->required();
  hook_history->add_option("--limit", hk.limit, "Only the newest N runs (default 20)");
  hook_history->add_option("-o,--output", hk.output, "table or json")->type_name("table|json");
  auto* hook_exec =
      hook_cmd("exec", "Run a hook on the event (JSON) read from stdin; prints the outcome as JSON",
               CmdHookExec);
  hook_exec->add_option("name", hk.name, "Hook name")->required();

  auto* events = app.add_subcommand("events", "The events log: list, show, retry, clean up");
  events->require_subcommand(1);
  EventsOptions ev;
  auto events_cmd = [&](const char* name, const char* help,
                        int (*fn)(const GlobalOptions&, const EventsOptions&)) {
    auto* cmd = events->add_subcommand(name, help);
    cmd->callback([&, fn] { rc = fn(global, ev); });
    return cmd;
  };
  auto* events_list = events_cmd("list", "List events, newest first", CmdEventsList);
  events_list->add_option("--type", ev.type, "Only this type, or a pattern (task.*)")
      ->type_name("TYPE");
  events_list->add_option("--status", ev.status, "pending, delivered or failed");
  events_list->add_option("--stack", ev.stack, "Only this stack's events");
  events_list->add_option("--limit", ev.limit, "At most N events (default 50)");
  events_list->add_option("-o,--output", ev.output, "table or json")->type_name("table|json");
  auto* events_show =
      events_cmd("show", "Show an event and the hook runs it caused", CmdEventsShow);
  events_show->add_option("id", ev.id, "Event id")->required();
  events_show->add_option("-o,--output", ev.output, "table or json")->type_name("table|json");
  events_cmd("cleanup", "Remove events older than --hours (by age only)", CmdEventsCleanup)
      ->add_option("--hours", ev.hours, "Age in hours (default 168, a week)");
  events_cmd("retry", "Deliver an event again to the hooks that did not succeed", CmdEventsRetry)
      ->add_option("id", ev.id, "Event id")
      ->required();

  SshOptions ssh_add, ssh_list, ssh_remove;
  auto* ssh = app.add_subcommand("ssh", "SSH profiles for run --ssh: add, list, remove");
  ssh->require_subcommand(1);
  auto* ssh_add_cmd = ssh->add_subcommand("add", "Store an SSH profile");
  ssh_add_cmd->add_option("name", ssh_add.name, "Profile name")->required();
  ssh_add_cmd->add_option("--host", ssh_add.host, "Host name or address")->required();
  ssh_add_cmd->add_option("--port", ssh_add.port, "Port (default 22)");
  ssh_add_cmd->add_option("--user", ssh_add.user, "User (default: the current user)");
  ssh_add_cmd->add_option("--key", ssh_add.key, "Private key file")->type_name("FILE");
  ssh_add_cmd->add_option("--known-hosts", ssh_add.known_hosts, "known_hosts file")
      ->type_name("FILE");
  ssh_add_cmd->callback([&] { rc = CmdSshAdd(global, ssh_add); });
  auto* ssh_list_cmd = ssh->add_subcommand("list", "List the SSH profiles");
  ssh_list_cmd->add_option("-o,--output", ssh_list.output, "table or json")
      ->type_name("table|json");
  ssh_list_cmd->callback([&] { rc = CmdSshList(global, ssh_list); });
  auto* ssh_remove_cmd = ssh->add_subcommand("remove", "Delete an SSH profile");
  ssh_remove_cmd->add_option("name", ssh_remove.name, "Profile name")->required();
  ssh_remove_cmd->callback([&] { rc = CmdSshRemove(global, ssh_remove); });

  // Agents (master/agent mode). `run-task` is hidden: the agent runs it per delegated task.
  auto* agent_cmd = app.add_subcommand("agent", "Agents (master/agent mode)");
  agent_cmd->require_subcommand(1);
  AgentTaskOptions agent_task;
  auto* agent_run_task = agent_cmd->add_subcommand("run-task", "Run a delegated task's bundle");
  agent_run_task->group("");
  agent_run_task->add_option("--agent", agent_task.agent, "This agent's name")->type_name("NAME");
  agent_run_task->callback([&] { rc = CmdAgentRunTask(global, agent_task); });

  MasterCliOptions master_opts;
  auto* master = app.add_subcommand("master", "The master: serve agents, manage known masters");
  auto add_start_flags = [&](CLI::App* cmd) {
    cmd->add_option("--port", master_opts.port, "Port (default 50053; 0 picks a free one)");
    cmd->add_option("--bind,--bind-address", master_opts.bind, "Address to bind (default 0.0.0.0)");
    cmd->add_flag("--daemon", master_opts.daemon, "Run in the background (log in DATA/logs/)");
    cmd->add_option("--grace", master_opts.grace,
                    "Scheduler: run a missed schedule time at most this late (default 5m)");
  };
  add_start_flags(master);  // bare `master` is `master start` (seed spelling)
  master->callback([&] {
    if (master->get_subcommands().empty()) rc = CmdMasterStart(global, master_opts);
  });
  auto* master_start = master->add_subcommand("start", "Serve agents and admin clients over mTLS");
  add_start_flags(master_start);
  master_start->callback([&] { rc = CmdMasterStart(global, master_opts); });
  master->add_subcommand("init", "Create the cluster CA and the master/admin certificates")
      ->callback([&] { rc = CmdMasterInit(global); });
  auto* master_add = master->add_subcommand("add", "Remember a master by name");
  master_add->add_option("name", master_opts.name, "Name")->required();
  master_add->add_option("address", master_opts.address, "HOST:PORT")->required();
  master_add->add_option("-d,--description", master_opts.description, "Description");
  master_add->callback([&] { rc = CmdMasterAdd(global, master_opts); });
  auto* master_list = master->add_subcommand("list", "List the known masters (* = selected)");
  master_list->add_option("-o,--output", master_opts.output, "table or json")
      ->type_name("table|json");
  master_list->callback([&] { rc = CmdMasterList(global, master_opts); });
  auto* master_select = master->add_subcommand("select", "Use this master by default");
  master_select->add_option("name", master_opts.name, "Name")->required();
  master_select->callback([&] { rc = CmdMasterSelect(global, master_opts); });
  auto* master_show = master->add_subcommand("show", "Show a known master (default: selected)");
  master_show->add_option("name", master_opts.name, "Name");
  master_show->callback([&] { rc = CmdMasterShow(global, master_opts); });
  auto* master_update = master->add_subcommand("update", "Change a known master's address");
  master_update->add_option("name", master_opts.name, "Name")->required();
  master_update->add_option("address", master_opts.address, "HOST:PORT")->required();
  master_update->add_option("-d,--description", master_opts.description, "Description");
  master_update->callback([&] { rc = CmdMasterUpdate(global, master_opts); });
  auto* master_remove = master->add_subcommand("remove", "Forget a known master");
  master_remove->add_option("name", master_opts.name, "Name")->required();
  master_remove->callback([&] { rc = CmdMasterRemove(global, master_opts); });

  AgentCliOptions agent_opts;
  auto add_master_flag = [&](CLI::App* cmd) {
    cmd->add_option("--master", agent_opts.master,
                    "Master HOST:PORT (default: selected master, $SLOTH_RUNNER_MASTER)");
  };
  auto* agent_start = agent_cmd->add_subcommand("start", "Run an agent: dial out to the master");
  agent_start->add_option("--name", agent_opts.name, "This agent's name")->required();
  add_master_flag(agent_start);
  agent_start->add_option("--token", agent_opts.token,
                          "Join token (first start only; with --simulate: a file of tokens)");
  agent_start->add_option("--simulate", agent_opts.simulate,
                          "Run N simulated agents NAME-1..NAME-N in this process (scale tests)");
  agent_start->add_option("--label", agent_opts.labels, "KEY=VALUE label; repeatable");
  agent_start->add_flag("--daemon", agent_opts.daemon, "Run in the background (log in DATA/logs/)");
  agent_start->add_option("--heartbeat", agent_opts.heartbeat, "Heartbeat interval (default 5s)");
  agent_start->add_option("--report-every", agent_opts.report_every,
                          "Facts and metrics interval (default 60s)");
  agent_start
      ->add_option("--port,--bind-address", agent_opts.ignored_port,
                   "Seed spelling: agents listen nowhere (explained, ignored)")
      ->group("");
  agent_start->callback([&] { rc = CmdAgentStart(global, agent_opts); });
  auto add_admin = [&](const char* verb, const char* help, bool named) {
    auto* cmd = agent_cmd->add_subcommand(verb, help);
    if (named) cmd->add_option("name", agent_opts.name, "Agent name")->required();
    add_master_flag(cmd);
    cmd->callback([&, verb] { rc = CmdAgentAdmin(global, verb, agent_opts); });
    return cmd;
  };
  auto* agent_list = add_admin("list", "List the agents (status, last heartbeat, labels)", false);
  agent_list->add_option("-o,--output", agent_opts.output, "table or json")
      ->type_name("table|json");
  agent_list->add_option("--label", agent_opts.label, "Only agents with this KEY=VALUE label");
  add_admin("get", "Show one agent with its facts and metrics", true)
      ->add_option("-o,--output", agent_opts.output, "table or json")
      ->type_name("table|json");
  add_admin("metrics", "Show an agent's latest metrics (JSON)", true);
  add_admin("stop", "Ask an agent to exit", true);
  add_admin("delete", "Remove an agent and revoke its certificate", true);
  add_admin("shell", "An interactive shell on an agent (a pseudo-terminal over the stream)", true);
  auto* agent_exec =
      add_admin("exec", "Run a shell command on an agent (or --all, --label)", false);
  agent_exec->add_option("name", agent_opts.name, "Agent name (not with --all/--label)");
  agent_exec->add_option("command", agent_opts.command, "Command (/bin/sh -c)");
  agent_exec->add_flag("--all", agent_opts.all, "Every active agent");
  agent_exec->add_option("--label", agent_opts.label, "Every active agent with this KEY=VALUE");
  agent_exec->add_option("-o,--output", agent_opts.output, "text or json")->type_name("text|json");
  agent_exec->add_option("--timeout", agent_opts.timeout, "Kill the command after this long");
  auto* agent_install =
      agent_cmd->add_subcommand("install", "Install and start an agent on a host over SSH");
  agent_install->add_option("name", agent_opts.name, "The new agent's name")->required();
  add_master_flag(agent_install);
  agent_install->add_option("--ssh-host", agent_opts.ssh_host, "Host to install on")->required();
  agent_install->add_option("--ssh-user", agent_opts.ssh_user, "SSH user (default root)");
  agent_install->add_option("--ssh-port", agent_opts.ssh_port, "SSH port (default 22)");
  agent_install->add_option("--ssh-key", agent_opts.ssh_key, "Private key file")->type_name("FILE");
  agent_install->add_option("--known-hosts", agent_opts.known_hosts, "known_hosts file")
      ->type_name("FILE");
  agent_install->add_option("--prefix", agent_opts.prefix,
                            "Install under PREFIX/bin and PREFIX/lib (default /usr/local)");
  agent_install->add_option(
      "--agent-master", agent_opts.agent_master,
      "The master's HOST:PORT as the new agent reaches it (default: --master)");
  agent_install->add_option("--agent-data-dir", agent_opts.agent_data_dir,
                            "The new agent's data dir (default: its user's)");
  agent_install->add_option("--label", agent_opts.labels, "KEY=VALUE label; repeatable");
  agent_install->callback([&] { rc = CmdAgentInstall(global, agent_opts); });
  auto* agent_token = agent_cmd->add_subcommand("token", "Join tokens for enrolling agents");
  agent_token->require_subcommand(1);
  auto* token_create = agent_token->add_subcommand("create", "Print a one-time join token");
  add_master_flag(token_create);
  token_create->add_option("--ttl", agent_opts.ttl, "How long it stays valid (default 1h)");
  token_create->add_option("--count", agent_opts.count, "Print N tokens, one per line");
  token_create->callback([&] { rc = CmdAgentAdmin(global, "token", agent_opts); });

  std::string shell;
  auto* completion = app.add_subcommand("completion", "Print a shell completion script");
  completion->add_option("shell", shell, "bash, zsh or fish")
      ->required()
      ->type_name("bash|zsh|fish");
  completion->callback([&] {
    CommandInfo root = DescribeCommand(app, {});
    root.name = "sloth-runner";
    rc = CmdCompletion(root, shell);
  });

  app.add_subcommand("version", "Print the version")->callback([&] {
    std::cout << "sloth-runner version " << kVersion << "\n";
  });

  // An unknown command word is bad input with a suggestion, not "a subcommand is required".
  if (argc > 1 && argv[1][0] != '-') {
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
    if (std::find(names.begin(), names.end(), argv[1]) == names.end()) {
      std::string hint = ClosestMatch(argv[1], names);
      return Fail(kExitBadInput, std::string("unknown command \"") + argv[1] + "\"" +
                                     (hint.empty() ? "" : " (did you mean \"" + hint + "\"?)") +
                                     "; run 'sloth-runner --help' for the list");
    }
  }
  if (const char* log = std::getenv("SLOTH_LOG"); log && std::string(log) == "debug")
    global.debug = true;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\nRun 'sloth-runner --help' for usage.\n";
    return kExitBadInput;
  }
  return rc;
}

int Fail(int code, const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return code;
}

}  // namespace sloth

#if defined(__SANITIZE_ADDRESS__)
// gRPC frees its TLS sessions (OpenSSL objects) on its own threads; a command that exits while
// they are at it shows them as leaks, with stacks that stop inside libcrypto (no frame pointers
// there). Only for this binary: the unit tests of our OpenSSL code (pki_test) check leaks fully.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libcrypto.so\nleak:libgrpc.so\nleak:libgrpc++.so\n";
}
#endif

int main(int argc, char** argv) {
  try {
    int rc = sloth::Main(argc, argv);
    sloth::ShutdownRpcPlugin();  // gRPC's threads finish their cleanup before exit
    return rc;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
