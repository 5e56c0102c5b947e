// End-to-end tests of the command line: workflow preview/init/list-templates, modules list,
// completion and the global options, run against the real binary.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "e2e_util.h"

namespace sloth::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

// "deploy" is defined before what it depends on, so execution order differs from source order.
constexpr char kPipeline[] = R"lua(
local deploy = task("deploy")
  :description("Ship it")
  :depends_on({ "build", "test" })
  :delegate_to("web-01")
  :timeout("5m")
  :retries(3, "exponential")
  :command(function() io.open("ran-deploy", "w"):close() end)
  :build()
local build = task("build")
  :description("Compile")
  :workdir("out")
  :tags({ "ci", "fast" })
  :command("make all")
  :build()
local test = task("test")
  :depends_on("build")
  :async(true)
  :timeout(90)
  :command(function() io.open("ran-test", "w"):close() end)
  :build()
workflow.define("ci", {
  description = "CI \"pipeline\"",
  version = "2.1.0",
  tasks = { deploy, build, test },
  config = { max_parallel_tasks = 3, fail_fast = false, timeout = "1h30m" },
  metadata = { owner = "team-a", tier = 2 },
})
workflow.define("other", { tasks = { { name = "solo", command = "true" } } })
)lua";

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(SlothBin().empty()) << "SLOTH_BIN is not set";
    box_.Write("pipeline.sloth", kPipeline);
  }
  CmdResult Run(const std::vector<std::string>& args) const { return box_.Run(args); }
  Json RunJson(const std::vector<std::string>& args) const {
    CmdResult r = Run(args);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    Json doc = Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(doc.is_discarded()) << "stdout is not one JSON document:\n" << r.out;
    return doc;
  }

  Sandbox box_;
};

// --- workflow preview --------------------------------------------------------------------

