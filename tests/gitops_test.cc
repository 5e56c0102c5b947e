// The seed's GitOps example end to end with the real binary: git clones a real (local, bare)
// repository, terraform is a recording stand-in on PATH that logs its argv and working
// directory. Also the remote acceptance case's git and missing-tool tasks.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "e2e_util.h"

namespace sloth::e2e {
namespace {

// The seed's "Your First GitOps Workflow", with the repository URL, the directories and the
// values coming from values.yaml instead of fixed /tmp paths and github.com.
constexpr char kGitOps[] = R"lua(
local clone_repo_task = task("clone_repo")
    :description("Clone Git repository with infrastructure code")
    :workdir(values.checkout)
    :command(function(this, params)
        log.info("📡 Cloning repository...")
        local repository = git.clone(values.repo_url, this.workdir.get())
        return true, "Repository cloned successfully", {
            repository_url = values.repo_url,
            clone_destination = this.workdir.get()
        }
    end)
    :timeout("5m")
    :build()

local deploy_infrastructure = task("deploy_terraform")
    :description("Deploy infrastructure using Terraform")
    :workdir(values.checkout .. "/environments/prod/")
    :depends_on({"clone_repo"})
    :command(function(this, params)
        log.info("🔄 Initializing Terraform...")
        local client = terraform.init(this.workdir:get())
        local terraform_config = {
            environment = values.terraform.environment or "prod",
            instance_type = values.terraform.instance_type or "t3.micro",
            region = values.terraform.region or "us-east-1"
        }
        local tfvars = client:create_tfvars("terraform.tfvars", terraform_config)
        local plan_result = client:plan({ var_file = tfvars.filename })
        if plan_result.success then
            log.info("🚀 Applying Terraform changes...")
            local apply_result = client:apply({
                var_file = tfvars.filename,
                auto_approve = true
            })
            return apply_result.success, "Infrastructure deployment", {
                terraform_used = true,
                plan_success = true,
                apply_success = apply_result.success
            }
        end
        return false, "Terraform plan failed"
    end)
    :timeout("15m")
    :build()

workflow.define("gitops_deploy")
    :description("Complete GitOps workflow: Git clone + Terraform deploy")
    :version("1.0.0")
    :tasks({ clone_repo_task, deploy_infrastructure })
    :config({ timeout = "20m", max_parallel_tasks = 1 })
)lua";

constexpr char kStandIn[] = R"sh(#!/bin/sh
printf '%s|%s\n' "$PWD" "$*" >>"$TF_LOG"
case "$1" in
  plan) echo "Plan: 1 to add, 0 to change, 0 to destroy." ;;
  apply) echo "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." ;;
esac
)sh";

bool HaveGit() { return std::system("git --version >/dev/null 2>&1") == 0; }

// A bare repository with environments/prod/main.tf on main; returns its file:// URL.
std::string MakeRepo(const Sandbox& box) {
  std::string root = box.root().string();
  WriteFile(root + "/make-repo.sh", R"sh(set -e
git init -q --bare -b main origin.git
git init -q -b main seed && cd seed
mkdir -p environments/prod && echo 'variable "region" {}' >environments/prod/main.tf
git add . && git -c user.name=t -c user.email=t@t commit -qm infra
git push -q ../origin.git main
)sh");
  EXPECT_EQ(std::system(("cd " + root + " && sh make-repo.sh").c_str()), 0);
  return "file://" + root + "/origin.git";
}

TEST(GitOps, SeedExampleClonesAndRunsTerraform) {
  if (!HaveGit()) GTEST_SKIP() << "git is needed";
  Sandbox box;
  std::string root = box.root().string();
  std::string url = MakeRepo(box);
  box.Write("bin/terraform", kStandIn);
  std::system(("chmod +x " + (box.work() / "bin/terraform").string()).c_str());
  box.SetEnv("PATH", (box.work() / "bin").string() + ":" + std::getenv("PATH"));
  box.SetEnv("TF_LOG", root + "/tf.log");
  box.Write("wf.sloth", kGitOps);
  box.Write("values.yaml", "repo_url: " + url + "\ncheckout: " + root +
                               "/infrastructure\nterraform:\n  environment: production\n"
                               "  instance_type: t3.small\n  region: us-west-2\n");
  CmdResult r = box.Run({"run", "gitops_deploy", "-f", "wf.sloth", "-v", "values.yaml"});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  std::string prod = root + "/infrastructure/environments/prod";
  EXPECT_EQ(ReadFile(prod + "/main.tf"), "variable \"region\" {}\n");
  EXPECT_EQ(ReadFile(prod + "/terraform.tfvars"),
            "environment   = \"production\"\ninstance_type = \"t3.small\"\nregion        = "
            "\"us-west-2\"\n");
  EXPECT_EQ(ReadFile(root + "/tf.log"),
            prod + "|init -input=false -no-color\n" + prod +
                "|plan -input=false -no-color -var-file=terraform.tfvars\n" + prod +
                "|apply -input=false -no-color -auto-approve -var-file=terraform.tfvars\n");
}

// The git_ops and missing_tool tasks of the remote/ssh-git acceptance case.
constexpr char kRemote[] = R"lua(
local function check(cond, what) if not cond then error("check failed: " .. what) end end
workflow("remote")
  :task("git_ops", function()
    local repo = git.clone(values.repo_url, "checkout")
    check(fs.read("checkout/environments/prod/main.tf") ~= nil, "cloned content")
    local again = git.clone(values.repo_url, "checkout")
    check(again.path ~= nil and again.fetched, "second clone fetches")
    check(#repo:current_commit() == 40, "commit id")
    log.info("git ok")
  end)
  :task("missing_tool", function()
    local r = pulumi.preview({ workdir = "." })
    check(r.success == false and r.exit_code == 127 and tostring(r.error):find("not found"), "missing")
    log.info("missing tool ok")
  end)
)lua";

TEST(GitOps, CloneIsIdempotentAndAMissingToolIsReported) {
  if (!HaveGit()) GTEST_SKIP() << "git is needed";
  Sandbox box;
  std::string url = MakeRepo(box);
  box.SetEnv("PATH", "/usr/local/bin:/usr/bin:/bin");  // no pulumi there
  box.Write("wf.sloth", kRemote);
  CmdResult r = box.Run({"run", "remote", "-f", "wf.sloth", "--set", "repo_url=" + url});
  ASSERT_EQ(r.exit_code, 0) << r.output();
  EXPECT_NE(r.output().find("git ok"), std::string::npos);
  EXPECT_NE(r.output().find("missing tool ok"), std::string::npos);
}

}  // namespace
}  // namespace sloth::e2e
