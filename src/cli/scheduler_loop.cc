#include "cli/scheduler_loop.h"

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/state_store.h"

namespace sloth {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

int64_t ToUnixMs(WallTime t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

WallTime FromUnixMs(int64_t ms) { return WallTime(milliseconds(ms)); }

// How a run ended, from its exit code (cli.md "Exit codes") and its `error:` line.
std::string StatusOfRun(const ProcessExit& exit, const std::string& error) {
  switch (exit.exit_code) {
    case 0:
      return "success";
    case 1:
      return "failed";
    case 2:
      return "error";
    case 3:
      return error.find("is locked by") != std::string::npos ? "locked" : "unreachable";
    case 130:
      return "cancelled";
    default:
      return exit.term_signal ? "killed" : "exit " + std::to_string(exit.exit_code);
  }
}

// The last "error: ..." line a run printed, without the prefix.
std::string ErrorLine(const std::string& err) {
  std::istringstream lines(err);
  std::string found;
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("error: ", 0) == 0) found = line.substr(7);
  return found;
}

}  // namespace

std::optional<WallTime> NextFire(const CronSchedule& cron, const ScheduleRecord& record,
                                 WallTime after) {
  std::optional<Duration> every = cron.every();
  if (!every) return cron.Next(after);
  // Anchored intervals: anchor + k * every, the first one strictly after `after`.
  WallTime anchor = FromUnixMs(record.anchor_at_ms);
  if (after < anchor) return anchor + *every;
  auto periods = (after - anchor) / *every;
  return anchor + (periods + 1) * *every;
}

