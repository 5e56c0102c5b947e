#include "exec/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

extern char** environ;
using namespace std::chrono_literals;

namespace sloth {
namespace {

std::vector<std::string> Env() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  return env;
}

struct Fixture : ::testing::Test {
  static void SetUpTestSuite() { Loop::BlockSignals(); }
  Loop loop;
  Processes procs{loop};
  std::optional<ProcessExit> Run(ProcessSpec spec, std::vector<std::string>* lines = nullptr) {
    std::optional<ProcessExit> result;
    spec.env = Env();
    auto pid = procs.Spawn(
        spec,
        [&](bool, std::string_view l) {
          if (lines) lines->emplace_back(l);
        },
        [&](ProcessExit e) { result = std::move(e); });
    if (!pid.ok()) return std::nullopt;
    loop.RunUntil([&] { return result.has_value(); });
    return result;
  }
};

bool Gone(pid_t pid) {
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f) return true;
  char buf[512] = {};
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  return std::string(buf, n).find(") Z") != std::string::npos;
}

}  // namespace

TEST_F(Fixture, CapturesOutputAndExitCode) {
  std::vector<std::string> lines;
  auto r = Run({{"sh", "-c", "echo one; echo two >&2; printf three; exit 3"}, "", {}, {}}, &lines);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "one\nthree");
  EXPECT_EQ(r->err, "two\n");
  EXPECT_EQ(lines.size(), 3u);
}

TEST_F(Fixture, FeedsStdinAndHonoursCwd) {
  auto r = Run({{"sh", "-c", "cat; pwd"}, "/tmp", {}, std::string("fed\n")});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "fed\n/tmp\n");
}

TEST_F(Fixture, MissingProgramIsAnError) {
  ProcessSpec spec{{"definitely-not-a-program-xyz"}, "", Env(), {}};
  auto pid = procs.Spawn(spec, nullptr, nullptr);
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.error().find("not found"), std::string::npos);
}

// When only the first pipe can be made (out of descriptors), Spawn fails without leaking it.
TEST_F(Fixture, PipeFailureLeaksNoDescriptor) {
  int a = dup(0), b = dup(0);  // the two lowest free descriptors
  ASSERT_GE(a, 0);
  ASSERT_GT(b, a);
  close(a);
  close(b);
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(b) + 1;  // room for one pipe (a, b), not for the second
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  ProcessSpec spec;
  spec.argv = {"true"};
  auto pid = procs.Spawn(spec, nullptr, nullptr);
  bool a_open = fcntl(a, F_GETFD) != -1;
  setrlimit(RLIMIT_NOFILE, &old);
  EXPECT_FALSE(pid.ok());
  EXPECT_FALSE(a_open) << "the first pipe was left open";
}

TEST_F(Fixture, TerminateKillsTheWholeGroup) {
  std::optional<ProcessExit> result;
  ProcessSpec spec{{"sh", "-c", "sleep 30 & echo $!; wait"}, "", Env(), {}};
  pid_t grandchild = 0;
  auto pid = procs.Spawn(
      spec, [&](bool, std::string_view l) { grandchild = std::stoi(std::string(l)); },
      [&](ProcessExit e) { result = std::move(e); });
  ASSERT_TRUE(pid.ok());
  loop.RunUntil([&] { return grandchild != 0; });
  procs.Terminate(*pid, 2s);
  loop.RunUntil([&] { return result.has_value(); });
  EXPECT_TRUE(result->killed);
  EXPECT_NE(result->exit_code, 0);
  // The grandchild was in the same group: it is gone, or a zombie waiting for its reaper.
  bool gone = false;
  for (int i = 0; i < 200 && !gone; ++i) {
    gone = Gone(grandchild);
    if (!gone) usleep(10000);
  }
  EXPECT_TRUE(gone);
}

}  // namespace sloth
