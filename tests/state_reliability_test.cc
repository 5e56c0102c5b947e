// The `state` store under stress and under faults, with real processes (reliability rows of
// quality.md): several `sloth-runner run` processes x goroutines hammering the atomics and the
// locks lose no update and never let two holders in; a read-only or full data dir gives a clear
// error, no crash, and leaves the database intact.
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "e2e_util.h"

namespace sloth::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

constexpr int kProcesses = 4;

// One process's share. Roles run at the same time: increments, read-then-compare_swap loops,
// with_lock sections and lock/unlock sections. Inside a lock a non-atomic read-sleep-write of a
// counter loses updates, and the "holder" key is seen taken, as soon as two hold it at once.
constexpr char kHammer[] = R"(
local W = "%s"
local INCS, CAS, LOCKS = %d, %d, %d
local hammer = task("hammer"):command(function()
  local function violation(what) state.list_push("violations", W .. ": " .. what) end
  local function section(me, holder, counter)
    if state.get(holder) ~= nil then violation(holder .. " taken on entry") end
    state.set(holder, me)
    local n = state.get(counter) or 0
    goroutine.sleep(2)
    if state.get(holder) ~= me then violation(holder .. " changed while held") end
    state.set(counter, n + 1)
    state.delete(holder)
  end
  local hs = {}
  for g = 1, 4 do
    hs[#hs + 1] = goroutine.async(function()
      for i = 1, INCS do state.increment("counter") end
    end)
    hs[#hs + 1] = goroutine.async(function()
      for i = 1, CAS do
        repeat
          local v = state.get("cas")
          local swapped = state.compare_swap("cas", v, (v or 0) + 1)
        until swapped
      end
    end)
  end
  for g = 1, 2 do
    local me = W .. "/" .. g
    hs[#hs + 1] = goroutine.async(function()
      for i = 1, LOCKS do
        state.with_lock("wl", function() section(me, "wl_holder", "wl_count") end, 60)
      end
    end)
    hs[#hs + 1] = goroutine.async(function()
      for i = 1, LOCKS do
        local token = assert(state.lock("fl", 30, 60))
        state.list_push("tokens", token)  -- in the order the lock was held
        section(me, "fl_holder", "fl_count")
        assert(state.unlock("fl", token), "lost the lock")
      end
    end)
  end
  for _, r in ipairs(goroutine.await_all(hs)) do assert(r.success, r.error) end
end):build()
workflow.define("hammer_" .. W, { tasks = { hammer } })  -- a stack each: runs of one stack queue
)";

std::string Hammer(const std::string& worker, int incs, int cas, int locks) {
  std::vector<char> text(sizeof(kHammer) + 64);
  snprintf(text.data(), text.size(), kHammer, worker.c_str(), incs, cas, locks);
  return text.data();
}

TEST(StateReliabilityTest, ProcessesTimesGoroutinesLoseNoUpdateAndNeverShareALock) {
  const int incs = 1000, cas = 50, locks = 12;
  Sandbox shared;  // its home is every process's data dir
  std::vector<std::unique_ptr<Sandbox>> boxes;
  for (int p = 0; p < kProcesses; ++p) {
    boxes.push_back(std::make_unique<Sandbox>());
    boxes.back()->SetEnv("SLOTH_RUNNER_HOME", shared.home().string());
    boxes.back()->Write("hammer.sloth", Hammer("p" + std::to_string(p), incs, cas, locks));
  }
  std::vector<CmdResult> results(kProcesses);
  std::vector<std::thread> threads;
  for (int p = 0; p < kProcesses; ++p)
    threads.emplace_back([&, p] { results[p] = boxes[p]->Run({"run", "-f", "hammer.sloth"}); });
  for (std::thread& t : threads) t.join();
  for (const CmdResult& r : results) ASSERT_EQ(r.exit_code, 0) << Describe(r);

  auto get = [&](const std::string& key) {
    CmdResult r = shared.Run({"state", "get", key});  // numbers and lists print as JSON
    EXPECT_EQ(r.exit_code, 0) << key << ": " << Describe(r);
    return r.exit_code == 0 ? Json::parse(r.out) : Json();
  };
  EXPECT_EQ(get("counter"), kProcesses * 4 * incs);
  EXPECT_EQ(get("cas"), kProcesses * 4 * cas);
  EXPECT_EQ(get("wl_count"), kProcesses * 2 * locks);
  EXPECT_EQ(get("fl_count"), kProcesses * 2 * locks);
  Json tokens = get("tokens");
  ASSERT_EQ(tokens.size(), static_cast<size_t>(kProcesses * 2 * locks));
  for (size_t i = 1; i < tokens.size(); ++i)
    EXPECT_GT(tokens[i].get<int64_t>(), tokens[i - 1].get<int64_t>())
        << "at " << i << ": " << tokens;
  CmdResult violations = shared.Run({"state", "get", "violations"});
  EXPECT_EQ(violations.exit_code, 1) << "violations: " << violations.out;
}

