// incus (the fluent API), salt and the cloud CLIs against recording stand-ins on PATH. The incus
// stand-in keeps state: `incus list` answers from what earlier init/start calls did.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "exec/loop.h"
#include "lua/modules/cli_tool_testing.h"
#include "lua/test_util.h"

namespace sloth {
using ::testing::ElementsAre;
using testing::LuaEnv;
using testing::StandIns;

namespace {

// `incus list`: [] until an init, then Stopped, then Running after a start.
constexpr char kIncusList[] = R"sh(
if grep -q "$(printf '\037')start$(printf '\037')" "$d/calls.log"; then echo '[{"name": "web", "status": "Running"}]'
elif grep -q "$(printf '\037')init$(printf '\037')" "$d/calls.log"; then echo '[{"name": "web", "status": "Stopped"}]'
else echo '[]'; fi
exit 0
)sh";

class InfraToolsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Loop::BlockSignals(); }
  explicit InfraToolsTest(bool check = false) : env_(Options(check)), tools_(env_.dir() + "/si") {
    for (const char* tool : {"incus", "salt", "salt-call", "aws", "gcloud", "az"}) tools_.Add(tool);
    tools_.Script("incus_list", kIncusList);
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

TEST_F(InfraToolsTest, IncusFluentInstance) {
  tools_.Reply("incus_network", "", 1);  // `network show` fails: the network does not exist yet
  Status s = Run(R"lua(
    incus.network({name = "web-dmz", type = "bridge"})
      :set_config({["ipv4.address"] = "10.10.0.1/24", ["ipv4.nat"] = "true"})
    local web = incus.instance({name = "web", image = "ubuntu:22.04", profiles = {"default", "web"}})
    assert(web:create():start():wait_running() == web)
    web:create()  -- exists: no second init
    web:exec("apt update && apt install -y nginx")
    web:file_push("./nginx.conf", "/etc/nginx/nginx.conf")
    incus.snapshot({instance = "web", name = "initial", stateful = true}):create()
    local ok, err = pcall(function() incus.network({name = "web-dmz"}):attach("web") end)
    assert(not ok and err:find("incus.network:attach: `incus network attach web%-dmz web` failed %(exit 1%)"), err)
    ok, err = pcall(function() incus.instance({name = "x"}):delegate_to("host") end)
    assert(not ok and err:find("needs a master"))
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_THAT(tools_.Calls(),
              ElementsAre("incus list ^web$ --format json",
                          "incus init ubuntu:22.04 web --profile default --profile web",
                          "incus list ^web$ --format json", "incus start web",
                          "incus list ^web$ --format json", "incus list ^web$ --format json",
                          "incus exec web -- sh -c apt update && apt install -y nginx",
                          "incus file push ./nginx.conf web/etc/nginx/nginx.conf",
                          "incus snapshot create web initial --stateful",
                          "incus network attach web-dmz web"));
}

TEST_F(InfraToolsTest, IncusNetworkAndProfileAreCreatedUnlessTheyExist) {
  constexpr char kMissing[] = "[ \"$2\" = show ] && exit 1\nexit 0\n";
  tools_.Script("incus_network", kMissing);
  tools_.Script("incus_profile", kMissing);
  tools_.Reply("incus_storage", "name: pool\n");  // `storage show` succeeds: it exists
  Status s = Run(R"lua(
    incus.network({name = "n1", type = "bridge"}):set_config({["ipv4.nat"] = "true"}):create()
    incus.profile({name = "web", description = "Web"}):set_config({["limits.cpu"] = "4"}):create()
    incus.storage({name = "pool", driver = "zfs"}):create()
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_THAT(
      tools_.Calls(),
      ElementsAre("incus network show n1", "incus network create n1 ipv4.nat=true --type bridge",
                  "incus profile show web", "incus profile create web",
                  "incus profile set web limits.cpu=4",
                  "incus profile set web --property description=Web", "incus storage show pool"));
}

TEST_F(InfraToolsTest, SaltAndCloud) {
  tools_.Reply("salt", R"({"web1": true, "web2": true})");
  tools_.Reply("aws", R"({"Account": "123", "Arn": "arn:aws:iam::123:user/x"})");
  tools_.Reply("gcloud", "\"my-project\"\n");
  tools_.Reply("az", R"({"id": "sub-1"})");
  Status s = Run(R"lua(
    local p = salt.ping("web*")
    assert(p.success and p.returns.web1 == true)
    salt.cmd({"web1", "web2"}, "pkg.install", {"nginx", refresh = true})
    salt.state_apply("web*", "nginx", {pillar = {port = 80}})
    assert(aws.caller_identity({region = "eu-west-1"}).data.Account == "123")
    aws.s3_sync("./site", "s3://bucket/site", {delete = true})
    assert(gcp.current_project().value == "my-project")
    assert(azure.call({"group", "list"}, {subscription = "s"}).data.id == "sub-1")
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_THAT(
      tools_.Calls(),
      ElementsAre("salt --out=json --static web* test.ping",
                  "salt --out=json --static --list web1,web2 pkg.install nginx refresh=true",
                  "salt --out=json --static web* state.apply nginx pillar={\"port\":80}",
                  "aws sts get-caller-identity --output json --region eu-west-1",
                  "aws s3 sync ./site s3://bucket/site --delete",
                  "gcloud config get-value project --format=json --quiet",
                  "az group list --output json --subscription s"));
}

class InfraToolsCheckTest : public InfraToolsTest {
 protected:
  InfraToolsCheckTest() : InfraToolsTest(true) {}
};

TEST_F(InfraToolsCheckTest, ChangesAreSkippedOrDryRun) {
  tools_.Reply("salt", R"({"web1": {"pkg_|-nginx": {"result": null}}})");
  Status s = Run(R"lua(
    local web = incus.instance({name = "web", image = "ubuntu:22.04"})
    assert(web:create():start():wait_running() == web)
    assert(incus.check_mode() == true)
    assert(salt.state_apply("web*", "nginx").check_mode)
    assert(salt.cmd("web*", "pkg.install", {"nginx"}).skipped)
    assert(aws.s3_cp("a", "s3://b/a").check_mode)
    assert(aws.call({"ec2", "run-instances"}).skipped)
    assert(aws.call({"ec2", "describe-instances"}).success)
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_THAT(
      tools_.Calls(),
      ElementsAre("incus list ^web$ --format json", "incus list ^web$ --format json",
                  "salt --out=json --static web* state.apply nginx test=True",
                  "aws s3 cp a s3://b/a --dryrun", "aws ec2 describe-instances --output json"));
  EXPECT_TRUE(env_.sink().Contains("[check] would run: incus init ubuntu:22.04 web"));
}

}  // namespace
}  // namespace sloth
