// The loop behind `scheduler run`: fires each enabled schedule of the database at its cron times
// by starting a child `sloth-runner run STACK -f FILE` (so a run is recorded in its stack's
// history like any other), never two at once for one stack, and follows changes other processes
// make to the schedules within a poll interval. Rules (docs/scheduler.md):
// - @every intervals count from when the schedule was last enabled (anchor_at).
// - A row is re-read just before it fires: a schedule disabled or changed a moment ago does not
//   fire on stale settings.
// - A time that passed while nothing fired it (the scheduler was down or stalled) fires once, late,
//   if it is at most `grace` old; older ones are recorded as missed and emit schedule.missed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/cron.h"
#include "exec/loop.h"
#include "exec/process.h"
#include "store/schedule_store.h"

namespace sloth {

using WallTime = std::chrono::system_clock::time_point;
using SchedulerEventSink = std::function<void(const std::string& type, const nlohmann::json& data)>;

// The first time after `after` when `record` fires: for @every, a whole number of intervals
// after its anchor; else the cron's next time. nullopt when there is none.
std::optional<WallTime> NextFire(const CronSchedule& cron, const ScheduleRecord& record,
                                 WallTime after);

// "2026-11-22T17:30:00Z" (UTC, seconds): how schedule times are shown and sent in events.
std::string FormatUtc(WallTime t);

// Where a schedule's next time is counted from: the last time handled, else the anchor.
WallTime Reference(const ScheduleRecord& record);

struct CronSchedulerConfig {
  // The command a run starts with, e.g. {"/usr/bin/sloth-runner", "--data-dir", DIR}; the
  // scheduler appends `run STACK -f FILE [-v VALUES]...`.
  std::vector<std::string> command;
  std::vector<std::string> env;  // the children's complete environment
  std::chrono::nanoseconds grace = std::chrono::minutes(5);
  std::chrono::nanoseconds poll = std::chrono::milliseconds(250);
  std::chrono::nanoseconds stop_grace = std::chrono::seconds(10);  // SIGTERM, then SIGKILL
  SchedulerEventSink emit;                                         // schedule.* and system.* events
  std::function<void(const std::string&)> print;  // progress lines for the operator
  std::function<void(const std::string&)> debug;  // internal detail
};

class CronScheduler {
 public:
  CronScheduler(Loop& loop, ScheduleStore& store, CronSchedulerConfig config);
  ~CronScheduler();
  CronScheduler(const CronScheduler&) = delete;
  CronScheduler& operator=(const CronScheduler&) = delete;

  // Emits system.startup, loads the schedules and starts polling.
  Status Start();
  // Stops firing and terminates running children (at once on a second call); done() turns true
  // once they have all exited, after system.shutdown.
  void Stop();
  bool done() const { return done_; }
  size_t running() const { return running_.size(); }

 private:
  struct Entry {
    ScheduleRecord record;
    CronSchedule cron;
    std::optional<WallTime> next;
  };
  struct Child {
    pid_t pid = 0;
    int64_t run_ms = 0;
  };

  void Tick();
  void Arm();
  Status Reload();
  // Makes the entry of `record` current (new, changed or unchanged); removes it when disabled.
  void Track(const ScheduleRecord& record);
  void HandleDue(const std::string& stack, WallTime now);
  void Fire(Entry& entry, WallTime due);
  void Missed(Entry& entry, WallTime due);
  void Finished(const std::string& stack, int64_t run_ms, const ProcessExit& exit);
  WallTime LatestDue(const Entry& entry, WallTime first, WallTime now) const;
  void MaybeDone();
  void Emit(const std::string& type, const nlohmann::json& data);
  void Debug(const std::string& line);

  Loop& loop_;
  ScheduleStore& store_;
  CronSchedulerConfig config_;
  Processes processes_;
  std::map<std::string, Entry> entries_;  // enabled schedules by stack
  std::map<std::string, Child> running_;  // by stack: at most one run each
  std::optional<int64_t> data_version_;
  uint64_t timer_ = 0;
  bool stopping_ = false;
  bool done_ = false;
};

}  // namespace sloth
