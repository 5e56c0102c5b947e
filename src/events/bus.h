// EventBus: dispatches events and delivers them to hooks (events-and-scheduler.md).
//
// Dispatch appends the event to this process's journal (one write, so it survives kill -9 the
// moment Dispatch returns) and queues it for the database: the few events of a short run are
// written by the loop itself when it drains; a burst starts a writer thread that inserts them in
// batches, one transaction each, on its own connection. Events that a hook wants are delivered on
// the loop: each matching hook runs as a child process (`sloth-runner hook exec NAME`, the event on
// its stdin), at most `workers` at a time, killed at the hook's timeout, retried with backoff, and
// every execution is recorded. At start the bus replays the journals of dead processes and takes
// over the events they left undelivered.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "events/event_store.h"
#include "events/journal.h"
#include "exec/loop.h"
#include "exec/process.h"

namespace sloth {

struct EventBusOptions {
  std::string data_dir;  // the journal lives in DATA/events
  std::string db_path;
  std::shared_ptr<Db> db;  // the caller's connection for the loop's reads and writes, if any
  // The hook runner's argv; the hook's name is appended. Empty: events are stored, not delivered.
  std::vector<std::string> hook_command;
  std::vector<std::string> hook_env;  // the hooks' environment (KEY=VALUE); empty: ours
  int workers = 8;
  Duration retry_delay = std::chrono::seconds(1);  // doubled after each failed attempt
  // Deliver what dead processes left undelivered: at start and every 30 s. For long-running
  // processes (scheduler run); a short run delivers only its own events.
  bool take_orphans = false;
};

// What one run of a hook reported (the runner's last stdout line, as JSON).
struct HookOutcome {
  bool success = false;
  std::string output;
  std::string error;
};

class EventBus {
 public:
  static Result<std::unique_ptr<EventBus>> Open(Loop& loop, EventBusOptions options);
  ~EventBus();
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  // Persists `event` (its id and timestamp are filled in when empty) and starts its delivery.
  // When this returns OK the event is durable. Call it on the loop's thread.
  Result<std::string> Dispatch(Event event);
  // Delivers a stored event again to its matching hooks, except those that already succeeded
  // on it (events retry).
  Status Redeliver(const Event& event);
  // Runs the loop until every delivery has finished and the database has every event, for at
  // most `limit`. false when time ran out.
  bool Drain(Duration limit);
  // Stops: hooks still running are killed (their events stay pending for the next process),
  // the writer flushes, and a journal whose events are all in the database is removed.
  void Close();

  const std::string& token() const { return token_; }
  EventStore& store() { return *store_; }
  // Events dispatched by this bus, and events the writer has committed.
  int64_t dispatched() const;
  int64_t persisted() const;
  bool idle() const;

 private:
  struct Delivery;
  struct Job;
  struct WriteOp;

  EventBus(Loop& loop, EventBusOptions options);
  Status Start();
  Status ReplayDeadJournals();
  Status TakeOrphans();
  void ScheduleOrphanSweep();
  void Deliver(const Event& event, const std::set<std::string>& skip);
  void DeliverTo(const Event& event, std::vector<HookInfo> hooks);
  const std::vector<HookInfo>& Hooks();
  void Pump();
  void RunJob(Job job);
  void Finished(Job job, HookOutcome outcome, Duration took);
  void Push(WriteOp op);
  void Queued();
  void StartWriter();
  void FlushInline();
  Status CommitBatch(EventStore& store, const std::vector<WriteOp>& batch);
  void WriterMain();
  void WriterLoop(EventStore& store);
  Status Apply(EventStore& store, const WriteOp& op);

  Loop& loop_;
  EventBusOptions options_;
  std::string token_;
  std::string journal_dir_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<EventStore> store_;  // the loop's connection
  Processes processes_;
  std::set<pid_t> hook_pids_;  // running hook runners

  // Hooks, re-read at most once a second.
  std::vector<HookInfo> hooks_;
  Clock::time_point hooks_read_{};
  bool hooks_loaded_ = false;

  // Deliveries (loop thread only).
  std::deque<Job> queue_;
  int running_ = 0;
  int waiting_retries_ = 0;
  std::set<uint64_t> timers_;  // hook timeouts and retry delays
  std::atomic<bool> draining_ = false;
  bool closed_ = false;
  // Until a burst starts the writer thread, the loop writes the queue itself (FlushInline).
  static constexpr size_t kInlineBatch = 64;
  bool writer_started_ = false;
  uint64_t flush_timer_ = 0;
  uint64_t orphan_timer_ = 0;

  // The writer thread and what it shares with dispatchers (guarded by mu_).
  mutable std::mutex mu_;
  std::condition_variable wake_writer_;
  std::condition_variable written_;
  std::vector<WriteOp> ops_;
  int64_t queued_ = 0;     // ops pushed
  int64_t committed_ = 0;  // ops committed
  int64_t dispatched_ = 0;
  int64_t persisted_ = 0;
  int64_t journal_committed_ = 0;  // journal bytes whose events are all in the database
  bool stop_ = false;
  bool writer_waiting_ = false;  // the writer sleeps: a push must wake it
  bool write_failed_ = false;
  std::string write_error_;
  std::thread writer_;
};

}  // namespace sloth