// --- faults ------------------------------------------------------------------------------

// Runs this test process (and the processes it starts) in a mount namespace of its own, so that
// the mounts below are private to it and go away with it. Empty when that worked, else why not.
std::string PrivateMounts() {
  static const std::string why = []() -> std::string {
    if (unshare(CLONE_NEWNS) != 0) return std::string("unshare(CLONE_NEWNS): ") + strerror(errno);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      return std::string("mount --make-rprivate /: ") + strerror(errno);
    return "";
  }();
  return why;
}

// A small tmpfs mounted at `dir` (created) for the life of the object.
class Tmpfs {
 public:
  Tmpfs(const std::filesystem::path& dir, const std::string& size) : dir_(dir) {
    std::filesystem::create_directories(dir);
    error_ = PrivateMounts();
    if (!error_.empty()) return;
    std::string options = "size=" + size;
    if (mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) != 0)
      error_ = "mount -t tmpfs: " + std::string(strerror(errno));
  }
  ~Tmpfs() {
    if (error_.empty()) umount2(dir_.c_str(), MNT_DETACH);
  }
  const std::string& error() const { return error_; }
  bool Remount(bool read_only) {
    unsigned long flags = MS_REMOUNT | (read_only ? MS_RDONLY : 0);
    return mount(nullptr, dir_.c_str(), nullptr, flags, nullptr) == 0;
  }
  int64_t Available() const {
    struct statvfs fs;
    return statvfs(dir_.c_str(), &fs) == 0 ? static_cast<int64_t>(fs.f_bavail * fs.f_frsize) : 0;
  }

 private:
  std::filesystem::path dir_;
  std::string error_;
};

// Writes zeros to `path` until `leave` bytes are left free on its file system (0: until full).
void Fill(const std::filesystem::path& path, const Tmpfs& fs, int64_t leave) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  std::string chunk(4096, '\0');
  while (fs.Available() > leave && out.write(chunk.data(), chunk.size())) out.flush();
}

class StateFaultTest : public ::testing::Test {
 protected:
  void SetUp() override { box_.SetEnv("SLOTH_RUNNER_HOME", data().string()); }
  std::filesystem::path data() const { return box_.root() / "data"; }

  // Stores keys that must survive what the test does next.
  void Populate() {
    ASSERT_EQ(box_.Run({"state", "set", "keep", "precious"}).exit_code, 0);
    box_.Write("fill.sloth", R"(
task("fill"):command(function()
  for i = 1, 100 do state.set("row" .. i, { i = i, text = string.rep("r", 100) }) end
end):build()
)");
    CmdResult r = box_.Run({"run", "-f", "fill.sloth"});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }

