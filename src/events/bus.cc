#include "events/bus.h"

#include <unistd.h>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "base/duration.h"
#include "base/ids.h"
#include "core/state_store.h"
#include "store/migrations.h"

extern char** environ;

namespace sloth {
namespace {

// A journal this big whose events are all in the database is emptied (long-running processes).
constexpr int64_t kJournalTruncateBytes = 16 << 20;
constexpr size_t kMaxOutputBytes = 64 << 10;

// The end of `text` (at most about `max` bytes), valid UTF-8 even where the cut falls.
std::string Tail(const std::string& text, size_t max) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return SanitizeUtf8(t.size() <= max ? t : "..." + t.substr(t.size() - max));
}

std::string StringField(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The runner prints its outcome as the last line of stdout.
HookOutcome ParseOutcome(const ProcessExit& exit) {
  std::string out = exit.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  size_t nl = out.rfind('\n');
  nlohmann::json j =
      nlohmann::json::parse(nl == std::string::npos ? out : out.substr(nl + 1), nullptr, false);
  HookOutcome o;
  if (j.is_object() && j.contains("success") && j["success"].is_boolean()) {
    o.success = j["success"].get<bool>();
    o.output = Tail(StringField(j, "output"), kMaxOutputBytes);
    o.error = Tail(StringField(j, "error"), kMaxOutputBytes);
    return o;
  }
  o.error = exit.err.empty() ? "the hook runner exited with code " + std::to_string(exit.exit_code)
                             : Tail(exit.err, 2000);
  return o;
}

std::string DepthError(int depth) {
  return "not delivered: hooks dispatching events went " + std::to_string(depth) +
         " deep (the limit is " + std::to_string(kMaxEventDepth) + "); is there a loop?";
}

bool HookWants(const HookInfo& hook, const Event& event) {
  return hook.enabled && (hook.stack.empty() || hook.stack == event.stack) &&
         EventTypeMatches(hook.event_type, event.type);
}

}  // namespace

struct EventBus::Delivery {
  Event event;
  std::string json;  // what the runner reads on stdin
  size_t remaining = 0;
  std::string error;  // the first hook that gave up
};

struct EventBus::Job {
  std::shared_ptr<Delivery> delivery;
  HookInfo hook;
  int attempt = 1;
};

struct EventBus::WriteOp {
  enum Kind { kInsert, kStatus, kExecution } kind = kInsert;
  Event event;
  std::string status;
  std::string error;
  HookExecution execution;
  int64_t journal_end = 0;
};

EventBus::EventBus(Loop& loop, EventBusOptions options)
    : loop_(loop), options_(std::move(options)), processes_(loop) {}

Result<std::unique_ptr<EventBus>> EventBus::Open(Loop& loop, EventBusOptions options) {
  std::unique_ptr<EventBus> bus(new EventBus(loop, std::move(options)));
  if (Status s = bus->Start(); !s.ok()) return s;
  return bus;
}

Status EventBus::Start() {
  token_ = NewUuid();
  journal_dir_ = options_.data_dir + "/events";
  std::shared_ptr<Db> db = options_.db;
  if (!db) {
    auto opened = OpenDatabase(options_.db_path);
    if (!opened.ok()) return opened.status();
    db = *opened;
  }
  store_ = std::make_unique<EventStore>(db);
  if (Status s = ReplayDeadJournals(); !s.ok()) return s;
  auto journal = Journal::Create(journal_dir_, token_);
  if (!journal.ok()) return journal.status();
  journal_ = std::move(*journal);
  if (options_.take_orphans && !options_.hook_command.empty()) {
    if (Status s = TakeOrphans(); !s.ok()) return s;
    ScheduleOrphanSweep();
  }
  return Status::Ok();
}

Status EventBus::ReplayDeadJournals() {
  auto replayed = RecoverJournals(journal_dir_, [&](std::vector<Event>& events) {
    return store_->db().Transaction([&]() -> Status {
      for (const Event& e : events)
        if (Status s = store_->InsertEvent(e, "pending", "", ""); !s.ok()) return s;
      return Status::Ok();
    });
  });
  return replayed.ok() ? Status::Ok() : replayed.status();
}

// Delivers what processes that died left: events still only in their journals, and pending
// events they owned. Each is claimed by one process only.
Status EventBus::TakeOrphans() {
  if (Status s = ReplayDeadJournals(); !s.ok()) return s;
  std::string dir = journal_dir_;
  auto orphans = store_->ClaimOrphans(
      token_, [&dir](const std::string& owner) { return JournalOwnerAlive(dir, owner); });
  if (!orphans.ok()) return orphans.status();
  for (const Event& e : *orphans) {
    auto done = store_->SucceededHooks(e.id);
    if (!done.ok()) return done.status();
    Deliver(e, *done);
  }
  return Status::Ok();
}

// A long-running process also takes over, every 30 s, what short runs killed meanwhile left.
void EventBus::ScheduleOrphanSweep() {
  orphan_timer_ = loop_.AfterInBackground(std::chrono::seconds(30), [this] {
    orphan_timer_ = 0;
    if (Status s = TakeOrphans(); !s.ok())
      std::fprintf(stderr, "warning: events: %s\n", s.message().c_str());
    ScheduleOrphanSweep();
  });
}

EventBus::~EventBus() { Close(); }

const std::vector<HookInfo>& EventBus::Hooks() {
  Clock::time_point now = Clock::now();
  if (!hooks_loaded_ || now - hooks_read_ >= std::chrono::seconds(1)) {
    auto hooks = store_->ListHooks();
    if (hooks.ok()) hooks_ = std::move(*hooks);  // else keep the last list
    hooks_read_ = now;
    hooks_loaded_ = true;
  }
  return hooks_;
}

Result<std::string> EventBus::Dispatch(Event event) {
  if (!ValidEventType(event.type))
    return Status::Error("invalid event type \"" + event.type +
                         "\": use dotted words of letters, digits, _ and - (deploy.started)");
  if (event.timestamp_ms == 0) event.timestamp_ms = NowUnixMs();
  for (std::string* field : {&event.source, &event.stack, &event.agent, &event.run_id})
    *field = SanitizeUtf8(*field);
  if (event.id.empty()) event.id = NewUuidV7(event.timestamp_ms);
  std::vector<HookInfo> wanted;
  if (!options_.hook_command.empty()) {
    for (const HookInfo& h : Hooks())
      if (HookWants(h, event)) wanted.push_back(h);
  }
  WriteOp op;
  op.kind = WriteOp::kInsert;
  op.status = wanted.empty() ? "delivered" : "pending";
  if (!wanted.empty() && event.depth > kMaxEventDepth) {
    op.status = "failed";
    op.error = DepthError(event.depth);
    wanted.clear();
  }
  std::string line = EventToLine(event);
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!journal_) return Status::Error("the event bus is closed");
    auto end = journal_->Append(line);
    if (!end.ok()) return end.status();
    op.journal_end = *end;
    op.event = event;
    ops_.push_back(std::move(op));
    ++queued_;
    ++dispatched_;
    wake = writer_waiting_;
  }
  if (wake) wake_writer_.notify_one();
  Queued();
  if (!wanted.empty()) DeliverTo(event, std::move(wanted));
  return event.id;
}