std::string FormatUtc(WallTime t) {
  std::time_t seconds = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

WallTime Reference(const ScheduleRecord& record) {
  return FromUnixMs(std::max(record.last_due_ms.value_or(0), record.anchor_at_ms));
}

CronScheduler::CronScheduler(Loop& loop, ScheduleStore& store, CronSchedulerConfig config)
    : loop_(loop), store_(store), config_(std::move(config)), processes_(loop) {}

CronScheduler::~CronScheduler() {
  if (timer_) loop_.Cancel(timer_);
}

Status CronScheduler::Start() {
  if (Status s = Reload(); !s.ok()) return s;
  Emit("system.startup", json{{"component", "scheduler"}, {"schedules", entries_.size()}});
  Tick();
  return Status::Ok();
}

void CronScheduler::Stop() {
  if (stopping_) {
    processes_.KillAll();  // asked twice: do not wait any longer
    return;
  }
  stopping_ = true;
  if (timer_) loop_.Cancel(timer_), timer_ = 0;
  for (const auto& [stack, child] : running_) {
    if (config_.print) config_.print("stopping: waiting for the run of " + stack);
    processes_.Terminate(child.pid, config_.stop_grace);
  }
  MaybeDone();
}

void CronScheduler::MaybeDone() {
  if (!stopping_ || done_ || !running_.empty()) return;
  Emit("system.shutdown", json{{"component", "scheduler"}});
  done_ = true;
}

void CronScheduler::Tick() {
  timer_ = 0;
  if (stopping_) return;
  if (Status s = Reload(); !s.ok()) Debug("cannot read the schedules: " + s.message());
  WallTime now = std::chrono::system_clock::now();
  std::vector<std::string> due;
  for (const auto& [stack, entry] : entries_)
    if (entry.next && *entry.next <= now) due.push_back(stack);
  for (const std::string& stack : due) HandleDue(stack, now);
  Arm();
}

// Wakes at the next poll or the earliest fire time, whichever comes first.
void CronScheduler::Arm() {
  Duration delay = config_.poll;
  WallTime now = std::chrono::system_clock::now();
  for (const auto& [stack, entry] : entries_)
    if (entry.next) delay = std::min<Duration>(delay, std::max<Duration>(*entry.next - now, {}));
  timer_ = loop_.After(delay, [this] { Tick(); });
}

// Re-reads every schedule, but only when another connection has committed since last time.
Status CronScheduler::Reload() {
  Result<int64_t> version = store_.DataVersion();
  if (!version.ok()) return version.status();
  if (data_version_ == *version) return Status::Ok();
  Result<std::vector<ScheduleRecord>> rows = store_.List();
  if (!rows.ok()) return rows.status();
  data_version_ = *version;
  std::map<std::string, bool> seen;
  for (const ScheduleRecord& row : *rows) {
    seen[row.stack] = true;
    Track(row);
  }
  std::erase_if(entries_, [&](const auto& e) {
    if (seen.count(e.first)) return false;
    Debug("schedule " + e.first + " deleted");
    return true;
  });
  return Status::Ok();
}

void CronScheduler::Track(const ScheduleRecord& row) {
  auto it = entries_.find(row.stack);
  if (!row.enabled) {
    if (it == entries_.end()) return;
    Debug("schedule " + row.stack + " disabled");
    entries_.erase(it);
    return;
  }
  // Same revision of the same row (deleted and enabled again, it starts over at 1).
  if (it != entries_.end() && it->second.record.revision == row.revision &&
      it->second.record.created_at_ms == row.created_at_ms) {
    it->second.record = row;  // run results only
    return;
  }
  Result<CronSchedule> cron = ParseCron(row.cron);
  if (!cron.ok()) {  // stored by hand or by another version: skip it, say why
    if (config_.print) config_.print("schedule " + row.stack + " skipped: " + cron.error());
    if (it != entries_.end()) entries_.erase(it);
    return;
  }
  Entry entry{row, *cron, NextFire(*cron, row, Reference(row))};
  Debug("schedule " + row.stack + " loaded: " + row.cron);
  entries_.insert_or_assign(row.stack, std::move(entry));
}

void CronScheduler::HandleDue(const std::string& stack, WallTime now) {
  // The row as it is now: another process may have changed it since the last poll.
  Result<std::optional<ScheduleRecord>> row = store_.Get(stack);
  if (!row.ok()) return Debug("cannot read schedule " + stack + ": " + row.error());
  if (!row->has_value()) {
    entries_.erase(stack);
    return;
  }
  Track(**row);
  auto it = entries_.find(stack);
  if (it == entries_.end() || !it->second.next || *it->second.next > now) return;
  Entry& entry = it->second;
  WallTime due = LatestDue(entry, *entry.next, now);
  if (now - due > config_.grace)
    Missed(entry, due);
  else
    Fire(entry, due);
  entry.record.last_due_ms = ToUnixMs(due);
  entry.next = NextFire(entry.cron, entry.record, now);
}

// The last fire time in [first, now] (`first` being one). Looks back from `now` in growing
// windows, so a scheduler that was down for months does not step through every time it missed.
WallTime CronScheduler::LatestDue(const Entry& entry, WallTime first, WallTime now) const {
  if (std::optional<Duration> every = entry.cron.every()) {
    WallTime anchor = FromUnixMs(entry.record.anchor_at_ms);
    return std::max(first, anchor + ((now - anchor) / *every) * *every);
  }
  WallTime latest = first;
  for (Duration window = std::chrono::minutes(1);; window *= 4) {
    bool whole = window >= now - first;
    WallTime from = whole ? first : now - window;
    for (auto t = entry.cron.Next(from); t && *t <= now; t = entry.cron.Next(*t)) latest = *t;
    if (latest > first || whole) return latest;
  }
}

void CronScheduler::Fire(Entry& entry, WallTime due) {
  const ScheduleRecord& r = entry.record;
  if (running_.count(r.stack)) {
    Debug("schedule " + r.stack + ": previous run still going, this time is skipped");
    return;
  }
  ProcessSpec spec;
  spec.argv = config_.command;
  for (const char* word : {"run", r.stack.c_str(), "-f", r.file.c_str()}) spec.argv.push_back(word);
  for (const std::string& v : r.values_files) spec.argv.insert(spec.argv.end(), {"-v", v});
  spec.cwd = std::filesystem::path(r.file).parent_path().string();
  spec.env = config_.env;
  std::string stack = r.stack;
  int64_t run_ms = NowUnixMs();
  auto on_line = [this, stack](bool, std::string_view line) {
    if (config_.print) config_.print("[" + stack + "] " + std::string(line));
  };
  auto done = [this, stack, run_ms](ProcessExit exit) { Finished(stack, run_ms, exit); };
  Result<pid_t> pid = processes_.Spawn(spec, on_line, done);
  ScheduleResult result{ToUnixMs(due), run_ms, "running", "", 0};
  if (!pid.ok()) {
    result.status = "error";
    result.error = pid.error();
  } else {
    result.pid = *pid;
    running_[stack] = Child{*pid, run_ms};
  }
  if (auto s = store_.RecordDue(stack, result); !s.ok()) Debug("cannot record: " + s.error());
  if (config_.print)
    config_.print(pid.ok() ? "▶ " + stack + ": run started (pid " + std::to_string(*pid) + ")"
                           : "✗ " + stack + ": cannot start a run: " + pid.error());
  if (pid.ok())
    Emit("schedule.triggered",
         json{{"schedule",
               {{"stack", stack}, {"cron", r.cron}, {"file", r.file}, {"run_pid", *pid}}}});
}

void CronScheduler::Missed(Entry& entry, WallTime due) {
  const ScheduleRecord& r = entry.record;
  std::string at = FormatUtc(due);
  ScheduleResult result{ToUnixMs(due), std::nullopt, "missed", "", 0};
  if (auto s = store_.RecordDue(r.stack, result); !s.ok()) Debug("cannot record: " + s.error());
  if (config_.print) config_.print("⊘ " + r.stack + ": missed the run due at " + at);
  Emit("schedule.missed",
       json{{"schedule", {{"stack", r.stack}, {"cron", r.cron}, {"missed_at", at}}}});
}

void CronScheduler::Finished(const std::string& stack, int64_t run_ms, const ProcessExit& exit) {
  auto it = running_.find(stack);
  if (it != running_.end() && it->second.run_ms == run_ms) running_.erase(it);
  std::string error = ErrorLine(exit.err);
  std::string status = StatusOfRun(exit, error);
  if (auto s = store_.RecordFinish(stack, run_ms, status, status == "success" ? "" : error);
      !s.ok())
    Debug("cannot record: " + s.error());
  if (config_.print)
    config_.print((status == "success" ? "✓ " : "✗ ") + stack + ": " + status +
                  (error.empty() ? "" : ": " + error) + " (" + FormatHuman(exit.elapsed) + ")");
  MaybeDone();
}

void CronScheduler::Emit(const std::string& type, const json& data) {
  if (config_.emit) config_.emit(type, data);
}

void CronScheduler::Debug(const std::string& line) {
  if (config_.debug) config_.debug(line);
}

}  // namespace sloth