  // The database passes SQLite's integrity check and still holds what Populate stored.
  void ExpectIntact() {
    CmdResult check = box_.Spawn({"python3", "-c",
                                  "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                                  "print(c.execute('PRAGMA integrity_check').fetchone()[0]); "
                                  "print(c.execute('SELECT COUNT(*) FROM state_kv WHERE key "
                                  "LIKE \\'row%\\'').fetchone()[0])",
                                  (data() / "sloth.db").string()});
    EXPECT_EQ(check.out, "ok\n100\n") << Describe(check);
    CmdResult keep = box_.Run({"state", "get", "keep"});
    EXPECT_EQ(keep.out, "precious\n") << Describe(keep);
  }

  // A failed command: exit 1 (not a signal), and stderr is one line "error: ...".
  static void ExpectOneLineError(const CmdResult& r, const std::string& needle) {
    EXPECT_EQ(r.exit_code, 1) << Describe(r);
    EXPECT_THAT(r.err, ::testing::StartsWith("error: ")) << Describe(r);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << Describe(r);
    EXPECT_THAT(r.err, HasSubstr(needle)) << Describe(r);
  }

  Sandbox box_;
};

TEST_F(StateFaultTest, ReadOnlyDataDirIsAClearErrorAndChangesNothing) {
  Tmpfs fs(data(), "8m");
  if (!fs.error().empty()) GTEST_SKIP() << "cannot mount a file system here: " << fs.error();
  Populate();
  ASSERT_TRUE(fs.Remount(true)) << strerror(errno);
  ExpectOneLineError(box_.Run({"state", "set", "k", "v"}), "Read-only file system");
  box_.Write("w.sloth", R"(task("w"):command(function() state.set("k", 1) end):build())");
  CmdResult run = box_.Run({"run", "-f", "w.sloth"});
  EXPECT_EQ(run.exit_code, 1) << Describe(run);  // the run opens the database first
  EXPECT_THAT(run.output(), HasSubstr("cannot open ")) << Describe(run);
  EXPECT_THAT(run.output(), HasSubstr("Read-only file system")) << Describe(run);
  ASSERT_TRUE(fs.Remount(false)) << strerror(errno);
  ExpectIntact();
  EXPECT_EQ(box_.Run({"state", "get", "k"}).exit_code, 1);  // nothing was written
}

TEST_F(StateFaultTest, FullDiskIsAClearErrorAndKeepsTheDatabaseIntact) {
  Tmpfs fs(data(), "4m");
  if (!fs.error().empty()) GTEST_SKIP() << "cannot mount a file system here: " << fs.error();
  Populate();
  std::filesystem::path filler = data() / "filler";
  // Nearly full: the database opens, then a write does not fit (SQLITE_FULL in the commit).
  Fill(filler, fs, 256 * 1024);
  box_.Write("big.sloth", R"(
task("big"):command(function()
  local hs = {}
  for i = 1, 4 do  -- one group commit of four writes; the last one cannot fit
    hs[i] = goroutine.async(function()
      return state.set("big" .. i, string.rep("x", i == 4 and 1000000 or 10))
    end)
  end
  local rs = goroutine.await_all(hs)
  assert(rs[1].success and rs[2].success and rs[3].success, "the small writes failed too")
  error(rs[4].error)
end):build()
)");
  CmdResult big = box_.Run({"run", "-f", "big.sloth"});
  EXPECT_EQ(big.exit_code, 1) << Describe(big);
  EXPECT_THAT(big.output(), HasSubstr("state.set: database or disk is full")) << Describe(big);
  EXPECT_THAT(big.output(), Not(HasSubstr("the small writes failed"))) << Describe(big);
  // Full: not even the database's shared-memory file can be created.
  Fill(filler, fs, 0);
  ExpectOneLineError(box_.Run({"state", "set", "k", "v"}), "no space left");
  std::filesystem::remove(filler);
  ExpectIntact();
  EXPECT_EQ(box_.Run({"state", "get", "big1"}).out, "xxxxxxxxxx\n");
  for (const char* key : {"big4", "k"}) EXPECT_EQ(box_.Run({"state", "get", key}).exit_code, 1);
}

}  // namespace
}  // namespace sloth::e2e
