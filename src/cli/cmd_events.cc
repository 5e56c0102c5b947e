// `events list|show|cleanup|retry` (events-and-scheduler.md).
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/data_dir.h"
#include "cli/events_run.h"
#include "cli/stack_run.h"
#include "core/state_store.h"

namespace sloth {
namespace {

using nlohmann::json;

bool ValidFormat(const std::string& format) { return format == "table" || format == "json"; }

json EventJson(const StoredEvent& e) {
  json j = EventToJson(e.event);
  j["status"] = e.status;
  j["error"] = e.error;
  return j;
}

json ExecutionJson(const HookExecution& x) {
  return {{"hook", x.hook},
          {"attempt", x.attempt},
          {"success", x.success},
          {"output", x.output},
          {"error", x.error},
          {"duration_ms", x.duration_ms},
          {"at", FormatRfc3339Ms(x.at_ms)}};
}

}  // namespace

int CmdEventsList(const GlobalOptions& global, const EventsOptions& options) {
  if (!ValidFormat(options.output))
    return Fail(kExitBadInput, "unknown output \"" + options.output + "\" (table or json)");
  if (!options.type.empty() && !ValidEventPattern(options.type))
    return Fail(kExitBadInput, "invalid event type \"" + options.type + "\"");
  if (!options.status.empty() && options.status != "pending" && options.status != "delivered" &&
      options.status != "failed")
    return Fail(kExitBadInput,
                "unknown status \"" + options.status + "\" (pending, delivered or failed)");
  auto store = OpenEventStore(DataDir(global.data_dir));
  if (!store.ok()) return Fail(kExitFailed, store.error());
  EventFilter filter{options.type, options.status, options.stack, options.limit};
  auto events = (*store)->ListEvents(filter);
  if (!events.ok()) return Fail(kExitFailed, events.error());
  if (options.output == "json") {
    json out = json::array();
    for (const StoredEvent& e : *events) out.push_back(EventJson(e));
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (events->empty()) {
    std::cout << "no events\n";
    return kExitOk;
  }
  std::cout << std::left << std::setw(25) << "TIME" << std::setw(24) << "TYPE" << std::setw(11)
            << "STATUS" << std::setw(14) << "STACK"
            << "ID\n";
  for (const StoredEvent& e : *events)
    std::cout << std::setw(25) << FormatUnixMs(e.event.timestamp_ms) << std::setw(24)
              << e.event.type << std::setw(11) << e.status << std::setw(14)
              << (e.event.stack.empty() ? "-" : e.event.stack) << e.event.id << "\n";
  return kExitOk;
}

int CmdEventsShow(const GlobalOptions& global, const EventsOptions& options) {
  if (!ValidFormat(options.output))
    return Fail(kExitBadInput, "unknown output \"" + options.output + "\" (table or json)");
  auto store = OpenEventStore(DataDir(global.data_dir));
  if (!store.ok()) return Fail(kExitFailed, store.error());
  auto e = (*store)->GetEvent(options.id);
  if (!e.ok()) return Fail(kExitFailed, e.error());
  if (!e->has_value()) return Fail(kExitFailed, "event " + options.id + " not found");
  auto runs = (*store)->ExecutionsOf(options.id);
  if (!runs.ok()) return Fail(kExitFailed, runs.error());
  json j = EventJson(**e);
  j["executions"] = json::array();
  for (const HookExecution& x : *runs) j["executions"].push_back(ExecutionJson(x));
  if (options.output == "json") {
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  const Event& ev = (*e)->event;
  std::cout << "event:   " << ev.id << "\n"
            << "type:    " << ev.type << "\n"
            << "time:    " << FormatUnixMs(ev.timestamp_ms) << "\n"
            << "source:  " << ev.source << "\n"
            << "stack:   " << (ev.stack.empty() ? "-" : ev.stack) << "\n"
            << "run:     " << (ev.run_id.empty() ? "-" : ev.run_id) << "\n"
            << "status:  " << (*e)->status << ((*e)->error.empty() ? "" : ": " + (*e)->error)
            << "\n"
            << "data:    " << j["data"].dump() << "\n"
            << "hooks:   " << (runs->empty() ? "none ran" : "") << "\n";
  for (const HookExecution& x : *runs)
    std::cout << "  " << x.hook << " attempt " << x.attempt << ": " << (x.success ? "ok" : "failed")
              << " in " << FormatHuman(std::chrono::milliseconds(x.duration_ms))
              << (x.success ? (x.output.empty() ? "" : ": " + x.output) : ": " + x.error) << "\n";
  return kExitOk;
}

int CmdEventsCleanup(const GlobalOptions& global, const EventsOptions& options) {
  if (!(options.hours >= 0)) return Fail(kExitBadInput, "--hours must be 0 or more");
  auto store = OpenEventStore(DataDir(global.data_dir));
  if (!store.ok()) return Fail(kExitFailed, store.error());
  int64_t before = NowUnixMs() - static_cast<int64_t>(options.hours * 3600 * 1000);
  auto removed = (*store)->DeleteEventsBefore(before);
  if (!removed.ok()) return Fail(kExitFailed, removed.error());
  std::cout << "removed " << *removed << " event" << (*removed == 1 ? "" : "s") << " older than "
            << options.hours << " h\n";
  return kExitOk;
}

int CmdEventsRetry(const GlobalOptions& global, const EventsOptions& options) {
  std::string data_dir = DataDir(global.data_dir);
  Loop loop;
  auto bus = OpenEventBus(loop, data_dir, /*take_orphans=*/false);
  if (!bus.ok()) return Fail(kExitFailed, bus.error());
  auto e = (*bus)->store().GetEvent(options.id);
  if (!e.ok()) return Fail(kExitFailed, e.error());
  if (!e->has_value()) return Fail(kExitFailed, "event " + options.id + " not found");
  if (Status s = (*bus)->Redeliver((*e)->event); !s.ok()) return Fail(kExitFailed, s.message());
  // Retries of a failing hook back off; wait for them as long as a hook may take.
  bool done = (*bus)->Drain(std::chrono::minutes(5));
  (*bus)->Close();
  auto after = (*bus)->store().GetEvent(options.id);
  if (!after.ok() || !after->has_value())
    return Fail(kExitFailed, "event " + options.id + " vanished");
  const StoredEvent& s = **after;
  if (!done || s.status == "pending")
    return Fail(kExitFailed, "event " + options.id + " is still being delivered");
  if (s.status != "delivered") return Fail(kExitFailed, "event " + options.id + ": " + s.error);
  std::cout << "event " << options.id << " delivered\n";
  return kExitOk;
}

}  // namespace sloth