Status EventBus::Redeliver(const Event& event) {
  if (options_.hook_command.empty()) return Status::Error("this process delivers no events");
  auto done = store_->SucceededHooks(event.id);
  if (!done.ok()) return done.status();
  if (Status s = store_->Requeue(event.id, token_); !s.ok()) return s;
  Deliver(event, *done);
  return Status::Ok();
}

void EventBus::Deliver(const Event& event, const std::set<std::string>& skip) {
  std::vector<HookInfo> wanted;
  for (const HookInfo& h : Hooks())
    if (HookWants(h, event) && !skip.count(h.name)) wanted.push_back(h);
  if (wanted.empty() || event.depth > kMaxEventDepth) {
    WriteOp op;
    op.kind = WriteOp::kStatus;
    op.event.id = event.id;
    op.status = wanted.empty() ? "delivered" : "failed";
    if (!wanted.empty()) op.error = DepthError(event.depth);
    Push(std::move(op));
    return;
  }
  DeliverTo(event, std::move(wanted));
}

void EventBus::DeliverTo(const Event& event, std::vector<HookInfo> hooks) {
  auto d = std::make_shared<Delivery>();
  d->event = event;
  d->json = EventToJson(event).dump();
  d->remaining = hooks.size();
  for (HookInfo& h : hooks) queue_.push_back(Job{d, std::move(h), 1});
  Pump();
}

void EventBus::Pump() {
  while (running_ < options_.workers && !queue_.empty()) {
    Job job = std::move(queue_.front());
    queue_.pop_front();
    RunJob(std::move(job));
  }
}

