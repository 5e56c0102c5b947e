// terraform and pulumi (and the cli_tool plumbing under them) against recording stand-ins on
// PATH: the argument lists and working directories they get, parsing, check mode, a missing tool.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "exec/loop.h"
#include "lua/modules/cli_tool.h"
#include "lua/modules/cli_tool_testing.h"
#include "lua/test_util.h"

namespace sloth {
using ::testing::ElementsAre;
using testing::LuaEnv;
using testing::StandIns;

namespace {

class TerraformTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Loop::BlockSignals(); }
  explicit TerraformTest(bool check = false) : env_(Options(check)), tools_(env_.dir() + "/si") {
    tools_.Add("terraform");
    tools_.Add("pulumi");
  }
  static RuntimeOptions Options(bool check) {
    RuntimeOptions o;
    o.check_mode = check;
    return o;
  }
  Status Run(const std::string& code) {
    TaskContext task = tools_.Task(env_.dir());
    return env_.RunInTask(code, &task);
  }
  LuaEnv env_;
  StandIns tools_;
};

TEST_F(TerraformTest, GitOpsFlowWithClientAndTfvars) {
  tools_.Reply("terraform_plan",
               "Terraform will perform...\nPlan: 2 to add, 0 to change, 1 to destroy.\n");
  tools_.Reply("terraform_apply", "Apply complete! Resources: 2 added, 0 changed, 1 destroyed.\n");
  tools_.Script("terraform_output", "if [ \"$4\" = ip ]; then echo '\"10.0.0.1\"'; exit 0; fi\n");
  tools_.Reply("terraform_output",
               R"({"ip": {"sensitive": false, "type": "string", "value": "10.0.0.1"}})");
  Status s = Run(R"lua(
    fs.mkdir("env/prod")
    local dir = workdir.get() .. "/env/prod"
    local client = terraform.init(dir)
    assert(client.success and client.exit_code == 0 and client.workdir == dir)
    local tfvars = client:create_tfvars("terraform.tfvars", {
      environment = "prod", count = 3, enabled = true, zones = {"a", "b"},
      tags = {Name = "x"}, quote = 'say "hi" ${x}'})
    assert(tfvars.filename == "terraform.tfvars" and tfvars.path == dir .. "/terraform.tfvars")
    local plan = client:plan({var_file = tfvars.filename})
    assert(plan.success and plan.has_changes and plan.changes.add == 2 and plan.changes.destroy == 1)
    local apply = client:apply({var_file = tfvars.filename, auto_approve = true})
    assert(apply.success and apply.resources.added == 2 and apply.resources.destroyed == 1)
    local out = client:output()
    assert(out.outputs.ip == "10.0.0.1", tostring(out.outputs.ip))
    assert(client:output("ip").value == "10.0.0.1")
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_THAT(
      tools_.Calls(),
      ElementsAre("terraform init -input=false -no-color",
                  "terraform plan -input=false -no-color -var-file=terraform.tfvars",
                  "terraform apply -input=false -no-color -auto-approve "
                  "-var-file=terraform.tfvars",
                  "terraform output -json -no-color", "terraform output -json -no-color ip"));
  for (const auto& dir : tools_.Dirs()) EXPECT_EQ(dir, env_.dir() + "/env/prod");
  std::ifstream in(env_.dir() + "/env/prod/terraform.tfvars");
  std::string text(std::istreambuf_iterator<char>(in), {});
  EXPECT_EQ(text,
            "count       = 3\nenabled     = true\nenvironment = \"prod\"\n"
            "quote       = \"say \\\"hi\\\" $${x}\"\ntags = {\n  \"Name\" = \"x\"\n}\n"
            "zones = [\"a\", \"b\"]\n");
}

TEST_F(TerraformTest, OptionsBecomeArguments) {
  tools_.Reply("terraform_plan", "Error: bad\n", 1);
  Status s = Run(R"lua(
    fs.mkdir("infra")
    local r = terraform.plan({workdir = "infra", vars = {region = "eu", n = 2, list = {"a"}},
                              var_file = {"a.tfvars", "b.tfvars"}, target = "aws_instance.x",
                              out = "p.tfplan", destroy = true})
    assert(r.success == false and r.exit_code == 1 and r.stdout == "Error: bad\n")
    terraform.init({workdir = "infra", backend_config = {bucket = "b"}, upgrade = true})
    terraform.destroy({workdir = "infra", auto_approve = true})
    terraform.fmt({workdir = "infra", recursive = true})
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_THAT(tools_.Calls(),
              ElementsAre("terraform plan -input=false -no-color -var-file=a.tfvars "
                          "-var-file=b.tfvars -var list=[\"a\"] -var n=2 -var region=eu "
                          "-target=aws_instance.x -out=p.tfplan -destroy",
                          "terraform init -input=false -no-color -backend-config=bucket=b -upgrade",
                          "terraform destroy -input=false -no-color -auto-approve",
                          "terraform fmt -list=true -no-color -recursive"));
  EXPECT_EQ(tools_.Dirs()[0], env_.dir() + "/infra");
}

TEST_F(TerraformTest, ValidateParsesJson) {
  tools_.Reply("terraform_validate",
               R"({"valid": false, "error_count": 1, "warning_count": 0,
                   "diagnostics": [{"severity": "error", "summary": "Missing name"}]})",
               1);
  Status s = Run(R"lua(
    local r = terraform.validate(".")
    assert(r.valid == false and r.error_count == 1 and r.diagnostics[1].summary == "Missing name")
    assert(r.success == false)
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
}

TEST_F(TerraformTest, MissingToolIsAResultNotAnError) {
  TaskContext task;
  task.name = "test";
  task.workdir = env_.dir();
  task.env.emplace_back("PATH", env_.dir() + "/empty");
  Status s = env_.RunInTask(R"lua(
    local r = pulumi.preview({workdir = "."})
    assert(r.success == false and r.exit_code == 127, r.error)
    assert(r.error == "pulumi not found on PATH", r.error)
    local c = terraform.init(".")
    assert(c.success == false and c.exit_code == 127 and c.error == "terraform not found on PATH")
    assert(c.workdir == ".")
  )lua",
                            &task);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(tools_.Calls().empty());
}

