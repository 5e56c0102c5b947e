// Tests for CollectFacts and MetricsSampler against the real machine: shapes and types of the JSON,
// values that must hold on any Linux host, and process CPU % following real work in this process.
#include "rpc/facts.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

namespace sloth {
namespace {

using nlohmann::json;

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Spins on this thread until it has used `seconds` of CPU time.
void BurnCpu(double seconds) {
  volatile uint64_t sink = 0;
  double until = CpuSeconds() + seconds;
  while (CpuSeconds() < until) {
    for (int i = 0; i < 100000; ++i) sink = sink + static_cast<uint64_t>(i) * 7;
  }
}

void ExpectLoad(const json& load) {
  ASSERT_TRUE(load.is_array());
  ASSERT_EQ(load.size(), 3u);
  for (const json& v : load) {
    EXPECT_TRUE(v.is_number());
    EXPECT_GE(v.get<double>(), 0.0);
  }
}

TEST(Facts_Collect, HasEveryKeyWithItsType) {
  json f = json::parse(CollectFacts());
  ASSERT_TRUE(f.is_object());
  for (const char* key : {"hostname", "os", "kernel", "arch"}) {
    EXPECT_TRUE(f[key].is_string()) << key;
  }
  for (const char* key : {"cpus", "memory_total_bytes", "uptime_seconds"}) {
    EXPECT_TRUE(f[key].is_number_unsigned()) << key;
  }
  ASSERT_TRUE(f["disks"].is_array());
  for (const json& d : f["disks"]) {
    EXPECT_TRUE(d["mount"].is_string());
    EXPECT_TRUE(d["total_bytes"].is_number_unsigned());
    EXPECT_TRUE(d["free_bytes"].is_number_unsigned());
  }
  ASSERT_TRUE(f["addresses"].is_array());
  for (const json& a : f["addresses"]) EXPECT_TRUE(a.is_string());
  ExpectLoad(f["load"]);
  EXPECT_EQ(f.size(), 10u) << f.dump();
}

TEST(Facts_Collect, MatchesTheMachine) {
  json f = json::parse(CollectFacts());
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  EXPECT_EQ(f["hostname"], host);
  EXPECT_GE(f["cpus"].get<uint64_t>(), 1u);
  EXPECT_GT(f["memory_total_bytes"].get<uint64_t>(), 0u);
  EXPECT_FALSE(f["kernel"].get<std::string>().empty());
  EXPECT_FALSE(f["arch"].get<std::string>().empty());
  EXPECT_GT(f["uptime_seconds"].get<uint64_t>(), 0u);
}

TEST(Facts_Collect, ListsRootDiskOnceWithSpace) {
  json f = json::parse(CollectFacts());
  int roots = 0;
  for (const json& d : f["disks"]) {
    if (d["mount"] != "/") continue;
    ++roots;
    EXPECT_GT(d["total_bytes"].get<uint64_t>(), 0u);
    EXPECT_LE(d["free_bytes"].get<uint64_t>(), d["total_bytes"].get<uint64_t>());
  }
  EXPECT_EQ(roots, 1) << f["disks"].dump();
}

TEST(Facts_Collect, SkipsPseudoFilesystemsAndLoopback) {
  json f = json::parse(CollectFacts());
  for (const json& d : f["disks"]) {
    std::string mount = d["mount"];
    EXPECT_NE(mount, "/proc");
    EXPECT_NE(mount, "/sys");
    EXPECT_NE(mount, "/dev");
    EXPECT_NE(mount.rfind("/sys/fs/cgroup", 0), 0u) << mount;
  }
  for (const json& a : f["addresses"]) {
    EXPECT_NE(a, "127.0.0.1");
    EXPECT_NE(a, "::1");
  }
}

// In a child with its own mount namespace (needs root; skipped otherwise): a tmpfs, a second view
// of the root filesystem (bind mount) and a bind-mounted file are not disks of their own.
TEST(Facts_Collect, IgnoresTmpfsAndBindMounts) {
  char dir[] = "/tmp/facts_test_XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string tmpfs = std::string(dir) + "/tmpfs", bind = std::string(dir) + "/bind";
  std::string file = std::string(dir) + "/file";
  ASSERT_EQ(mkdir(tmpfs.c_str(), 0700), 0);
  ASSERT_EQ(mkdir(bind.c_str(), 0700), 0);
  fclose(fopen(file.c_str(), "w"));
  pid_t pid = fork();
  if (pid == 0) {
    if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) ||
        mount("tmpfs", tmpfs.c_str(), "tmpfs", 0, nullptr) ||
        mount("/usr", bind.c_str(), nullptr, MS_BIND, nullptr) ||
        mount("/etc/hostname", file.c_str(), nullptr, MS_BIND, nullptr)) {
      _exit(2);
    }
    int listed = 0;
    json facts = json::parse(CollectFacts());
    for (const json& d : facts["disks"]) {
      if (d["mount"].get<std::string>().rfind(dir, 0) == 0) ++listed;
    }
    _exit(listed == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  unlink(file.c_str());
  rmdir(tmpfs.c_str());
  rmdir(bind.c_str());
  rmdir(dir);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 2) GTEST_SKIP() << "cannot make a mount namespace here";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "a tmpfs or bind mount was listed as a disk";
}

TEST(Facts_Metrics, HasEveryKeyWithItsType) {
  MetricsSampler sampler;
  json m = json::parse(sampler.Sample());
  ASSERT_TRUE(m.is_object());
  for (const char* key :
       {"memory_used_bytes", "memory_total_bytes", "disk_used_bytes", "disk_total_bytes",
        "network_rx_bytes", "network_tx_bytes", "process_rss_bytes"}) {
    EXPECT_TRUE(m[key].is_number_unsigned()) << key;
  }
  EXPECT_TRUE(m["cpu_percent"].is_number());
  EXPECT_TRUE(m["process_cpu_percent"].is_number());
  ExpectLoad(m["load"]);
  EXPECT_EQ(m.size(), 10u) << m.dump();
}

TEST(Facts_Metrics, SecondSampleHasSaneValues) {
  MetricsSampler sampler;
  json first = json::parse(sampler.Sample());
  EXPECT_GE(first["cpu_percent"].get<double>(), 0.0);
  EXPECT_LE(first["cpu_percent"].get<double>(), 100.0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  json m = json::parse(sampler.Sample());
  EXPECT_GE(m["cpu_percent"].get<double>(), 0.0);
  EXPECT_LE(m["cpu_percent"].get<double>(), 100.0);
  EXPECT_GT(m["process_rss_bytes"].get<uint64_t>(), 0u);
  EXPECT_GT(m["memory_total_bytes"].get<uint64_t>(), 0u);
  EXPECT_GT(m["memory_used_bytes"].get<uint64_t>(), 0u);
  EXPECT_LE(m["memory_used_bytes"].get<uint64_t>(), m["memory_total_bytes"].get<uint64_t>());
  EXPECT_GT(m["disk_total_bytes"].get<uint64_t>(), 0u);
  EXPECT_LE(m["disk_used_bytes"].get<uint64_t>(), m["disk_total_bytes"].get<uint64_t>());
}

// The reported share must match this process's own CPU time over the same wall-clock window
// (whatever share of a core a busy machine gave it): the measure, not the machine, is tested.
TEST(Facts_Metrics, ProcessCpuFollowsWorkInThisProcess) {
  MetricsSampler sampler;
  sampler.Sample();
  double cpu0 = CpuSeconds();
  auto wall0 = std::chrono::steady_clock::now();
  BurnCpu(0.5);
  json m = json::parse(sampler.Sample());
  double cpu = CpuSeconds() - cpu0;
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  double expected = 100.0 * cpu / wall;
  // /proc counts in 10 ms ticks: over 0.5 s of CPU that is a few percent at most.
  EXPECT_NEAR(m["process_cpu_percent"].get<double>(), expected, 10.0) << m.dump();
  EXPECT_GT(m["process_cpu_percent"].get<double>(), 0.0);
}

TEST(Facts_Metrics, ProcessCpuStaysLowWhileIdle) {
  MetricsSampler sampler;
  sampler.Sample();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_LT(json::parse(sampler.Sample())["process_cpu_percent"].get<double>(), 50.0);
}

// An idle agent samples facts and metrics every 60 s and must stay under 1% CPU: each call
// must cost far less than 0.6 s of CPU.
TEST(Facts_Metrics, SamplingIsCheap) {
  MetricsSampler sampler;
  constexpr int kCalls = 20;
  double start = CpuSeconds();
  for (int i = 0; i < kCalls; ++i) {
    CollectFacts();
    sampler.Sample();
  }
  EXPECT_LT((CpuSeconds() - start) / kCalls, 0.02);
}

}  // namespace
}  // namespace sloth