void EventBus::RunJob(Job job) {
  ProcessSpec spec;
  spec.argv = options_.hook_command;
  spec.argv.push_back(job.hook.name);
  if (!options_.hook_env.empty()) {
    spec.env = options_.hook_env;
  } else {
    for (char** e = environ; *e; ++e) spec.env.emplace_back(*e);
  }
  spec.stdin_data = job.delivery->json;
  ++running_;
  Clock::time_point start = Clock::now();
  auto timed_out = std::make_shared<bool>(false);
  auto timer = std::make_shared<uint64_t>(0);
  auto pid_slot = std::make_shared<pid_t>(0);
  auto pid = processes_.Spawn(
      spec, nullptr, [this, job, start, timed_out, timer, pid_slot](ProcessExit exit) {
        hook_pids_.erase(*pid_slot);
        loop_.Cancel(*timer);
        timers_.erase(*timer);
        HookOutcome outcome = ParseOutcome(exit);
        if (*timed_out) {
          outcome.success = false;
          outcome.error =
              "timed out after " + FormatHuman(std::chrono::milliseconds(job.hook.timeout_ms));
        }
        Finished(job, std::move(outcome), Clock::now() - start);
      });
  if (!pid.ok()) {
    Finished(job, HookOutcome{false, "", "cannot start the hook runner: " + pid.error()},
             Duration{});
    return;
  }
  pid_t child = *pid;
  *pid_slot = child;
  hook_pids_.insert(child);
  *timer = loop_.After(std::chrono::milliseconds(job.hook.timeout_ms), [this, child, timed_out] {
    *timed_out = true;
    processes_.Terminate(child, std::chrono::seconds(3));
  });
  timers_.insert(*timer);
}

void EventBus::Finished(Job job, HookOutcome outcome, Duration took) {
  --running_;
  if (closed_) {
    outcome.success = false;
    outcome.error = "stopped: the process delivering the event exited (it is delivered again)";
  }
  WriteOp rec;
  rec.kind = WriteOp::kExecution;
  rec.execution.hook = job.hook.name;
  rec.execution.event_id = job.delivery->event.id;
  rec.execution.event_type = job.delivery->event.type;
  rec.execution.attempt = job.attempt;
  rec.execution.success = outcome.success;
  rec.execution.output = outcome.output;
  rec.execution.error = outcome.error;
  rec.execution.duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
  rec.execution.at_ms = NowUnixMs();
  Push(std::move(rec));
  if (closed_) return;
  if (!outcome.success && job.attempt <= job.hook.retries) {
    Duration delay = options_.retry_delay * (1 << std::min(job.attempt - 1, 10));
    ++waiting_retries_;
    auto id = std::make_shared<uint64_t>(0);
    *id = loop_.After(delay, [this, job, id]() mutable {
      timers_.erase(*id);
      --waiting_retries_;
      ++job.attempt;
      queue_.push_back(std::move(job));
      Pump();
    });
    timers_.insert(*id);
    Pump();
    return;
  }
  Delivery& d = *job.delivery;
  if (!outcome.success && d.error.empty())
    d.error = job.hook.name + " failed after " + std::to_string(job.attempt) +
              (job.attempt == 1 ? " attempt: " : " attempts: ") + outcome.error;
  if (--d.remaining == 0) {
    WriteOp op;
    op.kind = WriteOp::kStatus;
    op.event.id = d.event.id;
    op.status = d.error.empty() ? "delivered" : "failed";
    op.error = d.error;
    Push(std::move(op));
  }
  Pump();
}

void EventBus::Push(WriteOp op) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ops_.push_back(std::move(op));
    ++queued_;
  }
  wake_writer_.notify_one();
  Queued();
}

Status EventBus::Apply(EventStore& store, const WriteOp& op) {
  switch (op.kind) {
    case WriteOp::kInsert:
      return store.InsertEvent(op.event, op.status, op.error, token_);
    case WriteOp::kStatus:
      return store.SetEventStatus(op.event.id, op.status, op.error);
    case WriteOp::kExecution:
      return store.RecordExecution(op.execution);
  }
  return Status::Ok();
}

// The writer's own connection, opened here, off the dispatching thread's path. Until it opens,
// events wait in the journal and the queue; if it never does, Close keeps the journal.
void EventBus::WriterMain() {
  std::unique_ptr<EventStore> store;
  for (int failures = 0; !store;) {
    auto db = Db::Open(options_.db_path);
    if (db.ok()) {
      store = std::make_unique<EventStore>(std::shared_ptr<Db>(std::move(*db)));
      break;
    }
    std::unique_lock<std::mutex> lock(mu_);
    write_error_ = db.error();
    ++failures;
    if (stop_ && failures >= 3) {
      write_failed_ = true;
      return;
    }
    wake_writer_.wait_for(lock, std::chrono::milliseconds(100 * std::min(failures, 10)));
  }
  WriterLoop(*store);
}

void EventBus::WriterLoop(EventStore& store) {
  std::vector<WriteOp> batch;
  int failures = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      writer_waiting_ = true;
      wake_writer_.wait(lock, [&] { return stop_ || !ops_.empty() || !batch.empty(); });
      writer_waiting_ = false;
      if (batch.empty()) batch.swap(ops_);
      if (batch.empty() && stop_) return;
    }
    if (Status s = CommitBatch(store, batch); !s.ok()) {
      // The database is busy or unwritable: the events are safe in the journal; try again.
      std::unique_lock<std::mutex> lock(mu_);
      write_error_ = s.message();
      ++failures;
      if (stop_ && failures >= 3) {
        write_failed_ = true;
        return;
      }
      wake_writer_.wait_for(lock, std::chrono::milliseconds(100 * std::min(failures, 10)));
      continue;
    }
    failures = 0;
    batch.clear();
    if (draining_) loop_.Post([] {});
  }
}

