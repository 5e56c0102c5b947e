// kubernetes (kubectl), helm and docker against recording stand-ins on PATH: argument lists,
// stdin manifests, parsed JSON, and their check-mode behaviour (--dry-run or skipped).
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

class ContainerToolsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { Loop::BlockSignals(); }
  explicit ContainerToolsTest(bool check = false)
      : env_(Options(check)), tools_(env_.dir() + "/si") {
    for (const char* tool : {"kubectl", "helm", "docker"}) tools_.Add(tool);
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

TEST_F(ContainerToolsTest, KubectlApplyGetDelete) {
  tools_.Reply("kubectl_apply", R"({"kind": "Deployment", "metadata": {"name": "web"}})");
  tools_.Reply(
      "kubectl_get",
      R"({"kind": "List", "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]})");
  Status s = Run(R"lua(
    local r = kubernetes.apply({manifest = {kind = "Namespace", metadata = {name = "x"}},
                                namespace = "prod", context = "kind"})
    assert(r.success and r.object.metadata.name == "web")
    kubernetes.apply({file = "k8s/app.yaml"})
    local pods = kubernetes.get("pods", {namespace = "prod", selector = "app=web"})
    assert(#pods.items == 2 and pods.items[2].metadata.name == "b")
    kubectl.delete("deployment", "web", {namespace = "prod"})
    kubernetes.scale("deployment/web", 3)
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_THAT(tools_.Calls(),
              ElementsAre("kubectl apply -o json -f - --namespace prod --context kind",
                          "kubectl apply -o json -f k8s/app.yaml",
                          "kubectl get pods --selector app=web -o json --namespace prod",
                          "kubectl delete --ignore-not-found deployment web --namespace prod",
                          "kubectl scale deployment/web --replicas=3"));
  EXPECT_EQ(tools_.Stdin(), R"({"kind":"Namespace","metadata":{"name":"x"}})");
}

TEST_F(ContainerToolsTest, HelmReleases) {
  tools_.Reply("helm_upgrade", R"({"name": "web", "version": 2, "info": {"status": "deployed"}})");
  tools_.Reply("helm_list", R"([{"name": "web", "status": "deployed"}])");
  Status s = Run(R"lua(
    local r = helm.upgrade("web", "bitnami/nginx", {namespace = "prod", values = "v.yaml",
                           set = {replicaCount = 2, ["image.tag"] = "1.25"}, wait = true})
    assert(r.success and r.release.version == 2 and r.release.info.status == "deployed")
    assert(helm.list({all_namespaces = true}).releases[1].name == "web")
    helm.install({name = "db", chart = "bitnami/postgresql", version = "12.1.0", create_namespace = true})
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_THAT(tools_.Calls(),
              ElementsAre("helm upgrade web bitnami/nginx --values v.yaml --set image.tag=1.25 "
                          "--set replicaCount=2 --wait -o json --install --namespace prod",
                          "helm list -o json --all-namespaces",
                          "helm install db bitnami/postgresql --version 12.1.0 "
                          "--create-namespace -o json"));
}

TEST_F(ContainerToolsTest, DockerRunPsInspect) {
  tools_.Reply("docker_run", "abc123\n");
  tools_.Reply("docker_ps",
               "{\"ID\": \"abc\", \"Names\": \"web\"}\n{\"ID\": \"def\", \"Names\": \"db\"}\n");
  tools_.Reply("docker_inspect", R"([{"Id": "abc123", "State": {"Running": true}}])");
  Status s = Run(R"lua(
    local r = docker.run({image = "nginx:1.25", name = "web", detach = true, ports = {"8080:80"},
                          environment = {A = "1"}, volumes = {"/data:/data"}, args = {"-g", "daemon off;"}})
    assert(r.success and r.container_id == "abc123")
    local ps = docker.ps({all = true})
    assert(#ps.containers == 2 and ps.containers[2].Names == "db")
    assert(docker.inspect("web").object.State.Running == true)
    docker.build({tag = "app:1", build_args = {V = "2"}})
    docker.exec("web", "nginx -s reload")
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_THAT(tools_.Calls(),
              ElementsAre("docker run --detach --name web --publish 8080:80 --env A=1 --volume "
                          "/data:/data nginx:1.25 -g daemon off;",
                          "docker ps --format {{json .}} --no-trunc --all", "docker inspect web",
                          "docker build --tag app:1 --build-arg V=2 .",
                          "docker exec web sh -c nginx -s reload"));
}

class ContainerToolsCheckTest : public ContainerToolsTest {
 protected:
  ContainerToolsCheckTest() : ContainerToolsTest(true) {}
};

TEST_F(ContainerToolsCheckTest, DryRunsOrSkips) {
  tools_.Reply("kubectl_get", R"({"kind": "Pod", "metadata": {"name": "p"}})");
  Status s = Run(R"lua(
    local a = kubernetes.apply({file = "app.yaml"})
    assert(a.check_mode and a.success)
    assert(kubernetes.get("pod", "p").object.metadata.name == "p")
    assert(helm.install("web", "nginx").check_mode)
    local d = docker.run({image = "nginx"})
    assert(d.skipped and d.success)
    assert(docker.ps().success)
  )lua");
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_THAT(tools_.Calls(),
              ElementsAre("kubectl apply -o json -f app.yaml --dry-run=client",
                          "kubectl get pod p -o json", "helm install web nginx -o json --dry-run",
                          "docker ps --format {{json .}} --no-trunc"));
  EXPECT_TRUE(env_.sink().Contains("[check] would run: docker run nginx"));
}

}  // namespace
}  // namespace sloth