TEST_F(CliTest, Preview_TreeListsTasksInExecutionOrderWithTheirSettings) {
  CmdResult r = Run({"workflow", "preview", "-f", "pipeline.sloth", "ci"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string& out = r.out;
  size_t build = out.find("1. build"), test = out.find("2. test"), deploy = out.find("3. deploy");
  ASSERT_NE(build, std::string::npos) << out;
  ASSERT_NE(test, std::string::npos) << out;
  ASSERT_NE(deploy, std::string::npos) << out;
  EXPECT_LT(build, test);
  EXPECT_LT(test, deploy);
  EXPECT_THAT(out, HasSubstr("Workflow ci (version 2.1.0)"));
  EXPECT_THAT(out, HasSubstr("max_parallel_tasks=3 fail_fast=false timeout=1h30m"));
  EXPECT_THAT(out, HasSubstr("\"owner\":\"team-a\""));
  EXPECT_THAT(out, HasSubstr("depends on: build, test"));
  EXPECT_THAT(out, HasSubstr("delegate to: web-01"));
  EXPECT_THAT(out, HasSubstr("timeout: 5m"));
  EXPECT_THAT(out, HasSubstr("timeout: 1m30s"));
  EXPECT_THAT(out, HasSubstr("retries: 3 (exponential"));
  EXPECT_THAT(out, HasSubstr("command: make all"));
  EXPECT_THAT(out, HasSubstr("workdir: out"));
  EXPECT_THAT(out, HasSubstr("tags: ci, fast"));
  EXPECT_THAT(out, HasSubstr("async: yes"));
  EXPECT_THAT(out, Not(HasSubstr("solo")));  // NAME picked one workflow
}

TEST_F(CliTest, Preview_RunsNoTask) {
  CmdResult r = Run({"workflow", "preview", "-f", "pipeline.sloth"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("Workflow other"));
  EXPECT_FALSE(box_.Exists("ran-test"));
  EXPECT_FALSE(box_.Exists("ran-deploy"));
  EXPECT_FALSE(box_.Exists("out"));  // workdirs are not created either
}

TEST_F(CliTest, Preview_JsonIsOneDocumentWithPlanConfigAndMetadata) {
  Json doc = RunJson({"workflow", "preview", "-f", "pipeline.sloth", "--format", "json"});
  ASSERT_EQ(doc["workflows"].size(), 2u) << doc.dump(2);
  const Json& ci = doc["workflows"][0];
  EXPECT_EQ(ci["name"], "ci");
  EXPECT_EQ(ci["description"], "CI \"pipeline\"");
  EXPECT_EQ(ci["version"], "2.1.0");
  EXPECT_EQ(ci["config"]["max_parallel_tasks"], 3);
  EXPECT_EQ(ci["config"]["fail_fast"], false);
  EXPECT_EQ(ci["config"]["timeout_ms"], 5400000);
  EXPECT_EQ(ci["metadata"], Json({{"owner", "team-a"}, {"tier", 2}}));
  const Json& tasks = ci["tasks"];
  ASSERT_EQ(tasks.size(), 3u);
  EXPECT_EQ(tasks[0]["name"], "build");
  EXPECT_EQ(tasks[0]["command"], "make all");
  EXPECT_EQ(tasks[0]["workdir"], "out");
  EXPECT_EQ(tasks[0]["tags"], Json({"ci", "fast"}));
  EXPECT_EQ(tasks[1]["name"], "test");
  EXPECT_EQ(tasks[1]["async"], true);
  EXPECT_EQ(tasks[1]["timeout_ms"], 90000);
  EXPECT_EQ(tasks[1]["command"], nullptr);  // a function command has no text
  const Json& deploy = tasks[2];
  EXPECT_EQ(deploy["name"], "deploy");
  EXPECT_EQ(deploy["step"], 3);
  EXPECT_EQ(deploy["description"], "Ship it");
  EXPECT_EQ(deploy["depends_on"], Json({"build", "test"}));
  EXPECT_EQ(deploy["delegate_to"], Json({"web-01"}));
  EXPECT_EQ(deploy["timeout"], "5m");
  EXPECT_EQ(deploy["retries"]["count"], 3);
  EXPECT_EQ(deploy["retries"]["strategy"], "exponential");
  EXPECT_EQ(deploy["async"], false);
}

TEST_F(CliTest, Preview_DotIsAGraphvizDigraphWithDependencyEdges) {
  CmdResult r = Run({"workflow", "preview", "-f", "pipeline.sloth", "-o", "dot"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out.rfind("digraph", 0), 0u) << r.out;
  EXPECT_THAT(r.out, HasSubstr("\"ci/build\" -> \"ci/test\";"));
  EXPECT_THAT(r.out, HasSubstr("\"ci/test\" -> \"ci/deploy\";"));
  EXPECT_THAT(r.out, HasSubstr("\"ci/build\" -> \"ci/deploy\";"));
  EXPECT_THAT(r.out, HasSubstr("label=\"ci\""));
  EXPECT_THAT(r.out, HasSubstr("\"other/solo\""));
  if (box_.Spawn({"sh", "-c", "command -v dot"}).exit_code == 0) {
    box_.Write("g.dot", r.out);
    CmdResult dot = box_.Spawn({"dot", "-Tsvg", "-o", "g.svg", "g.dot"});
    EXPECT_EQ(dot.exit_code, 0) << Describe(dot);
  }
}

TEST_F(CliTest, Preview_MermaidIsAGraphTDWithEdges) {
  CmdResult r = Run({"workflow", "preview", "-f", "pipeline.sloth", "ci", "--format", "mermaid"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out.rfind("graph TD\n", 0), 0u) << r.out;
  // task ids are w<workflow>_t<definition index>: build is t1, test t2, deploy t0
  EXPECT_THAT(r.out, HasSubstr("w0_t1 --> w0_t2"));
  EXPECT_THAT(r.out, HasSubstr("w0_t2 --> w0_t0"));
  EXPECT_THAT(r.out, HasSubstr("w0_t0[\"deploy<br/>on web-01<br/>timeout 5m"));
  EXPECT_THAT(r.out, HasSubstr("subgraph w0[\"ci\"]"));
}

TEST_F(CliTest, Preview_GraphsQuoteOddNames) {
  box_.Write("odd.sloth", R"(workflow.define('say "hi"', { tasks = {
    { name = [[a\b]], command = "true" }, { name = 'c"d', depends_on = [[a\b]], command = "true" } } }))");
  CmdResult dot = Run({"workflow", "preview", "-f", "odd.sloth", "-o", "dot"});
  ASSERT_EQ(dot.exit_code, 0) << Describe(dot);
  EXPECT_THAT(dot.out, HasSubstr(R"(label="say \"hi\"";)"));
  EXPECT_THAT(dot.out, HasSubstr(R"("say \"hi\"/a\\b" -> "say \"hi\"/c\"d";)"));
  CmdResult mermaid = Run({"workflow", "preview", "-f", "odd.sloth", "-o", "mermaid"});
  ASSERT_EQ(mermaid.exit_code, 0) << Describe(mermaid);
  EXPECT_THAT(mermaid.out, HasSubstr(R"(subgraph w0["say #quot;hi#quot;"])"));
  EXPECT_THAT(mermaid.out, HasSubstr(R"(w0_t1["c#quot;d"])"));
}

TEST_F(CliTest, Preview_UnknownWorkflowIsNotFound) {
  CmdResult r = Run({"workflow", "preview", "-f", "pipeline.sloth", "nope"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("error: workflow \"nope\" not found"));
}

TEST_F(CliTest, Preview_BadInputExits2) {
  CmdResult bad_format = Run({"workflow", "preview", "-f", "pipeline.sloth", "-o", "yaml"});
  EXPECT_EQ(bad_format.exit_code, 2) << Describe(bad_format);
  EXPECT_THAT(bad_format.err, HasSubstr("error: unknown format \"yaml\""));

  CmdResult missing = Run({"workflow", "preview", "-f", "missing.sloth"});
  EXPECT_EQ(missing.exit_code, 2) << Describe(missing);
  EXPECT_THAT(missing.err, HasSubstr("missing.sloth"));

  box_.Write("broken.sloth", "task(\"a\"):command(function() end):shell('x')\n");
  CmdResult broken = Run({"workflow", "preview", "-f", "broken.sloth"});
  EXPECT_EQ(broken.exit_code, 2) << Describe(broken);
  EXPECT_THAT(broken.err, HasSubstr("broken.sloth:1"));

  box_.Write("cycle.sloth", R"(workflow.define("c", { tasks = {
    { name = "a", depends_on = "b", command = "true" },
    { name = "b", depends_on = "a", command = "true" } } }))");
  CmdResult cycle = Run({"workflow", "preview", "-f", "cycle.sloth"});
  EXPECT_EQ(cycle.exit_code, 2) << Describe(cycle);

  CmdResult no_file = Run({"workflow", "preview"});
  EXPECT_EQ(no_file.exit_code, 2) << Describe(no_file);
}

// --- workflow init / list-templates -------------------------------------------------------

const std::vector<std::string> kTemplates = {"basic", "cicd", "infra", "distributed"};

TEST_F(CliTest, ListTemplates_ShowsEveryTemplateWithADescription) {
  CmdResult r = Run({"workflow", "list-templates"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  for (const std::string& t : kTemplates) EXPECT_THAT(r.out, HasSubstr(t + "  ")) << r.out;

  Json doc = RunJson({"workflow", "list-templates", "-o", "json"});
  ASSERT_EQ(doc.size(), kTemplates.size());
  for (size_t i = 0; i < kTemplates.size(); ++i) {
    EXPECT_EQ(doc[i]["name"], kTemplates[i]);
    EXPECT_FALSE(doc[i]["description"].get<std::string>().empty());
  }
  EXPECT_EQ(Run({"workflow", "list-templates", "-o", "xml"}).exit_code, 2);
}

TEST_F(CliTest, Init_EveryTemplateWritesAProjectThatValidates) {
  for (const std::string& t : kTemplates) {
    std::string name = "proj-" + t;
    CmdResult r = Run({"workflow", "init", name, "--template", t});
    ASSERT_EQ(r.exit_code, 0) << t << "\n" << Describe(r);
    ASSERT_TRUE(box_.Exists(name + "/" + name + ".sloth")) << t;
    EXPECT_THAT(box_.Read(name + "/README.md"), HasSubstr("# " + name));
    EXPECT_THAT(box_.Read(name + "/" + name + ".sloth"), Not(HasSubstr("{{name}}")));
    CmdResult v = Run({"validate", "-f", name + "/" + name + ".sloth"});
    EXPECT_EQ(v.exit_code, 0) << t << "\n" << Describe(v);
    Json plan = RunJson({"workflow", "preview", "-f", name + "/" + name + ".sloth", "-o", "json"});
    ASSERT_EQ(plan["workflows"].size(), 1u) << t;
    EXPECT_EQ(plan["workflows"][0]["name"], name) << t;
  }
}

TEST_F(CliTest, Init_BasicAndCicdRunOnAPlainMachine) {
  for (const std::string& t : {std::string("basic"), std::string("cicd")}) {
    std::string name = "run-" + t;
    ASSERT_EQ(Run({"workflow", "init", name, "--template", t}).exit_code, 0) << t;
    Sandbox project;  // run from inside the project, as its README says
    std::filesystem::copy(box_.work() / name, project.work());
    CmdResult r = project.Run({"run", "-f", name + ".sloth", "-o", "json"});
    ASSERT_EQ(r.exit_code, 0) << t << "\n" << Describe(r);
    Json doc = Json::parse(r.out);
    EXPECT_EQ(doc["status"], "success") << r.out;
    for (const auto& [task, result] : doc["tasks"].items())
      EXPECT_EQ(result["status"], "Success") << t << " task " << task;
    if (t == "cicd") {
      EXPECT_TRUE(project.Exists("build/dist/VERSION"));
      EXPECT_TRUE(project.Exists("build/run-cicd-0.1.0.tar.gz"));
    }
  }
}

TEST_F(CliTest, Init_CicdTakesTheVersionFromSet) {
  ASSERT_EQ(Run({"workflow", "init", "app", "--template", "cicd", "--dir", "."}).exit_code, 0);
  CmdResult r = Run({"run", "-f", "app.sloth", "--set", "version=2.0.0"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(box_.Read("build/dist/VERSION"), "2.0.0\n");
  EXPECT_TRUE(box_.Exists("build/app-2.0.0.tar.gz"));
}

TEST_F(CliTest, Init_DefaultsToBasicInADirectoryNamedAfterTheProject) {
  CmdResult r = Run({"workflow", "init", "hello"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("hello/hello.sloth"));
  EXPECT_THAT(box_.Read("hello/hello.sloth"), HasSubstr("workflow.define(\"hello\""));
  EXPECT_THAT(box_.Read("hello/README.md"), HasSubstr("`basic` template"));
}

TEST_F(CliTest, Init_WritesIntoDir) {
  CmdResult r = Run({"workflow", "init", "svc", "--template", "infra", "--dir", "deep/er"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(box_.Exists("deep/er/svc.sloth"));
  EXPECT_TRUE(box_.Exists("deep/er/README.md"));
  EXPECT_THAT(box_.Read("deep/er/svc.sloth"), HasSubstr(":delegate_to(host)"));
}

TEST_F(CliTest, Init_RefusesToOverwriteExistingFiles) {
  box_.Write("mine/README.md", "my own readme\n");
  CmdResult r = Run({"workflow", "init", "proj", "--dir", "mine"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("error: mine/README.md already exists"));
  EXPECT_EQ(box_.Read("mine/README.md"), "my own readme\n");
  EXPECT_FALSE(box_.Exists("mine/proj.sloth"));  // nothing written half-way

  ASSERT_EQ(Run({"workflow", "init", "twice"}).exit_code, 0);
  box_.Write("twice/twice.sloth", "-- edited\n");
  CmdResult again = Run({"workflow", "init", "twice", "--template", "cicd"});
  EXPECT_EQ(again.exit_code, 1) << Describe(again);
  EXPECT_THAT(again.err, HasSubstr("twice/twice.sloth already exists"));
  EXPECT_EQ(box_.Read("twice/twice.sloth"), "-- edited\n");

  box_.Write("afile", "x");
  CmdResult not_dir = Run({"workflow", "init", "p", "--dir", "afile"});
  EXPECT_EQ(not_dir.exit_code, 1) << Describe(not_dir);
  EXPECT_THAT(not_dir.err, HasSubstr("error: afile exists and is not a directory"));
}

TEST_F(CliTest, Init_BadInputExits2) {
  CmdResult bad_template = Run({"workflow", "init", "x", "--template", "kubernetes"});
  EXPECT_EQ(bad_template.exit_code, 2) << Describe(bad_template);
  EXPECT_THAT(bad_template.err,
              HasSubstr("unknown template \"kubernetes\" (basic, cicd, infra, distributed)"));
  for (std::string name : {"../up", "a b", "-dash", "quo\"te", ".hidden"}) {
    CmdResult r = Run({"workflow", "init", "--", name});
    EXPECT_EQ(r.exit_code, 2) << name << "\n" << Describe(r);
  }
  EXPECT_EQ(Run({"workflow", "init"}).exit_code, 2);
  EXPECT_FALSE(box_.Exists("x"));
}

// --- modules list -------------------------------------------------------------------------

TEST_F(CliTest, Modules_ListShowsModulesWithSignaturesAndSummaries) {
  CmdResult r = Run({"modules", "list"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("log - "));
  EXPECT_THAT(r.out, HasSubstr("  log.info(msg, fields?)\n      "));
  EXPECT_THAT(r.out, HasSubstr("exec - "));
  EXPECT_THAT(r.out, HasSubstr("  exec.run(cmd, opts?)"));
  EXPECT_THAT(r.out, Not(HasSubstr(".__")));

  CmdResult one = Run({"modules", "list", "--module", "log"});
  ASSERT_EQ(one.exit_code, 0) << Describe(one);
  EXPECT_EQ(one.out.rfind("log - ", 0), 0u) << one.out;
  EXPECT_THAT(one.out, Not(HasSubstr("exec.run")));
}

TEST_F(CliTest, Modules_JsonIsAnArrayOrOneObjectWithModule) {
  Json all = RunJson({"modules", "list", "--format", "json"});
  ASSERT_TRUE(all.is_array());
  std::vector<std::string> names;
  for (const Json& m : all) {
    names.push_back(m["name"]);
    EXPECT_TRUE(m["summary"].is_string());
    EXPECT_TRUE(m["aliases"].is_array());
    ASSERT_TRUE(m["functions"].is_array()) << m.dump();
    for (const Json& f : m["functions"]) {
      EXPECT_FALSE(f["name"].get<std::string>().starts_with("__")) << f.dump();
      EXPECT_TRUE(f["signature"].is_string());
      EXPECT_TRUE(f["summary"].is_string());
    }
  }
  EXPECT_THAT(names, ::testing::IsSupersetOf({"log", "exec"}));

  Json exec = RunJson({"modules", "list", "-m", "exec", "-o", "json"});
  ASSERT_TRUE(exec.is_object());
  EXPECT_EQ(exec["name"], "exec");
  bool has_run = false;
  for (const Json& f : exec["functions"])
    if (f["name"] == "run") has_run = f["signature"].get<std::string>().starts_with("run(");
  EXPECT_TRUE(has_run) << exec.dump(2);

  for (const Json& m : all)  // a module is found by any of its names
    for (const Json& alias : m["aliases"])
      EXPECT_EQ(RunJson({"modules", "list", "-m", alias, "-o", "json"})["name"], m["name"]);
}

// The list comes from the registry that binds the modules, so every function it names exists.
TEST_F(CliTest, Modules_EveryListedFunctionExistsInLua) {
  Json all = RunJson({"modules", "list", "-o", "json"});
  std::string checks;
  for (const Json& m : all) {
    std::vector<std::string> globals = {m["name"]};
    for (const Json& alias : m["aliases"]) globals.push_back(alias);
    for (const std::string& g : globals)
      for (const Json& f : m["functions"])
        checks += "  assert(type(" + g + "[\"" + f["name"].get<std::string>() +
                  "\"]) == \"function\", \"" + g + "." + f["name"].get<std::string>() + "\")\n";
  }
  box_.Write("check.sloth", "task(\"check\"):command(function()\n" + checks + "end):build()\n");
  CmdResult r = Run({"run", "-f", "check.sloth"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

TEST_F(CliTest, Modules_BadInput) {
  CmdResult unknown = Run({"modules", "list", "--module", "nope"});
  EXPECT_EQ(unknown.exit_code, 1) << Describe(unknown);
  EXPECT_THAT(unknown.err, HasSubstr("error: module \"nope\" not found"));
  CmdResult format = Run({"modules", "list", "-o", "yaml"});
  EXPECT_EQ(format.exit_code, 2) << Describe(format);
  EXPECT_EQ(Run({"modules"}).exit_code, 2);
}

// --- completion ---------------------------------------------------------------------------

// Runs the bash completion function for the words of `line` (the last word is being typed).
std::string BashComplete(const Sandbox& box, const std::string& line) {
  std::string script =
      "source ./completion.bash\n"
      "read -r -a COMP_WORDS <<< \"$LINE\"\n"
      "[[ \"$LINE\" == *' ' ]] && COMP_WORDS+=('')\n"
      "COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))\n"
      "_sloth_runner\n"
      "printf '%s\\n' \"${COMPREPLY[@]}\" | sort | tr '\\n' ' '\n";
  box.Write("complete.sh", script);
  CmdResult r = box.Spawn({"env", "LINE=" + line, "bash", "complete.sh"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  return r.out;
}

TEST_F(CliTest, Completion_BashIsValidAndCompletesTheCommandTree) {
  CmdResult r = Run({"completion", "bash"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("run"));
  EXPECT_THAT(r.out, HasSubstr("workflow"));
  box_.Write("completion.bash", r.out);
  CmdResult syntax = box_.Spawn({"bash", "-n", "completion.bash"});
  EXPECT_EQ(syntax.exit_code, 0) << Describe(syntax);

  EXPECT_EQ(BashComplete(box_, "sloth-runner wor"), "workflow ");
  EXPECT_EQ(BashComplete(box_, "sloth-runner workflow pr"), "preview ");
  EXPECT_EQ(BashComplete(box_, "sloth-runner workflow preview --fo"), "--format ");
  EXPECT_EQ(BashComplete(box_, "sloth-runner workflow preview -o "), "dot json mermaid tree ");
  EXPECT_EQ(BashComplete(box_, "sloth-runner completion "), "bash fish zsh ");
  EXPECT_EQ(BashComplete(box_, "sloth-runner workflow init x --template c"), "cicd ");
  EXPECT_EQ(BashComplete(box_, "sloth-runner modules list -o "), "json table ");
  // option values are skipped while finding the command, global options work below it
  EXPECT_EQ(BashComplete(box_, "sloth-runner --data-dir run wor"), "workflow ");
  EXPECT_EQ(BashComplete(box_, "sloth-runner validate --data"), "--data-dir ");
  // -f completes files
  box_.Write("pipeline2.sloth", "");
  EXPECT_EQ(BashComplete(box_, "sloth-runner run -f pipe"), "pipeline.sloth pipeline2.sloth ");
  box_.Write("with space.sloth", "");
  EXPECT_EQ(BashComplete(box_, "sloth-runner validate -f with"), "with space.sloth ");
}

// Every command `--help` shows is in the script, so it stays true as commands are added.
TEST_F(CliTest, Completion_CoversEveryCommand) {
  std::string bash = Run({"completion", "bash"}).out;
  std::vector<std::vector<std::string>> parents = {{}, {"workflow"}, {"modules"}};
  for (const auto& parent : parents) {
    std::vector<std::string> args = parent;
    args.push_back("--help");
    CmdResult help = Run(args);
    ASSERT_EQ(help.exit_code, 0) << Describe(help);
    std::istringstream lines(help.out.substr(help.out.find("Subcommands:")));
    std::string line;
    std::getline(lines, line);
    int count = 0;
    while (std::getline(lines, line) && line.rfind("  ", 0) == 0) {
      std::string name = line.substr(2, line.find(' ', 2) - 2);
      EXPECT_THAT(bash, HasSubstr(name)) << name;
      ++count;
    }
    EXPECT_GE(count, 1) << help.out;
  }
}

TEST_F(CliTest, Completion_ZshAndFish) {
  CmdResult zsh = Run({"completion", "zsh"});
  ASSERT_EQ(zsh.exit_code, 0) << Describe(zsh);
  EXPECT_EQ(zsh.out.rfind("#compdef sloth-runner\n", 0), 0u);
  EXPECT_THAT(zsh.out, HasSubstr("'preview:Show the plan"));
  EXPECT_THAT(zsh.out, HasSubstr("compdef _sloth_runner sloth-runner"));
  CmdResult fish = Run({"completion", "fish"});
  ASSERT_EQ(fish.exit_code, 0) << Describe(fish);
  EXPECT_THAT(
      fish.out,
      HasSubstr("complete -c sloth-runner -n '__sloth_runner_at \\'workflow\\'' -a 'preview'"));
  EXPECT_THAT(fish.out, HasSubstr("-s o -l format -x -a 'tree json dot mermaid'"));
  // Where the shells are installed, they check the syntax and complete a few lines.
  box_.Write("c.zsh", zsh.out);
  box_.Write("c.fish", fish.out);
  if (box_.Spawn({"sh", "-c", "command -v zsh"}).exit_code == 0) {
    CmdResult check = box_.Spawn({"zsh", "-n", "c.zsh"});
    EXPECT_EQ(check.exit_code, 0) << Describe(check);
    // The completion system's builtins, replaced by ones that print what they are given.
    box_.Write("complete.zsh", R"(compdef() { :; }
_describe() { local -a arr; arr=("${(@P)${@[-1]}}"); print -r -- "${arr[@]%%:*}"; }
compadd() { local -a arr; arr=("${(@P)${@[-1]}}"); print -r -- "${arr[@]}"; }
compset() { :; }
_files() { print -r -- "FILES $*"; }
source ./c.zsh
words=(${=LINE}); [[ $LINE == *' ' ]] && words+=('')
CURRENT=${#words}
_sloth_runner
)");
    auto complete = [&](const std::string& line) {
      return box_.Spawn({"env", "LINE=" + line, "zsh", "complete.zsh"}).out;
    };
    EXPECT_EQ(complete("sloth-runner workflow "), "run list preview init list-templates\n");
    EXPECT_EQ(complete("sloth-runner workflow preview -o "), "tree json dot mermaid\n");
    EXPECT_EQ(complete("sloth-runner --data-dir x completion "), "bash zsh fish\n");
    EXPECT_EQ(complete("sloth-runner run -f "), "FILES \n");
    EXPECT_EQ(complete("sloth-runner workflow init x --dir "), "FILES -/\n");
  }
  if (box_.Spawn({"sh", "-c", "command -v fish"}).exit_code == 0) {
    CmdResult check = box_.Spawn({"fish", "--no-execute", "c.fish"});
    EXPECT_EQ(check.exit_code, 0) << Describe(check);
    auto complete = [&](const std::string& line) {
      std::string out = box_.Spawn({"fish", "-c", "source c.fish; complete -C '" + line + "'"}).out;
      std::string words;  // the candidates without their descriptions
      std::istringstream lines(out);
      for (std::string l; std::getline(lines, l);) words += l.substr(0, l.find('\t')) + " ";
      return words;
    };
    EXPECT_EQ(complete("sloth-runner workflow pr"), "preview ");
    EXPECT_EQ(complete("sloth-runner workflow preview -o "), "dot json mermaid tree ");
    EXPECT_EQ(complete("sloth-runner --data-dir x wor"), "workflow ");
    EXPECT_EQ(complete("sloth-runner completion "), "bash fish zsh ");
  }
}

TEST_F(CliTest, Completion_BadShellExits2) {
  CmdResult r = Run({"completion", "powershell"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("error: unknown shell \"powershell\""));
  EXPECT_EQ(Run({"completion"}).exit_code, 2);
}

// --- docs/cli.md ---------------------------------------------------------------------------

std::string DocsPage() { return ReadFile(SourceDir() + "/docs/cli.md"); }

// The lines under `header` ("Options:", "Subcommands:") of a --help text.
std::vector<std::string> HelpSection(const std::string& help, const std::string& header) {
  std::vector<std::string> out;
  size_t at = help.find("\n" + header + "\n");
  if (at == std::string::npos) return out;
  std::istringstream lines(help.substr(at + header.size() + 2));
  for (std::string line; std::getline(lines, line) && line.rfind("  ", 0) == 0;)
    out.push_back(line);
  return out;
}

// Every command and every long option that --help shows is documented.
TEST_F(CliTest, Docs_CoverEveryCommandAndOption) {
  std::string page = DocsPage();
  ASSERT_FALSE(page.empty()) << "docs/cli.md not found under SLOTH_SOURCE_DIR";
  std::vector<std::vector<std::string>> pending = {{}};
  int commands = 0;
  while (!pending.empty()) {
    std::vector<std::string> path = pending.back();
    pending.pop_back();
    std::vector<std::string> args = path;
    args.push_back("--help");
    CmdResult help = Run(args);
    ASSERT_EQ(help.exit_code, 0) << Describe(help);
    std::string name = "sloth-runner";
    for (const std::string& p : path) name += " " + p;
    EXPECT_NE(page.find(name), std::string::npos) << name << " is not in docs/cli.md";
    ++commands;
    for (const std::string& line : HelpSection(help.out, "Options:")) {
      std::istringstream words(line);
      std::string names;
      words >> names;  // "-f,--file"
      for (const std::string& n : Split(names, ','))
        if (n.rfind("--", 0) == 0)
          EXPECT_NE(page.find(n), std::string::npos)
              << name << " " << n << " is not in docs/cli.md";
    }
    for (const std::string& line : HelpSection(help.out, "Subcommands:")) {
      std::vector<std::string> sub = path;
      sub.push_back(line.substr(2, line.find(' ', 2) - 2));
      pending.push_back(sub);
    }
  }
  EXPECT_GE(commands, 12);
}

// Every `sloth-runner` line of the page's sh blocks runs as shown; "# exit N" gives its exit code.
TEST_F(CliTest, Docs_ExamplesRun) {
  std::string page = DocsPage();
  ASSERT_FALSE(page.empty());
  std::filesystem::copy(SourceDir() + "/examples", box_.work() / "examples",
                        std::filesystem::copy_options::recursive);
  const char* path = std::getenv("PATH");
  box_.SetEnv("PATH", std::filesystem::path(SlothBin()).parent_path().string() + ":" +
                          (path ? path : "/usr/bin:/bin"));
  int count = 0;
  for (size_t at = page.find("```sh\n"); at != std::string::npos; at = page.find("```sh\n", at)) {
    size_t end = page.find("```\n", at + 6);
    std::istringstream lines(page.substr(at + 6, end - at - 6));
    at = end;
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("sloth-runner ", 0) != 0) continue;
      int expect = 0;
      size_t exit_note = line.find("# exit ");
      if (exit_note != std::string::npos) expect = std::stoi(line.substr(exit_note + 7));
      CmdResult r = box_.Spawn({"sh", "-c", line});
      EXPECT_EQ(r.exit_code, expect) << line << "\n" << Describe(r);
      ++count;
    }
  }
  EXPECT_GE(count, 30);
}

// --- global options, other commands -------------------------------------------------------

TEST_F(CliTest, GlobalOptionsWorkAfterTheSubcommand) {
  CmdResult r = Run({"validate", "-f", "pipeline.sloth", "--debug", "--data-dir", "dd"});
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("pipeline.sloth: ok (2 workflows, 4 tasks)"));
}

TEST_F(CliTest, UnknownCommandOrFlagExits2) {
  CmdResult r = Run({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_THAT(r.err, HasSubstr("error: "));
  EXPECT_EQ(Run({"workflow", "preview", "-f", "pipeline.sloth", "--bogus"}).exit_code, 2);
  EXPECT_EQ(Run({}).exit_code, 2);
}

TEST_F(CliTest, WorkflowListStillLoadsFiles) {
  CmdResult r = Run({"workflow", "list", "-f", "pipeline.sloth"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_THAT(r.out, HasSubstr("ci  - CI \"pipeline\""));
  EXPECT_EQ(Run({"list", "-f", "nope.sloth"}).exit_code, 2);
}

TEST_F(CliTest, Version) {
  CmdResult r = Run({"version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("sloth-runner version "));
  EXPECT_EQ(Run({"--version"}).out, r.out);
}

}  // namespace
}  // namespace sloth::e2e
