// `scheduler ...`: cron schedules of stacks (stored in the data dir's database) and the
// foreground scheduler that runs them (scheduler_loop.h).
#include <csignal>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "base/duration.h"
#include "cli/commands.h"
#include "cli/data_dir.h"
#include "cli/events_run.h"
#include "cli/scheduler_loop.h"
#include "store/migrations.h"
#include "store/sqlite_stack_store.h"

extern char** environ;

namespace sloth {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

struct Stores {
  std::shared_ptr<Db> db;
  std::unique_ptr<ScheduleStore> schedules;
};

Result<Stores> Open(const GlobalOptions& global) {
  auto db = OpenDatabase(DatabasePath(DataDir(global.data_dir)));
  if (!db.ok()) return db.status();
  return Stores{*db, std::make_unique<ScheduleStore>(*db)};
}

// Exit code for a store error: 3 when the database stayed locked past its timeout.
int StoreFailure(const std::string& message) {
  bool locked = message.find("database is locked") != std::string::npos;
  return Fail(locked ? kExitUnreachable : kExitFailed, message);
}

// An existing file's absolute path (schedules outlive the directory they were made in).
Result<std::string> AbsoluteFile(const std::string& path, const std::string& what) {
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec).lexically_normal();
  if (ec || !fs::is_regular_file(abs, ec)) return Status::Error(what + " " + path + " not found");
  return abs.string();
}

// The workflow file of a schedule: -f, else the schedule's, else the stack's.
Result<std::string> WorkflowFile(const ScheduleOptions& options, Stores& stores,
                                 const std::optional<ScheduleRecord>& existing) {
  if (!options.file.empty()) return AbsoluteFile(options.file, "workflow file");
  if (existing) return existing->file;
  SqliteStackStore stacks(stores.db);
  auto stack = stacks.FindStack(options.stack);
  if (stack.ok() && stack->has_value() && !(*stack)->workflow_file.empty())
    return AbsoluteFile((*stack)->workflow_file, "workflow file");
  return Status::Error("no workflow file for stack " + options.stack + ": give -f FILE");
}

Result<std::vector<std::string>> ValuesFiles(const ScheduleOptions& options,
                                             const std::optional<ScheduleRecord>& existing) {
  if (options.values_files.empty() && existing) return existing->values_files;
  std::vector<std::string> out;
  for (const std::string& v : options.values_files) {
    Result<std::string> abs = AbsoluteFile(v, "values file");
    if (!abs.ok()) return abs.status();
    out.push_back(*abs);
  }
  return out;
}

std::optional<WallTime> NextRun(const ScheduleRecord& r, WallTime now) {
  if (!r.enabled) return std::nullopt;
  Result<CronSchedule> cron = ParseCron(r.cron);
  if (!cron.ok()) return std::nullopt;
  return NextFire(*cron, r, std::max(Reference(r), now));
}

ordered_json OptTime(const std::optional<WallTime>& t) {
  return t ? ordered_json(FormatUtc(*t)) : ordered_json(nullptr);
}

std::optional<WallTime> LastRun(const ScheduleRecord& r) {
  if (!r.last_run_ms) return std::nullopt;
  return WallTime(std::chrono::milliseconds(*r.last_run_ms));
}

ordered_json ToJson(const ScheduleRecord& r, WallTime now) {
  return ordered_json{
      {"stack", r.stack},
      {"cron", r.cron},
      {"file", r.file},
      {"enabled", r.enabled},
      {"next_run", OptTime(NextRun(r, now))},
      {"last_run", OptTime(LastRun(r))},
      {"last_status", r.last_status.empty() ? ordered_json(nullptr) : ordered_json(r.last_status)},
      {"last_error", r.last_error},
      {"values", r.values_files},
  };
}

void PrintTable(const std::vector<ScheduleRecord>& rows, WallTime now) {
  size_t stack_w = 5, cron_w = 4;
  for (const ScheduleRecord& r : rows) {
    stack_w = std::max(stack_w, r.stack.size());
    cron_w = std::max(cron_w, r.cron.size());
  }
  auto cell = [](size_t w) { return std::setw(static_cast<int>(w) + 2); };
  std::cout << std::left << cell(stack_w) << "STACK" << cell(cron_w) << "CRON" << cell(7)
            << "ENABLED" << cell(20) << "NEXT RUN" << cell(20) << "LAST RUN"
            << "LAST STATUS\n";
  for (const ScheduleRecord& r : rows) {
    std::optional<WallTime> next = NextRun(r, now), last = LastRun(r);
    std::cout << cell(stack_w) << r.stack << cell(cron_w) << r.cron << cell(7)
              << (r.enabled ? "yes" : "no") << cell(20) << (next ? FormatUtc(*next) : "-")
              << cell(20) << (last ? FormatUtc(*last) : "-")
              << (r.last_status.empty() ? "-" : r.last_status) << "\n";
  }
}

std::vector<std::string> Environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  return env;
}

// This very binary, so scheduled runs use the same version as the scheduler.
std::string SelfExe() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "/proc/self/exe" : self.string();
}

}  // namespace

