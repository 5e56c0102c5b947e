// `hook add|list|show|enable|disable|delete|test|history|exec` (events-and-scheduler.md).
#include <unistd.h>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "base/duration.h"
#include "cli/commands.h"
#include "cli/data_dir.h"
#include "cli/events_run.h"
#include "cli/hook_runner.h"
#include "cli/stack_run.h"
#include "store/migrations.h"

namespace sloth {
namespace {

using nlohmann::json;

bool ValidHookName(const std::string& name) {
  if (name.empty() || name.size() > 100) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.')
      return false;
  return true;
}

bool ValidFormat(const std::string& format) { return format == "table" || format == "json"; }

json HookJson(const HookInfo& h) {
  std::error_code ec;
  return {{"name", h.name},
          {"file", h.file},
          {"file_exists", std::filesystem::is_regular_file(h.file, ec)},
          {"event_type", h.event_type},
          {"stack", h.stack},
          {"description", h.description},
          {"enabled", h.enabled},
          {"timeout_ms", h.timeout_ms},
          {"retries", h.retries},
          {"created_at", FormatRfc3339Ms(h.created_at_ms)},
          {"updated_at", FormatRfc3339Ms(h.updated_at_ms)}};
}

json ExecutionJson(const HookExecution& x) {
  return {{"hook", x.hook},       {"event_id", x.event_id},       {"event_type", x.event_type},
          {"attempt", x.attempt}, {"success", x.success},         {"output", x.output},
          {"error", x.error},     {"duration_ms", x.duration_ms}, {"at", FormatRfc3339Ms(x.at_ms)}};
}

// Opens the store; on failure prints the error and sets `rc`.
// Hooks and their runs are never in a journal: no replay needed (a hook runner starts often).
std::unique_ptr<EventStore> Open(const GlobalOptions& global, int* rc) {
  auto db = OpenDatabase(DatabasePath(DataDir(global.data_dir)));
  if (db.ok()) return std::make_unique<EventStore>(*db);
  *rc = Fail(kExitFailed, db.error());
  return nullptr;
}

// Finds a hook; prints "hook NAME not found" (exit 1) when there is none.
std::optional<HookInfo> Find(EventStore& store, const std::string& name, int* rc) {
  auto hook = store.GetHook(name);
  if (!hook.ok()) {
    *rc = Fail(kExitFailed, hook.error());
    return std::nullopt;
  }
  if (!hook->has_value()) *rc = Fail(kExitFailed, "hook " + name + " not found");
  return *hook;
}

int64_t Millis(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// The hook `hook add` stores, from the file and the flags (flags win).
Result<HookInfo> HookFromOptions(const GlobalOptions& global, const HookOptions& o) {
  bool named = !o.file.empty();
  std::string file = named ? o.file : o.name;
  if (file.empty()) return Status::Error("hook add: give FILE, or NAME --file FILE --event TYPE");
  auto info = InspectHookFile(file, DataDir(global.data_dir));
  if (!info.ok()) return info.status();
  HookInfo h;
  h.file = std::filesystem::absolute(file).lexically_normal().string();
  h.name = named ? o.name : info->name;
  h.event_type = o.event.empty() ? info->event_type : o.event;
  h.stack = o.stack.empty() ? info->stack : o.stack;
  h.description = o.description.empty() ? info->description : o.description;
  if (info->timeout_ms) h.timeout_ms = *info->timeout_ms;
  if (info->retries) h.retries = *info->retries;
  if (!o.timeout.empty()) {
    auto d = ParseDuration(o.timeout);
    if (!d.ok()) return Status::Error("--timeout: " + d.error());
    h.timeout_ms = Millis(*d);
  }
  if (o.retries) h.retries = *o.retries;
  if (h.name.empty())
    return Status::Error(file +
                         " does not name its hook: return a table with a name, or use "
                         "hook add NAME --file FILE --event TYPE");
  if (!ValidHookName(h.name))
    return Status::Error("invalid hook name \"" + h.name + "\": use letters, digits, _, - and .");
  if (h.event_type.empty())
    return Status::Error(file +
                         " does not say which events it wants: set event_type in its "
                         "table, or use --event TYPE");
  if (!ValidEventPattern(h.event_type))
    return Status::Error("invalid event type \"" + h.event_type +
                         "\": dotted words, where a word may be * (task.failed, deploy.*)");
  if (h.timeout_ms <= 0) return Status::Error("the timeout must be positive");
  if (h.retries < 0 || h.retries > 20) return Status::Error("retries must be between 0 and 20");
  return h;
}

}  // namespace

int CmdHookAdd(const GlobalOptions& global, const HookOptions& options) {
  auto hook = HookFromOptions(global, options);
  if (!hook.ok()) return Fail(kExitBadInput, hook.error());
  int rc = kExitOk;
  auto store = Open(global, &rc);
  if (!store) return rc;
  if (Status s = store->PutHook(*hook); !s.ok()) return Fail(kExitFailed, s.message());
  std::cout << "hook " << hook->name << " added: " << hook->event_type
            << (hook->stack.empty() ? "" : " on stack " + hook->stack) << " -> " << hook->file
            << "\n";
  return kExitOk;
}

int CmdHookList(const GlobalOptions& global, const HookOptions& options) {
  if (!ValidFormat(options.output))
    return Fail(kExitBadInput, "unknown output \"" + options.output + "\" (table or json)");
  int rc = kExitOk;
  auto store = Open(global, &rc);
  if (!store) return rc;
  auto hooks = store->ListHooks();
  if (!hooks.ok()) return Fail(kExitFailed, hooks.error());
  if (options.output == "json") {
    json out = json::array();
    for (const HookInfo& h : *hooks) out.push_back(HookJson(h));
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (hooks->empty()) {
    std::cout << "no hooks\n";
    return kExitOk;
  }
  std::cout << std::left << std::setw(24) << "NAME" << std::setw(20) << "EVENT" << std::setw(12)
            << "STACK" << std::setw(10) << "ENABLED"
            << "FILE\n";
  for (const HookInfo& h : *hooks) {
    std::cout << std::setw(24) << h.name << std::setw(20) << h.event_type << std::setw(12)
              << (h.stack.empty() ? "-" : h.stack) << std::setw(10) << (h.enabled ? "yes" : "no")
              << h.file << "\n";
  }
  return kExitOk;
}

int CmdHookShow(const GlobalOptions& global, const HookOptions& options) {
  if (!ValidFormat(options.output))
    return Fail(kExitBadInput, "unknown output \"" + options.output + "\" (table or json)");
  int rc = kExitOk;
  auto store = Open(global, &rc);
  if (!store) return rc;
  auto hook = Find(*store, options.name, &rc);
  if (!hook) return rc;
  auto recent = store->HookHistory(hook->name, 5);
  if (!recent.ok()) return Fail(kExitFailed, recent.error());
  json j = HookJson(*hook);
  if (options.output == "json") {
    j["recent"] = json::array();
    for (const HookExecution& x : *recent) j["recent"].push_back(ExecutionJson(x));
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "hook:        " << hook->name << "\n"
            << "event type:  " << hook->event_type << "\n"
            << "stack:       " << (hook->stack.empty() ? "(every stack)" : hook->stack) << "\n"
            << "file:        " << hook->file
            << (j["file_exists"].get<bool>() ? "" : "  (missing: the hook fails until it is back)")
            << "\n"
            << "enabled:     " << (hook->enabled ? "yes" : "no") << "\n"
            << "timeout:     " << FormatHuman(std::chrono::milliseconds(hook->timeout_ms)) << "\n"
            << "retries:     " << hook->retries << "\n";
  if (!hook->description.empty()) std::cout << "description: " << hook->description << "\n";
  std::cout << "recent runs: " << (recent->empty() ? "none" : "") << "\n";
  for (const HookExecution& x : *recent)
    std::cout << "  " << FormatUnixMs(x.at_ms) << "  " << (x.success ? "ok    " : "failed") << "  "
              << x.event_type << "  " << (x.success ? x.output : x.error) << "\n";
  return kExitOk;
}

static int SetEnabled(const GlobalOptions& global, const HookOptions& options, bool enabled) {
  int rc = kExitOk;
  auto store = Open(global, &rc);
  if (!store) return rc;
  auto found = store->SetHookEnabled(options.name, enabled);
  if (!found.ok()) return Fail(kExitFailed, found.error());
  if (!*found) return Fail(kExitFailed, "hook " + options.name + " not found");
  std::cout << "hook " << options.name << (enabled ? " enabled" : " disabled") << "\n";
  return kExitOk;
}

int CmdHookEnable(const GlobalOptions& global, const HookOptions& options) {
  return SetEnabled(global, options, true);
}

int CmdHookDisable(const GlobalOptions& global, const HookOptions& options) {
  return SetEnabled(global, options, false);
}

int CmdHookDelete(const GlobalOptions& global, const HookOptions& options) {
  int rc = kExitOk;
  auto store = Open(global, &rc);
  if (!store) return rc;
  auto found = store->DeleteHook(options.name);
  if (!found.ok()) return Fail(kExitFailed, found.error());
  if (!*found) return Fail(kExitFailed, "hook " + options.name + " not found");
  std::cout << "hook " << options.name << " deleted (its history is kept)\n";
  return kExitOk;
}

int CmdHookHistory(const GlobalOptions& global, const HookOptions& options) {
  if (!ValidFormat(options.output))
    return Fail(kExitBadInput, "unknown output \"" + options.output + "\" (table or json)");
  int rc = kExitOk;
  auto store = Open(global, &rc);
  if (!store) return rc;
  if (!Find(*store, options.name, &rc)) return rc;
  auto runs = store->HookHistory(options.name, options.limit);
  if (!runs.ok()) return Fail(kExitFailed, runs.error());
  if (options.output == "json") {
    json out = json::array();
    for (const HookExecution& x : *runs) out.push_back(ExecutionJson(x));
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (runs->empty()) {
    std::cout << "hook " << options.name << " has not run yet\n";
    return kExitOk;
  }
  std::cout << std::left << std::setw(25) << "AT" << std::setw(8) << "RESULT" << std::setw(9)
            << "TIME" << std::setw(20) << "EVENT"
            << "OUTPUT / ERROR\n";
  for (const HookExecution& x : *runs) {
    std::string text = x.success ? x.output : x.error;
    if (size_t nl = text.find('\n'); nl != std::string::npos) text = text.substr(0, nl) + " ...";
    std::cout << std::setw(25) << FormatUnixMs(x.at_ms) << std::setw(8)
              << (x.success ? "ok" : "failed") << std::setw(9)
              << FormatHuman(std::chrono::milliseconds(x.duration_ms)) << std::setw(20)
              << x.event_type << text << "\n";
  }
  return kExitOk;
}

int CmdHookTest(const GlobalOptions& global, const HookOptions& options) {
  json data = json::object();
  if (!options.data.empty()) {
    data = json::parse(options.data, nullptr, false);
    if (data.is_discarded() || !data.is_object())
      return Fail(kExitBadInput, "--data must be a JSON object");
  }
  int rc = kExitOk;
  auto store = Open(global, &rc);
  if (!store) return rc;
  auto hook = Find(*store, options.name, &rc);
  if (!hook) return rc;
  Event e;
  // Without --type: the hook's own type, its wildcards filled with "test".
  e.type = options.type;
  if (e.type.empty()) {
    e.type = hook->event_type;
    for (size_t at; (at = e.type.find('*')) != std::string::npos;) e.type.replace(at, 1, "test");
  }
  if (!ValidEventType(e.type)) return Fail(kExitBadInput, "invalid event type \"" + e.type + "\"");
  e.id = "test-" + std::to_string(NowUnixMs());
  e.timestamp_ms = NowUnixMs();
  e.source = "hook test";
  e.stack = hook->stack;
  e.data_json = data.dump();
  HookOutcome outcome = RunHookFile(hook->name, hook->file, e, DataDir(global.data_dir),
                                    std::chrono::milliseconds(hook->timeout_ms));
  if (!outcome.success) return Fail(kExitFailed, "hook " + hook->name + ": " + outcome.error);
  std::cout << "hook " << hook->name << " ok"
            << (outcome.output.empty() ? "" : ": " + outcome.output) << "\n";
  return kExitOk;
}

int CmdHookExec(const GlobalOptions& global, const HookOptions& options) {
  json in = json::parse(std::cin, nullptr, false);
  auto event = EventFromJson(in);
  if (!event.ok())
    return Fail(kExitBadInput, "hook exec: standard input is not an event: " + event.error());
  int rc = kExitOk;
  auto store = Open(global, &rc);
  if (!store) return rc;
  auto hook = Find(*store, options.name, &rc);
  if (!hook) return rc;
  store.reset();  // the hook may run long: hold no connection
  HookOutcome outcome = RunHookFile(hook->name, hook->file, *event, DataDir(global.data_dir),
                                    std::chrono::milliseconds(hook->timeout_ms));
  // On a line of its own even when the hook wrote a partial line: the dispatcher reads the last.
  std::cout << "\n"
            << json{{"success", outcome.success},
                    {"output", outcome.output},
                    {"error", outcome.error}}
                   .dump(-1, ' ', false, json::error_handler_t::replace)
            << std::endl;
  return outcome.success ? kExitOk : kExitFailed;
}

}  // namespace sloth
