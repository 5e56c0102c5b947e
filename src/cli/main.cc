// sloth-runner's entry point: parses the command line (the only file that includes CLI11) and
// hands plain options to the command implementations.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "base/strings.h"
#include "cli/commands.h"
#include "exec/loop.h"

namespace sloth {
namespace {

constexpr char kVersion[] = "0.1.0";

void AddRunFlags(CLI::App* cmd, RunOptions& o) {
  cmd->add_option("name", o.name, "Workflow to run (also the stack name)");
  cmd->add_option("-f,--file", o.file, "Workflow file (.sloth)")->required();
  cmd->add_option("-v,--values", o.values_files, "Values file (YAML); repeatable, later wins");
  cmd->add_option("--set", o.sets, "Override a value: key.path=value (typed as YAML); repeatable");
  cmd->add_option("--task", o.tasks, "Run only this task and what it depends on; repeatable");
  cmd->add_option("-o,--output", o.output, "Output: basic, enhanced or json");
  cmd->add_option("--parallel", o.parallel, "Run up to N independent tasks at once");
  cmd->add_flag("--check,--dry-run", o.check, "Change nothing; report what would change");
  cmd->add_flag("--yes", o.yes, "Never prompt (there is no prompt by default)");
}

}  // namespace

int Main(int argc, char** argv) {
  Loop::BlockSignals();
  CLI::App app{"sloth-runner: task orchestration and infrastructure automation in Lua"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("sloth-runner version ") + kVersion);
  GlobalOptions global;
  app.add_option("--data-dir", global.data_dir, "Data directory (default $SLOTH_RUNNER_HOME or ~/.sloth-runner)");
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
  wf_list->add_option("-f,--file", list.file, "Workflow file (default: *.sloth here)");
  wf_list->add_option("-o,--output", list.format, "table or json");
  wf_list->callback([&] { rc = CmdWorkflowList(global, list); });

  FileOptions legacy_list;
  auto* list_cmd = app.add_subcommand("list", "List workflows (same as `workflow list`)");
  list_cmd->add_option("-f,--file", legacy_list.file, "Workflow file");
  list_cmd->add_option("-o,--output", legacy_list.format, "table or json");
  list_cmd->callback([&] { rc = CmdWorkflowList(global, legacy_list); });

  FileOptions validate;
  auto* validate_cmd = app.add_subcommand("validate", "Check a workflow file without running it");
  validate_cmd->add_option("-f,--file", validate.file, "Workflow file")->required();
  validate_cmd->callback([&] { rc = CmdValidate(global, validate); });

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
  if (const char* log = std::getenv("SLOTH_LOG"); log && std::string(log) == "debug") global.debug = true;
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

int main(int argc, char** argv) {
  try {
    return sloth::Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