int CmdSchedulerEnable(const GlobalOptions& global, const ScheduleOptions& options) {
  if (!options.cron.empty())
    if (Result<CronSchedule> cron = ParseCron(options.cron); !cron.ok())
      return Fail(kExitBadInput, cron.error());
  auto stores = Open(global);
  if (!stores.ok()) return StoreFailure(stores.error());
  auto existing = stores->schedules->Get(options.stack);
  if (!existing.ok()) return StoreFailure(existing.error());
  std::string cron =
      options.cron.empty() && existing->has_value() ? (*existing)->cron : options.cron;
  if (cron.empty())
    return Fail(kExitBadInput, "no schedule for stack " + options.stack +
                                   " yet: give its CRON, e.g. \"*/5 * * * *\"");
  auto file = WorkflowFile(options, *stores, *existing);
  if (!file.ok()) return Fail(kExitBadInput, file.error());
  auto values = ValuesFiles(options, *existing);
  if (!values.ok()) return Fail(kExitBadInput, values.error());
  auto record = stores->schedules->Enable(options.stack, cron, *file, *values);
  if (!record.ok()) return StoreFailure(record.error());
  std::optional<WallTime> next = NextRun(*record, std::chrono::system_clock::now());
  std::cout << "schedule " << options.stack << " enabled: " << cron << " runs " << *file
            << "\nnext run: " << (next ? FormatUtc(*next) : "never") << "\n";
  return kExitOk;
}

int CmdSchedulerDisable(const GlobalOptions& global, const ScheduleOptions& options) {
  auto stores = Open(global);
  if (!stores.ok()) return StoreFailure(stores.error());
  auto found = stores->schedules->Disable(options.stack);
  if (!found.ok()) return StoreFailure(found.error());
  if (!*found) return Fail(kExitFailed, "schedule " + options.stack + " not found");
  std::cout << "schedule " << options.stack << " disabled\n";
  return kExitOk;
}

int CmdSchedulerDelete(const GlobalOptions& global, const ScheduleOptions& options) {
  auto stores = Open(global);
  if (!stores.ok()) return StoreFailure(stores.error());
  auto found = stores->schedules->Delete(options.stack);
  if (!found.ok()) return StoreFailure(found.error());
  if (!*found) return Fail(kExitFailed, "schedule " + options.stack + " not found");
  std::cout << "schedule " << options.stack << " deleted\n";
  return kExitOk;
}

int CmdSchedulerList(const GlobalOptions& global, const ScheduleOptions& options) {
  if (options.output != "table" && options.output != "json")
    return Fail(kExitBadInput, "unknown output \"" + options.output + "\" (table or json)");
  auto stores = Open(global);
  if (!stores.ok()) return StoreFailure(stores.error());
  auto rows = stores->schedules->List();
  if (!rows.ok()) return StoreFailure(rows.error());
  WallTime now = std::chrono::system_clock::now();
  if (options.output == "json") {
    ordered_json out = ordered_json::array();
    for (const ScheduleRecord& r : *rows) out.push_back(ToJson(r, now));
    std::cout << out.dump(2) << "\n";
  } else if (rows->empty()) {
    std::cout << "no schedules\n";
  } else {
    PrintTable(*rows, now);
  }
  return kExitOk;
}

int ServeScheduler(const GlobalOptions& global, const std::string& grace_text,
                   const std::string& who, const ServiceStart& started) {
  Result<Duration> grace = ParseDuration(grace_text);
  if (!grace.ok()) return Fail(kExitBadInput, "--grace: " + grace.error());
  std::string data_dir = fs::absolute(DataDir(global.data_dir)).lexically_normal().string();
  auto stores = Open(global);
  if (!stores.ok()) return StoreFailure(stores.error());
  Loop loop;
  auto bus = OpenEventBus(loop, data_dir, /*take_orphans=*/true);
  if (!bus.ok()) return Fail(kExitFailed, "events: " + bus.error());
  CronSchedulerConfig config;
  config.command = {SelfExe(), "--data-dir", data_dir};
  config.env = Environment();
  config.grace = *grace;
  config.emit = [&bus](const std::string& type, const nlohmann::json& data) {
    std::string stack;
    if (auto s = data.find("schedule"); s != data.end()) stack = s->value("stack", "");
    EmitEvent(bus->get(), type, data, stack, "", "scheduler");
  };
  config.print = [](const std::string& line) { std::cout << line << std::endl; };
  if (global.debug)
    config.debug = [](const std::string& line) { std::cerr << "debug: " << line << std::endl; };
  CronScheduler scheduler(loop, *stores->schedules, config);
  for (int signal : {SIGINT, SIGTERM}) loop.OnSignal(signal, [&] { scheduler.Stop(); });
  // Events from other threads (the master's gRPC threads) are stored on the loop.
  ServiceEmit emit = [&loop, &bus, who](const std::string& type, const std::string& data_json) {
    loop.Post([&bus, who, type, data_json] {
      nlohmann::json data = nlohmann::json::parse(data_json, nullptr, false);
      if (data.is_discarded()) data = nlohmann::json::object();
      EmitEvent(bus->get(), type, data, "", "", who);
    });
  };
  std::function<void()> stop_service;
  if (started) {
    Result<std::function<void()>> service = started(emit);
    if (!service.ok()) return Fail(kExitFailed, service.error());
    stop_service = *service;
  }
  std::cout << "scheduler running on " << data_dir << " (Ctrl-C to stop)" << std::endl;
  if (Status s = scheduler.Start(); !s.ok()) {
    if (stop_service) stop_service();
    return StoreFailure(s.message());
  }
  loop.RunUntil([&] { return scheduler.done(); });
  if (stop_service) stop_service();
  bool flushed = false;  // events the service posted until it stopped are stored first
  loop.Post([&] { flushed = true; });
  loop.RunUntil([&] { return flushed; });
  (*bus)->Drain(std::chrono::seconds(10));
  (*bus)->Close();
  std::cout << "scheduler stopped" << std::endl;
  return kExitOk;
}

int CmdSchedulerRun(const GlobalOptions& global, const ScheduleOptions& options) {
  return ServeScheduler(global, options.grace, "scheduler", nullptr);
}

}  // namespace sloth
