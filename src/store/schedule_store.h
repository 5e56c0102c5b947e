// ScheduleStore: the cron schedules of sloth.db (one per stack), written by `scheduler
// enable/disable/delete` and read, with their run results, by `scheduler run`. Shares the
// process's connection; not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/db.h"

namespace sloth {

struct ScheduleRecord {
  std::string stack;
  std::string cron;                       // as given (ParseCron accepts it)
  std::string file;                       // absolute path of the workflow file
  std::vector<std::string> values_files;  // absolute paths, in order
  bool enabled = true;
  int64_t revision = 1;  // bumped by every change of the schedule itself, not by run results
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  int64_t anchor_at_ms = 0;            // when last enabled: @every intervals count from here
  std::optional<int64_t> last_due_ms;  // the scheduled time last fired or reported missed
  std::optional<int64_t> last_run_ms;  // when the last scheduled run started
  std::string last_status;             // "", running, success, failed, locked, missed, ...
  std::string last_error;              // why the last run did not succeed
  int64_t last_run_pid = 0;
};

// What the scheduler records after handling a scheduled time.
struct ScheduleResult {
  int64_t due_ms = 0;
  std::optional<int64_t> run_ms;  // set when a run was started
  std::string status;
  std::string error;
  int64_t pid = 0;
};

class ScheduleStore {
 public:
  explicit ScheduleStore(std::shared_ptr<Db> db) : db_(std::move(db)) {}

  // Creates the schedule, or updates the one of `stack`: enabled, anchored now, revision + 1.
  // The run results of an existing schedule are kept.
  Result<ScheduleRecord> Enable(const std::string& stack, const std::string& cron,
                                const std::string& file,
                                const std::vector<std::string>& values_files);
  // Returns false when there is no such schedule.
  Result<bool> Disable(const std::string& stack);
  Result<bool> Delete(const std::string& stack);
  Result<std::optional<ScheduleRecord>> Get(const std::string& stack);
  // Ordered by stack name.
  Result<std::vector<ScheduleRecord>> List();

  // Records that the scheduled time `result.due_ms` was handled (a run started, or missed).
  // Does nothing (returns false) when the schedule is gone.
  Result<bool> RecordDue(const std::string& stack, const ScheduleResult& result);
  // Records how a run that started at `run_ms` ended; ignored when a newer run has started
  // since (returns false).
  Result<bool> RecordFinish(const std::string& stack, int64_t run_ms, const std::string& status,
                            const std::string& error);

  // SQLite's data_version: changes when another connection commits to the database. Cheap: a
  // poller calls it and re-reads the schedules only when it moved.
  Result<int64_t> DataVersion();

 private:
  std::shared_ptr<Db> db_;
};

}  // namespace sloth