Status EventBus::CommitBatch(EventStore& store, const std::vector<WriteOp>& batch) {
  Status s = store.db().Transaction([&]() -> Status {
    for (const WriteOp& op : batch)
      if (Status a = Apply(store, op); !a.ok()) return a;
    return Status::Ok();
  });
  if (!s.ok()) return s;
  int64_t inserted = 0;
  int64_t journal_end = 0;
  for (const WriteOp& op : batch) {
    if (op.kind != WriteOp::kInsert) continue;
    ++inserted;
    journal_end = std::max(journal_end, op.journal_end);
  }
  std::lock_guard<std::mutex> lock(mu_);
  committed_ += static_cast<int64_t>(batch.size());
  persisted_ += inserted;
  journal_committed_ = std::max(journal_committed_, journal_end);
  if (journal_ && journal_->size() >= kJournalTruncateBytes &&
      journal_->size() == journal_committed_ && journal_->Truncate().ok())
    journal_committed_ = 0;
  return Status::Ok();
}

// A short run dispatches a handful of events: they go into the database on the loop's own
// connection when it drains (or a moment later), with no thread and no second connection. A
// burst starts the writer thread, which takes over for the rest of the bus's life.
void EventBus::Queued() {
  if (writer_started_) return;
  size_t queued;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queued = ops_.size();
  }
  if (queued >= kInlineBatch) {
    StartWriter();
  } else if (!flush_timer_) {
    flush_timer_ = loop_.AfterInBackground(std::chrono::milliseconds(100), [this] {
      flush_timer_ = 0;
      FlushInline();
    });
  }
}

void EventBus::StartWriter() {
  if (writer_started_) return;
  writer_started_ = true;
  if (flush_timer_) loop_.Cancel(flush_timer_);
  flush_timer_ = 0;
  writer_ = std::thread([this] { WriterMain(); });
}

void EventBus::FlushInline() {
  if (writer_started_) return;
  std::vector<WriteOp> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(ops_);
  }
  if (batch.empty()) return;
  if (CommitBatch(*store_, batch).ok()) return;
  // Busy or unwritable: hand the batch back, in order, to the thread, which keeps trying.
  {
    std::lock_guard<std::mutex> lock(mu_);
    ops_.insert(ops_.begin(), std::make_move_iterator(batch.begin()),
                std::make_move_iterator(batch.end()));
  }
  StartWriter();
}

int64_t EventBus::dispatched() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dispatched_;
}

int64_t EventBus::persisted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return persisted_;
}

bool EventBus::idle() const {
  if (!queue_.empty() || running_ > 0 || waiting_retries_ > 0) return false;
  std::lock_guard<std::mutex> lock(mu_);
  return committed_ == queued_;
}

bool EventBus::Drain(Duration limit) {
  FlushInline();
  Clock::time_point deadline = Clock::now() + limit;
  draining_ = true;
  uint64_t wake = loop_.After(limit, [] {});
  loop_.RunUntil([&] {
    if (queue_.empty() && running_ == 0 && waiting_retries_ == 0) FlushInline();
    return idle() || Clock::now() >= deadline;
  });
  loop_.Cancel(wake);
  draining_ = false;
  return idle();
}

void EventBus::Close() {
  if (closed_) return;
  closed_ = true;
  for (uint64_t id : timers_) loop_.Cancel(id);
  timers_.clear();
  if (orphan_timer_) loop_.Cancel(orphan_timer_);
  orphan_timer_ = 0;
  queue_.clear();
  // Hooks still running are stopped; their events stay pending, owned by a process that is
  // gone, so the next process with a dispatcher delivers them again.
  std::set<pid_t> running = hook_pids_;  // Terminate may reap one at once
  // SIGTERM first: a runner then kills the commands its hook started (they are in process
  // groups of their own, out of reach of a kill of the runner's group).
  for (pid_t pid : running) processes_.Terminate(pid, std::chrono::seconds(2));
  loop_.RunUntil([&] { return hook_pids_.empty(); });
  if (flush_timer_) loop_.Cancel(flush_timer_);
  flush_timer_ = 0;
  FlushInline();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_writer_.notify_one();
  if (writer_.joinable()) writer_.join();
  std::lock_guard<std::mutex> lock(mu_);
  if (journal_ && !write_failed_ && ops_.empty()) journal_->Remove();
  journal_.reset();
}

}  // namespace sloth