TEST_F(TerraformTest, PulumiArgumentsAndParsing) {
  tools_.Reply("pulumi_preview", R"({"steps": [], "changeSummary": {"create": 2, "same": 1}})");
  tools_.Reply("pulumi_stack", R"({"url": "https://x", "count": 3})");
  Status s = Run(R"lua(
    local p = pulumi.preview({stack = "dev", config = {["aws:region"] = "eu-west-1"}})
    assert(p.success and p.changes.create == 2)
    assert(pulumi.up({stack = "dev"}).success)
    assert(pulumi.outputs({stack = "dev"}).outputs.count == 3)
    pulumi.destroy({stack = "dev"})
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_THAT(tools_.Calls(),
              ElementsAre("pulumi preview --json --config aws:region=eu-west-1 --non-interactive "
                          "--stack dev",
                          "pulumi up --yes --skip-preview --non-interactive --stack dev",
                          "pulumi stack output --json --non-interactive --stack dev",
                          "pulumi destroy --yes --skip-preview --non-interactive --stack dev"));
}

// With the real terraform, when installed: an outputs-only configuration needs no provider
// (nothing is downloaded), so init/validate/plan/apply/output/destroy run for real, and the
// tfvars file create_tfvars writes is already formatted the way terraform fmt wants it.
TEST_F(TerraformTest, RealTerraformWhenInstalled) {
  const char* path = std::getenv("PATH");
  if (!FindTool("terraform", {std::string("PATH=") + (path ? path : "")}))
    GTEST_SKIP() << "terraform is not installed";
  std::ofstream(env_.dir() + "/main.tf") << R"tf(
variable "region" { type = string }
variable "replicas" { type = number }
variable "tags" { type = map(string) }
output "where" {
value = "${var.region}-${var.replicas}-${var.tags["Name"]}"
}
)tf";
  Status s = env_.RunInTask(R"lua(
    local c = terraform.init(workdir.get())
    assert(c.success, c.stderr)
    c:create_tfvars("terraform.tfvars", {region = "eu", replicas = 2, tags = {Name = "x", Team = "ops"}})
    local f = c:fmt({check = true})  -- ours is formatted, main.tf is not (no indentation)
    assert(#f.files == 1 and f.files[1] == "main.tf" and not f.formatted, f.stdout)
    assert(c:validate().valid == true)
    local p = c:plan({var_file = "terraform.tfvars", out = "p.tfplan"})
    assert(p.success and p.has_changes, p.stderr)
    assert(c:apply({plan = "p.tfplan"}).success)
    assert(c:output("where").value == "eu-2-x")
    assert(c:destroy({var_file = "terraform.tfvars", auto_approve = true}).success)
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
}

class TerraformCheckTest : public TerraformTest {
 protected:
  TerraformCheckTest() : TerraformTest(true) {}
};

TEST_F(TerraformCheckTest, ChangesRunTheirPreviewInstead) {
  tools_.Reply("terraform_plan", "Plan: 1 to add, 0 to change, 0 to destroy.\n");
  tools_.Reply("terraform_fmt", "main.tf\n", 3);
  Status s = Run(R"lua(
    local a = terraform.apply({auto_approve = true, vars = {x = 1}})
    assert(a.success and a.check_mode and a.changes.add == 1)
    local d = terraform.destroy({auto_approve = true})
    assert(d.check_mode and d.success)
    local f = terraform.fmt()
    assert(f.success and f.check_mode and f.files[1] == "main.tf" and not f.changed)
    local up = pulumi.up({stack = "dev"})
    assert(up.check_mode)
    local r = pulumi.config_set("k", "v")
    assert(r.skipped and r.success)
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_THAT(tools_.Calls(), ElementsAre("terraform plan -input=false -no-color -var x=1",
                                          "terraform plan -input=false -no-color -destroy",
                                          "terraform fmt -check -list=true -no-color",
                                          "pulumi preview --non-interactive --stack dev"));
  EXPECT_TRUE(env_.sink().Contains("[check] would run: pulumi config set k v"));
}

}  // namespace
}  // namespace sloth
